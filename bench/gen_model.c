/*
 * gen_model.c — writes a GGUF with seeded random weights in the exact shape
 * of a Llama model, for benchmarks (speed depends on shapes and types, not
 * on what the weights say). Default shape: Llama-3.2-1B — n_embd 2048,
 * 16 layers, 32 heads, 8 KV heads (head_dim 64), n_ff 8192, vocab 128256,
 * tied embeddings, rope base 500000 with Llama 3.1-style frequency scaling
 * (rope_freqs.weight, factor 32). Weights are F16 (norms F32), roughly
 * normal with sd 0.02; the tokenizer is copied from a vocabulary GGUF.
 *
 *   gen_model -o OUT.gguf --vocab llama3-vocab.gguf [--seed N]
 *             [--embd N --layers N --heads N --kv-heads N --ff N]
 *
 * Uses the library's internal GGUF writer; not installed, not a test.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "util.h"

static uint64_t state;

static float gauss(void) /* sum of 4 uniforms: mean 0, sd 1, bounded */
{
    float s = 0;
    for (int i = 0; i < 4; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        s += (float)(state >> 40) / (float)(1 << 24);
    }
    return (s - 2.0f) * 1.7320508f;
}

static void *f16_matrix(uint64_t n)
{
    uint16_t *p = malloc(n * sizeof *p);
    if (!p) return NULL;
    for (uint64_t i = 0; i < n; i++) p[i] = f32_to_fp16(0.02f * gauss());
    return p;
}

static void *ones(uint64_t n)
{
    float *p = malloc(n * sizeof *p);
    if (!p) return NULL;
    for (uint64_t i = 0; i < n; i++) p[i] = 1.0f + 0.05f * gauss();
    return p;
}

int main(int argc, char **argv)
{
    const char *out = NULL, *vocab_path = NULL;
    long embd = 2048, layers = 16, heads = 32, kv_heads = 8, ff = 8192;
    state = 20261126;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "-o")) out = v;
        else if (!strcmp(a, "--vocab")) vocab_path = v;
        else if (!strcmp(a, "--seed")) state = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--embd")) embd = atol(v);
        else if (!strcmp(a, "--layers")) layers = atol(v);
        else if (!strcmp(a, "--heads")) heads = atol(v);
        else if (!strcmp(a, "--kv-heads")) kv_heads = atol(v);
        else if (!strcmp(a, "--ff")) ff = atol(v);
        else {
            fprintf(stderr, "gen_model: unknown option %s\n", a);
            return 2;
        }
    }
    if (!out || !vocab_path || embd <= 0 || layers <= 0 || heads <= 0 || kv_heads <= 0 || ff <= 0 ||
        embd % heads || heads % kv_heads || embd % 256 || ff % 256) {
        fprintf(stderr, "usage: gen_model -o OUT.gguf --vocab VOCAB.gguf [--seed N] [--embd N --layers N "
                        "--heads N --kv-heads N --ff N] (multiples of 256 for embd and ff)\n");
        return 2;
    }
    char err[512];
    gguf *vg = NULL;
    if (gguf_open(vocab_path, &vg, err, sizeof err) != PSI_OK) {
        fprintf(stderr, "gen_model: %s\n", err);
        return 1;
    }
    int64_t tk = gguf_find_key(vg, "tokenizer.ggml.tokens");
    if (tk < 0) {
        fprintf(stderr, "gen_model: %s has no tokenizer.ggml.tokens\n", vocab_path);
        return 1;
    }
    uint64_t n_vocab = vg->kv[tk].n;
    long head_dim = embd / heads, kv_dim = head_dim * kv_heads;

    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "general.type", "model");
    gguf_writer_set_str(w, "general.name", "psi bench model (random weights)");
    gguf_writer_set_u32(w, "general.file_type", 1);
    gguf_writer_set_u32(w, "llama.context_length", 131072);
    gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)embd);
    gguf_writer_set_u32(w, "llama.block_count", (uint32_t)layers);
    gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)ff);
    gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)heads);
    gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)kv_heads);
    gguf_writer_set_u32(w, "llama.attention.key_length", (uint32_t)head_dim);
    gguf_writer_set_u32(w, "llama.attention.value_length", (uint32_t)head_dim);
    gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)head_dim);
    gguf_writer_set_f32(w, "llama.rope.freq_base", 500000.0f);
    gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)n_vocab);
    for (uint64_t i = 0; i < vg->n_kv; i++)
        if (vg->kv[i].key.len > 10 && !memcmp(vg->kv[i].key.ptr, "tokenizer.", 10) &&
            !gguf_str_eq(vg->kv[i].key, "tokenizer.chat_template"))
            gguf_writer_copy_kv(w, vg, i);

    void *bufs[16 * 1024];
    int nb = 0;
