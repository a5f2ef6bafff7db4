/*
 * types.c — the traits table of ggml's tensor types and the portable
 * reference kernels for the types psi computes: dequantizers, activation
 * quantizers and dot products.
 *
 * Block layouts, sizes and quantization rules are ggml's (ggml-common.h,
 * ggml-quants.c), so files and results match llama.cpp's. The activation
 * quantizers and dot products follow what llama.cpp does on x86 CPUs
 * (see ../shared/data/reference/REFERENCE.md): Q8_0 and Q8_1 activations
 * round half to even, Q8_K activations scale by -127/m. Which activation
 * type goes with which weight type is ggml's vec_dot_type: Q8_0 for
 * Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants. These kernels
 * are the reference that SIMD kernels are tested against; they are written
 * for clarity first, with a few independent accumulators where it costs
 * nothing. Not here: the other weight quantizers (quantize_ref.c), IQ
 * types, SIMD, threading.
 */
#include "types.h"

#include <math.h>
#include <string.h>

#include "util.h"

/* The quantizers' bytes depend on every rounding step: no fused
 * multiply-adds (CMakeLists.txt also passes -ffp-contract=off; clang
 * contracts by default where the target has FMA). */
#ifdef __clang__
#pragma clang fp contract(off)
#endif

/* Round to nearest, ties to even, for |v| <= 2^22 (the default rounding mode
 * does the work: adding 1.5·2^23 leaves no fraction bits). Every input, NaN
 * and inf included, gives some int without undefined behaviour; callers
 * clamp. Same result as nearbyintf() in the default mode for the values the
 * quantizers produce (|v| <= 128). */
