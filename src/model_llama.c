/*
 * model_llama.c — the Llama architecture (GGUF arch "llama"): hyper-parameters
 * from llama.* metadata, weight views into the mapped file, and the forward
 * pass (RMSNorm, RoPE, grouped-query attention with a KV cache, SwiGLU FFN).
 *
 * Conventions follow GGUF as llama.cpp writes it: Q and K rows are permuted
 * so RoPE rotates adjacent pairs (x[2i], x[2i+1]) of each head (RoFormer,
 * arXiv:2104.09864, in Meta's original complex-number form); Llama 3.1/3.2
 * long-context scaling is the per-pair divisor tensor rope_freqs.weight.
 * Not here: batching several sequences (psi serve); the kernels (kernels/).
 */
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "model.h"
#include "threadpool.h"
#include "util.h"

/* ------------------------------------------------------------------ loading */

static psi_status get_hp(psi_model *m, const char *key, int32_t *out, bool required, int32_t def,
                         char *err, size_t n)
{
    uint32_t v;
    psi_status rc = gguf_get_u32(m->g, key, &v, err, n);
    if (rc == PSI_ERR_INVALID_ARG) {
        if (!required) {
            *out = def;
            return PSI_OK;
        }
        err_setf(err, n, "%s: required metadata '%s' is missing", m->g->path, key);
        return PSI_ERR_FORMAT;
    }
    if (rc) return rc;
    if (v == 0 || v > (1u << 30)) {
        err_setf(err, n, "%s: metadata '%s' = %" PRIu32 " is out of range", m->g->path, key, v);
        return PSI_ERR_FORMAT;
    }
    *out = (int32_t)v;
    return PSI_OK;
}

static psi_status load_hparams(psi_model *m, char *err, size_t n)
{
    hparams *hp = &m->hp;
    psi_status rc;
    if ((rc = get_hp(m, "llama.embedding_length", &hp->n_embd, true, 0, err, n)) ||
        (rc = get_hp(m, "llama.block_count", &hp->n_layer, true, 0, err, n)) ||
        (rc = get_hp(m, "llama.feed_forward_length", &hp->n_ff, true, 0, err, n)) ||
        (rc = get_hp(m, "llama.attention.head_count", &hp->n_head, true, 0, err, n)) ||
        (rc = get_hp(m, "llama.attention.head_count_kv", &hp->n_head_kv, false, hp->n_head, err, n)) ||
        (rc = get_hp(m, "llama.context_length", &hp->n_ctx_train, false, 2048, err, n)))
        return rc;
    if (hp->n_embd % hp->n_head) {
        err_setf(err, n, "%s: llama.embedding_length %d is not a multiple of the head count %d",
                 m->g->path, hp->n_embd, hp->n_head);
        return PSI_ERR_FORMAT;
    }
    if ((rc = get_hp(m, "llama.attention.key_length", &hp->head_dim, false, hp->n_embd / hp->n_head,
                     err, n)))
        return rc;
    int32_t vlen;
    if ((rc = get_hp(m, "llama.attention.value_length", &vlen, false, hp->head_dim, err, n))) return rc;
    if (vlen != hp->head_dim) {
        err_setf(err, n, "%s: key_length %d != value_length %d is not supported", m->g->path,
                 hp->head_dim, vlen);
        return PSI_ERR_UNSUPPORTED;
    }
    if (hp->n_head % hp->n_head_kv) {
        err_setf(err, n, "%s: head_count %d is not a multiple of head_count_kv %d", m->g->path,
                 hp->n_head, hp->n_head_kv);
        return PSI_ERR_FORMAT;
    }
    if ((rc = get_hp(m, "llama.rope.dimension_count", &hp->n_rot, false, hp->head_dim, err, n)))
        return rc;
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2) {
        err_setf(err, n, "%s: llama.rope.dimension_count %d must be even and at most the head size %d",
                 m->g->path, hp->n_rot, hp->head_dim);
        return PSI_ERR_FORMAT;
    }
    hp->rms_eps = 1e-5f;
    rc = gguf_get_f32(m->g, "llama.attention.layer_norm_rms_epsilon", &hp->rms_eps, err, n);
    if (rc && rc != PSI_ERR_INVALID_ARG) return rc;
    hp->rope_base = 10000.0f;
    rc = gguf_get_f32(m->g, "llama.rope.freq_base", &hp->rope_base, err, n);
    if (rc && rc != PSI_ERR_INVALID_ARG) return rc;
    if (!(hp->rms_eps > 0 && hp->rms_eps < 1) || !(hp->rope_base > 1 && isfinite(hp->rope_base))) {
        err_setf(err, n, "%s: invalid rms epsilon %g or rope base %g", m->g->path, hp->rms_eps,
                 hp->rope_base);
        return PSI_ERR_FORMAT;
    }
    /* Linear rope scaling and YaRN are not implemented: refuse rather than
     * compute something else. */
    gguf_str st;
    if (gguf_get_str(m->g, "llama.rope.scaling.type", &st, NULL, 0) == PSI_OK &&
        !gguf_str_eq(st, "none")) {
        err_setf(err, n, "%s: rope scaling type '%.*s' is not supported yet", m->g->path,
                 (int)(st.len > 40 ? 40 : st.len), st.ptr);
        return PSI_ERR_UNSUPPORTED;
    }
    hp->n_vocab = vocab_n_tokens(m->vocab);
    return PSI_OK;
}

/* Finds tensor `name`, checks its type is computable and its shape is
 * [ne0, ne1] (ne1 = 0 for 1-D). */
