/*
 * x86_common.h — helpers both x86 kernel files share: horizontal sums in
 * the reference's order, fp16 loads, and the ny dispatch of multi-token
 * kernels. Included only by files built with AVX2 (or later) enabled.
 */
#ifndef PSI_X86_COMMON_H
#define PSI_X86_COMMON_H

#include <immintrin.h>
#include <stdint.h>

/* Horizontal sum in the order of types.c's sum8: halves, then pairs. */
static inline float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int32_t hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* The multi-token kernels are written once with ny as a parameter and
 * compiled for each ny in 1..KERN_NY, so their per-token accumulators are
 * registers (a loop over a run-time ny keeps them in memory). */
#define PSI_UNROLL _Pragma("GCC unroll 8")
#define NY_DISPATCH(name)                                                                                 \
    static void name(int64_t n, float *out, int64_t os, const void *vx, const void *vy, size_t ys, int ny) \
    {                                                                                                     \
        switch (ny) {                                                                                     \
        case 1: name##_body(n, out, os, vx, vy, ys, 1); break;                                            \
        case 2: name##_body(n, out, os, vx, vy, ys, 2); break;                                            \
        case 3: name##_body(n, out, os, vx, vy, ys, 3); break;                                            \
        case 4: name##_body(n, out, os, vx, vy, ys, 4); break;                                            \
        case 5: name##_body(n, out, os, vx, vy, ys, 5); break;                                            \
        case 6: name##_body(n, out, os, vx, vy, ys, 6); break;                                            \
        case 7: name##_body(n, out, os, vx, vy, ys, 7); break;                                            \
        default: name##_body(n, out, os, vx, vy, ys, 8); break;                                           \
        }                                                                                                 \
    }

static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

#endif
