/*
 * quantize.c — rewriting a GGUF model with its weight matrices in another
 * tensor type: F16, BF16 (round to nearest even) or Q8_0 (byte for byte
 * what llama.cpp's llama-quantize writes: ggml's quantize_row_q8_0_ref, no
 * imatrix). Every tensor named "*.weight" with two or more dimensions is
 * converted (token_embd and output included); 1-D tensors (norms,
 * rope_freqs) are kept as they are. Q4_0 (whose output matrix llama.cpp
 * makes Q6_K) and the K-quant mixes come with the fast-CPU issue.
 */
#include <stdio.h>

#include "gguf.h"
#include "types.h"
#include "util.h"

static bool should_quantize(const gguf_tensor *t)
{
    static const char suffix[] = ".weight";
    size_t n = sizeof suffix - 1;
    return t->n_dims >= 2 && t->name.len > n && !memcmp(t->name.ptr + t->name.len - n, suffix, n);
}

psi_status psi_quantize(const char *in_path, const char *out_path, psi_type type, char *err, size_t n)
{
    if (!in_path || !out_path) return PSI_ERR_INVALID_ARG;
    /* llama_ftype values for general.file_type */
    uint32_t ftype;
    if (type == PSI_TYPE_F16) ftype = 1;
    else if (type == PSI_TYPE_BF16) ftype = 32;
    else if (type == PSI_TYPE_Q8_0) ftype = 7;
    else {
        const char *name = psi_type_name(type);
        err_setf(err, n, "converting weights to %s is not supported yet (supported: F16, BF16, Q8_0)",
                 name ? name : "?");
        return PSI_ERR_UNSUPPORTED;
    }
    const type_traits *dst = type_get(type);
    from_float_fn convert = type == PSI_TYPE_Q8_0 ? quantize_row_q8_0_ref : dst->from_float;
    gguf *g = NULL;
    psi_status rc = gguf_open(in_path, &g, err, n);
    if (rc) return rc;
    gguf_writer *w = gguf_writer_new();
    void **bufs = mem_calloc((size_t)(g->n_tensors ? g->n_tensors : 1), sizeof(void *));
    float *row = NULL;
    size_t row_cap = 0;
    if (!w || !bufs) goto oom;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        if (gguf_str_eq(g->kv[i].key, "general.file_type") ||
            gguf_str_eq(g->kv[i].key, "general.quantization_version"))
            continue;
        if ((rc = gguf_writer_copy_kv(w, g, i))) goto fail;
    }
    /* ggml's quantization format version 2 */
    if ((rc = gguf_writer_set_u32(w, "general.file_type", ftype)) ||
        (rc = gguf_writer_set_u32(w, "general.quantization_version", 2)))
        goto fail;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(t->name.len < 255 ? t->name.len : 255), t->name.ptr);
        const type_traits *src = type_get(t->type);
        const void *data = t->data;
        uint32_t out_type = t->type;
        if (should_quantize(t) && t->type != type) {
            if (!src->to_float || t->ne[0] % dst->blck_size) {
                err_setf(err, n, "%s: tensor '%s' (%s, row %llu) cannot be converted to %s", in_path, name,
                         src->name, (unsigned long long)t->ne[0], dst->name);
                rc = PSI_ERR_UNSUPPORTED;
                goto fail;
            }
            uint64_t rows = 1;
            for (uint32_t d = 1; d < t->n_dims; d++) rows *= t->ne[d];
            size_t in_row = type_row_size(t->type, (int64_t)t->ne[0]);
            size_t out_row = type_row_size(type, (int64_t)t->ne[0]);
            size_t total;
            if (size_mul_ovf(out_row, (size_t)rows, &total)) goto oom;
            if (!(bufs[i] = mem_alloc(total))) goto oom;
            if (t->ne[0] > row_cap) {
                mem_free(row);
                row_cap = (size_t)t->ne[0];
                if (!(row = mem_alloc(row_cap * sizeof(float)))) goto oom;
            }
            for (uint64_t r = 0; r < rows; r++) {
                src->to_float((const uint8_t *)t->data + r * in_row, row, (int64_t)t->ne[0]);
                convert(row, (uint8_t *)bufs[i] + r * out_row, (int64_t)t->ne[0]);
            }
            data = bufs[i];
            out_type = type;
        }
        if ((rc = gguf_writer_add_tensor(w, name, out_type, t->n_dims, t->ne, data))) goto fail;
    }
    rc = gguf_writer_write(w, out_path, err, n);
    goto done;
oom:
    rc = PSI_ERR_NO_MEMORY;
fail:
    if (rc == PSI_ERR_NO_MEMORY) err_setf(err, n, "%s: out of memory while quantizing", out_path);
    else if (rc == PSI_ERR_INVALID_ARG) err_setf(err, n, "%s: cannot build the output GGUF", out_path);
done:
    for (uint64_t i = 0; bufs && i < g->n_tensors; i++) mem_free(bufs[i]);
    mem_free(bufs);
    mem_free(row);
    gguf_writer_free(w);
    gguf_close(g);
    return rc;
}
