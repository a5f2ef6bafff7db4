/*
 * sampler.c — turning logits into the next token: greedy, or the chain
 * top-k → top-p → min-p → temperature → weighted draw, with a seeded
 * generator per sampler (same seed, same draws; no global state).
 */
#include <math.h>
#include <stdlib.h>

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
    if (isnan(p.temperature) || isnan(p.top_p) || isnan(p.min_p)) return PSI_ERR_INVALID_ARG;
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
    mem_free(s);
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
