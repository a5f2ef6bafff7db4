/*
 * x86_avx2.c — AVX2 + FMA + F16C kernels (Haswell, Zen 1 and later): dot
 * products for the weight types psi computes and the activation
 * quantizers. Compiled with -mavx2 -mfma -mf16c for this file only and
 * called only when dispatch.c has seen the CPU and OS support them.
 *
 * Integer parts are exact: Q6_K×Q8_K and every quantizer give the
 * reference's result bit for bit. Float sums are reassociated (several
 * accumulators, per-lane scaling), as ggml's x86 kernels do.
 * Q8_0/Q4_0 use the sign trick for _mm256_maddubs_epi16 (u8 × s8): |x| ×
 * (y with x's sign); no pair sum saturates because activations are at most
 * 127 in magnitude (the quantizers clamp 127·x/max|x|).
 */
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <string.h>

#include "util.h"

#include "x86_common.h"


/* ---------------------------------------------------------------- F32, F16, BF16 */

/* bf16 → f32 is a 16-bit shift. */
static inline __m256 load_bf16(const uint16_t *p)
{
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

/* One float-type weight row against up to KERN_NY f32/bf16 activation
 * rows: each 8 weights are loaded and converted once for all the tokens,
 * which turns the load-bound single dot product into an FMA-bound one.
 * Two accumulators per token (alternate groups of 8); the tail (n % 8)
 * goes through zero-padded copies. The single-token vec_dot is this with
 * ny = 1, so a token's result does not depend on the batch. */
#define FLOAT_DOT_NY(NAME, WT, LOADW, AT, LOADA)                                                           \
    static inline __attribute__((always_inline)) void NAME##_body(int64_t n, float *out, int64_t os,        \
                                                                  const void *vx, const void *vy,          \
                                                                  size_t ys, const int ny)                 \
    {                                                                                                      \
        const WT *x = vx;                                                                                  \
        const AT *y[KERN_NY];                                                                              \
        __m256 a0[KERN_NY], a1[KERN_NY];                                                                   \
        PSI_UNROLL for (int t = 0; t < ny; t++) {                                                          \
            y[t] = (const AT *)((const uint8_t *)vy + (size_t)t * ys);                                     \
            a0[t] = a1[t] = _mm256_setzero_ps();                                                           \
        }                                                                                                  \
        int64_t i = 0;                                                                                     \
        for (; i + 16 <= n; i += 16) {                                                                     \
            if (ny == 1) PREFETCH_AHEAD(x + i, 1);                                                         \
            const __m256 w0 = LOADW(x + i), w1 = LOADW(x + i + 8);                                         \
            PSI_UNROLL for (int t = 0; t < ny; t++) {                                                      \
                a0[t] = _mm256_fmadd_ps(w0, LOADA(y[t] + i), a0[t]);                                       \
                a1[t] = _mm256_fmadd_ps(w1, LOADA(y[t] + i + 8), a1[t]);                                   \
            }                                                                                              \
        }                                                                                                  \
        if (i + 8 <= n) {                                                                                  \
            const __m256 w = LOADW(x + i);                                                                 \
            PSI_UNROLL for (int t = 0; t < ny; t++) a0[t] = _mm256_fmadd_ps(w, LOADA(y[t] + i), a0[t]);    \
            i += 8;                                                                                        \
        }                                                                                                  \
        if (i < n) {                                                                                       \
            WT tx[8] = {0};                                                                                \
            memcpy(tx, x + i, (size_t)(n - i) * sizeof(WT));                                               \
            const __m256 w = LOADW(tx);                                                                    \
            for (int t = 0; t < ny; t++) {                                                                 \
                AT ty[8] = {0};                                                                            \
                memcpy(ty, y[t] + i, (size_t)(n - i) * sizeof(AT));                                        \
                a1[t] = _mm256_fmadd_ps(w, LOADA(ty), a1[t]);                                              \
            }                                                                                              \
        }                                                                                                  \
        PSI_UNROLL for (int t = 0; t < ny; t++) out[t * os] = hsum_ps(_mm256_add_ps(a0[t], a1[t]));        \
    }                                                                                                      \
    NY_DISPATCH(NAME)                                                                                      \
    static void NAME##_1(int64_t n, float *out, const void *vx, const void *vy)                           \
    {                                                                                                      \
        NAME##_body(n, out, 1, vx, vy, 0, 1);                                                              \
    }

FLOAT_DOT_NY(vec_dot_ny_f32, float, _mm256_loadu_ps, float, _mm256_loadu_ps)
FLOAT_DOT_NY(vec_dot_ny_f16_f32, uint16_t, load_f16, float, _mm256_loadu_ps)
FLOAT_DOT_NY(vec_dot_ny_bf16, uint16_t, load_bf16, uint16_t, load_bf16)
#undef FLOAT_DOT_NY

/* f32 → bf16, round to nearest even, NaN kept quiet: util's f32_to_bf16
 * on 16 values at a time. */
static inline __m256i bf16_round8(__m256 f)
{
    const __m256i u = _mm256_castps_si256(f);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i bias = _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff));
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, bias), 16);
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                           _mm256_set1_epi32(0x7f800000));
    const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(64));
    return _mm256_blendv_epi8(rounded, quiet, nan);
}

static void bf16_from_f32(const float *src, void *dst, int64_t n)
{
    uint16_t *y = dst;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i lo = bf16_round8(_mm256_loadu_ps(src + i)), hi = bf16_round8(_mm256_loadu_ps(src + i + 8));
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xD8);
        _mm256_storeu_si256((__m256i *)(y + i), p);
    }
    for (; i < n; i++) y[i] = f32_to_bf16(src[i]);
}

/* BF16's activations for its tile (gemm_from_float): each value rounded
 * to bf16 as bf16_from_f32 does, kept as the f32 it stands for (exact), so
 * the tile multiplies bf16 × bf16 as the reference does without
 * converting an activation vector per row and token. */
static size_t bf16x_row(int64_t n) { return (size_t)n * sizeof(float); }
static void bf16x_from_f32(const float *src, void *dst, int64_t n)
{
    float *y = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_castsi256_ps(_mm256_slli_epi32(bf16_round8(_mm256_loadu_ps(src + i)), 16)));
    for (; i < n; i++) y[i] = bf16_to_f32(f32_to_bf16(src[i]));
}

/* F16 (the KV cache's default type) with F16C, 8 at a time: round to
 * nearest even, as f32_to_fp16 (NaN kept quiet with its top payload
 * bits, as it does too). It was 0.7% of a pp512 as one call a value. */
static void f16_from_f32_f16c(const float *src, void *dst, int64_t n)
{
    uint16_t *y = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = f32_to_fp16(src[i]);
}

/* ---------------------------------------------------------------- int8 helpers */

/* Rounds 32 floats (already scaled) half to even and saturates to int8, in
 * order. _mm256_cvtps_epi32 rounds in the current mode (nearest even). */
