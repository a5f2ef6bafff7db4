/*
 * x86_amx.c — AMX (the tile registers and TMUL int8 dot products of
 * Sapphire Rapids and later Xeons) for prompt processing: the `amx` table
 * is the `avx512` one plus gemm16 tiles for the repacked Q8_0, Q4_0, Q4_K
 * and Q5_K matrices (kernels.h; the K-quants', at the end of this file,
 * are newer than the last run on AMX hardware).
 *
 * One TDPBSSD multiplies a tile of up to 16 tokens' activation block
 * (A: a row of 32 signed bytes per token, read in place from gemm8's
 * activation rows) by one repacked group's block (B: 8 rows of 32 bytes,
 * row m the quants 4m..4m+3 of the 8 weight rows — exactly the repacked
 * layout of Q8_0, so B is read in place too; Q4_0's nibbles are unpacked
 * to q - 8 first), leaving the 16 × 8 exact int32 block sums in a tile
 * register. A call takes two groups (16 rows) and up to 32 tokens: 2 A
 * tiles × 2 B tiles, four independent products per block. The sums are
 * stored, and the float step is gemm8's (x8_step: (dx·dy)·isum added, no
 * FMA), so the results are the reference's bit for bit.
 *
 * Tiles must be big to pay: a first version on gemm8's 8 rows × 8 tokens
 * (one 2048-MAC product per block) ran at 42-52 against the VNNI tile's
 * 63-72 GMAC/s (session 6). Measured on a 16-core Sapphire Rapids-class
 * Xeon (session 8; bench_kernels, one thread, n 2048, 4096 rows): 16 rows
 * × 16 tokens (two products a block) 136-179 against the VNNI gemm8's
 * 94-97 GMAC/s; this 2 × 2 version at 32 tokens, Q8_0 171 and Q4_0 162
 * against 95 and 99; model pp512 at 2 threads (psi bench, interleaved
 * with the avx512 table and llama.cpp c392e509 built with AMX) Q8_0
 * 168-201 against 100-157 (llama.cpp 128-155), Q4_0 187-194 against
 * 137-138 (llama.cpp 133-145). At 8 tokens gemm16 does not pay (Q4_0 80
 * against 96), so model_llama.c uses it from 16 tokens
 * (MATMUL_GEMM16_MIN): prompts, not decode or a few streams.
 *
 * dispatch.c builds this table only when cpuid reports AMX-TILE and
 * AMX-INT8, XCR0 has the tile state and Linux granted tile data to the
 * process. The test build compiles this file once more with the tile
 * instructions emulated in C (PSI_AMX_EMU, below), so test_kernels checks
 * the tile layouts and float steps on any AVX2 machine as `amxe` (the
 * float steps there as two ymm halves: the zmm form runs only where the
 * CPU has AVX-512; test_kernels checked it on the Xeon above).
 */
#include "kernels.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <stdalign.h>
#include <stddef.h>
#include <string.h>

#include "x86_common.h"

/* The tile configuration LDTILECFG reads (palette 1). */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_config;
_Static_assert(sizeof(amx_config) == 64, "LDTILECFG reads 64 bytes");

#ifdef PSI_AMX_EMU
/* The five tile instructions used here, in C, on a thread's 8 tiles, with
 * the checks the CPU makes: a tile the configuration leaves empty, or a
 * product whose shapes do not match (C rows = A rows, A's K = B rows, C
 * columns = B columns), faults there, so it aborts here. */
