/*
 * x86_avx512.c — AVX-512 (F, BW, VL) + VNNI kernels (Ice Lake, Sapphire
 * Rapids, Zen 4 and later). Compiled with those flags for this file only;
 * dispatch.c installs them over the AVX2 table (the quantizers stay AVX2)
 * when the CPU has them and the OS saves the ZMM and opmask state.
 *
 * The int8 products use VNNI's vpdpbusd on 256-bit vectors (one Q8_0 block
 * each; u8 × s8 quadruples summed into int32, no int16 saturation step).
 * Same results as the reference up to float reassociation; Q6_K×Q8_K bit
 * for bit. The float types (F32, F16, BF16) keep the AVX2 kernels: their
 * single-token products are bound by memory bandwidth, and their
 * multi-token ones by FMA throughput, which 512-bit vectors do not double
 * on every AVX-512 CPU. As on AVX2, vec_dot is vec_dot_ny with one token,
 * so results do not depend on the batch.
 */
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "x86_common.h"


/* ---------------------------------------------------------------- Q8_0, Q4_0 */

/* 8 int32 lanes of Σ x·y over byte quadruples (x, y signed, |y| <= 127):
 * |x| (unsigned) times y carrying x's sign. */
static inline __m256i dot_i8(__m256i x, __m256i y)
{
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

static inline __attribute__((always_inline)) void
vec_dot_ny_q8_0_q8_0_body(int64_t n, float *out, int64_t os, const void *vx, const void *vy, size_t ys, const int ny)
{
    const block_q8_0 *x = vx;
    const block_q8_0 *y[KERN_NY];
    __m256 acc[KERN_NY];
    for (int t = 0; t < ny; t++) {
        y[t] = (const block_q8_0 *)((const uint8_t *)vy + (size_t)t * ys);
        acc[t] = _mm256_setzero_ps();
    }
    const int64_t nb = n / QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const __m256i xq = _mm256_loadu_si256((const __m256i *)x[i].qs);
        const float dx = h2f(x[i].d);
        PSI_UNROLL for (int t = 0; t < ny; t++) {
            const __m256i p = dot_i8(xq, _mm256_loadu_si256((const __m256i *)y[t][i].qs));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dx * h2f(y[t][i].d)), _mm256_cvtepi32_ps(p), acc[t]);
        }
    }
    for (int t = 0; t < ny; t++) out[t * os] = hsum_ps(acc[t]);
}
NY_DISPATCH(vec_dot_ny_q8_0_q8_0)

static void vec_dot_q8_0_q8_0(int64_t n, float *out, const void *vx, const void *vy)
{
    vec_dot_ny_q8_0_q8_0_body(n, out, 1, vx, vy, 0, 1);
}

static inline __attribute__((always_inline)) void
vec_dot_ny_q4_0_q8_0_body(int64_t n, float *out, int64_t os, const void *vx, const void *vy, size_t ys, const int ny)
{
    const block_q4_0 *x = vx;
    const block_q8_0 *y[KERN_NY];
    __m256 acc[KERN_NY];
    for (int t = 0; t < ny; t++) {
        y[t] = (const block_q8_0 *)((const uint8_t *)vy + (size_t)t * ys);
        acc[t] = _mm256_setzero_ps();
    }
    const int64_t nb = n / QK4_0;
    for (int64_t i = 0; i < nb; i++) {
        const __m256i xq = q4_0_unpack(x[i].qs);
        const float dx = h2f(x[i].d);
        PSI_UNROLL for (int t = 0; t < ny; t++) {
            const __m256i p = dot_i8(xq, _mm256_loadu_si256((const __m256i *)y[t][i].qs));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dx * h2f(y[t][i].d)), _mm256_cvtepi32_ps(p), acc[t]);
        }
    }
    for (int t = 0; t < ny; t++) out[t * os] = hsum_ps(acc[t]);
}
NY_DISPATCH(vec_dot_ny_q4_0_q8_0)