static inline int round_even(float v)
{
    float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

static inline int8_t clamp_i8(int v)
{
    return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
}

/* (int8_t)v as x86 computes it (truncate toward zero; out of range or NaN →
 * the "integer indefinite" 0x80000000, whose low byte is 0), without C's
 * undefined behaviour. Only non-finite inputs ever reach the fallback. */
static inline int8_t trunc_i8(float v)
{
    return v > -129.0f && v < 128.0f ? (int8_t)v : 0;
}

/* fp16 → f32, bit for bit util's fp16_to_f32 (the test checks all 65536
 * inputs), but inline and without branches: the F16 dot product converts
 * every weight. Normals only rebias the exponent (15 → 127); subnormals
 * m·2^-24 come out of (0.5 + m·2^-24) - 0.5, exact in f32. */
static inline float half_to_f32(uint16_t h)
{
    const uint32_t em = h & 0x7fffu;
    const uint32_t sub_bits = 0x3f000000u | em;
    float sub;
    memcpy(&sub, &sub_bits, sizeof sub);
    sub -= 0.5f;
    uint32_t u;
    memcpy(&u, &sub, sizeof u);
    u = em >= 0x0400 ? (em << 13) + (112u << 23) : u;   /* normal */
    u = em >= 0x7c00 ? (em << 13) | 0x7f800000u : u;    /* inf, NaN */
    u |= (uint32_t)(h & 0x8000) << 16;
    float r;
    memcpy(&r, &u, sizeof r);
    return r;
}

/* Horizontal sum of 8 partial sums in the order ggml reduces a 256-bit
 * register (halves, then pairs), so 8-lane SIMD kernels can match it. */
static inline float sum8(const float a[8])
{
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

/* ---------------------------------------------------------------- F32 */

static void f32_to_f32(const void *src, float *dst, int64_t n)
{
    if (n > 0) memcpy(dst, src, (size_t)n * sizeof(float));
}

static void f32_from_f32(const float *src, void *dst, int64_t n)
{
    if (n > 0) memcpy(dst, src, (size_t)n * sizeof(float));
}

static void vec_dot_f32(int64_t n, float *out, const void *vx, const void *vy)
{
    const float *x = vx, *y = vy;
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += x[i + k] * y[i + k];
    for (int k = 0; i < n; i++, k++) acc[k] += x[i] * y[i];
    *out = sum8(acc);
}

/* ---------------------------------------------------------------- F16 */

static void f16_to_f32(const void *src, float *dst, int64_t n)
{
    const uint16_t *x = src;
    for (int64_t i = 0; i < n; i++) dst[i] = half_to_f32(x[i]);
}

static void f16_from_f32(const float *src, void *dst, int64_t n)
{
    uint16_t *y = dst;
    for (int64_t i = 0; i < n; i++) y[i] = f32_to_fp16(src[i]);
}

/* F16 weights · f32 activations: llama.cpp's AMX path on this machine keeps
 * the activations in f32 (REFERENCE.md). */
static void vec_dot_f16_f32(int64_t n, float *out, const void *vx, const void *vy)
{
    const uint16_t *x = vx;
    const float *y = vy;
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += half_to_f32(x[i + k]) * y[i + k];
    for (int k = 0; i < n; i++, k++) acc[k] += half_to_f32(x[i]) * y[i];
    *out = sum8(acc);
}

/* ---------------------------------------------------------------- BF16 */

static void bf16_row_to_f32(const void *src, float *dst, int64_t n)
{
    const uint16_t *x = src;
    for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32(x[i]);
}

static void bf16_from_f32(const float *src, void *dst, int64_t n)
{
    uint16_t *y = dst;
    for (int64_t i = 0; i < n; i++) y[i] = f32_to_bf16(src[i]);
}

static void vec_dot_bf16(int64_t n, float *out, const void *vx, const void *vy)
{
    const uint16_t *x = vx, *y = vy;
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += bf16_to_f32(x[i + k]) * bf16_to_f32(y[i + k]);
    for (int k = 0; i < n; i++, k++) acc[k] += bf16_to_f32(x[i]) * bf16_to_f32(y[i]);
    *out = sum8(acc);
}

/* ---------------------------------------------------------------- Q8_0 */

static void q8_0_to_f32(const void *src, float *dst, int64_t n)
{
    const block_q8_0 *x = src;
    const int64_t nb = n / QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const float d = half_to_f32(x[i].d);
        for (int j = 0; j < QK8_0; j++) dst[i * QK8_0 + j] = (float)x[i].qs[j] * d;
    }
}

/* Activation quantizer (llama.cpp's x86 quantize_row_q8_0): scale by
 * 127/amax and round half to even. */
static void q8_0_from_f32(const float *src, void *dst, int64_t n)
{
    block_q8_0 *y = dst;
    const int64_t nb = n / QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const float *x = src + i * QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) {
            const float a = fabsf(x[j]);
            if (a > amax) amax = a;
        }
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[i].d = f32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) y[i].qs[j] = clamp_i8(round_even(x[j] * id));
    }
}

/* Weight quantizer, byte for byte ggml's quantize_row_q8_0_ref (what
 * llama-quantize writes): id = 1/d, round half away from zero. */
void quantize_row_q8_0_ref(const float *src, void *dst, int64_t n)
{
    block_q8_0 *y = dst;
    const int64_t nb = n / QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const float *x = src + i * QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) {
            const float a = fabsf(x[j]);
            if (a > amax) amax = a;
        }
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) y[i].qs[j] = trunc_i8(roundf(x[j] * id));
    }
}

static void vec_dot_q8_0_q8_0(int64_t n, float *out, const void *vx, const void *vy)
{
    const block_q8_0 *x = vx, *y = vy;
    const int64_t nb = n / QK8_0;
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int32_t s0 = 0, s1 = 0;
        for (int j = 0; j < QK8_0; j += 2) {
            s0 += x[i].qs[j] * y[i].qs[j];
            s1 += x[i].qs[j + 1] * y[i].qs[j + 1];
        }
        sumf += half_to_f32(x[i].d) * half_to_f32(y[i].d) * (float)(s0 + s1);
    }
    *out = sumf;
}

