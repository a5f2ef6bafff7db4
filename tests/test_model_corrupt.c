/*
 * test_model_corrupt.c — the model loader against hand-made broken models:
 * stories260K.gguf (n_embd 64, 8 heads, 4 KV heads, 5 layers, n_ff 172,
 * vocabulary 512) rewritten with one thing wrong — a hyperparameter
 * missing, zero, too large or inconsistent with another, a tensor missing
 * or of the wrong shape, an unsupported rope scaling. Each must be refused
 * by psi_model_load with a one-line message naming what is wrong, and by
 * `psi run` with exit status 1 (not a signal) and one line on stderr. A few
 * unusual but consistent shapes (heads of 4 and 2 values) must load and
 * generate. The GGUF reader's own checks are test_gguf_corrupt's.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "psi.h"
#include "testutil.h"

typedef struct edit {
    const char *what;     /* the case, in messages */
    const char *key;      /* metadata key to drop or set (NULL: none) */
    char kind;            /* 'd' drop, 'u' u32, 'f' f32, 's' string */
    uint32_t u;
    float f;
    const char *s;
    const char *tensor;   /* tensor to drop ('d') or give transposed ('t') */
    char tkind;
    const char *key2;     /* a second u32 to set (consistent shapes) */
    uint32_t u2;
    const char *expect;   /* part of the message; NULL: the model must load and run */
} edit;

static const edit cases[] = {
    {"no head count", "llama.attention.head_count", 'd', 0, 0, NULL, NULL, 0, NULL, 0,
     "required metadata 'llama.attention.head_count' is missing"},
    {"no embedding length", "llama.embedding_length", 'd', 0, 0, NULL, NULL, 0, NULL, 0,
     "'llama.embedding_length' is missing"},
    {"zero heads", "llama.attention.head_count", 'u', 0, 0, NULL, NULL, 0, NULL, 0, "out of range"},
    {"zero layers", "llama.block_count", 'u', 0, 0, NULL, NULL, 0, NULL, 0, "out of range"},
    {"huge embedding", "llama.embedding_length", 'u', 0x80000000u, 0, NULL, NULL, 0, NULL, 0, "out of range"},
    {"zero context", "llama.context_length", 'u', 0, 0, NULL, NULL, 0, NULL, 0, "out of range"},
    {"head count not dividing", "llama.attention.head_count", 'u', 7, 0, NULL, NULL, 0, NULL, 0,
     "not a multiple of the head count"},
    {"kv heads not dividing", "llama.attention.head_count_kv", 'u', 3, 0, NULL, NULL, 0, NULL, 0,
     "not a multiple of head_count_kv"},
    {"kv heads above heads", "llama.attention.head_count_kv", 'u', 16, 0, NULL, NULL, 0, NULL, 0,
     "not a multiple of head_count_kv"},
    {"odd rope dims", "llama.rope.dimension_count", 'u', 3, 0, NULL, NULL, 0, NULL, 0, "must be even"},
    {"rope dims above head size", "llama.rope.dimension_count", 'u', 16, 0, NULL, NULL, 0, NULL, 0,
     "must be even and at most the head size"},
    {"value length != key length", "llama.attention.value_length", 'u', 16, 0, NULL, NULL, 0, NULL, 0,
     "key_length 8 != value_length 16 is not supported"},
    {"zero rms epsilon", "llama.attention.layer_norm_rms_epsilon", 'f', 0, 0.0f, NULL, NULL, 0, NULL, 0,
     "invalid rms epsilon"},
    {"rope base 1", "llama.rope.freq_base", 'f', 0, 1.0f, NULL, NULL, 0, NULL, 0, "rope base"},
    {"rope base of the wrong type", "llama.rope.freq_base", 's', 0, 0, "10000", NULL, 0, NULL, 0,
     "llama.rope.freq_base"},
    {"yarn", "llama.rope.scaling.type", 's', 0, 0, "yarn", NULL, 0, NULL, 0, "rope scaling type 'yarn'"},
    {"one layer too many", "llama.block_count", 'u', 6, 0, NULL, NULL, 0, NULL, 0,
     "tensor 'blk.5.attn_norm.weight' is missing"},
    {"feed-forward length off", "llama.feed_forward_length", 'u', 171, 0, NULL, NULL, 0, NULL, 0, "has shape"},
    {"missing q", NULL, 0, 0, 0, NULL, "blk.0.attn_q.weight", 'd', NULL, 0,
     "tensor 'blk.0.attn_q.weight' is missing"},
    {"missing output norm", NULL, 0, 0, 0, NULL, "output_norm.weight", 'd', NULL, 0,
     "tensor 'output_norm.weight' is missing"},
    {"ffn_up transposed", NULL, 0, 0, 0, NULL, "blk.3.ffn_up.weight", 't', NULL, 0,
     "tensor 'blk.3.ffn_up.weight' has shape [172, 64]"},
    {"token_embd transposed", NULL, 0, 0, 0, NULL, "token_embd.weight", 't', NULL, 0,
     "tensor 'token_embd.weight' has shape [512, 64]"},
    /* consistent, if unusual: q and k keep their sizes */
    {"16 heads of 4", "llama.attention.head_count", 'u', 16, 0, NULL, NULL, 0, "llama.attention.head_count_kv", 8,
     NULL},
    {"32 heads of 2", "llama.attention.head_count", 'u', 32, 0, NULL, NULL, 0, "llama.attention.head_count_kv", 16,
     NULL},
};