static inline __m256i round_pack32(__m256 a, __m256 b, __m256 c, __m256 d)
{
    __m256i ab = _mm256_packs_epi32(_mm256_cvtps_epi32(a), _mm256_cvtps_epi32(b));
    __m256i cd = _mm256_packs_epi32(_mm256_cvtps_epi32(c), _mm256_cvtps_epi32(d));
    __m256i v = _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* max |x| of 8 floats; NaN lanes are skipped like types.c's `a > amax`. */
static inline __m256 absmax_step(__m256 m, __m256 v)
{
    const __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
    return _mm256_max_ps(a, m); /* max_ps returns the second operand when either is NaN */
}

static inline float hmax_ps(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* ---------------------------------------------------------------- Q8_0 */

/* One block of 32 as types.c quantizes it: the quants and the fp16 scale
 * (and, for Q8_1's sum, the f32 one it was rounded from). */
static inline __m256i q8_0_block(const float *x, uint16_t *d16, float *d32)
{
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    __m256 m = absmax_step(_mm256_setzero_ps(), v0);
    m = absmax_step(m, v1);
    m = absmax_step(m, v2);
    m = absmax_step(m, v3);
    const float amax = hmax_ps(m);
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    *d16 = f32_to_fp16(d);
    *d32 = d;
    const __m256 s = _mm256_set1_ps(id);
    return round_pack32(_mm256_mul_ps(v0, s), _mm256_mul_ps(v1, s), _mm256_mul_ps(v2, s), _mm256_mul_ps(v3, s));
}

static void q8_0_from_f32(const float *src, void *dst, int64_t n)
{
    block_q8_0 *y = dst;
    float d32;
    for (int64_t i = 0; i < n / QK8_0; i++)
        _mm256_storeu_si256((__m256i *)y[i].qs, q8_0_block(src + i * QK8_0, &y[i].d, &d32));
}


static size_t q8_0x_row(int64_t n) { return (size_t)(n / QK8_0) * sizeof(block_q8_0x); }

/* One block into the quants qs and the float its fp16 scale stands for;
 * returns Σ quants, and the f32 scale the fp16 was rounded from in d32. */
static inline int32_t q8x_block(const float *x, int8_t *qs, float *d, float *d32)
{
    uint16_t d16;
    const __m256i q = q8_0_block(x, &d16, d32);
    _mm256_storeu_si256((__m256i *)qs, q);
    *d = h2f(d16);
    return hsum_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), _mm256_set1_epi16(1)));
}

static void q8_0x_from_f32(const float *src, void *dst, int64_t n)
{
    block_q8_0x *y = dst;
    float d32;
    for (int64_t i = 0; i < n / QK8_0; i++) y[i].s8 = 8 * q8x_block(src + i * QK8_0, y[i].qs, &y[i].d, &d32);
}

static size_t q8_1x_row(int64_t n) { return (size_t)(n / QK8_1) * sizeof(block_q8_1x); }

static void q8_1x_from_f32(const float *src, void *dst, int64_t n)
{
    block_q8_1x *y = dst;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        float d32;
        const int32_t sum = q8x_block(src + i * QK8_1, y[i].qs, &y[i].d, &d32);
        y[i].s = h2f(f32_to_fp16(d32 * (float)sum));
    }
}

static inline __m256i q8_0_load(const int8_t *qs) { return _mm256_loadu_si256((const __m256i *)qs); }

/* One weight row (blocks of 32 that UNPACK turns into signed bytes) against
 * up to KERN_NY activation rows (YT: Q8_0 blocks, or block_q8_0x with the
 * scale as a float, YD), each weight block loaded, unpacked and made |x|
 * once for all the tokens, one accumulator per token (a single token is
 * latency-bound at 32 weights per FMA, still well above memory
 * bandwidth). The single-token vec_dot is the same code with ny = 1 on
 * Q8_0 blocks, so a token's result is the same bit for bit whatever the
 * batch. */
#define Q8_DOT_BODY(NAME, BT, YT, YD, UNPACK)                                                               \
    static inline __attribute__((always_inline)) void NAME##_body(int64_t n, float *out, int64_t os,       \
                                                                  const void *vx, const void *vy,           \
                                                                  size_t ys, const int ny)                  \
    {                                                                                                       \
        const BT *x = vx;                                                                                   \
        const YT *y[KERN_NY];                                                                               \
        __m256 acc[KERN_NY];                                                                                \
        X8_TOKENS(YT, y, acc, vy, ys, ny);                                                                  \
        const int64_t nb = n / QK8_0;                                                                       \
        for (int64_t i = 0; i < nb; i++) {                                                                  \
            if (ny == 1) PREFETCH_AHEAD(&x[i], 1);                                                          \
            const __m256i xq = UNPACK(x[i].qs);                                                             \
            const __m256i ax = _mm256_sign_epi8(xq, xq);                                                    \
            const float dx = h2f(x[i].d);                                                                   \
            PSI_UNROLL for (int t = 0; t < ny; t++) {                                                       \
                const __m256i yq = _mm256_loadu_si256((const __m256i *)y[t][i].qs);                         \
                const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(yq, xq)),     \
                                                    _mm256_set1_epi16(1));                                  \
                const __m256 d = _mm256_set1_ps(dx * YD(y[t][i].d));                                        \
                acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc[t]);                                 \
            }                                                                                               \
        }                                                                                                   \
        PSI_UNROLL for (int t = 0; t < ny; t++) out[t * os] = hsum_ps(acc[t]);                              \
    }

#define Q8_SCALE_F(d) (d)
Q8_DOT_BODY(vec_dot_q8_0_q8_0, block_q8_0, block_q8_0, h2f, q8_0_load)
Q8_DOT_BODY(vec_dot_ny_q8_0_q8_0x, block_q8_0, block_q8_0x, Q8_SCALE_F, q8_0_load)
NY_DISPATCH(vec_dot_ny_q8_0_q8_0x)
Q8_DOT_BODY(vec_dot_ny_q4_0_q8_0, block_q4_0, block_q8_0, h2f, q4_0_unpack)
NY_DISPATCH(vec_dot_ny_q4_0_q8_0)
#undef Q8_SCALE_F
#undef Q8_DOT_BODY

static void vec_dot_q8_0_q8_0(int64_t n, float *out, const void *vx, const void *vy)
{
    vec_dot_q8_0_q8_0_body(n, out, 1, vx, vy, 0, 1);
}

static void vec_dot_q4_0_q8_0(int64_t n, float *out, const void *vx, const void *vy)
{
    vec_dot_ny_q4_0_q8_0_body(n, out, 1, vx, vy, 0, 1);
}

/* ---------------------------------------------------------------- Q6_K, Q8_K */

/* Quants 128h + 32g .. +31 (g < 4) of a Q6_K block plus 32 (0..63,
 * unsigned) in value order (layout: types.c q6_K_unpack). */
static inline void q6_K_half(const block_q6_K *b, int h, __m256i q[4])
{
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
    const __m256i l0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
    const __m256i l1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
    const __m256i hb = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
    /* bits 2g, 2g + 1 of each qh byte moved to bits 4, 5 of the same byte
     * (a 16-bit shift carries bits across the byte boundary, but only into
     * positions the mask clears) */
    const __m256i h0 = _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30);
    const __m256i h1 = _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30);
    const __m256i h2 = _mm256_and_si256(hb, m30);
    const __m256i h3 = _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30);
    q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), h0);
    q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), h1);
    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), h2);
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), h3);
}

