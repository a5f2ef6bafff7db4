/*
 * test_kernels.c — every SIMD kernel against the portable reference in
 * types.c, on every path this CPU runs (ggml's test-backend-ops idea):
 * activation quantizers byte for byte, dot products within float
 * reassociation tolerance (Q6_K×Q8_K bit for bit: its sums are integers up
 * to one float multiply-add per super-block, as in the reference), the
 * multi-token dot products bit for bit against the single ones (batching
 * must not change a token's result), and attention's axpy, on random data
 * and many lengths. Then PSI_CPU through the psi program: the path it
 * reports, and the warning for a path the CPU lacks. End-to-end logits per
 * path are test_reference's job (registered once per PSI_CPU value).
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "testutil.h"
#include "types.h"
#include "util.h"

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t rng_u64(void) { return tu_rng_u64(&rng_state); }
static float rng_f32(void) { return tu_rng_f32(&rng_state); }

/* Activation-like data in one of several shapes: plain uniform, a few large
 * outliers, values on rounding ties once scaled, exact zeros, a block whose
 * extreme values tie in magnitude with opposite signs. */
static void fill_f32(float *x, int64_t n, int shape)
{
    for (int64_t i = 0; i < n; i++) {
        float v = rng_f32();
        switch (shape) {
        case 1: v *= (rng_u64() % 17 == 0) ? 40.0f : 1.0f; break;
        case 2: v = (float)((int)(v * 20.0f)) + 0.5f; break;     /* k + 0.5 */
        case 3: v = (rng_u64() % 3 == 0) ? 0.0f : v * 1e-3f; break;
        case 4: v = (i % 37 == 5) ? 2.0f : (i % 37 == 3) ? -2.0f : v; break;
        default: break;
        }
        x[i] = v;
    }
    if (shape == 3 && n >= 256) memset(x, 0, 256 * sizeof(float)); /* an all-zero block */
}

/* Random weight rows of a type: valid-looking scales, every quant byte
 * random (Q8_0 includes -128, which no quantizer writes but a file may). */
static void fill_weights(uint32_t type, void *dst, int64_t n)
{
    if (type == PSI_TYPE_F32) {
        float *x = dst;
        for (int64_t i = 0; i < n; i++) x[i] = rng_f32();
    } else if (type == PSI_TYPE_F16 || type == PSI_TYPE_BF16) {
        uint16_t *x = dst;
        for (int64_t i = 0; i < n; i++) x[i] = type == PSI_TYPE_F16 ? f32_to_fp16(rng_f32()) : f32_to_bf16(rng_f32());
    } else {
        const type_traits *t = type_get(type);
        uint8_t *p = dst;
        size_t bytes = type_row_size(type, n);
        for (size_t i = 0; i < bytes; i++) p[i] = (uint8_t)rng_u64();
        /* fp16 scales: replace with sane finite values */
        for (int64_t b = 0; b < n / t->blck_size; b++) {
            uint8_t *blk = p + (size_t)b * t->type_size;
            uint16_t d = f32_to_fp16(rng_f32() * 0.05f);
            size_t off = type == PSI_TYPE_Q6_K ? offsetof(block_q6_K, d) : 0;
            memcpy(blk + off, &d, sizeof d);
            if (type == PSI_TYPE_Q4_K || type == PSI_TYPE_Q5_K || type == PSI_TYPE_Q4_1 ||
                type == PSI_TYPE_Q5_1) { /* dmin (m) follows d */
                uint16_t dmin = f32_to_fp16(rng_f32() * 0.02f);
                memcpy(blk + sizeof d, &dmin, sizeof dmin);
            }
        }
    }
}

/* Σ|x_i·y_i| in double, from the dequantized rows: the scale of the
 * rounding error a reassociated float sum may have. */
static double abs_dot(uint32_t wt, const void *x, uint32_t at, const void *y, int64_t n)
{
    float *fx = malloc((size_t)n * sizeof(float)), *fy = malloc((size_t)n * sizeof(float));
    type_get(wt)->to_float(x, fx, n);
    type_get(at)->to_float(y, fy, n);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += fabs((double)fx[i] * fy[i]);
    free(fx);
    free(fy);
    return s;
}

/* A 2-byte float type's quantizer on 16 special inputs (bit patterns),
 * byte for byte the reference's. */
static void special_values(const kernels *k, uint32_t type, const uint32_t bits[16])
{
    float x[16];
    memcpy(x, bits, sizeof x);
    uint16_t want[16], got[16];
    type_get(type)->from_float(x, want, 16);
    kernels_type(k, type)->from_float(x, got, 16);
    CHECKF(memcmp(want, got, sizeof want) == 0, "%s: %s special values differ", k->name, type_get(type)->name);
}

