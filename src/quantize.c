/*
 * quantize.c — rewriting a GGUF model in one of llama.cpp's file types
 * (F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K_S/M, Q5_K_S/M, Q6_K), with
 * the tensor types and bytes that llama.cpp's llama-quantize writes without
 * an importance matrix (llama.cpp commit c392e509, src/llama-quant.cpp).
 *
 * Which tensors are converted, and to what, follows llama_tensor_get_type
 * for these file types: the output matrix (or the token embeddings when the
 * output is tied to them) becomes Q6_K unless the file is Q8_0; the _M mixes
 * give Q6_K to the attn_v and ffn_down matrices of the layers its
 * use_more_bits rule picks; rows whose length the chosen type cannot hold
 * fall back (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, then F16). 1-D tensors
 * and norms stay as they are. The per-layer counters advance in
 * llama.cpp's tensor order (by layer number, then by name), so the choices
 * agree with it for every layer count. The bytes come from the reference
 * quantizers (types.c, quantize_ref.c). Rules that only other architectures
 * (Falcon) or imatrix files use are not reproduced.
 */
#include <stdio.h>
#include <stdlib.h>

#include "gguf.h"
#include "threadpool.h"
#include "types.h"
#include "util.h"

psi_quantize_params psi_quantize_default_params(void)
{
    psi_quantize_params p = {PSI_FTYPE_Q8_0, 0, NULL, NULL, false};
    return p;
}

typedef struct qtensor {
    const gguf_tensor *t;
    char *name;    /* NUL-terminated copy */
    int layer;     /* N of "blk.N.", or -1 */
    uint32_t type; /* output type */
} qtensor;

/* The tensor type a file type stands for; false for unknown values. */
static bool ftype_default_type(psi_ftype ft, uint32_t *type)
{
    switch (ft) {
    case PSI_FTYPE_F32: return false; /* nothing to quantize */
    case PSI_FTYPE_F16: *type = PSI_TYPE_F16; return true;
    case PSI_FTYPE_BF16: *type = PSI_TYPE_BF16; return true;
    case PSI_FTYPE_Q8_0: *type = PSI_TYPE_Q8_0; return true;
    case PSI_FTYPE_Q4_0: *type = PSI_TYPE_Q4_0; return true;
    case PSI_FTYPE_Q4_1: *type = PSI_TYPE_Q4_1; return true;
    case PSI_FTYPE_Q5_0: *type = PSI_TYPE_Q5_0; return true;
    case PSI_FTYPE_Q5_1: *type = PSI_TYPE_Q5_1; return true;
    case PSI_FTYPE_Q4_K_S: case PSI_FTYPE_Q4_K_M: *type = PSI_TYPE_Q4_K; return true;
    case PSI_FTYPE_Q5_K_S: case PSI_FTYPE_Q5_K_M: *type = PSI_TYPE_Q5_K; return true;
    case PSI_FTYPE_Q6_K: *type = PSI_TYPE_Q6_K; return true;
    }
    return false;
}

/* The weight quantizer written for each tensor type: the bit-exact
 * reference ones (Q8_0's activation quantizer rounds differently). */
static from_float_fn weight_quantizer(uint32_t type)
{
    switch (type) {
    case PSI_TYPE_Q8_0: return quantize_row_q8_0_ref;
    case PSI_TYPE_Q4_0: return quantize_row_q4_0_ref;
    case PSI_TYPE_Q4_1: return quantize_row_q4_1_ref;
    case PSI_TYPE_Q5_0: return quantize_row_q5_0_ref;
    case PSI_TYPE_Q5_1: return quantize_row_q5_1_ref;
    case PSI_TYPE_Q4_K: return quantize_row_q4_K_ref;
    case PSI_TYPE_Q5_K: return quantize_row_q5_K_ref;
    case PSI_TYPE_Q6_K: return quantize_row_q6_K_ref;
    case PSI_TYPE_F16: case PSI_TYPE_BF16: return type_get(type)->from_float;
    default: return NULL;
    }
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !memcmp(s + a - b, suffix, b);
}

/* llama-quantize's test of which tensors to quantize at all. */
static bool is_quantizable(const qtensor *q)
{
    static const char *const never[] = {
        "_norm.weight", "ffn_gate_inp.weight", "ssm_conv1d.weight", "time_mix_first.weight",
        "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight",
    };
    if (!ends_with(q->name, "weight") || q->t->n_dims < 2) return false;
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        if (strstr(q->name, never[i])) return false;
    return strcmp(q->name, "position_embd.weight") && strcmp(q->name, "token_types.weight");
}

/* llama.cpp's weight_name_comparer: by layer number (non-layer tensors,
 * -1, first), then by name. */
