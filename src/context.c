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

/* use_mmap false: the file's bytes into the process's own memory, in
 * 2 MiB pages where the kernel allows (generation measured 2-3% faster
 * than from the file's 4 KiB pages, docs/api.md), and safe from the file
 * changing under a mapping. Not where they would not fit in the memory the
 * process may use: then mapped, pages the kernel can drop and read again. */
static psi_status read_in(psi_model *m, const char *path, bool verbose, char *err, size_t n)
{
    uint64_t total = m->g->size;
    for (uint32_t i = 0; i < m->g->n_parts; i++)
        total += m->g->parts[i]->size;
    const uint64_t limit = mem_limit();
    if (limit && total > limit) {
        if (verbose)
            fprintf(stderr,
                    "psi: %s: weights mapped from the file, not read in: %.1f GiB is more than the "
                    "memory (%.1f GiB)\n",
                    path, (double)total / (1 << 30), (double)limit / (1 << 30));
        return PSI_OK;
    }
    return gguf_read_in(m->g, &m->own, err, n);
}

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
    if (params->vocab_only) {
        m->vocab_only = true;
        m->hp.n_vocab = vocab_n_tokens(m->vocab);
        snprintf(m->desc, sizeof m->desc, "vocabulary only, %d tokens", m->hp.n_vocab);
    } else {
        if (!params->use_mmap && (rc = read_in(m, path, params->verbose, err, err_size))) goto fail;
        if ((rc = llama_load(m, err, err_size))) goto fail;
        gguf_read_only(m->g); /* repacked: a stray write now faults instead of changing a weight */
    }
    if (params->verbose)
        fprintf(stderr, "psi: loaded %s: %s; cpu kernels %s (%.1f MiB of weights repacked); weights %s\n",
                path, m->desc, kernels_get()->name, (double)m->n_repacked / (1024.0 * 1024.0),
                m->own ? "in the process's own memory" : "mapped from the file");
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
int32_t psi_model_n_vocab(const psi_model *m)
{
    return m ? m->hp.n_vocab : 0;
}
int32_t psi_model_n_ctx_train(const psi_model *m)
{
    return m ? m->hp.n_ctx_train : 0;
}
int32_t psi_model_n_embd(const psi_model *m)
{
    return m ? m->hp.n_embd : 0;
}
int32_t psi_model_n_layer(const psi_model *m)
{
    return m ? m->hp.n_layer : 0;
}
const char *psi_model_desc(const psi_model *m) { return m->desc; }

bool psi_model_meta_int(const psi_model *m, const char *key, int64_t *out)
{
    int64_t i = m && key && out ? gguf_find_key(m->g, key) : -1;
    if (i < 0) return false;
    const gguf_kv *kv = &m->g->kv[i];
    const uint8_t *p = kv->data;
    switch (kv->type) {
    case GGUF_U8: *out = p[0]; return true;
    case GGUF_I8: *out = (int8_t)p[0]; return true;
    case GGUF_BOOL: *out = p[0] != 0; return true;
    case GGUF_U16: *out = rd_u16(p); return true;
    case GGUF_I16: *out = (int16_t)rd_u16(p); return true;
    case GGUF_U32: *out = rd_u32(p); return true;
    case GGUF_I32: *out = (int32_t)rd_u32(p); return true;
    case GGUF_I64: *out = (int64_t)rd_u64(p); return true;
    case GGUF_U64:
        if (rd_u64(p) > INT64_MAX) return false;
        *out = (int64_t)rd_u64(p);
        return true;
    default: return false;
    }
}

uint64_t psi_model_n_params(const psi_model *m)
{
    uint64_t n = 0;
    for (uint64_t i = 0; m && i < m->g->n_tensors; i++) {
        const gguf_tensor *t = &m->g->tensors[i];
        n += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    }
    return n;
}

