/*
 * x86_common.h — helpers both x86 kernel files share: horizontal sums in
 * the reference's order, fp16 loads, the ny dispatch of multi-token
 * kernels, the Q4_0 quant unpacking, and the repacked 8-row layouts of
 * the gemm8 kernels with the tile bodies written once for both (each file
 * gives its own exact integer sums). Included only by files built with
 * AVX2 (or later) enabled.
 */
#ifndef PSI_X86_COMMON_H
#define PSI_X86_COMMON_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

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

/* An empty asm that claims to change v: GCC may not move the arithmetic
 * on either side of it across, so a kernel's per-token accumulators are
 * added in the order written (GCC otherwise reassociated Q6_K's integer
 * sums into all products first, spilling them to the stack). */
#define PSI_KEEP(v) __asm__("" : "+x"(v))

static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

static inline __m256 load_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

/* One-token decode streams every weight byte once. The hardware
 * prefetchers stop at each 4 KiB page and must notice the stream again,
 * so a kernel reading bytes p.. asks for the `lines` cache lines
 * PSI_PREFETCH_AHEAD bytes further on (past the end of a matrix is
 * harmless: a prefetch never faults). Q4_0 decode, 2 threads: +7-15%
 * tokens/s in interleaved runs; 4.5 KiB ahead was no better than 2.25.
 * The repacked tiles ask for it at every token count (until session 21
 * only for one token: single-thread bench_kernels had shown no difference
 * at 8 tokens for Q4_0 and Q4_K). In the model with 2 threads, 8 tokens
 * (pp8, the 8-stream step) ran ×1.115 on Q4_0 (10 alternating rounds,
 * 0.97-1.20), ×1.14 on Q4_K_M (8 rounds, 0.97-1.55) and ×1.07 on Q8_0
 * (8 rounds, 0.80-1.20); psi serve's 8 streams ×1.09-1.11; pp512 level
 * (×1.035 and ×1.00). */
#define PSI_PREFETCH_AHEAD 2304
#define PREFETCH_AHEAD(p, lines)                                                                   \
    do {                                                                                           \
        const char *ahead_ = (const char *)(p) + PSI_PREFETCH_AHEAD;                               \
        for (int l_ = 0; l_ < (lines); l_++) _mm_prefetch(ahead_ + 64 * l_, _MM_HINT_T0);          \
    } while (0)

/* PREFETCH_AHEAD for a large block (a Q6_K group super-block, 1680 bytes)
 * in `parts` parts as its work goes on: part `part` asks for the lines of
 * bytes [part·size/parts, (part + 1)·size/parts) of the block
 * PSI_PREFETCH_AHEAD bytes on, so the parts cover every line. Asking for
 * all 27 lines of a Q6_K block at once, one token, n 2048 from memory:
 * 15.3 GB/s against 19.3 spread over its 16 groups (one thread, medians
 * of 5 alternating runs); tg64 (2 threads, bench/ab.py, 5-6 rounds) of
 * a Q6_K file ×1.10 and ×1.05 in two runs, Q4_0 ×1.03 and ×1.06, Q5_K_M
 * ×1.06 (session 16; each run's range about ±0.08).
 * The Q4_K/Q5_K tiles' 18 and 22 lines spread over their 4 sub-block
 * pairs measured level (Q4_K_M ×1.00, Q5_K_M ×0.97), so they keep
 * PREFETCH_AHEAD. */
#define PREFETCH_AHEAD_PART(p, size, part, parts)                                                  \
    do {                                                                                           \
        const char *base_ = (const char *)(p) + PSI_PREFETCH_AHEAD;                                \
        const char *a_ = base_ + (size_t)(part) * (size) / (parts);                                \
        const char *end_ = base_ + (size_t)((part) + 1) * (size) / (parts);                        \
        for (; a_ < end_; a_ += 64) _mm_prefetch(a_, _MM_HINT_T0);                                 \
    } while (0)

/* Pointers to rows 0..max-1 of a tile of n valid rows, the missing ones
 * repeating the last. */
static inline void tile_rows(const void *base, size_t stride, int n, int max, const uint8_t **rows)
{
    for (int r = 0; r < max; r++) rows[r] = (const uint8_t *)base + (size_t)(r < n ? r : n - 1) * stride;
}

/* 32 quants of a Q4_0 block as signed bytes in value order: low nibbles
 * are values 0..15, high nibbles 16..31. */
static inline __m256i q4_0_unpack(const uint8_t *qs)
{
    const __m128i b = _mm_loadu_si128((const __m128i *)qs);
    const __m256i v = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
    return _mm256_sub_epi8(_mm256_and_si256(v, _mm256_set1_epi8(0x0f)), _mm256_set1_epi8(8));
}

/* ---------------------------------------------------------------- repacked layouts
 * The activation layouts and the 8-row weight groups of the gemm8 kernels
 * (kernels.h): x86_avx2.c repacks and computes them, x86_avx512.c has
 * VNNI versions of the same products on the same bytes. */