#include <stdio.h>
#include <stdlib.h>
#define kernels_fill_amx kernels_fill_amx_emu
void kernels_fill_amx_emu(kernels *k);
typedef struct {
    int rows, colsb;
    uint8_t b[16][64];
} emu_tile;
static _Thread_local emu_tile emu_tiles[8];
static void emu_check(bool ok, const char *what)
{
    if (ok) return;
    fprintf(stderr, "x86_amx.c (emulated): %s would fault on the CPU\n", what);
    abort();
}
static void emu_loadconfig(const amx_config *c)
{
    emu_check(c->palette == 1, "a palette other than 1");
    for (int t = 0; t < 8; t++) {
        emu_tiles[t].rows = c->rows[t];
        emu_tiles[t].colsb = c->colsb[t];
        emu_check(c->rows[t] <= 16 && c->colsb[t] <= 64 && !c->rows[t] == !c->colsb[t], "a tile shape");
    }
}
static emu_tile *emu_used(int t)
{
    emu_check(emu_tiles[t].rows > 0, "a tile the configuration leaves empty");
    return &emu_tiles[t];
}
static void emu_loadd(int t, const void *base, size_t stride)
{
    emu_tile *e = emu_used(t);
    for (int r = 0; r < e->rows; r++) memcpy(e->b[r], (const uint8_t *)base + (size_t)r * stride, (size_t)e->colsb);
}
static void emu_stored(int t, void *base, size_t stride)
{
    const emu_tile *e = emu_used(t);
    for (int r = 0; r < e->rows; r++) memcpy((uint8_t *)base + (size_t)r * stride, e->b[r], (size_t)e->colsb);
}
static void emu_zero(int t) { memset(emu_used(t)->b, 0, sizeof emu_tiles[t].b); }
static void emu_dpbssd(int c, int a, int b)
{
    emu_tile *ct = emu_used(c);
    const emu_tile *at = emu_used(a), *bt = emu_used(b);
    emu_check(ct->rows == at->rows && at->colsb / 4 == bt->rows && ct->colsb == bt->colsb, "a product's shapes");
    for (int m = 0; m < at->rows; m++)
        for (int n = 0; n < ct->colsb / 4; n++) {
            int32_t s;
            memcpy(&s, &ct->b[m][4 * n], 4);
            for (int k = 0; k < at->colsb / 4; k++)
                for (int i = 0; i < 4; i++) s += (int8_t)at->b[m][4 * k + i] * (int8_t)bt->b[k][4 * n + i];
            memcpy(&ct->b[m][4 * n], &s, 4);
        }
}
#undef _tile_loadconfig
#undef _tile_loadd
#undef _tile_stored
#undef _tile_zero
#undef _tile_dpbssd
#define _tile_loadconfig(c) emu_loadconfig(c)
#define _tile_loadd(t, p, s) emu_loadd(t, p, s)
#define _tile_stored(t, p, s) emu_stored(t, p, s)
#define _tile_zero(t) emu_zero(t)
#define _tile_dpbssd(c, a, b) emu_dpbssd(c, a, b)
#endif

/* Tiles: 0 and 1 A (tokens 0-15 and 16-31: a row of 32 bytes per token),
 * 2 and 3 B (the two groups' blocks: 8 rows of 32 bytes), 4-7 C (A tile
 * a × B tile b in tile 4 + 2a + b: a token's 8 int32 sums per row). A
 * thread keeps its configuration until it needs another token count. */
static _Thread_local int amx_rows;

static void amx_configure(int ny)
{
    if (amx_rows == ny) return;
    alignas(64) amx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    const uint8_t rows[2] = {(uint8_t)(ny < 16 ? ny : 16), (uint8_t)(ny > 16 ? ny - 16 : 0)};
    for (int t = 0; t < 8; t++) cfg.colsb[t] = 32;
    cfg.rows[0] = cfg.rows[4] = cfg.rows[5] = rows[0];
    cfg.rows[1] = cfg.rows[6] = cfg.rows[7] = rows[1];
    cfg.rows[2] = cfg.rows[3] = 8;
    if (!rows[1]) cfg.colsb[1] = cfg.colsb[6] = cfg.colsb[7] = 0; /* unused */
    _tile_loadconfig(&cfg);
    amx_rows = ny;
}

/* Group block b's quants as q - 8 in B's layout: row m < 4 the low
 * nibbles of vector m (values 4m..4m+3 of each row), row 4 + m the high
 * ones (values 16 + 4m..). */
