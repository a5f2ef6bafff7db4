/*
 * quantize_ref.c — weight quantizers for Q4_1, Q5_0, Q5_1 and the K-quants
 * Q4_K, Q5_K, Q6_K that give, byte for byte, what llama.cpp's
 * llama-quantize writes without an importance matrix (ggml-quants.c's
 * quantize_row_<type>_ref at llama.cpp commit c392e509).
 *
 * Byte equality is the point, so the float arithmetic follows ggml's
 * operation by operation: the same evaluation order, the same f32
 * intermediate values, the same rounding trick (nearest_int), the same
 * tie-breaking (strict comparisons keep the first candidate). Change an
 * expression's order here and some weights land one quant away. The
 * searches themselves (make_qkx2 / make_qx below) are ggml's heuristics,
 * described with their formulas rather than improved.
 *
 * Not here: the imatrix variants (quantize_q4_K with weights), IQ types,
 * Q2_K/Q3_K. Q4_0 and Q8_0 live in types.c.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "types.h"
#include "util.h"

/* The quantizers' bytes depend on every rounding step: no fused
 * multiply-adds (CMakeLists.txt also passes -ffp-contract=off; clang
 * contracts by default where the target has FMA). */
#ifdef __clang__
#pragma clang fp contract(off)
#endif

/* ggml's GROUP_MAX_EPS: below this a group counts as all zero. */
#define GROUP_EPS 1e-15f

/* Round to nearest, ties to even, by adding 1.5·2^23 and reading the low
 * mantissa bits (ggml's nearest_int). Exact for |v| < 2^22; beyond that it
 * gives the same garbage as ggml does, which callers clamp, so the bytes
 * still agree. No undefined behaviour for any input. */
static inline int nearest_int(float v)
{
    float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* The low byte of (int32_t)v as x86's cvttss2si computes it (truncation;
 * out of range or NaN gives 0x80000000, low byte 0): what ggml's
 * `(uint8_t)` / `(int8_t)` casts of a float do on the machines that made the
 * reference files, without C's undefined behaviour. */
static inline uint8_t trunc_low8(float v)
{
    if (!(v > -2147483648.0f && v < 2147483648.0f)) return 0;
    return (uint8_t)(int32_t)v;
}

/* (int8_t)v, then MIN(limit, ·), then stored as uint8_t, as ggml's legacy
 * quantizers write `MIN(15, (int8_t)(x + 8.5f))`. */
static inline uint8_t trunc_min(float v, int limit)
{
    const uint8_t b = trunc_low8(v);
    const int s = b < 128 ? (int)b : (int)b - 256;
    return (uint8_t)(s < limit ? s : limit);
}

/* ---------------------------------------------------------- Q4_1, Q5_1 */

/* min and max of a block of 32 (ggml starts from ±FLT_MAX). */
static void block_min_max(const float *x, float *mn, float *mx)
{
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < 32; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

/* d = (max - min)/15, m = min; q = trunc((x - min)/d + 0.5) capped at 15. */
void quantize_row_q4_1_ref(const float *src, void *dst, int64_t n)
{
    block_q4_1 *y = dst;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        const float *x = src + i * QK4_1;
        float mn, mx;
        block_min_max(x, &mn, &mx);
        const float d = (mx - mn) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        y[i].m = f32_to_fp16(mn);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const uint8_t q0 = trunc_min((x[j] - mn) * id + 0.5f, 15);
            const uint8_t q1 = trunc_min((x[j + QK4_1 / 2] - mn) * id + 0.5f, 15);
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* Packs 32 5-bit quants: low nibbles as Q4_0 does, fifth bits into qh
 * (bit j of the little-endian u32). */
static void pack_q5(const uint8_t q[32], uint8_t qs[16], uint8_t qh[4])
{
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0f) | ((q[j + 16] & 0x0f) << 4));
        h |= (uint32_t)((q[j] >> 4) & 1) << j;
        h |= (uint32_t)((q[j + 16] >> 4) & 1) << (j + 16);
    }
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(h >> (8 * k));
}

/* d = (max - min)/31; q = trunc((x - min)/d + 0.5), not capped (ggml
 * relies on the value staying below 32). */
