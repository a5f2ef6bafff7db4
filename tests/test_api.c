/*
 * test_api.c — the public API's contracts: status strings, NULL frees, bad
 * arguments, context limits, logits bookkeeping, thread-count invariance,
 * the sampler (determinism, top-k/top-p/min-p cuts), allocation failures
 * during load (no crash, no leak: run under ASan), and how the weights are
 * held (read in once, or mapped).
 */
#define _GNU_SOURCE /* sched_setaffinity */
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "util.h"

#include "psi.h"

static void test_basics(void)
{
    for (int rc = PSI_OK; rc <= PSI_ERR_BUFFER_SMALL; rc++) CHECK(psi_status_str((psi_status)rc)[0] != 0);
    CHECK(strcmp(psi_status_str((psi_status)999), "unknown status") == 0);
    CHECK(psi_version()[0] == '0');
    CHECK(psi_cpu_count() >= 1);
    CHECK(!strcmp(psi_type_name(PSI_TYPE_Q6_K), "Q6_K"));
    CHECK(psi_type_name(12345) == NULL);
    psi_model_free(NULL);
    psi_context_free(NULL);
    psi_sampler_free(NULL);
    psi_gguf_free(NULL);
    /* NULL handles: an error or an empty answer, never a crash (13 of these
     * dereferenced the handle until session 18) */
    CHECK(psi_model_n_vocab(NULL) == 0 && psi_model_n_ctx_train(NULL) == 0 && psi_model_n_embd(NULL) == 0 &&
          psi_model_n_layer(NULL) == 0 && !psi_model_add_bos(NULL) && !psi_token_is_eog(NULL, 2) &&
          psi_token_bos(NULL) == -1 && psi_token_eos(NULL) == -1);
    CHECK(psi_context_n_ctx(NULL) == 0 && psi_context_n_past(NULL) == 0 && psi_context_n_seq(NULL) == 0 &&
          psi_context_seq_n_past(NULL, 0) == -1);
    int32_t one = 1;
    psi_batch_token bt = {1, 0, true};
    CHECK(psi_context_truncate(NULL, 0) == PSI_ERR_INVALID_ARG &&
          psi_context_seq_truncate(NULL, 0, 0) == PSI_ERR_INVALID_ARG);
    CHECK(psi_context_decode(NULL, &one, 1, false) == PSI_ERR_INVALID_ARG &&
          psi_context_decode_batch(NULL, &bt, 1) == PSI_ERR_INVALID_ARG);
    CHECK(psi_context_logits(NULL, 0) == NULL && psi_context_batch_logits(NULL, 0) == NULL);
    psi_gguf_print(NULL, stdout, 3);
    char err[512] = "";
    psi_model *m = (psi_model *)1;
    CHECK(psi_model_load("/nonexistent/model.gguf", NULL, &m, err, sizeof err) == PSI_ERR_IO);
    CHECK(m == NULL);
    CHECKF(strstr(err, "/nonexistent/model.gguf") != NULL, "err: %s", err);
    CHECK(psi_model_load(tu_data("models/stories260K-reference.txt"), NULL, &m, err, sizeof err) == PSI_ERR_FORMAT);
    CHECKF(strstr(err, "bad magic") != NULL, "err: %s", err);
}

static psi_model *load(const char *rel)
{
    char err[512];
    psi_model *m = NULL;
    psi_status rc = psi_model_load(tu_data(rel), NULL, &m, err, sizeof err);
    CHECKF(rc == PSI_OK, "%s: %s", rel, err);
    return m;
}

