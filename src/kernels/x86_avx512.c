/*
 * x86_avx512.c — AVX-512 (F, BW, VL) + VNNI kernels (Ice Lake, Sapphire
 * Rapids, Zen 4 and later). Compiled with those flags for this file only;
 * dispatch.c installs them over the AVX2 table (the quantizers stay AVX2)
 * when the CPU has them and the OS saves the ZMM and opmask state.
 *
 * Measured on such a CPU (a 16-core Sapphire Rapids-class Xeon,
 * 2026-11-27; bench_kernels one thread, n 2048, 8 tokens; `psi bench -t 2`
 * on the Llama-3.2-1B shape): the repacked tiles (gemm8) with VNNI's
 * vpdpbusd, which sums u8 × s8 quadruples straight into int32 — Q4_0 68.5
 * against AVX2's 56.0 GMAC/s (model pp512 116-137 against 93-112 tok/s),
 * Q5_K 59.3 against 56.4, Q4_K level (65.4 / 67.0 in cache, 50.3 / 49.7
 * from memory) — and the Q4_0 rows (a little ahead). Session 8, same CPU:
 * the repacked Q8_0 tile (weights as x + 128 unsigned: 2 instructions
 * per 32 multiply-adds against the AVX2 sign trick's 5) 94.7-98.4 against
 * AVX2's 47.9-51.1 GMAC/s, pp512 100-157 against 64-76 tok/s (noisy);
 * Q5_0 88.6 against 69.4, Q5_1 96.6 against 71.0; Q4_1 67.0 and 88.8 in
 * two runs against 81.6 and 79.8 (undecided, kept). The float tile
 * below (F16/F32 weights, two rows a zmm) 26.0 against AVX2's 13.9
 * GMAC/s for F16, 21.3 against 12.8 for F32; pp512 F16 52.1 against 33.3
 * tok/s. VNNI versions of the
 * Q8_0 rows (17.0 against 19.6 GMAC/s; decode equal) and of Q6_K (29.4
 * against 41.3: one vpmulld per 32 values where AVX2 folds the scale into
 * vpmaddwd) were slower and were removed. The tiles give the reference's
 * results bit for bit (the same integer sums, the float steps in its
 * order); the Q4_0 rows, like AVX2's, add in another order. On that CPU
 * test_kernels passed on every path and test_reference's Q4_0, Q8_0 and
 * Q4_K_M cases matched as on AVX2, so dispatch.c uses this table
 * wherever the CPU has it (and the amx table, x86_amx.c, which adds to
 * this one, where the CPU has AMX too).
 * Tried there and dropped: AMX (TDPBSUD) for the same repacked Q4_0 tile,
 * one 8 × ny tile product per 32-value block with the int32 sums stored
 * and scaled as here — bit for bit right, but 42-52 against 63-72
 * GMAC/s, model pp512 81-93 against 114-130 tok/s: tile configuration,
 * the store of every block's sums and a unit a quarter used cost more
 * than the products. AMX needs bigger tiles with an interface of their
 * own: x86_amx.c.
 */
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

/* The test build's copy of this file (tests/CMakeLists.txt): SIMDe, when
 * installed, stands in for the AVX-512 instructions on a CPU without them,
 * so test_kernels checks these kernels' results on any x86-64 with AVX2.
 * Each emulated instruction is a function call (inlined into the unrolled
 * kernels, SIMDe's code took GCC minutes to compile); an instruction used
 * here needs a line below. */
#ifdef PSI_AVX512_EMU
#include <simde/x86/avx512/dpbusd.h>
#define kernels_fill_avx512 kernels_fill_avx512_emu
void kernels_fill_avx512_emu(kernels *k);
__attribute__((noinline)) static __m256i emu_dpbusd_epi32(__m256i s, __m256i a, __m256i b)
{
    return simde_mm256_dpbusd_epi32(s, a, b);
}
#undef _mm256_dpbusd_epi32 /* the immintrin.h name, now the emulation */
#define _mm256_dpbusd_epi32 emu_dpbusd_epi32
#include <simde/x86/avx512/dpwssd.h>
__attribute__((noinline)) static __m256i emu_dpwssd_epi32(__m256i s, __m256i a, __m256i b)
{
    return simde_mm256_dpwssd_epi32(s, a, b);
}
#undef _mm256_dpwssd_epi32
#define _mm256_dpwssd_epi32 emu_dpwssd_epi32
#endif

#include "x86_common.h"


/* ---------------------------------------------------------------- Q4_0 rows */

/* 8 int32 lanes of Σ x·y over byte quadruples (x, y signed, |y| <= 127):
 * |x| (unsigned) times y carrying x's sign. */
