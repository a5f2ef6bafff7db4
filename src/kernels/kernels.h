/*
 * kernels.h — the CPU kernels psi computes with, as one table of function
 * pointers per instruction set (ggml's per-type traits and arch/ split,
 * calm's dotprod_t), chosen once at start-up from CPU detection.
 *
 * The portable reference kernels stay in types.c (the traits table); a
 * table starts as a copy of them and each instruction-set file
 * (x86_avx2.c, x86_avx512.c) replaces the entries it has a faster version
 * of. Every replacement gives the reference's result up to float
 * reassociation (integer parts exact); test_kernels checks that on every
 * path the CPU runs.
 *
 * PSI_CPU=generic|avx2|avx512 in the environment forces a path. A path the
 * CPU (or the OS) cannot run is never used: psi warns once on stderr and
 * takes the best path below it. An unknown value warns and is ignored.
 */
#ifndef PSI_KERNELS_H
#define PSI_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types.h"

typedef enum kern_level { KERN_GENERIC = 0, KERN_AVX2 = 1, KERN_AVX512 = 2, KERN_LEVELS = 3 } kern_level;

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
 * vec_dot_ny may do the same (ny_from_float, ny_act_row); vec_dot always
 * reads the vec_dot_type's own layout. */
typedef size_t (*act_row_fn)(int64_t n);

/* y[i] += a · x[i] for i < n, x of the entry's type (attention's weighted
 * sum of value-cache rows). */
typedef void (*axpy_fn)(int64_t n, float *y, float a, const void *x);

typedef struct kern_type {
    vec_dot_fn vec_dot;        /* weight of this type · its vec_dot_type; NULL = none */
    vec_dot_ny_fn vec_dot_ny;  /* NULL: call vec_dot once per token */
    gemm_fn gemm;              /* NULL: vec_dot_ny (or vec_dot) row by row */
    repack8_fn repack8;        /* with gemm8: matrices whose row count is a multiple of 8 are repacked */
    gemm8_fn gemm8;
    unpack8_fn unpack8;        /* NULL: this type's token_embd is not repacked */
    from_float_fn x8_from_float; /* gemm8's activations; NULL: the vec_dot_type's from_float */
    act_row_fn x8_act_row;
    from_float_fn ny_from_float; /* vec_dot_ny's activations (the same idea); NULL: the vec_dot_type's */
    act_row_fn ny_act_row;
    from_float_fn from_float;  /* f32 → this type (the activation quantizer); NULL = none */
    axpy_fn axpy;              /* F32 and F16 (the KV cache types); NULL = none */
} kern_type;

#define KERN_TYPES 64 /* > every ggml type id */

typedef struct kernels {
    kern_level level;
    const char *name; /* "generic", "avx2", "avx512" */
    kern_type t[KERN_TYPES];
} kernels;

/* The table in use: the best the CPU runs, or what PSI_CPU asks for.
 * Chosen on the first call (thread-safe), never NULL. */
const kernels *kernels_get(void);
/* The table of one level, or NULL when this CPU/OS cannot run it (or the
 * build has no such kernels). For tests and benchmarks. */
const kernels *kernels_for(kern_level level);
/* The entry of a type id (NULL entries when the id is out of range). */
const kern_type *kernels_type(const kernels *k, uint32_t type);
/* "generic", "avx2", "avx512"; NULL for an unknown level. */
const char *kernels_level_name(kern_level level);

/* Kernels with no reference in types.c (kernels/generic.c). */
void kernels_fill_generic(kernels *k);
/* Filled in by the instruction-set files (no-ops where not built). */
void kernels_fill_avx2(kernels *k);
void kernels_fill_avx512(kernels *k);

#endif