static void test_context(void)
{
    psi_model *m = load("models/stories260K.gguf");
    if (!m) return;
    CHECK(psi_model_n_vocab(m) == 512);
    CHECK(psi_model_n_layer(m) == 5);
    CHECK(psi_model_n_embd(m) == 64);
    CHECK(psi_token_bos(m) == 1 && psi_token_eos(m) == 2);
    CHECK(psi_token_is_eog(m, 2) && !psi_token_is_eog(m, 3));
    const char *arch = psi_model_meta_str(m, "general.architecture");
    CHECK(arch && !strcmp(arch, "llama"));
    CHECK(psi_model_meta_str(m, "llama.block_count") == NULL); /* not a string */
    CHECK(psi_model_meta_str(m, "no.such.key") == NULL);

    char err[512];
    psi_context_params cp = psi_context_default_params();
    cp.n_ctx = 8;
    cp.n_threads = 1;
    psi_context *ctx = NULL;
    cp.kv_type = PSI_TYPE_Q4_0;
    CHECK(psi_context_new(m, &cp, &ctx, err, sizeof err) == PSI_ERR_UNSUPPORTED && ctx == NULL);
    cp.kv_type = PSI_TYPE_F32;
    cp.n_ctx = -1;
    CHECK(psi_context_new(m, &cp, &ctx, err, sizeof err) == PSI_ERR_INVALID_ARG);
    /* a KV cache larger than the machine's memory is refused at once, not
     * allocated (it fit the allocator's overcommit and died in the OOM
     * killer once the sequences grew): stories260K holds 5 x 32 F32 values
     * per token in K and again in V, 1280 bytes; ask for 1.5 x the memory */
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    double tokens = 1.5 * (double)pages * (double)page / 1280.0;
    cp.n_ctx = 1 << 20;
    cp.n_seq = (int32_t)(tokens / cp.n_ctx) + 1;
    if (cp.n_seq <= 4096) {
        err[0] = 0;
        CHECKF(psi_context_new(m, &cp, &ctx, err, sizeof err) == PSI_ERR_NO_MEMORY && !ctx, "%d x %d: %s",
               cp.n_seq, cp.n_ctx, err);
        CHECKF(strstr(err, "does not fit in the") && strstr(err, "GiB of memory"), "message: %s", err);
    }
    cp.n_seq = 1;
    cp.n_ctx = 8;
    CHECK(psi_context_new(m, &cp, &ctx, err, sizeof err) == PSI_OK);
    if (!ctx) {
        psi_model_free(m);
        return;
    }
    CHECK(psi_context_n_ctx(ctx) == 8 && psi_context_n_past(ctx) == 0);
    CHECK(psi_context_logits(ctx, -1) == NULL); /* nothing decoded yet */
    int32_t toks[9] = {1, 403, 407, 261, 378, 432, 383, 286, 261};
    int32_t bad[2] = {1, 512};
    CHECK(psi_context_decode(ctx, bad, 2, false) == PSI_ERR_INVALID_ARG);
    CHECKF(strstr(psi_context_errmsg(ctx), "512") != NULL, "%s", psi_context_errmsg(ctx));
    CHECK(psi_context_decode(ctx, toks, 0, false) == PSI_ERR_INVALID_ARG);
    CHECK(psi_context_decode(ctx, toks, 9, false) == PSI_ERR_CONTEXT_FULL);
    CHECK(psi_context_n_past(ctx) == 0);

    /* all_logits: every row; last-only: only the last row */
    CHECK(psi_context_decode(ctx, toks, 5, true) == PSI_OK);
    CHECK(psi_context_n_past(ctx) == 5);
    float row4[512];
    const float *l4 = psi_context_logits(ctx, 4);
    CHECK(l4 && psi_context_logits(ctx, 0) && !psi_context_logits(ctx, 5));
    if (l4) memcpy(row4, l4, sizeof row4);
    CHECK(psi_context_logits(ctx, -1) == l4);
    /* incremental decode gives the same logits as the batch */
    CHECK(psi_context_truncate(ctx, 4) == PSI_OK);
    CHECK(psi_context_truncate(ctx, 6) == PSI_ERR_INVALID_ARG);
    CHECK(psi_context_decode(ctx, toks + 4, 1, false) == PSI_OK);
    const float *inc = psi_context_logits(ctx, -1);
    float maxd = 0;
    for (int i = 0; inc && i < 512; i++) maxd = fmaxf(maxd, fabsf(inc[i] - row4[i]));
    CHECKF(inc && maxd < 1e-4f, "incremental vs batch max diff %g", maxd);
    CHECK(psi_context_logits(ctx, 0) == inc); /* one-token batch */
    CHECK(psi_context_decode(ctx, toks + 5, 3, false) == PSI_OK);
    CHECK(psi_context_decode(ctx, toks, 1, false) == PSI_ERR_CONTEXT_FULL);
    psi_context_free(ctx);

    /* thread count does not change results: each row is one thread's sum */
    float ref[512];
    for (int nt = 1; nt <= 3; nt++) {
        cp.n_threads = nt;
        cp.n_ctx = 16;
        CHECK(psi_context_new(m, &cp, &ctx, err, sizeof err) == PSI_OK);
        if (!ctx) continue;
        CHECK(psi_context_decode(ctx, toks, 9, false) == PSI_OK);
        const float *l = psi_context_logits(ctx, -1);
        if (nt == 1) memcpy(ref, l, sizeof ref);
        else CHECKF(!memcmp(ref, l, sizeof ref), "logits with %d threads differ from 1 thread", nt);
        psi_context_free(ctx);
    }
    /* F16 KV cache: close to F32 */
    cp.kv_type = PSI_TYPE_F16;
    CHECK(psi_context_new(m, &cp, &ctx, err, sizeof err) == PSI_OK);
    if (ctx) {
        CHECK(psi_context_decode(ctx, toks, 9, false) == PSI_OK);
        const float *l = psi_context_logits(ctx, -1);
        maxd = 0;
        for (int i = 0; i < 512; i++) maxd = fmaxf(maxd, fabsf(l[i] - ref[i]));
        CHECKF(maxd < 0.05f, "F16 KV cache differs by %g", maxd);
        psi_context_free(ctx);
    }
    psi_model_free(m);
}

/* A batch longer than the internal slice size gives the same logits as
 * feeding the tokens one at a time, in both logits modes. */
static void test_long_batch(void)
{
    psi_model *m = load("models/stories260K.gguf");
    if (!m) return;
    enum { N = 600 };
    int32_t toks[N];
    for (int i = 0; i < N; i++) toks[i] = i ? 3 + (int32_t)((i * 131u) % 509u) : 1;
    psi_context_params cp = psi_context_default_params();
    cp.n_ctx = N;
    cp.n_threads = 2;
    char err[256];
    psi_context *a = NULL, *b = NULL;
    CHECK(psi_context_new(m, &cp, &a, err, sizeof err) == PSI_OK);
    CHECK(psi_context_new(m, &cp, &b, err, sizeof err) == PSI_OK);
    if (a && b) {
        CHECK(psi_context_decode(a, toks, N, true) == PSI_OK);
        float maxd = 0;
        for (int i = 0; i < N; i++) {
            CHECK(psi_context_decode(b, &toks[i], 1, false) == PSI_OK);
            const float *x = psi_context_logits(a, i), *y = psi_context_logits(b, -1);
            for (int j = 0; x && y && j < 512; j++) maxd = fmaxf(maxd, fabsf(x[j] - y[j]));
        }
        CHECKF(maxd < 1e-4f, "600-token batch vs one at a time: max diff %g", maxd);
        float last[512];
        memcpy(last, psi_context_logits(a, N - 1), sizeof last);
        CHECK(psi_context_truncate(a, 0) == PSI_OK);
        CHECK(psi_context_decode(a, toks, N, false) == PSI_OK && psi_context_n_past(a) == N);
        CHECK(!memcmp(psi_context_logits(a, -1), last, sizeof last));
    }
    psi_context_free(a);
    psi_context_free(b);
    psi_model_free(m);
}