/* ---------------------------------------------------------------- Q4_0 */

/* Quant j < 16 is the low nibble of qs[j], quant j + 16 its high nibble;
 * the value is (nibble - 8) · d. */
static void q4_0_to_f32(const void *src, float *dst, int64_t n)
{
    const block_q4_0 *x = src;
    const int64_t nb = n / QK4_0;
    for (int64_t i = 0; i < nb; i++) {
        const float d = half_to_f32(x[i].d);
        float *y = dst + i * QK4_0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            y[j] = (float)((x[i].qs[j] & 0x0f) - 8) * d;
            y[j + QK4_0 / 2] = (float)((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

/* Byte for byte ggml's quantize_row_q4_0_ref: d = m / -8 where m is the
 * element of largest magnitude (sign kept, first on ties), so m maps to
 * nibble 0; the others truncate x/d + 8.5 (round half up), clipped at 15. */
void quantize_row_q4_0_ref(const float *src, void *dst, int64_t n)
{
    block_q4_0 *y = dst;
    const int64_t nb = n / QK4_0;
    for (int64_t i = 0; i < nb; i++) {
        const float *x = src + i * QK4_0;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK4_0; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const int8_t t0 = trunc_i8(x[j] * id + 8.5f);
            const int8_t t1 = trunc_i8(x[j + QK4_0 / 2] * id + 8.5f);
            const uint8_t xi0 = (uint8_t)(t0 < 15 ? t0 : 15);
            const uint8_t xi1 = (uint8_t)(t1 < 15 ? t1 : 15);
            y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

static void vec_dot_q4_0_q8_0(int64_t n, float *out, const void *vx, const void *vy)
{
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    const int64_t nb = n / QK4_0;
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int32_t s0 = 0, s1 = 0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            s0 += ((x[i].qs[j] & 0x0f) - 8) * y[i].qs[j];
            s1 += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + QK4_0 / 2];
        }
        sumf += half_to_f32(x[i].d) * half_to_f32(y[i].d) * (float)(s0 + s1);
    }
    *out = sumf;
}

/* ---------------------------------------------------------------- Q4_1 */

/* Like Q4_0 but unsigned nibbles with an offset: x = q·d + m. */
static void q4_1_to_f32(const void *src, float *dst, int64_t n)
{
    const block_q4_1 *x = src;
    const int64_t nb = n / QK4_1;
    for (int64_t i = 0; i < nb; i++) {
        const float d = half_to_f32(x[i].d), m = half_to_f32(x[i].m);
        float *y = dst + i * QK4_1;
        for (int j = 0; j < QK4_1 / 2; j++) {
            y[j] = (float)(x[i].qs[j] & 0x0f) * d + m;
            y[j + QK4_1 / 2] = (float)(x[i].qs[j] >> 4) * d + m;
        }
    }
}

/* Σ (q·d_w + m)·d_x·q8 = d_w·d_x·Σ q·q8 + m·(d_x·Σ q8), the last factor
 * being the Q8_1 block's s. */
static void vec_dot_q4_1_q8_1(int64_t n, float *out, const void *vx, const void *vy)
{
    const block_q4_1 *x = vx;
    const block_q8_1 *y = vy;
    const int64_t nb = n / QK4_1;
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int32_t s0 = 0, s1 = 0;
        for (int j = 0; j < QK4_1 / 2; j++) {
            s0 += (x[i].qs[j] & 0x0f) * y[i].qs[j];
            s1 += (x[i].qs[j] >> 4) * y[i].qs[j + QK4_1 / 2];
        }
        sumf += half_to_f32(x[i].d) * half_to_f32(y[i].d) * (float)(s0 + s1) +
                half_to_f32(x[i].m) * half_to_f32(y[i].s);
    }
    *out = sumf;
}

/* ---------------------------------------------------------------- Q5_0 */

/* The 32 5-bit quants of a Q5_0/Q5_1 block: quant j < 16 is the low nibble
 * of qs[j], quant j + 16 its high nibble; bit j of qh is the fifth bit. */
static inline void q5_unpack(const uint8_t qh[4], const uint8_t qs[16], int q[32])
{
    const uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
    for (int j = 0; j < 16; j++) {
        q[j] = (int)((qs[j] & 0x0f) | (((h >> j) & 1) << 4));
        q[j + 16] = (int)((qs[j] >> 4) | (((h >> (j + 16)) & 1) << 4));
    }
}

static void q5_0_to_f32(const void *src, float *dst, int64_t n)
{
    const block_q5_0 *x = src;
    const int64_t nb = n / QK5_0;
    int q[QK5_0];
    for (int64_t i = 0; i < nb; i++) {
        const float d = half_to_f32(x[i].d);
        q5_unpack(x[i].qh, x[i].qs, q);
        for (int j = 0; j < QK5_0; j++) dst[i * QK5_0 + j] = (float)(q[j] - 16) * d;
    }
}

static void vec_dot_q5_0_q8_0(int64_t n, float *out, const void *vx, const void *vy)
{
    const block_q5_0 *x = vx;
    const block_q8_0 *y = vy;
    const int64_t nb = n / QK5_0;
    int q[QK5_0];
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        q5_unpack(x[i].qh, x[i].qs, q);
        int32_t s = 0;
        for (int j = 0; j < QK5_0; j++) s += (q[j] - 16) * y[i].qs[j];
        sumf += half_to_f32(x[i].d) * half_to_f32(y[i].d) * (float)s;
    }
    *out = sumf;
}

/* ---------------------------------------------------------------- Q5_1 */

static void q5_1_to_f32(const void *src, float *dst, int64_t n)
{
    const block_q5_1 *x = src;
    const int64_t nb = n / QK5_1;
    int q[QK5_1];
    for (int64_t i = 0; i < nb; i++) {
        const float d = half_to_f32(x[i].d), m = half_to_f32(x[i].m);
        q5_unpack(x[i].qh, x[i].qs, q);
        for (int j = 0; j < QK5_1; j++) dst[i * QK5_1 + j] = (float)q[j] * d + m;
    }
}

static void vec_dot_q5_1_q8_1(int64_t n, float *out, const void *vx, const void *vy)
{
    const block_q5_1 *x = vx;
    const block_q8_1 *y = vy;
    const int64_t nb = n / QK5_1;
    int q[QK5_1];
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        q5_unpack(x[i].qh, x[i].qs, q);
        int32_t s = 0;
        for (int j = 0; j < QK5_1; j++) s += q[j] * y[i].qs[j];
        sumf += half_to_f32(x[i].d) * half_to_f32(y[i].d) * (float)s +
                half_to_f32(x[i].m) * half_to_f32(y[i].s);
    }
    *out = sumf;
}

