/*
 * cmd_run.c — the sub-commands that evaluate a model: `psi run` (generate),
 * `psi logits` (one batch, raw logits out) and `psi tokenize`.
 * stdout carries only the requested output; logs and timings go to stderr.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "hub.h"
#include "gen.h"

static const char *run_help =
    "usage: psi run -m FILE [-p PROMPT | -f FILE | --tokens \"IDS\"] [options]\n"
    "  -m FILE          GGUF model\n"
    "  -p PROMPT        prompt text (BOS added as the model asks)\n"
    "  -f FILE          read the prompt from a file\n"
    "  --tokens \"IDS\"   prompt as token ids, used as they are (no BOS added)\n"
    "  -n N             tokens to generate (default 128)\n"
    "  --temp T         temperature (default 0.8; 0 = greedy)\n"
    "  --top-k K        (default 40; 0 = off)   --top-p P (default 0.95)   --min-p P (default 0.05)\n"
    "  --seed S         random seed (default: from the clock; printed with -v)\n"
    "  -t N             threads (default: all cores)\n"
    "  -c N             context size (default: the model's, at most 4096)\n"
    "  --kv-type T      KV cache type: f16 (default), f32, q8_0\n"
    "  --no-mmap        read the weights into memory (2 MiB pages) instead of mapping the file:\n"
    "                   generation a few % faster, loading slower\n"
    "  --no-bos         do not add BOS to a text prompt\n"
    "  --parse-special  read special tokens written in the prompt (\"<|eot_id|>\") as tokens\n"
    "  --ignore-eos     keep generating past end-of-generation tokens\n"
    "  --json           print one JSON object instead of streaming text\n"
    "  -v               log model details and timings to stderr\n";

/* Options shared by run / logits / tokenize. Returns 0 = parsed, 1 = error,
 * -1 = help printed. */
int gen_parse_opts(opts *o, int argc, char **argv, const char *help)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(help, stdout);
            if (strcmp(o->cmd, "tokenize") && strcmp(o->cmd, "detokenize")) fputs(trust_help, stdout);
            return -1;
        }
        if (strcmp(o->cmd, "tokenize") && strcmp(o->cmd, "detokenize")) {
            int t = trust_parse(o->cmd, &o->trust, argc, argv, &i);
            if (t) {
                if (t < 0) return 1;
                continue;
            }
        }
#define VAL() if (!(v = cli_value(o->cmd, argc, argv, &i))) return 1
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) { VAL(); o->model = v; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { VAL(); o->prompt = v; }
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) { VAL(); o->prompt_file = v; }
        else if (!strcmp(a, "--tokens")) { VAL(); o->tokens = v; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) { VAL(); o->out = v; }
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            VAL();
            if (!cli_int(o->cmd, a, v, 0, 1 << 30, &o->n_predict)) return 1;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            VAL();
            if (!cli_int(o->cmd, a, v, 1, 1024, &o->n_threads)) return 1;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            VAL();
            if (!cli_int(o->cmd, a, v, 1, 1 << 24, &o->n_ctx)) return 1;
        } else if (!strcmp(a, "--temp")) {
            VAL();
            if (!cli_float(o->cmd, a, v, 0, 100, &o->temp)) return 1;
        } else if (!strcmp(a, "--top-k")) {
            VAL();
            if (!cli_int(o->cmd, a, v, 0, 1 << 30, &o->top_k)) return 1;
        } else if (!strcmp(a, "--top-p")) {
            VAL();
            if (!cli_float(o->cmd, a, v, 0, 1, &o->top_p)) return 1;
        } else if (!strcmp(a, "--min-p")) {
            VAL();
            if (!cli_float(o->cmd, a, v, 0, 1, &o->min_p)) return 1;
        } else if (!strcmp(a, "--seed")) {
            VAL();
            if (!cli_u64(o->cmd, a, v, &o->seed)) return 1;
            o->seed_set = true;
        } else if (!strcmp(a, "--kv-type")) {
            VAL();
            if (!cli_kv_type(o->cmd, v, &o->kv_type)) return 1;
        } else if (!strcmp(a, "--system") && !strcmp(o->cmd, "chat")) {
            VAL();
            o->system = v;
        } else if (!strcmp(a, "--chat-template") && !strcmp(o->cmd, "chat")) {
            VAL();
            o->chat_template = v;
        } else if (!strcmp(a, "--json")) o->json = true;
        else if (!strcmp(a, "--pieces") && !strcmp(o->cmd, "tokenize")) o->pieces = true;
        else if (!strcmp(a, "--no-bos")) o->no_bos = true;
        else if (!strcmp(a, "--parse-special")) o->parse_special = true;
        else if (!strcmp(a, "--ignore-eos")) o->ignore_eos = true;
        else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) o->verbose = true;
        else if (!strcmp(a, "--no-mmap") && strcmp(o->cmd, "tokenize") && strcmp(o->cmd, "detokenize"))
            o->no_mmap = true;
        else if (a[0] == '-' && a[1]) return cli_fail(o->cmd, "unknown option '%s'", a);
        else if (!strcmp(o->cmd, "tokenize") && !o->prompt) o->prompt = a;
        else if (!strcmp(o->cmd, "detokenize")) {
            size_t len = o->detok_ids ? strlen(o->detok_ids) : 0, add = strlen(a);
            char *ids = realloc(o->detok_ids, len + add + 2);
            if (!ids) return cli_fail(o->cmd, "out of memory");
            if (len) ids[len++] = ' ';
            memcpy(ids + len, a, add + 1);
            o->detok_ids = ids;
        }
        else return cli_fail(o->cmd, "unexpected argument '%s'", a);