static void test_tokenize_api(void)
{
    psi_model *m = load("models/stories260K.gguf");
    if (!m) return;
    int32_t ids[8], n = 0;
    CHECK(psi_tokenize(m, "Once upon a time", 16, true, false, ids, 2, &n) == PSI_ERR_BUFFER_SMALL && n == 5);
    CHECK(psi_tokenize(m, "Once upon a time", 16, true, false, ids, 8, &n) == PSI_OK && n == 5);
    CHECK(ids[0] == 1 && ids[1] == 403 && ids[4] == 378);
    char buf[64];
    size_t len = 0;
    CHECK(psi_detokenize(m, ids, n, buf, sizeof buf, &len) == PSI_OK);
    CHECKF(!strcmp(buf, "Once upon a time") && len == 16, "detokenized: [%s]", buf);
    CHECK(psi_detokenize(m, ids, n, buf, 4, &len) == PSI_ERR_BUFFER_SMALL && len == 16);
    CHECK(psi_token_to_piece(m, -1, 99999, buf, sizeof buf) < 0);
    psi_model_free(m);
}

static int32_t sample_n(const psi_sampler_params *p, const float *logits, int32_t n_vocab, int32_t *hist, int n)
{
    psi_sampler *s = NULL;
    CHECK(psi_sampler_new(p, &s) == PSI_OK);
    int32_t last = -1;
    for (int i = 0; i < n && s; i++) {
        last = psi_sampler_sample(s, logits, n_vocab);
        if (hist && last >= 0) hist[last]++;
    }
    psi_sampler_free(s);
    return last;
}

/* OpenAI's penalties over accepted tokens, and psi_logprobs. */
/* The chain as it was first written — sort every token, cut, draw in
 * sorted order — with the sampler's generator (splitmix64, 53-bit
 * uniforms): psi_sampler_sample, which sorts only what can survive the
 * cuts, must draw the same tokens whenever a cut is on; with none it draws
 * in id order, checked against the softmax's frequencies. */
typedef struct ref_cand {
    float logit;
    int32_t id;
} ref_cand;