/* The activations of the multi-token and repacked Q8_0 and Q4_0 kernels: a
 * Q8_0 block (the same quants, the scale as the float its fp16 stands for,
 * which no token then converts once per weight block) with 8·Σ quants,
 * the term the unsigned nibbles' offset of 8 adds to a Q4_0 row's sum. */
typedef struct { float d; int32_t s8; int8_t qs[QK8_0]; } block_q8_0x;

/* A group block: the 8 rows' fp16 scales, then their quant bytes in
 * 4-byte runs: run m of row r at 4·(8m + r) (byte j of a row holds values
 * j, low nibble, and j + 16, high). So vector m (32 bytes) holds bytes
 * 4m..4m+3 of every row, one row per 32-bit lane, and multiplies with the
 * matching 4 activation bytes broadcast to every lane. Repacked Q8_0 is
 * the same with 32 quant bytes a row, byte j = value j. */
typedef struct { uint16_t d[8]; uint8_t qs[8 * 16]; } block_q4_0x8;
typedef struct { uint16_t d[8]; int8_t qs[8 * 32]; } block_q8_0x8;

static inline __m256i bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* Repacked Q4_K and Q5_K: 8 rows' super-block i (as many bytes as the 8
 * rows): d[8], dmin[8]; the 6-bit scales s_j and mins m_j of row r as
 * three words, so that kx8_scales gets them with a byte shuffle each:
 * sa[r] byte k = s_k | (m_k >> 4) << 6, sb[r] byte k = s_4+k |
 * (m_4+k >> 4) << 6, mn[r] byte k = (m_k & 15) | (m_4+k & 15) << 4;
 * Q5_K's fifth bits qh by sub-block pair c in two 32-byte chunks j (row
 * r's 4 bytes at 64c + 32j + 4r: of byte b, bit 2m is value 64c + 4k + b's
 * and bit 2m + 1 value 64c + 32 + 4k + b's, for run k = 4j + m), so the
 * bit a quant vector needs sits where its run k puts it, a constant in
 * the loops over k;
 * then the quants in 4-byte runs as for Q4_0: run k of sub-block pair c
 * of row r at 256c + 32k + 4r (low nibbles: values 64c + 4k.., sub-block
 * 2c; high nibbles: 64c + 32 + 4k.., sub-block 2c + 1). */
typedef struct {
    uint16_t d[8], dmin[8];
    uint32_t sa[8], sb[8], mn[8];
    uint8_t qs[8 * 128];
} block_q4_Kx8;
typedef struct {
    uint16_t d[8], dmin[8];
    uint32_t sa[8], sb[8], mn[8];
    uint8_t qh[8 * 32];
    uint8_t qs[8 * 128];
} block_q5_Kx8;

_Static_assert(sizeof(block_q4_0x8) == 8 * sizeof(block_q4_0), "repacked in place: same size");
_Static_assert(sizeof(block_q8_0x8) == 8 * sizeof(block_q8_0), "repacked in place: same size");
_Static_assert(sizeof(block_q4_Kx8) == 8 * sizeof(block_q4_K), "repacked in place: same size");
_Static_assert(sizeof(block_q5_Kx8) == 8 * sizeof(block_q5_K), "repacked in place: same size");

/* Scales as int16 pairs (sc, sc) per lane (row), or as int32 when sc32
 * (for kernels that multiply int32 sums: vpmulld), mins as pairs
 * (m_2p, m_2p+1): a byte shuffle each from the layout above (about 25
 * operations a super-block, where 4 + 2 bits from two places took 125:
 * a third of a one-token product's time). */
static inline void kx8_scales(const uint32_t *sa, const uint32_t *sb, const uint32_t *mn, int sc32, __m256i sc[8],
                              __m256i mp[4])
{
    const __m256i a = _mm256_loadu_si256((const __m256i *)sa), b = _mm256_loadu_si256((const __m256i *)sb);
    const __m256i c = _mm256_loadu_si256((const __m256i *)mn);
    const __m256i m6 = _mm256_set1_epi8(0x3f), m4 = _mm256_set1_epi8(0x0f), top = _mm256_set1_epi8(0x30);
    const __m256i as = _mm256_and_si256(a, m6), bs = _mm256_and_si256(b, m6);
    /* byte k of each lane to bytes 0 and 2 (pairs) or to byte 0 (int32) */
    const int32_t pick = sc32 ? (int32_t)0x80808000 : (int32_t)0x80008000;
    /* lane r's bytes are 4r.. of its 128-bit half: added to every index */
    const __m256i lane =
        _mm256_setr_epi32(0, 0x04040404, 0x08080808, 0x0c0c0c0c, 0, 0x04040404, 0x08080808, 0x0c0c0c0c);
    for (int j = 0; j < 8; j++) {
        const int32_t k = j % 4;
        const __m256i ctl = _mm256_add_epi8(_mm256_set1_epi32(pick | k | k << 16), lane);
        sc[j] = _mm256_shuffle_epi8(j < 4 ? as : bs, ctl);
    }
    /* byte k: m_k (m0) and m_4+k (m1), 6 bits */
    const __m256i m0 = _mm256_or_si256(_mm256_and_si256(c, m4), _mm256_and_si256(_mm256_srli_epi32(a, 2), top));
    const __m256i m1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(c, 4), m4),
                                       _mm256_and_si256(_mm256_srli_epi32(b, 2), top));
    for (int p = 0; p < 4; p++) {
        const int32_t k = 2 * (p % 2);
        const __m256i ctl = _mm256_add_epi8(_mm256_set1_epi32((int32_t)0x80008000 | k | (k + 1) << 16), lane);
        mp[p] = _mm256_shuffle_epi8(p < 2 ? m0 : m1, ctl);
    }
}

