/*
 * cmd_bench.c — `psi bench`: prompt-processing and generation speed, the
 * way llama.cpp's llama-bench measures them, so the two compare directly:
 *  - ppN: N random token ids evaluated as one prompt into an empty cache;
 *  - tgN: N tokens evaluated one at a time into an empty cache (the first
 *    is BOS when the model adds one; then random ids), as generation does;
 *  - with -d D both run after D random tokens already in the cache (filled
 *    once per test, untimed; each run cuts the cache back to D), named
 *    "pp512 @ d4096" as llama-bench's -d does: speed at a long context,
 *    where attention's share grows.
 * One untimed warm-up run, then -r timed runs; each figure is the mean ±
 * sample standard deviation of the per-run tokens/s. For tg also the
 * weight bandwidth: bytes of tensor data (all of them are read for each
 * token) ÷ time per token. Peak resident memory is the process's maximum
 * RSS (weights are mapped, so it counts the pages of the file touched).
 * --json prints an array with llama-bench's field names.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli.h"
#include "hub.h"
#include "gen.h"

#include "psi_commit.h" /* PSI_GIT_COMMIT, written by the build (cmake/commit.cmake) */

static const char *bench_help =
    "usage: psi bench -m FILE [-m FILE ...] [-p N] [-n N] [-d N] [-r N] [-t N] [--kv-type f16|f32|q8_0] "
    "[--no-mmap] [--json]\n"
    "  -p N   prompt tokens per pp test (default 512; 0 = no pp test)\n"
    "  -n N   tokens per tg test (default 128; 0 = no tg test)\n"
    "  -d N   context depth: the tests run after N tokens already in the cache (default 0)\n"
    "  -r N   timed repetitions (default 3), after one warm-up\n"
    "  -t N   threads (default: all cores)\n"
    "  --no-mmap  read the weights into memory instead of mapping the file (see psi run --help)\n"
    "  --json one JSON array, llama-bench's field names\n";

typedef struct bench_opts {
    const char *models[16];
    int n_models;
    long n_prompt, n_gen, depth, reps, threads;
    psi_type kv_type;
    bool json, no_mmap;
} bench_opts;

static int parse(bench_opts *b, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(bench_help, stdout);
            return -1;
        }
#define VAL() if (!(v = cli_value("bench", argc, argv, &i))) return 1
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            VAL();
            if (b->n_models == 16) return cli_fail("bench", "at most 16 models");
            b->models[b->n_models++] = v;
        } else if (!strcmp(a, "-p")) {
            VAL();
            if (!cli_int("bench", a, v, 0, 1 << 20, &b->n_prompt)) return 1;
        } else if (!strcmp(a, "-n")) {
            VAL();
            if (!cli_int("bench", a, v, 0, 1 << 20, &b->n_gen)) return 1;
        } else if (!strcmp(a, "-d")) {
            VAL();
            if (!cli_int("bench", a, v, 0, 1 << 20, &b->depth)) return 1;
        } else if (!strcmp(a, "-r")) {
            VAL();
            if (!cli_int("bench", a, v, 1, 1000, &b->reps)) return 1;
        } else if (!strcmp(a, "-t")) {
            VAL();
            if (!cli_int("bench", a, v, 1, 1024, &b->threads)) return 1;
        } else if (!strcmp(a, "--kv-type")) {
            VAL();
            if (!cli_kv_type("bench", v, &b->kv_type)) return 1;
        } else if (!strcmp(a, "--json")) {
            b->json = true;
        } else if (!strcmp(a, "--no-mmap")) {
            b->no_mmap = true;
        } else {
            return cli_fail("bench", "unknown option '%s'", a);
        }
#undef VAL
    }
    if (!b->n_models) return cli_fail("bench", "no model given (-m FILE)");
    if (!b->n_prompt && !b->n_gen) return cli_fail("bench", "nothing to measure (-p 0 and -n 0)");
    return 0;
}

/* llama.cpp's names for general.file_type (llama_model_ftype_name). */
static const char *ftype_name(int64_t t)
{
    switch (t) {
    case 0: return "all F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 7: return "Q8_0";
    case 8: return "Q5_0";
    case 9: return "Q5_1";
    case 10: return "Q2_K - Medium";
    case 11: return "Q3_K - Small";
    case 12: return "Q3_K - Medium";
    case 13: return "Q3_K - Large";
    case 14: return "Q4_K - Small";
    case 15: return "Q4_K - Medium";
    case 16: return "Q5_K - Small";
    case 17: return "Q5_K - Medium";
    case 18: return "Q6_K";
    case 32: return "BF16";
    default: return "unknown type";
    }
}

static void model_type(const psi_model *m, char *buf, size_t n)
{
    double p = (double)psi_model_n_params(m);
    char size[32];
    if (p >= 1e9) snprintf(size, sizeof size, "%.0fB", p / 1e9);
    else if (p >= 1e6) snprintf(size, sizeof size, "%.0fM", p / 1e6);
    else snprintf(size, sizeof size, "%.0fK", p / 1e3);
    int64_t ft = -1;
    psi_model_meta_int(m, "general.file_type", &ft);
    snprintf(buf, n, "llama %s %s", size, ftype_name(ft));
}

