/*
 * test_quantize.c — psi_quantize's choice of tensor types, on small
 * hand-made llama GGUFs: llama.cpp's per-tensor rules for each file type
 * (output matrix, the _M mixes' use_more_bits layers counted in layer
 * order, tied embeddings), the fallback types for row lengths a type cannot
 * hold, 1-D tensors kept, general.file_type, progress reports and errors.
 * The bytes of real models against llama.cpp's files are test_reference's
 * job. Expected types are worked out here from llama.cpp's rules as
 * written in src/llama-quant.cpp, not taken from psi.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "testutil.h"
#include "types.h"
#include "util.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static float rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 - 0.5);
}

typedef struct spec {
    const char *name;
    uint64_t ne0, ne1; /* ne1 = 0: a 1-D tensor */
} spec;

/* Writes a llama GGUF with F32 tensors of random values. */
static void write_model(const char *path, uint32_t n_layer, const spec *t, int n)
{
    gguf_writer *w = gguf_writer_new();
    CHECK(w != NULL);
    if (!w) return;
    CHECK(gguf_writer_set_str(w, "general.architecture", "llama") == PSI_OK);
    CHECK(gguf_writer_set_u32(w, "llama.block_count", n_layer) == PSI_OK);
    CHECK(gguf_writer_set_u32(w, "llama.attention.head_count", 4) == PSI_OK);
    CHECK(gguf_writer_set_u32(w, "general.file_type", 0) == PSI_OK);
    float **data = calloc((size_t)n, sizeof *data);
    for (int i = 0; i < n; i++) {
        uint64_t ne[2] = {t[i].ne0, t[i].ne1 ? t[i].ne1 : 1};
        size_t count = (size_t)(ne[0] * ne[1]);
        data[i] = malloc(count * sizeof(float));
        for (size_t k = 0; k < count; k++) data[i][k] = rnd();
        CHECK(gguf_writer_add_tensor(w, t[i].name, PSI_TYPE_F32, t[i].ne1 ? 2 : 1, ne, data[i]) == PSI_OK);
    }
    char err[256];
    CHECKF(gguf_writer_write(w, path, err, sizeof err) == PSI_OK, "%s", err);
    for (int i = 0; i < n; i++) free(data[i]);
    free(data);
    gguf_writer_free(w);
}

typedef struct progress_log {
    int calls;
    uint64_t last_done, total;
    bool monotonic;
} progress_log;

static void on_progress(void *user, const char *tensor, psi_type type, uint64_t done, uint64_t total)
{
    progress_log *p = user;
    p->monotonic &= done >= p->last_done && done <= total && tensor && tensor[0] && psi_type_name(type);
    p->calls++;
    p->last_done = done;
    p->total = total;
}

/* Quantizes in → out as ftype; returns the opened output (NULL on failure). */
static gguf *quantize(const char *in, const char *out, psi_ftype ftype, progress_log *log)
{
    psi_quantize_params p = psi_quantize_default_params();
    p.ftype = ftype;
    p.n_threads = 2;
    if (log) {
        p.progress = on_progress;
        p.progress_user = log;
    }
    char err[512] = "";
    psi_status rc = psi_quantize(in, out, &p, err, sizeof err);
    CHECKF(rc == PSI_OK, "ftype %d: %s", (int)ftype, err);
    if (rc) return NULL;
    gguf *g = NULL;
    CHECKF(gguf_open(out, &g, err, sizeof err) == PSI_OK, "%s", err);
    uint32_t ft = 0;
    CHECK(g && gguf_get_u32(g, "general.file_type", &ft, NULL, 0) == PSI_OK && ft == (uint32_t)ftype);
    uint32_t qv = 0;
    CHECK(g && gguf_get_u32(g, "general.quantization_version", &qv, NULL, 0) == PSI_OK && qv == 2);
    return g;
}

static uint32_t type_of(const gguf *g, const char *name)
{
    int64_t i = g ? gguf_find_tensor(g, name) : -1;
    return i < 0 ? UINT32_MAX : g->tensors[i].type;
}

/* 12 layers, written last layer first: llama.cpp counts attn_v and
 * ffn_down layers in its own order (layer number, then name), whatever the
 * file's order. use_more_bits(i, 12): i < 12/8 = 1, i >= 7·12/8 = 10, or
 * (i - 1) % 3 == 2 → layers 0, 3, 6, 9, 10, 11. (Counting in name order —
 * blk.10 and blk.11 right after blk.1 — would pick 0, 4, 7, 8, 9, 11.) */