/* h's 16-bit words shifted left by s, or right by -s (-7 <= s <= 7): one
 * immediate shift for a constant s, as the unrolled loops over runs give.
 * What crosses into the other byte of a word lands on bits a byte mask
 * clears (bit 4 comes from the byte's own bit 4 - s). */
static inline __attribute__((always_inline)) __m256i shift16(__m256i h, int s)
{
    return s >= 0 ? _mm256_slli_epi16(h, s) : _mm256_srli_epi16(h, -s);
}

/* Vector v = 8c + k of the quants: low nibbles (sub-block 2c) and high
 * nibbles (2c + 1) of run k, with Q5_K's fifth bits (five) from qh, moved
 * to bit 4 by one shift and a mask each. (With the bits of all four pairs
 * in one run's chunk, as until session 14, the shift was by 2c, a loop
 * variable for several tokens: held in a register, three operations.) */
static inline __attribute__((always_inline)) void kx8_quants(const uint8_t *qs, const uint8_t *qh, int v, int five,
                                                            __m256i *lo, __m256i *hi)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * v));
    *lo = _mm256_and_si256(q, m4);
    *hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
    if (five) {
        const int c = v / 8, k = v % 8, bit = 2 * (k % 4);
        const __m256i b4 = _mm256_set1_epi8(0x10);
        const __m256i h = _mm256_loadu_si256((const __m256i *)(qh + 64 * c + 32 * (k / 4)));
        *lo = _mm256_or_si256(*lo, _mm256_and_si256(shift16(h, 4 - bit), b4));
        *hi = _mm256_or_si256(*hi, _mm256_and_si256(shift16(h, 3 - bit), b4));
    }
}

/* gemm8_q4_K's and gemm8_q5_K's activations: a Q8_K block with, instead
 * of the 16 group sums, the sums of sub-blocks 2p and 2p + 1 (32 values
 * each, |sum| <= 4064) as the int16 pair of word p, what the mins
 * multiply. */
typedef struct { float d; int32_t bj[4]; int8_t qs[QK_K]; } block_q8_Kx;

/* The 4 vectors of a Q4_0 group block's quants qs (Q4_0's layout, which
 * the other 4- and 5-bit groups share) as unsigned nibbles: lo[m] holds
 * values 4m..4m+3 of every row, hi[m] values 16 + 4m.. */
static inline void q4_0x8_nibbles(const uint8_t *qs, __m256i lo[4], __m256i hi[4])
{
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int m = 0; m < 4; m++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * m));
        lo[m] = _mm256_and_si256(v, m4);
        hi[m] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    }
}

/* The activation rows y[t] (of type YT, ys bytes apart from vy) of a
 * multi-token kernel, and their accumulators acc[t], for t < ny. */
#define X8_TOKENS(YT, y, acc, vy, ys, ny)                                                               \
    PSI_UNROLL for (int t_ = 0; t_ < (ny); t_++) {                                                      \
        (y)[t_] = (const YT *)((const uint8_t *)(vy) + (size_t)t_ * (ys));                              \
        (acc)[t_] = _mm256_setzero_ps();                                                                \
    }

/* acc + (dx·dy)·isum per row lane with a rounded product and sum (no
 * FMA), as types.c does: the reference's result bit for bit. */
static inline __m256 x8_step(__m256 acc, __m256 dx, float dy, __m256i isum)
{
    return _mm256_add_ps(acc, _mm256_mul_ps(_mm256_mul_ps(dx, _mm256_set1_ps(dy)), _mm256_cvtepi32_ps(isum)));
}

/* One token's float step for a Q4_0 group block, s the 8 rows' exact sums
 * of nibble × quant: 8·Σy off for the nibbles' offset, then x8_step. */
static inline __m256 q4_0x8_step(__m256 acc, __m256 dx, const block_q8_0x *yb, __m256i s)
{
    return x8_step(acc, dx, yb->d, _mm256_sub_epi32(s, _mm256_set1_epi32(yb->s8)));
}

