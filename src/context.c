/*
 * context.c — psi_model and psi_context handles: loading a model file,
 * creating contexts (KV cache, scratch, threads), decoding batches.
 */
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "model.h"
#include "util.h"

static psi_status copy_meta_strs(psi_model *m);

psi_model_params psi_model_default_params(void)
{
    psi_model_params p = {.use_mmap = true, .verbose = false};
    return p;
}

psi_status psi_model_load(const char *path, const psi_model_params *params, psi_model **out,
                          char *err, size_t err_size)
{
    psi_model_params defaults = psi_model_default_params();
    if (!params) params = &defaults;
    if (!out || !path) {
        err_setf(err, err_size, "psi_model_load: path and out must not be NULL");
        return PSI_ERR_INVALID_ARG;
    }
    *out = NULL;
    psi_model *m = mem_calloc(1, sizeof *m);
    if (!m) {
        err_setf(err, err_size, "%s: out of memory", path);
        return PSI_ERR_NO_MEMORY;
    }
    psi_status rc = gguf_open(path, &m->g, err, err_size);
    if (rc) goto fail;
    gguf_str arch;
    rc = gguf_get_str(m->g, "general.architecture", &arch, err, err_size);
    if (rc == PSI_ERR_INVALID_ARG) {
        err_setf(err, err_size, "%s: metadata 'general.architecture' is missing", path);
        rc = PSI_ERR_FORMAT;
    }
    if (rc) goto fail;
    if (!gguf_str_eq(arch, "llama")) {
        err_setf(err, err_size, "%s: architecture '%.*s' is not supported (psi runs 'llama')", path,
                 (int)(arch.len > 40 ? 40 : arch.len), arch.ptr);
        rc = PSI_ERR_UNSUPPORTED;
        goto fail;
    }
    if ((rc = copy_meta_strs(m))) goto fail;
    if ((rc = vocab_load(&m->vocab, m->g, err, err_size))) goto fail;
    if ((rc = llama_load(m, err, err_size))) goto fail;
    if (params->verbose)
        fprintf(stderr, "psi: loaded %s: %s; cpu kernels %s\n", path, m->desc, kernels_get()->name);
    *out = m;
    return PSI_OK;
fail:
    if (rc == PSI_ERR_NO_MEMORY) err_setf(err, err_size, "%s: out of memory while loading", path);
    psi_model_free(m);
    return rc;
}

void psi_model_free(psi_model *m)
{
    if (!m) return;
    llama_free_weights(m);
    if (m->meta_strs)
        for (uint64_t i = 0; i < m->g->n_kv; i++) mem_free(m->meta_strs[i]);
    mem_free(m->meta_strs);
    vocab_free(m->vocab);
    gguf_close(m->g);
    mem_free(m);
}

const char *psi_model_errmsg(const psi_model *m) { return m ? m->errmsg : "no model"; }
int32_t psi_model_n_vocab(const psi_model *m) { return m->hp.n_vocab; }
int32_t psi_model_n_ctx_train(const psi_model *m) { return m->hp.n_ctx_train; }
int32_t psi_model_n_embd(const psi_model *m) { return m->hp.n_embd; }
int32_t psi_model_n_layer(const psi_model *m) { return m->hp.n_layer; }
const char *psi_model_desc(const psi_model *m) { return m->desc; }

const char *psi_model_meta_str(const psi_model *m, const char *key)
{
    int64_t i = m && key ? gguf_find_key(m->g, key) : -1;
    return i >= 0 ? m->meta_strs[i] : NULL;
}

/* NUL-terminated copies of the scalar string values (GGUF strings in the
 * mapping are not terminated), so psi_model_meta_str can hand them out. */