static inline __m256i dot_i8(__m256i x, __m256i y)
{
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
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
        if (ny == 1) PREFETCH_AHEAD(&x[i], 1);
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

/* ---------------------------------------------------------------- repacked groups of 8 rows */

/* The AVX2 gemm8 kernels' products on the same repacked bytes and
 * activations (x86_common.h), with vpdpbusd summing each quadruple
 * straight into int32: the AVX2 kernels need maddubs, int16 adds and a
 * madd for that. The integer sums are the same exact numbers, and the
 * float steps the same operations, so the results are the AVX2 kernels'
 * (and the reference's) bit for bit. */
static inline __m256i q4_0x8_sums(const __m256i lo[4], const __m256i hi[4], const int8_t *yq)
{
    __m256i s = _mm256_setzero_si256();
    for (int m = 0; m < 4; m++) {
        s = _mm256_dpbusd_epi32(s, lo[m], bcast4(yq + 4 * m));
        s = _mm256_dpbusd_epi32(s, hi[m], bcast4(yq + 16 + 4 * m));
    }
    return s;
}
GEMM8_Q4_0(gemm8_q4_0, q4_0x8_sums)

/* Repacked Q8_0: vpdpbusd multiplies unsigned by signed bytes, so the
 * weights go in as x + 128 (x xor 0x80, once per block for all the
 * tokens) and the sum comes back exact by taking 128·Σy = 16 · (8·Σy, the
 * activation block's s8) off: two operations (the broadcast and vpdpbusd)
 * per 32 multiply-adds of a token against AVX2's sign trick's five.
 * Validated bit for bit under emulation (test_kernels' avx512e), not yet
 * timed on an AVX-512 CPU. */
static inline __m256i q8_0_unsigned(__m256i x) { return _mm256_xor_si256(x, _mm256_set1_epi8((char)0x80)); }

static inline __attribute__((always_inline)) __m256i q8_0x8_sums(const __m256i ux[8], const int8_t *qs,
                                                                const block_q8_0x *yb)
{
    (void)qs;
    __m256i s = _mm256_setzero_si256();
    PSI_UNROLL for (int m = 0; m < 8; m++) s = _mm256_dpbusd_epi32(s, ux[m], bcast4(yb->qs + 4 * m));
    return _mm256_sub_epi32(s, _mm256_set1_epi32(16 * yb->s8));
}
GEMM8_Q8_0(gemm8_q8_0, q8_0_unsigned, q8_0x8_sums)

/* Q4_1, Q5_0, Q5_1 (layouts in x86_common.h, repacked by the AVX2
 * code): vpdpbusd sums 5-bit quants straight into int32 as it does 4-bit
 * ones, where AVX2 needs two int16 accumulators. Checked bit for bit
 * under emulation only. */
static inline __m256i q5x8_sums(const __m256i q[8], const int8_t *yq) { return q4_0x8_sums(q, q + 4, yq); }
GEMM8_LEGACY(q4_0x8_sums, q5x8_sums)

/* Q4_K/Q5_K (KX8_ISUMS, x86_common.h): one token's 32 products per row
 * of sub-block j summed in int32 by vpdpbusd (|sum| <= 32·31·127; two
 * chains of 4), times the 6-bit scale as int32 (vpmulld), so no int16
 * partial sums and no 4-vector runs for Q5_K. Exact: bit for bit the
 * reference (checked under emulation). The loop order AVX2 took in session
 * 13 (one load per multiply-add instead of two) is untimed here: the next
 * session with an AVX-512 CPU should compare bench_kernels Q4_K,Q5_K
 * (avx512 against avx2, and against 5f1ea76's avx512 build). */
static inline __attribute__((always_inline)) __m256i kx8_sub(const __m256i w[8], const int8_t *yq, __m256i sc,
                                                             const int five)
{
    (void)five;
    __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
    PSI_UNROLL for (int k = 0; k < 4; k++) {
        s0 = _mm256_dpbusd_epi32(s0, w[k], bcast4(yq + 4 * k));
        s1 = _mm256_dpbusd_epi32(s1, w[4 + k], bcast4(yq + 16 + 4 * k));
    }
    return _mm256_mullo_epi32(_mm256_add_epi32(s0, s1), sc);
}
KX8_ISUMS(kx8_isums, kx8_sub)
KX8_GEMM(gemm8_q4_K, block_q4_Kx8, 0, b->qs, 1, kx8_isums)
KX8_GEMM(gemm8_q5_K, block_q5_Kx8, 1, b->qh, 1, kx8_isums)

GEMM8_DISPATCH(gemm8_q8_0)
GEMM8_DISPATCH(gemm8_q4_0)
GEMM8_DISPATCH(gemm8_q4_K)
GEMM8_DISPATCH(gemm8_q5_K)

/* Repacked Q6_K (x86_common.h): vpdpwssd adds a group's scaled int16 pair
 * sums straight into the int32 sums (AVX2: vpmaddwd, then an add).
 * NOT TIMED yet on an AVX-512 CPU (written in session 9, without one). */
Q6X8_GEMM(gemm8_q6_K, _mm256_dpwssd_epi32)

/* ---------------------------------------------------------------- float tile (F32, F16)

 * The AVX2 tile (FLOAT_GEMM) keeps each (row, token) sum in 8 lanes
 * (lane k a fused multiply-add of every position ≡ k mod 8 in turn, then
 * hsum_ps). Here a zmm holds two rows' 8 lanes (row r in 0-7, r + 1 in
 * 8-15) against one token's 8 activations in both halves: the same
 * operations in the same order, 16 lanes an instruction, so Intel's two
 * 512-bit FMA ports give twice AVX2's multiply-adds and a token's result
 * is the AVX2 tile's bit for bit. (Until session 10 both tiles did mul +
 * add, the reference's rounding, at half the FMA peak.) Tile: 8 rows (4
 * pairs) × 4 tokens, 16 accumulators; 1-2 tokens (decode, bound by
 * memory) keep the AVX2 tile.
 *
 * f32x16 and its few operations: zmm, or in the test build (SIMDe lacks
 * the conversions) two ymm halves doing the same lane for lane. */
#ifdef PSI_AVX512_EMU
typedef struct { __m256 lo, hi; } f32x16;
static inline f32x16 v16_pair(__m256 a, __m256 b) { return (f32x16){a, b}; }
static inline f32x16 v16_zero(void) { return v16_pair(_mm256_setzero_ps(), _mm256_setzero_ps()); }
static inline f32x16 v16_madd(f32x16 acc, f32x16 w, f32x16 a)
{
    return v16_pair(_mm256_fmadd_ps(w.lo, a.lo, acc.lo), _mm256_fmadd_ps(w.hi, a.hi, acc.hi));
}
static inline __m256 v16_lo(f32x16 v) { return v.lo; }
static inline __m256 v16_hi(f32x16 v) { return v.hi; }
static inline f32x16 v16_bcast8(const float *p) { return v16_pair(_mm256_loadu_ps(p), _mm256_loadu_ps(p)); }
static inline f32x16 v16_rows_f32(const float *a, const float *b)
{
    return v16_pair(_mm256_loadu_ps(a), _mm256_loadu_ps(b));
}
static inline f32x16 v16_rows_f16(const uint16_t *a, const uint16_t *b) { return v16_pair(load_f16(a), load_f16(b)); }
#else
typedef __m512 f32x16;
static inline f32x16 v16_zero(void) { return _mm512_setzero_ps(); }
static inline f32x16 v16_madd(f32x16 acc, f32x16 w, f32x16 a) { return _mm512_fmadd_ps(w, a, acc); }
static inline __m256 v16_lo(f32x16 v) { return _mm512_castps512_ps256(v); }
static inline __m256 v16_hi(f32x16 v) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)); }
static inline f32x16 v16_bcast8(const float *p)
{
    return _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(p))));
}
static inline f32x16 v16_rows_f32(const float *a, const float *b)
{
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(_mm256_loadu_ps(a))),
                                               _mm256_castps_pd(_mm256_loadu_ps(b)), 1));
}
static inline f32x16 v16_rows_f16(const uint16_t *a, const uint16_t *b)
{
    return _mm512_cvtph_ps(_mm256_set_m128i(_mm_loadu_si128((const __m128i *)b), _mm_loadu_si128((const __m128i *)a)));
}
#endif