/* ---------------------------------------------------------------- Q8_1 */

static void q8_1_to_f32(const void *src, float *dst, int64_t n)
{
    const block_q8_1 *x = src;
    const int64_t nb = n / QK8_1;
    for (int64_t i = 0; i < nb; i++) {
        const float d = half_to_f32(x[i].d);
        for (int j = 0; j < QK8_1; j++) dst[i * QK8_1 + j] = (float)x[i].qs[j] * d;
    }
}

/* Activation quantizer for Q4_1/Q5_1 weights (llama.cpp's x86
 * quantize_row_q8_1): as Q8_0's (127/amax, half to even), plus
 * s = fp16(d · Σ q) with the f32 d, before d is rounded to fp16. */
static void q8_1_from_f32(const float *src, void *dst, int64_t n)
{
    block_q8_1 *y = dst;
    const int64_t nb = n / QK8_1;
    for (int64_t i = 0; i < nb; i++) {
        const float *x = src + i * QK8_1;
        float amax = 0.0f;
        for (int j = 0; j < QK8_1; j++) {
            const float a = fabsf(x[j]);
            if (a > amax) amax = a;
        }
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < QK8_1; j++) {
            y[i].qs[j] = clamp_i8(round_even(x[j] * id));
            sum += y[i].qs[j];
        }
        y[i].d = f32_to_fp16(d);
        y[i].s = f32_to_fp16(d * (float)sum);
    }
}

