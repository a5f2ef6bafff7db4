/*
 * convert_llama2c.c — llama2.c checkpoint (+ tokenizer.bin) to GGUF.
 *
 * llama2.c's legacy format (run.c, export.py version 0): seven int32
 * (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a
 * negative vocab_size means the classifier is not shared with the
 * embeddings), then float32 arrays: token embeddings [vocab][dim], rms_att
 * [L][dim], wq [L][dim][dim], wk/wv [L][kv_dim][dim], wo [L][dim][dim],
 * rms_ffn [L][dim], w1/w3 [L][hidden][dim], w2 [L][dim][hidden], rms_final
 * [dim], two RoPE tables [seq_len][head_size/2] (ignored), then wcls
 * [vocab][dim] when unshared. Matrices are row-major [out][in], which is
 * GGUF's layout, and run.c rotates adjacent pairs, which is GGUF's RoPE
 * order, so no permutation is needed.
 * tokenizer.bin: int32 max_token_length, then per token: f32 score,
 * int32 length, bytes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <sys/mman.h>

#include "convert.h"
#include "gguf.h"
#include "types.h"
#include "util.h"

typedef struct mapped {
    const uint8_t *p;
    size_t size;
} mapped;

static psi_status map_file(const char *path, mapped *m, char *err, size_t n)
{
    return map_file_ro(path, &m->p, &m->size, err, n);
}

typedef struct l2c_config {
    int32_t dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len;
    bool shared;
} l2c_config;

/* Builds the tokenizer metadata. Token texts are kept in `texts` (owned). */
static psi_status add_vocab(gguf_writer *w, const char *path, const mapped *tf, int32_t vocab, char *err,
                            size_t n)
{
    char **texts = mem_calloc((size_t)vocab, sizeof(char *));
    float *scores = mem_alloc((size_t)vocab * sizeof(float));
    int32_t *types = mem_alloc((size_t)vocab * sizeof(int32_t));
    psi_status rc = PSI_ERR_NO_MEMORY;
    if (!texts || !scores || !types) goto out;
    size_t pos = 4;
    if (tf->size < 4) goto trunc;
    uint32_t max_len = rd_u32(tf->p);
    for (int32_t i = 0; i < vocab; i++) {
        if (tf->size - pos < 8) goto trunc;
        scores[i] = rd_f32(tf->p + pos);
        uint32_t len = rd_u32(tf->p + pos + 4);
        pos += 8;
        if (len > tf->size - pos || len > max_len || len > 4096) {
            err_setf(err, n, "%s: token %d has length %" PRIu32 " (max_token_length %" PRIu32
                             ", %zu bytes left)", path, i, len, max_len, tf->size - pos);
            rc = PSI_ERR_FORMAT;
            goto out;
        }
        const char *s = (const char *)tf->p + pos;
        pos += len;
        unsigned byte;
        char tail;
        char buf[16];
        /* the first three ids are <unk>, <s>, </s> in llama2.c vocabularies */
        if (i == 0 || i == 1 || i == 2) {
            static const char *const special[] = {"<unk>", "<s>", "</s>"};
            texts[i] = mem_strndup(special[i], strlen(special[i]));
            types[i] = i == 0 ? 2 : 3;
        } else if (len == 6 && (memcpy(buf, s, 6), buf[6] = 0, sscanf(buf, "<0x%2X%c", &byte, &tail) == 2) &&
                   tail == '>') {
            texts[i] = mem_strndup(s, len);
            types[i] = 6;
        } else {
            /* SentencePiece's word-boundary mark: llama2.c exports it as ' ' */
            size_t spaces = 0;
            for (uint32_t j = 0; j < len; j++) spaces += s[j] == ' ';
            texts[i] = mem_alloc(len + spaces * 2 + 1);
            if (texts[i]) {
                size_t k = 0;
                for (uint32_t j = 0; j < len; j++) {
                    if (s[j] == ' ') {
                        memcpy(texts[i] + k, "\xE2\x96\x81", 3);
                        k += 3;
                    } else {
                        texts[i][k++] = s[j] ? s[j] : ' ';
                    }
                }
                texts[i][k] = 0;
            }
            types[i] = 1;
        }
        if (!texts[i]) goto out;
    }
    if ((rc = gguf_writer_set_str(w, "tokenizer.ggml.model", "llama")) ||
        (rc = gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)texts, (uint64_t)vocab)) ||
        (rc = gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_F32, scores, (uint64_t)vocab)) ||
        (rc = gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_I32, types, (uint64_t)vocab)) ||
        (rc = gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0)) ||
        (rc = gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1)) ||
        (rc = gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2)))
        goto out;
    rc = PSI_OK;
    goto out;
