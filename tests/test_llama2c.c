/*
 * test_llama2c.c — the llama2.c checkpoint/tokenizer parser behind
 * `psi convert --from llama2c`, in memory: a tiny synthetic checkpoint
 * (shared and unshared classifier) converts and reads back with the right
 * shapes; hand-made corrupt headers and tokenizers are refused with one-line
 * messages; seeded mutations never crash.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert.h"
#include "testutil.h"

/* dim 8, hidden 12, 1 layer, 2 heads, 1 KV head, vocab 6, seq_len 4 */
enum { DIM = 8, HID = 12, LAY = 1, HEADS = 2, KVH = 1, VOC = 6, SEQ = 4 };

static tu_buf make_model(bool shared)
{
    tu_buf b = {0};
    int32_t hdr[7] = {DIM, HID, LAY, HEADS, KVH, shared ? VOC : -VOC, SEQ};
    for (int i = 0; i < 7; i++) tu_put_i32(&b, hdr[i]);
    int hs = DIM / HEADS, kv = hs * KVH;
    size_t floats = (size_t)VOC * DIM + LAY * DIM + LAY * DIM * DIM + 2 * LAY * DIM * kv + LAY * DIM * DIM +
                    LAY * DIM + 3 * LAY * DIM * HID + DIM + (size_t)SEQ * hs + (shared ? 0 : (size_t)VOC * DIM);
    for (size_t i = 0; i < floats; i++) tu_put_f32(&b, (float)i * 0.001f);
    return b;
}

static tu_buf make_tok(void)
{
    static const char *const toks[VOC] = {"<unk>", "\n<s>\n", "\n</s>\n", "<0x0A>", " the", "x"};
    tu_buf b = {0};
    tu_put_i32(&b, 8);
    for (int i = 0; i < VOC; i++) {
        tu_put_f32(&b, (float)-i);
        tu_put_i32(&b, (int32_t)strlen(toks[i]));
        tu_put(&b, toks[i], strlen(toks[i]));
    }
    return b;
}

static psi_status build(const tu_buf *m, const tu_buf *t, char *err, size_t n)
{
    gguf_writer *w = NULL;
    psi_status rc = l2c_build(m->p, m->len, "m.bin", t->p, t->len, "t.bin", &w, err, n);
    if (rc == PSI_OK) CHECK(w != NULL);
    else CHECK(w == NULL);
    gguf_writer_free(w);
    return rc;
}

static void test_good(const char *dir)
{
    for (int shared = 0; shared < 2; shared++) {
        tu_buf m = make_model(shared), t = make_tok();
        gguf_writer *w = NULL;
        char err[512], path[4200];
        CHECKF(l2c_build(m.p, m.len, "m.bin", t.p, t.len, "t.bin", &w, err, sizeof err) == PSI_OK, "%s",
               err);
        snprintf(path, sizeof path, "%s/tiny%d.gguf", dir, shared);
        CHECK(w && gguf_writer_write(w, path, err, sizeof err) == PSI_OK);
        gguf_writer_free(w);
        gguf *g = NULL;
        CHECKF(gguf_open(path, &g, err, sizeof err) == PSI_OK, "%s", err);
        if (g) {
            CHECK(g->n_tensors == (uint64_t)(2 + 9 * LAY + !shared));
            int64_t k = gguf_find_tensor(g, "blk.0.attn_k.weight");
            CHECK(k >= 0 && g->tensors[k].ne[0] == DIM && g->tensors[k].ne[1] == DIM / HEADS * KVH);
            k = gguf_find_tensor(g, "blk.0.ffn_down.weight");
            CHECK(k >= 0 && g->tensors[k].ne[0] == HID && g->tensors[k].ne[1] == DIM);
            CHECK((gguf_find_tensor(g, "output.weight") >= 0) == !shared);
            const gguf_kv *toks = NULL;
            CHECK(gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_STRING, VOC, &toks, err, sizeof err) == PSI_OK);
            if (toks) {
                CHECK(gguf_str_eq(toks->strs[1], "<s>") && gguf_str_eq(toks->strs[2], "</s>"));
                CHECK(gguf_str_eq(toks->strs[4], "\xE2\x96\x81the")); /* ' ' → U+2581 */
            }
            gguf_close(g);
        }
        tu_buf_free(&m);
        tu_buf_free(&t);
    }
}

/* psi_convert_llama2c never writes over its inputs: out naming the
 * checkpoint or the tokenizer (directly or through a link) is refused and
 * leaves the file as it was. */
static void test_out_is_input(const char *dir)
{
    tu_buf m = make_model(0), t = make_tok();
    char mp[4200], tp[4200], lp[4200], err[512] = "";
    snprintf(mp, sizeof mp, "%s/in-model.bin", dir);
    snprintf(tp, sizeof tp, "%s/in-tok.bin", dir);
    snprintf(lp, sizeof lp, "%s/in-link.gguf", dir);
    FILE *f = fopen(mp, "wb");
    CHECK(f && fwrite(m.p, 1, m.len, f) == m.len && fclose(f) == 0);
    f = fopen(tp, "wb");
    CHECK(f && fwrite(t.p, 1, t.len, f) == t.len && fclose(f) == 0);
    remove(lp);
    CHECK(symlink(tp, lp) == 0);
    const char *outs[] = {mp, tp, lp};
    for (int i = 0; i < 3; i++) {
        err[0] = 0;
        CHECKF(psi_convert_llama2c(mp, tp, outs[i], err, sizeof err) == PSI_ERR_INVALID_ARG, "out %s",
               outs[i]);
        CHECKF(strstr(err, "would replace the input"), "message: %s", err);
    }
    size_t n = 0;
    char *back = tu_read_file(mp, &n);
    CHECK(back && n == m.len && !memcmp(back, m.p, n));
    free(back);
    back = tu_read_file(tp, &n);
    CHECK(back && n == t.len && !memcmp(back, t.p, n));
    free(back);
    snprintf(lp, sizeof lp, "%s/from-files.gguf", dir);
    CHECKF(psi_convert_llama2c(mp, tp, lp, err, sizeof err) == PSI_OK, "%s", err);
    tu_buf_free(&m);
    tu_buf_free(&t);
}