/* One token's step for a Q4_K/Q5_K group super-block, isum the 8 rows'
 * exact scaled sums: the mins (msum = Σ_j m_j·bsums of sub-block j), then
 * acc + (d·isum - dmin·msum) with d = y.d·dx, dmin = y.d·dmx, in types.c
 * kq_dot_block's order. */
static inline __m256 kx8_step(__m256 acc, __m256 dx, __m256 dmx, const __m256i mp[4], const block_q8_Kx *yb,
                              __m256i isum)
{
    __m256i msum = _mm256_setzero_si256();
    for (int p = 0; p < 4; p++) msum = _mm256_add_epi32(msum, _mm256_madd_epi16(mp[p], _mm256_set1_epi32(yb->bj[p])));
    const __m256 yd = _mm256_set1_ps(yb->d);
    const __m256 d = _mm256_mul_ps(yd, dx), dmin = _mm256_mul_ps(yd, dmx);
    return _mm256_add_ps(acc, _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(isum)),
                                            _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(msum))));
}

/* 8 fp16 values (a group block's scales) as floats. */
static inline __m256 load_h8(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

/* The repacked tiles (gemm8), written once: the blocks' quants, scales and
 * float steps are the same on every x86 path, only the exact integer sums
 * are each instruction set's own (the macros' SUMS and ISUM). Several
 * tokens read the unpacked quants from L1.
 *
 * GEMM8_BODY, the tile of the 32-value types: per group block, its 8 quant
 * vectors q (QUANTS, a statement on x[i]) once for all the tokens, then per
 * token acc = STEP(acc, &x[i], &y[t][i], q): the exact sums and the float
 * step. */
#define GEMM8_BODY(NAME, GT, YT, QUANTS, STEP)                                                               \
    static inline __attribute__((always_inline)) void NAME##_body(                                           \
        int64_t n, const void *vx, const void *vy, size_t ys, const int ny, float *out, int64_t os)          \
    {                                                                                                        \
        const GT *x = vx;                                                                                    \
        const YT *y[KERN_NY];                                                                                \
        __m256 acc[KERN_NY];                                                                                 \
        X8_TOKENS(YT, y, acc, vy, ys, ny);                                                                   \
        const int64_t nb = n / 32;                                                                           \
        for (int64_t i = 0; i < nb; i++) {                                                                   \
            PREFETCH_AHEAD(&x[i], (int)(sizeof x[i] + 63) / 64);                                             \
            __m256i q[8];                                                                                    \
            QUANTS;                                                                                          \
            PSI_UNROLL for (int t = 0; t < ny; t++) acc[t] = STEP(acc[t], &x[i], &y[t][i], q);               \
        }                                                                                                    \
        PSI_UNROLL for (int t = 0; t < ny; t++) _mm256_storeu_ps(out + t * os, acc[t]);                      \
    }

