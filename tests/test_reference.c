/*
 * test_reference.c — psi against llama.cpp's answers on the reference/
 * models (see $PSI_TEST_DATA/reference/REFERENCE.md): last-position logits,
 * argmax at every prompt position, and the 32-token greedy continuation.
 *
 * Thresholds (issue 2): F32/F16 max|Δ| ≤ 2e-3·max|ref|; BF16 NMSE ≤ 1e-3;
 * quantized NMSE ≤ 5e-3. psi's argmax within llama.cpp's top-5 everywhere
 * and equal to its top-1 where llama.cpp's margin is ≥ 0.05 (float) or
 * ≥ 1.0 (quantized). Greedy ids equal up to the first low-margin step; where
 * psi reproduces llama.cpp's logits (max|Δ| ≤ 1e-3: same weights, same
 * activation rounding), "low" is < 0.01 instead, which asks for all 32 ids
 * on every case but the Llama 3 ones.
 */
#include <dirent.h>
#include <stdbool.h>
#include <jansson.h>
#include <math.h>
#include <string.h>
#include <sodium.h>
#include <sys/stat.h>

#include "gguf.h"
#include "kernels/kernels.h"

#include "testutil.h"

/* CTest runs this test once per kernel path (PSI_CPU=generic|avx2|avx512,
 * inherited by the psi it starts; PSI_TEST_EMULATED=avx512e|amxe for the
 * test build's psi_emu), possibly in parallel: one scratch directory per
 * path. */
static const char *ref_tmpdir(void)
{
    const char *cpu = getenv("PSI_TEST_EMULATED");
    if (!cpu || !*cpu) cpu = getenv("PSI_CPU");
    char name[64];
    snprintf(name, sizeof name, "reference%s%.32s", cpu && *cpu ? "-" : "", cpu ? cpu : "");
    return tu_tmpdir(name);
}

/* The kernels the psi this test starts runs: psi_emu's emulated ones, or
 * (the same library, the same PSI_CPU) this process's. */
static const char *child_kernels(void)
{
    const char *emu = getenv("PSI_TEST_EMULATED");
    return emu && *emu ? emu : psi_cpu_kernels();
}

/* With PSI_TEST_EMULATED=NAME ($PSI is psi_emu, tests/CMakeLists.txt):
 * that psi must say it runs the kernels NAME (`-v`), or nothing here
 * would test them. 1 when it does; 77 when it runs PSI_CPU's own kernels
 * instead (a CPU that has them: test_reference_$PSI_CPU tests those); 0
 * (a failed check) otherwise. */
static int check_emulated(const char *name)
{
    char model[4096];
    snprintf(model, sizeof model, "%s", tu_data("reference/llama2-tiny-Q4_0.gguf"));
    const char *argv[] = {tu_psi(), "run", "-m", model, "-p", "Once", "-n", "1", "-v", NULL};
    const char *cpu = getenv("PSI_CPU") ? getenv("PSI_CPU") : "";
    char *err = NULL, want[64], native[64];
    int st = tu_run(argv, NULL, &err);
    snprintf(want, sizeof want, "cpu kernels %s ", name);
    snprintf(native, sizeof native, "cpu kernels %.32s ", cpu);
    int rc = st == 0 && err && strstr(err, want) ? 1 : st == 0 && err && strstr(err, native) ? 77 : 0;
    if (rc == 77) printf("skipped: this CPU runs %s itself (test_reference_%s tests it)\n", cpu, cpu);
    CHECKF(rc, "%s does not run the kernels %s (exit %d): %s", tu_psi(), name, st, err ? err : "");
    free(err);
    return rc;
}

/* 77 (CTest's SKIP_RETURN_CODE) when PSI_CPU names a path this CPU cannot
 * run: psi would fall back to another path and test nothing new. */
static int skip_unsupported_path(void)
{
    const char *emu = getenv("PSI_TEST_EMULATED");
    if (emu && *emu) return 0; /* psi_emu runs it (check_emulated) */
    const char *cpu = getenv("PSI_CPU");
    if (!cpu || !*cpu) return 0;
    for (int l = 0; l < KERN_LEVELS; l++)
        if (!strcmp(cpu, kernels_level_name((kern_level)l))) {
            if (kernels_for((kern_level)l)) return 0;
            printf("skipped: this CPU cannot run PSI_CPU=%s\n", cpu);
            return 77;
        }
    return 0;
}