static psi_status copy_meta_strs(psi_model *m)
{
    m->meta_strs = mem_calloc((size_t)(m->g->n_kv ? m->g->n_kv : 1), sizeof(char *));
    if (!m->meta_strs) return PSI_ERR_NO_MEMORY;
    for (uint64_t i = 0; i < m->g->n_kv; i++) {
        const gguf_kv *kv = &m->g->kv[i];
        if (kv->type != GGUF_STRING) continue;
        m->meta_strs[i] = mem_strndup(kv->strs[0].ptr, (size_t)kv->strs[0].len);
        if (!m->meta_strs[i]) return PSI_ERR_NO_MEMORY;
    }
    return PSI_OK;
}

psi_context_params psi_context_default_params(void)
{
    psi_context_params p = {.n_ctx = 0, .n_threads = 0, .kv_type = PSI_TYPE_F32};
    return p;
}

psi_status psi_context_new(psi_model *model, const psi_context_params *params, psi_context **out,
                           char *err, size_t err_size)
{
    psi_context_params defaults = psi_context_default_params();
    if (!params) params = &defaults;
    if (!out || !model) {
        err_setf(err, err_size, "psi_context_new: model and out must not be NULL");
        return PSI_ERR_INVALID_ARG;
    }
    *out = NULL;
    if (params->n_ctx < 0 || params->n_threads < 0 || params->n_threads > 1024) {
        err_setf(err, err_size, "invalid context size %d or thread count %d", params->n_ctx,
                 params->n_threads);
        return PSI_ERR_INVALID_ARG;
    }
    size_t elem;
    if (params->kv_type == PSI_TYPE_F32) elem = 4;
    else if (params->kv_type == PSI_TYPE_F16) elem = 2;
    else {
        const char *name = psi_type_name(params->kv_type);
        err_setf(err, err_size, "KV cache type %s is not supported yet (use f32 or f16)",
                 name ? name : "?");
        return PSI_ERR_UNSUPPORTED;
    }
    psi_context *ctx = mem_calloc(1, sizeof *ctx);
    if (!ctx) goto oom;
    ctx->model = model;
    ctx->kv_type = params->kv_type;
    ctx->kv_elem = elem;
    ctx->n_ctx = params->n_ctx ? params->n_ctx : model->hp.n_ctx_train;
    const hparams *hp = &model->hp;
    size_t kv_bytes;
    if (size_mul_ovf((size_t)hp->n_layer * (size_t)ctx->n_ctx, (size_t)hp->n_head_kv * hp->head_dim * elem,
                     &kv_bytes)) {
        err_setf(err, err_size, "context of %d tokens is too large", ctx->n_ctx);
        psi_context_free(ctx);
        return PSI_ERR_INVALID_ARG;
    }
    ctx->k_cache = mem_alloc(kv_bytes);
    ctx->v_cache = mem_alloc(kv_bytes);
    int n_threads = params->n_threads ? params->n_threads : psi_cpu_count();
    ctx->scores = mem_alloc((size_t)n_threads * (size_t)ctx->n_ctx * sizeof(float));
    if (!ctx->k_cache || !ctx->v_cache || !ctx->scores) {
        err_setf(err, err_size, "cannot allocate a KV cache of 2 x %zu bytes for %d tokens", kv_bytes,
                 ctx->n_ctx);
        psi_context_free(ctx);
        return PSI_ERR_NO_MEMORY;
    }
    if (pool_new(n_threads, &ctx->pool)) goto oom;
    *out = ctx;
    return PSI_OK;
oom:
    psi_context_free(ctx);
    err_setf(err, err_size, "out of memory while creating a context");
    return PSI_ERR_NO_MEMORY;
}

void psi_context_free(psi_context *ctx)
{
    if (!ctx) return;
    pool_free(ctx->pool);
    float *bufs[] = {ctx->x, ctx->xb, ctx->xb2, ctx->q, ctx->k, ctx->v, ctx->att,
                     ctx->hb, ctx->hb2, ctx->rope_cs, ctx->scores, ctx->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) mem_free(bufs[i]);
    mem_free(ctx->act);
    mem_free(ctx->k_cache);
    mem_free(ctx->v_cache);
    mem_free(ctx);
}