#undef VAL
    }
    if (!o->model) return cli_fail(o->cmd, "no model given (-m FILE)");
    int n_src = !!o->prompt + !!o->prompt_file + !!o->tokens;
    if (n_src > 1) return cli_fail(o->cmd, "give only one of -p, -f and --tokens");
    return 0;
}

psi_sampler *gen_sampler(const opts *o)
{
    psi_sampler_params sp = psi_sampler_default_params();
    sp.temperature = (float)o->temp;
    sp.top_k = (int32_t)o->top_k;
    sp.top_p = (float)o->top_p;
    sp.min_p = (float)o->min_p;
    sp.seed = o->seed;
    psi_sampler *smp = NULL;
    if (psi_sampler_new(&sp, &smp) != PSI_OK) cli_fail(o->cmd, "invalid sampler settings");
    return smp;
}

double gen_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* 512 tokens a call: a multiple of the library's own 256-token slices, so
 * the results are those of one call. */
enum { PREFILL_CHUNK = 512 };

psi_status gen_prefill(const char *cmd, psi_context *ctx, const int32_t *toks, int32_t n)
{
    const bool tty = isatty(STDERR_FILENO) == 1;
    const double t0 = gen_now_ms();
    bool shown = false;
    psi_status rc = PSI_OK;
    for (int32_t p = 0; p < n && rc == PSI_OK; p += PREFILL_CHUNK) {
        int32_t k = n - p < PREFILL_CHUNK ? n - p : PREFILL_CHUNK;
        rc = psi_context_decode(ctx, toks + p, k, false);
        double ms = gen_now_ms() - t0;
        if (tty && rc == PSI_OK && p + k < n && ms > 1000) {
            fprintf(stderr, "\rpsi %s: prompt %d/%d tokens (%.0f tok/s)", cmd, p + k, n, (p + k) * 1e3 / ms);
            shown = true;
        }
    }
    if (shown) fputs("\r\033[K", stderr);
    return rc;
}

void gen_session_free(session *s)
{
    psi_context_free(s->ctx);
    psi_model_free(s->model);
    free(s->prompt);
}

