/*
 * x86_avx2_attn.c — attention (kern_attn) with AVX2 + FMA + F16C, the way
 * flash attention runs on a CPU: positions in blocks of KERN_ATTN_KEYS
 * whose K and V rows are converted to floats once for all the tile's rows
 * (a decode step's four query heads per KV head, a prompt's tokens × heads);
 * each row keeps its softmax as it goes (running max and sum, the output
 * rescaled when the max grows); eight scores at a time with one
 * horizontal-add tree; exponentials eight at a time. The feed-forward's
 * SwiGLU gate (the other exponentials of a forward pass) is here too,
 * with exponentials of its own (exp4d). Compiled like x86_avx2.c and used
 * only where dispatch.c has seen AVX2.
 *
 * Against the reference (generic.c): the same softmax up to float
 * reassociation and exp8's rounding (within a few ulp of expf).
 */
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "util.h"

#include "x86_common.h"

/* e^x for x <= 0 (Cephes' expf: x = n·ln2 + r, |r| <= ln2/2, a degree-6
 * polynomial in r, n put into the exponent); 0 below -87.3, so -inf (a
 * masked score) gives 0. */
static inline __m256 exp8(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(-87.33654f);
    const __m256 keep = _mm256_cmp_ps(x, lo, _CMP_GE_OQ);
    x = _mm256_max_ps(x, lo);
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(y, _mm256_castsi256_ps(e)), keep);
}

static inline float hmax_ps(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* Positions [p0, p0 + nb) of the K or V cache as floats, *stride floats
 * apart: the cache itself for F32, else converted into buf (hd apart). */
static const float *kv_block(const kern_attn *a, const void *base, int32_t p0, int32_t nb, float *buf,
                             size_t *stride)
{
    const uint8_t *rows = (const uint8_t *)base + (size_t)p0 * a->kv_stride;
    /* the next block's rows on their way: a block of a head's positions is
     * a page or so, and the hardware prefetchers stop at page boundaries
     * (decode attention at depth 3000, one thread, 16 layers: 19.6-20.9 ->
     * 16.7-18.2 ms a step in interleaved runs) */
    const size_t ahead = (size_t)KERN_ATTN_KEYS * a->kv_stride, row_bytes = type_row_size(a->kv_type, a->hd);
    for (int32_t p = 0; p < nb; p++)
        for (size_t c = 0; c < row_bytes; c += 64)
            _mm_prefetch((const char *)rows + ahead + (size_t)p * a->kv_stride + c, _MM_HINT_T0);
    if (a->kv_type == PSI_TYPE_F32) {
        *stride = a->kv_stride / sizeof(float);
        return (const float *)rows;
    }
    *stride = (size_t)a->hd;
    for (int32_t p = 0; p < nb; p++) {
        const uint8_t *row = rows + (size_t)p * a->kv_stride;
        float *dst = buf + (size_t)p * (size_t)a->hd;
        if (a->kv_type == PSI_TYPE_F16) {
            for (int32_t i = 0; i < a->hd; i += 8)
                _mm256_storeu_ps(dst + i, load_f16((const uint16_t *)row + i));
        } else if (a->kv_type == PSI_TYPE_Q8_0) { /* d·q, as types.c's dequantizer rounds it */
            const block_q8_0 *b = (const block_q8_0 *)row;
            for (int32_t k = 0; k < a->hd / QK8_0; k++) {
                const __m256 d = _mm256_set1_ps(h2f(b[k].d));
                for (int j = 0; j < QK8_0; j += 8) {
                    const __m128i q = _mm_loadl_epi64((const __m128i *)(b[k].qs + j));
                    _mm256_storeu_ps(dst + k * QK8_0 + j, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q))));
                }
            }
        } else {
            type_get(a->kv_type)->to_float(row, dst, a->hd);
        }
    }
    return buf;
}

/* q · k_j for the 8 keys j = j0..j0+7 (indices past nv - 1 read key nv - 1;
 * the caller masks them), as one vector: 8 accumulators, one hadd tree. */
static inline __attribute__((always_inline)) __m256 qk8(const float *q, const float *kb, size_t ks, int32_t hd, int32_t j0, int32_t nv)
{
    const float *k[8];
    for (int i = 0; i < 8; i++) k[i] = kb + (size_t)(j0 + i < nv ? j0 + i : nv - 1) * ks;
    __m256 acc[8];
    for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_ps();
    for (int32_t d = 0; d < hd; d += 8) {
        const __m256 qv = _mm256_loadu_ps(q + d);
        PSI_UNROLL
        for (int i = 0; i < 8; i++) acc[i] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k[i] + d), acc[i]);
    }
    const __m256 t0 = _mm256_hadd_ps(acc[0], acc[1]), t1 = _mm256_hadd_ps(acc[2], acc[3]);
    const __m256 t2 = _mm256_hadd_ps(acc[4], acc[5]), t3 = _mm256_hadd_ps(acc[6], acc[7]);
    const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