/* Σ_groups scale·Σ q6·q8 per super-block, exact: Σ (q+32)·q8·s minus
 * 32·Σ s·bsum (no int32 overflow: |sum| <= 256·63·128·128 < 2^31), then
 * the reference's float order. Each half of the block is unpacked once for
 * all the tokens; the int16 scales of a vector's two 16-value groups go to
 * its low and high lane. */
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
    __m256 sumv = _mm256_setzero_ps(); /* ny = 8: sumf[t] in lane t */
    for (int64_t i = 0; i < nb; i++) {
        const block_q6_K *b = &x[i];
        if (ny == 1) PREFETCH_AHEAD(b, 4); /* 210 bytes */
        __m256i acc[KERN_NY];
        PSI_UNROLL for (int t = 0; t < ny; t++) acc[t] = _mm256_setzero_si256();
        /* the 16 scales as int16, 8 per half in both lanes; vector c takes
         * scale 2c in its low lane and 2c + 1 in its high lane (a shuffle) */
        const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
        PSI_UNROLL for (int h = 0; h < 2; h++) {
            __m256i q[4];
            q6_K_half(b, h, q);
            const __m256i sh = h ? _mm256_permute2x128_si256(s16, s16, 0x11) : _mm256_permute2x128_si256(s16, s16, 0x00);
            PSI_UNROLL for (int g = 0; g < 4; g++) {
                const int c = 4 * h + g;
                const short lo = (short)(0x0100 + 0x0404 * g), hi = (short)(0x0302 + 0x0404 * g);
                const __m256i sc = _mm256_shuffle_epi8(sh, _mm256_setr_epi16(lo, lo, lo, lo, lo, lo, lo, lo, hi, hi, hi,
                                                                             hi, hi, hi, hi, hi));
                PSI_UNROLL for (int t = 0; t < ny; t++) {
                    const __m256i p =
                        _mm256_maddubs_epi16(q[g], _mm256_loadu_si256((const __m256i *)(y[t][i].qs + 32 * c)));
                    acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(p, sc));
                    if (ny > 1) PSI_KEEP(acc[t]); /* one token: no spills to avoid, and decode ran slower with it */
                }
            }
        }
        const float dx = h2f(b->d);
        PSI_UNROLL for (int t = 0; t < ny; t++) {
            const __m256i bs = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[t][i].bsums), s16);
            acc[t] = _mm256_sub_epi32(acc[t], _mm256_slli_epi32(bs, 5));
        }
        if (ny == KERN_NY) { /* the 8 tokens' sums at once, one per lane, then the same float steps */
            const __m256i h0 = _mm256_hadd_epi32(_mm256_hadd_epi32(acc[0], acc[1]), _mm256_hadd_epi32(acc[2], acc[3]));
            const __m256i h1 = _mm256_hadd_epi32(_mm256_hadd_epi32(acc[4], acc[5]), _mm256_hadd_epi32(acc[6], acc[7]));
            const __m256i isum = _mm256_add_epi32(_mm256_permute2x128_si256(h0, h1, 0x20),
                                                  _mm256_permute2x128_si256(h0, h1, 0x31));
            const __m256 yd = _mm256_setr_ps(y[0][i].d, y[1][i].d, y[2][i].d, y[3][i].d, y[4][i].d, y[5][i].d,
                                             y[6][i].d, y[7][i].d);
            sumv = _mm256_add_ps(sumv, _mm256_mul_ps(_mm256_mul_ps(yd, _mm256_set1_ps(dx)), _mm256_cvtepi32_ps(isum)));
        } else {
            PSI_UNROLL for (int t = 0; t < ny; t++) sumf[t] += y[t][i].d * dx * (float)hsum_epi32(acc[t]);
        }
    }
    if (ny == KERN_NY) _mm256_storeu_ps(sumf, sumv);
    for (int t = 0; t < ny; t++) out[t * os] = sumf[t];
}
NY_DISPATCH(vec_dot_ny_q6_K_q8_K)

static void vec_dot_q6_K_q8_K(int64_t n, float *out, const void *vx, const void *vy)
{
    vec_dot_ny_q6_K_q8_K_body(n, out, 1, vx, vy, 0, 1);
}

/* ---------------------------------------------------------------- Q4_K, Q5_K */

/* The fifth bits of a block's quants: none for Q4_K, qh for Q5_K. */
static inline __m256i q4_K_high(const block_q4_K *b)
{
    (void)b;
    return _mm256_setzero_si256();
}

static inline __m256i q5_K_high(const block_q5_K *b) { return _mm256_loadu_si256((const __m256i *)b->qh); }

/* Sub-blocks 2c and 2c+1 of a Q4_K block (quants 0..15) as two vectors
 * of 32 in value order (types.c q4_K_unpack). */
static inline void q4_K_pair(const block_q4_K *b, __m256i hb, int c, __m256i *lo, __m256i *hi)
{
    (void)hb;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i v = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
    *lo = _mm256_and_si256(v, m4);
    *hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
}

/* Q5_K: the same plus the fifth bit of value 64c + l at bit 2c of qh[l]
 * and of value 64c + 32 + l at bit 2c + 1 (quants 0..31); hb = qh. */
static inline void q5_K_pair(const block_q5_K *b, __m256i hb, int c, __m256i *lo, __m256i *hi)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    const __m256i v = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
    const __m256i h0 = _mm256_and_si256(_mm256_srl_epi16(hb, _mm_cvtsi32_si128(2 * c)), one);
    const __m256i h1 = _mm256_and_si256(_mm256_srl_epi16(hb, _mm_cvtsi32_si128(2 * c + 1)), one);
    *lo = _mm256_or_si256(_mm256_and_si256(v, m4), _mm256_slli_epi16(h0, 4));
    *hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), _mm256_slli_epi16(h1, 4));
}

/* The 8 sub-block scales as 8 int16 (one 128-bit vector, both lanes), and
 * the mins as 16 int16 (each twice: one per 16-value bsum). The 12 bytes
 * hold 6-bit scales and mins: bytes 0-3 the low 6 bits of scales 0-3,
 * bytes 4-7 those of mins 0-3, bytes 8-11 the low 4 bits of scale (low
 * nibble) and min (high nibble) 4-7, whose top 2 bits are the top bits of
 * bytes 0-7 (types.h get_scale_min_k4), rearranged 32 bits at a time. */
static inline void kq_scales_v(const uint8_t *scales, __m256i *s16, __m256i *m16)
{
    uint32_t u[3];
    memcpy(u, scales, 12);
    const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
    const uint32_t sc03 = u[0] & m6, mn03 = u[1] & m6;
    const uint32_t sc47 = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);
    const uint32_t mn47 = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4);
    *s16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)sc47, (int)sc03)));
    const __m128i mb = _mm_set_epi32(0, 0, (int)mn47, (int)mn03);
    *m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mb, mb));
}

/* Scale j of s16 in every int16 lane. */
static inline __m256i kq_scale(__m256i s16, int j)
{
    return _mm256_shuffle_epi8(s16, _mm256_set1_epi16((short)(0x0100 + 0x0202 * j)));
}

/* Q4_K/Q5_K × Q8_K like types.c's kq_dot_block: the exact integer sums
 * Σ_j sc_j·Σ q·q8 (no int16 overflow: pairs <= 2·31·128; int32 sums <
 * 2^31) and Σ_j m_j·bsums, then d·isum - dmin·msum per super-block in the
 * reference's float order, so the result is the reference's bit for bit. */
#define KQ_DOT_NY(NAME, BT, PAIR, HIGH)                                                                          \
    static inline __attribute__((always_inline)) void NAME##_body(int64_t n, float *out, int64_t os,      \
                                                                  const void *vx, const void *vy,          \
                                                                  size_t ys, const int ny)                 \
    {                                                                                                      \
        const BT *x = vx;                                                                                  \
        const block_q8_K *y[KERN_NY];                                                                      \
        float sumf[KERN_NY];                                                                               \
        for (int t = 0; t < ny; t++) {                                                                     \
            y[t] = (const block_q8_K *)((const uint8_t *)vy + (size_t)t * ys);                             \
            sumf[t] = 0.0f;                                                                                \
        }                                                                                                  \
        const int64_t nb = n / QK_K;                                                                       \
        for (int64_t i = 0; i < nb; i++) {                                                                 \
            const BT *b = &x[i];                                                                           \
            __m256i s16, m16, acc[KERN_NY];                                                                \
            kq_scales_v(b->scales, &s16, &m16);                                                            \
            const __m256i qh = HIGH(b);                                                                    \
            PSI_UNROLL for (int t = 0; t < ny; t++) acc[t] = _mm256_setzero_si256();                       \
            PSI_UNROLL for (int c = 0; c < 4; c++) {                                                       \
                __m256i lo, hi;                                                                            \
                PAIR(b, qh, c, &lo, &hi);                                                                  \
                const __m256i sl = kq_scale(s16, 2 * c), sh = kq_scale(s16, 2 * c + 1);                    \
                PSI_UNROLL for (int t = 0; t < ny; t++) {                                                  \
                    const int8_t *q8 = y[t][i].qs + 64 * c;                                                \
                    const __m256i pl = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q8));  \
                    const __m256i ph = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 32))); \
                    acc[t] = _mm256_add_epi32(acc[t], _mm256_add_epi32(_mm256_madd_epi16(pl, sl),          \
                                                                       _mm256_madd_epi16(ph, sh)));        \
                }                                                                                          \
            }                                                                                              \
            const float dx = h2f(b->d), dmx = h2f(b->dmin);                                                \
            PSI_UNROLL for (int t = 0; t < ny; t++) {                                                      \
                const block_q8_K *yb = &y[t][i];                                                           \
                const __m256i ms = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)yb->bsums), m16); \
                const float d = yb->d * dx, dmin = yb->d * dmx;                                            \
                const float isum = (float)hsum_epi32(acc[t]), msum = (float)hsum_epi32(ms);                \
                const float prod = d * isum, mprod = dmin * msum;                                          \
                sumf[t] += prod - mprod;                                                                   \
            }                                                                                              \
        }                                                                                                  \
        for (int t = 0; t < ny; t++) out[t * os] = sumf[t];                                                \
    }                                                                                                      \
    NY_DISPATCH(NAME)                                                                                      \
    static void NAME##_1(int64_t n, float *out, const void *vx, const void *vy)                           \
    {                                                                                                      \
        NAME##_body(n, out, 1, vx, vy, 0, 1);                                                              \
    }