static bool file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static int argmax(const float *v, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return (int)best;
}

/* model_override: run the case on another file (made by psi quantize);
 * type_override: judge it as that type (BF16: NMSE, F16: max|d|). */
/* Whether every matrix product of the model runs kernels that give the
 * reference's (generic) result bit for bit on the SIMD paths: F32 and F16
 * (tile kernels), the K-quants (integer block sums), and Q4_0, Q4_1,
 * Q5_0, Q5_1 and Q8_0 matrices repacked in groups of 8 rows (row count a
 * multiple of 8; token_embd too, also where it is the output). Their
 * other SIMD kernels, where a matrix is not repacked, add in another
 * order. */
static bool simd_exact(const char *model)
{
    gguf *g = NULL;
    char err[256];
    if (gguf_open(model, &g, err, sizeof err) != PSI_OK) return false;
    bool exact = true, untied = gguf_find_tensor(g, "output.weight") >= 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        if (t->n_dims < 2) continue;
        bool embd = gguf_str_eq(t->name, "token_embd.weight");
        if (embd && untied) continue; /* only looked up */
        bool ok = t->type == PSI_TYPE_F32 || t->type == PSI_TYPE_F16 || t->type == PSI_TYPE_Q4_K ||
                  t->type == PSI_TYPE_Q5_K || t->type == PSI_TYPE_Q6_K ||
                  ((t->type == PSI_TYPE_Q4_0 || t->type == PSI_TYPE_Q4_1 || t->type == PSI_TYPE_Q5_0 ||
                    t->type == PSI_TYPE_Q5_1 || t->type == PSI_TYPE_Q8_0) &&
                   t->ne[1] % 8 == 0);
        if (!ok) exact = false;
    }
    gguf_close(g);
    return exact;
}