static void test_quantizers(const kernels *k)
{
    static const uint32_t types[] = {PSI_TYPE_Q8_0, PSI_TYPE_Q8_K, PSI_TYPE_BF16, PSI_TYPE_F16};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        uint32_t type = types[ti];
        const type_traits *t = type_get(type);
        from_float_fn got_fn = kernels_type(k, type)->from_float;
        CHECKF(got_fn != NULL, "%s: %s has no quantizer", k->name, t->name);
        if (!got_fn) continue;
        for (int64_t nb = 1; nb <= 12; nb++) {
            int64_t n = nb * (int64_t)t->blck_size;
            if (t->blck_size == 1) n = nb * 7 + (nb > 6 ? 256 : 0); /* odd lengths for the tails */
            size_t bytes = type_row_size(type, n);
            float *x = malloc((size_t)n * sizeof(float));
            uint8_t *want = malloc(bytes), *got = malloc(bytes);
            for (int shape = 0; shape < 5; shape++) {
                fill_f32(x, n, shape);
                memset(want, 0xAA, bytes);
                memset(got, 0x55, bytes);
                t->from_float(x, want, n);
                got_fn(x, got, n);
                CHECKF(memcmp(want, got, bytes) == 0, "%s: %s quantizer differs (n %lld, shape %d)", k->name,
                       t->name, (long long)n, shape);
            }
            free(x);
            free(want);
            free(got);
        }
    }
    /* bf16: NaN stays a quiet NaN, ties round to even, inf stays inf */
    static const uint32_t bf16_bits[16] = {0x7fc00001, 0xff800000, 0x7f800000, 0x3f808000, 0x3f818000, 0x7f810000,
                                           0x80000000, 0x00000001, 0x3f807fff, 0x3f80ffff, 0xbf808000, 0x7f7fffff,
                                           0, 1, 2, 3};
    special_values(k, PSI_TYPE_BF16, bf16_bits);
    /* f16: quiet and signalling NaN with payloads, ±inf, ties to even
     * (1 + 2^-11, 1 + 3·2^-11), the largest finite and what rounds past
     * it (65519, 65520), subnormal results and their ties, ±0 */
    static const uint32_t f16_bits[16] = {0x7fc00001, 0x7f812345, 0xff800000, 0x7f800000, 0x3f801000, 0x3f803000,
                                          0x477fefff, 0x477ff000, 0x33800000, 0x33c00000, 0x33a00000, 0x387fc000,
                                          0x80000000, 0x00000000, 0xc77fe000, 0x00000001};
    special_values(k, PSI_TYPE_F16, f16_bits);
    /* gemm's own activations (BF16: the bf16-rounded values as f32): byte
     * for byte the reference quantizer's values read back, on the special
     * values above and on random rows of odd lengths (the tail) */
    for (uint32_t wt = 0; wt < KERN_TYPES; wt++) {
        const kern_type *kt = kernels_type(k, wt);
        if (!kt->gemm_from_float) continue;
        const type_traits *a = type_get(type_get(wt)->vec_dot_type);
        float x[300], want[300], got[300];
        uint8_t q[sizeof x]; /* any activation type: at most 4 bytes a value */
        for (int shape = 0; shape <= 5; shape++) {
            const int64_t n = shape == 5 ? 16 : 7 + 59 * shape;
            if (shape == 5) memcpy(x, bf16_bits, sizeof bf16_bits);
            else fill_f32(x, n, shape);
            a->from_float(x, q, n);
            a->to_float(q, want, n);
            memset(got, 0x55, sizeof got);
            kt->gemm_from_float(x, got, n);
            const size_t bytes = (size_t)n * sizeof(float);
            CHECKF(kt->gemm_act_row(n) == bytes && memcmp(want, got, bytes) == 0,
                   "%s: %s gemm activations differ (n %lld)", k->name, type_get(wt)->name, (long long)n);
        }
    }
}