/* Q4_0: SUMS(lo, hi, yq), a group block's 8 rows' Σ nibble·quant (int32). */
#define GEMM8_Q4_0(NAME, SUMS)                                                                                  \
    static inline __m256 NAME##_step(__m256 acc, const block_q4_0x8 *b, const block_q8_0x *yb, const __m256i q[8]) \
    {                                                                                                           \
        return q4_0x8_step(acc, load_h8(b->d), yb, SUMS(q, q + 4, yb->qs));                                      \
    }                                                                                                           \
    GEMM8_BODY(NAME, block_q4_0x8, block_q8_0x, q4_0x8_nibbles(x[i].qs, q, q + 4), NAME##_step)

/* The repacked Q8_0 tile: PREP(v) turns a weight vector into the form SUMS
 * multiplies (once per block for all the tokens), and SUMS(q, qs, yb)
 * gives a token's exact 8 row sums Σ x·y from those vectors q[8] (qs: the
 * block's own quant bytes). */
#define GEMM8_Q8_0(NAME, PREP, SUMS)                                                                            \
    static inline __attribute__((always_inline)) void NAME##_quants(const int8_t *qs, __m256i q[8])            \
    {                                                                                                           \
        PSI_UNROLL for (int m = 0; m < 8; m++) q[m] = PREP(_mm256_loadu_si256((const __m256i *)(qs + 32 * m))); \
    }                                                                                                           \
    static inline __m256 NAME##_step(__m256 acc, const block_q8_0x8 *b, const block_q8_0x *yb, const __m256i q[8]) \
    {                                                                                                           \
        return x8_step(acc, load_h8(b->d), yb->d, SUMS(q, b->qs, yb));                                           \
    }                                                                                                           \
    GEMM8_BODY(NAME, block_q8_0x8, block_q8_0x, NAME##_quants(x[i].qs, q), NAME##_step)

/* The exact sums of a Q4_K/Q5_K group super-block for every token:
 * NAME(qs, qh, five, y, i, ny, sc, isum), KX8_GEMM's ISUMS. Sub-block j =
 * 2c + h's 8 quant vectors are unpacked once into registers, then each
 * token's isum adds SUB(w, yq, sc_j, five): that token's Σ q·y over them
 * times the scale (an instruction set's own). Until session 13 the loops
 * ran the other way round (per token, every sub-block, the quants
 * unpacked once per super-block into a 2 KiB stack array), so each
 * multiply-add instruction read two vectors from L1, the quants and the
 * activation broadcast: the load ports' limit, about half of Q4_0's rate
 * on Zen 3. This order reads one. Zen 3 (AVX2), single thread, n 2048,
 * medians of 7 alternating runs, GMAC/s old → new: Q4_K 8 tokens 56 → 93,
 * 4 tokens 41 → 74, 2 tokens 42 → 59, 1 token 31 → 35; Q5_K 47 → 69,
 * 37 → 54, 20 → 24, 21 → 21; in the model (bench/ab.py, 4 rounds)
 * Q4_K_M pp512 ×1.38, Q5_K_M ×1.31, generation level. */
#define KX8_ISUMS(NAME, SUB)                                                                                    \
    static inline __attribute__((always_inline)) void NAME##_pair(const uint8_t *qs, const uint8_t *qh,         \
                                                                  const int five, const block_q8_Kx *const *y,  \
                                                                  int64_t i, const int ny, const __m256i sc[8], \
                                                                  __m256i *isum, const int c)                   \
    {                                                                                                            \
        PSI_UNROLL for (int h = 0; h < 2; h++) {                                                                 \
            __m256i w[8];                                                                                        \
            PSI_UNROLL for (int k = 0; k < 8; k++) {                                                             \
                __m256i lo, hi;                                                                                  \
                kx8_quants(qs, qh, 8 * c + k, five, &lo, &hi);                                                   \
                w[k] = h ? hi : lo;                                                                              \
            }                                                                                                    \
            PSI_UNROLL for (int t = 0; t < ny; t++)                                                              \
                isum[t] = _mm256_add_epi32(isum[t], SUB(w, y[t][i].qs + 64 * c + 32 * h, sc[2 * c + h], five));  \
        }                                                                                                        \
    }                                                                                                            \
    static inline __attribute__((always_inline)) void NAME(const uint8_t *qs, const uint8_t *qh, const int five, \
                                                           const block_q8_Kx *const *y, int64_t i, const int ny, \
                                                           const __m256i sc[8], __m256i *isum)                  \
    {                                                                                                            \
        PSI_UNROLL for (int t = 0; t < ny; t++) isum[t] = _mm256_setzero_si256();                                \
        /* the sub-block pairs unrolled for one token only (for 2-8 the code ran 0.77-0.86x) */                  \
        if (ny == 1)                                                                                             \
            PSI_UNROLL for (int c = 0; c < 4; c++) NAME##_pair(qs, qh, five, y, i, ny, sc, isum, c);             \
        else                                                                                                     \
            for (int c = 0; c < 4; c++) NAME##_pair(qs, qh, five, y, i, ny, sc, isum, c);                        \
    }

/* Q4_K/Q5_K: ISUMS(qs, qh, five, y, i, ny, sc, isum) sets isum[t] (t <
 * ny) to token t's Σ_j sc_j·Σ q·y over group super-block i (8 rows, one
 * per lane; y[t] the tokens' activation rows), sc as int16 pairs (sc, sc)
 * per row, or as int32 when SC32. QH: the fifth bits' bytes of group
 * super-block b (anything for Q4_K, FIVE 0, which never reads them). */
#define KX8_GEMM(NAME, GT, FIVE, QH, SC32, ISUMS)                                                            \
    static inline __attribute__((always_inline)) void NAME##_body(                                           \
        int64_t n, const void *vx, const void *vy, size_t ys, const int ny, float *out, int64_t os)          \
    {                                                                                                        \
        const GT *x = vx;                                                                                    \
        const block_q8_Kx *y[KERN_NY];                                                                       \
        __m256 acc[KERN_NY];                                                                                 \
        X8_TOKENS(block_q8_Kx, y, acc, vy, ys, ny);                                                          \
        const int64_t nb = n / QK_K;                                                                         \
        for (int64_t i = 0; i < nb; i++) {                                                                   \
            const GT *b = &x[i];                                                                             \
            PREFETCH_AHEAD(b, (int)(sizeof *b + 63) / 64);                                                   \
            __m256i sc[8], mp[4], isum[KERN_NY];                                                             \
            kx8_scales(b->sa, b->sb, b->mn, SC32, sc, mp);                                                   \
            ISUMS(b->qs, QH, FIVE, y, i, ny, sc, isum);                                                      \
            const __m256 dx = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)b->d));                       \
            const __m256 dmx = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)b->dmin));                   \
            PSI_UNROLL for (int t = 0; t < ny; t++) acc[t] =                                                 \
                kx8_step(acc[t], dx, dmx, mp, &y[t][i], isum[t]);                                            \
        }                                                                                                    \
        PSI_UNROLL for (int t = 0; t < ny; t++) _mm256_storeu_ps(out + t * os, acc[t]);                      \
    }

