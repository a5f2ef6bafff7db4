/*
 * kernels.h — the CPU kernels psi computes with, as one table of function
 * pointers per instruction set (ggml's per-type traits and arch/ split,
 * calm's dotprod_t), chosen once at start-up from CPU detection.
 *
 * The portable reference kernels stay in types.c (the traits table); a
 * table starts as a copy of them and each instruction-set file
 * (x86_avx2.c, x86_avx512.c, x86_amx.c) replaces the entries it has a
 * faster version of. Every replacement gives the reference's result up to
 * float reassociation (integer parts exact); test_kernels checks that on
 * every path the CPU runs.
 *
 * PSI_CPU=generic|avx2|avx512|amx in the environment forces a path. A path
 * the CPU (or the OS) cannot run is never used: psi warns once on stderr
 * and takes the best path below it. An unknown value warns and is ignored.
 */
#ifndef PSI_KERNELS_H
#define PSI_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types.h"

typedef enum kern_level { KERN_GENERIC = 0, KERN_AVX2 = 1, KERN_AVX512 = 2, KERN_AMX = 3, KERN_LEVELS = 4 } kern_level;

/* Dot products of one weight row x (n values of the weight type) with ny
 * activation rows (1 <= ny <= KERN_NY, y_stride bytes apart, of the
 * weight's vec_dot_type): out[t * out_stride] = x · y_t. Lets a kernel
 * decode each weight block once for several tokens. */
#define KERN_NY 8
typedef void (*vec_dot_ny_fn)(int64_t n, float *out, int64_t out_stride, const void *x, const void *y,
                              size_t y_stride, int ny);

/* A tile of the matrix product: out[t * out_stride + r] = x_r · y_t for
 * r < nx <= KERN_MX weight rows (x_stride bytes apart) and t < ny <=
 * KERN_NY activation rows (y_stride bytes apart, of the weight's
 * vec_dot_type). Each weight block is decoded once for all the tokens and
 * each activation block loaded once for all the rows. Every output is the
 * same bit for bit whatever the tile (nx, ny) it was computed in. */
#define KERN_MX 8
typedef void (*gemm_fn)(int64_t n, const void *x, size_t x_stride, int nx, const void *y, size_t y_stride, int ny,
                        float *out, int64_t out_stride);

/* Repacked weights: groups of 8 rows interleaved so that one vector holds
 * the same few quants of all 8 rows (llama.cpp repacks Q4_0 for AVX2 the
 * same way), which lets a kernel keep one output row per lane: no
 * horizontal sums, and the 8 rows' scales convert in one instruction.
 * repack8 turns 8 rows (src, row_size bytes apart, n values each) into
 * one group at dst (8 · row_size bytes, the same total). gemm8 computes
 * out[t * out_stride + r] = row r · y_t for the 8 rows of one group and
 * t < ny <= KERN_NY, bit for bit what the reference (types.c) vec_dot
 * gives, whatever ny. */
typedef void (*repack8_fn)(int64_t n, const void *src, size_t row_size, void *dst);
/* Row r (< 8) of a repacked group back in the type's own layout (a
 * token's embedding row when token_embd is repacked). */
typedef void (*unpack8_fn)(int64_t n, const void *group, int r, void *row);
typedef void (*gemm8_fn)(int64_t n, const void *x, const void *y, size_t y_stride, int ny, float *out,
                         int64_t out_stride);
/* gemm8 may read its activations in a layout of its own, made once per
 * product by x8_from_float (e.g. Q8_0 blocks with the block's quant sum
 * and a float scale, which every group of 8 rows would otherwise
 * recompute); x8_act_row gives the bytes of one such row of n values.
 * vec_dot_ny may do the same (ny_from_float, ny_act_row), and gemm
 * (gemm_from_float, gemm_act_row: BF16's tile reads the bf16-rounded
 * values as f32, converted once per product instead of once per row and
 * token); vec_dot always reads the vec_dot_type's own layout. */
typedef size_t (*act_row_fn)(int64_t n);

/* Two repacked groups at once (x, and x + group_stride bytes: rows 0-7 and
 * 8-15) times up to KERN_NY16 tokens of gemm8's activations:
 * out[t * out_stride + r] for r < 16, t < ny <= KERN_NY16, bit for bit
 * what gemm8 gives. For matrix units (AMX) that need bigger tiles than
 * gemm8's to pay. */
#define KERN_NY16 32
typedef void (*gemm16_fn)(int64_t n, const void *x, size_t group_stride, const void *y, size_t y_stride, int ny,
                          float *out, int64_t out_stride);