static void test_mix_rules(const char *dir)
{
    enum { NL = 12 };
    static const char *const mats[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    spec t[3 + NL * 9];
    static char names[NL * 9][64];
    int n = 0, k = 0;
    t[n++] = (spec){"token_embd.weight", 256, 8};
    t[n++] = (spec){"output_norm.weight", 256, 0};
    t[n++] = (spec){"output.weight", 256, 8};
    for (int l = NL - 1; l >= 0; l--) {
        for (int m = 0; m < 7; m++) {
            snprintf(names[k], sizeof names[k], "blk.%d.%s.weight", l, mats[m]);
            t[n++] = (spec){names[k++], !strcmp(mats[m], "ffn_down") ? 512 : 256, 4};
        }
        snprintf(names[k], sizeof names[k], "blk.%d.attn_norm.weight", l);
        t[n++] = (spec){names[k++], 256, 0};
        snprintf(names[k], sizeof names[k], "blk.%d.ffn_norm.weight", l);
        t[n++] = (spec){names[k++], 256, 0};
    }
    char in[4096], out[4096];
    snprintf(in, sizeof in, "%s/mix-f32.gguf", dir);
    snprintf(out, sizeof out, "%s/mix-q.gguf", dir);
    write_model(in, NL, t, n);
    static const bool more_bits[NL] = {1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 1, 1};

    static const struct {
        psi_ftype ft;
        uint32_t base, output, embd;
    } cases[] = {
        {PSI_FTYPE_Q4_K_M, PSI_TYPE_Q4_K, PSI_TYPE_Q6_K, PSI_TYPE_Q4_K},
        {PSI_FTYPE_Q5_K_M, PSI_TYPE_Q5_K, PSI_TYPE_Q6_K, PSI_TYPE_Q5_K},
        {PSI_FTYPE_Q4_K_S, PSI_TYPE_Q4_K, PSI_TYPE_Q6_K, PSI_TYPE_Q4_K},
        {PSI_FTYPE_Q5_K_S, PSI_TYPE_Q5_K, PSI_TYPE_Q6_K, PSI_TYPE_Q5_K},
        {PSI_FTYPE_Q6_K, PSI_TYPE_Q6_K, PSI_TYPE_Q6_K, PSI_TYPE_Q6_K},
        {PSI_FTYPE_Q4_0, PSI_TYPE_Q4_0, PSI_TYPE_Q6_K, PSI_TYPE_Q4_0},
        {PSI_FTYPE_Q4_1, PSI_TYPE_Q4_1, PSI_TYPE_Q6_K, PSI_TYPE_Q4_1},
        {PSI_FTYPE_Q5_0, PSI_TYPE_Q5_0, PSI_TYPE_Q6_K, PSI_TYPE_Q5_0},
        {PSI_FTYPE_Q5_1, PSI_TYPE_Q5_1, PSI_TYPE_Q6_K, PSI_TYPE_Q5_1},
        {PSI_FTYPE_Q8_0, PSI_TYPE_Q8_0, PSI_TYPE_Q8_0, PSI_TYPE_Q8_0},
        {PSI_FTYPE_F16, PSI_TYPE_F16, PSI_TYPE_F16, PSI_TYPE_F16},
        {PSI_FTYPE_BF16, PSI_TYPE_BF16, PSI_TYPE_BF16, PSI_TYPE_BF16},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const psi_ftype ft = cases[c].ft;
        progress_log log = {0, 0, 0, true};
        gguf *g = quantize(in, out, ft, &log);
        if (!g) continue;
        CHECKF(log.calls == n && log.monotonic && log.last_done == log.total && log.total > 0,
               "ftype %d: progress %d calls, %" PRIu64 "/%" PRIu64, (int)ft, log.calls, log.last_done, log.total);
        int bad = 0;
        bad += type_of(g, "output.weight") != cases[c].output;
        bad += type_of(g, "token_embd.weight") != cases[c].embd;
        bad += type_of(g, "output_norm.weight") != PSI_TYPE_F32;
        for (int l = 0; l < NL; l++) {
            char nm[64];
            for (int m = 0; m < 7; m++) {
                uint32_t want = cases[c].base;
                bool v = !strcmp(mats[m], "attn_v"), down = !strcmp(mats[m], "ffn_down");
                if ((ft == PSI_FTYPE_Q4_K_M || ft == PSI_FTYPE_Q5_K_M) && (v || down) && more_bits[l])
                    want = PSI_TYPE_Q6_K;
                /* Q4_K_S: attn_v of the first 4 layers, ffn_down of the first 12/8 */
                if (ft == PSI_FTYPE_Q4_K_S && ((v && l < 4) || (down && l < 1))) want = PSI_TYPE_Q5_K;
                snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, mats[m]);
                CHECKF(type_of(g, nm) == want, "ftype %d: %s is %s, want %s", (int)ft, nm,
                       psi_type_name(type_of(g, nm)), psi_type_name(want));
                bad += type_of(g, nm) != want;
            }
            snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
            bad += type_of(g, nm) != PSI_TYPE_F32;
        }
        CHECKF(bad == 0, "ftype %d: %d tensors of the wrong type", (int)ft, bad);
        CHECK(g->n_tensors == (uint64_t)n);
        gguf_close(g);
    }
}