trunc:
    err_setf(err, n, "%s: file ends before all %d tokens were read (is it the tokenizer for this model?)",
             path, vocab);
    rc = PSI_ERR_FORMAT;
out:
    for (int32_t i = 0; texts && i < vocab; i++) mem_free(texts[i]); /* the writer keeps copies */
    mem_free(texts);
    mem_free(scores);
    mem_free(types);
    return rc;
}

psi_status l2c_build(const void *model, size_t model_size, const char *model_name, const void *tok,
                     size_t tok_size, const char *tok_name, gguf_writer **out, char *err, size_t n)
{
    *out = NULL;
    mapped mf = {model, model_size}, tf = {tok, tok_size};
    l2c_config c = {0};
    psi_status rc;
    if (mf.size < 28) {
        err_setf(err, n, "%s: %zu bytes is too short for a llama2.c header", model_name, mf.size);
        return PSI_ERR_FORMAT;
    }
    int32_t h[7];
    memcpy(h, mf.p, sizeof h);
    c.dim = h[0], c.hidden = h[1], c.n_layers = h[2], c.n_heads = h[3], c.n_kv_heads = h[4];
    c.shared = h[5] > 0;
    c.vocab = h[5] > 0 ? h[5] : (h[5] == INT32_MIN ? 0 : -h[5]);
    c.seq_len = h[6];
    if (c.dim <= 0 || c.hidden <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 ||
        c.vocab < 3 || c.seq_len <= 0 || c.dim > 65536 || c.hidden > 1 << 20 || c.n_layers > 1024 ||
        c.vocab > 1 << 22 || c.seq_len > 1 << 22 || c.dim % c.n_heads || c.n_heads % c.n_kv_heads ||
        (c.dim / c.n_heads) % 2) {
        err_setf(err, n, "%s: implausible llama2.c header (dim %d, hidden %d, layers %d, heads %d/%d, "
                         "vocab %d, seq_len %d)",
                 model_name, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
        return PSI_ERR_FORMAT;
    }
    uint64_t dim = (uint64_t)c.dim, hid = (uint64_t)c.hidden, L = (uint64_t)c.n_layers,
             V = (uint64_t)c.vocab, hs = dim / (uint64_t)c.n_heads, kv = hs * (uint64_t)c.n_kv_heads;
    /* Expected float count (all small enough that uint64 cannot overflow). */
    uint64_t floats = V * dim + L * dim + L * dim * dim + 2 * L * dim * kv + L * dim * dim + L * dim +
                      3 * L * dim * hid + dim + (uint64_t)c.seq_len * hs + (c.shared ? 0 : V * dim);
    uint64_t want = 28 + floats * 4;
    if (mf.size != want) {
        err_setf(err, n, "%s: file is %zu bytes, but its header (dim %d, %d layers, vocab %d) implies %" PRIu64,
                 model_name, mf.size, c.dim, c.n_layers, c.vocab, want);
        return PSI_ERR_FORMAT;
    }
    gguf_writer *w = gguf_writer_new();
    if (!w) goto oom;
    const char *slash = strrchr(model_name, '/');
    if ((rc = gguf_writer_set_str(w, "general.architecture", "llama")) ||
        (rc = gguf_writer_set_str(w, "general.name", slash ? slash + 1 : model_name)) ||
        (rc = gguf_writer_set_u32(w, "llama.context_length", (uint32_t)c.seq_len)) ||
        (rc = gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)c.dim)) ||
        (rc = gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)c.hidden)) ||
        (rc = gguf_writer_set_u32(w, "llama.block_count", (uint32_t)c.n_layers)) ||
        (rc = gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)c.n_heads)) ||
        (rc = gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c.n_kv_heads)) ||
        (rc = gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)hs)) ||
        (rc = gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f)) ||
        (rc = gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f)))
        goto fail;
    if ((rc = add_vocab(w, tok_name, &tf, c.vocab, err, n))) {
        if (rc == PSI_ERR_NO_MEMORY) goto oom;
        gguf_writer_free(w);
        return rc;
    }

    const float *p = (const float *)(const void *)(mf.p + 28);
    const float *embd = p;
    p += V * dim;
    const float *rms_att = p; p += L * dim;
    const float *wq = p; p += L * dim * dim;
    const float *wk = p; p += L * dim * kv;
    const float *wv = p; p += L * dim * kv;
    const float *wo = p; p += L * dim * dim;
    const float *rms_ffn = p; p += L * dim;
    const float *w1 = p; p += L * dim * hid;
    const float *w2 = p; p += L * dim * hid;
    const float *w3 = p; p += L * dim * hid;
    const float *rms_final = p; p += dim;
    p += (uint64_t)c.seq_len * hs; /* freq_cis_real + freq_cis_imag */
    const float *wcls = c.shared ? NULL : p;

    uint64_t ne[2];