#define FLOAT_GEMM_ZMM(NAME, WT, ROWS)                                                                         \
    static inline __attribute__((always_inline)) void NAME##_sub(int64_t n, const uint8_t *const *xr,       \
                                                                 const uint8_t *const *yr, const int rn,    \
                                                                 float res[8][4])                           \
    {                                                                                                        \
        f32x16 acc[4][4];                                                                                    \
        PSI_UNROLL for (int p = 0; p < 4; p++) PSI_UNROLL for (int t = 0; t < rn; t++) acc[p][t] = v16_zero(); \
        int64_t i = 0;                                                                                       \
        for (; i + 8 <= n; i += 8) {                                                                         \
            f32x16 a[4];                                                                                     \
            PSI_UNROLL for (int t = 0; t < rn; t++) a[t] = v16_bcast8((const float *)yr[t] + i);             \
            PSI_UNROLL for (int p = 0; p < 4; p++) {                                                         \
                const f32x16 w = ROWS((const WT *)xr[2 * p] + i, (const WT *)xr[2 * p + 1] + i);             \
                PSI_UNROLL for (int t = 0; t < rn; t++) acc[p][t] = v16_madd(acc[p][t], w, a[t]);            \
            }                                                                                                \
        }                                                                                                    \
        if (i < n) { /* the last n % 8 positions, zero-padded as the AVX2 tile does */                      \
            float ta[4][8] = {{0}};                                                                          \
            WT tw[8][8] = {{0}};                                                                             \
            for (int t = 0; t < rn; t++) memcpy(ta[t], (const float *)yr[t] + i, (size_t)(n - i) * 4);       \
            for (int r = 0; r < 8; r++) memcpy(tw[r], (const WT *)xr[r] + i, (size_t)(n - i) * sizeof(WT));  \
            for (int p = 0; p < 4; p++)                                                                      \
                for (int t = 0; t < rn; t++)                                                                 \
                    acc[p][t] = v16_madd(acc[p][t], ROWS(tw[2 * p], tw[2 * p + 1]), v16_bcast8(ta[t]));      \
        }                                                                                                    \
        PSI_UNROLL for (int p = 0; p < 4; p++) PSI_UNROLL for (int t = 0; t < rn; t++) {                     \
            res[2 * p][t] = hsum_ps(v16_lo(acc[p][t]));                                                      \
            res[2 * p + 1][t] = hsum_ps(v16_hi(acc[p][t]));                                                  \
        }                                                                                                    \
    }                                                                                                        \
    static gemm_fn NAME##_few; /* the AVX2 tile, for 1-2 tokens */                                           \
    static void NAME(int64_t n, const void *vx, size_t xs, int nx, const void *vy, size_t ys, int ny,        \
                     float *out, int64_t os)                                                                 \
    {                                                                                                        \
        if (ny <= 2) {                                                                                       \
            NAME##_few(n, vx, xs, nx, vy, ys, ny, out, os);                                                  \
            return;                                                                                          \
        }                                                                                                    \
        const uint8_t *xr[KERN_MX], *yr[KERN_NY + 3]; /* missing rows and tokens repeat the last */          \
        tile_rows(vx, xs, nx, KERN_MX, xr);                                                                  \
        tile_rows(vy, ys, ny, KERN_NY + 3, yr);                                                              \
        for (int t0 = 0; t0 < ny; t0 += 4) {                                                                 \
            float res[8][4];                                                                                 \
            const int rn = ny - t0 < 4 ? ny - t0 : 4;                                                        \
            switch (rn) {                                                                                    \
            case 1: NAME##_sub(n, xr, yr + t0, 1, res); break;                                               \
            case 2: NAME##_sub(n, xr, yr + t0, 2, res); break;                                               \
            case 3: NAME##_sub(n, xr, yr + t0, 3, res); break;                                               \
            default: NAME##_sub(n, xr, yr + t0, 4, res); break;                                              \
            }                                                                                                \
            for (int r = 0; r < nx; r++)                                                                     \
                for (int t = 0; t < rn; t++) out[(t0 + t) * os + r] = res[r][t];                             \
        }                                                                                                    \
    }