/* Bytes of tensor `name` of g equal `quant` applied to the same tensor of src. */
static bool same_bytes(const gguf *src, const gguf *g, const char *name, from_float_fn quant)
{
    const gguf_tensor *s = &src->tensors[gguf_find_tensor(src, name)];
    const gguf_tensor *t = &g->tensors[gguf_find_tensor(g, name)];
    void *buf = malloc(t->nbytes);
    for (uint64_t r = 0; r < s->ne[1]; r++)
        quant((const float *)s->data + r * s->ne[0], (uint8_t *)buf + r * (t->nbytes / s->ne[1]), (int64_t)s->ne[0]);
    bool eq = !memcmp(buf, t->data, t->nbytes);
    free(buf);
    return eq;
}

/* Rows llama.cpp's chosen type cannot hold: Q4_K → Q5_0, Q5_K → Q5_1,
 * Q6_K → Q8_0, and F16 when the fallback cannot hold them either; the
 * output matrix goes to Q8_0 directly. A single layer is a "more bits"
 * layer (0 >= 7·1/8). The legacy types have no fallback: an error. */
static void test_fallbacks(const char *dir)
{
    static const spec t[] = {
        {"token_embd.weight", 96, 8},      {"output.weight", 96, 8},         {"output_norm.weight", 96, 0},
        {"blk.0.attn_q.weight", 96, 4},    {"blk.0.attn_k.weight", 48, 4},   {"blk.0.attn_v.weight", 96, 4},
        {"blk.0.ffn_down.weight", 160, 4}, {"blk.0.ffn_up.weight", 512, 4},  {"blk.0.attn_norm.weight", 96, 0},
    };
    const int n = (int)(sizeof t / sizeof t[0]);
    char in[4096], out[4096];
    snprintf(in, sizeof in, "%s/odd-f32.gguf", dir);
    snprintf(out, sizeof out, "%s/odd-q.gguf", dir);
    write_model(in, 1, t, n);
    gguf *src = NULL;
    char err[512];
    CHECKF(gguf_open(in, &src, err, sizeof err) == PSI_OK, "%s", err);
    if (!src) return;

    gguf *g = quantize(in, out, PSI_FTYPE_Q4_K_M, NULL);
    if (g) {
        CHECK(type_of(g, "output.weight") == PSI_TYPE_Q8_0);
        CHECK(type_of(g, "token_embd.weight") == PSI_TYPE_Q5_0);
        CHECK(type_of(g, "blk.0.attn_q.weight") == PSI_TYPE_Q5_0);
        CHECK(type_of(g, "blk.0.attn_k.weight") == PSI_TYPE_F16); /* 48: not even Q5_0 */
        CHECK(type_of(g, "blk.0.attn_v.weight") == PSI_TYPE_Q8_0);   /* Q6_K → Q8_0 */
        CHECK(type_of(g, "blk.0.ffn_down.weight") == PSI_TYPE_Q8_0); /* Q6_K → Q8_0 */
        CHECK(type_of(g, "blk.0.ffn_up.weight") == PSI_TYPE_Q4_K);
        CHECK(type_of(g, "output_norm.weight") == PSI_TYPE_F32);
        /* the fallback tensors hold the reference quantizers' bytes */
        CHECK(same_bytes(src, g, "blk.0.attn_q.weight", quantize_row_q5_0_ref));
        CHECK(same_bytes(src, g, "blk.0.attn_v.weight", quantize_row_q8_0_ref));
        CHECK(same_bytes(src, g, "blk.0.ffn_up.weight", quantize_row_q4_K_ref));
        gguf_close(g);
    }
    g = quantize(in, out, PSI_FTYPE_Q5_K_M, NULL);
    if (g) {
        CHECK(type_of(g, "blk.0.attn_q.weight") == PSI_TYPE_Q5_1);
        CHECK(type_of(g, "blk.0.attn_k.weight") == PSI_TYPE_F16);
        CHECK(type_of(g, "blk.0.attn_v.weight") == PSI_TYPE_Q8_0);
        CHECK(type_of(g, "blk.0.ffn_up.weight") == PSI_TYPE_Q5_K);
        CHECK(same_bytes(src, g, "blk.0.attn_q.weight", quantize_row_q5_1_ref));
        CHECK(same_bytes(src, g, "blk.0.ffn_up.weight", quantize_row_q5_K_ref));
        gguf_close(g);
    }
    g = quantize(in, out, PSI_FTYPE_Q6_K, NULL);
    if (g) {
        CHECK(type_of(g, "blk.0.attn_q.weight") == PSI_TYPE_Q8_0);
        CHECK(type_of(g, "blk.0.attn_k.weight") == PSI_TYPE_F16);
        CHECK(same_bytes(src, g, "blk.0.ffn_up.weight", quantize_row_q6_K_ref));
        gguf_close(g);
    }
    /* Q4_0: 48-value rows of attn_k have no Q4_0 form and no fallback */
    psi_quantize_params p = psi_quantize_default_params();
    p.ftype = PSI_FTYPE_Q4_0;
    err[0] = 0;
    CHECK(psi_quantize(in, out, &p, err, sizeof err) == PSI_ERR_UNSUPPORTED);
    CHECKF(strstr(err, "blk.0.attn_k.weight") && strstr(err, "48"), "message: %s", err);
    gguf_close(src);
}