uint64_t psi_model_size(const psi_model *m)
{
    uint64_t n = 0;
    for (uint64_t i = 0; m && i < m->g->n_tensors; i++) n += m->g->tensors[i].nbytes;
    return n;
}

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
    psi_context_params p = {.n_ctx = 0, .n_threads = 0, .kv_type = PSI_TYPE_F16, .n_seq = 1};
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
    if (model->vocab_only) {
        err_setf(err, err_size, "the model was loaded for its vocabulary only: it cannot be evaluated");
        return PSI_ERR_INVALID_ARG;
    }
    if (params->n_ctx < 0 || params->n_threads < 0 || params->n_threads > 1024 || params->n_seq < 0 ||
        params->n_seq > 4096) {
        err_setf(err, err_size, "invalid context size %d, thread count %d or sequence count %d", params->n_ctx,
                 params->n_threads, params->n_seq);
        return PSI_ERR_INVALID_ARG;
    }
    const hparams *hp = &model->hp;
    if (params->kv_type != PSI_TYPE_F32 && params->kv_type != PSI_TYPE_F16 && params->kv_type != PSI_TYPE_Q8_0) {
        const char *name = psi_type_name(params->kv_type);
        err_setf(err, err_size, "KV cache type %s is not supported (use f32, f16 or q8_0)", name ? name : "?");
        return PSI_ERR_UNSUPPORTED;
    }
    if (hp->head_dim % type_get(params->kv_type)->blck_size) {
        err_setf(err, err_size, "a %s KV cache needs a head size that is a multiple of %u (this model's is %d)",
                 psi_type_name(params->kv_type), (unsigned)type_get(params->kv_type)->blck_size, hp->head_dim);
        return PSI_ERR_UNSUPPORTED;
    }
    const size_t kv_row = type_row_size(params->kv_type, (int64_t)hp->n_head_kv * hp->head_dim);
    psi_context *ctx = mem_calloc(1, sizeof *ctx);
    if (!ctx) goto oom;
    ctx->model = model;
    ctx->kv_type = params->kv_type;
    ctx->kv_head = type_row_size(params->kv_type, hp->head_dim);
    ctx->n_ctx = params->n_ctx ? params->n_ctx : model->hp.n_ctx_train;
    ctx->n_seq = params->n_seq ? params->n_seq : 1;
    size_t kv_bytes;
    if (size_mul_ovf((size_t)hp->n_layer * (size_t)ctx->n_ctx, kv_row, &kv_bytes) ||
        size_mul_ovf(kv_bytes, (size_t)ctx->n_seq, &kv_bytes)) {
        err_setf(err, err_size, "context of %d x %d tokens is too large", ctx->n_seq, ctx->n_ctx);
        psi_context_free(ctx);
        return PSI_ERR_INVALID_ARG;
    }
    /* K and V are touched as the sequences grow: more than the machine holds
     * would end in the OOM killer mid-answer, so it is refused here */
    const uint64_t limit = mem_limit();
    if (limit && (uint64_t)kv_bytes > limit / 2) {
        err_setf(err, err_size,
                 "a KV cache of %.1f GiB for %d x %d tokens does not fit in the %.1f GiB of memory here "
                 "(a smaller context, fewer sequences or a q8_0 cache would)",
                 2.0 * (double)kv_bytes / (1 << 30), ctx->n_seq, ctx->n_ctx, (double)limit / (1 << 30));
        psi_context_free(ctx);
        return PSI_ERR_NO_MEMORY;
    }
    ctx->seq_n_past = mem_calloc((size_t)ctx->n_seq, sizeof *ctx->seq_n_past);
    ctx->seq_tmp = mem_calloc((size_t)ctx->n_seq, sizeof *ctx->seq_tmp);
    if (!ctx->seq_n_past || !ctx->seq_tmp) goto oom;
    ctx->k_cache = mem_alloc(kv_bytes);
    ctx->v_cache = mem_alloc(kv_bytes);
    int n_threads = params->n_threads ? params->n_threads : psi_cpu_count();
    /* attention's work space, per thread (kernels.h kern_attn) */
    ctx->attn_work_size = kern_attn_work(hp->head_dim, ctx->n_ctx, attn_tile_rows(hp));
    ctx->attn_work = mem_alloc((size_t)n_threads * ctx->attn_work_size * sizeof(float));
    ctx->embd_row = mem_alloc(model->tok_embd.row_size);
    if (!ctx->k_cache || !ctx->v_cache || !ctx->attn_work || !ctx->embd_row) {
        err_setf(err, err_size, "cannot allocate a KV cache of 2 x %zu bytes for %d x %d tokens", kv_bytes,
                 ctx->n_seq, ctx->n_ctx);
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
                     ctx->hb, ctx->hb2, ctx->rope_cs, ctx->attn_work, ctx->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) mem_free(bufs[i]);
    mem_free(ctx->act);
    mem_free(ctx->attn_tiles);
    mem_free(ctx->embd_row);
    int32_t *ibufs[] = {ctx->seq_n_past, ctx->seq_tmp, ctx->b_tok, ctx->b_seq, ctx->b_pos, ctx->b_row, ctx->b_out};
    for (size_t i = 0; i < sizeof ibufs / sizeof ibufs[0]; i++) mem_free(ibufs[i]);
    mem_free(ctx->k_cache);
    mem_free(ctx->v_cache);
    mem_free(ctx);
}