static void test_dots(const kernels *k)
{
    static const uint32_t types[] = {PSI_TYPE_F32, PSI_TYPE_F16, PSI_TYPE_BF16, PSI_TYPE_Q8_0, PSI_TYPE_Q4_0,
                                     PSI_TYPE_Q4_K, PSI_TYPE_Q5_K, PSI_TYPE_Q6_K};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        uint32_t wt = types[ti];
        /* integer block sums, reference float order: bit for bit */
        bool exact = wt == PSI_TYPE_Q4_K || wt == PSI_TYPE_Q5_K || wt == PSI_TYPE_Q6_K;
        const type_traits *t = type_get(wt);
        uint32_t at = t->vec_dot_type;
        const type_traits *a = type_get(at);
        const kern_type *kt = kernels_type(k, wt);
        CHECKF(kt->vec_dot != NULL, "%s: %s has no vec_dot", k->name, t->name);
        if (!kt->vec_dot) continue;
        double worst = 0;
        int cases = 0;
        for (int64_t len = 1; len <= 80; len++) {
            int64_t n = t->blck_size == 1 ? len : len * (int64_t)t->blck_size;
            if (t->blck_size == 256 && len > 20) break;
            if (len == 80) n *= 13; /* one long row */
            size_t wbytes = type_row_size(wt, n), abytes = type_row_size(at, n);
            /* vec_dot_ny reads its own layout of the same values when it has one */
            const size_t nbytes = kt->ny_from_float ? kt->ny_act_row(n) : abytes;
            uint8_t *w = malloc(wbytes), *y = malloc(abytes * KERN_NY), *yn = malloc(nbytes * KERN_NY);
            float *xf = malloc((size_t)n * sizeof(float));
            fill_weights(wt, w, n);
            for (int r = 0; r < KERN_NY; r++) {
                fill_f32(xf, n, (int)((len + r) % 5));
                if (at == PSI_TYPE_F32) memcpy(y + (size_t)r * abytes, xf, abytes);
                else a->from_float(xf, y + (size_t)r * abytes, n);
                if (kt->ny_from_float)
                    kt->ny_from_float(xf, yn + (size_t)r * nbytes, n);
                else
                    memcpy(yn + (size_t)r * nbytes, y + (size_t)r * abytes, abytes);
            }
            float ref[KERN_NY], got[KERN_NY], ny_out[KERN_NY * 3];
            for (int r = 0; r < KERN_NY; r++) {
                t->vec_dot(n, &ref[r], w, y + (size_t)r * abytes);
                kt->vec_dot(n, &got[r], w, y + (size_t)r * abytes);
                double scale = abs_dot(wt, w, at, y + (size_t)r * abytes, n);
                double err = fabs((double)got[r] - ref[r]);
                double tol = 2e-6 * scale + 1e-30;
                if (scale > 0 && err / scale > worst) worst = err / scale;
                if (exact)
                    CHECKF(got[r] == ref[r], "%s: %s n %lld: %.9g, reference %.9g", k->name, t->name, (long long)n,
                           got[r], ref[r]);
                else
                    CHECKF(err <= tol, "%s: %s n %lld: %.9g, reference %.9g (|Δ| %.3g > %.3g)", k->name, t->name,
                           (long long)n, got[r], ref[r], err, tol);
                cases++;
            }
            if (kt->vec_dot_ny) {
                for (int ny = 1; ny <= KERN_NY; ny++) {
                    for (int i = 0; i < KERN_NY * 3; i++) ny_out[i] = -12345.0f;
                    kt->vec_dot_ny(n, ny_out, 3, w, yn, nbytes, ny);
                    for (int r = 0; r < KERN_NY; r++) {
                        /* bit for bit the single product: a token's result
                         * must not depend on the batch it comes in */
                        if (r < ny)
                            CHECKF(ny_out[3 * r] == got[r], "%s: %s vec_dot_ny(%d) row %d n %lld: %.9g, vec_dot %.9g",
                                   k->name, t->name, ny, r, (long long)n, ny_out[3 * r], got[r]);
                        else
                            CHECKF(ny_out[3 * r] == -12345.0f, "%s: %s vec_dot_ny(%d) wrote row %d", k->name,
                                   t->name, ny, r);
                        CHECKF(ny_out[3 * r + 1] == -12345.0f && ny_out[3 * r + 2] == -12345.0f,
                               "%s: %s vec_dot_ny wrote outside its stride", k->name, t->name);
                    }
                }
            }
            free(w);
            free(y);
            free(yn);
            free(xf);
        }
        printf("%-8s %-5s %d dot products, worst |Δ|/Σ|x·y| %.2g\n", k->name, t->name, cases, worst);
    }
}

/* The float tiles' own order (x86_avx2.c, FLOAT_GEMM; the zmm tile keeps
 * it): 8 lanes, lane k a fused multiply-add of every position ≡ k mod 8 in
 * turn, the last n % 8 positions zero-padded, then the lanes summed as
 * types.c's sum8 (hsum_ps). fmaf rounds once, as the instruction does. */
static float float_tile_dot(uint32_t wt, const void *x, uint32_t at, const void *y, int64_t n)
{
    float *fx = malloc((size_t)n * sizeof(float)), *fy = malloc((size_t)n * sizeof(float));
    type_get(wt)->to_float(x, fx, n);
    type_get(at)->to_float(y, fy, n);
    float acc[8] = {0};
    for (int64_t i = 0; i < (n + 7) / 8 * 8; i++)
        acc[i % 8] = i < n ? fmaf(fx[i], fy[i], acc[i % 8]) : fmaf(0, 0, acc[i % 8]);
    free(fx);
    free(fy);
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

/* The tile kernels (gemm) for every tile shape nx × ny, with row and token
 * strides wider than a row and guard values around each output, bit for
 * bit against what they promise: the reference vec_dot, except the float
 * tiles (F32, F16, BF16), which promise their own order of fused multiply-adds
 * (float_tile_dot, itself checked to be within 2e-6 of Σ|x·y| of the
 * reference), the same for every tile, batch and path. */
static void test_gemm(const kernels *k)
{
    int checked = 0;
    double worst = 0;
    for (uint32_t wt = 0; wt < KERN_TYPES; wt++) {
        const kern_type *kt = kernels_type(k, wt);
        if (!kt->gemm) continue;
        const type_traits *t = type_get(wt), *a = type_get(t->vec_dot_type);
        static const int64_t lens[] = {1, 7, 8, 9, 31, 64, 200, 2051};
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            int64_t n = lens[li] * t->blck_size;
            size_t xs = type_row_size(wt, n) + 16, ys = type_row_size(t->vec_dot_type, n) + 8;
            /* the tile's activations: the vec_dot_type's, or its own layout */
            size_t gs = kt->gemm_from_float ? kt->gemm_act_row(n) + 8 : ys;
            uint8_t *x = calloc(KERN_MX, xs), *y = calloc(KERN_NY, ys), *yg = calloc(KERN_NY, gs);
            float *f = malloc((size_t)n * sizeof(float));
            for (int r = 0; r < KERN_MX; r++) fill_weights(wt, x + (size_t)r * xs, n);
            for (int r = 0; r < KERN_NY; r++) {
                fill_f32(f, n, r % 5);
                if (t->vec_dot_type == PSI_TYPE_F32) memcpy(y + (size_t)r * ys, f, (size_t)n * sizeof(float));
                else a->from_float(f, y + (size_t)r * ys, n);
                if (kt->gemm_from_float) kt->gemm_from_float(f, yg + (size_t)r * gs, n);
                else memcpy(yg + (size_t)r * gs, y + (size_t)r * ys, ys);
            }
            float ref[KERN_NY][KERN_MX];
            const bool own = wt == PSI_TYPE_F32 || wt == PSI_TYPE_F16 || wt == PSI_TYPE_BF16;
            for (int tk = 0; tk < KERN_NY; tk++)
                for (int r = 0; r < KERN_MX; r++) {
                    const uint8_t *xw = x + (size_t)r * xs, *ya = y + (size_t)tk * ys;
                    t->vec_dot(n, &ref[tk][r], xw, ya);
                    if (!own) continue;
                    const float want = float_tile_dot(wt, xw, t->vec_dot_type, ya, n);
                    const double scale = abs_dot(wt, xw, t->vec_dot_type, ya, n);
                    const double err = fabs((double)want - ref[tk][r]);
                    if (scale > 0 && err / scale > worst) worst = err / scale;
                    CHECKF(err <= 2e-6 * scale + 1e-30, "%s gemm order n %lld: %.9g, reference %.9g", t->name,
                           (long long)n, want, ref[tk][r]);
                    /* a product of two bf16 values is exact in f32 (short of
                     * underflow), so there FMA rounds as mul + add does */
                    if (wt == PSI_TYPE_BF16)
                        CHECKF(want == ref[tk][r], "BF16 gemm order n %lld: %.9g, reference %.9g", (long long)n, want,
                               ref[tk][r]);
                    ref[tk][r] = want;
                }
            enum { OS = KERN_MX + 3 };
            for (int nx = 1; nx <= KERN_MX; nx++)
                for (int ny = 1; ny <= KERN_NY; ny++) {
                    float out[KERN_NY * OS];
                    for (int i = 0; i < KERN_NY * OS; i++) out[i] = -777.0f;
                    kt->gemm(n, x, xs, nx, yg, gs, ny, out, OS);
                    bool ok = true;
                    for (int tk = 0; tk < KERN_NY; tk++)
                        for (int r = 0; r < OS; r++) {
                            float want = tk < ny && r < nx ? ref[tk][r] : -777.0f;
                            if (memcmp(&out[tk * OS + r], &want, sizeof want)) ok = false;
                        }
                    CHECKF(ok, "%s: %s gemm %dx%d n %lld differs from the reference or writes outside its tile",
                           k->name, t->name, nx, ny, (long long)n);
                    checked++;
                }
            free(x);
            free(y);
            free(yg);
            free(f);
        }
    }
    printf("%-8s gemm: %d tiles bit for bit (float tiles: their fused order, worst |Δ|/Σ|x·y| against the reference "
           "%.2g)\n",
           k->name, checked, worst);
}