static psi_status find_tensor(psi_model *m, const char *name, int64_t ne0, int64_t ne1,
                              const gguf_tensor **out, char *err, size_t n)
{
    int64_t i = gguf_find_tensor(m->g, name);
    if (i < 0) {
        err_setf(err, n, "%s: tensor '%s' is missing", m->g->path, name);
        return PSI_ERR_FORMAT;
    }
    const gguf_tensor *t = &m->g->tensors[i];
    const type_traits *tt = type_get(t->type);
    if (!tt || !tt->can_compute) {
        err_setf(err, n, "%s: tensor '%s' has type %s, which psi cannot compute yet", m->g->path,
                 name, tt ? tt->name : "?");
        return PSI_ERR_UNSUPPORTED;
    }
    uint32_t want_dims = ne1 ? 2 : 1;
    bool ok = t->n_dims == want_dims && (int64_t)t->ne[0] == ne0 && (ne1 == 0 || (int64_t)t->ne[1] == ne1);
    if (!ok) {
        char got[96];
        int len = snprintf(got, sizeof got, "[%" PRIu64, t->ne[0]);
        for (uint32_t d = 1; d < t->n_dims; d++)
            len += snprintf(got + len, sizeof got - (size_t)len, ", %" PRIu64, t->ne[d]);
        snprintf(got + len, sizeof got - (size_t)len, "]");
        if (ne1)
            err_setf(err, n, "%s: tensor '%s' has shape %s, expected [%" PRId64 ", %" PRId64 "]",
                     m->g->path, name, got, ne0, ne1);
        else
            err_setf(err, n, "%s: tensor '%s' has shape %s, expected [%" PRId64 "]", m->g->path,
                     name, got, ne0);
        return PSI_ERR_FORMAT;
    }
    *out = t;
    return PSI_OK;
}

static psi_status load_matrix(psi_model *m, tensor *w, const char *name, int64_t ne0, int64_t ne1,
                              char *err, size_t n)
{
    const gguf_tensor *t;
    psi_status rc = find_tensor(m, name, ne0, ne1, &t, err, n);
    if (rc) return rc;
    w->data = t->data;
    w->type = t->type;
    w->ne0 = ne0;
    w->ne1 = ne1;
    w->tt = type_get(t->type);
    w->row_size = type_row_size(t->type, ne0);
    return PSI_OK;
}

/* 1-D tensors (norm weights, rope factors) are small: keep f32 copies. */
static psi_status load_vector(psi_model *m, float **out, const char *name, int64_t ne0, char *err,
                              size_t n)
{
    const gguf_tensor *t;
    psi_status rc = find_tensor(m, name, ne0, 0, &t, err, n);
    if (rc) return rc;
    *out = mem_alloc((size_t)ne0 * sizeof(float));
    if (!*out) return PSI_ERR_NO_MEMORY;
    type_get(t->type)->to_float(t->data, *out, ne0);
    return PSI_OK;
}

/* One matrix's groups, repacked by the load's threads: group g through
 * thread ith's copy of its 8 rows (tmp + ith·group). */
typedef struct repack_job {
    const kern_type *k;
    uint8_t *data, *tmp;
    int64_t ne0, n_groups;
    size_t row_size;
    bool populate;
} repack_job;

static void repack_worker(void *arg, int ith, int nth)
{
    const repack_job *j = arg;
    const size_t group = 8 * j->row_size;
    uint8_t *tmp = j->tmp + (size_t)ith * group;
    int64_t lo, hi;
    pool_split(j->n_groups, ith, nth, &lo, &hi);
#ifdef MADV_POPULATE_WRITE
    if (j->populate && hi > lo) { /* this thread's pages made the process's own (see repack_matrix) */
        const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t a = (uintptr_t)(j->data + (size_t)lo * group) & ~(page - 1);
        uintptr_t b = ((uintptr_t)(j->data + (size_t)hi * group) + page - 1) & ~(page - 1);
        (void)madvise((void *)a, b - a, MADV_POPULATE_WRITE); /* an older kernel: faults page by page */
    }
#endif
    for (int64_t g = lo; g < hi; g++) {
        memcpy(tmp, j->data + (size_t)g * group, group);
        j->k->repack8(j->ne0, tmp, j->row_size, j->data + (size_t)g * group);
    }
}

/* Repacks a matrix in place for the kernel table's gemm8 (kernels.h):
 * group by group through a copy of its 8 rows. A mapped file is mapped
 * private, so the pages written become the process's own copies and the
 * file's pages are dropped: memory stays the size of the file, as it must
 * (weights are never held twice). The groups are shared among the pool's
 * threads (psi_cpu_count()), and each thread first makes its share's pages
 * the process's own in one call (MADV_POPULATE_WRITE): faulted in one at a
 * time after the copy below had read them, each write was a copy-on-write
 * fault with a TLB flush, and with the pool's threads a flush on every
 * core, which made a parallel repack 3-5× slower than a serial one. Pages
 * populated before they were ever read need no flush, so the threads can
 * take their shares at once: `psi run -n 1` of the 1B shape, 2 cores,
 * medians of 8 alternating runs: Q4_0 0.60 s, Q4_K_M 0.64 s, Q8_0 1.05 s,
 * against 0.77, 0.84 and 1.7 s with one call for the whole matrix before
 * the threads started (session 19). A file read in
 * (gguf_read_in) is the process's own already. */