static void run_case(const char *dir, const char *json_name, const char *model_override,
                     const char *type_override)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, json_name);
    json_error_t je;
    json_t *c = json_load_file(path, 0, &je);
    CHECKF(c != NULL, "%s: %s", path, je.text);
    if (!c) return;
    const char *model_file = json_string_value(json_object_get(c, "model_file"));
    const char *type = type_override ? type_override : json_string_value(json_object_get(c, "type"));
    bool quantized = json_is_true(json_object_get(c, "quantized"));
    bool is_bf16 = type && !strcmp(type, "BF16");
    /* BF16 weights made from the F32 file are a lossy copy of the reference
     * model (NMSE ~5e-5): judge argmax and greedy ids as for quantized files */
    double thr = quantized || (type_override && is_bf16) ? 1.0 : 0.05;
    char model[8192];
    if (model_override) snprintf(model, sizeof model, "%s", model_override);
    else snprintf(model, sizeof model, "%s/%s", dir, model_file);

    json_t *tokens = json_object_get(c, "tokens");
    size_t n_tok = json_array_size(tokens);
    char *ids = tu_ids_arg(tokens);
    const char *tmp = ref_tmpdir();
    char out_path[8192];
    snprintf(out_path, sizeof out_path, "%s/%s.%s.f32", tmp, json_name, type);

    /* 1. logits of every prompt position in one batch */
    /* the files quantized here are new files under the fixtures' Llama licence */
    const char *argv[] = {tu_psi(), "logits", "-m", model, "--tokens", ids, "-o", out_path, "--kv-type", "f32",
                          "--accept-license", NULL};
    char *err = NULL;
    int st = tu_run(argv, NULL, &err);
    CHECKF(st == 0, "%s: psi logits exit %d: %s", json_name, st, err);
    free(err);
    size_t n_bytes = 0, n_ref = 0;
    char ref_path[8192];
    snprintf(ref_path, sizeof ref_path, "%s/%s", dir, json_string_value(json_object_get(c, "last_logits_file")));
    double last_maxd = INFINITY; /* max|d| at the last position, once measured */
    float *got = (float *)tu_read_file(out_path, &n_bytes);
    float *ref = (float *)tu_read_file(ref_path, &n_ref);
    size_t n_vocab = n_ref / 4;
    CHECKF(got && ref && n_bytes == n_tok * n_ref, "%s: logits file has %zu bytes, want %zu", json_name, n_bytes,
           n_tok * n_ref);
    if (got && ref && n_bytes == n_tok * n_ref) {
        const float *last = got + (n_tok - 1) * n_vocab;
        double maxd = 0, maxref = 0, se = 0, sref = 0;
        for (size_t i = 0; i < n_vocab; i++) {
            double d = fabs((double)last[i] - ref[i]);
            if (!(d <= maxd)) maxd = d;
            if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
            se += d * d;
            sref += (double)ref[i] * ref[i];
        }
        double nmse = se / sref;
        last_maxd = maxd;
        /* 2. argmax at every prompt position against llama.cpp's top-5 */
        json_t *top5 = json_object_get(c, "prompt_top5"), *margin = json_object_get(c, "prompt_margin");
        int in_top5 = 0, top1_needed = 0, top1_equal = 0;
        for (size_t p = 0; p < n_tok; p++) {
            int am = argmax(got + p * n_vocab, n_vocab);
            json_t *t5 = json_array_get(top5, p);
            bool found = false;
            for (size_t k = 0; k < json_array_size(t5); k++)
                if (json_integer_value(json_array_get(json_array_get(t5, k), 0)) == am) found = true;
            in_top5 += found;
            CHECKF(found, "%s: position %zu: psi argmax %d not in llama.cpp's top-5", json_name, p, am);
            if (json_real_value(json_array_get(margin, p)) >= thr) {
                top1_needed++;
                int top1 = (int)json_integer_value(json_array_get(json_array_get(t5, 0), 0));
                top1_equal += am == top1;
                CHECKF(am == top1, "%s: position %zu: psi argmax %d, llama.cpp top-1 %d (margin %.3f)", json_name,
                       p, am, top1, json_real_value(json_array_get(margin, p)));
            }
        }
        printf("%-28s %-5s last-position max|d| %.3g (%.2e x max|ref| %.3g), NMSE %.3g; argmax in top-5 %d/%zu, "
               "= top-1 %d/%d (margin >= %.2f)\n",
               json_name, type, maxd, maxd / maxref, maxref, nmse, in_top5, n_tok, top1_equal, top1_needed, thr);
        if (!quantized && !is_bf16)
            CHECKF(maxd <= 2e-3 * maxref, "%s: max|d| %g > 2e-3 x %g", json_name, maxd, maxref);
        else
            CHECKF(nmse <= (is_bf16 ? 1e-3 : 5e-3), "%s: NMSE %g too large", json_name, nmse);
    }
    free(got);
    free(ref);

    /* 3. greedy continuation */
    const char *argv2[] = {tu_psi(), "run", "-m", model, "--tokens", ids, "-n", "32", "--temp", "0", "--ignore-eos",
                           "--json", "--kv-type", "f32", NULL};
    char *out = NULL;
    err = NULL;
    st = tu_run(argv2, &out, &err);
    CHECKF(st == 0, "%s: psi run exit %d: %s", json_name, st, err);
    json_t *res = json_loads(out ? out : "", 0, &je);
    CHECKF(res != NULL, "%s: psi run output is not JSON", json_name);
    if (res) {
        json_t *gen = json_object_get(res, "tokens"), *want = json_object_get(c, "greedy_32"),
               *gm = json_object_get(c, "greedy_margin"), *gt5 = json_object_get(c, "greedy_top5");
        size_t k = 0, n = json_array_size(want);
        /* all 32 ids only where the float additions run in the reference's
         * order too (generic kernels, or SIMD kernels that are bit for bit
         * the generic ones for this file's matrices): the Q8_0 and Q4_0
         * SIMD kernels of matrices that are not repacked add in another order,
         * which on these random models moves some activations across a
         * Q8_0/Q8_K rounding boundary */
        const bool exact = !strcmp(child_kernels(), "generic") || simd_exact(model);
        const double gthr = last_maxd <= 1e-3 && exact ? 0.01 : thr;
        while (k < n && json_real_value(json_array_get(gm, k)) >= gthr) k++; /* first low-margin step */
        size_t same = 0;
        while (same < json_array_size(gen) && same < n &&
               json_integer_value(json_array_get(gen, same)) == json_integer_value(json_array_get(want, same)))
            same++;
        printf("%-28s greedy: %zu/%zu ids equal llama.cpp's; first step with margin < %.2f: %zu\n", json_name, same,
               n, gthr, k);
        CHECKF(json_array_size(gen) == 32, "%s: generated %zu tokens", json_name, json_array_size(gen));
        CHECKF(same >= k, "%s: greedy ids differ at step %zu, before the first low-margin step %zu", json_name,
               same, k);
        if (same < n && same == k && same < json_array_size(gen)) { /* where they part, psi's pick is a top-5 one */
            bool found = false;
            json_t *t5 = json_array_get(gt5, same);
            for (size_t j = 0; j < json_array_size(t5); j++)
                found |= json_integer_value(json_array_get(json_array_get(t5, j), 0)) ==
                         json_integer_value(json_array_get(gen, same));
            CHECKF(found, "%s: at step %zu psi's token is not in llama.cpp's top-5", json_name, same);
        }
        json_decref(res);
    }
    free(out);
    free(err);
    free(ids);
    json_decref(c);
}

