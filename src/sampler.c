/*
 * sampler.c — turning logits into the next token: greedy, or the chain
 * top-k → top-p → min-p → temperature → weighted draw, with a seeded
 * generator per sampler (same seed, same draws; no global state).
 * OpenAI's presence/frequency penalties act on the logits first, over the
 * tokens the caller accepted. psi_logprobs is the model's log-softmax, for
 * APIs that report token probabilities.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct cand {
    float logit;
    int32_t id;
} cand;

struct psi_sampler {
    psi_sampler_params p;
    uint64_t rng;  /* splitmix64 state */
    cand *cands;
    int32_t cap;
    int32_t *hist_id, *hist_n; /* distinct accepted tokens and their counts */
    int32_t n_hist, cap_hist;
    float *pen;                /* [n_vocab] penalised copy of the logits */
    int32_t cap_pen;
};

psi_sampler_params psi_sampler_default_params(void)
{
    psi_sampler_params p = {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                            .seed = 0xC0FFEE};
    return p;
}

psi_status psi_sampler_new(const psi_sampler_params *params, psi_sampler **out)
{
    if (!out) return PSI_ERR_INVALID_ARG;
    *out = NULL;
    psi_sampler_params p = params ? *params : psi_sampler_default_params();
    if (isnan(p.temperature) || isnan(p.top_p) || isnan(p.min_p) || !isfinite(p.presence_penalty) ||
        !isfinite(p.frequency_penalty))
        return PSI_ERR_INVALID_ARG;
    psi_sampler *s = mem_calloc(1, sizeof *s);
    if (!s) return PSI_ERR_NO_MEMORY;
    s->p = p;
    s->rng = p.seed;
    *out = s;
    return PSI_OK;
}

void psi_sampler_free(psi_sampler *s)
{
    if (!s) return;
    mem_free(s->cands);
    mem_free(s->hist_id);
    mem_free(s->hist_n);
    mem_free(s->pen);
    mem_free(s);
}

psi_status psi_sampler_accept(psi_sampler *s, int32_t token)
{
    if (!s || token < 0) return PSI_ERR_INVALID_ARG;
    if (s->p.presence_penalty == 0.0f && s->p.frequency_penalty == 0.0f) return PSI_OK;
    for (int32_t i = 0; i < s->n_hist; i++)
        if (s->hist_id[i] == token) {
            if (s->hist_n[i] < INT32_MAX) s->hist_n[i]++;
            return PSI_OK;
        }
    if (s->n_hist == s->cap_hist) {
        if (s->cap_hist > INT32_MAX / 2) return PSI_ERR_NO_MEMORY;
        int32_t cap = s->cap_hist ? s->cap_hist * 2 : 64;
        int32_t *a = mem_realloc(s->hist_id, (size_t)cap * sizeof *a);
        if (!a) return PSI_ERR_NO_MEMORY;
        s->hist_id = a;
        int32_t *b = mem_realloc(s->hist_n, (size_t)cap * sizeof *b);
        if (!b) return PSI_ERR_NO_MEMORY;
        s->hist_n = b;
        s->cap_hist = cap;
    }
    s->hist_id[s->n_hist] = token;
    s->hist_n[s->n_hist++] = 1;
    return PSI_OK;
}

/* The logits with the penalties applied (a copy), or the logits themselves
 * when nothing is penalised (or the copy cannot be made: degrade, never fail). */
static const float *penalise(psi_sampler *s, const float *logits, int32_t n_vocab)
{
    if (s->n_hist == 0) return logits;
    if (n_vocab > s->cap_pen) {
        float *p = mem_realloc(s->pen, (size_t)n_vocab * sizeof *p);
        if (!p) return logits;
        s->pen = p;
        s->cap_pen = n_vocab;
    }
    memcpy(s->pen, logits, (size_t)n_vocab * sizeof *logits);
    for (int32_t i = 0; i < s->n_hist; i++) {
        int32_t t = s->hist_id[i];
        if (t < n_vocab)
            s->pen[t] -= (float)s->hist_n[i] * s->p.frequency_penalty + s->p.presence_penalty;
    }
    return s->pen;
}