static psi_status repack_matrix(psi_model *m, tensor *w, const kern_type *k, threadpool *pool, char *err, size_t n)
{
    size_t bytes = w->row_size * (size_t)w->ne1, group = 8 * w->row_size;
    if (!m->g->mapped) return PSI_OK; /* a caller's buffer: not ours to write */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)w->data & ~(uintptr_t)(page - 1);
    uintptr_t hi = ((uintptr_t)w->data + bytes + page - 1) & ~(uintptr_t)(page - 1);
    if (mprotect((void *)lo, hi - lo, PROT_READ | PROT_WRITE) != 0) return PSI_OK; /* kept as it is */
    repack_job j = {.k = k,
                    .data = (uint8_t *)w->data,
                    .tmp = mem_alloc((size_t)pool_size(pool) * group),
                    .ne0 = w->ne0,
                    .n_groups = w->ne1 / 8,
                    .row_size = w->row_size,
                    .populate = !m->own};
    if (!j.tmp) {
        err_setf(err, n, "out of memory while repacking the weights");
        return PSI_ERR_NO_MEMORY;
    }
    pool_run(pool, repack_worker, &j);
    mem_free(j.tmp);
    w->x8 = true;
    m->n_repacked += (int64_t)bytes;
    return PSI_OK;
}

/* The matrices of the products, and token_embd where the type can give a
 * row back (unpack8) for the embedding lookup; a tied output follows it. */
static psi_status repack_weights(psi_model *m, char *err, size_t n)
{
    const kernels *ks = kernels_get();
    const char *env = getenv("PSI_REPACK"); /* PSI_REPACK=0: keep the file's layout (comparisons) */
    if (env && !strcmp(env, "0")) return PSI_OK;
    threadpool *pool;
    psi_status rc = pool_new(psi_cpu_count(), &pool);
    if (rc) rc = pool_new(1, &pool); /* no threads to be had: the loading thread alone */
    if (rc) {
        err_setf(err, n, "cannot start the threads that repack the weights");
        return rc;
    }
    tensor *list[8];
    for (int32_t l = -1; l < m->hp.n_layer && !rc; l++) {
        int cnt = 0;
        if (l < 0) {
            if (kernels_type(ks, m->tok_embd.type)->unpack8) list[cnt++] = &m->tok_embd;
            if (!m->tied) list[cnt++] = &m->output;
        } else {
            layer *L = &m->layers[l];
            tensor *all[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
            for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) list[cnt++] = all[i];
        }
        for (int i = 0; i < cnt && !rc; i++) {
            const kern_type *k = kernels_type(ks, list[i]->type);
            if (!k->repack8 || !k->gemm8 || list[i]->ne1 % 8 || list[i]->ne0 % (int64_t)list[i]->tt->blck_size)
                continue;
            rc = repack_matrix(m, list[i], k, pool, err, n);
        }
        if (l < 0 && m->tied) m->output = m->tok_embd;
    }
    pool_free(pool);
    return rc;
}

psi_status llama_load(psi_model *m, char *err, size_t n)
{
    psi_status rc = load_hparams(m, err, n);
    if (rc) return rc;
    const hparams *hp = &m->hp;
    int64_t embd = hp->n_embd, q_dim = (int64_t)hp->n_head * hp->head_dim,
            kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    if ((rc = load_matrix(m, &m->tok_embd, "token_embd.weight", embd, hp->n_vocab, err, n)) ||
        (rc = load_vector(m, &m->output_norm, "output_norm.weight", embd, err, n)))
        return rc;
    if (gguf_find_tensor(m->g, "output.weight") >= 0) {
        if ((rc = load_matrix(m, &m->output, "output.weight", embd, hp->n_vocab, err, n))) return rc;
    } else {
        m->output = m->tok_embd;
        m->tied = true;
    }
    if (gguf_find_tensor(m->g, "rope_freqs.weight") >= 0 &&
        (rc = load_vector(m, &m->rope_freqs, "rope_freqs.weight", hp->n_rot / 2, err, n)))
        return rc;
    m->layers = mem_calloc((size_t)hp->n_layer, sizeof(layer));
    if (!m->layers) return PSI_ERR_NO_MEMORY;
    for (int32_t i = 0; i < hp->n_layer; i++) {
        layer *L = &m->layers[i];
        char name[64];
#define NAME(s) (snprintf(name, sizeof name, "blk.%d." s ".weight", (int)i), name)
        if ((rc = load_vector(m, &L->attn_norm, NAME("attn_norm"), embd, err, n)) ||
            (rc = load_matrix(m, &L->wq, NAME("attn_q"), embd, q_dim, err, n)) ||
            (rc = load_matrix(m, &L->wk, NAME("attn_k"), embd, kv_dim, err, n)) ||
            (rc = load_matrix(m, &L->wv, NAME("attn_v"), embd, kv_dim, err, n)) ||
            (rc = load_matrix(m, &L->wo, NAME("attn_output"), q_dim, embd, err, n)) ||
            (rc = load_vector(m, &L->ffn_norm, NAME("ffn_norm"), embd, err, n)) ||
            (rc = load_matrix(m, &L->w_gate, NAME("ffn_gate"), embd, hp->n_ff, err, n)) ||
            (rc = load_matrix(m, &L->w_up, NAME("ffn_up"), embd, hp->n_ff, err, n)) ||
            (rc = load_matrix(m, &L->w_down, NAME("ffn_down"), hp->n_ff, embd, err, n)))
            return rc;
#undef NAME
    }
    if ((rc = repack_weights(m, err, n))) return rc;
    snprintf(m->desc, sizeof m->desc, "llama %dd %dL %dH/%dKV ff%d vocab%d %s%s", hp->n_embd,
             hp->n_layer, hp->n_head, hp->n_head_kv, hp->n_ff, hp->n_vocab,
             m->layers[0].wq.tt->name, m->tied ? " tied" : "");
    return PSI_OK;
}

