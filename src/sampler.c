/*
 * sampler.c — turning logits into the next token: greedy, or the chain
 * top-k → top-p → min-p → temperature → weighted draw, with a seeded
 * generator per sampler (same seed, same draws; no global state).
 * OpenAI's presence/frequency penalties act on the logits first, over the
 * tokens the caller accepted, then its logit bias. psi_logprobs is the
 * model's log-softmax, for APIs that report token probabilities.
 */
#include <math.h>
#include <stdbool.h>
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
    int32_t *bias_id; /* logit bias: bias_v[i] added to logit bias_id[i] */
    float *bias_v;
    int32_t n_bias;
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
    mem_free(s->bias_id);
    mem_free(s->bias_v);
    mem_free(s);
}

psi_status psi_sampler_set_logit_bias(psi_sampler *s, const int32_t *ids, const float *bias, int32_t n)
{
    if (!s || n < 0 || (n > 0 && (!ids || !bias))) return PSI_ERR_INVALID_ARG;
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || !isfinite(bias[i])) return PSI_ERR_INVALID_ARG;
    int32_t *id = NULL;
    float *v = NULL;
    if (n > 0) {
        id = mem_alloc((size_t)n * sizeof *id);
        v = mem_alloc((size_t)n * sizeof *v);
        if (!id || !v) {
            mem_free(id);
            mem_free(v);
            return PSI_ERR_NO_MEMORY;
        }
        memcpy(id, ids, (size_t)n * sizeof *id);
        memcpy(v, bias, (size_t)n * sizeof *v);
    }
    mem_free(s->bias_id);
    mem_free(s->bias_v);
    s->bias_id = id;
    s->bias_v = v;
    s->n_bias = n;
    return PSI_OK;
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

/* The logits with the penalties and then the logit bias applied (a copy),
 * or the logits themselves when neither changes anything. Penalties are
 * skipped when the copy cannot be made (degrade); the bias, which the
 * caller may use to forbid tokens, then makes sampling fail (-1). */
static const float *penalise(psi_sampler *s, const float *logits, int32_t n_vocab)
{
    const bool pen = s->n_hist > 0 && (s->p.frequency_penalty != 0 || s->p.presence_penalty != 0);
    if (!pen && s->n_bias == 0) return logits;
    if (n_vocab > s->cap_pen) {
        float *p = mem_realloc(s->pen, (size_t)n_vocab * sizeof *p);
        if (!p) return s->n_bias ? NULL : logits;
        s->pen = p;
        s->cap_pen = n_vocab;
    }
    memcpy(s->pen, logits, (size_t)n_vocab * sizeof *logits);
    for (int32_t i = 0; pen && i < s->n_hist; i++) {
        int32_t t = s->hist_id[i];
        if (t < n_vocab)
            s->pen[t] -= (float)s->hist_n[i] * s->p.frequency_penalty + s->p.presence_penalty;
    }
    for (int32_t i = 0; i < s->n_bias; i++)
        if (s->bias_id[i] < n_vocab) s->pen[s->bias_id[i]] += s->bias_v[i];
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

/* The first id of the largest logit (NaN never wins; a NaN at id 0 does,
 * as a plain "logits[i] > logits[best]" scan gives). The maximum first,
 * over 8 independent lanes, then its first id: the plain scan carried a
 * load through its compare every element, ~7 cycles each, 0.37 ms per
 * 128k vocabulary on Zen 3 — a few % of an 8-stream serve step, one core
 * busy and the other idle. */
static int32_t argmax(const float *logits, int32_t n)
{
    if (isnan(logits[0])) return 0;
    float m[8];
    for (int k = 0; k < 8; k++) m[k] = logits[0];
    int32_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) m[k] = logits[i + k] > m[k] ? logits[i + k] : m[k];
    for (; i < n; i++) m[0] = logits[i] > m[0] ? logits[i] : m[0];
    for (int k = 1; k < 8; k++) m[0] = m[k] > m[0] ? m[k] : m[0];
    for (i = 0; i < n; i++)
        if (logits[i] == m[0]) return i;
    return 0;
}

/* Does a rank after b (cand_cmp order)? */
static bool ranks_after(const cand *a, const cand *b) { return cand_cmp(a, b) > 0; }

/* Restore the heap below h[i]: every entry ranks after (or is) its parent,
 * so h[0] is the least likely kept. */