static const char *make_converted(const char *dir, const char *type)
{
    static char out[8192];
    char in[8192];
    snprintf(in, sizeof in, "%s/llama2-tiny-F32.gguf", dir);
    snprintf(out, sizeof out, "%s/llama2-tiny-%s.gguf", ref_tmpdir(), type);
    const char *argv[] = {tu_psi(), "quantize", in, out, type, NULL};
    char *err = NULL;
    int st = tu_run(argv, NULL, &err);
    CHECKF(st == 0, "psi quantize %s exit %d: %s", type, st, err);
    free(err);
    return st == 0 ? out : NULL;
}

/* psi quantize llama2-tiny-F32 → `type`; every tensor's bytes must hash to
 * what llama.cpp's llama-quantize wrote for `file`
 * (llama2-tiny-quantized-tensors.json). Returns the path of psi's file. */
static const char *make_hashed(const char *dir, const char *type, const char *file)
{
    static char out[8192];
    char in[8192], sums[8192];
    snprintf(in, sizeof in, "%s/llama2-tiny-F32.gguf", dir);
    snprintf(sums, sizeof sums, "%s/llama2-tiny-quantized-tensors.json", dir);
    snprintf(out, sizeof out, "%s/psi-%s", ref_tmpdir(), file);
    const char *argv[] = {tu_psi(), "quantize", in, out, type, NULL};
    char *err = NULL;
    int st = tu_run(argv, NULL, &err);
    CHECKF(st == 0, "psi quantize %s exit %d: %s", type, st, err);
    free(err);
    json_t *j = json_load_file(sums, 0, NULL);
    json_t *want = json_object_get(json_object_get(j, "files"), file);
    CHECKF(json_object_size(want) > 0, "%s: no digests for %s", sums, file);
    gguf *g = NULL;
    char msg[512];
    CHECKF(gguf_open(out, &g, msg, sizeof msg) == PSI_OK, "%s", msg);
    CHECK(sodium_init() >= 0);
    int same = 0;
    for (uint64_t i = 0; g && i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        char name[256], hex[65];
        unsigned char h[crypto_hash_sha256_BYTES];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        crypto_hash_sha256(h, t->data, t->nbytes);
        sodium_bin2hex(hex, sizeof hex, h, sizeof h);
        json_t *e = json_object_get(want, name);
        const char *ref = json_string_value(json_object_get(e, "sha256"));
        const char *rtype = json_string_value(json_object_get(e, "type"));
        const char *tn = psi_type_name(t->type);
        CHECKF(rtype && tn && !strcmp(rtype, tn), "%s tensor %s: type %s, llama-quantize wrote %s", type, name,
               tn ? tn : "?", rtype ? rtype : "?");
        CHECKF(ref && !strcmp(ref, hex), "%s tensor %s differs from llama-quantize's", type, name);
        same += ref && !strcmp(ref, hex);
    }
    printf("psi quantize %s: %d/%zu tensors byte-identical to llama.cpp's llama-quantize output\n", type, same,
           json_object_size(want));
    CHECK(g && g->n_tensors == json_object_size(want));
    gguf_close(g);
    json_decref(j);
    return st == 0 ? out : NULL;
}

/* psi quantize llama2-tiny-F32 → Q4_K_M against llama-quantize's own file
 * (shipped): the same type for every tensor, the same bytes, compared
 * tensor by tensor. Prints how many match, per type. */