/* Repacked groups of 8 rows (repack8 + gemm8), or two groups at once
 * (gemm16, AMX: pair), against the reference vec_dot on the original
 * rows, bit for bit, for every token count, with guard values between and
 * after the outputs; gemm16's second group lies group_stride bytes on,
 * not right after the first. Both read the activations converted by
 * x8_from_float when the table has one. */
static void test_groups(const kernels *k, bool pair)
{
    int checked = 0;
    const int rows = pair ? 16 : 8, max_ny = pair ? KERN_NY16 : KERN_NY;
    for (uint32_t wt = 0; wt < KERN_TYPES; wt++) {
        const kern_type *kt = kernels_type(k, wt);
        if (!kt->repack8 || !kt->gemm8 || (pair && !kt->gemm16)) continue;
        const type_traits *t = type_get(wt), *a = type_get(t->vec_dot_type);
        static const int64_t lens[] = {1, 2, 7, 64, 257};
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            int64_t n = lens[li] * t->blck_size;
            size_t rs = type_row_size(wt, n), ys = type_row_size(t->vec_dot_type, n) + 4;
            const size_t ys8 = kt->x8_from_float ? kt->x8_act_row(n) + 4 : ys, gs = 8 * rs + (pair ? 64 : 0);
            uint8_t *x = malloc((size_t)rows * rs), *g = calloc(2, gs), *y = calloc((size_t)max_ny, ys),
                    *y8 = calloc((size_t)max_ny, ys8);
            float *f = malloc((size_t)n * sizeof(float));
            for (int r = 0; r < rows; r++) fill_weights(wt, x + (size_t)r * rs, n);
            for (int r = 0; r < max_ny; r++) {
                fill_f32(f, n, r % 7);
                a->from_float(f, y + (size_t)r * ys, n);
                if (kt->x8_from_float)
                    kt->x8_from_float(f, y8 + (size_t)r * ys8, n);
                else
                    memcpy(y8 + (size_t)r * ys8, y + (size_t)r * ys, ys);
            }
            for (int h = 0; h < rows / 8; h++) kt->repack8(n, x + (size_t)h * 8 * rs, rs, g + (size_t)h * gs);
            if (kt->unpack8 && !pair) { /* each row back, byte for byte */
                uint8_t *row = malloc(rs);
                for (int r = 0; r < 8; r++) {
                    kt->unpack8(n, g, r, row);
                    CHECKF(!memcmp(row, x + (size_t)r * rs, rs), "%s: %s unpack8 row %d n %lld", k->name, t->name, r,
                           (long long)n);
                }
                free(row);
            }
            float ref[KERN_NY16][16];
            for (int tk = 0; tk < max_ny; tk++)
                for (int r = 0; r < rows; r++) t->vec_dot(n, &ref[tk][r], x + (size_t)r * rs, y + (size_t)tk * ys);
            enum { OS = 19 };
            for (int ny = 1; ny <= max_ny; ny++) {
                float out[KERN_NY16 * OS];
                for (int i = 0; i < KERN_NY16 * OS; i++) out[i] = -777.0f;
                if (pair)
                    kt->gemm16(n, g, gs, y8, ys8, ny, out, OS);
                else
                    kt->gemm8(n, g, y8, ys8, ny, out, OS);
                bool ok = true;
                for (int tk = 0; tk < KERN_NY16; tk++)
                    for (int r = 0; r < OS; r++) {
                        float want = tk < ny && r < rows ? ref[tk][r] : -777.0f;
                        if (memcmp(&out[tk * OS + r], &want, sizeof want)) ok = false;
                    }
                CHECKF(ok, "%s: %s %s ny %d n %lld differs from the reference or writes outside", k->name, t->name,
                       pair ? "gemm16" : "gemm8", ny, (long long)n);
                checked++;
            }
            free(x);
            free(g);
            free(y);
            free(y8);
            free(f);
        }
    }
    if (checked)
        printf("%-8s %s: %d %s bit for bit the reference\n", k->name, pair ? "gemm16" : "gemm8", checked,
               pair ? "two-group tiles" : "repacked tiles");
}

