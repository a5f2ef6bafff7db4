/*
 * x86_common.h — helpers both x86 kernel files share: horizontal sums in
 * the reference's order, fp16 loads, the ny dispatch of multi-token
 * kernels, and the Q4_0 and Q6_K quant unpacking. Included only by files
 * built with AVX2 (or later) enabled.
 */
#ifndef PSI_X86_COMMON_H
#define PSI_X86_COMMON_H

#include <immintrin.h>
#include <stdint.h>

#include "types.h"

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

static inline __m256 load_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

/* One-token decode streams every weight byte once. The hardware
 * prefetchers stop at each 4 KiB page and must notice the stream again,
 * so a kernel reading bytes p.. asks for the `lines` cache lines
 * PSI_PREFETCH_AHEAD bytes further on (past the end of a matrix is
 * harmless: a prefetch never faults). Q4_0 decode, 2 threads: +7-15%
 * tokens/s in interleaved runs; 4.5 KiB ahead was no better than 2.25. */
#define PSI_PREFETCH_AHEAD 2304
#define PREFETCH_AHEAD(p, lines)                                                                   \
    do {                                                                                           \
        const char *ahead_ = (const char *)(p) + PSI_PREFETCH_AHEAD;                               \
        for (int l_ = 0; l_ < (lines); l_++) _mm_prefetch(ahead_ + 64 * l_, _MM_HINT_T0);          \
    } while (0)

/* 32 quants of a Q4_0 block as signed bytes in value order: low nibbles
 * are values 0..15, high nibbles 16..31. */
static inline __m256i q4_0_unpack(const uint8_t *qs)
{
    const __m128i b = _mm_loadu_si128((const __m128i *)qs);
    const __m256i v = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
    return _mm256_sub_epi8(_mm256_and_si256(v, _mm256_set1_epi8(0x0f)), _mm256_set1_epi8(8));
}

/* Quants 128h + 32g .. +31 (g < 4) of a Q6_K block plus 32 (0..63,
 * unsigned) in value order (layout: types.c q6_K_unpack). */
static inline void q6_K_half(const block_q6_K *b, int h, __m256i q[4])
{
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    const __m256i l0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
    const __m256i l1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
    const __m256i hb = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
    const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4);
    const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4);
    const __m256i h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4);
    const __m256i h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4);
    q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), h0);
    q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), h1);
    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), h2);
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), h3);
}

#endif