void quantize_row_q5_1_ref(const float *src, void *dst, int64_t n)
{
    block_q5_1 *y = dst;
    uint8_t q[32];
    for (int64_t i = 0; i < n / QK5_1; i++) {
        const float *x = src + i * QK5_1;
        float mn, mx;
        block_min_max(x, &mn, &mx);
        const float d = (mx - mn) / 31.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        y[i].m = f32_to_fp16(mn);
        for (int j = 0; j < 32; j++) q[j] = trunc_low8((x[j] - mn) * id + 0.5f);
        pack_q5(q, y[i].qs, y[i].qh);
    }
}

/* ---------------------------------------------------------------- Q5_0 */

/* As Q4_0 with 5 bits: d = m / -16 where m is the element of largest
 * magnitude (sign kept, first on ties); q = trunc(x/d + 16.5) capped at 31. */
void quantize_row_q5_0_ref(const float *src, void *dst, int64_t n)
{
    block_q5_0 *y = dst;
    uint8_t q[32];
    for (int64_t i = 0; i < n / QK5_0; i++) {
        const float *x = src + i * QK5_0;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK5_0; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -16.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        for (int j = 0; j < 32; j++) q[j] = trunc_min(x[j] * id + 16.5f, 31);
        pack_q5(q, y[i].qs, y[i].qh);
    }
}

/* ------------------------------------------------------- Q4_K and Q5_K */

/* ggml's make_qkx2_quants: quantize n values to L in 0..nmax with a scale
 * and a min (x ≈ scale·L - the_min), minimising the weighted squared error.
 * Starts from the range (min clamped to ≤ 0), then tries nstep+1 other
 * scales (nmax + rmin + rdelta·is)/(max - min), each followed by a weighted
 * least-squares fit of scale and min to the levels it gives; keeps the best. */