FLOAT_GEMM_ZMM(gemm_f32_zmm, float, v16_rows_f32)
FLOAT_GEMM_ZMM(gemm_f16_zmm, uint16_t, v16_rows_f16)
#undef FLOAT_GEMM_ZMM

/* ---------------------------------------------------------------- table */

void kernels_fill_avx512(kernels *k)
{
    k->t[PSI_TYPE_Q4_0].vec_dot = vec_dot_q4_0_q8_0;
    k->t[PSI_TYPE_Q4_0].vec_dot_ny = vec_dot_ny_q4_0_q8_0;
    /* the AVX2 repacking and activation layouts stay */
    k->t[PSI_TYPE_Q8_0].gemm8 = gemm8_q8_0;
    k->t[PSI_TYPE_Q4_0].gemm8 = gemm8_q4_0;
    k->t[PSI_TYPE_Q4_1].gemm8 = gemm8_q4_1;
    k->t[PSI_TYPE_Q5_0].gemm8 = gemm8_q5_0;
    k->t[PSI_TYPE_Q5_1].gemm8 = gemm8_q5_1;
    k->t[PSI_TYPE_Q4_K].gemm8 = gemm8_q4_K;
    k->t[PSI_TYPE_Q5_K].gemm8 = gemm8_q5_K;
    k->t[PSI_TYPE_Q6_K].gemm8 = gemm8_q6_K;
    gemm_f32_zmm_few = k->t[PSI_TYPE_F32].gemm;
    gemm_f16_zmm_few = k->t[PSI_TYPE_F16].gemm;
    if (gemm_f32_zmm_few) k->t[PSI_TYPE_F32].gemm = gemm_f32_zmm;
    if (gemm_f16_zmm_few) k->t[PSI_TYPE_F16].gemm = gemm_f16_zmm;
}

#else

void kernels_fill_avx512(kernels *k) { (void)k; }

#endif