static int cmp_llama_order(const void *a, const void *b)
{
    const qtensor *x = *(const qtensor *const *)a, *y = *(const qtensor *const *)b;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* What llama_tensor_get_type needs to know about the model. */
typedef struct qstate {
    psi_ftype ftype;
    bool has_output;      /* an output.weight exists (else it is tied to token_embd) */
    bool is_70b;          /* llama, 80 layers, grouped-query attention */
    uint32_t n_expert;
    int n_attention_wv, i_attention_wv;
    int n_ffn_down, i_ffn_down;
} qstate;

/* Layers where the _M mixes spend more bits: the first and last eighth and
 * every third one in between. */
static bool use_more_bits(int i_layer, int n_layers)
{
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

/* llama_tensor_get_type for the supported file types: the type of one
 * quantizable tensor, given the file type's default. Returns false (with a
 * message) where llama.cpp gives up. */
static bool tensor_type(qstate *qs, const qtensor *q, uint32_t def, uint32_t *out, char *err, size_t n)
{
    const char *name = q->name;
    const int64_t nx = (int64_t)q->t->ne[0];
    const psi_ftype ft = qs->ftype;
    uint32_t t = def;
    if (!strcmp(name, "output.weight") || (!qs->has_output && !strcmp(name, "token_embd.weight"))) {
        if (nx % type_get(t)->blck_size != 0) t = PSI_TYPE_Q8_0;
        else if (t != PSI_TYPE_Q8_0) t = PSI_TYPE_Q6_K;
    } else if (!strcmp(name, "token_embd.weight")) {
        /* the default type */
    } else if (strstr(name, "attn_v.weight")) {
        if ((ft == PSI_FTYPE_Q4_K_M || ft == PSI_FTYPE_Q5_K_M) && use_more_bits(qs->i_attention_wv, qs->n_attention_wv))
            t = PSI_TYPE_Q6_K;
        else if (ft == PSI_FTYPE_Q4_K_S && qs->i_attention_wv < 4)
            t = PSI_TYPE_Q5_K;
        /* 70B: attn_v is 8x smaller than attn_q, so a bigger type is cheap */
        if (qs->is_70b && (t == PSI_TYPE_Q3_K || t == PSI_TYPE_Q4_K)) t = PSI_TYPE_Q5_K;
        if (qs->n_expert == 8) t = PSI_TYPE_Q8_0;
        qs->i_attention_wv++;
    } else if (strstr(name, "attn_k.weight")) {
        if (qs->n_expert == 8) t = PSI_TYPE_Q8_0;
    } else if (strstr(name, "ffn_down")) {
        int i_layer = qs->i_ffn_down, n_layer = qs->n_ffn_down;
        if (qs->n_expert > 1) { /* experts are not consecutive: take the layer from the name */
            if (q->layer < 0 || q->layer >= n_layer) {
                err_setf(err, n, "tensor '%s': cannot tell its layer (of %d)", name, n_layer);
                return false;
            }
            i_layer = q->layer;
        }
        if (ft == PSI_FTYPE_Q4_K_M) {
            if (use_more_bits(i_layer, n_layer)) t = PSI_TYPE_Q6_K;
        } else if (ft == PSI_FTYPE_Q5_K_M && use_more_bits(i_layer, n_layer)) {
            t = PSI_TYPE_Q6_K;
        } else if (ft == PSI_FTYPE_Q4_K_S && i_layer < n_layer / 8) {
            t = PSI_TYPE_Q5_K;
        }
        qs->i_ffn_down++;
    } else if (strstr(name, "attn_output.weight")) {
        if (qs->n_expert == 8 && (ft == PSI_FTYPE_Q4_K_S || ft == PSI_FTYPE_Q4_K_M)) t = PSI_TYPE_Q5_K;
    } else if (strstr(name, "attn_qkv.weight")) {
        if (ft == PSI_FTYPE_Q4_K_M) t = PSI_TYPE_Q5_K;
        else if (ft == PSI_FTYPE_Q5_K_M) t = PSI_TYPE_Q6_K;
    }
    if (nx % type_get(t)->blck_size != 0) { /* llama.cpp's fallback types */
        uint32_t f;
        if (t == PSI_TYPE_Q4_K) f = PSI_TYPE_Q5_0;
        else if (t == PSI_TYPE_Q5_K) f = PSI_TYPE_Q5_1;
        else if (t == PSI_TYPE_Q6_K) f = PSI_TYPE_Q8_0;
        else {
            err_setf(err, n, "tensor '%s': rows of %lld values cannot be stored as %s", name, (long long)nx,
                     type_get(t)->name);
            return false;
        }
        t = nx % type_get(f)->blck_size ? PSI_TYPE_F16 : f;
    }
    *out = t;
    return true;
}

/* Reads the hyper-parameters the type rules use. */
static void read_model_info(const gguf *g, qstate *qs)
{
    char key[160];
    gguf_str arch = {"", 0};
    uint32_t n_layer = 0, n_head = 0, n_head_kv = 0, n_expert = 0;
    if (gguf_get_str(g, "general.architecture", &arch, NULL, 0) == PSI_OK && arch.len < 64) {
        const int al = (int)arch.len;
        snprintf(key, sizeof key, "%.*s.block_count", al, arch.ptr);
        gguf_get_u32(g, key, &n_layer, NULL, 0);
        snprintf(key, sizeof key, "%.*s.attention.head_count", al, arch.ptr);
        gguf_get_u32(g, key, &n_head, NULL, 0);
        n_head_kv = n_head;
        snprintf(key, sizeof key, "%.*s.attention.head_count_kv", al, arch.ptr);
        gguf_get_u32(g, key, &n_head_kv, NULL, 0);
        snprintf(key, sizeof key, "%.*s.expert_count", al, arch.ptr);
        gguf_get_u32(g, key, &n_expert, NULL, 0);
    }
    qs->n_ffn_down = n_layer > 100000 ? 100000 : (int)n_layer;
    qs->n_expert = n_expert;
    qs->is_70b = gguf_str_eq(arch, "llama") && n_expert != 8 && n_layer == 80 && n_head != n_head_kv;
}

/* Rows of one tensor, quantized in parallel: row r of `in` (type `src`) is
 * converted to f32 in the thread's scratch row, then quantized into row r
 * of `out`. */
typedef struct qjob {
    const type_traits *src;
    const void *in;
    size_t in_row, out_row;
    uint8_t *out;
    uint64_t rows;
    int64_t ne0;
    from_float_fn quantize;
    float **scratch; /* one row buffer per thread */
} qjob;

static void quantize_rows(void *arg, int ith, int nth)
{
    qjob *j = arg;
    int64_t lo, hi;
    pool_split((int64_t)j->rows, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        j->src->to_float((const uint8_t *)j->in + (size_t)r * j->in_row, j->scratch[ith], j->ne0);
        j->quantize(j->scratch[ith], j->out + (size_t)r * j->out_row, j->ne0);
    }
}

psi_status psi_quantize(const char *in_path, const char *out_path, const psi_quantize_params *params, char *err,
                        size_t n)
{
    if (!in_path || !out_path) return PSI_ERR_INVALID_ARG;
    psi_quantize_params p = params ? *params : psi_quantize_default_params();
    uint32_t def;
    if (!ftype_default_type(p.ftype, &def)) {
        err_setf(err, n, "unknown file type %d", (int)p.ftype);
        return PSI_ERR_INVALID_ARG;
    }
    const bool mixes = def != PSI_TYPE_F16 && def != PSI_TYPE_BF16; /* quantized: per-tensor rules */
    int n_threads = p.n_threads > 0 ? p.n_threads : psi_cpu_count();
    if (n_threads > 256) n_threads = 256;

    gguf *g = NULL;
    psi_status rc = check_output(out_path, err, n);
    if (rc || (rc = check_not_input(out_path, in_path, err, n)) || (rc = gguf_open(in_path, &g, err, n)))
        return rc;
    const uint64_t nt = g->n_tensors;
    gguf_writer *w = gguf_writer_new();
    qtensor *qt = mem_calloc(nt ? nt : 1, sizeof *qt);
    qtensor **order = mem_calloc(nt ? nt : 1, sizeof *order);
    void **bufs = mem_calloc(nt ? nt : 1, sizeof *bufs);
    float **scratch = mem_calloc((size_t)n_threads, sizeof *scratch);
    threadpool *pool = NULL;
    size_t row_cap = 0;
    if (!w || !qt || !order || !bufs || !scratch) goto oom;
    if ((rc = pool_new(n_threads, &pool))) goto fail;

    qstate qs = {.ftype = p.ftype};
    read_model_info(g, &qs);
    for (uint64_t i = 0; i < nt; i++) {
        qt[i].t = &g->tensors[i];
        if (!(qt[i].name = mem_strndup(g->tensors[i].name.ptr, g->tensors[i].name.len))) goto oom;
        qt[i].layer = -1;
        if (sscanf(qt[i].name, "blk.%d.", &qt[i].layer) != 1) qt[i].layer = -1;
        qt[i].type = qt[i].t->type;
        order[i] = &qt[i];
        if (strstr(qt[i].name, "attn_v.weight") || strstr(qt[i].name, "attn_qkv.weight") ||
            strstr(qt[i].name, "attn_kv_b.weight"))
            qs.n_attention_wv++;
        else if (!strcmp(qt[i].name, "output.weight"))
            qs.has_output = true;
    }
    qsort(order, (size_t)nt, sizeof *order, cmp_llama_order);

    /* 1. the type of every tensor, in llama.cpp's order */
    uint64_t total = 0, done = 0;
    for (uint64_t k = 0; k < nt; k++) {
        qtensor *q = order[k];
        if (!is_quantizable(q)) continue;
        uint32_t t = def;
        if (mixes && !tensor_type(&qs, q, def, &t, err, n)) {
            rc = PSI_ERR_UNSUPPORTED;
            goto fail;
        }
        if (t == q->t->type) continue;
        const type_traits *src = type_get(q->t->type);
        if (!p.allow_requantize && q->t->type != PSI_TYPE_F32 && q->t->type != PSI_TYPE_F16 &&
            q->t->type != PSI_TYPE_BF16) {
            err_setf(
                err, n,
                "%s: tensor '%s' is already quantized (%s); converting it to %s would lose accuracy twice: "
                "start from the F32, F16 or BF16 file, or allow it with --allow-requantize",
                in_path, q->name, src ? src->name : "?", type_get(t)->name);
            rc = PSI_ERR_UNSUPPORTED;
            goto fail;
        }
        if (!src || !src->to_float || q->t->ne[0] % type_get(t)->blck_size) {
            err_setf(err, n, "%s: tensor '%s' (%s, rows of %llu) cannot be converted to %s", in_path, q->name,
                     src ? src->name : "?", (unsigned long long)q->t->ne[0], type_get(t)->name);
            rc = PSI_ERR_UNSUPPORTED;
            goto fail;
        }
        q->type = t;
        if (q->t->ne[0] > row_cap) row_cap = (size_t)q->t->ne[0];
    }
    for (uint64_t i = 0; i < nt; i++) {
        uint64_t ne = 1;
        for (uint32_t d = 0; d < qt[i].t->n_dims; d++) ne *= qt[i].t->ne[d];
        total += ne;
    }
    for (int i = 0; i < n_threads && row_cap; i++)
        if (!(scratch[i] = mem_alloc(row_cap * sizeof(float)))) goto oom;

    /* 2. metadata: everything but the two keys llama-quantize sets */
    for (uint64_t i = 0; i < g->n_kv; i++) {
        if (gguf_str_eq(g->kv[i].key, "general.file_type") ||
            gguf_str_eq(g->kv[i].key, "general.quantization_version"))
            continue;
        if ((rc = gguf_writer_copy_kv(w, g, i))) goto fail;
    }
    /* ggml's quantization format version 2 */
    if ((rc = gguf_writer_set_u32(w, "general.file_type", (uint32_t)p.ftype)) ||
        (rc = gguf_writer_set_u32(w, "general.quantization_version", 2)))
        goto fail;

    /* 3. tensor data, in the input file's order */
    for (uint64_t i = 0; i < nt; i++) {
        const qtensor *q = &qt[i];
        const gguf_tensor *t = q->t;
        const void *data = t->data;
        uint64_t ne = 1, rows = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) ne *= t->ne[d];
        for (uint32_t d = 1; d < t->n_dims; d++) rows *= t->ne[d];
        if (q->type != t->type) {
            size_t out_row = type_row_size(q->type, (int64_t)t->ne[0]), bytes;
            if (size_mul_ovf(out_row, (size_t)rows, &bytes)) goto oom;
            if (!(bufs[i] = mem_alloc(bytes ? bytes : 1))) goto oom;
            qjob job = {type_get(t->type), t->data, type_row_size(t->type, (int64_t)t->ne[0]), out_row, bufs[i],
                        rows, (int64_t)t->ne[0], weight_quantizer(q->type), scratch};
            pool_run(pool, quantize_rows, &job);
            data = bufs[i];
        }
        if ((rc = gguf_writer_add_tensor(w, q->name, q->type, t->n_dims, t->ne, data))) goto fail;
        done += ne;
        if (p.progress) p.progress(p.progress_user, q->name, (psi_type)q->type, done, total);
    }
    rc = gguf_writer_write(w, out_path, err, n);
    goto done;
oom:
    rc = PSI_ERR_NO_MEMORY;
fail:
    if (rc == PSI_ERR_NO_MEMORY) err_setf(err, n, "%s: out of memory while quantizing", out_path);
    else if (rc == PSI_ERR_INVALID_ARG) err_setf(err, n, "%s: cannot build the output GGUF", out_path);
done:
    for (uint64_t i = 0; qt && i < nt; i++) mem_free(qt[i].name);
    for (uint64_t i = 0; bufs && i < nt; i++) mem_free(bufs[i]);
    for (int i = 0; scratch && i < n_threads; i++) mem_free(scratch[i]);
    mem_free(scratch);
    mem_free(bufs);
    mem_free(order);
    mem_free(qt);
    pool_free(pool);
    gguf_writer_free(w);
    gguf_close(g);
    return rc;
}