/* gemm8 with ny as a compile-time constant, as NY_DISPATCH. A group's 8
 * rows are 8 consecutive outputs of each token. */
#define GEMM8_DISPATCH(NAME)                                                                                    \
    static void NAME(int64_t n, const void *vx, const void *vy, size_t ys, int ny, float *out, int64_t os)     \
    {                                                                                                           \
        switch (ny) {                                                                                           \
        case 1: NAME##_body(n, vx, vy, ys, 1, out, os); break;                                                  \
        case 2: NAME##_body(n, vx, vy, ys, 2, out, os); break;                                                  \
        case 3: NAME##_body(n, vx, vy, ys, 3, out, os); break;                                                  \
        case 4: NAME##_body(n, vx, vy, ys, 4, out, os); break;                                                  \
        case 5: NAME##_body(n, vx, vy, ys, 5, out, os); break;                                                  \
        case 6: NAME##_body(n, vx, vy, ys, 6, out, os); break;                                                  \
        case 7: NAME##_body(n, vx, vy, ys, 7, out, os); break;                                                  \
        default: NAME##_body(n, vx, vy, ys, 8, out, os); break;                                                 \
        }                                                                                                       \
    }

/* ---------------------------------------------------------------- Q4_1, Q5_0, Q5_1 groups */

/* The activations of the repacked Q4_1 and Q5_1 kernels: a Q8_1 block
 * (types.c's q8_1_from_f32, byte for byte) with its fp16 scale and sum
 * as the floats they stand for. */
typedef struct { float d, s; int8_t qs[QK8_1]; } block_q8_1x;

/* The older 32-value types (whole files of them are still about, and
 * llama.cpp's quantizer falls back to Q5_0/Q5_1 for rows that are not a
 * multiple of 256), repacked as Q4_0 (by x86_avx2.c): the 8 rows' fp16
 * scales (and the mins m of x = q·d + m), Q5's fifth bits as one word per
 * row, the nibbles in Q4_0's 4-byte runs. The fifth bits are rearranged: bit v of byte b of
 * row r's word belongs to the quant that byte b of lane r of vector v
 * holds (vectors 0-3 the low nibbles' runs: values 4v + b; 4-7 the high
 * nibbles': 16 + 4(v - 4) + b), so one shift and one mask put it at bit
 * 4. Each kernel gives types.c's result bit for bit: exact integer sums,
 * then its float steps in its order. */
typedef struct { uint16_t d[8], m[8]; uint8_t qs[8 * 16]; } block_q4_1x8;
typedef struct { uint16_t d[8]; uint32_t qh[8]; uint8_t qs[8 * 16]; } block_q5_0x8;
typedef struct { uint16_t d[8], m[8]; uint32_t qh[8]; uint8_t qs[8 * 16]; } block_q5_1x8;
_Static_assert(sizeof(block_q4_1x8) == 8 * sizeof(block_q4_1), "repacked in place: same size");
_Static_assert(sizeof(block_q5_0x8) == 8 * sizeof(block_q5_0), "repacked in place: same size");
_Static_assert(sizeof(block_q5_1x8) == 8 * sizeof(block_q5_1), "repacked in place: same size");

/* The 8 vectors of 5-bit quants (0..31) of a Q5 group block: Q4_0's
 * nibbles with each byte's fifth bit from the rearranged words. */
static inline __attribute__((always_inline)) void q5x8_quants(const uint8_t *qs, const uint32_t *qh, __m256i q[8])
{
    q4_0x8_nibbles(qs, q, q + 4);
    const __m256i w = _mm256_loadu_si256((const __m256i *)qh), b4 = _mm256_set1_epi8(0x10);
    PSI_UNROLL for (int v = 0; v < 8; v++) {
        /* bit v of each byte to bit 4 (16-bit shifts: what crosses into the
         * other byte of a word lands on no bit 4) */
        const __m256i f = v <= 4 ? _mm256_slli_epi16(w, 4 - v) : _mm256_srli_epi16(w, v - 4);
        q[v] = _mm256_or_si256(q[v], _mm256_and_si256(f, b4));
    }
}

/* acc + ((dx·dy)·isum + m·s) per row lane: types.c's step for the types
 * with mins (Q8_1's s = dy·Σy). */
static inline __m256 x8_step_min(__m256 acc, __m256 dx, __m256 mx, const block_q8_1x *yb, __m256i isum)
{
    const __m256 t = _mm256_mul_ps(_mm256_mul_ps(dx, _mm256_set1_ps(yb->d)), _mm256_cvtepi32_ps(isum));
    return _mm256_add_ps(acc, _mm256_add_ps(t, _mm256_mul_ps(mx, _mm256_set1_ps(yb->s))));
}

/* The Q4_1, Q5_0 and Q5_1 tiles (gemm8_q4_1, ..., with their ny
 * dispatch), written once: SUMS4(lo, hi, yq) an instruction set's exact
 * sums of 4-bit quants (as GEMM8_Q4_0's), SUMS5(q, yq) of 5-bit ones. */