static void check_q4_k_m(const char *dir)
{
    char in[8192], ref_path[8192], out[8192], msg[512];
    snprintf(in, sizeof in, "%s/llama2-tiny-F32.gguf", dir);
    snprintf(ref_path, sizeof ref_path, "%s/llama2-tiny-Q4_K_M.gguf", dir);
    snprintf(out, sizeof out, "%s/psi-llama2-tiny-Q4_K_M.gguf", ref_tmpdir());
    const char *argv[] = {tu_psi(), "quantize", in, out, "q4_k_m", NULL};
    char *err = NULL;
    int st = tu_run(argv, NULL, &err);
    CHECKF(st == 0, "psi quantize q4_k_m exit %d: %s", st, err);
    free(err);
    gguf *ours = NULL, *ref = NULL;
    CHECKF(gguf_open(out, &ours, msg, sizeof msg) == PSI_OK, "%s", msg);
    CHECKF(gguf_open(ref_path, &ref, msg, sizeof msg) == PSI_OK, "%s", msg);
    if (!ours || !ref) {
        gguf_close(ours);
        gguf_close(ref);
        return;
    }
    static const uint32_t kinds[] = {PSI_TYPE_F32, PSI_TYPE_Q4_K, PSI_TYPE_Q6_K};
    int same = 0, same_kind[3] = {0}, n_kind[3] = {0};
    for (uint64_t i = 0; i < ref->n_tensors; i++) {
        const gguf_tensor *r = &ref->tensors[i];
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)r->name.len, r->name.ptr);
        int64_t k = gguf_find_tensor(ours, name);
        CHECKF(k >= 0, "q4_k_m: psi's file has no tensor %s", name);
        if (k < 0) continue;
        const gguf_tensor *t = &ours->tensors[k];
        CHECKF(t->type == r->type, "q4_k_m tensor %s: type %s, llama-quantize wrote %s", name,
               psi_type_name(t->type), psi_type_name(r->type));
        bool eq = t->type == r->type && t->nbytes == r->nbytes && !memcmp(t->data, r->data, r->nbytes);
        CHECKF(eq, "q4_k_m tensor %s (%s) differs from llama-quantize's", name, psi_type_name(r->type));
        same += eq;
        for (int c = 0; c < 3; c++)
            if (r->type == kinds[c]) {
                n_kind[c]++;
                same_kind[c] += eq;
            }
    }
    printf("psi quantize q4_k_m: %d/%llu tensors byte-identical to llama-quantize's (F32 %d/%d, Q4_K %d/%d, "
           "Q6_K %d/%d)\n",
           same, (unsigned long long)ref->n_tensors, same_kind[0], n_kind[0], same_kind[1], n_kind[1],
           same_kind[2], n_kind[2]);
    CHECK(ours->n_tensors == ref->n_tensors);
    int64_t ft = gguf_find_key(ours, "general.file_type");
    uint32_t v = 0;
    CHECK(ft >= 0 && gguf_get_u32(ours, "general.file_type", &v, NULL, 0) == PSI_OK && v == 15);
    gguf_close(ours);
    gguf_close(ref);
}

/* The types no llama.cpp reference file covers (Q4_1, Q5_0, Q5_1, Q5_K,
 * Q6_K as the main type), end to end: psi quantize the F32 model, run the
 * story prompt, and compare the last-position logits with llama.cpp's F32
 * ones. The model is random and touchy (llama.cpp's own Q4_K_M is at NMSE
 * 0.045, Q4_0 at 0.11), so the bound only catches a broken kernel or
 * layout, which lands near NMSE 1. (Not the generic path's logits bit for
 * bit even where the matrix kernels are exact: the SIMD attention kernel
 * adds in its own order, and this random model amplifies that — 0.52 at
 * the last position of the Q4_1 file, none with the generic attention.) */