const char *psi_context_errmsg(const psi_context *ctx) { return ctx ? ctx->errmsg : "no context"; }
int32_t psi_context_n_ctx(const psi_context *ctx)
{
    return ctx ? ctx->n_ctx : 0;
}
int32_t psi_context_n_past(const psi_context *ctx)
{
    return ctx ? ctx->seq_n_past[0] : 0;
}
int32_t psi_context_n_seq(const psi_context *ctx)
{
    return ctx ? ctx->n_seq : 0;
}

int32_t psi_context_seq_n_past(const psi_context *ctx, int32_t seq)
{
    return ctx && seq >= 0 && seq < ctx->n_seq ? ctx->seq_n_past[seq] : -1;
}

psi_status psi_context_seq_truncate(psi_context *ctx, int32_t seq, int32_t n_past)
{
    if (!ctx) return PSI_ERR_INVALID_ARG;
    if (seq < 0 || seq >= ctx->n_seq) {
        err_setf(ctx->errmsg, sizeof ctx->errmsg, "sequence %d does not exist (the context has %d)", seq,
                 ctx->n_seq);
        return PSI_ERR_INVALID_ARG;
    }
    if (n_past < 0 || n_past > ctx->seq_n_past[seq]) {
        err_setf(ctx->errmsg, sizeof ctx->errmsg, "cannot truncate to %d tokens (context holds %d)",
                 n_past, ctx->seq_n_past[seq]);
        return PSI_ERR_INVALID_ARG;
    }
    ctx->seq_n_past[seq] = n_past;
    return PSI_OK;
}

psi_status psi_context_truncate(psi_context *ctx, int32_t n_past) { return psi_context_seq_truncate(ctx, 0, n_past); }

static psi_status grow_batch(psi_context *ctx, int32_t n)
{
    if (n <= ctx->cap_batch) return PSI_OK;
    int32_t **bufs[] = {&ctx->b_tok, &ctx->b_seq, &ctx->b_pos, &ctx->b_row, &ctx->b_out};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        int32_t *p = mem_realloc(*bufs[i], (size_t)n * sizeof **bufs[i]);
        if (!p) return PSI_ERR_NO_MEMORY;
        *bufs[i] = p;
    }
    ctx->cap_batch = n;
    return PSI_OK;
}

/* Evaluate ctx->b_tok/b_seq[0..n) (positions are assigned here); entries
 * with b_row[i] >= 0 get logits. Nothing changes when it fails. */
static psi_status run_batch(psi_context *ctx, int32_t n, int32_t n_rows)
{
    int32_t n_vocab = ctx->model->hp.n_vocab;
    for (int32_t i = 0; i < n; i++)
        if (ctx->b_tok[i] < 0 || ctx->b_tok[i] >= n_vocab) {
            err_setf(ctx->errmsg, sizeof ctx->errmsg,
                     "decode: token id %" PRId32 " at batch position %" PRId32
                     " is out of range (vocabulary has %" PRId32 " tokens)",
                     ctx->b_tok[i], i, n_vocab);
            ctx->n_batch = 0;
            return PSI_ERR_INVALID_ARG;
        }
    memcpy(ctx->seq_tmp, ctx->seq_n_past, (size_t)ctx->n_seq * sizeof *ctx->seq_tmp);
    for (int32_t i = 0; i < n; i++) ctx->b_pos[i] = ctx->seq_tmp[ctx->b_seq[i]]++;
    for (int32_t s = 0; s < ctx->n_seq; s++)
        if (ctx->seq_tmp[s] > ctx->n_ctx) {
            if (ctx->n_seq == 1)
                err_setf(ctx->errmsg, sizeof ctx->errmsg,
                         "context is full: %d tokens cached + %d new > context size %d (raise -c)",
                         ctx->seq_n_past[s], ctx->seq_tmp[s] - ctx->seq_n_past[s], ctx->n_ctx);
            else
                err_setf(ctx->errmsg, sizeof ctx->errmsg,
                         "context is full: sequence %d has %d tokens cached + %d new > context size %d", s,
                         ctx->seq_n_past[s], ctx->seq_tmp[s] - ctx->seq_n_past[s], ctx->n_ctx);
            ctx->n_batch = 0;
            return PSI_ERR_CONTEXT_FULL;
        }
    psi_status rc = PSI_OK;
    if (n_rows > ctx->cap_logits) {
        size_t bytes;
        float *p = NULL;
        if (!size_mul_ovf((size_t)n_rows * sizeof(float), (size_t)n_vocab, &bytes))
            p = mem_realloc(ctx->logits, bytes);
        if (!p) rc = PSI_ERR_NO_MEMORY;
        else {
            ctx->logits = p;
            ctx->cap_logits = n_rows;
        }
    }
    for (int32_t off = 0, row = 0; rc == PSI_OK && off < n; off += PSI_UBATCH) {
        int32_t len = n - off < PSI_UBATCH ? n - off : PSI_UBATCH, n_out = 0;
        for (int32_t i = off; i < off + len; i++)
            if (ctx->b_row[i] >= 0) ctx->b_out[n_out++] = i - off;
        rc = llama_decode(ctx, ctx->b_tok + off, ctx->b_seq + off, ctx->b_pos + off, len, ctx->b_out, n_out,
                          ctx->logits + (size_t)row * (size_t)n_vocab);
        row += n_out;
    }
    if (rc != PSI_OK) { /* a failed batch leaves nothing behind */
        ctx->n_batch = 0;
        if (rc == PSI_ERR_NO_MEMORY)
            err_setf(ctx->errmsg, sizeof ctx->errmsg, "decode: out of memory for a batch of %d tokens", n);
        return rc;
    }
    memcpy(ctx->seq_n_past, ctx->seq_tmp, (size_t)ctx->n_seq * sizeof *ctx->seq_tmp);
    ctx->n_batch = n;
    return PSI_OK;
}