/* SwiGLU against x / (1 + e^-x) · u in double precision (relative 1e-6)
 * and, for the SIMD kernels, against the bytes of the reference's float
 * formula with a correctly rounded e^-x (which they promise; libm's
 * expf, the generic kernel's, misses it on some 6 inputs in 10^4), on
 * lengths around the vector width and values from the far ends (where
 * e^-x overflows or underflows) to zero, with a guard on either side
 * that must stay as it was; and a row split in pieces as whole. */
/* The reference's float formula with e^-x correctly rounded, what the
 * SIMD kernels must give. */
static float swiglu_rounded(float x, float u) { return x / (1.0f + (float)exp(-(double)x)) * u; }

static void test_swiglu(const kernels *k)
{
    static const int64_t lens[] = {1, 7, 8, 9, 16, 31, 1000};
    static const float ends[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 88.0f, -88.0f, 87.5f, -87.5f, 100.0f, -100.0f, 1e30f, -1e30f};
    int checked = 0;
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int64_t n = lens[li];
        float *g = malloc(sizeof(float) * (size_t)(n + 2)), *u = malloc(sizeof(float) * (size_t)n);
        double *want = malloc(sizeof(double) * (size_t)n);
        if (!g || !u || !want) abort();
        g[0] = g[n + 1] = 12345.0f;
        for (int64_t i = 0; i < n; i++) {
            float x = i < (int64_t)(sizeof ends / sizeof ends[0]) && n > 8 ? ends[i] : rng_f32() * (i % 3 ? 8.0f : 60.0f);
            g[i + 1] = x;
            u[i] = rng_f32() * 4.0f;
            want[i] = (double)x / (1.0 + exp(-(double)x)) * u[i];
        }
        float *ref = malloc(sizeof(float) * (size_t)n);
        if (!ref) abort();
        for (int64_t i = 0; i < n; i++) ref[i] = swiglu_rounded(g[i + 1], u[i]);
        k->swiglu(g + 1, u, n);
        bool ok = g[0] == 12345.0f && g[n + 1] == 12345.0f &&
                  (k->swiglu == kern_swiglu_ref || memcmp(ref, g + 1, sizeof(float) * (size_t)n) == 0);
        for (int64_t i = 0; i < n && ok; i++)
            ok = fabs((double)g[i + 1] - want[i]) <= 1e-6 * fabs(want[i]) + 1e-40 && !signbit(g[i + 1]) == !signbit(want[i]);
        CHECKF(ok, "%s: swiglu n %lld differs from the reference or the double-precision value, or writes outside",
               k->name, (long long)n);
        free(ref);
        free(want);
        free(u);
        free(g);
        checked++;
    }
    /* inputs where libm's expf is not correctly rounded (if it has any),
     * 7 of them: all in a tail, which must not fall back to expf */
    float hard[7], hu[7];
    int nh = 0;
    for (uint32_t i = 0; i < 2000000 && nh < 7; i++) {
        float x = 3.0f + (float)i * 8e-6f; /* e^x > 20: 1 + e^x keeps its last bit */
        if (expf(x) != (float)exp((double)x)) {
            hard[nh] = -x; /* e^-(-x) */
            hu[nh++] = 1.0f;
        }
    }
    if (nh) {
        float want_h[7];
        for (int i = 0; i < nh; i++) want_h[i] = swiglu_rounded(hard[i], hu[i]);
        k->swiglu(hard, hu, nh);
        CHECKF(k->swiglu == kern_swiglu_ref || !memcmp(hard, want_h, sizeof(float) * (size_t)nh),
               "%s: swiglu of %d inputs where expf is not correctly rounded", k->name, nh);
    }
    /* the same values however a row is split (the threads' ranges) */
    float whole[100], parts[100], uu[100];
    for (int i = 0; i < 100; i++) {
        whole[i] = parts[i] = rng_f32() * 20.0f;
        uu[i] = rng_f32();
    }
    k->swiglu(whole, uu, 100);
    static const int cuts[] = {0, 3, 11, 12, 29, 64, 93, 100};
    for (int c = 0; c + 1 < (int)(sizeof cuts / sizeof cuts[0]); c++)
        k->swiglu(parts + cuts[c], uu + cuts[c], cuts[c + 1] - cuts[c]);
    CHECKF(!memcmp(whole, parts, sizeof whole), "%s: swiglu of a row split in pieces differs", k->name);
    /* a vector's worth and a tail value of each */
    float odd[9] = {INFINITY, -INFINITY, NAN, 1.0f, 2.0f, -3.0f, 0.5f, -0.25f, INFINITY}, one[9];
    for (int i = 0; i < 9; i++) one[i] = 1.0f;
    k->swiglu(odd, one, 9);
    CHECKF(odd[0] == INFINITY && isnan(odd[1]) && isnan(odd[2]) && odd[8] == INFINITY, "%s: swiglu of inf, -inf, NaN",
           k->name);
    printf("%-8s swiglu: %d lengths within 1e-6 of double precision (SIMD: e^-x correctly rounded); inf, NaN\n", k->name,
           checked);
}