/* ---------------------------------------------------------------- Q4_K */

/* The 256 quants of a Q4_K block in value order: each 64 values take 32
 * bytes of qs, the first 32 in the low nibbles, the next 32 in the high. */
static inline void q4_K_unpack(const block_q4_K *b, uint8_t q[QK_K])
{
    for (int c = 0; c < QK_K / 64; c++)
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = b->qs[32 * c + l] & 0x0f;
            q[64 * c + 32 + l] = b->qs[32 * c + l] >> 4;
        }
}

/* Q5_K: as Q4_K, plus the fifth bit of value 64·c + l at bit 2c of qh[l]
 * and of value 64·c + 32 + l at bit 2c + 1. */
static inline void q5_K_unpack(const block_q5_K *b, uint8_t q[QK_K])
{
    for (int c = 0; c < QK_K / 64; c++)
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = (uint8_t)((b->qs[32 * c + l] & 0x0f) | (((b->qh[l] >> (2 * c)) & 1) << 4));
            q[64 * c + 32 + l] = (uint8_t)((b->qs[32 * c + l] >> 4) | (((b->qh[l] >> (2 * c + 1)) & 1) << 4));
        }
}

/* x = d·sc_j·q - dmin·m_j for value v in sub-block j = v / 32. */
static void kq_to_f32(uint16_t dh, uint16_t dminh, const uint8_t *scales, const uint8_t q[QK_K], float *y)
{
    const float d = half_to_f32(dh), dmin = half_to_f32(dminh);
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        get_scale_min_k4(j, scales, &sc, &m);
        const float d1 = d * (float)sc, m1 = dmin * (float)m;
        for (int l = 0; l < 32; l++) y[32 * j + l] = d1 * (float)q[32 * j + l] - m1;
    }
}

static void q4_K_to_f32(const void *src, float *dst, int64_t n)
{
    const block_q4_K *x = src;
    uint8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++) {
        q4_K_unpack(&x[i], q);
        kq_to_f32(x[i].d, x[i].dmin, x[i].scales, q, dst + i * QK_K);
    }
}

static void q5_K_to_f32(const void *src, float *dst, int64_t n)
{
    const block_q5_K *x = src;
    uint8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++) {
        q5_K_unpack(&x[i], q);
        kq_to_f32(x[i].d, x[i].dmin, x[i].scales, q, dst + i * QK_K);
    }
}

/* One super-block of Q4_K/Q5_K · Q8_K, as ggml's x86 kernel: exact integer
 * sums Σ_j sc_j·Σ q·q8 and Σ_j m_j·(bsums of sub-block j), then
 * d_x·d·isum - d_x·dmin·msum in float. */
static inline float kq_dot_block(uint16_t dh, uint16_t dminh, const uint8_t *scales, const uint8_t q[QK_K],
                                 const block_q8_K *y)
{
    int32_t isum = 0, msum = 0;
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        get_scale_min_k4(j, scales, &sc, &m);
        int32_t s0 = 0, s1 = 0;
        for (int l = 0; l < 32; l += 2) {
            s0 += q[32 * j + l] * y->qs[32 * j + l];
            s1 += q[32 * j + l + 1] * y->qs[32 * j + l + 1];
        }
        isum += sc * (s0 + s1);
        msum += m * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
    }
    const float d = y->d * half_to_f32(dh);
    const float dmin = y->d * half_to_f32(dminh);
    return d * (float)isum - dmin * (float)msum;
}