psi_status psi_context_decode(psi_context *ctx, const int32_t *tokens, int32_t n_tokens, bool all_logits)
{
    if (!ctx) return PSI_ERR_INVALID_ARG;
    ctx->n_batch = 0;
    if (!tokens || n_tokens <= 0) {
        err_setf(ctx->errmsg, sizeof ctx->errmsg, "decode: empty batch");
        return PSI_ERR_INVALID_ARG;
    }
    if (grow_batch(ctx, n_tokens) != PSI_OK) {
        err_setf(ctx->errmsg, sizeof ctx->errmsg, "decode: out of memory for a batch of %d tokens", n_tokens);
        return PSI_ERR_NO_MEMORY;
    }
    for (int32_t i = 0; i < n_tokens; i++) {
        ctx->b_tok[i] = tokens[i];
        ctx->b_seq[i] = 0;
        ctx->b_row[i] = all_logits ? i : i == n_tokens - 1 ? 0 : -1;
    }
    return run_batch(ctx, n_tokens, all_logits ? n_tokens : 1);
}

psi_status psi_context_decode_batch(psi_context *ctx, const psi_batch_token *batch, int32_t n)
{
    if (!ctx) return PSI_ERR_INVALID_ARG;
    ctx->n_batch = 0;
    if (!batch || n <= 0) {
        err_setf(ctx->errmsg, sizeof ctx->errmsg, "decode: empty batch");
        return PSI_ERR_INVALID_ARG;
    }
    if (grow_batch(ctx, n) != PSI_OK) {
        err_setf(ctx->errmsg, sizeof ctx->errmsg, "decode: out of memory for a batch of %d tokens", n);
        return PSI_ERR_NO_MEMORY;
    }
    int32_t rows = 0;
    for (int32_t i = 0; i < n; i++) {
        if (batch[i].seq < 0 || batch[i].seq >= ctx->n_seq) {
            err_setf(ctx->errmsg, sizeof ctx->errmsg,
                     "decode: batch entry %d names sequence %d (the context has %d)", i, batch[i].seq, ctx->n_seq);
            return PSI_ERR_INVALID_ARG;
        }
        ctx->b_tok[i] = batch[i].token;
        ctx->b_seq[i] = batch[i].seq;
        ctx->b_row[i] = batch[i].logits ? rows++ : -1;
    }
    return run_batch(ctx, n, rows);
}

const float *psi_context_logits(const psi_context *ctx, int32_t i)
{
    if (!ctx || ctx->n_batch == 0) return NULL;
    if (i < 0) i = ctx->n_batch - 1;
    if (i >= ctx->n_batch || ctx->b_row[i] < 0) return NULL;
    return ctx->logits + (size_t)ctx->b_row[i] * (size_t)ctx->model->hp.n_vocab;
}

const float *psi_context_batch_logits(const psi_context *ctx, int32_t i) { return psi_context_logits(ctx, i); }
