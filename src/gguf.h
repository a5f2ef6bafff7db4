/*
 * gguf.h — GGUF v2/v3 reader (mmap, every count, length and offset checked
 * against the file size before use) and writer.
 * Spec: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
 */
#ifndef PSI_GGUF_H
#define PSI_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "psi.h"

enum gguf_vtype {
    GGUF_U8 = 0, GGUF_I8 = 1, GGUF_U16 = 2, GGUF_I16 = 3, GGUF_U32 = 4, GGUF_I32 = 5,
    GGUF_F32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_U64 = 10,
    GGUF_I64 = 11, GGUF_F64 = 12, GGUF_VTYPE_COUNT
};

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4

/* A string inside the mapping: not NUL-terminated, len bytes. */
typedef struct gguf_str { const char *ptr; uint64_t len; } gguf_str;

typedef struct gguf_kv {
    gguf_str key;
    uint32_t type;       /* enum gguf_vtype */
    uint32_t arr_type;   /* element type when type == GGUF_ARRAY */
    uint64_t n;          /* element count (1 for scalars) */
    const uint8_t *data; /* scalar or array elements (unaligned, in the mapping) */
    gguf_str *strs;      /* string values: n entries (type STRING or array of STRING) */
} gguf_kv;

typedef struct gguf_tensor {
    gguf_str name;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the row length; unused dims are 1 */
    uint32_t type;              /* psi_type / ggml type id */
    uint64_t offset;            /* relative to the data section */
    uint64_t nbytes;
    const void *data;           /* in the mapping */
} gguf_tensor;

typedef struct gguf {
    char *path;               /* for messages */
    const uint8_t *base;      /* whole file */
    uint64_t size;
    bool mapped;              /* base is an mmap we own */
    uint64_t dev, ino;        /* the mapped file's, for gguf_read_in */
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset;     /* start of the tensor data section */
    uint64_t n_kv;
    gguf_kv *kv;
    uint64_t n_tensors;
    gguf_tensor *tensors;     /* of every part, for a split set */
    struct gguf **parts;      /* parts 2..n of a split set (owned), NULL otherwise */
    uint32_t n_parts;
} gguf;

/* Map and parse a file. A first part of a split set (gguf-split's
 * split.no = 0, split.count = n, name ending -00001-of-0000n.gguf) opens
 * the other parts next to it too: kv comes from part 1, tensors from all
 * (each part checked: split.no, split.count, split.tensors.count in total). */
psi_status gguf_open(const char *path, gguf **out, char *err, size_t err_size);
/* Parse a buffer the caller keeps alive (fuzzing, tests); name is used in messages. */
psi_status gguf_parse(const void *data, size_t size, const char *name, gguf **out, char *err,
                      size_t err_size);
void gguf_close(gguf *g);
/* Replace the mapping of a gguf_open'ed file (and of its split parts) by
 * the process's own memory holding the same bytes at the same addresses,
 * in 2 MiB pages where the kernel's transparent huge pages allow: every
 * pointer into the file stays valid, and the copy is writable until
 * gguf_read_only. Weights streamed from huge pages take fewer TLB misses
 * (docs/api.md: generation a few % faster). *own says whether it was done: false for a buffer that is
 * not a mapping, or when there is no memory for a copy (the mapping is
 * kept). A file that cannot be read, or that changed since it was opened,
 * is an error. */
psi_status gguf_read_in(gguf *g, bool *own, char *err, size_t n);
/* The copy is writable (repacking in place must not split it into
 * mappings of differing protection, which splits huge pages); this makes
 * it read-only again, once, when the model is loaded. */
void gguf_read_only(gguf *g);

/* Lookups: -1 when absent. Keys compare byte for byte. */
int64_t gguf_find_key(const gguf *g, const char *key);
int64_t gguf_find_tensor(const gguf *g, const char *name);
bool gguf_str_eq(gguf_str s, const char *cstr);

/* Typed getters. They return PSI_OK, PSI_ERR_FORMAT with a message naming
 * the key when present with the wrong type or out of range, or
 * PSI_ERR_INVALID_ARG (no message) when the key is absent. Integer getters
 * accept any integer type whose value fits. */
psi_status gguf_get_u32(const gguf *g, const char *key, uint32_t *out, char *err, size_t n);
psi_status gguf_get_f32(const gguf *g, const char *key, float *out, char *err, size_t n);
psi_status gguf_get_bool(const gguf *g, const char *key, bool *out, char *err, size_t n);
psi_status gguf_get_str(const gguf *g, const char *key, gguf_str *out, char *err, size_t n);
/* Array getter: element type and count must match what the caller expects
 * (want_n = 0 accepts any count). */
psi_status gguf_get_arr(const gguf *g, const char *key, uint32_t elem_type, uint64_t want_n,
                        const gguf_kv **out, char *err, size_t n);

/* Print header, metadata and tensor table. */
void gguf_print(const gguf *g, FILE *f, int max_array);

/* ---- writer. Values are copied; tensor data is borrowed until write. */
typedef struct gguf_writer gguf_writer;
gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);
psi_status gguf_writer_set_str(gguf_writer *w, const char *key, const char *val);
psi_status gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t val);
psi_status gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t val);
psi_status gguf_writer_set_f32(gguf_writer *w, const char *key, float val);
psi_status gguf_writer_set_bool(gguf_writer *w, const char *key, bool val);
/* Array of fixed-size elements (elem_type not STRING/ARRAY). */
psi_status gguf_writer_set_arr(gguf_writer *w, const char *key, uint32_t elem_type,
                               const void *data, uint64_t n);
psi_status gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs,
                                   uint64_t n);
/* Copy metadata entry i of a reader (any type) into the writer. */
psi_status gguf_writer_copy_kv(gguf_writer *w, const gguf *g, uint64_t i);
psi_status gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type,
                                  uint32_t n_dims, const uint64_t *ne, const void *data);
/* Write to path + ".tmp", fsync, rename to path. */
psi_status gguf_writer_write(gguf_writer *w, const char *path, char *err, size_t err_size);

#endif