/* out[0 .. 8·na) = corr · out + Σ_{j < nv} w[j] · v_j (the same span of
 * each value row): na accumulators in registers. */
static inline void pv_span(float *out, const float *vb, size_t vs, const float *w, int32_t nv, float corr,
                           const int na)
{
    __m256 acc[8];
    const __m256 c = _mm256_set1_ps(corr);
    PSI_UNROLL
    for (int i = 0; i < na; i++) acc[i] = _mm256_mul_ps(_mm256_loadu_ps(out + 8 * i), c);
    for (int32_t j = 0; j < nv; j++) {
        const __m256 wj = _mm256_broadcast_ss(w + j);
        const float *v = vb + (size_t)j * vs;
        PSI_UNROLL
        for (int i = 0; i < na; i++) acc[i] = _mm256_fmadd_ps(wj, _mm256_loadu_ps(v + 8 * i), acc[i]);
    }
    PSI_UNROLL
    for (int i = 0; i < na; i++) _mm256_storeu_ps(out + 8 * i, acc[i]);
}

static void pv_row(float *out, const float *vb, size_t vs, const float *w, int32_t nv, float corr, int32_t hd)
{
    int32_t i = 0;
    for (; i + 64 <= hd; i += 64) pv_span(out + i, vb + i, vs, w, nv, corr, 8);
    switch ((hd - i) / 8) {
    case 1: pv_span(out + i, vb + i, vs, w, nv, corr, 1); break;
    case 2: pv_span(out + i, vb + i, vs, w, nv, corr, 2); break;
    case 3: pv_span(out + i, vb + i, vs, w, nv, corr, 3); break;
    case 4: pv_span(out + i, vb + i, vs, w, nv, corr, 4); break;
    case 5: pv_span(out + i, vb + i, vs, w, nv, corr, 5); break;
    case 6: pv_span(out + i, vb + i, vs, w, nv, corr, 6); break;
    case 7: pv_span(out + i, vb + i, vs, w, nv, corr, 7); break;
    default: break;
    }
}

static void attn_avx2(const kern_attn *a)
{
    const int32_t hd = a->hd, rows = a->n_tok * a->n_grp;
    if (hd % 8) { /* no Llama has such heads; the reference computes them */
        kern_attn_ref(a);
        return;
    }
    float *kbuf = a->work, *vbuf = kbuf + (size_t)KERN_ATTN_KEYS * hd;
    float *m = vbuf + (size_t)KERN_ATTN_KEYS * hd, *l = m + rows, *w = l + rows;
    int32_t n_pos = 0;
    for (int32_t t = 0; t < a->n_tok; t++) {
        if (a->last[t] + 1 > n_pos) n_pos = a->last[t] + 1;
        for (int32_t g = 0; g < a->n_grp; g++) {
            memset(a->out + kern_attn_row(a, t, g), 0, (size_t)hd * sizeof(float));
            m[t * a->n_grp + g] = -INFINITY;
            l[t * a->n_grp + g] = 0;
        }
    }
    const __m256 scale = _mm256_set1_ps(a->scale), ninf = _mm256_set1_ps(-INFINITY);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int32_t p0 = 0; p0 < n_pos; p0 += KERN_ATTN_KEYS) {
        const int32_t nb = n_pos - p0 < KERN_ATTN_KEYS ? n_pos - p0 : KERN_ATTN_KEYS;
        size_t ks, vs;
        const float *kb = kv_block(a, a->k, p0, nb, kbuf, &ks);
        const float *vb = kv_block(a, a->v, p0, nb, vbuf, &vs);
        for (int32_t t = 0; t < a->n_tok; t++) {
            const int32_t nv = a->last[t] + 1 - p0 < nb ? a->last[t] + 1 - p0 : nb;
            if (nv <= 0) continue;
            for (int32_t g = 0; g < a->n_grp; g++) {
                const size_t off = kern_attn_row(a, t, g);
                const int32_t r = t * a->n_grp + g;
                __m256 bmax = ninf;
                for (int32_t j = 0; j < nv; j += 8) {
                    __m256 s = _mm256_mul_ps(qk8(a->q + off, kb, ks, hd, j, nv), scale);
                    const __m256 valid = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(nv - j), lane));
                    s = _mm256_blendv_ps(ninf, s, valid);
                    _mm256_storeu_ps(w + j, s);
                    bmax = _mm256_max_ps(bmax, s);
                }
                const float mb = hmax_ps(bmax), mnew = mb > m[r] ? mb : m[r];
                const float corr = mnew == m[r] ? 1.0f : expf(m[r] - mnew);
                const __m256 mv = _mm256_set1_ps(mnew);
                __m256 sum = _mm256_setzero_ps();
                for (int32_t j = 0; j < nv; j += 8) {
                    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(w + j), mv));
                    _mm256_storeu_ps(w + j, e);
                    sum = _mm256_add_ps(sum, e);
                }
                m[r] = mnew;
                l[r] = l[r] * corr + hsum_ps(sum);
                pv_row(a->out + off, vb, vs, w, nv, corr, hd);
            }
        }
    }
    for (int32_t t = 0; t < a->n_tok; t++)
        for (int32_t g = 0; g < a->n_grp; g++) {
            float *out = a->out + kern_attn_row(a, t, g);
            const __m256 inv = _mm256_set1_ps(1.0f / l[t * a->n_grp + g]);
            for (int32_t i = 0; i < hd; i += 8) _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(out + i), inv));
        }
}