static inline void q4_0x8_tile(const block_q4_0x8 *b, int8_t *dst)
{
    __m256i q[8];
    q4_0x8_nibbles(b->qs, q, q + 4);
    for (int m = 0; m < 8; m++)
        _mm256_store_si256((__m256i *)(dst + 32 * m), _mm256_sub_epi8(q[m], _mm256_set1_epi8(8)));
}

/* One block's products: B the two groups' blocks (8 rows of 32 bytes at
 * b0 and b1), A the tokens' 32 bytes at a (ys apart; the second A tile
 * 16 tokens on, when two), the 16 rows' exact sums of token t stored to
 * s[t][0..15]. */
static inline __attribute__((always_inline)) void amx_block(const void *b0, const void *b1, const uint8_t *a, size_t ys,
                                                            int two, int32_t (*s)[16])
{
    _tile_loadd(2, b0, 32);
    _tile_loadd(3, b1, 32);
    _tile_loadd(0, a, ys);
    _tile_zero(4);
    _tile_zero(5);
    _tile_dpbssd(4, 0, 2);
    _tile_dpbssd(5, 0, 3);
    if (two) {
        _tile_loadd(1, a + 16 * ys, ys);
        _tile_zero(6);
        _tile_zero(7);
        _tile_dpbssd(6, 1, 2);
        _tile_dpbssd(7, 1, 3);
    }
    _tile_stored(4, &s[0][0], 64);
    _tile_stored(5, &s[0][8], 64);
    if (two) {
        _tile_stored(6, &s[16][0], 64);
        _tile_stored(7, &s[16][8], 64);
    }
}

/* acc[t][0..15] += the float step of the 16 rows' sums s[t] for t < ny,
 * dx the 16 rows' scales: x8_step's operations in x8_step's order, on
 * zmm where the build has AVX-512 (the real one), else (the test build's
 * emulation) as two ymm halves. */
static inline void amx_steps(float (*acc)[16], const int32_t (*s)[16], const uint16_t *d0, const uint16_t *d1,
                             const uint8_t *yb, size_t ys, int ny)
{
#ifdef __AVX512F__
    const __m512 dx = _mm512_cvtph_ps(_mm256_set_m128i(_mm_loadu_si128((const __m128i *)d1),
                                                       _mm_loadu_si128((const __m128i *)d0)));
    for (int t = 0; t < ny; t++) {
        const __m512 d = _mm512_mul_ps(dx, _mm512_set1_ps(((const block_q8_0x *)(yb + (size_t)t * ys))->d));
        const __m512 p = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_load_si512(s[t])));
        _mm512_store_ps(acc[t], _mm512_add_ps(_mm512_load_ps(acc[t]), p));
    }
#else
    const __m256 dx0 = load_h8(d0), dx1 = load_h8(d1);
    for (int t = 0; t < ny; t++) {
        const float dy = ((const block_q8_0x *)(yb + (size_t)t * ys))->d;
        __m256 *a = (__m256 *)acc[t];
        a[0] = x8_step(a[0], dx0, dy, _mm256_load_si256((const __m256i *)&s[t][0]));
        a[1] = x8_step(a[1], dx1, dy, _mm256_load_si256((const __m256i *)&s[t][8]));
    }
#endif
}

/* 16 rows × ny tokens: groups x0 and x0 + gs, group blocks of bsz bytes;
 * q4: Q4_0's nibbles (else Q8_0's bytes). Block i's products are issued
 * before block i - 1's float steps run, into the other sums buffer, so
 * the tile unit and the vector units overlap. */
