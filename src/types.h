/*
 * types.h — tensor types: ggml's exact block layouts, reference dequantizers,
 * activation quantizers and dot products. One traits entry per type
 * (ggml's type_traits). The kernels here are the portable reference; SIMD
 * variants (later) are checked against them.
 */
#ifndef PSI_TYPES_H
#define PSI_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "psi.h"

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256
#define K_SCALE_SIZE 12

/* fp16 fields are IEEE binary16 bits. In the 5-bit types, bit j of the
 * little-endian 32-bit qh is the fifth bit of quant j. */
typedef struct { uint16_t d; uint8_t qs[QK4_0 / 2]; } block_q4_0;          /* 18 bytes */
typedef struct { uint16_t d, m; uint8_t qs[QK4_1 / 2]; } block_q4_1;       /* 20 bytes: x = q·d + m */
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; } block_q5_0; /* 22 bytes */
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; } block_q5_1; /* 24 bytes */
typedef struct { uint16_t d; int8_t qs[QK8_0]; } block_q8_0;               /* 34 bytes */
typedef struct { uint16_t d, s; int8_t qs[QK8_1]; } block_q8_1;           /* 36 bytes: s = d·Σqs */
/* Q4_K / Q5_K: 8 sub-blocks of 32, each with a 6-bit scale and a 6-bit min
 * packed in `scales` (see get_scale_min in types.c); x = d·sc·q - dmin·m. */
typedef struct {
    uint16_t d, dmin;                /* fp16 super-block scales of the scales and mins */
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qs[QK_K / 2];            /* 4-bit quants */
} block_q4_K;                                                               /* 144 bytes */
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];            /* fifth bits */
    uint8_t qs[QK_K / 2];            /* low 4 bits */
} block_q5_K;                                                               /* 176 bytes */
typedef struct {
    uint8_t ql[QK_K / 2];  /* low 4 bits of the 6-bit quants */
    uint8_t qh[QK_K / 4];  /* high 2 bits */
    int8_t scales[QK_K / 16];
    uint16_t d;            /* fp16 super-block scale */
} block_q6_K;                                                               /* 210 bytes */
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } block_q8_K; /* 292 bytes */

/* Converts n values (a multiple of blck_size) of this type to f32. */
typedef void (*to_float_fn)(const void *src, float *dst, int64_t n);
/* Quantizes n f32 values (a multiple of blck_size) into this type. */
typedef void (*from_float_fn)(const float *src, void *dst, int64_t n);
/* Dot product of n values: x of the weight type, y of its vec_dot_type. */
typedef void (*vec_dot_fn)(int64_t n, float *out, const void *x, const void *y);

typedef struct type_traits {
    const char *name;
    uint32_t blck_size;     /* values per block */
    uint32_t type_size;     /* bytes per block */
    bool can_compute;       /* psi can dequantize and multiply this type */
    to_float_fn to_float;
    from_float_fn from_float;         /* activation / reference quantizer, may be NULL */
    psi_type vec_dot_type;            /* type the activations are converted to */
    vec_dot_fn vec_dot;               /* NULL unless can_compute */
} type_traits;

/* Traits of a type id, or NULL when the id is not a known ggml type. */
const type_traits *type_get(uint32_t type);

/* Bytes of a row of n values; 0 when n is not a multiple of the block size or
 * the size overflows. */
size_t type_row_size(uint32_t type, int64_t n);

/* Weight quantizers, byte for byte ggml's quantize_row_q8_0_ref and
 * quantize_row_q4_0_ref (what llama-quantize writes without an imatrix).
 * n is a multiple of 32; y receives n/32 blocks. Q8_0's differs from the
 * Q8_0 activation quantizer (traits from_float): it rounds half away from
 * zero with id = 1/d, where activations round half to even with 127/amax. */
void quantize_row_q8_0_ref(const float *x, void *y, int64_t n);
void quantize_row_q4_0_ref(const float *x, void *y, int64_t n);

/* The other weight quantizers llama-quantize uses without an imatrix, byte
 * for byte ggml's quantize_row_<type>_ref (quantize_ref.c). n is a multiple
 * of the type's block size (32, or 256 for the K-quants). */
void quantize_row_q4_1_ref(const float *x, void *y, int64_t n);
void quantize_row_q5_0_ref(const float *x, void *y, int64_t n);
void quantize_row_q5_1_ref(const float *x, void *y, int64_t n);
void quantize_row_q4_K_ref(const float *x, void *y, int64_t n);
void quantize_row_q5_K_ref(const float *x, void *y, int64_t n);
void quantize_row_q6_K_ref(const float *x, void *y, int64_t n);

/* Scale and min of sub-block j (0..7) of a Q4_K/Q5_K block: 6 bits each;
 * j < 4 in the low 6 bits of scales[j] / scales[j+4], j >= 4 as a nibble of
 * scales[j+4] plus the top two bits of scales[j-4] / scales[j]. */
static inline void get_scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

#endif