KQ_DOT_NY(vec_dot_ny_q4_K_q8_K, block_q4_K, q4_K_pair, q4_K_high)
KQ_DOT_NY(vec_dot_ny_q5_K_q8_K, block_q5_K, q5_K_pair, q5_K_high)
#undef KQ_DOT_NY

/* Index of the first of 256 values whose |x| equals amax (> 0, so found). */
static inline int first_abs_eq(const float *x, float amax)
{
    const __m256 m = _mm256_set1_ps(amax), sign = _mm256_set1_ps(-0.0f);
    for (int j = 0; j < QK_K; j += 8) {
        const __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j));
        const int bits = _mm256_movemask_ps(_mm256_cmp_ps(a, m, _CMP_EQ_OQ));
        if (bits) return j + __builtin_ctz((unsigned)bits);
    }
    return 0;
}

static void q8_K_from_f32(const float *src, void *dst, int64_t n)
{
    block_q8_K *y = dst;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float *x = src + i * QK_K;
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8) m = absmax_step(m, _mm256_loadu_ps(x + j));
        const float amax = hmax_ps(m);
        if (amax == 0.0f) {
            y[i].d = 0.0f;
            memset(y[i].qs, 0, sizeof y[i].qs);
            memset(y[i].bsums, 0, sizeof y[i].bsums);
            continue;
        }
        const float max = x[first_abs_eq(x, amax)];
        const float iscale = -127.0f / max;
        const __m256 s = _mm256_set1_ps(iscale);
        for (int j = 0; j < QK_K; j += 32) {
            const __m256i q = round_pack32(_mm256_mul_ps(_mm256_loadu_ps(x + j), s),
                                           _mm256_mul_ps(_mm256_loadu_ps(x + j + 8), s),
                                           _mm256_mul_ps(_mm256_loadu_ps(x + j + 16), s),
                                           _mm256_mul_ps(_mm256_loadu_ps(x + j + 24), s));
            _mm256_storeu_si256((__m256i *)(y[i].qs + j), q);
            /* group sums: 16 int16 → pairs → 4 int32 per group */
            const __m256i one = _mm256_set1_epi16(1);
            const __m256i lo = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(q)), one);
            const __m256i hi = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(q, 1)), one);
            y[i].bsums[j / 16] = (int16_t)hsum_epi32(lo);
            y[i].bsums[j / 16 + 1] = (int16_t)hsum_epi32(hi);
        }
        y[i].d = 1.0f / iscale;
    }
}

/* ---------------------------------------------------------------- tiled products (gemm) */

/* F32, F16 and BF16 weights against f32 activations (BF16's: the values
 * rounded to bf16, bf16x_from_f32), 4 rows × up to 3 tokens per pass
 * (one token: 8 rows a pass).
 * Each output has one 8-lane accumulator: a fused multiply-add per value
 * in turn (lane i % 8; the row's last n % 8 values zero-padded), then
 * hsum_ps. That order is the tiles' own, whatever the tile shape, batch
 * or path (the avx512 table's zmm tile keeps it), so a token's result
 * does not depend on the batch; it differs from the reference's
 * (types.c: a rounded product, then a rounded sum) by a rounding per
 * product, within test_kernels' 2e-6 of Σ|x·y| (FMA rounds once, so it is
 * the more exact of the two). A bf16 × bf16 product is exact in f32, so
 * BF16's tile gives the reference's result bit for bit. Missing rows and
 * tokens of a partial tile repeat the last one and are not stored.
 *
 * Why 4 × 3 with FMA (session 11): per 8 values, 12 FMAs issue on Zen 3's
 * two multiply pipes (6 cycles) and the 4 weight conversions (vcvtph2ps)
 * on the two add pipes (llvm-mca znver3), 96 multiply-adds in 6 cycles
 * where 160 bytes come from L1/L2. Until session 10 the tile was 2 × 4
 * with mul + add to be the reference bit for bit: its 8 adds and 2
 * conversions shared the add pipes (6 cycles for 64 multiply-adds), and
 * each change alone was level in the model (session 7: FMA in the 2 × 4
 * tile, pp512 47.5 against 48.2 tok/s, its 160 bytes per 4 cycles then
 * bound by L2; a 4 × 3 tile with mul + add, pp512 45.8 against 45.8, its
 * 12 adds and 4 conversions on the add pipes). Together, pp512 F16 on the
 * Llama-3.2-1B shape, 2 threads, 4 interleaved rounds: 68.5 against 46.7
 * tok/s (×1.46, range 1.18-1.57). BF16 took the tile then too (it had
 * gone row by row through vec_dot_ny, converting each bf16 activation
 * vector per row): pp512 28.4 against 52.0 tok/s (×1.83, 4 rounds), but
 * generation, which goes through the tile as well, ×0.88 (the perf
 * samples sit on the weight loads: four rows read side by side stall
 * more than one; one thread ×0.78). Prefetching the next 4 rows (L1: one
 * thread ×0.89; L2: ×0.98 with one thread, ×0.81-0.88 with two) or each
 * row 2304 bytes ahead (×0.74 and ×0.85) did not recover it. Session 12:
 * one token now runs all 8 rows of the call in one pass (8 accumulators,
 * 8 loads in flight; more tokens keep 4 × 3, and every output keeps its
 * order): tg64 BF16 ×1.06 and ×1.11 in two runs of 6 interleaved rounds
 * (one thread ×1.09), F16 ×1.00-1.02, 2 threads. Tried and not kept then:
 * 2 rows a pass (slower than 4); prefetching 1-4 KiB ahead (×0.91);
 * float matrices repacked at load as runs of 4 rows with their 8-value
 * runs alternating, so that the tile reads one stream (tg64 F16 ×1.08,
 * BF16 ×1.06, pp512 level, but loading the F16 file took 2.8-3.6 s
 * against 0.4 s: a copy-on-write fault a page; repacking into an
 * anonymous mapping instead was no faster on this VM, which spends as
 * long zeroing the new pages, and erratic with 2 MiB pages); and the row
 * kernels' order, two accumulators an output (alternate groups of 8),
 * which lets one token go a row at a time as vec_dot_ny does (tg64
 * ×1.05-1.13) but left prefill no tile as good as this one: 2 rows × 3
 * tokens ×0.79, 3 × 2 no better, the 4 × 3 tile in two passes (even
 * groups, then odd) ×0.75 (pp512 F16).
 * (Tried before and dropped: for Q8_0/Q4_0, exact integer block sums
 * reduced 8 outputs to a vector with phadd, slower than vec_dot_ny on Zen
 * 3; for F16/F32, dot products cut into k slices kept in L1, with or
 * without a contiguous copy (the slices' short loops cost more than the
 * L2 reads they save; again in session 16 with this tile, 256- and
 * 1024-value slices through all six sub-tiles of a call, accumulators
 * kept in memory between slices: pp512 F16 ×0.70 and ×0.84), software
 * prefetch, F16 activations as llama.cpp has (the 2 × 4 tile then
 * converted 6 vectors per 64 multiply-adds: pp512 40.4 against 49.2),
 * and decode through the FMA vec_dot with two accumulators (another
 * order; faster than the mul + add tile, 10.9 against 9.1-9.4 tok/s, but
 * a token's result would then depend on the batch). On Intel CPUs with
 * AVX-512 the avx512 table replaces this tile for 3 or more tokens by a
 * zmm one with two rows a register (x86_avx512.c). */