static int ref_cmp(const void *a, const void *b)
{
    const ref_cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static double ref_uniform(uint64_t *st)
{
    uint64_t z = (*st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
}

static int32_t ref_sample(const psi_sampler_params *p, uint64_t *st, const float *logits, int32_t n_vocab, ref_cand *c)
{
    int32_t n = 0;
    for (int32_t i = 0; i < n_vocab; i++)
        if (!isnan(logits[i])) c[n++] = (ref_cand){logits[i], i};
    qsort(c, (size_t)n, sizeof *c, ref_cmp);
    if (p->top_k > 0 && p->top_k < n) n = p->top_k;
    double maxl = c[0].logit, sum = 0;
    for (int32_t i = 0; i < n; i++) sum += exp((double)c[i].logit - maxl);
    if (p->top_p < 1.0f) {
        double cum = 0;
        for (int32_t i = 0; i < n; i++) {
            cum += exp((double)c[i].logit - maxl) / sum;
            if (cum >= p->top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0.0f) {
        int32_t keep = 1;
        while (keep < n && c[keep].logit >= maxl + log((double)p->min_p)) keep++;
        n = keep;
    }
    double total = 0;
    for (int32_t i = 0; i < n; i++) total += exp(((double)c[i].logit - maxl) / p->temperature);
    double r = ref_uniform(st) * total;
    for (int32_t i = 0; i < n; i++) {
        r -= exp(((double)c[i].logit - maxl) / p->temperature);
        if (r < 0) return c[i].id;
    }
    return c[n - 1].id;
}

static void test_sampler_chain_reference(void)
{
    enum { V = 3000 };
    static float logits[V];
    static ref_cand cands[V];
    static const struct { int32_t k; float top_p, min_p; } cfg[] = {
        {1, 1, 0}, {5, 1, 0}, {40, 0.95f, 0.05f}, {V - 1, 1, 0}, {V + 7, 0.9f, 0}, {0, 0.9f, 0},
        {0, 1, 0.05f}, {0, 0.5f, 0.01f}, {0, 0.999f, 0}, {64, 0.3f, 0}, {0, 0.0f, 0},
    };
    uint64_t rs = 12345;
    int mismatches = 0, runs = 0;
    for (int shape = 0; shape < 4; shape++) {
        for (int32_t i = 0; i < V; i++) {
            double u = ref_uniform(&rs);
            /* flat, peaked, coarse (many ties), with NaN and -inf holes */
            logits[i] = shape == 0 ? (float)(u * 2) : shape == 1 ? (float)(u * 30) : shape == 2 ? (float)(int)(u * 6)
                        : (i % 17 == 0 ? NAN : i % 29 == 0 ? -INFINITY : (float)(u * 12));
        }
        for (size_t ci = 0; ci < sizeof cfg / sizeof cfg[0]; ci++)
            for (int ti = 0; ti < 2; ti++) {
                psi_sampler_params p = psi_sampler_default_params();
                p.top_k = cfg[ci].k;
                p.top_p = cfg[ci].top_p;
                p.min_p = cfg[ci].min_p;
                p.temperature = ti ? 1.3f : 0.7f;
                p.seed = 99 + ci;
                psi_sampler *s = NULL;
                CHECK(psi_sampler_new(&p, &s) == PSI_OK);
                uint64_t st = p.seed;
                for (int d = 0; d < 50 && s; d++) {
                    int32_t got = psi_sampler_sample(s, logits, V), want = ref_sample(&p, &st, logits, V, cands);
                    if (got != want) mismatches++;
                    runs++;
                }
                psi_sampler_free(s);
            }
    }
    CHECKF(mismatches == 0, "sampler vs the sort-everything chain: %d of %d draws differ", mismatches, runs);
    /* no cut: frequencies of a 5-token softmax (plus a NaN never drawn) */
    const float lg[6] = {0.0f, 1.0f, NAN, 2.0f, -1.0f, 0.5f};
    psi_sampler_params p = psi_sampler_default_params();
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0;
    p.temperature = 1;
    int32_t hist[6] = {0};
    enum { DRAWS = 40000 };
    sample_n(&p, lg, 6, hist, DRAWS);
    double z = 0;
    for (int i = 0; i < 6; i++) z += isnan(lg[i]) ? 0 : exp(lg[i]);
    bool ok = hist[2] == 0;
    for (int i = 0; i < 6; i++) {
        if (isnan(lg[i])) continue;
        double pr = exp(lg[i]) / z, sd = sqrt(DRAWS * pr * (1 - pr));
        if (fabs(hist[i] - DRAWS * pr) > 5 * sd) ok = false;
    }
    CHECKF(ok, "no-cut draws off the softmax: %d %d %d %d %d %d", hist[0], hist[1], hist[2], hist[3], hist[4], hist[5]);
}

static void test_sampler_penalties_logprobs(void)
{
    float logits[5] = {2.0f, 1.9f, 0.0f, -1.0f, 1.0f};
    psi_sampler_params p = psi_sampler_default_params();
    p.temperature = 0;
    p.frequency_penalty = 0.5f;
    psi_sampler *s = NULL;
    CHECK(psi_sampler_new(&p, &s) == PSI_OK);
    CHECK(psi_sampler_sample(s, logits, 5) == 0);
    CHECK(psi_sampler_accept(s, 0) == PSI_OK);
    CHECK(psi_sampler_sample(s, logits, 5) == 1); /* 2.0 - 0.5 < 1.9 */
    CHECK(psi_sampler_accept(s, 1) == PSI_OK && psi_sampler_accept(s, 1) == PSI_OK);
    CHECK(psi_sampler_sample(s, logits, 5) == 0); /* 1.5 > 1.9 - 1.0 */
    CHECK(psi_sampler_accept(s, 99) == PSI_OK);   /* ids past the vocabulary are ignored by sample */
    CHECK(psi_sampler_sample(s, logits, 5) == 0);
    CHECK(logits[0] == 2.0f);                     /* the caller's logits are untouched */
    psi_sampler_free(s);
    p.frequency_penalty = 0;
    p.presence_penalty = 1.0f;
    CHECK(psi_sampler_new(&p, &s) == PSI_OK);
    for (int i = 0; i < 5; i++) psi_sampler_accept(s, 0);
    CHECK(psi_sampler_sample(s, logits, 5) == 1); /* presence counts once: 1.0 < 1.9 */
    psi_sampler_accept(s, 1);
    CHECK(psi_sampler_sample(s, logits, 5) == 0); /* 1.0 vs 0.9 */
    psi_sampler_free(s);
    p.presence_penalty = NAN;
    CHECK(psi_sampler_new(&p, &s) == PSI_ERR_INVALID_ARG && !s);
    CHECK(psi_sampler_accept(NULL, 1) == PSI_ERR_INVALID_ARG);

    /* logit bias: after the penalties, greedy too; replaced, cleared, checked */
    p.presence_penalty = 1.0f;
    CHECK(psi_sampler_new(&p, &s) == PSI_OK);
    int32_t ids[3] = {0, 2, 77};
    float bias[3] = {-100.0f, 1.95f, 50.0f}; /* id 77 is past the vocabulary: skipped */
    CHECK(psi_sampler_set_logit_bias(s, ids, bias, 3) == PSI_OK);
    CHECK(psi_sampler_sample(s, logits, 5) == 2); /* 0 + 1.95 > 1.9 */
    psi_sampler_accept(s, 2);
    CHECK(psi_sampler_sample(s, logits, 5) == 1); /* 1.95 - 1.0 < 1.9 */
    CHECK(logits[0] == 2.0f && logits[2] == 0.0f);
    CHECK(psi_sampler_set_logit_bias(s, ids + 1, bias + 1, 1) == PSI_OK); /* replaces: id 0 free again */
    psi_sampler_accept(s, 1);
    CHECK(psi_sampler_sample(s, logits, 5) == 0);
    psi_sampler_accept(s, 0); /* penalised now: 1.0, 0.9, -1.0, -1.0, 1.0 */
    int32_t four = 4;
    float small = 0.05f;
    CHECK(psi_sampler_set_logit_bias(s, &four, &small, 1) == PSI_OK);
    CHECK(psi_sampler_sample(s, logits, 5) == 4);
    CHECK(psi_sampler_set_logit_bias(s, NULL, NULL, 0) == PSI_OK); /* cleared: the tie goes to the lower id */
    CHECK(psi_sampler_sample(s, logits, 5) == 0);
    int32_t neg = -1;
    float nan_bias = NAN;
    CHECK(psi_sampler_set_logit_bias(s, &neg, bias, 1) == PSI_ERR_INVALID_ARG);
    CHECK(psi_sampler_set_logit_bias(s, ids, &nan_bias, 1) == PSI_ERR_INVALID_ARG);
    CHECK(psi_sampler_set_logit_bias(s, NULL, bias, 1) == PSI_ERR_INVALID_ARG);
    CHECK(psi_sampler_set_logit_bias(NULL, ids, bias, 1) == PSI_ERR_INVALID_ARG);
    psi_sampler_free(s);

    float lp;
    psi_token_logprob top[3];
    CHECK(psi_logprobs(logits, 5, 2, &lp, top, 3) == PSI_OK);
    double sum = 0;
    for (int i = 0; i < 5; i++) sum += exp((double)logits[i]);
    CHECKF(fabs(lp - (0.0 - log(sum))) < 1e-5, "logprob %g", (double)lp);
    CHECK(top[0].token == 0 && top[1].token == 1 && top[2].token == 4);
    CHECK(fabs(top[0].logprob - (2.0 - log(sum))) < 1e-5 && top[0].logprob >= top[1].logprob);
    float tie[4] = {1, 3, 3, 0};
    CHECK(psi_logprobs(tie, 4, 0, &lp, top, 2) == PSI_OK && top[0].token == 1 && top[1].token == 2);
    CHECK(fabs(exp(top[0].logprob) + exp(top[1].logprob) + exp(lp) + exp(-3.0 + top[0].logprob) - 1.0) < 1e-5);
    CHECK(psi_logprobs(logits, 5, 5, &lp, top, 1) == PSI_ERR_INVALID_ARG);
    CHECK(psi_logprobs(logits, 5, 0, &lp, top, 6) == PSI_ERR_INVALID_ARG);
    CHECK(psi_logprobs(logits, 5, 0, &lp, NULL, 0) == PSI_OK);
}

static void test_sampler(void)
{
    float logits[8] = {1.0f, 3.0f, 3.0f, 2.0f, 0.5f, -1.0f, 2.9f, NAN};
    psi_sampler_params p = psi_sampler_default_params();
    p.temperature = 0;
    CHECK(sample_n(&p, logits, 7, NULL, 1) == 1); /* greedy, lowest id on ties */
    /* greedy against a plain scan (first id of the largest; NaN never wins
     * but at id 0; infinities) over lengths around its 8 lanes */
    {
        float big[203];
        uint32_t r = 7;
        for (int round = 0; round < 300; round++) {
            int32_t n = 1 + round % 203;
            for (int32_t i = 0; i < n; i++) {
                r = r * 1103515245u + 12345u;
                big[i] = (float)((r >> 16) % 9) - 4.0f; /* many ties */
            }
            r = r * 1103515245u + 12345u;
            int32_t at = (int32_t)((r >> 16) % (uint32_t)n);
            static const float special[5] = {NAN, INFINITY, -INFINITY, NAN, 4.0f};
            if (round % 3) big[at] = special[round % 5];
            if (round % 7 == 0) big[0] = NAN;
            int32_t want = 0;
            for (int32_t i = 1; i < n; i++)
                if (big[i] > big[want]) want = i;
            int32_t got = sample_n(&p, big, n, NULL, 1);
            CHECKF(got == want, "greedy over %d logits: %d, want %d", n, got, want);
        }
    }

    /* same seed, same sequence; different seed, different sequence */
    p = psi_sampler_default_params();
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0;
    p.seed = 42;
    psi_sampler *a = NULL, *b = NULL, *c = NULL;
    psi_sampler_new(&p, &a);
    psi_sampler_new(&p, &b);
    p.seed = 43;
    psi_sampler_new(&p, &c);
    int same_ab = 0, same_ac = 0;
    for (int i = 0; i < 200; i++) {
        int32_t x = psi_sampler_sample(a, logits, 7), y = psi_sampler_sample(b, logits, 7),
                z = psi_sampler_sample(c, logits, 7);
        same_ab += x == y;
        same_ac += x == z;
    }
    CHECK(same_ab == 200);
    CHECK(same_ac < 200);
    psi_sampler_free(a);
    psi_sampler_free(b);
    psi_sampler_free(c);

    /* top-k 2: only ids 1 and 2 ever; roughly equal */
    int32_t hist[8] = {0};
    p.seed = 7;
    p.top_k = 2;
    sample_n(&p, logits, 7, hist, 2000);
    CHECK(hist[1] + hist[2] == 2000 && hist[1] > 800 && hist[2] > 800);
    /* min-p 0.5: keeps logits within log(2) of the max: ids 1, 2, 6 */
    memset(hist, 0, sizeof hist);
    p.top_k = 0;
    p.min_p = 0.5f;
    sample_n(&p, logits, 7, hist, 2000);
    CHECK(hist[1] + hist[2] + hist[6] == 2000 && hist[6] > 0);
    /* top-p: probability mass of ids 1,2 is ~0.48 of the total; p=0.3 keeps 1 and 2 only */
    memset(hist, 0, sizeof hist);
    p.min_p = 0;
    p.top_p = 0.3f;
    sample_n(&p, logits, 7, hist, 2000);
    CHECK(hist[1] + hist[2] == 2000);
    /* very low temperature concentrates on the top tokens */
    memset(hist, 0, sizeof hist);
    p.top_p = 1.0f;
    p.temperature = 0.01f;
    sample_n(&p, logits, 7, hist, 500);
    CHECK(hist[1] + hist[2] == 500);
    /* bad arguments */
    psi_sampler *s = NULL;
    CHECK(psi_sampler_new(NULL, &s) == PSI_OK);
    CHECK(psi_sampler_sample(s, NULL, 7) == -1 && psi_sampler_sample(s, logits, 0) == -1);
    psi_sampler_free(s);
    p.temperature = NAN;
    CHECK(psi_sampler_new(&p, &s) == PSI_ERR_INVALID_ARG && s == NULL);
}

/* Every allocation made while loading fails in turn: load must report
 * PSI_ERR_NO_MEMORY and clean up (ASan's leak check sees the rest). */
static void test_alloc_failures(void)
{
    int failures_seen = 0, n;
    char err[512];
    for (n = 0; n < 5000; n++) {
        psi_model *m = NULL;
        psi__mem_fail_after(n);
        psi_status rc = psi_model_load(tu_data("models/stories260K.gguf"), NULL, &m, err, sizeof err);
        psi_context *ctx = NULL;
        psi_status rc2 = rc;
        if (rc == PSI_OK) {
            psi_context_params cp = psi_context_default_params();
            cp.n_ctx = 16;
            cp.n_threads = 2;
            rc2 = psi_context_new(m, &cp, &ctx, err, sizeof err);
            if (rc2 == PSI_OK) {
                int32_t toks[3] = {1, 403, 407};
                rc2 = psi_context_decode(ctx, toks, 3, true);
            }
        }
        psi__mem_fail_after(-1);
        psi_context_free(ctx);
        psi_model_free(m);
        if (rc == PSI_OK && rc2 == PSI_OK) break; /* no allocation left to fail */
        CHECKF((rc == PSI_OK ? rc2 : rc) == PSI_ERR_NO_MEMORY, "allocation %d failing gave %s", n,
               psi_status_str(rc == PSI_OK ? rc2 : rc));
        failures_seen++;
    }
    printf("allocation failure injection: %d failure points, all reported as out of memory\n", failures_seen);
    CHECK(failures_seen > 10 && n < 5000);
}

/* ASan's and TSan's shadow memory inflates RssAnon. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SHADOW_MEMORY 1
#else
#define SHADOW_MEMORY 0
#endif
#if !SHADOW_MEMORY
/* How the weights are held, by psi_model_params.use_mmap, on the 60 MB F32
 * reference model (F32 matrices are not repacked): mapped (the default),
 * anonymous memory grows far less than the file; read in, it grows by the
 * file's size once, not twice, and no mapping of the file is left. Both
 * give the same logits, bit for bit. */
static long rss_anon_kb(void)
{
    char *s = tu_read_file("/proc/self/status", NULL);
    long kb = -1;
    const char *p = s ? strstr(s, "RssAnon:") : NULL;
    if (p) kb = strtol(p + 8, NULL, 10);
    free(s);
    return kb;
}

#endif

static bool file_is_mapped(const char *path)
{
    char real[PATH_MAX];
    char *maps = tu_read_file("/proc/self/maps", NULL);
    bool found = maps && realpath(path, real) && strstr(maps, real);
    free(maps);
    return found;
}

static void test_weights_memory(void)
{
    const char *path = tu_data("reference/llama2-tiny-F32.gguf");
    static float logits[2][32000];
    for (int mode = 0; mode < 2; mode++) {
        const bool mmap = mode == 1;
#if !SHADOW_MEMORY
        long before = rss_anon_kb();
#endif
        psi_model_params mp = psi_model_default_params();
        CHECK(mp.use_mmap); /* mapped by default */
        mp.use_mmap = mmap;
        psi_model *m = NULL;
        char err[256];
        psi_status rc = psi_model_load(path, &mp, &m, err, sizeof err);
        CHECKF(rc == PSI_OK, "%s", err);
        if (rc) return;
        CHECKF(file_is_mapped(path) == mmap, "use_mmap %d: the file is %smapped", mmap, mmap ? "not " : "");
        psi_context_params cp = psi_context_default_params();
        cp.n_ctx = 64;
        psi_context *ctx = NULL;
        CHECK(psi_context_new(m, &cp, &ctx, err, sizeof err) == PSI_OK);
        int32_t toks[4] = {1, 9038, 2501, 263};
        if (ctx && psi_context_decode(ctx, toks, 4, false) == PSI_OK) {
            CHECK(psi_model_n_vocab(m) == 32000);
            memcpy(logits[mode], psi_context_logits(ctx, -1), sizeof logits[mode]);
        } else {
            CHECK(!"decode");
        }
#if !SHADOW_MEMORY
        long grew = rss_anon_kb() - before;
        printf("use_mmap %d: anonymous memory grew by %ld kB for a 58700 kB model file\n", mmap, grew);
        if (mmap)
            CHECKF(grew < 20000, "mapped: anonymous RSS grew by %ld kB: weights copied?", grew);
        else
            CHECKF(grew > 50000 && grew < 80000, "read in: anonymous RSS grew by %ld kB (held twice?)", grew);
#endif
        psi_context_free(ctx);
        psi_model_free(m);
        CHECK(!file_is_mapped(path));
    }
    CHECK(memcmp(logits[0], logits[1], sizeof logits[0]) == 0);
}

static float max_abs_diff(const float *a, const float *b, int32_t n)
{
    float d = 0;
    for (int32_t i = 0; i < n; i++) {
        float e = fabsf(a[i] - b[i]);
        if (e > d) d = e;
    }
    return d;
}

static int32_t argmax(const float *x, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Several sequences in one context give, each, what it gives alone: prompts
 * of different lengths prefilled together, then greedy steps with one token
 * per sequence, one sequence joining late (as a server's chunked prefill). */
static void test_multi_seq(const char *rel)
{
    psi_model *m = load(rel);
    if (!m) return;
    enum { NS = 4, STEPS = 6, MAXP = 40 };
    int32_t n_vocab = psi_model_n_vocab(m);
    int32_t prompts[NS][MAXP], plen[NS] = {5, 17, 1, 33};
    for (int s = 0; s < NS; s++)
        for (int i = 0; i < plen[s]; i++) prompts[s][i] = (int32_t)((s * 7919 + i * 104729 + 3) % n_vocab);
    float *want = malloc((size_t)NS * (STEPS + 1) * (size_t)n_vocab * sizeof(float));
    int32_t want_ids[NS][STEPS + 1];
    char err[256];
    /* alone */
    for (int s = 0; s < NS; s++) {
        psi_context_params cp = psi_context_default_params();
        cp.n_ctx = 64;
        cp.n_threads = 2;
        psi_context *c = NULL;
        CHECK(psi_context_new(m, &cp, &c, err, sizeof err) == PSI_OK);
        if (!c) return;
        CHECK(psi_context_decode(c, prompts[s], plen[s], false) == PSI_OK);
        for (int k = 0; k <= STEPS; k++) {
            const float *l = psi_context_logits(c, -1);
            memcpy(want + ((size_t)s * (STEPS + 1) + (size_t)k) * (size_t)n_vocab, l, (size_t)n_vocab * sizeof(float));
            want_ids[s][k] = argmax(l, n_vocab);
            if (k < STEPS) CHECK(psi_context_decode(c, &want_ids[s][k], 1, false) == PSI_OK);
        }
        psi_context_free(c);
    }
    /* together: sequences 0, 1, 3 prefill in one batch; 2 joins at step 2 */
    psi_context_params cp = psi_context_default_params();
    cp.n_ctx = 128;
    cp.n_threads = 2;
    cp.n_seq = NS;
    psi_context *c = NULL;
    CHECK(psi_context_new(m, &cp, &c, err, sizeof err) == PSI_OK && psi_context_n_seq(c) == NS);
    if (!c) return;
    psi_batch_token b[4 * MAXP];
    int32_t n = 0, where[NS], step[NS] = {0}, next[NS];
    bool started[NS] = {false};
    float worst = 0;
    int ids_ok = 0, ids_all = 0;
    for (int round = 0; round <= STEPS + 2; round++) {
        n = 0;
        for (int s = 0; s < NS; s++) {
            if (!started[s] && (s != 2 || round == 2)) {
                for (int i = 0; i < plen[s]; i++) b[n++] = (psi_batch_token){prompts[s][i], s, i == plen[s] - 1};
                where[s] = n - 1;
                started[s] = true;
            } else if (started[s] && step[s] < STEPS) {
                b[n++] = (psi_batch_token){next[s], s, true};
                where[s] = n - 1;
                step[s]++;
            } else {
                where[s] = -1;
            }
        }
        if (!n) break;
        CHECK(psi_context_decode_batch(c, b, n) == PSI_OK);
        for (int s = 0; s < NS; s++) {
            if (where[s] < 0) continue;
            const float *l = psi_context_batch_logits(c, where[s]);
            CHECK(l != NULL);
            if (!l) continue;
            const float *w = want + ((size_t)s * (STEPS + 1) + (size_t)step[s]) * (size_t)n_vocab;
            float d = max_abs_diff(l, w, n_vocab);
            if (d > worst) worst = d;
            next[s] = argmax(l, n_vocab);
            ids_all++;
            ids_ok += next[s] == want_ids[s][step[s]];
        }
    }
    CHECKF(worst <= 1e-4f, "%s: batched logits differ from alone by %g", rel, worst);
    CHECKF(ids_ok == ids_all && ids_all == NS * (STEPS + 1), "%s: %d of %d greedy ids equal", rel, ids_ok, ids_all);
    printf("%s: %d sequences batched: max |logit diff| vs alone %.3g, %d/%d greedy ids equal\n", rel, NS, worst, ids_ok,
           ids_all);
    for (int s = 0; s < NS; s++) CHECK(psi_context_seq_n_past(c, s) == plen[s] + STEPS);
    CHECK(psi_context_batch_logits(c, 0) == NULL || b[0].logits);

    /* errors change nothing */
    psi_batch_token bad[2] = {{1, 0, true}, {1, NS, true}};
    CHECK(psi_context_decode_batch(c, bad, 2) == PSI_ERR_INVALID_ARG && psi_context_seq_n_past(c, 0) == plen[0] + STEPS);
    bad[1] = (psi_batch_token){n_vocab, 1, false};
    CHECK(psi_context_decode_batch(c, bad, 2) == PSI_ERR_INVALID_ARG && psi_context_seq_n_past(c, 0) == plen[0] + STEPS);
    psi_batch_token many[130];
    for (int i = 0; i < 130; i++) many[i] = (psi_batch_token){1, i < 2 ? 0 : 3, false};
    CHECK(psi_context_decode_batch(c, many, 130) == PSI_ERR_CONTEXT_FULL);
    CHECKF(strstr(psi_context_errmsg(c), "sequence 3"), "%s", psi_context_errmsg(c));
    CHECK(psi_context_seq_n_past(c, 0) == plen[0] + STEPS && psi_context_seq_n_past(c, 3) == plen[3] + STEPS);
    CHECK(psi_context_seq_truncate(c, 3, 0) == PSI_OK && psi_context_seq_n_past(c, 3) == 0);
    CHECK(psi_context_seq_truncate(c, 3, 5) == PSI_ERR_INVALID_ARG);
    CHECK(psi_context_seq_truncate(c, -1, 0) == PSI_ERR_INVALID_ARG && psi_context_seq_n_past(c, NS) == -1);
    /* a batch larger than one internal slice (256): sequence 3 again, last */
    psi_batch_token big[400];
    int32_t nb = 0;
    for (int s = 0; s < 3; s++) CHECK(psi_context_seq_truncate(c, s, 0) == PSI_OK);
    for (int i = 0; i < 360; i++) big[nb++] = (psi_batch_token){(int32_t)(i % 50 + 2), i % 3, false};
    int32_t at3 = nb + plen[3] - 1;
    for (int i = 0; i < plen[3]; i++) big[nb++] = (psi_batch_token){prompts[3][i], 3, i == plen[3] - 1};
    CHECK(psi_context_decode_batch(c, big, nb) == PSI_OK);
    const float *l = psi_context_batch_logits(c, at3);
    CHECK(l && max_abs_diff(l, want + (size_t)3 * (STEPS + 1) * (size_t)n_vocab, n_vocab) <= 1e-4f);
    /* a kept prefix (a server's prompt cache): junk past the positions kept,
     * then truncated away, is never read — the rest of the prompt gives the
     * logits of the whole prompt alone */
    psi_batch_token tail[MAXP];
    for (int i = 0; i < 10; i++) tail[i] = (psi_batch_token){(int32_t)(i * 31 + 5), 3, false};
    CHECK(psi_context_decode_batch(c, tail, 10) == PSI_OK && psi_context_seq_n_past(c, 3) == plen[3] + 10);
    CHECK(psi_context_seq_truncate(c, 3, 20) == PSI_OK);
    CHECK(psi_context_decode_batch(c, tail, 5) == PSI_OK && psi_context_seq_truncate(c, 3, 20) == PSI_OK);
    for (int i = 20; i < plen[3]; i++) tail[i - 20] = (psi_batch_token){prompts[3][i], 3, i == plen[3] - 1};
    CHECK(psi_context_decode_batch(c, tail, plen[3] - 20) == PSI_OK && psi_context_seq_n_past(c, 3) == plen[3]);
    l = psi_context_batch_logits(c, plen[3] - 21);
    CHECK(l && max_abs_diff(l, want + (size_t)3 * (STEPS + 1) * (size_t)n_vocab, n_vocab) <= 1e-4f);
    psi_context_free(c);
    free(want);
    psi_model_free(m);
}

/* The KV cache types against F32: F16 and Q8_0 logits stay close at every
 * position of a 48-token batch, and a Q8_0 cache fed one token at a time
 * gives the batch's logits bit for bit (each position's K and V are
 * quantized alone). */
static void test_kv_types(const char *rel, float tol_f16, float tol_q8)
{
    psi_model *m = load(rel);
    if (!m) return;
    enum { N = 48 };
    int32_t n_vocab = psi_model_n_vocab(m), toks[N];
    for (int i = 0; i < N; i++) toks[i] = (int32_t)((i * 7919u + 13u) % (unsigned)n_vocab);
    float *ref = malloc(sizeof(float) * N * (size_t)n_vocab), *one = malloc(sizeof(float) * (size_t)n_vocab);
    static const psi_type types[] = {PSI_TYPE_F32, PSI_TYPE_F16, PSI_TYPE_Q8_0};
    for (size_t ti = 0; ref && one && ti < 3; ti++) {
        psi_context_params cp = psi_context_default_params();
        cp.n_ctx = N;
        cp.n_threads = 2;
        cp.kv_type = types[ti];
        char err[256];
        psi_context *ctx = NULL;
        CHECKF(psi_context_new(m, &cp, &ctx, err, sizeof err) == PSI_OK, "%s: %s", rel, err);
        if (!ctx) continue;
        CHECK(psi_context_decode(ctx, toks, N, true) == PSI_OK);
        double maxd = 0, maxr = 0;
        for (int i = 0; i < N; i++) {
            const float *l = psi_context_logits(ctx, i);
            if (!l) break;
            if (ti == 0) memcpy(ref + (size_t)i * n_vocab, l, sizeof(float) * (size_t)n_vocab);
            for (int32_t j = 0; j < n_vocab; j++) {
                maxd = fmax(maxd, fabs((double)l[j] - ref[(size_t)i * n_vocab + j]));
                maxr = fmax(maxr, fabs((double)ref[(size_t)i * n_vocab + j]));
            }
        }
        if (ti > 0) {
            double rel_err = maxd / maxr, tol = ti == 1 ? tol_f16 : tol_q8;
            printf("%s: %s KV cache, max |Δ logit| %.3g = %.3g of max |logit| (tolerance %.3g)\n", rel,
                   ti == 1 ? "F16" : "Q8_0", maxd, rel_err, tol);
            CHECKF(rel_err < tol, "%s: %s KV cache differs from F32 by %.3g of max |logit|", rel,
                   ti == 1 ? "F16" : "Q8_0", rel_err);
        }
        if (types[ti] == PSI_TYPE_Q8_0) {
            memcpy(one, psi_context_logits(ctx, N - 1), sizeof(float) * (size_t)n_vocab);
            CHECK(psi_context_truncate(ctx, 0) == PSI_OK);
            for (int i = 0; i < N; i++) CHECK(psi_context_decode(ctx, &toks[i], 1, false) == PSI_OK);
            const float *l = psi_context_logits(ctx, -1);
            CHECKF(l && !memcmp(l, one, sizeof(float) * (size_t)n_vocab),
                   "%s: Q8_0 KV cache, one token at a time differs from the batch", rel);
        }
        psi_context_free(ctx);
    }
    free(ref);
    free(one);
    psi_model_free(m);
}

/* psi_cpu_count follows the affinity mask (taskset, cpusets): the default
 * thread count of a process pinned to one core is 1, not every core. */
static void test_cpu_count(void)
{
    cpu_set_t all, one;
    if (sched_getaffinity(0, sizeof all, &all) != 0) return;
    int n = CPU_COUNT(&all);
    CHECKF(psi_cpu_count() >= 1 && psi_cpu_count() <= n, "psi_cpu_count %d, affinity %d", psi_cpu_count(), n);
    int first = 0;
    while (first < CPU_SETSIZE && !CPU_ISSET(first, &all))
        first++;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0) return;
    CHECKF(psi_cpu_count() == 1, "pinned to one CPU: psi_cpu_count %d", psi_cpu_count());
    CHECK(sched_setaffinity(0, sizeof all, &all) == 0);
}

int main(void)
{
    test_cpu_count();
    test_basics();
    test_context();
    test_long_batch();
    test_multi_seq("models/stories260K.gguf");
    test_multi_seq("reference/llama3-tiny-Q8_0.gguf");
    /* llama2-tiny (F32 matrices) is well conditioned: tight bounds (measured
     * 3.4e-4 and 9.3e-3). llama3-tiny's Q8_0 matrices quantize every
     * activation, and its random weights amplify each int8 rounding flip
     * an F16 cache causes (measured 0.037 and 0.061): loose bounds that
     * still catch a broken cache. */
    test_kv_types("reference/llama2-tiny-F32.gguf", 0.002f, 0.03f);
    test_kv_types("reference/llama3-tiny-Q8_0.gguf", 0.1f, 0.15f);
    test_tokenize_api();
    test_sampler();
    test_sampler_chain_reference();
    test_sampler_penalties_logprobs();
    test_alloc_failures();
    test_weights_memory();
    return tu_finish("test_api");
}
