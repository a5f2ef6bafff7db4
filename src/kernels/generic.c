/*
 * generic.c — portable kernels that have no home in types.c's traits (which
 * hold the per-type reference dequantizers, quantizers and dot products):
 * today the axpy of attention's value sum. The reference the SIMD versions
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

void kernels_fill_generic(kernels *k)
{
    k->t[PSI_TYPE_F32].axpy = axpy_f32;
    k->t[PSI_TYPE_F16].axpy = axpy_f16;
}