/* Load the model and turn -p / -f / --tokens into prompt ids. */
int gen_session_open(session *s, const opts *o, bool need_ctx, long extra_ctx)
{
    char err[512];
    psi_model_params mp = psi_model_default_params();
    mp.verbose = o->verbose;
    mp.use_mmap = !o->no_mmap;
    mp.vocab_only = !need_ctx; /* tokenize / detokenize need no weights */
    char *path = hub_model_path(o->cmd, o->model); /* hf:... pulls on first use */
    if (!path) return 1;
    if (need_ctx && trust_check(o->cmd, path, &o->trust, NULL, 0)) {
        free(path);
        return 1;
    }
    psi_status lrc = psi_model_load(path, &mp, &s->model, err, sizeof err);
    free(path);
    if (lrc != PSI_OK) return cli_fail(o->cmd, "%s", err);
    if (o->tokens) {
        if (!cli_parse_ids(o->cmd, o->tokens, &s->prompt, &s->n_prompt)) return 1;
        int32_t n_vocab = psi_model_n_vocab(s->model);
        for (int32_t i = 0; i < s->n_prompt; i++)
            if (s->prompt[i] >= n_vocab)
                return cli_fail(o->cmd, "--tokens: id %d is out of range (vocabulary has %d tokens)",
                                s->prompt[i], n_vocab);
    } else {
        char *file_text = NULL;
        size_t len = 0;
        const char *text = o->prompt ? o->prompt : "";
        if (o->prompt_file) {
            if (!(file_text = cli_read_file(o->cmd, o->prompt_file, &len))) return 1;
            text = file_text;
        } else {
            len = strlen(text);
        }
        bool bos = !o->no_bos && psi_model_add_bos(s->model) && psi_token_bos(s->model) >= 0;
        int32_t n = 0;
        psi_status rc = psi_tokenize(s->model, text, len, bos, o->parse_special, NULL, 0, &n);
        if (rc == PSI_ERR_BUFFER_SMALL || (rc == PSI_OK && n > 0)) {
            s->prompt = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
            rc = s->prompt ? psi_tokenize(s->model, text, len, bos, o->parse_special, s->prompt, n, &n) : PSI_ERR_NO_MEMORY;
        }
        free(file_text);
        if (rc != PSI_OK) return cli_fail(o->cmd, "%s", psi_model_errmsg(s->model));
        s->n_prompt = n;
    }
    if (!need_ctx) return 0;
    if (s->n_prompt == 0)
        return cli_fail(o->cmd, "the prompt is empty and the model has no BOS token to start from");
    psi_context_params cp = psi_context_default_params();
    cp.n_threads = (int32_t)o->n_threads;
    cp.kv_type = o->kv_type;
    long n_ctx = o->n_ctx;
    if (!n_ctx) {
        /* the model's context, at most 4096, grown to fit prompt + -n but not
         * past the training context (then generation stops when it is full);
         * a longer prompt needs -c: past its training context a model's
         * answers degrade, and attention's cost grows with the square */
        long train = psi_model_n_ctx_train(s->model);
        n_ctx = train < 4096 ? train : 4096;
        long want = s->n_prompt + extra_ctx;
        if (n_ctx < want) n_ctx = want < train ? want : train;
    }
    if (s->n_prompt > n_ctx)
        return cli_fail(o->cmd, "the prompt has %d tokens, more than the context size %ld (%s)", s->n_prompt,
                        n_ctx, o->n_ctx ? "raise -c" : "the model's training context; -c N goes past it");
    cp.n_ctx = (int32_t)n_ctx;
    if (psi_context_new(s->model, &cp, &s->ctx, err, sizeof err) != PSI_OK)
        return cli_fail(o->cmd, "%s", err);
    return 0;
}

typedef struct text_buf {
    char *text;
    size_t len, cap;
} text_buf;

/* Generated text goes to stdout as it comes, or into t for --json. */
static bool emit(const opts *o, text_buf *t, const char *s, size_t n)
{
    if (!o->json) {
        fwrite(s, 1, n, stdout);
        fflush(stdout);
        return true;
    }
    if (t->len + n + 1 > t->cap) {
        size_t cap = (t->len + n + 1) * 2;
        char *p = realloc(t->text, cap);
        if (!p) return false;
        t->text = p;
        t->cap = cap;
    }
    memcpy(t->text + t->len, s, n);
    t->len += n;
    return true;
}

static json_t *ids_json(const int32_t *ids, int32_t n)
{
    json_t *a = json_array();
    for (int32_t i = 0; i < n; i++) json_array_append_new(a, json_integer(ids[i]));
    return a;
}

