/*
 * generic.c — portable kernels that have no home in types.c's traits (which
 * hold the per-type reference dequantizers, quantizers and dot products):
 * today attention (kern_attn), written the plain way — every score, the
 * softmax, then the weighted sum of values — and the SwiGLU gate, as the
 * references the SIMD versions are tested against.
 */
#include "kernels.h"

#include <math.h>
#include <string.h>

#include "util.h"

/* Position p's K or V row as floats: the cache row itself for F32, else
 * converted into buf. */
static const float *kv_row(const kern_attn *a, const void *base, int32_t p, float *buf)
{
    const uint8_t *row = (const uint8_t *)base + (size_t)p * a->kv_stride;
    if (a->kv_type == PSI_TYPE_F32) return (const float *)row;
    type_get(a->kv_type)->to_float(row, buf, a->hd);
    return buf;
}

void kern_attn_ref(const kern_attn *a)
{
    for (int32_t t = 0; t < a->n_tok; t++) {
        int32_t n_keys = a->last[t] + 1;
        float *scores = a->work, *buf = a->work + n_keys;
        for (int32_t g = 0; g < a->n_grp; g++) {
            const float *q = a->q + kern_attn_row(a, t, g);
            float *out = a->out + kern_attn_row(a, t, g);
            float maxs = -INFINITY;
            for (int32_t p = 0; p < n_keys; p++) {
                const float *k = kv_row(a, a->k, p, buf);
                float s = 0;
                for (int32_t i = 0; i < a->hd; i++) s += q[i] * k[i];
                s *= a->scale;
                scores[p] = s;
                if (s > maxs) maxs = s;
            }
            float sum = 0;
            for (int32_t p = 0; p < n_keys; p++) {
                scores[p] = expf(scores[p] - maxs);
                sum += scores[p];
            }
            float inv = 1.0f / sum;
            memset(out, 0, (size_t)a->hd * sizeof(float));
            for (int32_t p = 0; p < n_keys; p++) {
                const float *v = kv_row(a, a->v, p, buf);
                float w = scores[p] * inv;
                for (int32_t i = 0; i < a->hd; i++) out[i] += w * v[i];
            }
        }
    }
}

void kern_swiglu_ref(float *g, const float *u, int64_t n)
{
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void kernels_fill_generic(kernels *k)
{
    k->attn = kern_attn_ref;
    k->swiglu = kern_swiglu_ref;
}