/* Attention (kern_attn) of one KV head against a double-precision
 * softmax computed here, for the cache types, head sizes (one not a
 * multiple of 8: the reference's fallback), groups, tiles of tokens and
 * positions around the kernels' block size; the K/V rows lie among other
 * heads' (kv_stride), q and out among other tokens' and heads' values,
 * which must stay untouched. */
static void test_attn(const kernels *k)
{
    static const uint32_t types[] = {PSI_TYPE_F32, PSI_TYPE_F16, PSI_TYPE_Q8_0};
    static const int32_t hds[] = {64, 128, 32, 12};
    static const int32_t bases[] = {0, 6, 31, 32, 33, 100, 517};
    static const int32_t grps[] = {1, 4, 3}, toks[] = {1, 5, 8};
    int checked = 0;
    for (size_t ti = 0; ti < 3; ti++)
        for (size_t hi = 0; hi < 4; hi++) {
            const uint32_t type = types[ti];
            const int32_t hd = hds[hi];
            if (hd % type_get(type)->blck_size) continue;
            const int32_t n_pos = 530, heads = 3;
            const size_t head_bytes = type_row_size(type, hd), kv_stride = heads * head_bytes;
            uint8_t *kc = malloc(n_pos * kv_stride), *vc = malloc(n_pos * kv_stride);
            float *kf = malloc(sizeof(float) * n_pos * hd), *vf = malloc(sizeof(float) * n_pos * hd);
            double sc[530];
            for (int32_t p = 0; p < n_pos; p++) { /* head 1 is the one attended */
                fill_weights(type, kc + p * kv_stride, heads * hd);
                fill_weights(type, vc + p * kv_stride, heads * hd);
                type_get(type)->to_float(kc + p * kv_stride + head_bytes, kf + (size_t)p * hd, hd);
                type_get(type)->to_float(vc + p * kv_stride + head_bytes, vf + (size_t)p * hd, hd);
            }
            for (size_t gi = 0; gi < 3; gi++)
                for (size_t oi = 0; oi < 3; oi++)
                    for (size_t bi = 0; bi < sizeof bases / sizeof bases[0]; bi++) {
                        const int32_t grp = grps[gi], n_tok = toks[oi], stride = (grp + 1) * hd + 3;
                        int32_t last[8];
                        for (int32_t t = 0; t < n_tok; t++) /* rising, with a repeat and a step back */
                            last[t] = bases[bi] + (t == 3 ? 1 : t == 4 ? 9 : t);
                        float *q = malloc(sizeof(float) * n_tok * stride), *out = malloc(sizeof(float) * n_tok * stride);
                        const float mag = bi % 2 ? 8.0f : 1.0f; /* sharp softmax too */
                        for (int32_t i = 0; i < n_tok * stride; i++) {
                            q[i] = mag * rng_f32();
                            out[i] = -777.0f;
                        }
                        float *work = malloc(sizeof(float) * kern_attn_work(hd, n_pos, n_tok * grp));
                        kern_attn a = {.hd = hd, .n_tok = n_tok, .n_grp = grp, .q = q + 2, .out = out + 2,
                                       .tok_stride = stride, .last = last, .k = kc + head_bytes,
                                       .v = vc + head_bytes, .kv_stride = kv_stride, .kv_type = type,
                                       .scale = 1.0f / sqrtf((float)hd), .work = work};
                        k->attn(&a);
                        bool ok = true;
                        for (int32_t t = 0; t < n_tok; t++) {
                            const float *o = out + (size_t)t * stride;
                            for (int32_t c = 0; c < stride; c++)
                                if ((c < 2 || c >= 2 + grp * hd) && o[c] != -777.0f) ok = false;
                            for (int32_t g = 0; g < grp; g++) {
                                const float *qr = q + (size_t)t * stride + 2 + (size_t)g * hd;
                                double mx = -INFINITY, sum = 0, acc[128] = {0}, vmax = 0;
                                for (int32_t p = 0; p <= last[t]; p++) {
                                    double s = 0;
                                    for (int32_t i = 0; i < hd; i++) s += (double)qr[i] * kf[(size_t)p * hd + i];
                                    sc[p] = s * a.scale;
                                    if (sc[p] > mx) mx = sc[p];
                                }
                                for (int32_t p = 0; p <= last[t]; p++) {
                                    double e = exp(sc[p] - mx);
                                    sum += e;
                                    for (int32_t i = 0; i < hd; i++) {
                                        double v = vf[(size_t)p * hd + i];
                                        acc[i] += e * v;
                                        if (fabs(v) > vmax) vmax = fabs(v);
                                    }
                                }
                                for (int32_t i = 0; i < hd; i++)
                                    if (!(fabs(o[2 + g * hd + i] - acc[i] / sum) <= 2e-5 * vmax + 1e-7)) ok = false;
                            }
                        }
                        CHECKF(ok, "%s: attn type %u hd %d grp %d tokens %d last %d.. differs or writes outside",
                               k->name, type, hd, grp, n_tok, last[0]);
                        checked++;
                        free(q);
                        free(out);
                        free(work);
                    }
            free(kc);
            free(vc);
            free(kf);
            free(vf);
        }
    printf("%-8s attn: %d tiles against a double-precision softmax\n", k->name, checked);
}