const char *psi_context_errmsg(const psi_context *ctx) { return ctx ? ctx->errmsg : "no context"; }
int32_t psi_context_n_ctx(const psi_context *ctx) { return ctx->n_ctx; }
int32_t psi_context_n_past(const psi_context *ctx) { return ctx->n_past; }

psi_status psi_context_truncate(psi_context *ctx, int32_t n_past)
{
    if (n_past < 0 || n_past > ctx->n_past) {
        err_setf(ctx->errmsg, sizeof ctx->errmsg, "cannot truncate to %d tokens (context holds %d)",
                 n_past, ctx->n_past);
        return PSI_ERR_INVALID_ARG;
    }
    ctx->n_past = n_past;
    return PSI_OK;
}

psi_status psi_context_decode(psi_context *ctx, const int32_t *tokens, int32_t n_tokens,
                              bool all_logits)
{
    if (!tokens || n_tokens <= 0) {
        err_setf(ctx->errmsg, sizeof ctx->errmsg, "decode: empty batch");
        return PSI_ERR_INVALID_ARG;
    }
    int32_t n_vocab = ctx->model->hp.n_vocab;
    for (int32_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab) {
            err_setf(ctx->errmsg, sizeof ctx->errmsg,
                     "decode: token id %" PRId32 " at batch position %" PRId32
                     " is out of range (vocabulary has %" PRId32 " tokens)",
                     tokens[i], i, n_vocab);
            return PSI_ERR_INVALID_ARG;
        }
    if (n_tokens > ctx->n_ctx - ctx->n_past) {
        err_setf(ctx->errmsg, sizeof ctx->errmsg,
                 "context is full: %d tokens cached + %d new > context size %d (raise -c)",
                 ctx->n_past, n_tokens, ctx->n_ctx);
        return PSI_ERR_CONTEXT_FULL;
    }
    const hparams *hp = &ctx->model->hp;
    int32_t n_rows = all_logits ? n_tokens : 1;
    psi_status rc = PSI_OK;
    if (n_rows > ctx->cap_logits) {
        size_t bytes;
        float *p = NULL;
        if (!size_mul_ovf((size_t)n_rows * sizeof(float), (size_t)hp->n_vocab, &bytes))
            p = mem_realloc(ctx->logits, bytes);
        if (!p) rc = PSI_ERR_NO_MEMORY;
        else {
            ctx->logits = p;
            ctx->cap_logits = n_rows;
        }
    }
    int32_t start = ctx->n_past;
    for (int32_t off = 0; rc == PSI_OK && off < n_tokens; off += PSI_UBATCH) {
        int32_t len = n_tokens - off < PSI_UBATCH ? n_tokens - off : PSI_UBATCH;
        bool last = off + len == n_tokens;
        int32_t n_out = all_logits ? len : last ? 1 : 0;
        float *dst = ctx->logits + (all_logits ? (size_t)off * (size_t)hp->n_vocab : 0);
        rc = llama_decode(ctx, tokens + off, len, n_out, dst);
    }
    if (rc != PSI_OK) {
        ctx->n_past = start; /* a failed batch leaves nothing behind */
        ctx->n_batch = 0;
    } else {
        ctx->n_batch = n_tokens;
        ctx->all_logits = all_logits;
    }
    if (rc == PSI_ERR_NO_MEMORY)
        err_setf(ctx->errmsg, sizeof ctx->errmsg, "decode: out of memory for a batch of %d tokens",
                 n_tokens);
    return rc;
}

const float *psi_context_logits(const psi_context *ctx, int32_t i)
{
    if (ctx->n_batch == 0) return NULL;
    if (i < 0) i = ctx->n_batch - 1;
    if (i >= ctx->n_batch) return NULL;
    if (!ctx->all_logits) return i == ctx->n_batch - 1 ? ctx->logits : NULL;
    return ctx->logits + (size_t)i * (size_t)ctx->model->hp.n_vocab;
}