void llama_free_weights(psi_model *m)
{
    if (m->layers)
        for (int32_t i = 0; i < m->hp.n_layer; i++) {
            mem_free(m->layers[i].attn_norm);
            mem_free(m->layers[i].ffn_norm);
        }
    mem_free(m->layers);
    mem_free(m->output_norm);
    mem_free(m->rope_freqs);
}

/* ------------------------------------------------------------------ forward */

static void rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps)
{
    double ss = 0; /* double: the sum of squares of thousands of values */
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
}

#define MATMUL_TILE_BYTES (64 * 1024) /* batches: 16-256 KiB measured alike on Zen 3, 64 KiB a little ahead */
/* One token (decode) reads each chunk once, from memory: a chunk there is
 * a stream that starts cold (the first lines wait for DRAM, the hardware
 * prefetcher trains again) and a turn at the shared counter, and 64 KiB
 * is only ~5 µs of reading for a thread. 256 KiB chunks against 64 KiB
 * (session 17; bench/ab.py, 2 threads, medians of 6 interleaved rounds,
 * B/A and its range): tg64 Q4_0 ×1.06 (1.02-1.08), Q4_K_M ×1.03, Q8_0
 * ×1.04, Q6_K ×1.10 (1.01-1.15), tg32 F16 ×1.05; one thread, Q4_0 ×1.05.
 * In a scratch build 16 KiB lost a fifth on Q4_0, 1 MiB was no better
 * than 256 KiB, and smaller chunks for small matrices (at least 4 a
 * thread) gained nothing there. But with many threads a matrix would
 * then have fewer chunks than threads (16 threads: wo's 2.3 MiB in 9), so
 * a matrix's chunk is cut to its bytes / (4 · threads) if that is
 * smaller, down to MATMUL_TILE_BYTES (2 threads: only a Q4_0 wk/wv, 74
 * KiB). Batches keep MATMUL_TILE_BYTES: the 8-token step was level with
 * 256 KiB. */
#define MATMUL_DECODE_TILE_BYTES (256 * 1024)
/* At least this many rows per chunk through the float tile kernels when
 * there are several tokens (decode keeps its chunks): every chunk reads
 * all the tokens' activations again (an F16 ffn_down chunk of
 * 64 KiB is 4 rows of 8192, 32 KiB of activations per token for 4 outputs);
 * 16 rows: 26-29 against 19-21 GMAC/s a thread, n 8192, 512 tokens. */
#define MATMUL_GEMM_ROWS 16

/* The matrices of one pool run: those that read the same input (q, k and
 * v; gate and up) go together, so the input is converted once and the
 * threads meet once per group rather than twice per matrix (decode does
 * some 240 fewer barriers per token on a 16-layer model). */
#define MATMUL_MAX 3

/* The kernel a matrix's rows go through, chosen once per product. */
typedef enum matmul_path {
    MM_DOT,   /* one token: vec_dot streams the rows */
    MM_GEMM16, /* a repacked matrix, a batch: gemm16, 16 rows × up to KERN_NY16 tokens */
    MM_GEMM8, /* a repacked matrix: gemm8, 8 rows × up to KERN_NY tokens */
    MM_GEMM,  /* tile kernels: up to KERN_MX rows × KERN_NY tokens */
    MM_NY,    /* vec_dot_ny: one row × up to KERN_NY tokens */
    MM_DOTS,  /* vec_dot once per row and token */
} matmul_path;

/* Tokens from which a repacked matrix goes through gemm16 where the table
 * has it (AMX): at 8 tokens the tile unit is half used, and on a Sapphire
 * Rapids-class Xeon Q4_0's gemm16 ran at 80 against gemm8's 96 GMAC/s
 * (Q8_0 103 against 98); at 32, 162-171 against 95-99 (bench_kernels,
 * session 8). */
#define MATMUL_GEMM16_MIN 16

static matmul_path matmul_path_of(const tensor *w, const kern_type *k, int32_t n_tok)
{
    if (w->x8) return k->gemm16 && n_tok >= MATMUL_GEMM16_MIN ? MM_GEMM16 : MM_GEMM8;
    if (k->gemm) return MM_GEMM;
    if (n_tok == 1) return MM_DOT;
    return k->vec_dot_ny ? MM_NY : MM_DOTS;
}

typedef struct matmul_part {
    const tensor *w;
    kern_type k;
    matmul_path path;
    int64_t step;        /* rows per kernel call: 16 (gemm16), 8 (gemm8), KERN_MX (gemm) or 1 */
    const void *act;     /* [n_tok] rows of act_row bytes */
    size_t act_row;
    float *out;          /* [n_tok][out_stride] */
    int64_t out_stride;
} matmul_part;

typedef struct matmul_job {
    matmul_part part[MATMUL_MAX];
    int64_t chunk_rows[MATMUL_MAX]; /* rows per chunk: a multiple of the part's step */
    int64_t chunk_end[MATMUL_MAX];  /* chunks of parts 0..i */
    int n_part;
    int32_t n_tok;
    atomic_llong next;              /* the next chunk to take */
} matmul_job;

/* Rows [r0, r1) of one matrix for all the tokens: KERN_NY tokens at a time
 * through gemm8 (repacked), gemm (tile kernels) or vec_dot_ny (one row). */