static uint64_t rnd_state = 1234;
static int32_t rnd_token(int32_t n_vocab)
{
    rnd_state = rnd_state * 6364136223846793005ull + 1442695040888963407ull;
    return (int32_t)((rnd_state >> 33) % (uint64_t)n_vocab);
}

/* n random tokens (BOS first at position 0, when the model adds one)
 * evaluated as one batch; false on error. */
static bool eval_random(psi_model *m, psi_context *ctx, long n, int32_t *buf)
{
    int32_t n_vocab = psi_model_n_vocab(m);
    for (long i = 0; i < n; i++) buf[i] = rnd_token(n_vocab);
    if (psi_model_add_bos(m) && psi_context_n_past(ctx) == 0) buf[0] = psi_token_bos(m);
    return psi_context_decode(ctx, buf, (int32_t)n, false) == PSI_OK;
}

/* One run of a test after depth tokens in the cache; time in ns, 0 on error. */
static double run_once(psi_model *m, psi_context *ctx, long depth, long n_prompt, long n_gen, int32_t *buf)
{
    int32_t n_vocab = psi_model_n_vocab(m);
    psi_context_truncate(ctx, (int32_t)depth);
    if (psi_context_n_past(ctx) != depth) { /* the test's first run: fill the depth */
        psi_context_truncate(ctx, 0);
        if (depth && !eval_random(m, ctx, depth, buf)) return 0;
    }
    double t0 = gen_now_ms();
    if (n_prompt) {
        if (!eval_random(m, ctx, n_prompt, buf)) return 0;
    } else {
        int32_t tok = psi_model_add_bos(m) && !depth ? psi_token_bos(m) : rnd_token(n_vocab);
        for (long i = 0; i < n_gen; i++) {
            if (psi_context_decode(ctx, &tok, 1, false) != PSI_OK) return 0;
            tok = rnd_token(n_vocab);
        }
    }
    return (gen_now_ms() - t0) * 1e6;
}

static void stats(const double *v, long n, double *mean, double *sd)
{
    double s = 0, q = 0;
    for (long i = 0; i < n; i++) s += v[i];
    *mean = s / (double)n;
    for (long i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (double)(n - 1)) : 0;
}

static void cpu_info(char *buf, size_t n)
{
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10)) continue;
        char *c = strchr(line, ':');
        if (!c) continue;
        c += 1 + (c[1] == ' ');
        c[strcspn(c, "\n")] = 0;
        snprintf(buf, n, "%s", c);
        break;
    }
    if (f) fclose(f);
}

static long peak_rss_bytes(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss * 1024L : 0;
}