static inline __attribute__((always_inline)) void gemm16_body(int64_t n, const uint8_t *x0, size_t gs, size_t bsz,
                                                              const void *vy, size_t ys, int ny, float *out,
                                                              int64_t os, int q4)
{
    const uint8_t *x1 = x0 + gs;
    const uint8_t *yq = (const uint8_t *)vy + offsetof(block_q8_0x, qs);
    alignas(64) int32_t sums[2][KERN_NY16][16];
    alignas(64) float acc[KERN_NY16][16];
    alignas(64) int8_t wb[2][256];
    memset(acc, 0, sizeof acc);
    amx_configure(ny);
    const int two = ny > 16;
    const int64_t nb = n / 32;
    for (int64_t i = 0; i <= nb; i++) {
        if (i < nb) {
            const uint8_t *b0 = x0 + (size_t)i * bsz, *b1 = x1 + (size_t)i * bsz;
            const uint8_t *a = yq + (size_t)i * sizeof(block_q8_0x);
            if (q4) {
                q4_0x8_tile((const block_q4_0x8 *)b0, wb[0]);
                q4_0x8_tile((const block_q4_0x8 *)b1, wb[1]);
                amx_block(wb[0], wb[1], a, ys, two, sums[i & 1]);
            } else {
                amx_block(((const block_q8_0x8 *)b0)->qs, ((const block_q8_0x8 *)b1)->qs, a, ys, two, sums[i & 1]);
            }
        }
        if (i > 0) { /* block i - 1: its scales are d[8] first in both group block types */
            const int64_t j = i - 1;
            amx_steps(acc, (const int32_t(*)[16])sums[j & 1], (const uint16_t *)(x0 + (size_t)j * bsz),
                      (const uint16_t *)(x1 + (size_t)j * bsz), (const uint8_t *)vy + (size_t)j * sizeof(block_q8_0x),
                      ys, ny);
        }
    }
    for (int t = 0; t < ny; t++) memcpy(out + t * os, acc[t], sizeof acc[t]);
}

_Static_assert(offsetof(block_q4_0x8, d) == 0 && offsetof(block_q8_0x8, d) == 0, "scales first");

static void gemm16_q8_0(int64_t n, const void *x, size_t gs, const void *y, size_t ys, int ny, float *out, int64_t os)
{
    gemm16_body(n, x, gs, sizeof(block_q8_0x8), y, ys, ny, out, os, 0);
}

static void gemm16_q4_0(int64_t n, const void *x, size_t gs, const void *y, size_t ys, int ny, float *out, int64_t os)
{
    gemm16_body(n, x, gs, sizeof(block_q4_0x8), y, ys, ny, out, os, 1);
}

/* ---------------------------------------------------------------- Q4_K, Q5_K
 * The same tiles per 32-value sub-block j of a super-block: B the group's
 * quants of sub-block j (the repacked nibbles of run pair j / 2, low or
 * high, with Q5_K's fifth bits: kx8_quants), A the tokens' 32 activation
 * bytes of sub-block j, C the exact Σ q·y. Then per token and row, as
 * gemm8 does: isum = Σ_j sc_j·C_j (int32, exact), and kx8_step with the
 * mins. All 8 sub-blocks' sums are stored before the steps run (16 KiB),
 * in one of two buffers: super-block i's products are issued before
 * super-block i - 1's steps. The steps are AVX2's (ymm, 8 rows at a
 * time), so the emulated build checks the very code the CPU runs.
 * Checked bit for bit under emulation; not yet timed on AMX hardware. */