static void matmul_rows(const matmul_part *j, int32_t n_tok, int64_t r0, int64_t r1)
{
    const tensor *w = j->w;
    const kern_type *k = &j->k;
    const uint8_t *wd = w->data;
    if (j->path == MM_DOT) {
        for (int64_t r = r0; r < r1; r++) k->vec_dot(w->ne0, &j->out[r], wd + (size_t)r * w->row_size, j->act);
        return;
    }
    if (j->path == MM_GEMM16) {
        for (int32_t t0 = 0; t0 < n_tok; t0 += KERN_NY16) {
            int ny = n_tok - t0 < KERN_NY16 ? (int)(n_tok - t0) : KERN_NY16;
            const uint8_t *a = (const uint8_t *)j->act + (size_t)t0 * j->act_row;
            float *o = j->out + (size_t)t0 * (size_t)j->out_stride;
            int64_t r = r0;
            for (; r + 16 <= r1; r += 16)
                k->gemm16(w->ne0, wd + (size_t)r * w->row_size, 8 * w->row_size, a, j->act_row, ny, o + r,
                          j->out_stride);
            for (int t = 0; r < r1 && t < ny; t += KERN_NY) /* a last group of 8 */
                k->gemm8(w->ne0, wd + (size_t)r * w->row_size, a + (size_t)t * j->act_row, j->act_row,
                         ny - t < KERN_NY ? ny - t : KERN_NY, o + (size_t)t * (size_t)j->out_stride + r,
                         j->out_stride);
        }
        return;
    }
    const int64_t step = j->step;
    for (int32_t t0 = 0; t0 < n_tok; t0 += KERN_NY) {
        int ny = n_tok - t0 < KERN_NY ? (int)(n_tok - t0) : KERN_NY;
        const uint8_t *a = (const uint8_t *)j->act + (size_t)t0 * j->act_row;
        float *o = j->out + (size_t)t0 * (size_t)j->out_stride;
        for (int64_t r = r0; r < r1; r += step) {
            const uint8_t *row = wd + (size_t)r * w->row_size;
            if (j->path == MM_GEMM8) {
                k->gemm8(w->ne0, row, a, j->act_row, ny, o + r, j->out_stride);
            } else if (j->path == MM_GEMM) {
                int nx = r1 - r < KERN_MX ? (int)(r1 - r) : KERN_MX;
                k->gemm(w->ne0, row, w->row_size, nx, a, j->act_row, ny, o + r, j->out_stride);
            } else if (j->path == MM_NY) {
                k->vec_dot_ny(w->ne0, o + r, j->out_stride, row, a, j->act_row, ny);
            } else {
                for (int t = 0; t < ny; t++)
                    k->vec_dot(w->ne0, o + (size_t)t * (size_t)j->out_stride + r, row, a + (size_t)t * j->act_row);
            }
        }
    }
}

/* Threads take chunks (a run of rows small enough to stay in the L2 cache,
 * for all the tokens) from a shared counter until none is left, so a
 * thread that gets less memory bandwidth for a while does less of the
 * work instead of making the other wait at the end. Which thread computes
 * an output does not change it. */
static void matmul_worker(void *arg, int ith, int nth)
{
    (void)ith;
    (void)nth;
    matmul_job *j = arg;
    const int64_t total = j->chunk_end[j->n_part - 1];
    for (;;) {
        int64_t c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (c >= total) return;
        int i = 0;
        while (c >= j->chunk_end[i]) i++;
        const matmul_part *p = &j->part[i];
        int64_t r0 = (c - (i ? j->chunk_end[i - 1] : 0)) * j->chunk_rows[i];
        int64_t r1 = r0 + j->chunk_rows[i] < p->w->ne1 ? r0 + j->chunk_rows[i] : p->w->ne1;
        matmul_rows(p, j->n_tok, r0, r1);
    }
}

/* A function over items [lo, hi) of n, the items split across the pool's
 * threads (pooled) or all on the calling thread. */
typedef void (*range_fn)(const void *arg, int64_t lo, int64_t hi);
typedef struct range_job {
    range_fn fn;
    const void *arg;
    int64_t n;
} range_job;

static void range_worker(void *vj, int ith, int nth)
{
    const range_job *j = vj;
    int64_t lo, hi;
    pool_split(j->n, ith, nth, &lo, &hi);
    if (lo < hi) j->fn(j->arg, lo, hi);
}

static void range_run(psi_context *ctx, bool pooled, range_fn fn, const void *arg, int64_t n)
{
    range_job j = {fn, arg, n};
    if (pooled)
        pool_run(ctx->pool, range_worker, &j);
    else
        range_worker(&j, 0, 1);
}

/* Activations of tokens [lo, hi) converted to a kernel's input type. */
typedef struct convert_job {
    from_float_fn from_float;
    const float *x;
    int64_t n;
    void *act;
    size_t act_row;
} convert_job;

static void convert_tokens(const void *arg, int64_t lo, int64_t hi)
{
    const convert_job *j = arg;
    for (int64_t t = lo; t < hi; t++)
        j->from_float(j->x + t * j->n, (uint8_t *)j->act + (size_t)t * j->act_row, j->n);
}

/* Inputs of fewer values than this are converted by the calling thread:
 * a pool run costs more than quantizing a decode step's few thousand. */
#define CONVERT_POOL_MIN 16384

/* out_i[t][r] = W_i[r] · x[t] for t < n_tok, r < W_i.ne1, i < n (all W_i
 * with x's row length), in one pool run. Activations are first converted
 * to each weight type's vec_dot_type (as llama.cpp does; once per type),
 * then the threads share out chunks of rows (whole groups of 8 for a
 * repacked matrix), each small enough to stay in the L2 cache while it is
 * multiplied by KERN_NY tokens at a time through kernels that decode a
 * weight block once for all the tokens, so every weight byte comes from
 * memory once per batch; one token streams the rows, in longer chunks
 * (MATMUL_DECODE_TILE_BYTES). */