#define GEMM8_LEGACY(SUMS4, SUMS5)                                                                              \
    static inline __m256 q4_1x8_step(__m256 acc, const block_q4_1x8 *b, const block_q8_1x *yb, const __m256i q[8]) \
    {                                                                                                           \
        return x8_step_min(acc, load_h8(b->d), load_h8(b->m), yb, SUMS4(q, q + 4, yb->qs));                     \
    }                                                                                                           \
    /* Σ (q - 16)·y = Σ q·y - 16·Σy, and s8 = 8·Σy */                                                           \
    static inline __m256 q5_0x8_step(__m256 acc, const block_q5_0x8 *b, const block_q8_0x *yb, const __m256i q[8]) \
    {                                                                                                           \
        return x8_step(acc, load_h8(b->d), yb->d, _mm256_sub_epi32(SUMS5(q, yb->qs), _mm256_set1_epi32(2 * yb->s8))); \
    }                                                                                                           \
    static inline __m256 q5_1x8_step(__m256 acc, const block_q5_1x8 *b, const block_q8_1x *yb, const __m256i q[8]) \
    {                                                                                                           \
        return x8_step_min(acc, load_h8(b->d), load_h8(b->m), yb, SUMS5(q, yb->qs));                            \
    }                                                                                                           \
    GEMM8_BODY(gemm8_q4_1, block_q4_1x8, block_q8_1x, q4_0x8_nibbles(x[i].qs, q, q + 4), q4_1x8_step)    \
    GEMM8_BODY(gemm8_q5_0, block_q5_0x8, block_q8_0x, q5x8_quants(x[i].qs, x[i].qh, q), q5_0x8_step)     \
    GEMM8_BODY(gemm8_q5_1, block_q5_1x8, block_q8_1x, q5x8_quants(x[i].qs, x[i].qh, q), q5_1x8_step)     \
    GEMM8_DISPATCH(gemm8_q4_1)                                                                                  \
    GEMM8_DISPATCH(gemm8_q5_0)                                                                                  \
    GEMM8_DISPATCH(gemm8_q5_1)

/* ---------------------------------------------------------------- Q6_K groups */

/* Repacked Q6_K: 8 rows' super-block i (1680 bytes, as many as the 8
 * rows). Vector m (m < 64) holds values 4m..4m+3 of every row, row r in
 * lane r, as unsigned 6-bit quants u = q + 32; vectors 4g..4g+3 are
 * 16-value group g, which takes scale g. sc[p][r] holds row r's scales 2p
 * and 2p + 1, so one sign extension gives the int16 pair per lane that
 * the bsums term multiplies; ql chunk k (32 bytes) holds the low 4 bits of
 * vector 2k in its low nibbles and of vector 2k + 1 in its high nibbles;
 * qh chunk g holds the top 2 bits of vector 4g + j at bits 2j, 2j + 1.
 * Tried in session 14 and not kept: a group's quants as three chunks
 * (vectors 4g..4g+2 in bits 0-5 of each byte, vector 4g+3's bits in bits
 * 6-7 of the three), 11 operations for 4 vectors instead of 17 and
 * llvm-mca's one-token loop 16% shorter, but level on Zen 3 (one thread,
 * 1 and 8 tokens, interleaved in one process): there the one-token loop
 * moved by 13% with nothing but where its code sat, front-end bound. */
typedef struct {
    uint16_t d[8];
    int8_t sc[8][8][2];
    uint8_t ql[32 * 32];
    uint8_t qh[16 * 32];
} block_q6_Kx8;
_Static_assert(sizeof(block_q6_Kx8) == 8 * sizeof(block_q6_K), "repacked in place: same size");

/* Quant vectors 4g + 2h and 4g + 2h + 1 (group g, u in 0..63). 16-bit
 * shifts: what crosses into the other byte of a word lands on bits the
 * masks clear. */
static inline __attribute__((always_inline)) void q6x8_quants(const block_q6_Kx8 *b, int g, int h, __m256i q[2])
{
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
    const __m256i l = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * g + 32 * h));
    const __m256i t = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * g));
    q[0] = _mm256_or_si256(_mm256_and_si256(l, m4), _mm256_and_si256(h ? t : _mm256_slli_epi16(t, 4), m30));
    q[1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l, 4), m4),
                           _mm256_and_si256(h ? _mm256_srli_epi16(t, 2) : _mm256_slli_epi16(t, 2), m30));
}