#define FLOAT_GEMM(NAME, WT, LOADW)                                                                          \
    static inline __attribute__((always_inline)) void NAME##_sub(int64_t n, const int R, const uint8_t *const *xr, \
                                                                 const uint8_t *const *yr, const int rn,    \
                                                                 float res[8][3])                           \
    {                                                                                                        \
        __m256 acc[8][3];                                                                                    \
        PSI_UNROLL for (int r = 0; r < R; r++) PSI_UNROLL for (int t = 0; t < rn; t++) acc[r][t] =           \
            _mm256_setzero_ps();                                                                             \
        int64_t i = 0;                                                                                       \
        for (; i + 8 <= n; i += 8) {                                                                         \
            __m256 a[3];                                                                                     \
            PSI_UNROLL for (int t = 0; t < rn; t++) a[t] = _mm256_loadu_ps((const float *)yr[t] + i);        \
            PSI_UNROLL for (int r = 0; r < R; r++) {                                                         \
                const __m256 w = LOADW((const WT *)xr[r] + i);                                               \
                PSI_UNROLL for (int t = 0; t < rn; t++) acc[r][t] = _mm256_fmadd_ps(w, a[t], acc[r][t]);    \
            }                                                                                                \
        }                                                                                                    \
        if (i < n) {                                                                                         \
            float ta[3][8] = {{0}};                                                                          \
            for (int t = 0; t < rn; t++) memcpy(ta[t], (const float *)yr[t] + i, (size_t)(n - i) * 4);       \
            for (int r = 0; r < R; r++) {                                                                    \
                WT tw[8] = {0};                                                                              \
                memcpy(tw, (const WT *)xr[r] + i, (size_t)(n - i) * sizeof(WT));                             \
                const __m256 w = LOADW(tw);                                                                  \
                for (int t = 0; t < rn; t++) acc[r][t] = _mm256_fmadd_ps(w, _mm256_loadu_ps(ta[t]), acc[r][t]); \
            }                                                                                                \
        }                                                                                                    \
        PSI_UNROLL for (int r = 0; r < R; r++) PSI_UNROLL for (int t = 0; t < rn; t++) res[r][t] =           \
            hsum_ps(acc[r][t]);                                                                              \
    }                                                                                                        \
    static void NAME(int64_t n, const void *vx, size_t xs, int nx, const void *vy, size_t ys, int ny,        \
                     float *out, int64_t os)                                                                 \
    {                                                                                                        \
        const uint8_t *xr[KERN_MX], *yr[KERN_NY]; /* rows of a last group of 4 past nx repeat the last */    \
        tile_rows(vx, xs, nx, KERN_MX, xr);                                                                  \
        tile_rows(vy, ys, ny, KERN_NY, yr);                                                                  \
        if (ny == 1) { /* one token: all 8 rows in one pass, 8 loads in flight where 4 stalled more */         \
            float res[8][3];                                                                                 \
            NAME##_sub(n, 8, xr, yr, 1, res);                                                                \
            for (int r = 0; r < nx; r++) out[r] = res[r][0];                                                 \
            return;                                                                                          \
        }                                                                                                    \
        for (int t0 = 0; t0 < ny; t0 += 3) {                                                                 \
            const int rn = ny - t0 < 3 ? ny - t0 : 3;                                                        \
            for (int r0 = 0; r0 < nx; r0 += 4) {                                                             \
                float res[8][3];                                                                             \
                switch (rn) {                                                                                \
                case 1: NAME##_sub(n, 4, xr + r0, yr + t0, 1, res); break;                                   \
                case 2: NAME##_sub(n, 4, xr + r0, yr + t0, 2, res); break;                                   \
                default: NAME##_sub(n, 4, xr + r0, yr + t0, 3, res); break;                                  \
                }                                                                                            \
                for (int r = r0; r < nx && r < r0 + 4; r++)                                                  \
                    for (int t = 0; t < rn; t++) out[(t0 + t) * os + r] = res[r - r0][t];                    \
            }                                                                                                \
        }                                                                                                    \
    }

FLOAT_GEMM(gemm_f32, float, _mm256_loadu_ps)
FLOAT_GEMM(gemm_f16, uint16_t, load_f16)
FLOAT_GEMM(gemm_bf16, uint16_t, load_bf16)
#undef FLOAT_GEMM

/* ---------------------------------------------------------------- repacked Q4_0 and Q8_0 (8 rows) */

/* Layouts: block_q4_0x8 and block_q8_0x8 in x86_common.h (Q4_1's and
 * Q5's below). One repack/unpack pair per type: row r's fields of block i
 * to and from group block i; MINS (REPACK_ALSO or REPACK_NOT): the type
 * has mins m, FIVE: fifth bits qh. */

/* Quant j of a block (0..31) sits in vector v = j / 16 * 4 + j % 16 / 4,
 * byte j % 4 of a run: the bit of the rearranged word. */
static inline int q5x8_bit(int j) { return 8 * (j % 4) + (j / 16 * 4 + j % 16 / 4); }

static inline uint32_t q5x8_word(const uint8_t qh[4])
{
    uint32_t h, w = 0;
    memcpy(&h, qh, 4);
    for (int j = 0; j < 32; j++) w |= (h >> j & 1u) << q5x8_bit(j);
    return w;
}

static inline void q5x8_unword(uint32_t w, uint8_t qh[4])
{
    uint32_t h = 0;
    for (int j = 0; j < 32; j++) h |= (w >> q5x8_bit(j) & 1u) << j;
    memcpy(qh, &h, 4);
}
#define REPACK_ALSO(x) x
#define REPACK_NOT(x)
#define REPACK8(NAME, BT, GT, QBYTES, MINS, FIVE)                                                       \
    static void NAME(int64_t n, const void *src, size_t row_size, void *dst)                          \
    {                                                                                                  \
        GT *g = dst;                                                                                   \
        for (int64_t i = 0; i < n / 32; i++) {                                                         \
            for (int r = 0; r < 8; r++) {                                                              \
                const BT *b = (const BT *)((const uint8_t *)src + (size_t)r * row_size) + i;           \
                g[i].d[r] = b->d;                                                                      \
                MINS(g[i].m[r] = b->m;)                                                                \
                FIVE(g[i].qh[r] = q5x8_word(b->qh);)                                                   \
                for (int m = 0; m < (QBYTES) / 4; m++) memcpy(&g[i].qs[4 * (8 * m + r)], &b->qs[4 * m], 4); \
            }                                                                                          \
        }                                                                                              \
    }                                                                                                  \
    static void NAME##_row(int64_t n, const void *group, int r, void *row)                            \
    {                                                                                                  \
        const GT *g = group;                                                                           \
        BT *b = row;                                                                                   \
        for (int64_t i = 0; i < n / 32; i++) {                                                         \
            b[i].d = g[i].d[r];                                                                        \
            MINS(b[i].m = g[i].m[r];)                                                                  \
            FIVE(q5x8_unword(g[i].qh[r], b[i].qh);)                                                    \
            for (int m = 0; m < (QBYTES) / 4; m++) memcpy(&b[i].qs[4 * m], &g[i].qs[4 * (8 * m + r)], 4); \
        }                                                                                              \
    }