/* Attention of the query heads that share one KV head (grouped-query
 * attention), for a tile of n_tok tokens of one sequence: row (t, g) —
 * query head g < n_grp of token t, hd floats at q + t·tok_stride + g·hd —
 * attends causally to cache positions 0..last[t]:
 *   out(t, g) = Σ_p softmax_p(scale · q(t, g)·k_p) · v_p
 * k and v point at the KV head's values at position 0, kv_stride bytes
 * a position, of kv_type (F32, F16 or Q8_0: any type with to_float). The
 * K/V of a block of positions are read (and converted) once for all the
 * tile's rows — that, not the arithmetic, is what attention at a long
 * context costs when every (head, position) pair goes through a vec_dot.
 * work: kern_attn_work() floats, the caller's, one per thread. */
#define KERN_ATTN_KEYS 32 /* positions per block */
typedef struct kern_attn {
    int32_t hd, n_tok, n_grp;
    const float *q;
    float *out;           /* the same shape as q */
    int64_t tok_stride;   /* floats from one token to the next in q and out */
    const int32_t *last;  /* [n_tok] */
    const void *k, *v;
    size_t kv_stride;
    uint32_t kv_type;
    float scale;
    float *work;
} kern_attn;
typedef void (*attn_fn)(const kern_attn *a);
/* Offset in floats of row (t, g) in q and out. */
static inline size_t kern_attn_row(const kern_attn *a, int32_t t, int32_t g)
{
    return (size_t)t * (size_t)a->tok_stride + (size_t)g * (size_t)a->hd;
}
/* The reference (generic.c): every score, the softmax, the weighted sum. */
void kern_attn_ref(const kern_attn *a);

/* Floats of work an attn call needs, for n_ctx positions and up to rows
 * = n_tok · n_grp rows. */
static inline size_t kern_attn_work(int32_t hd, int32_t n_ctx, int32_t rows)
{
    return 2 * (size_t)KERN_ATTN_KEYS * (size_t)hd + (size_t)n_ctx + (size_t)hd + 2 * (size_t)rows + KERN_ATTN_KEYS;
}

typedef struct kern_type {
    vec_dot_fn vec_dot;        /* weight of this type · its vec_dot_type; NULL = none */
    vec_dot_ny_fn vec_dot_ny;  /* NULL: call vec_dot once per token */
    gemm_fn gemm;              /* NULL: vec_dot_ny (or vec_dot) row by row */
    repack8_fn repack8;        /* with gemm8: matrices whose row count is a multiple of 8 are repacked */
    gemm8_fn gemm8;
    gemm16_fn gemm16;          /* NULL: gemm8 only */
    unpack8_fn unpack8;        /* NULL: this type's token_embd is not repacked */
    from_float_fn x8_from_float; /* gemm8's activations; NULL: the vec_dot_type's from_float */
    act_row_fn x8_act_row;
    from_float_fn ny_from_float; /* vec_dot_ny's activations (the same idea); NULL: the vec_dot_type's */
    act_row_fn ny_act_row;
    from_float_fn gemm_from_float; /* gemm's activations (the same idea); NULL: the vec_dot_type's */
    act_row_fn gemm_act_row;
    from_float_fn from_float;  /* f32 → this type (the activation quantizer); NULL = none */
} kern_type;

#define KERN_TYPES 64 /* > every ggml type id */

/* The feed-forward gate, in place: g[i] = silu(g[i])·u[i] for i < n,
 * silu(x) = x / (1 + e^-x). */
typedef void (*swiglu_fn)(float *g, const float *u, int64_t n);
/* The reference (generic.c), with expf. */
void kern_swiglu_ref(float *g, const float *u, int64_t n);

typedef struct kernels {
    kern_level level;
    const char *name; /* "generic", "avx2", "avx512", "amx" */
    kern_type t[KERN_TYPES];
    attn_fn attn;
    swiglu_fn swiglu;
} kernels;

/* The table in use: the best the CPU runs, or what PSI_CPU asks for.
 * Chosen on the first call (thread-safe), never NULL. */
const kernels *kernels_get(void);
/* The table of one level, or NULL when this CPU/OS cannot run it (or the
 * build has no such kernels). For tests and benchmarks. */
const kernels *kernels_for(kern_level level);
/* The entry of a type id (NULL entries when the id is out of range). */
const kern_type *kernels_type(const kernels *k, uint32_t type);
/* "generic", "avx2", "avx512", "amx"; NULL for an unknown level. */
const char *kernels_level_name(kern_level level);

/* Kernels with no reference in types.c (kernels/generic.c). */
void kernels_fill_generic(kernels *k);
/* Filled in by the instruction-set files (no-ops where not built). */
void kernels_fill_avx2(kernels *k);
void kernels_fill_avx2_attn(kernels *k);
void kernels_fill_avx512(kernels *k);
void kernels_fill_amx(kernels *k);

#endif
