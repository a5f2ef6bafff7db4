/*
 * safetensors.c — safetensors reader (see safetensors.h). The header is
 * untrusted: its length is checked against the file before jansson sees it,
 * every entry's dtype, shape and offsets are checked, the byte count must
 * equal the product of the shape times the element size (overflow-checked),
 * and every offset pair must lie inside the data section.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "safetensors.h"
#include "util.h"

#define ST_MAX_HEADER (100u << 20) /* the format's own limit is 100 MB */

void st_close(st_file *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n_tensors; i++) mem_free(f->tensors[i].name);
    mem_free(f->tensors);
    if (f->mapped) munmap((void *)f->base, f->size);
    mem_free(f->path);
    mem_free(f);
}

static psi_status parse_entry(st_file *f, const char *key, json_t *v, const uint8_t *data, uint64_t data_size,
                              char *err, size_t n)
{
    st_tensor *t = &f->tensors[f->n_tensors];
    const char *dtype = json_string_value(json_object_get(v, "dtype"));
    json_t *shape = json_object_get(v, "shape"), *offs = json_object_get(v, "data_offsets");
    if (!json_is_object(v) || !dtype || !json_is_array(shape) || !json_is_array(offs) ||
        json_array_size(offs) != 2) {
        err_setf(err, n, "%s: tensor '%.200s' needs dtype, shape and data_offsets [begin, end]", f->path, key);
        return PSI_ERR_FORMAT;
    }
    uint64_t esize;
    if (!strcmp(dtype, "F32")) t->type = PSI_TYPE_F32, esize = 4;
    else if (!strcmp(dtype, "F16")) t->type = PSI_TYPE_F16, esize = 2;
    else if (!strcmp(dtype, "BF16")) t->type = PSI_TYPE_BF16, esize = 2;
    else {
        err_setf(err, n, "%s: tensor '%.200s' has dtype %.32s (supported: F32, F16, BF16)", f->path, key, dtype);
        return PSI_ERR_UNSUPPORTED;
    }
    size_t nd = json_array_size(shape);
    if (nd > ST_MAX_DIMS) {
        err_setf(err, n, "%s: tensor '%.200s' has %zu dimensions (at most %d)", f->path, key, nd, ST_MAX_DIMS);
        return PSI_ERR_FORMAT;
    }
    uint64_t count = 1;
    for (size_t d = 0; d < nd; d++) {
        json_t *e = json_array_get(shape, d);
        if (!json_is_integer(e) || json_integer_value(e) < 0 ||
            u64_mul_ovf(count, (uint64_t)json_integer_value(e), &count)) {
            err_setf(err, n, "%s: tensor '%.200s' has a bad shape", f->path, key);
            return PSI_ERR_FORMAT;
        }
        t->shape[d] = (uint64_t)json_integer_value(e);
    }
    json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
    uint64_t bytes;
    if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 ||
        json_integer_value(e) < json_integer_value(b) || (uint64_t)json_integer_value(e) > data_size ||
        u64_mul_ovf(count, esize, &bytes) ||
        (uint64_t)(json_integer_value(e) - json_integer_value(b)) != bytes) {
        err_setf(err, n, "%s: tensor '%.200s': data_offsets do not match its shape and dtype or lie outside "
                         "the %" PRIu64 "-byte data section", f->path, key, data_size);
        return PSI_ERR_FORMAT;
    }
    t->n_dims = (uint32_t)nd;
    t->n_elems = count;
    t->data = data + json_integer_value(b);
    if (!(t->name = mem_strndup(key, strlen(key)))) return PSI_ERR_NO_MEMORY;
    f->n_tensors++;
    return PSI_OK;
}

psi_status st_parse(const void *data, size_t size, const char *name, st_file **out, char *err, size_t n)
{
    *out = NULL;
    const uint8_t *p = data;
    if (size < 8) {
        err_setf(err, n, "%s: %zu bytes is too short for a safetensors file", name, size);
        return PSI_ERR_FORMAT;
    }
    uint64_t hlen = rd_u64(p);
    if (hlen < 2 || hlen > ST_MAX_HEADER || hlen > size - 8) {
        err_setf(err, n, "%s: header length %" PRIu64 " does not fit the %zu-byte file (not a safetensors file?)",
                 name, hlen, size);
        return PSI_ERR_FORMAT;
    }
    st_file *f = mem_calloc(1, sizeof *f);
    if (!f || !(f->path = mem_strndup(name, strlen(name)))) {
        mem_free(f);
        err_setf(err, n, "%s: out of memory", name);
        return PSI_ERR_NO_MEMORY;
    }
    f->base = p;
    f->size = size;
    json_error_t je;
    json_t *root = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    psi_status rc = PSI_ERR_FORMAT;
    if (!json_is_object(root)) {
        err_setf(err, n, "%s: header is not a JSON object (%.200s)", name, root ? "wrong type" : je.text);
        goto fail;
    }
    f->tensors = mem_calloc(json_object_size(root) + 1, sizeof *f->tensors);
    if (!f->tensors) {
        rc = PSI_ERR_NO_MEMORY;
        err_setf(err, n, "%s: out of memory", name);
        goto fail;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "__metadata__")) continue;
        if ((rc = parse_entry(f, key, v, p + 8 + hlen, size - 8 - hlen, err, n))) {
            if (rc == PSI_ERR_NO_MEMORY) err_setf(err, n, "%s: out of memory", name);
            goto fail;
        }
    }
    json_decref(root);
    *out = f;
    return PSI_OK;
fail:
    json_decref(root);
    st_close(f);
    return rc;
}

psi_status st_open(const char *path, st_file **out, char *err, size_t n)
{
    *out = NULL;
    const uint8_t *m;
    size_t size;
    psi_status rc = map_file_ro(path, &m, &size, err, n);
    if (rc) return rc;
    if ((rc = st_parse(m, size, path, out, err, n))) {
        munmap((void *)m, size);
        return rc;
    }
    (*out)->mapped = true;
    return PSI_OK;
}

const st_tensor *st_find(const st_file *f, const char *name)
{
    for (size_t i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

float st_get_f32(const st_tensor *t, uint64_t i)
{
    switch (t->type) {
    case PSI_TYPE_F32: return rd_f32(t->data + i * 4);
    case PSI_TYPE_F16: return fp16_to_f32(rd_u16(t->data + i * 2));
    default: return bf16_to_f32(rd_u16(t->data + i * 2));
    }
}