/* PSI_CPU reaches the library: the path psi -v reports, and the warning
 * when the CPU lacks the path asked for. */
static void test_env(void)
{
    const char *model = tu_data("models/stories260K.gguf");
    const char *best = "generic";
    for (int l = 0; l < KERN_LEVELS; l++)
        if (kernels_for((kern_level)l)) best = kernels_level_name((kern_level)l);
    for (int l = 0; l < KERN_LEVELS; l++) {
        const char *name = kernels_level_name((kern_level)l);
        setenv("PSI_CPU", name, 1);
        const char *argv[] = {tu_psi(), "run", "-m", model, "-p", "Once", "-n", "4", "--temp", "0", "-v", NULL};
        char *err = NULL;
        int st = tu_run(argv, NULL, &err);
        CHECKF(st == 0, "PSI_CPU=%s: psi run exit %d: %s", name, st, err ? err : "");
        bool ok = kernels_for((kern_level)l) != NULL;
        char want[64];
        snprintf(want, sizeof want, "cpu kernels %s (", ok ? name : best);
        CHECKF(err && strstr(err, want) && !strstr(err, "warning") == ok, "PSI_CPU=%s: stderr lacks '%s'%s: %s",
               name, want, ok ? "" : " or the warning", err ? err : "");
        free(err);
    }
    setenv("PSI_CPU", "sse9", 1);
    const char *argv[] = {tu_psi(), "run", "-m", model, "-p", "Once", "-n", "2", "-v", NULL};
    char *err = NULL;
    int st = tu_run(argv, NULL, &err);
    CHECKF(st == 0 && err && strstr(err, "PSI_CPU=sse9 is not one of"), "PSI_CPU=sse9: exit %d: %s", st,
           err ? err : "");
    free(err);
    unsetenv("PSI_CPU");
}

/* Where the CPU has AMX: a prompt long enough for gemm16 (Q4_0, Q4_K_M
 * and Q8_0 models) gives the same greedy text on amx as on avx512 — their
 * tiles are both the reference's bit for bit, and nothing else differs. */
static void test_amx_model(void)
{
    if (!kernels_for(KERN_AMX) || !kernels_for(KERN_AVX512)) {
        printf("amx model check: not run (this CPU lacks AMX)\n");
        return;
    }
    static const char *const files[3] = {"reference/llama2-tiny-Q4_0.gguf", "reference/llama2-tiny-Q4_K_M.gguf",
                                         "reference/llama2-tiny-Q8_0.gguf"};
    const char *prompt = "Once upon a time, there was a little girl named Lily. She liked to play outside in the "
                         "park with her friends, and one day she found a big red ball under a tree.";
    int compared = 0;
    for (int f = 0; f < 3; f++) {
        const char *model = tu_data(files[f]);
        if (access(model, R_OK) != 0) continue; /* no Q8_0 file in the shared data (test_reference makes one) */
        char *out[2] = {NULL, NULL};
        static const char *const paths[2] = {"avx512", "amx"};
        for (int p = 0; p < 2; p++) {
            setenv("PSI_CPU", paths[p], 1);
            const char *argv[] = {tu_psi(), "run", "-m", model, "-p", prompt, "-n", "24", "--temp", "0", NULL};
            int st = tu_run(argv, &out[p], NULL);
            CHECKF(st == 0, "PSI_CPU=%s psi run %s: exit %d", paths[p], files[f], st);
        }
        unsetenv("PSI_CPU");
        CHECKF(out[0] && out[1] && !strcmp(out[0], out[1]), "%s: amx and avx512 differ: '%s' / '%s'", files[f],
               out[0] ? out[0] : "", out[1] ? out[1] : "");
        compared++;
        free(out[0]);
        free(out[1]);
    }
    CHECK(compared > 0);
    printf("amx model check: %d model(s), the same greedy text as avx512\n", compared);
}

/* Where the CPU has AMX: matmul's last group of 8 rows of a gemm16 product
 * (a matrix of 16k + 8 rows goes to gemm8 for its last 8), which no
 * reference model has. A model generated here (bench/gen_model: 768d, 32
 * heads of 24, one KV head, so K and V have 24 rows) in Q4_0, Q8_0 and
 * Q4_K_M gives the same logits, bit for bit, for a 30-token prompt on amx
 * as on avx512. gen_model: $PSI_GEN_MODEL, else the build tree's. */