#define ADD(name, type, nd, d0, d1, data)                                                       \
    do {                                                                                        \
        uint64_t ne_[2] = {(uint64_t)(d0), (uint64_t)(d1)};                                     \
        void *p_ = (data);                                                                      \
        if (!p_ || nb == 16 * 1024) {                                                           \
            fprintf(stderr, "gen_model: out of memory\n");                                      \
            return 1;                                                                           \
        }                                                                                       \
        bufs[nb++] = p_;                                                                        \
        gguf_writer_add_tensor(w, name, type, nd, ne_, p_);                                     \
    } while (0)

    ADD("token_embd.weight", PSI_TYPE_F16, 2, embd, n_vocab, f16_matrix((uint64_t)embd * n_vocab));
    ADD("output_norm.weight", PSI_TYPE_F32, 1, embd, 1, ones((uint64_t)embd));
    /* Llama 3.1 rope scaling (factor 32, low 1, high 4, original context 8192) */
    float *rf = malloc((size_t)head_dim / 2 * sizeof *rf);
    for (long i = 0; rf && i < head_dim / 2; i++) {
        double freq = pow(500000.0, -2.0 * (double)i / (double)head_dim), wl = 2 * M_PI / freq;
        double lo_wl = 8192 / 1.0, hi_wl = 8192 / 4.0, f = 32;
        if (wl < hi_wl) rf[i] = 1.0f;
        else if (wl > lo_wl) rf[i] = (float)f;
        else {
            double smooth = (8192 / wl - 1.0) / (4.0 - 1.0);
            rf[i] = (float)(1.0 / ((1 - smooth) / f + smooth));
        }
    }
    ADD("rope_freqs.weight", PSI_TYPE_F32, 1, head_dim / 2, 1, rf);
    for (long l = 0; l < layers; l++) {
        char name[64];
#define LAYER(suffix, type, nd, d0, d1, data)                                                   \
    snprintf(name, sizeof name, "blk.%ld.%s", l, suffix);                                       \
    ADD(name, type, nd, d0, d1, data)
        LAYER("attn_norm.weight", PSI_TYPE_F32, 1, embd, 1, ones((uint64_t)embd));
        LAYER("attn_q.weight", PSI_TYPE_F16, 2, embd, embd, f16_matrix((uint64_t)embd * embd));
        LAYER("attn_k.weight", PSI_TYPE_F16, 2, embd, kv_dim, f16_matrix((uint64_t)embd * kv_dim));
        LAYER("attn_v.weight", PSI_TYPE_F16, 2, embd, kv_dim, f16_matrix((uint64_t)embd * kv_dim));
        LAYER("attn_output.weight", PSI_TYPE_F16, 2, embd, embd, f16_matrix((uint64_t)embd * embd));
        LAYER("ffn_norm.weight", PSI_TYPE_F32, 1, embd, 1, ones((uint64_t)embd));
        LAYER("ffn_gate.weight", PSI_TYPE_F16, 2, embd, ff, f16_matrix((uint64_t)embd * ff));
        LAYER("ffn_up.weight", PSI_TYPE_F16, 2, embd, ff, f16_matrix((uint64_t)embd * ff));
        LAYER("ffn_down.weight", PSI_TYPE_F16, 2, ff, embd, f16_matrix((uint64_t)ff * embd));
#undef LAYER
        fprintf(stderr, "\rgen_model: layer %ld/%ld", l + 1, layers);
    }
    fprintf(stderr, "\ngen_model: writing %s\n", out);
    psi_status rc = gguf_writer_write(w, out, err, sizeof err);
    if (rc != PSI_OK) fprintf(stderr, "gen_model: %s\n", err);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    gguf_writer_free(w);
    gguf_close(vg);
    return rc == PSI_OK ? 0 : 1;
}
