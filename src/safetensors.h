/*
 * safetensors.h — reader for Hugging Face's safetensors files (mmap; the
 * JSON header is checked field by field against the file before any tensor
 * is used). Format: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
 * {...}}, then the data section, offsets relative to its start.
 * Spec: https://github.com/huggingface/safetensors (README, "Format").
 * Only F32, F16 and BF16 tensors are accepted: that is what checkpoints hold.
 */
#ifndef PSI_SAFETENSORS_H
#define PSI_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "psi.h"

#define ST_MAX_DIMS 4

typedef struct st_tensor {
    char *name;             /* owned */
    psi_type type;          /* PSI_TYPE_F32, PSI_TYPE_F16 or PSI_TYPE_BF16 */
    uint32_t n_dims;
    uint64_t shape[ST_MAX_DIMS]; /* row-major, as in the file: shape[n_dims-1] is the row length */
    uint64_t n_elems;
    const uint8_t *data;    /* in the mapping */
} st_tensor;

typedef struct st_file {
    char *path;             /* for messages */
    const uint8_t *base;
    size_t size;
    bool mapped;
    size_t n_tensors;
    st_tensor *tensors;
} st_file;

/* Parse a buffer the caller keeps alive; name is used in messages. */
psi_status st_parse(const void *data, size_t size, const char *name, st_file **out, char *err, size_t n);
/* Map and parse a file. */
psi_status st_open(const char *path, st_file **out, char *err, size_t n);
void st_close(st_file *f);
const st_tensor *st_find(const st_file *f, const char *name);
/* Element i of a tensor as float. */
float st_get_f32(const st_tensor *t, uint64_t i);

#endif