static void test_amx_tail(void)
{
    if (!kernels_for(KERN_AMX) || !kernels_for(KERN_AVX512)) {
        printf("amx tail check: not run (this CPU lacks AMX)\n");
        return;
    }
    const char *gen = getenv("PSI_GEN_MODEL") ? getenv("PSI_GEN_MODEL") : PSI_GEN_MODEL;
    char dir[4096], f16[4200], q[4200], out[2][4200];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("kernels_amx_tail"));
    snprintf(f16, sizeof f16, "%s/g24-F16.gguf", dir);
    const char *gargv[] = {gen,      "-o", f16,      "--vocab", tu_data("reference/llama2-tiny-Q4_0.gguf"),
                           "--embd", "768", "--layers", "2",      "--heads", "32", "--kv-heads", "1", "--ff", "768",
                           NULL};
    int st = tu_run(gargv, NULL, NULL);
    CHECKF(st == 0, "%s: exit %d", gen, st);
    if (st) return;
    static const char *const types[3] = {"Q4_0", "Q8_0", "Q4_K_M"};
    const char *prompt = "Once upon a time, there was a little girl named Lily. She liked to play outside in the "
                         "park with her friends.";
    int compared = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(q, sizeof q, "%s/g24-%s.gguf", dir, types[i]);
        const char *qargv[] = {tu_psi(), "quantize", f16, q, types[i], NULL};
        st = tu_run(qargv, NULL, NULL);
        CHECKF(st == 0, "psi quantize %s: exit %d", types[i], st);
        if (st) continue;
        static const char *const paths[2] = {"avx512", "amx"};
        char *bytes[2] = {NULL, NULL};
        size_t size[2] = {0, 0};
        for (int p = 0; p < 2; p++) {
            snprintf(out[p], sizeof out[p], "%s/logits-%s-%s.f32", dir, types[i], paths[p]);
            setenv("PSI_CPU", paths[p], 1);
            const char *largv[] = {tu_psi(), "logits", "-m", q, "-p", prompt, "-o", out[p], NULL};
            st = tu_run(largv, NULL, NULL);
            CHECKF(st == 0, "PSI_CPU=%s psi logits %s: exit %d", paths[p], types[i], st);
            bytes[p] = tu_read_file(out[p], &size[p]);
        }
        unsetenv("PSI_CPU");
        CHECKF(bytes[0] && bytes[1] && size[0] == size[1] && size[0] > 0 && !memcmp(bytes[0], bytes[1], size[0]),
               "%s: amx and avx512 logits differ (%zu, %zu bytes)", types[i], size[0], size[1]);
        compared++;
        free(bytes[0]);
        free(bytes[1]);
    }
    printf("amx tail check: %d model(s) with 24-row K/V, the same logits as avx512\n", compared);
}

#ifdef PSI_TEST_AVX512_EMU
void kernels_fill_avx512_emu(kernels *k); /* x86_avx512.c built with SIMDe */
#endif
#ifdef PSI_TEST_AMX_EMU
void kernels_fill_amx_emu(kernels *k); /* x86_amx.c with the tile instructions in C */
#endif

#if defined(PSI_TEST_AVX512_EMU) || defined(PSI_TEST_AMX_EMU)
/* An instruction-set file built again with its instructions emulated
 * (tests/CMakeLists.txt: SIMDe for AVX-512, C for AMX's tiles), filled in
 * over the AVX2 table as dispatch.c does, and the kernels it replaces
 * checked: 1 when run. */
static int test_emulated(const char *name, void (*fill)(kernels *), bool amx)
{
    const kernels *a2 = kernels_for(KERN_AVX2);
    if (!a2) {
        printf("%s: not run (emulated over AVX2, which this CPU lacks)\n", name);
        return 0;
    }
    static kernels tables[2];
    kernels *k = &tables[amx];
    *k = *a2;
    k->name = name;
    fill(k);
    if (!amx) {
        test_dots(k);
        test_gemm(k);
    }
    test_groups(k, amx);
    return 1;
}
#endif

int main(void)
{
    /* the generic table is the reference itself */
    const kernels *g = kernels_for(KERN_GENERIC);
    CHECK(g != NULL && g->level == KERN_GENERIC);
    if (g) {
        CHECK(kernels_type(g, PSI_TYPE_Q8_0)->vec_dot == type_get(PSI_TYPE_Q8_0)->vec_dot);
        CHECK(kernels_type(g, PSI_TYPE_Q8_K)->from_float == type_get(PSI_TYPE_Q8_K)->from_float);
        CHECK(kernels_type(g, 1000)->vec_dot == NULL);
    }
    CHECK(kernels_get() != NULL);
    if (g) test_attn(g);
    if (g) test_swiglu(g);
    int ran = 0;
    for (int l = KERN_AVX2; l < KERN_LEVELS; l++) {
        const kernels *k = kernels_for((kern_level)l);
        if (!k) {
            printf("%s: not run (this CPU lacks it)\n", kernels_level_name((kern_level)l));
            continue;
        }
        /* a SIMD table must really replace the reference kernels */
        CHECKF(kernels_type(k, PSI_TYPE_Q8_0)->vec_dot != type_get(PSI_TYPE_Q8_0)->vec_dot, "%s", k->name);
        test_quantizers(k);
        test_dots(k);
        test_gemm(k);
        test_groups(k, false);
        test_groups(k, true);
        test_attn(k);
        test_swiglu(k);
        ran++;
    }
#ifdef PSI_TEST_AVX512_EMU
    ran += test_emulated("avx512e", kernels_fill_avx512_emu, false);
#endif
#ifdef PSI_TEST_AMX_EMU
    ran += test_emulated("amxe", kernels_fill_amx_emu, true);
#endif
    printf("%d SIMD path(s) checked; in use: %s\n", ran, kernels_get()->name);
    test_env();
    test_amx_model();
    test_amx_tail();
    return tu_finish("test_kernels");
}