/* The base model with edit e applied, written to path. */
static int make(const gguf *g, const edit *e, const char *path)
{
    gguf_writer *w = gguf_writer_new();
    psi_status rc = w ? PSI_OK : PSI_ERR_NO_MEMORY;
    for (uint64_t i = 0; i < g->n_kv && !rc; i++) {
        const gguf_str k = g->kv[i].key;
        if ((e->key && gguf_str_eq(k, e->key)) || (e->key2 && gguf_str_eq(k, e->key2))) continue;
        if (e->key2 && gguf_str_eq(k, "llama.rope.dimension_count")) continue; /* head size shrinks */
        rc = gguf_writer_copy_kv(w, g, i);
    }
    if (!rc && e->key) {
        if (e->kind == 'u') rc = gguf_writer_set_u32(w, e->key, e->u);
        else if (e->kind == 'f') rc = gguf_writer_set_f32(w, e->key, e->f);
        else if (e->kind == 's') rc = gguf_writer_set_str(w, e->key, e->s);
    }
    if (!rc && e->key2) rc = gguf_writer_set_u32(w, e->key2, e->u2);
    for (uint64_t i = 0; i < g->n_tensors && !rc; i++) {
        const gguf_tensor *t = &g->tensors[i];
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        bool mine = e->tensor && !strcmp(name, e->tensor);
        if (mine && e->tkind == 'd') continue;
        uint64_t ne[GGUF_MAX_DIMS];
        memcpy(ne, t->ne, sizeof ne);
        if (mine && e->tkind == 't') ne[0] = t->ne[1], ne[1] = t->ne[0];
        rc = gguf_writer_add_tensor(w, name, t->type, t->n_dims, ne, t->data);
    }
    char err[512] = "";
    if (!rc) rc = gguf_writer_write(w, path, err, sizeof err);
    gguf_writer_free(w);
    CHECKF(rc == PSI_OK, "%s: cannot write the model (%s)", e->what, err);
    return rc == PSI_OK;
}

static void one(const gguf *g, const edit *e, int k)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/case%02d.gguf", tu_tmpdir("model_corrupt"), k);
    if (!make(g, e, path)) return;
    psi_model *m = NULL;
    char err[1024] = "";
    psi_status rc = psi_model_load(path, NULL, &m, err, sizeof err);
    if (!e->expect) {
        CHECKF(rc == PSI_OK && m, "%s: refused: %s", e->what, err);
        psi_model_free(m);
        const char *argv[] = {tu_psi(), "run", "-m", path, "-p", "Once upon a time", "-n", "8", "-t", "2",
                              "--temp", "0", NULL};
        char *out = NULL, *perr = NULL;
        int st = tu_run(argv, &out, &perr);
        CHECKF(st == 0 && perr && strstr(perr, "generated"), "%s: psi run: %d %s", e->what, st, perr ? perr : "");
        free(out);
        free(perr);
        return;
    }
    CHECKF(rc != PSI_OK && !m && strstr(err, e->expect) && !strchr(err, '\n'), "%s: got %d \"%s\"", e->what, rc,
           err);
    psi_model_free(m);
    const char *argv[] = {tu_psi(), "run", "-m", path, "-p", "Once", "-n", "1", NULL};
    char *perr = NULL;
    int st = tu_run(argv, NULL, &perr);
    size_t len = perr ? strlen(perr) : 0;
    CHECKF(st == 1 && perr && strstr(perr, e->expect) && len && strchr(perr, '\n') == perr + len - 1,
           "%s: psi run: status %d, stderr \"%s\"", e->what, st, perr ? perr : "");
    free(perr);
}

int main(void)
{
    gguf *g = NULL;
    char err[512];
    CHECKF(gguf_open(tu_data("models/stories260K.gguf"), &g, err, sizeof err) == PSI_OK, "%s", err);
    if (!g) return tu_finish("test_model_corrupt");
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) one(g, &cases[k], (int)k);
    gguf_close(g);
    return tu_finish("test_model_corrupt");
}