static void check_other_types(const char *dir)
{
    static const char *const kinds[] = {"q4_1", "q5_0", "q5_1", "q5_k_m", "q6_k"};
    char path[8192];
    snprintf(path, sizeof path, "%s/llama2-tiny-F32.story.json", dir);
    json_t *c = json_load_file(path, 0, NULL);
    CHECKF(c != NULL, "%s", path);
    if (!c) return;
    snprintf(path, sizeof path, "%s/%s", dir, json_string_value(json_object_get(c, "last_logits_file")));
    size_t n_ref = 0;
    float *ref = (float *)tu_read_file(path, &n_ref);
    size_t n_vocab = n_ref / 4;
    char *ids = tu_ids_arg(json_object_get(c, "tokens"));
    for (size_t k = 0; ref && k < sizeof kinds / sizeof kinds[0]; k++) {
        const char *model = make_converted(dir, kinds[k]);
        if (!model) continue;
        char out_path[8192];
        snprintf(out_path, sizeof out_path, "%s/other-%s.f32", ref_tmpdir(), kinds[k]);
        /* the files quantized here are new files under the fixtures' Llama licence */
        const char *argv[] = {tu_psi(), "logits", "-m", model, "--tokens", ids, "-o", out_path, "--kv-type", "f32",
                              "--accept-license", NULL};
        char *err = NULL;
        int st = tu_run(argv, NULL, &err);
        CHECKF(st == 0, "%s: psi logits exit %d: %s", kinds[k], st, err);
        free(err);
        size_t n_bytes = 0;
        float *got = (float *)tu_read_file(out_path, &n_bytes);
        CHECKF(got && n_bytes >= n_ref && n_bytes % n_ref == 0, "%s: %zu bytes of logits", kinds[k], n_bytes);
        if (got && n_bytes >= n_ref && n_bytes % n_ref == 0) {
            const float *last = got + (n_bytes - n_ref) / 4;
            double se = 0, sr = 0;
            for (size_t i = 0; i < n_vocab; i++) {
                se += ((double)last[i] - ref[i]) * ((double)last[i] - ref[i]);
                sr += (double)ref[i] * ref[i];
            }
            printf("psi quantize %-6s: last-position NMSE vs llama.cpp's F32 logits %.3g\n", kinds[k], se / sr);
            CHECKF(se / sr <= 0.15, "%s: NMSE %g vs F32", kinds[k], se / sr);
        }
        free(got);
    }
    free(ids);
    free(ref);
    json_decref(c);
}

int main(void)
{
    if (skip_unsupported_path()) return 77;
    const char *emu = getenv("PSI_TEST_EMULATED");
    if (emu && *emu) {
        int rc = check_emulated(emu);
        if (rc == 77) return 77;
        if (!rc) return tu_finish("test_reference");
    }
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", tu_data("reference"));
    DIR *d = opendir(dir);
    CHECKF(d != NULL, "cannot open %s", dir);
    if (!d) return tu_finish("test_reference");
    char names[64][256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) {
        size_t len = strlen(e->d_name);
        if (len > 5 && !strcmp(e->d_name + len - 5, ".json") && strchr(e->d_name, '.') != strrchr(e->d_name, '.'))
            snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    int ran = 0;
    for (int i = 0; i < n; i++) {
        char model[8192];
        json_t *c = json_load_file((snprintf(model, sizeof model, "%s/%s", dir, names[i]), model), 0, NULL);
        char mf_buf[256] = "";
        const char *mf = c ? json_string_value(json_object_get(c, "model_file")) : NULL;
        if (mf) snprintf(mf_buf, sizeof mf_buf, "%s", mf);
        json_decref(c);
        mf = mf ? mf_buf : NULL;
        snprintf(model, sizeof model, "%s/%s", dir, mf_buf);
        if (mf && !file_exists(model) && !strcmp(mf, "llama2-tiny-Q8_0.gguf")) {
            /* not shipped: made by psi's bit-exact Q8_0 quantizer from the F32 file */
            const char *q8 = make_hashed(dir, "q8_0", "llama2-tiny-Q8_0.gguf");
            if (q8) {
                run_case(dir, names[i], q8, NULL);
                ran++;
            }
            continue;
        }
        CHECKF(mf && file_exists(model), "%s: model %s missing", names[i], model);
        run_case(dir, names[i], NULL, NULL);
        ran++;
        if (!strcmp(names[i], "llama2-tiny-F32.story.json")) {
            /* the same case on psi's F16 and BF16 conversions of the F32 file:
             * exercises the F16 and BF16 matrix paths end to end */
            static const char *const kinds[2] = {"F16", "BF16"};
            for (int k = 0; k < 2; k++) {
                const char *conv = make_converted(dir, kinds[k]);
                if (conv) run_case(dir, names[i], conv, kinds[k]);
            }
        }
    }
    /* psi's Q4_0 and Q4_K_M quantizations of the F32 file, byte for byte */
    make_hashed(dir, "q4_0", "llama2-tiny-Q4_0.gguf");
    check_q4_k_m(dir);
    check_other_types(dir);
    CHECKF(ran >= 6, "only %d reference cases ran", ran);
    return tu_finish("test_reference");
}