static void vec_dot_q4_K_q8_K(int64_t n, float *out, const void *vx, const void *vy)
{
    const block_q4_K *x = vx;
    const block_q8_K *y = vy;
    uint8_t q[QK_K];
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        q4_K_unpack(&x[i], q);
        sumf += kq_dot_block(x[i].d, x[i].dmin, x[i].scales, q, &y[i]);
    }
    *out = sumf;
}

static void vec_dot_q5_K_q8_K(int64_t n, float *out, const void *vx, const void *vy)
{
    const block_q5_K *x = vx;
    const block_q8_K *y = vy;
    uint8_t q[QK_K];
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        q5_K_unpack(&x[i], q);
        sumf += kq_dot_block(x[i].d, x[i].dmin, x[i].scales, q, &y[i]);
    }
    *out = sumf;
}

/* ---------------------------------------------------------------- Q6_K */

/* The 256 6-bit quants of a Q6_K block, minus 32, in value order. Each half
 * of 128 values takes 64 bytes of ql and 32 of qh: value l + 32·g (l < 32,
 * g < 4) has its low 4 bits in ql[l + 32·(g & 1)] (low nibble for g < 2,
 * high for g ≥ 2) and its high 2 bits at bit 2·g of qh[l]. Value v of the
 * block uses scales[v / 16]. */