int cmd_bench(int argc, char **argv)
{
    bench_opts b = {.n_prompt = 512, .n_gen = 128, .reps = 3, .kv_type = PSI_TYPE_F16};
    b.threads = psi_cpu_count();
    int prc = parse(&b, argc, argv);
    if (prc) return prc < 0 ? 0 : prc;

    char cpu[256], when[32];
    cpu_info(cpu, sizeof cpu);
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    json_t *all = json_array();
    int rc = 0;
    if (!b.json) {
        printf("| model | size | params | threads | test | t/s | weights GB/s | peak RSS |\n");
        printf("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |\n");
    }
    for (int mi = 0; mi < b.n_models && !rc; mi++) {
        char err[512];
        psi_model *m = NULL;
        char *path = hub_model_path("bench", b.models[mi]); /* hf:... pulls on first use */
        if (!path) {
            rc = 1;
            break;
        }
        psi_model_params mp = psi_model_default_params();
        mp.use_mmap = !b.no_mmap;
        psi_status lrc = psi_model_load(path, &mp, &m, err, sizeof err);
        free(path);
        if (lrc != PSI_OK) {
            rc = cli_fail("bench", "%s", err);
            break;
        }
        psi_context_params cp = psi_context_default_params();
        cp.n_ctx = (int32_t)(b.depth + (b.n_prompt > b.n_gen ? b.n_prompt : b.n_gen));
        cp.n_threads = (int32_t)b.threads;
        cp.kv_type = b.kv_type;
        psi_context *ctx = NULL;
        long n_buf = b.n_prompt > b.depth ? b.n_prompt : b.depth;
        int32_t *buf = malloc((size_t)(n_buf + 1) * sizeof *buf);
        double *ns = malloc((size_t)b.reps * sizeof *ns), *ts = malloc((size_t)b.reps * sizeof *ts);
        if (!buf || !ns || !ts || psi_context_new(m, &cp, &ctx, err, sizeof err) != PSI_OK) {
            rc = cli_fail("bench", "%s", buf && ns && ts ? err : "out of memory");
        }
        char type[96];
        model_type(m, type, sizeof type);
        uint64_t size = psi_model_size(m), params = psi_model_n_params(m);
        for (int test = 0; test < 2 && !rc; test++) {
            long np = test == 0 ? b.n_prompt : 0, ng = test == 1 ? b.n_gen : 0;
            if (!np && !ng) continue;
            long n_tok = np ? np : ng;
            psi_context_truncate(ctx, 0); /* the depth is filled anew for each test */
            if (run_once(m, ctx, b.depth, np, ng, buf) == 0) { /* warm-up */
                rc = cli_fail("bench", "%s", psi_context_errmsg(ctx));
                break;
            }
            for (long r = 0; r < b.reps && !rc; r++) {
                ns[r] = run_once(m, ctx, b.depth, np, ng, buf);
                if (ns[r] == 0) rc = cli_fail("bench", "%s", psi_context_errmsg(ctx));
                ts[r] = ns[r] > 0 ? (double)n_tok * 1e9 / ns[r] : 0;
            }
            if (rc) break;
            double avg_ns, sd_ns, avg_ts, sd_ts;
            stats(ns, b.reps, &avg_ns, &sd_ns);
            stats(ts, b.reps, &avg_ts, &sd_ts);
            double gbs = ng ? (double)size * avg_ts / 1e9 : 0;
            long rss = peak_rss_bytes();
            const char *fname = strrchr(b.models[mi], '/') ? strrchr(b.models[mi], '/') + 1 : b.models[mi];
            if (!b.json) {
                char tname[48], bw[32] = "";
                int tl = snprintf(tname, sizeof tname, np ? "pp%ld" : "tg%ld", n_tok);
                if (b.depth) snprintf(tname + tl, sizeof tname - (size_t)tl, " @ d%ld", b.depth);
                if (ng) snprintf(bw, sizeof bw, "%.1f", gbs);
                printf("| %s | %.2f GiB | %.2f B | %ld | %s | %.2f ± %.2f | %s | %.2f GiB |\n", fname,
                       (double)size / (1u << 30), (double)params / 1e9, b.threads, tname, avg_ts, sd_ts, bw,
                       (double)rss / (1u << 30));
                fflush(stdout);
                continue;
            }
            json_t *o = json_object();
            json_t *sn = json_array(), *st = json_array();
            for (long r = 0; r < b.reps; r++) {
                json_array_append_new(sn, json_integer((json_int_t)ns[r]));
                json_array_append_new(st, json_real(ts[r]));
            }
            json_object_set_new(o, "build_commit", json_string(PSI_GIT_COMMIT));
            json_object_set_new(o, "build_number", json_integer(0));
            json_object_set_new(o, "cpu_info", json_string(cpu));
            json_object_set_new(o, "gpu_info", json_string(""));
            json_object_set_new(o, "backends", json_string("CPU"));
            json_object_set_new(o, "cpu_kernels", json_string(psi_cpu_kernels())); /* psi's own: PSI_CPU's path */
            json_object_set_new(o, "model_filename", cli_json_text(b.models[mi], strlen(b.models[mi])));
            json_object_set_new(o, "model_type", json_string(type));
            json_object_set_new(o, "model_size", json_integer((json_int_t)size));
            json_object_set_new(o, "model_n_params", json_integer((json_int_t)params));
            json_object_set_new(o, "n_batch", json_integer(np ? np : 1));
            json_object_set_new(o, "n_ubatch", json_integer(256));
            json_object_set_new(o, "n_threads", json_integer(b.threads));
            const char *kvt = b.kv_type == PSI_TYPE_F16 ? "f16" : b.kv_type == PSI_TYPE_Q8_0 ? "q8_0" : "f32";
            json_object_set_new(o, "type_k", json_string(kvt));
            json_object_set_new(o, "type_v", json_string(kvt));
            json_object_set_new(o, "n_gpu_layers", json_integer(0));
            json_object_set_new(o, "use_mmap", json_boolean(!b.no_mmap));
            json_object_set_new(o, "n_prompt", json_integer(np));
            json_object_set_new(o, "n_gen", json_integer(ng));
            json_object_set_new(o, "n_depth", json_integer(b.depth));
            json_object_set_new(o, "test_time", json_string(when));
            json_object_set_new(o, "avg_ns", json_integer((json_int_t)avg_ns));
            json_object_set_new(o, "stddev_ns", json_integer((json_int_t)sd_ns));
            json_object_set_new(o, "avg_ts", json_real(avg_ts));
            json_object_set_new(o, "stddev_ts", json_real(sd_ts));
            json_object_set_new(o, "samples_ns", sn);
            json_object_set_new(o, "samples_ts", st);
            json_object_set_new(o, "weights_bandwidth_gbs", json_real(gbs));
            json_object_set_new(o, "peak_rss_bytes", json_integer(rss));
            json_array_append_new(all, o);
        }
        free(buf);
        free(ns);
        free(ts);
        psi_context_free(ctx);
        psi_model_free(m);
    }
    if (b.json && !rc) {
        json_dumpf(all, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
    }
    json_decref(all);
    return rc;
}