int cmd_run(int argc, char **argv)
{
    opts o = {.cmd = "run", .n_predict = 128, .temp = 0.8, .top_k = 40, .top_p = 0.95, .min_p = 0.05,
              .kv_type = PSI_TYPE_F16};
    int prc = gen_parse_opts(&o, argc, argv, run_help);
    if (prc) return prc < 0 ? 0 : prc;
    if (!o.seed_set) o.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

    session s = {0};
    int rc = gen_session_open(&s, &o, true, o.n_predict);
    psi_sampler *smp = NULL;
    psi_detok *detok = NULL;
    int32_t *gen = NULL;
    text_buf out = {0};
    if (rc) goto done;
    if (!(smp = gen_sampler(&o))) {
        rc = 1;
        goto done;
    }
    if (o.verbose)
        fprintf(stderr, "psi run: %s; prompt %d tokens; seed %llu; context %d\n",
                psi_model_desc(s.model), s.n_prompt, (unsigned long long)o.seed,
                psi_context_n_ctx(s.ctx));
    gen = malloc((size_t)(o.n_predict ? o.n_predict : 1) * sizeof *gen);
    if (!gen) {
        rc = cli_fail(o.cmd, "out of memory");
        goto done;
    }
    double t0 = gen_now_ms();
    if (gen_prefill(o.cmd, s.ctx, s.prompt, s.n_prompt) != PSI_OK) {
        rc = cli_fail(o.cmd, "%s", psi_context_errmsg(s.ctx));
        goto done;
    }
    double t1 = gen_now_ms(), t2 = t1;
    int32_t n_gen = 0;
    if (psi_detok_new(s.model, s.prompt[s.n_prompt - 1], &detok) != PSI_OK) {
        rc = cli_fail(o.cmd, "out of memory");
        goto done;
    }
    int32_t n_vocab = psi_model_n_vocab(s.model);
    const char *stop = "length";
    while (n_gen < o.n_predict) {
        int32_t tok = psi_sampler_sample(smp, psi_context_logits(s.ctx, -1), n_vocab);
        if (!o.ignore_eos && psi_token_is_eog(s.model, tok)) {
            stop = "eog";
            break;
        }
        gen[n_gen++] = tok;
        const char *piece;
        size_t len;
        if (psi_detok_push(detok, tok, &piece, &len) != PSI_OK) {
            rc = cli_fail(o.cmd, "cannot decode token %d", tok);
            goto done;
        }
        if (len && !emit(&o, &out, piece, len)) {
            rc = cli_fail(o.cmd, "out of memory");
            goto done;
        }
        if (n_gen == o.n_predict) break;
        if (psi_context_n_past(s.ctx) >= psi_context_n_ctx(s.ctx)) {
            fprintf(stderr, "\npsi run: context full (%d tokens): stopping (raise -c)\n",
                    psi_context_n_ctx(s.ctx));
            stop = "context";
            break;
        }
        if (psi_context_decode(s.ctx, &tok, 1, false) != PSI_OK) {
            rc = cli_fail(o.cmd, "%s", psi_context_errmsg(s.ctx));
            goto done;
        }
    }
    t2 = gen_now_ms();
    {
        const char *tail;
        size_t len;
        if (psi_detok_flush(detok, &tail, &len) == PSI_OK && len) emit(&o, &out, tail, len);
    }
    double pp_ms = t1 - t0, tg_ms = t2 - t1;
    if (o.json) {
        json_t *root = json_object();
        json_object_set_new(root, "prompt_tokens", ids_json(s.prompt, s.n_prompt));
        json_object_set_new(root, "tokens", ids_json(gen, n_gen));
        json_object_set_new(root, "text", json_stringn(out.text ? out.text : "", out.len));
        json_object_set_new(root, "stop", json_string(stop));
        json_t *tm = json_object();
        json_object_set_new(tm, "prompt_ms", json_real(pp_ms));
        json_object_set_new(tm, "generation_ms", json_real(tg_ms));
        json_object_set_new(tm, "prompt_tokens_per_s", json_real(pp_ms > 0 ? s.n_prompt * 1e3 / pp_ms : 0));
        json_object_set_new(tm, "generation_tokens_per_s", json_real(tg_ms > 0 ? n_gen * 1e3 / tg_ms : 0));
        json_object_set_new(root, "timings", tm);
        json_dumpf(root, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
        fputc('\n', stdout);
        json_decref(root);
    } else if (isatty(STDOUT_FILENO)) {
        fputc('\n', stdout);
    }
    if (o.verbose || !o.json)
        fprintf(stderr, "psi run: prompt %d tokens in %.1f ms (%.1f tok/s), generated %d tokens in %.1f ms (%.1f tok/s)\n",
                s.n_prompt, pp_ms, pp_ms > 0 ? s.n_prompt * 1e3 / pp_ms : 0.0, n_gen, tg_ms,
                tg_ms > 0 ? n_gen * 1e3 / tg_ms : 0.0);
done:
    free(gen);
    free(out.text);
    psi_detok_free(detok);
    psi_sampler_free(smp);
    gen_session_free(&s);
    return rc;
}

int cmd_logits(int argc, char **argv)
{
    opts o = {.cmd = "logits", .kv_type = PSI_TYPE_F16};
    int prc = gen_parse_opts(&o, argc, argv,
                         "usage: psi logits -m FILE (--tokens \"IDS\" | -p PROMPT) -o OUT.f32 [-t N] [-c N] [--kv-type T]\n"
                         "  evaluates the ids in one batch and writes little-endian float32 logits\n"
                         "  [n_tokens x n_vocab] to OUT.f32\n");
    if (prc) return prc < 0 ? 0 : prc;
    if (!o.out) return cli_fail(o.cmd, "-o OUT.f32 is required");
    if (cli_same_file(o.out, o.model) || (o.prompt_file && cli_same_file(o.out, o.prompt_file)))
        return cli_fail(o.cmd, "%s: -o names an input file, which the logits would replace", o.out);
    session s = {0};
    int rc = gen_session_open(&s, &o, true, 0);
    FILE *f = NULL;
    if (rc) goto done;
    if (psi_context_decode(s.ctx, s.prompt, s.n_prompt, true) != PSI_OK) {
        rc = cli_fail(o.cmd, "%s", psi_context_errmsg(s.ctx));
        goto done;
    }
    f = fopen(o.out, "wb");
    if (!f) {
        rc = cli_fail(o.cmd, "%s: cannot create the file", o.out);
        goto done;
    }
    size_t n_vocab = (size_t)psi_model_n_vocab(s.model);
    for (int32_t i = 0; i < s.n_prompt; i++)
        if (fwrite(psi_context_logits(s.ctx, i), sizeof(float), n_vocab, f) != n_vocab) break;
    if (ferror(f) | (fclose(f) != 0)) rc = cli_fail(o.cmd, "%s: write failed", o.out);
    f = NULL;
    if (!rc && o.verbose)
        fprintf(stderr, "psi logits: wrote %d x %zu logits to %s\n", s.n_prompt, n_vocab, o.out);
done:
    gen_session_free(&s);
    return rc;
}

int cmd_tokenize(int argc, char **argv)
{
    opts o = {.cmd = "tokenize", .kv_type = PSI_TYPE_F16};
    int prc = gen_parse_opts(&o, argc, argv,
                         "usage: psi tokenize -m FILE [--no-bos] [--parse-special] [--pieces] (TEXT | -f FILE)\n"
                         "  prints the token ids, space-separated, on one line;\n"
                         "  --pieces prints one 'id<TAB>piece' line per token instead\n");
    if (prc) return prc < 0 ? 0 : prc;
    session s = {0};
    int rc = gen_session_open(&s, &o, false, 0);
    if (!rc && o.pieces) {
        for (int32_t i = 0; i < s.n_prompt; i++) {
            char piece[512];
            /* shown as decoded on its own (no leading-space rule) */
            int32_t len = psi_token_to_piece(s.model, s.prompt[i], s.prompt[i], piece, sizeof piece);
            if (len > (int32_t)sizeof piece) len = (int32_t)sizeof piece;
            printf("%d\t", s.prompt[i]);
            for (int32_t k = 0; k < len; k++) {
                unsigned char c = (unsigned char)piece[k];
                if (c == '\n') fputs("\\n", stdout);
                else if (c == '\t') fputs("\\t", stdout);
                else if (c < 32 || c == 127) printf("\\x%02x", c);
                else putchar(c);
            }
            putchar('\n');
        }
    } else if (!rc) {
        for (int32_t i = 0; i < s.n_prompt; i++) printf(i ? " %d" : "%d", s.prompt[i]);
        putchar('\n');
    }
    gen_session_free(&s);
    return rc;
}

int cmd_detokenize(int argc, char **argv)
{
    opts o = {.cmd = "detokenize", .kv_type = PSI_TYPE_F16};
    int prc = gen_parse_opts(&o, argc, argv,
                         "usage: psi detokenize -m FILE ID...\n"
                         "  prints the text of the token ids (also accepted as one \"1 2 3\" argument)\n");
    if (prc) {
        free(o.detok_ids);
        return prc < 0 ? 0 : prc;
    }
    if (!o.detok_ids) return cli_fail(o.cmd, "no token ids given (usage: psi detokenize -m FILE ID...)");
    o.tokens = o.detok_ids;
    session s = {0};
    int rc = gen_session_open(&s, &o, false, 0);
    if (!rc) {
        size_t len = 0;
        psi_status st = psi_detokenize(s.model, s.prompt, s.n_prompt, NULL, 0, &len);
        char *text = (st == PSI_OK || st == PSI_ERR_BUFFER_SMALL) ? malloc(len + 1) : NULL;
        if (text && psi_detokenize(s.model, s.prompt, s.n_prompt, text, len + 1, &len) == PSI_OK) {
            fwrite(text, 1, len, stdout);
            if (isatty(STDOUT_FILENO)) putchar('\n');
        } else {
            rc = cli_fail(o.cmd, "cannot decode the ids");
        }
        free(text);
    }
    gen_session_free(&s);
    free(o.detok_ids);
    return rc;
}