REPACK8(repack8_q4_0, block_q4_0, block_q4_0x8, 16, REPACK_NOT, REPACK_NOT)

/* The 8 rows' exact sums of a Q4_0 group block for one token: unsigned
 * nibbles (0..15: pair sums <= 3810, so 8 of them add in int16); the
 * caller subtracts 8·Σy and does the reference's float step (no FMA), so
 * the result is the reference's bit for bit. */
static inline __m256i q4_0x8_sums(const __m256i lo[4], const __m256i hi[4], const int8_t *yq)
{
    __m256i s = _mm256_setzero_si256();
    for (int m = 0; m < 4; m++) {
        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(lo[m], bcast4(yq + 4 * m)));
        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(hi[m], bcast4(yq + 16 + 4 * m)));
    }
    return _mm256_madd_epi16(s, _mm256_set1_epi16(1));
}
/* This tile is at its vector-pipe limit on Zen 3 (llvm-mca: 32.6
 * operations per 256 multiply-adds at 8 tokens, a quarter of them the
 * activation broadcasts; measured ~28 a cycle, as modelled). Tried in
 * session 10 and not kept: a gemm16 of two groups × 4 tokens a pass,
 * each broadcast serving both groups (27.6 operations per 256; the int16
 * sums need PSI_KEEP, or GCC forms every product first and spills). Bit
 * for bit right; one thread, n 2048, 8 tokens: in cache 92-96 against
 * 88-90 GMAC/s, but from memory 75-83 against 85, the two groups 9 KiB
 * apart being two streams, and the 8-stream engine was no faster. With
 * the two groups' blocks interleaved it ran 87-93 against 84-86 from
 * memory; that layout (repack16/unpack16, gemm16 for every token count,
 * gemm8 for a last group of 8, PSI_REPACK=8 to compare) was all bit for
 * bit, but the engine was level with it (8-stream decode, 10 interleaved
 * rounds: median 81.8 against 80.85 tok/s; pp512 and tg128 level too), so
 * it was not merged (its branch, q4_0-x16, was local and is gone).
 * Tried in session 13 against this tile (one thread, 8 tokens, n 2048,
 * medians of alternating runs; all bit for bit, none kept):
 * - the activations of 8 tokens in 8 rotations made once per product,
 *   full loads folded into vpmaddubsw instead of broadcasts (lane r with
 *   token (r + k) mod 8): 1.03-1.07x in L1, but 2.5 KiB a block against
 *   0.3, 0.64-0.82x once they spill to L2; with the loops swapped (8 int16
 *   sums live) 0.77x;
 * - 4-row × 2-slice vectors (vpunpck[lh]dq of the repacked ones, once a
 *   block) times 8-byte broadcasts, two tokens' halves summed by vphaddd:
 *   half the broadcasts, 0.89-1.0x;
 * - broadcasts made in registers (vbroadcasti128 + vpshufd) instead of
 *   from memory, for half or all of them: 0.91-0.96x.
 * So the limit is the vector ALUs, not the loads (what Q4_K's tile was
 * bound by until that session, x86_common.h KX8_ISUMS). */
GEMM8_Q4_0(gemm8_q4_0, q4_0x8_sums)

/* Repacked Q8_0 (block_q8_0x8, x86_common.h). Per block and row the
 * reference's exact integer sum, then its float order, as gemm8_q4_0.
 * Signed × signed bytes through maddubs (u8 × s8) take the sign trick,
 * |x| · (y with x's sign): |x| once per block for all the tokens, the sign
 * per vector and token. A pair sum reaches 2·128·127, so two of them no
 * longer fit int16: each vector's go to int32 at once (madd), the cost
 * Q4_0's small nibbles avoid (about four operations per 32
 * multiply-adds against two; widening with shifts instead of madd, or an
 * 8-token call as two 4-token passes, measured slower).
 * An earlier try of this kernel was dropped as slower in the model (pp
 * 32-41 against 44-46 tok/s with PSI_REPACK=0) though faster in
 * bench_kernels: that tree was built at -O2, where GCC kept the 8-vector
 * loops rolled with |x| in an indexed stack array; rebuilt at -O3 the same
 * code was ahead (pp512 24 against 17 tok/s, a loaded machine). Hence
 * PSI_UNROLL on those loops. */
REPACK8(repack8_q8_0, block_q8_0, block_q8_0x8, 32, REPACK_NOT, REPACK_NOT)

/* A token's 8 row sums: |x| (ax, once per block) times y with x's sign
 * (the block's own bytes qs). */
static inline __attribute__((always_inline)) __m256i q8_0x8_sums(const __m256i ax[8], const int8_t *qs,
                                                                const block_q8_0x *yb)
{
    const __m256i one = _mm256_set1_epi16(1);
    __m256i s = _mm256_setzero_si256();
    PSI_UNROLL for (int m = 0; m < 8; m++) {
        const __m256i xv = _mm256_loadu_si256((const __m256i *)(qs + 32 * m));
        const __m256i p = _mm256_maddubs_epi16(ax[m], _mm256_sign_epi8(bcast4(yb->qs + 4 * m), xv));
        s = _mm256_add_epi32(s, _mm256_madd_epi16(p, one));
    }
    return s;
}
GEMM8_Q8_0(gemm8_q8_0, _mm256_abs_epi8, q8_0x8_sums)

/* ---------------------------------------------------------------- repacked Q4_1, Q5_0, Q5_1 (8 rows) */

REPACK8(repack8_q4_1, block_q4_1, block_q4_1x8, 16, REPACK_ALSO, REPACK_NOT)
REPACK8(repack8_q5_0, block_q5_0, block_q5_0x8, 16, REPACK_NOT, REPACK_ALSO)
REPACK8(repack8_q5_1, block_q5_1, block_q5_1x8, 16, REPACK_ALSO, REPACK_ALSO)

/* The 8 rows' exact Σ q·y for 5-bit quants: pair sums <= 2·31·127, so four
 * add in int16. */
static inline __m256i q5x8_sums(const __m256i q[8], const int8_t *yq)
{
    __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
    for (int m = 0; m < 4; m++) {
        lo = _mm256_add_epi16(lo, _mm256_maddubs_epi16(q[m], bcast4(yq + 4 * m)));
        hi = _mm256_add_epi16(hi, _mm256_maddubs_epi16(q[4 + m], bcast4(yq + 16 + 4 * m)));
    }
    const __m256i one = _mm256_set1_epi16(1);
    return _mm256_add_epi32(_mm256_madd_epi16(lo, one), _mm256_madd_epi16(hi, one));
}
GEMM8_LEGACY(q4_0x8_sums, q5x8_sums)


#undef REPACK8
#undef REPACK_ALSO
#undef REPACK_NOT

/* ---------------------------------------------------------------- repacked Q4_K and Q5_K (8 rows) */

/* Layouts: block_q4_Kx8 and block_q5_Kx8 in x86_common.h. The fields both
 * share, for row r of super-block b. */
#define KX8_COMMON(G, B, R)                                                                              \
    do {                                                                                                 \
        (G)->d[R] = (B)->d;                                                                              \
        (G)->dmin[R] = (B)->dmin;                                                                        \
        uint32_t s_[2] = {0, 0}, mn_ = 0; /* sa, sb */                                                   \
        for (int j = 0; j < 8; j++) {                                                                    \
            uint8_t sc_, m_;                                                                             \
            get_scale_min_k4(j, (B)->scales, &sc_, &m_);                                                 \
            s_[j / 4] |= (uint32_t)(sc_ | (m_ >> 4) << 6) << (8 * (j % 4));                              \
            mn_ |= (uint32_t)(m_ & 15) << (8 * (j % 4) + 4 * (j / 4));                                   \
        }                                                                                                \
        (G)->sa[R] = s_[0];                                                                              \
        (G)->sb[R] = s_[1];                                                                              \
        (G)->mn[R] = mn_;                                                                                \
        for (int c = 0; c < 4; c++)                                                                      \
            for (int k = 0; k < 8; k++) memcpy(&(G)->qs[256 * c + 32 * k + 4 * (R)], &(B)->qs[32 * c + 4 * k], 4); \
    } while (0)