#define GEMM16_KQ(NAME, GT, FIVE, QH)                                                                            \
    static void NAME(int64_t n, const void *x, size_t gs, const void *vy, size_t ys, int ny, float *out,          \
                     int64_t os)                                                                                  \
    {                                                                                                             \
        const GT *g[2] = {(const GT *)x, (const GT *)((const uint8_t *)x + gs)};                                  \
        const uint8_t *yq = (const uint8_t *)vy + offsetof(block_q8_Kx, qs);                                      \
        alignas(64) int32_t sums[2][8][KERN_NY16][16];                                                            \
        alignas(64) __m256 acc[KERN_NY16][2];                                                                     \
        alignas(64) int8_t wb[2][2][256]; /* [group][low, high nibbles] of one run pair */                        \
        for (int t = 0; t < ny; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();                                  \
        amx_configure(ny);                                                                                        \
        const int two = ny > 16;                                                                                  \
        const int64_t nb = n / QK_K;                                                                              \
        for (int64_t i = 0; i <= nb; i++) {                                                                       \
            if (i < nb) {                                                                                         \
                int32_t(*s)[KERN_NY16][16] = sums[i & 1];                                                         \
                const uint8_t *a = yq + (size_t)i * sizeof(block_q8_Kx);                                          \
                for (int c = 0; c < 4; c++) {                                                                     \
                    for (int h = 0; h < 2; h++)                                                                   \
                        PSI_UNROLL for (int k = 0; k < 8; k++) { /* k a constant: kx8_quants's shifts */          \
                            __m256i lo, hi;                                                                       \
                            const GT *b = &g[h][i];                                                               \
                            kx8_quants(b->qs, QH, 8 * c + k, FIVE, &lo, &hi);                                     \
                            _mm256_store_si256((__m256i *)&wb[h][0][32 * k], lo);                                 \
                            _mm256_store_si256((__m256i *)&wb[h][1][32 * k], hi);                                 \
                        }                                                                                         \
                    for (int l = 0; l < 2; l++) /* sub-block 2c + l */                                            \
                        amx_block(wb[0][l], wb[1][l], a + 32 * (2 * c + l), ys, two, s[2 * c + l]);               \
                }                                                                                                 \
            }                                                                                                     \
            if (i == 0) continue;                                                                                 \
            const int64_t p = i - 1; /* super-block p's steps */                                                  \
            const int32_t(*s)[KERN_NY16][16] = (const int32_t(*)[KERN_NY16][16])sums[p & 1];                      \
            for (int h = 0; h < 2; h++) {                                                                         \
                const GT *b = &g[h][p];                                                                           \
                __m256i sc[8], mp[4];                                                                             \
                kx8_scales(b->sa, b->sb, b->mn, 1, sc, mp);                                                       \
                const __m256 dx = load_h8(b->d), dmx = load_h8(b->dmin);                                          \
                for (int t = 0; t < ny; t++) {                                                                    \
                    __m256i isum = _mm256_setzero_si256();                                                        \
                    PSI_UNROLL for (int j = 0; j < 8; j++) isum = _mm256_add_epi32(                               \
                        isum, _mm256_mullo_epi32(_mm256_load_si256((const __m256i *)&s[j][t][8 * h]), sc[j]));    \
                    const block_q8_Kx *yb = (const block_q8_Kx *)((const uint8_t *)vy + (size_t)t * ys) + p;      \
                    acc[t][h] = kx8_step(acc[t][h], dx, dmx, mp, yb, isum);                                       \
                }                                                                                                 \
            }                                                                                                     \
        }                                                                                                         \
        for (int t = 0; t < ny; t++) {                                                                            \
            _mm256_storeu_ps(out + t * os, acc[t][0]);                                                            \
            _mm256_storeu_ps(out + t * os + 8, acc[t][1]);                                                        \
        }                                                                                                         \
    }
GEMM16_KQ(gemm16_q4_K, block_q4_Kx8, 0, b->qs)
GEMM16_KQ(gemm16_q5_K, block_q5_Kx8, 1, b->qh)
#undef GEMM16_KQ

void kernels_fill_amx(kernels *k)
{
    k->t[PSI_TYPE_Q8_0].gemm16 = gemm16_q8_0;
    k->t[PSI_TYPE_Q4_0].gemm16 = gemm16_q4_0;
    k->t[PSI_TYPE_Q4_K].gemm16 = gemm16_q4_K;
    k->t[PSI_TYPE_Q5_K].gemm16 = gemm16_q5_K;
}

#else

void kernels_fill_amx(kernels *k) { (void)k; }

#endif