static void sift_down(cand *h, int32_t n, int32_t i)
{
    for (;;) {
        int32_t w = i, l = 2 * i + 1, r = l + 1;
        if (l < n && ranks_after(&h[l], &h[w])) w = l;
        if (r < n && ranks_after(&h[r], &h[w])) w = r;
        if (w == i) return;
        cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* The k most likely candidates (NaN skipped) into c, unsorted; returns how
 * many (fewer than k when the vocabulary has fewer). One pass with a heap
 * of the k best so far: most tokens cost one comparison with its root
 * (a later id ranks after an equal logit, so only a larger one gets in). */
static int32_t select_top_k(const float *logits, int32_t n_vocab, int32_t k, cand *c)
{
    int32_t n = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        float l = logits[i];
        if (isnan(l)) continue;
        if (n < k) {
            c[n++] = (cand){l, i};
            if (n == k)
                for (int32_t j = k / 2 - 1; j >= 0; j--) sift_down(c, k, j);
        } else if (l > c[0].logit) {
            c[0] = (cand){l, i};
            sift_down(c, k, 0);
        }
    }
    return n;
}

/* Draw one of c[0..n) with weights exp((logit - maxl) / T). */
static int32_t draw(psi_sampler *s, const cand *c, int32_t n, double maxl)
{
    double total = 0;
    double inv_t = 1.0 / s->p.temperature;
    for (int32_t i = 0; i < n; i++) total += exp(((double)c[i].logit - maxl) * inv_t);
    double r = rng_uniform(&s->rng) * total;
    for (int32_t i = 0; i < n; i++) {
        r -= exp(((double)c[i].logit - maxl) * inv_t);
        if (r < 0) return c[i].id;
    }
    return c[n - 1].id;
}

/* The chain without sorting the whole vocabulary (a 128k-token qsort is
 * some 15 ms, half a decode step): top-k keeps a heap of k; without top-k
 * only the tokens that can survive the cuts are sorted — those min-p keeps,
 * and for top-p those with probability >= (1 - top_p) / 2n (whatever lies
 * below carries less than half of 1 - top_p, so the top-p prefix ends
 * before it); with no cut at all the draw runs over the vocabulary in id
 * order (the same distribution; only which token a given seed picks
 * differs from a sorted draw). */
int32_t psi_sampler_sample(psi_sampler *s, const float *logits, int32_t n_vocab)
{
    if (!s || !logits || n_vocab <= 0) return -1;
    const psi_sampler_params *p = &s->p;
    if (!(logits = penalise(s, logits, n_vocab))) return -1;
    if (p->temperature <= 0) return argmax(logits, n_vocab);
    if (n_vocab > s->cap) {
        cand *c = mem_realloc(s->cands, (size_t)n_vocab * sizeof(cand));
        if (!c) return argmax(logits, n_vocab); /* degrade, never fail */
        s->cands = c;
        s->cap = n_vocab;
    }
    cand *c = s->cands;
    int32_t n = 0;
    double maxl, sum = 0; /* probabilities at temperature 1, for the top-p / min-p cuts (as llama.cpp's chain) */
    if (p->top_k > 0 && p->top_k < n_vocab) {
        n = select_top_k(logits, n_vocab, p->top_k, c);
        if (n == 0) return 0;
        qsort(c, (size_t)n, sizeof *c, cand_cmp);
        maxl = c[0].logit;
        for (int32_t i = 0; i < n; i++) sum += exp((double)c[i].logit - maxl);
    } else {
        int32_t n_valid = 0;
        maxl = -INFINITY;
        for (int32_t i = 0; i < n_vocab; i++)
            if (!isnan(logits[i])) {
                n_valid++;
                if (logits[i] > maxl) maxl = logits[i];
            }
        if (n_valid == 0) return 0;
        bool top_p = p->top_p < 1.0f, min_p = p->min_p > 0.0f;
        if (top_p)
            for (int32_t i = 0; i < n_vocab; i++)
                if (!isnan(logits[i])) sum += exp((double)logits[i] - maxl);
        double cut = -INFINITY;
        if (min_p) cut = maxl + log((double)p->min_p);
        if (top_p) {
            double tp = maxl + log((1.0 - (double)p->top_p) / (2.0 * n_valid) * sum);
            if (tp > cut) cut = tp;
        }
        for (int32_t i = 0; i < n_vocab; i++)
            if (!isnan(logits[i]) && (double)logits[i] >= cut) c[n++] = (cand){logits[i], i};
        if (top_p || min_p) qsort(c, (size_t)n, sizeof *c, cand_cmp); /* else: a draw in id order */
    }
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
    return draw(s, c, n, maxl);
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