static void repack8_q4_K(int64_t n, const void *src, size_t row_size, void *dst)
{
    block_q4_Kx8 *g = dst;
    for (int64_t i = 0; i < n / QK_K; i++)
        for (int r = 0; r < 8; r++) {
            const block_q4_K *b = (const block_q4_K *)((const uint8_t *)src + (size_t)r * row_size) + i;
            KX8_COMMON(&g[i], b, r);
        }
}

static void repack8_q5_K(int64_t n, const void *src, size_t row_size, void *dst)
{
    block_q5_Kx8 *g = dst;
    for (int64_t i = 0; i < n / QK_K; i++)
        for (int r = 0; r < 8; r++) {
            const block_q5_K *b = (const block_q5_K *)((const uint8_t *)src + (size_t)r * row_size) + i;
            KX8_COMMON(&g[i], b, r);
            for (int c = 0; c < 4; c++) /* layout: block_q5_Kx8, x86_common.h */
                for (int j = 0; j < 2; j++)
                    for (int by = 0; by < 4; by++) {
                        uint8_t o = 0;
                        for (int m = 0; m < 4; m++)
                            for (int h = 0; h < 2; h++)
                                o |= (uint8_t)((b->qh[4 * (4 * j + m) + by] >> (2 * c + h) & 1) << (2 * m + h));
                        g[i].qh[64 * c + 32 * j + 4 * r + by] = o;
                    }
        }
}
#undef KX8_COMMON

static size_t q8_Kx_row(int64_t n) { return (size_t)(n / QK_K) * sizeof(block_q8_Kx); }

static void q8_Kx_from_f32(const float *src, void *dst, int64_t n)
{
    block_q8_Kx *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        block_q8_K b;
        q8_K_from_f32(src + i * QK_K, &b, QK_K);
        y[i].d = b.d;
        memcpy(y[i].qs, b.qs, QK_K);
        for (int p = 0; p < 4; p++) {
            const int a0 = b.bsums[4 * p] + b.bsums[4 * p + 1], a1 = b.bsums[4 * p + 2] + b.bsums[4 * p + 3];
            y[i].bj[p] = (int32_t)((uint32_t)(uint16_t)a0 | (uint32_t)(uint16_t)a1 << 16);
        }
    }
}

/* The Q4_K/Q5_K tile (KX8_GEMM and KX8_ISUMS, x86_common.h): one token's
 * Σ q·y over sub-block j's 8 quant vectors w, times the scale sc (int16
 * pairs): the products add in int16 (at most 8 Q4_K or 4 Q5_K pair
 * products: <= 8·2·15·127, 4·2·31·127), then go to int32. Exact, so with
 * the reference's float steps bit for bit. */
static inline __attribute__((always_inline)) __m256i kx8_sub(const __m256i w[8], const int8_t *yq, __m256i sc,
                                                             const int five)
{
    /* s0: vectors 0-3; s1: 4-7, and for Q4_K 0-3 too */
    __m256i s0 = _mm256_maddubs_epi16(w[0], bcast4(yq));
    PSI_UNROLL for (int k = 1; k < 4; k++) {
        s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(w[k], bcast4(yq + 4 * k)));
        PSI_KEEP(s0); /* added in this order, not all products first (spills) */
    }
    __m256i s1 = _mm256_maddubs_epi16(w[4], bcast4(yq + 16));
    if (!five) s1 = _mm256_add_epi16(s1, s0);
    PSI_UNROLL for (int k = 5; k < 8; k++) {
        s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(w[k], bcast4(yq + 4 * k)));
        PSI_KEEP(s1);
    }
    const __m256i p = _mm256_madd_epi16(s1, sc);
    return five ? _mm256_add_epi32(p, _mm256_madd_epi16(s0, sc)) : p;
}
KX8_ISUMS(kx8_isums, kx8_sub)
KX8_GEMM(gemm8_q4_K, block_q4_Kx8, 0, b->qs, 0, kx8_isums)
KX8_GEMM(gemm8_q5_K, block_q5_Kx8, 1, b->qh, 0, kx8_isums)

/* ---------------------------------------------------------------- repacked Q6_K (8 rows) */

/* Layout: block_q6_Kx8 in x86_common.h. A row's 256 quants u = q + 32
 * (0..63) in value order, from and to Q6_K's own layout (types.c
 * q6_K_unpack: value l + 32j of half h has its low 4 bits in
 * ql[64h + l + 32(j & 1)], low nibble for j < 2, and its top 2 at bit 2j
 * of qh[32h + l]). */
static inline void st4(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* (4 bytes at a time: a mask keeps each byte's bits in their byte) */
static void q6_K_values(const block_q6_K *b, uint8_t u[QK_K])
{
    const uint32_t m4 = 0x0f0f0f0f, m2 = 0x03030303;
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l += 4) {
            const uint32_t a = rd_u32(b->ql + 64 * h + l), c = rd_u32(b->ql + 64 * h + 32 + l), q = rd_u32(b->qh + 32 * h + l);
            st4(u + 128 * h + l, (a & m4) | (q & m2) << 4);
            st4(u + 128 * h + 32 + l, (c & m4) | (q >> 2 & m2) << 4);
            st4(u + 128 * h + 64 + l, (a >> 4 & m4) | (q >> 4 & m2) << 4);
            st4(u + 128 * h + 96 + l, (c >> 4 & m4) | (q >> 6 & m2) << 4);
        }
}

static void q6_K_from_values(const uint8_t u[QK_K], block_q6_K *b)
{
    const uint32_t m4 = 0x0f0f0f0f, m2 = 0x03030303;
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l += 4) {
            const uint32_t v0 = rd_u32(u + 128 * h + l), v1 = rd_u32(u + 128 * h + 32 + l);
            const uint32_t v2 = rd_u32(u + 128 * h + 64 + l), v3 = rd_u32(u + 128 * h + 96 + l);
            st4(b->ql + 64 * h + l, (v0 & m4) | (v2 & m4) << 4);
            st4(b->ql + 64 * h + 32 + l, (v1 & m4) | (v3 & m4) << 4);
            st4(b->qh + 32 * h + l, (v0 >> 4 & m2) | (v1 >> 4 & m2) << 2 | (v2 >> 4 & m2) << 4 | (v3 >> 4 & m2) << 6);
        }
}

static void repack8_q6_K(int64_t n, const void *src, size_t row_size, void *dst)
{
    block_q6_Kx8 *g = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t u[8][QK_K];
        for (int r = 0; r < 8; r++) {
            const block_q6_K *b = (const block_q6_K *)((const uint8_t *)src + (size_t)r * row_size) + i;
            q6_K_values(b, u[r]);
            g[i].d[r] = b->d;
            for (int s = 0; s < QK_K / 16; s++) g[i].sc[s / 2][r][s % 2] = b->scales[s];
        }
        for (int r = 0; r < 8; r++) {
            for (int k = 0; k < 32; k++) /* ql chunk k: vectors 2k, 2k + 1 */
                st4(g[i].ql + 32 * k + 4 * r, (rd_u32(u[r] + 8 * k) & 0x0f0f0f0f) | (rd_u32(u[r] + 8 * k + 4) & 0x0f0f0f0f) << 4);
            for (int q = 0; q < 16; q++) { /* qh chunk q: vectors 4q .. 4q + 3 */
                uint32_t w = 0;
                for (int j = 0; j < 4; j++) w |= (rd_u32(u[r] + 16 * q + 4 * j) >> 4 & 0x03030303) << (2 * j);
                st4(g[i].qh + 32 * q + 4 * r, w);
            }
        }
    }
}