/* Tied embeddings (no output.weight): token_embd is the output matrix and
 * gets its type. */
static void test_tied(const char *dir)
{
    static const spec t[] = {
        {"token_embd.weight", 256, 8}, {"output_norm.weight", 256, 0}, {"blk.0.attn_v.weight", 256, 4},
    };
    char in[4096], out[4096];
    snprintf(in, sizeof in, "%s/tied-f32.gguf", dir);
    snprintf(out, sizeof out, "%s/tied-q.gguf", dir);
    write_model(in, 1, t, 3);
    gguf *g = quantize(in, out, PSI_FTYPE_Q4_K_M, NULL);
    CHECK(type_of(g, "token_embd.weight") == PSI_TYPE_Q6_K);
    gguf_close(g);
    g = quantize(in, out, PSI_FTYPE_Q4_0, NULL);
    CHECK(type_of(g, "token_embd.weight") == PSI_TYPE_Q6_K && type_of(g, "blk.0.attn_v.weight") == PSI_TYPE_Q4_0);
    gguf_close(g);
    g = quantize(in, out, PSI_FTYPE_Q8_0, NULL);
    CHECK(type_of(g, "token_embd.weight") == PSI_TYPE_Q8_0);
    gguf_close(g);
}

static void test_errors(const char *dir)
{
    char in[4096], out[4096], err[256] = "";
    snprintf(in, sizeof in, "%s/tied-f32.gguf", dir);
    snprintf(out, sizeof out, "%s/never.gguf", dir);
    remove(out);
    psi_quantize_params p = psi_quantize_default_params();
    CHECK(p.ftype == PSI_FTYPE_Q8_0 && p.progress == NULL && p.n_threads == 0);
    CHECK(psi_quantize(NULL, out, &p, err, sizeof err) == PSI_ERR_INVALID_ARG);
    CHECK(psi_quantize(in, NULL, &p, err, sizeof err) == PSI_ERR_INVALID_ARG);
    p.ftype = (psi_ftype)10; /* Q2_K: not supported */
    CHECK(psi_quantize(in, out, &p, err, sizeof err) == PSI_ERR_INVALID_ARG);
    CHECKF(strstr(err, "10") != NULL, "%s", err);
    p.ftype = PSI_FTYPE_Q4_K_M;
    snprintf(in, sizeof in, "%s/none.gguf", dir);
    CHECK(psi_quantize(in, out, &p, err, sizeof err) == PSI_ERR_IO);
    FILE *f = fopen(out, "rb");
    CHECK(f == NULL);
    if (f) fclose(f);
    /* NULL params: Q8_0 */
    snprintf(in, sizeof in, "%s/tied-f32.gguf", dir);
    snprintf(out, sizeof out, "%s/defaults.gguf", dir);
    CHECK(psi_quantize(in, out, NULL, err, sizeof err) == PSI_OK);
    gguf *g = NULL;
    CHECK(gguf_open(out, &g, err, sizeof err) == PSI_OK && type_of(g, "blk.0.attn_v.weight") == PSI_TYPE_Q8_0);
    gguf_close(g);
}