/* gemm8 for repacked Q6_K times Q8_K activations (the vec_dot_type's own
 * layout: its bsums pair p is the int16 pair (B_2p, B_2p+1)). Per row
 * (lane) and token the reference's exact integer sum,
 *   isum = Σ_g s_g·Σ u·y - 32·Σ_g s_g·B_g
 * (a lane's int16 sums two maddubs: <= 2·2·63·128), then its float step
 * (types.c vec_dot_q6_K_q8_K): bit for bit. Two of a group's 4 vectors
 * at a time are unpacked once for all the tokens, which keep their 8 sums
 * in registers.
 * MADD_ACC(acc, p, sc): acc + the int16 pairs p times sc, summed in pairs
 * into int32 (vpmaddwd and an add; VNNI's vpdpwssd).
 * Zen 3, one thread, 8 tokens, n 2048 (session 9): 75 GMAC/s from memory
 * against the Q6_K rows kernel's 54 (in cache 76 against 61); decode
 * (one token) level with the rows kernel. In the Q4_0 file's 8-stream
 * step the Q6_K output matrix fell from 22% to 18% of the time; pp256 of
 * a Q6_K file 84 -> 101 tok/s, of Q4_K_M 73-80 -> 86-87.
 * The next super-block is prefetched for any number of tokens: 8 tokens
 * from memory ran at 75 against 47 GMAC/s without (Q4_0, Q4_K: no
 * difference there, one thread; in the model with 2 threads they gained
 * too, and prefetch since session 21: PSI_PREFETCH_AHEAD); one token
 * without ×1.18 in the cache but tg48 of a Q6_K
 * file ×0.54 (session 15). One token spreads it over the 16 groups
 * (PREFETCH_AHEAD_PART), more tokens ask for it at once (spread, pp256 of
 * a Q6_K file ran ×0.92; session 16). */
#define Q6X8_GEMM(NAME, MADD_ACC)                                                                                    \
    static inline __attribute__((always_inline)) void NAME##_body(int64_t n, const void *vx, const void *vy,         \
                                                                  size_t ys, const int ny, float *out,               \
                                                                  int64_t os)                                        \
    {                                                                                                                \
        const block_q6_Kx8 *x = vx;                                                                                  \
        const block_q8_K *y[KERN_NY];                                                                                \
        __m256 acc[KERN_NY];                                                                                         \
        X8_TOKENS(block_q8_K, y, acc, vy, ys, ny);                                                                   \
        const __m256i dup0 = _mm256_setr_epi8(0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13, 0, 1, 0, 1, 4,     \
                                              5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13);                                  \
        const __m256i dup1 = _mm256_add_epi8(dup0, _mm256_set1_epi8(2));                                             \
        for (int64_t i = 0; i < n / QK_K; i++) {                                                                     \
            const block_q6_Kx8 *b = &x[i];                                                                           \
            if (ny > 1) PREFETCH_AHEAD(b, (int)(sizeof *b + 63) / 64);                                               \
            __m256i isum[KERN_NY];                                                                                   \
            PSI_UNROLL for (int t = 0; t < ny; t++) isum[t] = _mm256_setzero_si256();                                \
            __m256i sp[8]; /* lane r: row r's scales (2p, 2p + 1) as int16 */                                        \
            for (int p = 0; p < 8; p++) sp[p] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->sc[p]));    \
            __m256i scs[16]; /* lane r: row r's scale g as the int16 pair (s, s) */                                  \
            for (int g = 0; g < 16; g++) scs[g] = _mm256_shuffle_epi8(sp[g / 2], g % 2 ? dup1 : dup0);               \
            for (int g = 0; g < 16; g++) {                                                                           \
                if (ny == 1) PREFETCH_AHEAD_PART(b, sizeof *b, g, 16);                                               \
                const __m256i sc = scs[g];                                                                           \
                PSI_UNROLL for (int h = 0; h < 2; h++) { /* two vectors at a time: the 8 sums stay in registers */   \
                    __m256i q[2];                                                                                    \
                    q6x8_quants(b, g, h, q);                                                                         \
                    PSI_UNROLL for (int t = 0; t < ny; t++) {                                                        \
                        const int8_t *yq = y[t][i].qs + 16 * g + 8 * h;                                              \
                        const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(q[0], bcast4(yq)),                   \
                                                           _mm256_maddubs_epi16(q[1], bcast4(yq + 4)));              \
                        isum[t] = MADD_ACC(isum[t], p, sc);                                                          \
                        PSI_KEEP(isum[t]); /* added in this order, not all products first (spills) */                \
                    }                                                                                                \
                }                                                                                                    \
            }                                                                                                        \
            const __m256 dx = load_h8(b->d);                                                                         \
            PSI_UNROLL for (int t = 0; t < ny; t++) {                                                                \
                __m256i bs = _mm256_setzero_si256();                                                                 \
                for (int p = 0; p < 8; p++) bs = MADD_ACC(bs, sp[p], bcast4((const int8_t *)&y[t][i].bsums[2 * p])); \
                acc[t] = x8_step(acc[t], dx, y[t][i].d, _mm256_sub_epi32(isum[t], _mm256_slli_epi32(bs, 5)));        \
            }                                                                                                        \
        }                                                                                                            \
        PSI_UNROLL for (int t = 0; t < ny; t++) _mm256_storeu_ps(out + t * os, acc[t]);                              \
    }                                                                                                                \
    GEMM8_DISPATCH(NAME)

#endif