static psi_status matmuls(psi_context *ctx, int n, const tensor *const *ws, const float *x, int32_t n_tok,
                          float *const *outs, const int64_t *out_strides)
{
    const kernels *ks = kernels_get();
    matmul_job j = {.n_part = n, .n_tok = n_tok};
    /* the distinct conversions the parts need, one after another in ctx->act
     * (a Q4_K_M file's repacked Q4_K wq and wk read one, its Q6_K wv another) */
    struct { from_float_fn ff; size_t row, off; } conv[MATMUL_MAX];
    int n_conv = 0, conv_of[MATMUL_MAX];
    size_t need = 0;
    for (int i = 0; i < n; i++) {
        const tensor *w = ws[i];
        matmul_part *p = &j.part[i];
        p->w = w;
        p->k = *kernels_type(ks, w->type);
        /* a type the reference computes but the table lacks (cannot happen
         * with today's tables: they start as a copy of the traits) */
        if (!p->k.vec_dot) p->k = (kern_type){.vec_dot = w->tt->vec_dot};
        p->path = matmul_path_of(w, &p->k, n_tok);
        p->step = p->path == MM_GEMM16 ? 16 : p->path == MM_GEMM8 ? 8 : p->path == MM_GEMM ? KERN_MX : 1;
        size_t tile = MATMUL_TILE_BYTES;
        if (n_tok == 1) {
            const size_t share = (size_t)w->ne1 * w->row_size / ((size_t)pool_size(ctx->pool) * 4);
            tile = share > MATMUL_DECODE_TILE_BYTES ? MATMUL_DECODE_TILE_BYTES : share > tile ? share : tile;
        }
        int64_t rows = (int64_t)(tile / w->row_size) / p->step * p->step;
        if (p->path == MM_GEMM && n_tok > 1 && rows < MATMUL_GEMM_ROWS) rows = MATMUL_GEMM_ROWS;
        j.chunk_rows[i] = rows < p->step ? p->step : rows;
        j.chunk_end[i] = (i ? j.chunk_end[i - 1] : 0) + (w->ne1 + j.chunk_rows[i] - 1) / j.chunk_rows[i];
        p->out = outs[i];
        p->out_stride = out_strides[i];
        p->act = x;
        p->act_row = (size_t)w->ne0 * sizeof(float);
        conv_of[i] = -1;
        uint32_t vdt = w->tt->vec_dot_type;
        if (vdt == PSI_TYPE_F32) continue;
        from_float_fn ff; /* gemm8's, vec_dot_ny's or gemm's own layout where it has one */
        if ((p->path == MM_GEMM8 || p->path == MM_GEMM16) && p->k.x8_from_float) {
            ff = p->k.x8_from_float;
            p->act_row = p->k.x8_act_row(w->ne0);
        } else if (p->path == MM_NY && p->k.ny_from_float) {
            ff = p->k.ny_from_float;
            p->act_row = p->k.ny_act_row(w->ne0);
        } else if (p->path == MM_GEMM && p->k.gemm_from_float) {
            ff = p->k.gemm_from_float;
            p->act_row = p->k.gemm_act_row(w->ne0);
        } else {
            ff = kernels_type(ks, vdt)->from_float;
            if (!ff) ff = type_get(vdt)->from_float;
            p->act_row = type_row_size(vdt, w->ne0);
        }
        int c = 0;
        while (c < n_conv && conv[c].ff != ff) c++;
        if (c == n_conv) {
            conv[c].ff = ff;
            conv[c].row = p->act_row;
            conv[c].off = need;
            need += p->act_row * (size_t)n_tok;
            n_conv++;
        }
        conv_of[i] = c;
    }
    if (need > ctx->act_size) {
        void *np = mem_realloc(ctx->act, need);
        if (!np) return PSI_ERR_NO_MEMORY;
        ctx->act = np;
        ctx->act_size = need;
    }
    for (int c = 0; c < n_conv; c++) {
        convert_job cj = {conv[c].ff, x, ws[0]->ne0, (uint8_t *)ctx->act + conv[c].off, conv[c].row};
        range_run(ctx, (int64_t)n_tok * ws[0]->ne0 >= CONVERT_POOL_MIN, convert_tokens, &cj, n_tok);
    }
    for (int i = 0; i < n; i++)
        if (conv_of[i] >= 0) j.part[i].act = (uint8_t *)ctx->act + conv[conv_of[i]].off;
    atomic_init(&j.next, 0);
    pool_run(ctx->pool, matmul_worker, &j);
    return PSI_OK;
}

static psi_status matmul(psi_context *ctx, const tensor *w, const float *x, int32_t n_tok, float *out,
                         int64_t out_stride)
{
    return matmuls(ctx, 1, &w, x, n_tok, &out, &out_stride);
}

/* cos/sin of pos·θ_i for each rotary pair i, θ_i = base^(−2i/n_rot) / freqs[i]
 * (Llama 3.1 scaling divides by rope_freqs). Computed in double, then
 * rounded, so the table is as exact as f32 allows. */
static void rope_table(const psi_model *m, int32_t pos, float *cs)
{
    int32_t half = m->hp.n_rot / 2;
    for (int32_t i = 0; i < half; i++) {
        double theta = pos * pow((double)m->hp.rope_base, -2.0 * i / m->hp.n_rot);
        if (m->rope_freqs) theta /= m->rope_freqs[i];
        cs[2 * i] = (float)cos(theta);
        cs[2 * i + 1] = (float)sin(theta);
    }
}