/* A quantized file is not quantized again unless asked (llama-quantize's
 * --allow-requantize), and the output never replaces the input. */
static void test_requantize_and_inputs(const char *dir)
{
    char in[4096], q8[4096], out[4096], hard[4096], err[512] = "";
    snprintf(in, sizeof in, "%s/tied-f32.gguf", dir);
    snprintf(q8, sizeof q8, "%s/req-q8.gguf", dir);
    snprintf(out, sizeof out, "%s/req-q4.gguf", dir);
    gguf_close(quantize(in, q8, PSI_FTYPE_Q8_0, NULL));
    psi_quantize_params p = psi_quantize_default_params();
    CHECK(!p.allow_requantize);
    p.ftype = PSI_FTYPE_Q4_0;
    remove(out);
    CHECK(psi_quantize(q8, out, &p, err, sizeof err) == PSI_ERR_UNSUPPORTED);
    CHECKF(strstr(err, "already quantized (Q8_0)") && strstr(err, ".weight'") && !strchr(err, '\n'),
           "message: %s", err);
    FILE *f = fopen(out, "rb");
    CHECK(f == NULL);
    if (f) fclose(f);
    p.allow_requantize = true;
    CHECKF(psi_quantize(q8, out, &p, err, sizeof err) == PSI_OK, "%s", err);
    gguf *g = NULL;
    CHECK(gguf_open(out, &g, err, sizeof err) == PSI_OK && type_of(g, "token_embd.weight") == PSI_TYPE_Q6_K &&
          type_of(g, "blk.0.attn_v.weight") == PSI_TYPE_Q4_0);
    gguf_close(g);
    /* every tensor already of its type: copied, nothing to refuse */
    p.allow_requantize = false;
    p.ftype = PSI_FTYPE_Q8_0;
    CHECKF(psi_quantize(q8, out, &p, err, sizeof err) == PSI_OK, "%s", err);

    /* the output as the input, by name or through a hard link */
    size_t n0 = 0, n1 = 0;
    char *before = tu_read_file(in, &n0);
    snprintf(hard, sizeof hard, "%s/req-hard.gguf", dir);
    remove(hard);
    CHECK(link(in, hard) == 0);
    const char *outs[] = {in, hard};
    for (int i = 0; i < 2; i++) {
        err[0] = 0;
        CHECK(psi_quantize(in, outs[i], &p, err, sizeof err) == PSI_ERR_INVALID_ARG);
        CHECKF(strstr(err, "would replace the input"), "message: %s", err);
    }
    char *after = tu_read_file(in, &n1);
    CHECK(before && after && n0 == n1 && !memcmp(before, after, n0));
    free(before);
    free(after);
}

/* Every allocation psi_quantize makes fails in turn: each must come back as
 * PSI_ERR_NO_MEMORY with nothing leaked (ASan checks) and no output file. */
static void test_alloc_failures(const char *dir)
{
    char in[4096], out[4096], err[512];
    snprintf(in, sizeof in, "%s/odd-f32.gguf", dir);
    snprintf(out, sizeof out, "%s/oom.gguf", dir);
    psi_quantize_params p = psi_quantize_default_params();
    p.ftype = PSI_FTYPE_Q4_K_M;
    p.n_threads = 2;
    int seen = 0, k;
    for (k = 0; k < 2000; k++) {
        remove(out);
        psi__mem_fail_after(k);
        psi_status rc = psi_quantize(in, out, &p, err, sizeof err);
        psi__mem_fail_after(-1);
        if (rc == PSI_OK) break;
        CHECKF(rc == PSI_ERR_NO_MEMORY, "allocation %d failing gave %s: %s", k, psi_status_str(rc), err);
        FILE *f = fopen(out, "rb");
        CHECKF(f == NULL, "allocation %d failing left an output file", k);
        if (f) fclose(f);
        seen++;
    }
    printf("test_quantize: %d allocation failure points, all reported as out of memory\n", seen);
    CHECK(seen > 10 && k < 2000);
}

int main(void)
{
    const char *dir = tu_tmpdir("quantize");
    test_mix_rules(dir);
    test_fallbacks(dir);
    test_tied(dir);
    test_errors(dir);
    test_requantize_and_inputs(dir);
    test_alloc_failures(dir);
    return tu_finish("test_quantize");
}
