/*
 * model.h — what a loaded model and an evaluation context hold. Shared by
 * model_llama.c (weights, forward pass), context.c and api.c; not public.
 */
#ifndef PSI_MODEL_H
#define PSI_MODEL_H

#include "gguf.h"
#include "threadpool.h"
#include "tokenizer.h"
#include "types.h"

#define PSI_ERRMSG_SIZE 512
/* A batch is evaluated in slices of at most this many tokens, which bounds
 * the scratch memory; results do not depend on it (every per-token
 * computation is independent of the others in its slice). */
#define PSI_UBATCH 256

/* A weight matrix borrowed from the mapping: ne0 values per row, ne1 rows. */
typedef struct tensor {
    const void *data;
    uint32_t type;
    int64_t ne0, ne1;
    size_t row_size;  /* bytes per row */
    const type_traits *tt;
    bool x8;          /* repacked in groups of 8 rows (kernels.h repack8): only gemm8 reads it */
} tensor;

typedef struct layer {
    float *attn_norm;   /* [n_embd] (dequantized copy) */
    tensor wq;          /* [n_embd] x [n_head*head_dim] */
    tensor wk, wv;      /* [n_embd] x [n_head_kv*head_dim] */
    tensor wo;          /* [n_head*head_dim] x [n_embd] */
    float *ffn_norm;    /* [n_embd] */
    tensor w_gate, w_up; /* [n_embd] x [n_ff] */
    tensor w_down;      /* [n_ff] x [n_embd] */
} layer;

typedef struct hparams {
    int32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx_train, n_rot;
    float rms_eps, rope_base;
} hparams;

/* Attention runs per (tile, KV head): a tile is a run of up to
 * attn_tile_rows / (query heads per KV head) consecutive batch tokens of
 * one sequence, so each block of cached K/V is converted once for that
 * many rows (a prompt's 8 tokens × 4 heads on Llama 3.2). */
#define ATTN_TILE_ROWS 32
static inline int32_t attn_tile_rows(const hparams *hp)
{
    int32_t group = hp->n_head / hp->n_head_kv;
    return group > ATTN_TILE_ROWS ? group : ATTN_TILE_ROWS / group * group;
}
typedef struct attn_tile {
    int32_t t0, n_tok; /* batch tokens t0 .. t0 + n_tok - 1 */
    int32_t cost;      /* the last one's position: tiles run most costly first */
} attn_tile;

struct psi_model {
    gguf *g;
    vocab *vocab;
    hparams hp;
    tensor tok_embd;     /* [n_embd] x [n_vocab] */
    float *output_norm;  /* [n_embd] */
    tensor output;       /* [n_embd] x [n_vocab]; == tok_embd when tied */
    bool tied;
    bool vocab_only;     /* loaded with psi_model_params.vocab_only: no tensors */
    float *rope_freqs;   /* [n_rot/2] divisors, NULL = none */
    layer *layers;       /* [n_layer] */
    char **meta_strs;    /* [n_kv]: NUL-terminated copy of each string value, else NULL */
    char desc[160];
    int64_t n_repacked;  /* bytes of weights repacked for the kernels in use */
    bool own;            /* the file's bytes were read into the process's own memory (gguf_read_in) */
    char errmsg[PSI_ERRMSG_SIZE];
};

struct psi_context {
    psi_model *model;
    threadpool *pool;
    int32_t n_ctx;         /* tokens per sequence */
    int32_t n_seq;
    int32_t *seq_n_past;   /* [n_seq] tokens cached per sequence */
    psi_type kv_type;
    size_t kv_head;        /* bytes of one head's K (or V) at one position */
    void *k_cache;         /* [n_layer][n_seq][n_head_kv][n_ctx] heads of kv_type (kv_head bytes each; */
    void *v_cache;         /*   model_llama.c kv_at) */
    /* the last batch: token, sequence, position, logits row (-1: none) per entry */
    int32_t *b_tok, *b_seq, *b_pos, *b_row, *b_out;
    int32_t *seq_tmp;      /* [n_seq] */
    int32_t cap_batch;
    /* scratch, grown on demand for the batch size */
    int32_t cap_tokens;
    float *x, *xb, *xb2, *q, *k, *v, *att, *hb, *hb2, *rope_cs;
    void *act;             /* activations converted to a weight's vec_dot_type */
    void *embd_row;        /* one token_embd row, when token_embd is repacked */
    size_t act_size;
    float *attn_work;      /* [n_threads][attn_work_size] */
    size_t attn_work_size;
    struct attn_tile *attn_tiles; /* [cap_tokens] */
    /* logits of the last decode */
    float *logits;         /* [n_logits][n_vocab] */
    int32_t cap_logits;
    int32_t n_batch;       /* size of the last batch */
    char errmsg[PSI_ERRMSG_SIZE];
};

psi_status llama_load(psi_model *m, char *err, size_t err_size);
void llama_free_weights(psi_model *m);
/* Evaluate n tokens (at most PSI_UBATCH): token t belongs to sequence
 * seq[t] at position pos[t]; its K/V go to that row of the cache and it
 * attends to positions 0..pos[t] of its own sequence. Writes the logits of
 * the batch entries out[0..n_out) (ascending) to logits [n_out][n_vocab].
 * The caller keeps the per-sequence counts. */
psi_status llama_decode(psi_context *ctx, const int32_t *tokens, const int32_t *seq, const int32_t *pos, int32_t n,
                        const int32_t *out, int32_t n_out, float *logits);

#endif