static void rope_apply(float *v, int32_t n_heads, int32_t head_dim, int32_t n_rot, const float *cs)
{
    for (int32_t h = 0; h < n_heads; h++) {
        float *x = v + (size_t)h * head_dim;
        for (int32_t i = 0; i < n_rot; i += 2) {
            float c = cs[i], s = cs[i + 1];
            float x0 = x[i], x1 = x[i + 1];
            x[i] = x0 * c - x1 * s;
            x[i + 1] = x0 * s + x1 * c;
        }
    }
}

/* Byte offset of a position's K (or V) of one KV head in the caches: each
 * (layer, sequence, KV head) owns n_ctx consecutive positions, so
 * attention streams a head's keys from contiguous memory. */
static size_t kv_at(const psi_context *ctx, int32_t il, int32_t seq, int32_t head, int32_t pos)
{
    const hparams *hp = &ctx->model->hp;
    size_t run = ((size_t)il * (size_t)ctx->n_seq + (size_t)seq) * (size_t)hp->n_head_kv + (size_t)head;
    return (run * (size_t)ctx->n_ctx + (size_t)pos) * ctx->kv_head;
}

/* One head's K or V (n values) into the cache at byte offset off, in the
 * cache's type (the kernel table's quantizer: F16, Q8_0). */
static void kv_store(const psi_context *ctx, void *base, size_t off, const float *src, int64_t n)
{
    uint8_t *dst = (uint8_t *)base + off;
    if (ctx->kv_type == PSI_TYPE_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    }
    from_float_fn ff = kernels_type(kernels_get(), ctx->kv_type)->from_float;
    if (!ff) ff = type_get(ctx->kv_type)->from_float;
    ff(src, dst, n);
}

/* SwiGLU of values [lo, hi): g = silu(g)·u. */
typedef struct swiglu_job {
    float *g;
    const float *u;
} swiglu_job;

static void swiglu_range(const void *arg, int64_t lo, int64_t hi)
{
    const swiglu_job *j = arg;
    kernels_get()->swiglu(j->g + lo, j->u + lo, hi - lo);
}

/* Causal attention for the batch: (tile, KV head) items taken from a
 * shared counter, the tiles with the most positions first, so the threads
 * end together however the prompt's causal work is spread. */
typedef struct attn_job {
    psi_context *ctx;
    int32_t layer;
    const int32_t *seq, *pos;
    int32_t n_tiles;
    atomic_int next;
} attn_job;

static void attn_worker(void *arg, int ith, int nth)
{
    (void)nth;
    attn_job *j = arg;
    psi_context *ctx = j->ctx;
    const hparams *hp = &ctx->model->hp;
    const int32_t hd = hp->head_dim, q_dim = hp->n_head * hd, group = hp->n_head / hp->n_head_kv;
    const attn_fn attn = kernels_get()->attn;
    for (;;) {
        int item = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (item >= j->n_tiles * hp->n_head_kv) return;
        const attn_tile *tl = &ctx->attn_tiles[item / hp->n_head_kv];
        const int32_t kvh = item % hp->n_head_kv;
        const size_t head_off = kv_at(ctx, j->layer, j->seq[tl->t0], kvh, 0);
        const size_t q_off = (size_t)tl->t0 * q_dim + (size_t)kvh * group * hd;
        kern_attn a = {
            .hd = hd, .n_tok = tl->n_tok, .n_grp = group,
            .q = ctx->q + q_off, .out = ctx->att + q_off, .tok_stride = q_dim,
            .last = j->pos + tl->t0,
            .k = (const uint8_t *)ctx->k_cache + head_off, .v = (const uint8_t *)ctx->v_cache + head_off,
            .kv_stride = ctx->kv_head, .kv_type = ctx->kv_type,
            .scale = 1.0f / sqrtf((float)hd),
            .work = ctx->attn_work + (size_t)ith * ctx->attn_work_size,
        };
        attn(&a);
    }
}

static int tile_cmp(const void *a, const void *b)
{
    const attn_tile *x = a, *y = b;
    return x->cost != y->cost ? (x->cost > y->cost ? -1 : 1) : (x->t0 > y->t0) - (x->t0 < y->t0);
}

/* The batch's attention tiles into ctx->attn_tiles, most costly first. */
static int32_t attn_tiles(psi_context *ctx, const int32_t *seq, const int32_t *pos, int32_t n)
{
    const hparams *hp = &ctx->model->hp;
    const int32_t per = attn_tile_rows(hp) / (hp->n_head / hp->n_head_kv);
    int32_t n_tiles = 0;
    for (int32_t t = 0; t < n;) {
        attn_tile *tl = &ctx->attn_tiles[n_tiles++];
        tl->t0 = t;
        tl->cost = pos[t];
        for (t++; t < n && t - tl->t0 < per && seq[t] == seq[tl->t0]; t++)
            if (pos[t] > tl->cost) tl->cost = pos[t];
        tl->n_tok = t - tl->t0;
    }
    qsort(ctx->attn_tiles, (size_t)n_tiles, sizeof *ctx->attn_tiles, tile_cmp);
    return n_tiles;
}