static void expect_bad(const char *what, const tu_buf *m, const tu_buf *t, const char *needle)
{
    char err[512] = "";
    psi_status rc = build(m, t, err, sizeof err);
    CHECKF(rc != PSI_OK, "%s: accepted", what);
    CHECKF(err[0] && !strchr(err, '\n') && strstr(err, needle), "%s: message '%s' lacks '%s'", what, err, needle);
}

static void test_corrupt(void)
{
    tu_buf m = make_model(true), t = make_tok();
    tu_buf c = {0};
    /* header fields */
    static const struct { int field; int32_t value; const char *what; } hdr[] = {
        {0, 0, "dim 0"},         {0, -8, "dim negative"},   {1, 0, "hidden 0"},      {2, 0, "no layers"},
        {3, 0, "no heads"},      {3, 3, "dim % heads"},     {4, 0, "no kv heads"},   {4, 3, "heads % kv"},
        {5, 2, "vocab 2"},       {5, INT32_MIN, "vocab min"}, {6, 0, "seq_len 0"},   {0, 1 << 30, "huge dim"},
        {2, 1 << 20, "huge layers"}, {5, 1 << 30, "huge vocab"}, {3, 8, "odd head size"},
    };
    for (size_t i = 0; i < sizeof hdr / sizeof hdr[0]; i++) {
        c.len = 0;
        tu_put(&c, m.p, m.len);
        memcpy(c.p + 4 * hdr[i].field, &hdr[i].value, 4);
        expect_bad(hdr[i].what, &c, &t, "m.bin");
    }
    /* sizes */
    tu_buf s = {m.p, 20, 0};
    expect_bad("short header", &s, &t, "too short");
    s.len = m.len - 4;
    expect_bad("one float short", &s, &t, "implies");
    c.len = 0;
    tu_put(&c, m.p, m.len);
    tu_put_f32(&c, 1.0f);
    expect_bad("one float long", &c, &t, "implies");
    c.len = 0;
    tu_put(&c, m.p, m.len);
    int32_t unshared = -VOC;
    memcpy(c.p + 20, &unshared, 4);
    expect_bad("unshared without classifier", &c, &t, "implies");
    /* tokenizer */
    tu_buf tt = {t.p, 2, 0};
    expect_bad("tokenizer 2 bytes", &m, &tt, "t.bin");
    tt.len = t.len - 3;
    expect_bad("tokenizer cut", &m, &tt, "t.bin");
    c.len = 0;
    tu_put(&c, t.p, t.len);
    int32_t small_max = 2;
    memcpy(c.p, &small_max, 4);
    expect_bad("token longer than max_token_length", &m, &c, "max_token_length");
    c.len = 0;
    tu_put(&c, t.p, t.len);
    int32_t huge = 0x7fffffff;
    memcpy(c.p + 8, &huge, 4); /* length of token 0 */
    expect_bad("huge token length", &m, &c, "t.bin");
    tu_buf_free(&c);
    tu_buf_free(&m);
    tu_buf_free(&t);
}

/* Seeded mutations of header and tokenizer: never a crash, always a
 * one-line message on refusal. */
static void test_mutations(void)
{
    tu_buf m = make_model(true), t = make_tok();
    uint64_t rng = 12345;
    int accepted = 0, refused = 0;
    for (int it = 0; it < 20000; it++) {
        tu_buf mm = {malloc(m.len), m.len, m.len}, tm = {malloc(t.len), t.len, t.len};
        memcpy(mm.p, m.p, m.len);
        memcpy(tm.p, t.p, t.len);
        int k = 1 + (int)(rng % 3);
        for (int j = 0; j < k; j++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t r = (uint32_t)(rng >> 33);
            tu_buf *b = (r & 1) ? &mm : &tm;
            size_t lim = b == &mm ? (b->len < 28 ? b->len : 28) : b->len; /* model: mutate the header */
            if (lim == 0) continue;
            size_t at = (r >> 1) % lim;
            switch ((r >> 20) % 4) {
            case 0: b->p[at] ^= (uint8_t)(1u << ((r >> 8) % 8)); break;
            case 1: b->p[at] = (uint8_t)(r >> 12); break;
            case 2: b->len = at; break; /* truncate */
            default: b->p[at] = 0xff; break;
            }
        }
        char err[512] = "";
        psi_status rc = build(&mm, &tm, err, sizeof err);
        if (rc == PSI_OK) accepted++;
        else {
            refused++;
            if (!err[0] || strchr(err, '\n')) CHECKF(0, "mutation %d: bad message '%s'", it, err);
        }
        free(mm.p);
        free(tm.p);
    }
    printf("llama2.c mutations: %d accepted, %d refused\n", accepted, refused);
    CHECK(refused > 1000 && accepted > 100);
    tu_buf_free(&m);
    tu_buf_free(&t);
}

int main(void)
{
    test_good(tu_tmpdir("llama2c"));
    test_out_is_input(tu_tmpdir("llama2c"));
    test_corrupt();
    test_mutations();
    return tu_finish("test_llama2c");
}