/* splitmix64 (Steele, Lea, Flood 2014): small, fast, good enough to draw. */
static uint64_t rng_next(uint64_t *st)
{
    uint64_t z = (*st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_uniform(uint64_t *st) { return (double)(rng_next(st) >> 11) * 0x1.0p-53; }

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id; /* stable order: lower id first */
}

static int32_t argmax(const float *logits, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i; /* strict: lowest id wins ties */
    return best;
}

int32_t psi_sampler_sample(psi_sampler *s, const float *logits, int32_t n_vocab)
{
    if (!s || !logits || n_vocab <= 0) return -1;
    const psi_sampler_params *p = &s->p;
    logits = penalise(s, logits, n_vocab);
    if (p->temperature <= 0) return argmax(logits, n_vocab);
    if (n_vocab > s->cap) {
        cand *c = mem_realloc(s->cands, (size_t)n_vocab * sizeof(cand));
        if (!c) return argmax(logits, n_vocab); /* degrade, never fail */
        s->cands = c;
        s->cap = n_vocab;
    }
    cand *c = s->cands;
    int32_t n = 0;
    for (int32_t i = 0; i < n_vocab; i++)
        if (!isnan(logits[i])) c[n++] = (cand){logits[i], i};
    if (n == 0) return 0;
    qsort(c, (size_t)n, sizeof *c, cand_cmp);
    if (p->top_k > 0 && p->top_k < n) n = p->top_k;
    /* Probabilities at temperature 1 for the top-p / min-p cuts (as
     * llama.cpp's chain does: temperature is applied last). */
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
        /* keep tokens with prob >= min_p * prob(top) */
        double cut = maxl + log((double)p->min_p);
        int32_t keep = 1;
        while (keep < n && c[keep].logit >= cut) keep++;
        n = keep;
    }
    double total = 0;
    double inv_t = 1.0 / p->temperature;
    for (int32_t i = 0; i < n; i++) total += exp(((double)c[i].logit - maxl) * inv_t);
    double r = rng_uniform(&s->rng) * total;
    for (int32_t i = 0; i < n; i++) {
        r -= exp(((double)c[i].logit - maxl) * inv_t);
        if (r < 0) return c[i].id;
    }
    return c[n - 1].id;
}

/* Is (l, id) more likely than the candidate c (ties: lower id first)? */
static bool ranks_before(float l, int32_t id, const psi_token_logprob *c)
{
    return l > c->logprob || (l == c->logprob && id < c->token);
}

psi_status psi_logprobs(const float *logits, int32_t n_vocab, int32_t token, float *logprob,
                        psi_token_logprob *top, int32_t n_top)
{
    if (!logits || n_vocab <= 0 || token < 0 || token >= n_vocab || n_top < 0 || n_top > n_vocab ||
        (n_top > 0 && !top))
        return PSI_ERR_INVALID_ARG;
    float maxl = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++)
        if (logits[i] > maxl) maxl = logits[i];
    double sum = 0;
    for (int32_t i = 0; i < n_vocab; i++)
        if (!isnan(logits[i])) sum += exp((double)logits[i] - maxl);
    double lse = (double)maxl + log(sum);
    if (logprob) *logprob = (float)((double)logits[token] - lse);
    /* top n: insertion into a sorted array holding raw logits, n_top small */
    int32_t n = 0;
    for (int32_t i = 0; i < n_vocab && n_top > 0; i++) {
        float l = logits[i];
        if (isnan(l)) continue;
        if (n == n_top && !ranks_before(l, i, &top[n - 1])) continue;
        int32_t j = n < n_top ? n++ : n - 1;
        while (j > 0 && ranks_before(l, i, &top[j - 1])) {
            top[j] = top[j - 1];
            j--;
        }
        top[j] = (psi_token_logprob){i, l};
    }
    for (int32_t j = 0; j < n; j++) top[j].logprob = (float)((double)top[j].logprob - lse);
    for (int32_t j = n; j < n_top; j++) top[j] = (psi_token_logprob){-1, -INFINITY};
    return PSI_OK;
}