static float make_qkx2(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                       uint8_t *Laux, float rmin, float rdelta, int nstep)
{
    float min = x[0], max = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1 / iscale;
    float best_err = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)(l < 0 ? 0 : l > nmax ? nmax : l);
        float diff = scale * (float)L[i] + min - x[i];
        best_err += w[i] * (diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * (x[i] - min));
            l = l < 0 ? 0 : l > nmax ? nmax : l;
            Laux[i] = (uint8_t)l;
            const float fl = (float)l;
            sum_l += w[i] * fl;
            sum_l2 += w[i] * fl * fl;
            sum_xl += w[i] * fl * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * (float)Laux[i] + this_min - x[i];
                err += w[i] * (diff * diff);
            }
            if (err < best_err) {
                memcpy(L, Laux, (size_t)n);
                best_err = err;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* The common body of Q4_K and Q5_K (nmax 15 or 31): per sub-block of 32 a
 * make_qkx2 fit with weights av_x + |x| (av_x = RMS of the sub-block); the
 * 8 scales and 8 mins quantized to 6 bits against their maxima (d = max/63);
 * then every value requantized against its stored (fp16 · 6-bit) scale and
 * min. A sub-block whose stored scale is 0 keeps the levels of its fit.
 * Writes d, dmin, scales and L (levels 0..nmax in value order). */
static void kq_quantize_block(const float *x, int nmax, float rmin, float rdelta, int nstep, uint16_t *d_out,
                              uint16_t *dmin_out, uint8_t scales_out[K_SCALE_SIZE], uint8_t L[QK_K])
{
    float weights[32], mins[QK_K / 32], scales[QK_K / 32];
    uint8_t Laux[32];
    float max_scale = 0, max_min = 0; /* the mins are deducted: scales stay positive */
    for (int j = 0; j < QK_K / 32; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, rdelta, nstep);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    memset(scales_out, 0, K_SCALE_SIZE);
    for (int j = 0; j < QK_K / 32; j++) {
        /* ggml stores nearest_int into a uint8_t before capping at 63 */
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        if (ls > 63) ls = 63;
        if (lm > 63) lm = 63;
        if (j < 4) {
            scales_out[j] = ls;
            scales_out[j + 4] = lm;
        } else {
            scales_out[j + 4] = (uint8_t)((ls & 0x0f) | ((lm & 0x0f) << 4));
            scales_out[j - 4] |= (uint8_t)((ls >> 4) << 6);
            scales_out[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *d_out = f32_to_fp16(max_scale / 63.0f);
    *dmin_out = f32_to_fp16(max_min / 63.0f);
    const float dh = fp16_to_f32(*d_out), dminh = fp16_to_f32(*dmin_out);
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        get_scale_min_k4(j, scales_out, &sc, &m);
        const float d = dh * (float)sc;
        if (d == 0.0f) continue;
        const float dm = dminh * (float)m;
        for (int l = 0; l < 32; l++) {
            int q = nearest_int((x[32 * j + l] + dm) / d);
            L[32 * j + l] = (uint8_t)(q < 0 ? 0 : q > nmax ? nmax : q);
        }
    }
}

void quantize_row_q4_K_ref(const float *src, void *dst, int64_t n)
{
    block_q4_K *y = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++) {
        kq_quantize_block(src + i * QK_K, 15, -1.0f, 0.1f, 20, &y[i].d, &y[i].dmin, y[i].scales, L);
        for (int c = 0; c < QK_K / 64; c++)
            for (int l = 0; l < 32; l++)
                y[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
}

void quantize_row_q5_K_ref(const float *src, void *dst, int64_t n)
{
    block_q5_K *y = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++) {
        kq_quantize_block(src + i * QK_K, 31, -0.5f, 0.1f, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
        memset(y[i].qh, 0, sizeof y[i].qh);
        for (int c = 0; c < QK_K / 64; c++)
            for (int l = 0; l < 32; l++) {
                const uint8_t a = L[64 * c + l], b = L[64 * c + 32 + l];
                y[i].qs[32 * c + l] = (uint8_t)((a & 0x0f) | ((b & 0x0f) << 4));
                y[i].qh[l] |= (uint8_t)(((a >> 4) << (2 * c)) | ((b >> 4) << (2 * c + 1)));
            }
    }
}

/* ---------------------------------------------------------------- Q6_K */

/* ggml's make_qx_quants with rmse_type 1 and no imatrix: signed levels
 * -nmax..nmax-1 (stored + nmax) for n values, weights x². Starts from
 * iscale = -nmax/m (m: the element of largest |x|, sign kept) and its
 * least-squares scale, then tries iscale = -(nmax + 0.1·is)/m for
 * is = -9..9, keeping the one with the largest (Σwxl)²/Σwl². */
static float make_qx(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * x[i]);
        l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i], fl = (float)l;
        sumlx += w * x[i] * fl;
        suml2 += w * fl * fl;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * x[i]);
            l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
            const float w = x[i] * x[i], fl = (float)l;
            sumlx += w * x[i] * fl;
            suml2 += w * fl * fl;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + (l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* 16 sub-blocks of 16: make_qx per sub-block (levels -32..31); the 16
 * scales as int8 against the one of largest magnitude (d = m/-128); then
 * every value requantized against its stored scale. Packing as described
 * at q6_K_unpack in types.c. */
void quantize_row_q6_K_ref(const float *src, void *dst, int64_t n)
{
    block_q6_K *y = dst;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < QK_K / 16; ib++) {
            scales[ib] = make_qx(16, 32, x + 16 * ib, L + 16 * ib);
            const float abs_scale = fabsf(scales[ib]);
            if (abs_scale > max_abs_scale) {
                max_abs_scale = abs_scale;
                max_scale = scales[ib];
            }
        }
        if (max_abs_scale < GROUP_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -128.0f / max_scale;
        y[i].d = f32_to_fp16(1 / iscale);
        for (int ib = 0; ib < QK_K / 16; ib++) {
            const int s = nearest_int(iscale * scales[ib]);
            y[i].scales[ib] = (int8_t)(s < 127 ? s : 127);
        }
        const float dh = fp16_to_f32(y[i].d);
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = dh * (float)y[i].scales[j];
            if (d == 0.0f) continue;
            for (int k = 0; k < 16; k++) {
                int l = nearest_int(x[16 * j + k] / d);
                l = l < -32 ? -32 : l > 31 ? 31 : l;
                L[16 * j + k] = (int8_t)(l + 32);
            }
        }
        for (int h = 0; h < QK_K / 128; h++) {
            const int8_t *q = L + 128 * h;
            uint8_t *ql = y[i].ql + 64 * h, *qh = y[i].qh + 32 * h;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((q[l] & 0x0f) | ((q[l + 64] & 0x0f) << 4));
                ql[l + 32] = (uint8_t)((q[l + 32] & 0x0f) | ((q[l + 96] & 0x0f) << 4));
                qh[l] = (uint8_t)((q[l] >> 4) | ((q[l + 32] >> 4) << 2) | ((q[l + 64] >> 4) << 4) |
                                  ((q[l + 96] >> 4) << 6));
            }
        }
    }
}