#define ADD(name, d0, d1, ptr)                                                                  \
    do {                                                                                        \
        ne[0] = (d0), ne[1] = (d1);                                                             \
        if ((rc = gguf_writer_add_tensor(w, name, PSI_TYPE_F32, (d1) ? 2 : 1, ne, ptr))) goto fail; \
    } while (0)
    ADD("token_embd.weight", dim, V, embd);
    ADD("output_norm.weight", dim, 0, rms_final);
    if (wcls) ADD("output.weight", dim, V, wcls);
    char names[9][64];
    for (uint64_t l = 0; l < L; l++) {
        static const char *const base[9] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                            "ffn_norm", "ffn_gate", "ffn_down", "ffn_up"};
        for (int k = 0; k < 9; k++) snprintf(names[k], sizeof names[k], "blk.%" PRIu64 ".%s.weight", l, base[k]);
        ADD(names[0], dim, 0, rms_att + l * dim);
        ADD(names[1], dim, dim, wq + l * dim * dim);
        ADD(names[2], dim, kv, wk + l * dim * kv);
        ADD(names[3], dim, kv, wv + l * dim * kv);
        ADD(names[4], dim, dim, wo + l * dim * dim);
        ADD(names[5], dim, 0, rms_ffn + l * dim);
        ADD(names[6], dim, hid, w1 + l * dim * hid);
        ADD(names[7], hid, dim, w2 + l * dim * hid);
        ADD(names[8], dim, hid, w3 + l * dim * hid);
    }
#undef ADD
    *out = w;
    return PSI_OK;
fail:
    if (rc != PSI_ERR_NO_MEMORY) {
        err_setf(err, n, "%s: cannot describe the GGUF (%s)", model_name, psi_status_str(rc));
        gguf_writer_free(w);
        return rc;
    }
oom:
    gguf_writer_free(w);
    err_setf(err, n, "%s: out of memory", model_name);
    return PSI_ERR_NO_MEMORY;
}

psi_status psi_convert_llama2c(const char *model_path, const char *tokenizer_path,
                               const char *out_path, char *err, size_t n)
{
    if (!model_path || !tokenizer_path || !out_path) return PSI_ERR_INVALID_ARG;
    mapped mf = {0}, tf = {0};
    gguf_writer *w = NULL;
    psi_status rc = check_output(out_path, err, n);
    if (rc || (rc = check_not_input(out_path, model_path, err, n)) ||
        (rc = check_not_input(out_path, tokenizer_path, err, n)) ||
        (rc = map_file(model_path, &mf, err, n)) || (rc = map_file(tokenizer_path, &tf, err, n)) ||
        (rc = l2c_build(mf.p, mf.size, model_path, tf.p, tf.size, tokenizer_path, &w, err, n)))
        goto out;
    rc = gguf_writer_write(w, out_path, err, n);
out:
    gguf_writer_free(w);
    if (mf.p) munmap((void *)mf.p, mf.size);
    if (tf.p) munmap((void *)tf.p, tf.size);
    return rc;
}
