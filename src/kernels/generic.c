/*
 * generic.c — portable kernels that have no home in types.c's traits (which
 * hold the per-type reference dequantizers, quantizers and dot products):
 * today the axpy of attention's value sum (F32, F16 and Q8_0 caches). The reference the SIMD versions
 * are tested against.
 */
#include "kernels.h"

#include "util.h"

static void axpy_f32(int64_t n, float *y, float a, const void *vx)
{
    const float *x = vx;
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

static void axpy_f16(int64_t n, float *y, float a, const void *vx)
{
    const uint16_t *x = vx;
    for (int64_t i = 0; i < n; i++) y[i] += a * fp16_to_f32(x[i]);
}

/* A Q8_0 row (the Q8_0 KV cache): y[i] += (a·d)·q[i] per block of 32. */
static void axpy_q8_0(int64_t n, float *y, float a, const void *vx)
{
    const block_q8_0 *x = vx;
    for (int64_t b = 0; b < n / QK8_0; b++) {
        const float ad = a * fp16_to_f32(x[b].d);
        for (int j = 0; j < QK8_0; j++) y[b * QK8_0 + j] += ad * (float)x[b].qs[j];
    }
}

void kernels_fill_generic(kernels *k)
{
    k->t[PSI_TYPE_F32].axpy = axpy_f32;
    k->t[PSI_TYPE_F16].axpy = axpy_f16;
    k->t[PSI_TYPE_Q8_0].axpy = axpy_q8_0;
}