static void repack8_q6_K_row(int64_t n, const void *group, int r, void *row)
{
    const block_q6_Kx8 *g = group;
    block_q6_K *b = row;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t u[QK_K];
        for (int m = 0; m < 64; m++) {
            const uint32_t lo = rd_u32(g[i].ql + 32 * (m / 2) + 4 * r) >> (4 * (m % 2)) & 0x0f0f0f0f;
            const uint32_t hi = rd_u32(g[i].qh + 32 * (m / 4) + 4 * r) >> (2 * (m % 4)) & 0x03030303;
            st4(u + 4 * m, lo | hi << 4);
        }
        q6_K_from_values(u, &b[i]);
        for (int s = 0; s < QK_K / 16; s++) b[i].scales[s] = g[i].sc[s / 2][r][s % 2];
        b[i].d = g[i].d[r];
    }
}

#define MADD_ACC(acc, p, sc) _mm256_add_epi32((acc), _mm256_madd_epi16((p), (sc)))
Q6X8_GEMM(gemm8_q6_K, MADD_ACC)
#undef MADD_ACC

GEMM8_DISPATCH(gemm8_q4_0)
GEMM8_DISPATCH(gemm8_q8_0)
GEMM8_DISPATCH(gemm8_q4_K)
GEMM8_DISPATCH(gemm8_q5_K)

/* ---------------------------------------------------------------- table */

void kernels_fill_avx2(kernels *k)
{
    k->t[PSI_TYPE_F32].vec_dot = vec_dot_ny_f32_1;
    k->t[PSI_TYPE_F32].vec_dot_ny = vec_dot_ny_f32;
    k->t[PSI_TYPE_F16].vec_dot = vec_dot_ny_f16_f32_1;
    k->t[PSI_TYPE_F16].vec_dot_ny = vec_dot_ny_f16_f32;
    k->t[PSI_TYPE_BF16].vec_dot = vec_dot_ny_bf16_1;
    k->t[PSI_TYPE_BF16].vec_dot_ny = vec_dot_ny_bf16;
    k->t[PSI_TYPE_BF16].from_float = bf16_from_f32;
    k->t[PSI_TYPE_F16].from_float = f16_from_f32_f16c;
    k->t[PSI_TYPE_Q8_0].vec_dot = vec_dot_q8_0_q8_0;
    k->t[PSI_TYPE_Q8_0].vec_dot_ny = vec_dot_ny_q8_0_q8_0x;
    k->t[PSI_TYPE_Q8_0].ny_from_float = q8_0x_from_f32;
    k->t[PSI_TYPE_Q8_0].ny_act_row = q8_0x_row;
    k->t[PSI_TYPE_Q8_0].from_float = q8_0_from_f32;
    k->t[PSI_TYPE_Q4_0].vec_dot = vec_dot_q4_0_q8_0;
    k->t[PSI_TYPE_Q4_0].vec_dot_ny = vec_dot_ny_q4_0_q8_0;
    k->t[PSI_TYPE_F32].gemm = gemm_f32;
    k->t[PSI_TYPE_F16].gemm = gemm_f16;
    k->t[PSI_TYPE_BF16].gemm = gemm_bf16;
    k->t[PSI_TYPE_BF16].gemm_from_float = bf16x_from_f32;
    k->t[PSI_TYPE_BF16].gemm_act_row = bf16x_row;
    k->t[PSI_TYPE_Q8_0].repack8 = repack8_q8_0;
    k->t[PSI_TYPE_Q8_0].gemm8 = gemm8_q8_0;
    k->t[PSI_TYPE_Q8_0].unpack8 = repack8_q8_0_row;
    k->t[PSI_TYPE_Q8_0].x8_from_float = q8_0x_from_f32;
    k->t[PSI_TYPE_Q8_0].x8_act_row = q8_0x_row;
    k->t[PSI_TYPE_Q4_0].repack8 = repack8_q4_0;
    k->t[PSI_TYPE_Q4_0].gemm8 = gemm8_q4_0;
    k->t[PSI_TYPE_Q4_0].unpack8 = repack8_q4_0_row;
    k->t[PSI_TYPE_Q4_0].x8_from_float = q8_0x_from_f32;
    k->t[PSI_TYPE_Q4_0].x8_act_row = q8_0x_row;
    k->t[PSI_TYPE_Q4_1].repack8 = repack8_q4_1;
    k->t[PSI_TYPE_Q4_1].gemm8 = gemm8_q4_1;
    k->t[PSI_TYPE_Q4_1].unpack8 = repack8_q4_1_row;
    k->t[PSI_TYPE_Q4_1].x8_from_float = q8_1x_from_f32;
    k->t[PSI_TYPE_Q4_1].x8_act_row = q8_1x_row;
    k->t[PSI_TYPE_Q5_0].repack8 = repack8_q5_0;
    k->t[PSI_TYPE_Q5_0].gemm8 = gemm8_q5_0;
    k->t[PSI_TYPE_Q5_0].unpack8 = repack8_q5_0_row;
    k->t[PSI_TYPE_Q5_0].x8_from_float = q8_0x_from_f32;
    k->t[PSI_TYPE_Q5_0].x8_act_row = q8_0x_row;
    k->t[PSI_TYPE_Q5_1].repack8 = repack8_q5_1;
    k->t[PSI_TYPE_Q5_1].gemm8 = gemm8_q5_1;
    k->t[PSI_TYPE_Q5_1].unpack8 = repack8_q5_1_row;
    k->t[PSI_TYPE_Q5_1].x8_from_float = q8_1x_from_f32;
    k->t[PSI_TYPE_Q5_1].x8_act_row = q8_1x_row;
    k->t[PSI_TYPE_Q4_K].x8_from_float = q8_Kx_from_f32;
    k->t[PSI_TYPE_Q4_K].x8_act_row = q8_Kx_row;
    k->t[PSI_TYPE_Q5_K].x8_from_float = q8_Kx_from_f32;
    k->t[PSI_TYPE_Q5_K].x8_act_row = q8_Kx_row;
    k->t[PSI_TYPE_Q4_K].repack8 = repack8_q4_K;
    k->t[PSI_TYPE_Q4_K].gemm8 = gemm8_q4_K;
    k->t[PSI_TYPE_Q5_K].repack8 = repack8_q5_K;
    k->t[PSI_TYPE_Q5_K].gemm8 = gemm8_q5_K;
    k->t[PSI_TYPE_Q4_K].vec_dot = vec_dot_ny_q4_K_q8_K_1;
    k->t[PSI_TYPE_Q4_K].vec_dot_ny = vec_dot_ny_q4_K_q8_K;
    k->t[PSI_TYPE_Q5_K].vec_dot = vec_dot_ny_q5_K_q8_K_1;
    k->t[PSI_TYPE_Q5_K].vec_dot_ny = vec_dot_ny_q5_K_q8_K;
    k->t[PSI_TYPE_Q6_K].vec_dot = vec_dot_q6_K_q8_K;
    k->t[PSI_TYPE_Q6_K].vec_dot_ny = vec_dot_ny_q6_K_q8_K;
    k->t[PSI_TYPE_Q6_K].repack8 = repack8_q6_K;
    k->t[PSI_TYPE_Q6_K].gemm8 = gemm8_q6_K;
    k->t[PSI_TYPE_Q6_K].unpack8 = repack8_q6_K_row;
    k->t[PSI_TYPE_Q8_K].from_float = q8_K_from_f32;
}

#else

void kernels_fill_avx2(kernels *k) { (void)k; }

#endif