/* e^x of 4 doubles with |x| <= 110: x = k·ln2 + r, |r| <= ln2/2, e^r by
 * its Taylor series to r^12 (relative error under 2e-16 + rounding), 2^k
 * put into the exponent. NaN stays NaN. */
static inline __m256d exp4d(__m256d x)
{
    const __m256d k = _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(1.4426950408889634)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fnmadd_pd(k, _mm256_set1_pd(6.93147180369123816490e-01), x); /* ln2, high bits */
    r = _mm256_fnmadd_pd(k, _mm256_set1_pd(1.90821492927058770002e-10), r);         /* and the rest */
    static const double inv_fact[] = {1.0 / 479001600, 1.0 / 39916800, 1.0 / 3628800, 1.0 / 362880,
                                      1.0 / 40320,     1.0 / 5040,     1.0 / 720,     1.0 / 120,
                                      1.0 / 24,        1.0 / 6,        0.5,           1.0,
                                      1.0};
    __m256d p = _mm256_set1_pd(inv_fact[0]);
    for (int i = 1; i < 13; i++) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(inv_fact[i]));
    const __m256i e = _mm256_slli_epi64(
        _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(k)), _mm256_set1_epi64x(1023)), 52);
    return _mm256_mul_pd(p, _mm256_castsi256_pd(e));
}

/* SwiGLU eight values at a time, the reference's formula
 * x / (1 + expf(-x)) · u with expf as e^x computed in double and rounded
 * once to float: the correctly rounded value (no miss in 8 M inputs
 * against expl), where glibc's expf, within 0.502 ulp, misses on about 6
 * inputs in 10^4. It has to be that close: a few ulp of difference (a
 * float polynomial such as exp8's) move activations across Q8_0
 * rounding steps, and llama2-tiny-Q8_0's greedy story then left
 * llama.cpp's at token 19 (test_reference). e^-x is clamped to ±110
 * first (past ±104 the float is 0 or inf anyway), NaN kept. A prompt's
 * 512 tokens of the 1B shape take 67 M of these, which glibc's expf did
 * one at a time (decode, 8 streams: 2.8% of the step, now 0.4-0.9%).
 * A last few values go through the same code in a padded copy, so a value
 * comes out the same wherever the threads' ranges split the row. */
static inline void swiglu8(float *g, const float *u)
{
    const __m256d lo = _mm256_set1_pd(-110.0), hi = _mm256_set1_pd(110.0);
    const __m256 x = _mm256_loadu_ps(g);
    const __m256 nx = _mm256_xor_ps(x, _mm256_set1_ps(-0.0f));
    /* max/min return their second operand when either is NaN */
    const __m256d a = _mm256_min_pd(hi, _mm256_max_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(nx))));
    const __m256d b = _mm256_min_pd(hi, _mm256_max_pd(lo, _mm256_cvtps_pd(_mm256_extractf128_ps(nx, 1))));
    const __m256 e = _mm256_set_m128(_mm256_cvtpd_ps(exp4d(b)), _mm256_cvtpd_ps(exp4d(a)));
    _mm256_storeu_ps(g, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), _mm256_loadu_ps(u)));
}

static void swiglu_avx2(float *g, const float *u, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) swiglu8(g + i, u + i);
    if (i < n) {
        float gt[8] = {0}, ut[8] = {0};
        memcpy(gt, g + i, sizeof(float) * (size_t)(n - i));
        memcpy(ut, u + i, sizeof(float) * (size_t)(n - i));
        swiglu8(gt, ut);
        memcpy(g + i, gt, sizeof(float) * (size_t)(n - i));
    }
}

void kernels_fill_avx2_attn(kernels *k)
{
    k->attn = attn_avx2;
    k->swiglu = swiglu_avx2;
}

#else

void kernels_fill_avx2_attn(kernels *k) { (void)k; }

#endif