static void vec_dot_q4_0_q8_0(int64_t n, float *out, const void *vx, const void *vy)
{
    vec_dot_ny_q4_0_q8_0_body(n, out, 1, vx, vy, 0, 1);
}

/* ---------------------------------------------------------------- Q6_K */

/* As x86_avx2.c: quants + 32 (unsigned) in value order, 32 per vector;
 * vpdpbusd sums quadruples, so lanes 0..3 of a vector's products belong to
 * its first 16-value group and lanes 4..7 to the second: the int32 scale
 * vector is [s_a ×4, s_b ×4]. */
static inline void q6_K_unpack(const block_q6_K *b, __m256i q[8], __m256i sc[8])
{
    q6_K_half(b, 0, q);
    q6_K_half(b, 1, q + 4);
    for (int c = 0; c < 8; c++)
        sc[c] = _mm256_set_m128i(_mm_set1_epi32(b->scales[2 * c + 1]), _mm_set1_epi32(b->scales[2 * c]));
}

static inline __attribute__((always_inline)) void
vec_dot_ny_q6_K_q8_K_body(int64_t n, float *out, int64_t os, const void *vx, const void *vy, size_t ys, const int ny)
{
    const block_q6_K *x = vx;
    const block_q8_K *y[KERN_NY];
    float sumf[KERN_NY];
    for (int t = 0; t < ny; t++) {
        y[t] = (const block_q8_K *)((const uint8_t *)vy + (size_t)t * ys);
        sumf[t] = 0.0f;
    }
    const int64_t nb = n / QK_K;
    __m256i q[8], sc[8];
    for (int64_t i = 0; i < nb; i++) {
        q6_K_unpack(&x[i], q, sc);
        const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        const float dx = h2f(x[i].d);
        PSI_UNROLL for (int t = 0; t < ny; t++) {
            const block_q8_K *yb = &y[t][i];
            __m256i acc = _mm256_setzero_si256();
            for (int c = 0; c < 8; c++) {
                const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q[c],
                                                      _mm256_loadu_si256((const __m256i *)(yb->qs + 32 * c)));
                acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(p, sc[c]));
            }
            const __m256i bs = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)yb->bsums), s16);
            const int32_t isum = hsum_epi32(acc) - 32 * hsum_epi32(bs);
            sumf[t] += yb->d * dx * (float)isum;
        }
    }
    for (int t = 0; t < ny; t++) out[t * os] = sumf[t];
}
NY_DISPATCH(vec_dot_ny_q6_K_q8_K)

static void vec_dot_q6_K_q8_K(int64_t n, float *out, const void *vx, const void *vy)
{
    vec_dot_ny_q6_K_q8_K_body(n, out, 1, vx, vy, 0, 1);
}

/* ---------------------------------------------------------------- table */

void kernels_fill_avx512(kernels *k)
{
    k->t[PSI_TYPE_Q8_0].vec_dot = vec_dot_q8_0_q8_0;
    k->t[PSI_TYPE_Q8_0].vec_dot_ny = vec_dot_ny_q8_0_q8_0;
    k->t[PSI_TYPE_Q8_0].ny_from_float = NULL; /* this one reads plain Q8_0 blocks */
    k->t[PSI_TYPE_Q8_0].ny_act_row = NULL;
    k->t[PSI_TYPE_Q4_0].vec_dot = vec_dot_q4_0_q8_0;
    k->t[PSI_TYPE_Q4_0].vec_dot_ny = vec_dot_ny_q4_0_q8_0;
    k->t[PSI_TYPE_Q6_K].vec_dot = vec_dot_q6_K_q8_K;
    k->t[PSI_TYPE_Q6_K].vec_dot_ny = vec_dot_ny_q6_K_q8_K;
}

#else

void kernels_fill_avx512(kernels *k) { (void)k; }

#endif