static inline void q6_K_unpack(const block_q6_K *b, int8_t q[QK_K])
{
    for (int h = 0; h < QK_K / 128; h++) {
        const uint8_t *ql = b->ql + 64 * h;
        const uint8_t *qh = b->qh + 32 * h;
        int8_t *y = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            y[l + 0] = (int8_t)(((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32);
            y[l + 32] = (int8_t)(((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32);
            y[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            y[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
}

static void q6_K_to_f32(const void *src, float *dst, int64_t n)
{
    const block_q6_K *x = src;
    const int64_t nb = n / QK_K;
    int8_t q[QK_K];
    for (int64_t i = 0; i < nb; i++) {
        const float d = half_to_f32(x[i].d);
        q6_K_unpack(&x[i], q);
        float *y = dst + i * QK_K;
        for (int v = 0; v < QK_K; v++) y[v] = d * (float)x[i].scales[v / 16] * (float)q[v];
    }
}

/* Exact integer sum over the 16 sub-blocks of scale · Σ q6·q8, then one
 * float multiply-add per super-block, as ggml's x86 kernel. */
static void vec_dot_q6_K_q8_K(int64_t n, float *out, const void *vx, const void *vy)
{
    const block_q6_K *x = vx;
    const block_q8_K *y = vy;
    const int64_t nb = n / QK_K;
    int8_t q[QK_K];
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        q6_K_unpack(&x[i], q);
        const int8_t *q8 = y[i].qs;
        int32_t isum = 0;
        for (int s = 0; s < QK_K / 16; s++) {
            int32_t s0 = 0, s1 = 0;
            for (int k = 0; k < 16; k += 2) {
                s0 += q[16 * s + k] * q8[16 * s + k];
                s1 += q[16 * s + k + 1] * q8[16 * s + k + 1];
            }
            isum += x[i].scales[s] * (s0 + s1);
        }
        const float d = y[i].d * half_to_f32(x[i].d);
        sumf += d * (float)isum;
    }
    *out = sumf;
}

/* ---------------------------------------------------------------- Q8_K */

static void q8_K_to_f32(const void *src, float *dst, int64_t n)
{
    const block_q8_K *x = src;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++)
        for (int j = 0; j < QK_K; j++) dst[i * QK_K + j] = x[i].d * (float)x[i].qs[j];
}

/* ggml's quantize_row_q8_K: m = the element of largest |x| (sign kept,
 * first on ties) maps to -127. bsums hold the sum of each 16 quants. */
static void q8_K_from_f32(const float *src, void *dst, int64_t n)
{
    block_q8_K *y = dst;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float *x = src + i * QK_K;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            const float a = fabsf(x[j]);
            if (a > amax) {
                amax = a;
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            y[i].d = 0.0f;
            memset(y[i].qs, 0, sizeof y[i].qs);
            memset(y[i].bsums, 0, sizeof y[i].bsums);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) y[i].qs[j] = clamp_i8(round_even(iscale * x[j]));
        for (int g = 0; g < QK_K / 16; g++) {
            int sum = 0;
            for (int k = 0; k < 16; k++) sum += y[i].qs[16 * g + k];
            y[i].bsums[g] = (int16_t)sum;
        }
        y[i].d = 1.0f / iscale;
    }
}

/* ---------------------------------------------------------------- table */

/* ggml ids without a psi_type name (psi computes none of them). */
enum {
    T_IQ2_XXS = 16, T_IQ2_XS = 17, T_IQ3_XXS = 18, T_IQ1_S = 19, T_IQ4_NL = 20,
    T_IQ3_S = 21, T_IQ2_S = 22, T_IQ4_XS = 23, T_I8 = 24, T_I16 = 25, T_I32 = 26,
    T_I64 = 27, T_F64 = 28, T_IQ1_M = 29, T_TQ1_0 = 34, T_TQ2_0 = 35, T_MXFP4 = 39,
    T_NVFP4 = 40, T_COUNT = 41,
};

/* Names, block sizes and bytes per block are ggml's (ggml.c type_traits).
 * Ids 4, 5 (Q4_2, Q4_3), 31–33 (Q4_0_4_4…) and 36–38 (IQ4_NL_4_4…) were
 * removed from ggml and GGUF files; they stay unknown here. vec_dot_type is
 * meaningful only where vec_dot is set. */
static const type_traits traits[T_COUNT] = {
    [PSI_TYPE_F32] = {"F32", 1, 4, true, f32_to_f32, f32_from_f32, PSI_TYPE_F32, vec_dot_f32},
    [PSI_TYPE_F16] = {"F16", 1, 2, true, f16_to_f32, f16_from_f32, PSI_TYPE_F32, vec_dot_f16_f32},
    [PSI_TYPE_Q4_0] = {"Q4_0", 32, 18, true, q4_0_to_f32, quantize_row_q4_0_ref, PSI_TYPE_Q8_0,
                       vec_dot_q4_0_q8_0},
    [PSI_TYPE_Q4_1] = {"Q4_1", 32, 20, true, q4_1_to_f32, quantize_row_q4_1_ref, PSI_TYPE_Q8_1,
                       vec_dot_q4_1_q8_1},
    [PSI_TYPE_Q5_0] = {"Q5_0", 32, 22, true, q5_0_to_f32, quantize_row_q5_0_ref, PSI_TYPE_Q8_0,
                       vec_dot_q5_0_q8_0},
    [PSI_TYPE_Q5_1] = {"Q5_1", 32, 24, true, q5_1_to_f32, quantize_row_q5_1_ref, PSI_TYPE_Q8_1,
                       vec_dot_q5_1_q8_1},
    [PSI_TYPE_Q8_0] = {"Q8_0", 32, 34, true, q8_0_to_f32, q8_0_from_f32, PSI_TYPE_Q8_0,
                       vec_dot_q8_0_q8_0},
    /* Q8_1 exists only as the activation type of Q4_1 and Q5_1. */
    [PSI_TYPE_Q8_1] = {"Q8_1", 32, 36, false, q8_1_to_f32, q8_1_from_f32, PSI_TYPE_F32, NULL},
    [PSI_TYPE_Q2_K] = {"Q2_K", 256, 84, false, NULL, NULL, PSI_TYPE_F32, NULL},
    [PSI_TYPE_Q3_K] = {"Q3_K", 256, 110, false, NULL, NULL, PSI_TYPE_F32, NULL},
    [PSI_TYPE_Q4_K] = {"Q4_K", 256, 144, true, q4_K_to_f32, quantize_row_q4_K_ref, PSI_TYPE_Q8_K,
                       vec_dot_q4_K_q8_K},
    [PSI_TYPE_Q5_K] = {"Q5_K", 256, 176, true, q5_K_to_f32, quantize_row_q5_K_ref, PSI_TYPE_Q8_K,
                       vec_dot_q5_K_q8_K},
    [PSI_TYPE_Q6_K] = {"Q6_K", 256, 210, true, q6_K_to_f32, quantize_row_q6_K_ref, PSI_TYPE_Q8_K,
                       vec_dot_q6_K_q8_K},
    /* Q8_K exists only as the activation type of the K-quants. */
    [PSI_TYPE_Q8_K] = {"Q8_K", 256, 292, false, q8_K_to_f32, q8_K_from_f32, PSI_TYPE_F32, NULL},
    [T_IQ2_XXS] = {"IQ2_XXS", 256, 66, false, NULL, NULL, PSI_TYPE_F32, NULL},
    [T_IQ2_XS] = {"IQ2_XS", 256, 74, false, NULL, NULL, PSI_TYPE_F32, NULL},
    [T_IQ3_XXS] = {"IQ3_XXS", 256, 98, false, NULL, NULL, PSI_TYPE_F32, NULL},
    [T_IQ1_S] = {"IQ1_S", 256, 50, false, NULL, NULL, PSI_TYPE_F32, NULL},
    [T_IQ4_NL] = {"IQ4_NL", 32, 18, false, NULL, NULL, PSI_TYPE_F32, NULL},
    [T_IQ3_S] = {"IQ3_S", 256, 110, false, NULL, NULL, PSI_TYPE_F32, NULL},
    [T_IQ2_S] = {"IQ2_S", 256, 82, false, NULL, NULL, PSI_TYPE_F32, NULL},
    [T_IQ4_XS] = {"IQ4_XS", 256, 136, false, NULL, NULL, PSI_TYPE_F32, NULL},
    [T_I8] = {"I8", 1, 1, false, NULL, NULL, PSI_TYPE_F32, NULL},
    [T_I16] = {"I16", 1, 2, false, NULL, NULL, PSI_TYPE_F32, NULL},
    [T_I32] = {"I32", 1, 4, false, NULL, NULL, PSI_TYPE_F32, NULL},
    [T_I64] = {"I64", 1, 8, false, NULL, NULL, PSI_TYPE_F32, NULL},
    [T_F64] = {"F64", 1, 8, false, NULL, NULL, PSI_TYPE_F32, NULL},
    [T_IQ1_M] = {"IQ1_M", 256, 56, false, NULL, NULL, PSI_TYPE_F32, NULL},
    [PSI_TYPE_BF16] = {"BF16", 1, 2, true, bf16_row_to_f32, bf16_from_f32, PSI_TYPE_BF16,
                       vec_dot_bf16},
    [T_TQ1_0] = {"TQ1_0", 256, 54, false, NULL, NULL, PSI_TYPE_F32, NULL},
    [T_TQ2_0] = {"TQ2_0", 256, 66, false, NULL, NULL, PSI_TYPE_F32, NULL},
    [T_MXFP4] = {"MXFP4", 32, 17, false, NULL, NULL, PSI_TYPE_F32, NULL},
    [T_NVFP4] = {"NVFP4", 64, 36, false, NULL, NULL, PSI_TYPE_F32, NULL},
};

const type_traits *type_get(uint32_t type)
{
    if (type >= T_COUNT || !traits[type].name) return NULL;
    return &traits[type];
}

size_t type_row_size(uint32_t type, int64_t n)
{
    const type_traits *t = type_get(type);
    if (!t || n < 0 || (uint64_t)n % t->blck_size != 0) return 0;
    uint64_t blocks = (uint64_t)n / t->blck_size;
#if SIZE_MAX < UINT64_MAX
    if (blocks > SIZE_MAX) return 0;
#endif
    size_t bytes;
    if (size_mul_ovf((size_t)blocks, t->type_size, &bytes)) return 0;
    return bytes;
}