static psi_status ensure_scratch(psi_context *ctx, int32_t n)
{
    if (n <= ctx->cap_tokens) return PSI_OK;
    const hparams *hp = &ctx->model->hp;
    size_t embd = (size_t)hp->n_embd, q_dim = (size_t)hp->n_head * hp->head_dim,
           kv_dim = (size_t)hp->n_head_kv * hp->head_dim, ff = (size_t)hp->n_ff;
    struct { float **p; size_t per_tok; } bufs[] = {
        {&ctx->x, embd}, {&ctx->xb, embd}, {&ctx->xb2, embd}, {&ctx->q, q_dim}, {&ctx->k, kv_dim},
        {&ctx->v, kv_dim}, {&ctx->att, q_dim}, {&ctx->hb, ff}, {&ctx->hb2, ff},
        {&ctx->rope_cs, (size_t)hp->n_rot},
    };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        size_t bytes;
        if (size_mul_ovf(bufs[i].per_tok * sizeof(float), (size_t)n, &bytes)) return PSI_ERR_NO_MEMORY;
        /* aligned (mem_alloc_lines), so not realloc: the old contents are
         * scratch, rewritten by every call */
        float *p = mem_alloc_lines(bytes);
        if (!p) return PSI_ERR_NO_MEMORY;
        mem_free(*bufs[i].p);
        *bufs[i].p = p;
    }
    attn_tile *tiles = mem_realloc(ctx->attn_tiles, (size_t)n * sizeof *tiles);
    if (!tiles) return PSI_ERR_NO_MEMORY;
    ctx->attn_tiles = tiles;
    ctx->cap_tokens = n;
    return PSI_OK;
}

psi_status llama_decode(psi_context *ctx, const int32_t *tokens, const int32_t *seq, const int32_t *pos, int32_t n,
                        const int32_t *out, int32_t n_out, float *logits)
{
    const psi_model *m = ctx->model;
    const hparams *hp = &m->hp;
    int32_t embd = hp->n_embd, hd = hp->head_dim;
    int32_t q_dim = hp->n_head * hd, kv_dim = hp->n_head_kv * hd;
    psi_status rc = ensure_scratch(ctx, n);
    if (rc) return rc;

    const tensor *te = &m->tok_embd;
    for (int32_t t = 0; t < n; t++) {
        const uint8_t *row = (const uint8_t *)te->data + (size_t)tokens[t] * te->row_size;
        if (te->x8) { /* the token's row out of its group of 8 */
            kernels_type(kernels_get(), te->type)->unpack8(embd, (const uint8_t *)te->data + (size_t)(tokens[t] & ~7) * te->row_size,
                                                           tokens[t] & 7, ctx->embd_row);
            row = ctx->embd_row;
        }
        te->tt->to_float(row, ctx->x + (size_t)t * embd, embd);
        rope_table(m, pos[t], ctx->rope_cs + (size_t)t * hp->n_rot);
    }

    const int32_t n_tiles = attn_tiles(ctx, seq, pos, n);
    for (int32_t l = 0; l < hp->n_layer; l++) {
        const layer *L = &m->layers[l];
        for (int32_t t = 0; t < n; t++)
            rmsnorm(ctx->xb + (size_t)t * embd, ctx->x + (size_t)t * embd, L->attn_norm, embd, hp->rms_eps);
        const tensor *qkv[] = {&L->wq, &L->wk, &L->wv};
        float *qkv_out[] = {ctx->q, ctx->k, ctx->v};
        const int64_t qkv_stride[] = {q_dim, kv_dim, kv_dim};
        if ((rc = matmuls(ctx, 3, qkv, ctx->xb, n, qkv_out, qkv_stride))) return rc;
        for (int32_t t = 0; t < n; t++) {
            const float *cs = ctx->rope_cs + (size_t)t * hp->n_rot;
            rope_apply(ctx->q + (size_t)t * q_dim, hp->n_head, hd, hp->n_rot, cs);
            rope_apply(ctx->k + (size_t)t * kv_dim, hp->n_head_kv, hd, hp->n_rot, cs);
            for (int32_t h = 0; h < hp->n_head_kv; h++) {
                size_t at = kv_at(ctx, l, seq[t], h, pos[t]), from = (size_t)t * kv_dim + (size_t)h * hd;
                kv_store(ctx, ctx->k_cache, at, ctx->k + from, hd);
                kv_store(ctx, ctx->v_cache, at, ctx->v + from, hd);
            }
        }
        attn_job aj = {.ctx = ctx, .layer = l, .seq = seq, .pos = pos, .n_tiles = n_tiles};
        atomic_init(&aj.next, 0);
        pool_run(ctx->pool, attn_worker, &aj);
        if ((rc = matmul(ctx, &L->wo, ctx->att, n, ctx->xb2, embd))) return rc;
        for (size_t i = 0; i < (size_t)n * embd; i++) ctx->x[i] += ctx->xb2[i];

        for (int32_t t = 0; t < n; t++)
            rmsnorm(ctx->xb + (size_t)t * embd, ctx->x + (size_t)t * embd, L->ffn_norm, embd, hp->rms_eps);
        const tensor *ffn[] = {&L->w_gate, &L->w_up};
        float *ffn_out[] = {ctx->hb, ctx->hb2};
        const int64_t ffn_stride[] = {hp->n_ff, hp->n_ff};
        if ((rc = matmuls(ctx, 2, ffn, ctx->xb, n, ffn_out, ffn_stride))) return rc;
        /* a batch's exponentials are worth a pool run (pp512: ~67 M of them) */
        swiglu_job sj = {ctx->hb, ctx->hb2};
        range_run(ctx, n > 1, swiglu_range, &sj, (int64_t)n * hp->n_ff);
        if ((rc = matmul(ctx, &L->w_down, ctx->hb, n, ctx->xb2, embd))) return rc;
        for (size_t i = 0; i < (size_t)n * embd; i++) ctx->x[i] += ctx->xb2[i];
    }

    if (n_out == 0) return PSI_OK;
    for (int32_t k = 0; k < n_out; k++)
        rmsnorm(ctx->xb + (size_t)k * embd, ctx->x + (size_t)out[k] * embd, m->output_norm, embd, hp->rms_eps);
    return matmul(ctx, &m->output, ctx->xb, n_out, logits, hp->n_vocab);
}
