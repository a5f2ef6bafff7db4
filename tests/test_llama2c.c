/*
 * test_llama2c.c — the llama2.c checkpoint/tokenizer parser behind
 * `psi convert --from llama2c`, in memory: a tiny synthetic checkpoint
 * (shared and unshared classifier) converts and reads back with the right
 * shapes; hand-made corrupt headers and tokenizers are refused with one-line
 * messages; seeded mutations never crash.
 */
#include <math.h>
#include <string.h>

#include "convert.h"
#include "testutil.h"

typedef struct blob {
    uint8_t *p;
    size_t n, cap;
} blob;

static void put(blob *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_i32(blob *b, int32_t v) { put(b, &v, 4); }
static void put_f32(blob *b, float v) { put(b, &v, 4); }

/* dim 8, hidden 12, 1 layer, 2 heads, 1 KV head, vocab 6, seq_len 4 */
enum { DIM = 8, HID = 12, LAY = 1, HEADS = 2, KVH = 1, VOC = 6, SEQ = 4 };

static blob make_model(bool shared)
{
    blob b = {0};
    int32_t hdr[7] = {DIM, HID, LAY, HEADS, KVH, shared ? VOC : -VOC, SEQ};
    for (int i = 0; i < 7; i++) put_i32(&b, hdr[i]);
    int hs = DIM / HEADS, kv = hs * KVH;
    size_t floats = (size_t)VOC * DIM + LAY * DIM + LAY * DIM * DIM + 2 * LAY * DIM * kv + LAY * DIM * DIM +
                    LAY * DIM + 3 * LAY * DIM * HID + DIM + (size_t)SEQ * hs + (shared ? 0 : (size_t)VOC * DIM);
    for (size_t i = 0; i < floats; i++) put_f32(&b, (float)i * 0.001f);
    return b;
}

static blob make_tok(void)
{
    static const char *const toks[VOC] = {"<unk>", "\n<s>\n", "\n</s>\n", "<0x0A>", " the", "x"};
    blob b = {0};
    put_i32(&b, 8);
    for (int i = 0; i < VOC; i++) {
        put_f32(&b, (float)-i);
        put_i32(&b, (int32_t)strlen(toks[i]));
        put(&b, toks[i], strlen(toks[i]));
    }
    return b;
}

static psi_status build(const blob *m, const blob *t, char *err, size_t n)
{
    gguf_writer *w = NULL;
    psi_status rc = l2c_build(m->p, m->n, "m.bin", t->p, t->n, "t.bin", &w, err, n);
    if (rc == PSI_OK) CHECK(w != NULL);
    else CHECK(w == NULL);
    gguf_writer_free(w);
    return rc;
}

static void test_good(const char *dir)
{
    for (int shared = 0; shared < 2; shared++) {
        blob m = make_model(shared), t = make_tok();
        gguf_writer *w = NULL;
        char err[512], path[4200];
        CHECKF(l2c_build(m.p, m.n, "m.bin", t.p, t.n, "t.bin", &w, err, sizeof err) == PSI_OK, "%s", err);
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
        free(m.p);
        free(t.p);
    }
}

static void expect_bad(const char *what, const blob *m, const blob *t, const char *needle)
{
    char err[512] = "";
    psi_status rc = build(m, t, err, sizeof err);
    CHECKF(rc != PSI_OK, "%s: accepted", what);
    CHECKF(err[0] && !strchr(err, '\n') && strstr(err, needle), "%s: message '%s' lacks '%s'", what, err, needle);
}

static void test_corrupt(void)
{
    blob m = make_model(true), t = make_tok();
    blob c = {0};
    /* header fields */
    static const struct { int field; int32_t value; const char *what; } hdr[] = {
        {0, 0, "dim 0"},         {0, -8, "dim negative"},   {1, 0, "hidden 0"},      {2, 0, "no layers"},
        {3, 0, "no heads"},      {3, 3, "dim % heads"},     {4, 0, "no kv heads"},   {4, 3, "heads % kv"},
        {5, 2, "vocab 2"},       {5, INT32_MIN, "vocab min"}, {6, 0, "seq_len 0"},   {0, 1 << 30, "huge dim"},
        {2, 1 << 20, "huge layers"}, {5, 1 << 30, "huge vocab"}, {3, 8, "odd head size"},
    };
    for (size_t i = 0; i < sizeof hdr / sizeof hdr[0]; i++) {
        c.n = 0;
        put(&c, m.p, m.n);
        memcpy(c.p + 4 * hdr[i].field, &hdr[i].value, 4);
        expect_bad(hdr[i].what, &c, &t, "m.bin");
    }
    /* sizes */
    blob s = {m.p, 20, 0};
    expect_bad("short header", &s, &t, "too short");
    s.n = m.n - 4;
    expect_bad("one float short", &s, &t, "implies");
    c.n = 0;
    put(&c, m.p, m.n);
    put_f32(&c, 1.0f);
    expect_bad("one float long", &c, &t, "implies");
    c.n = 0;
    put(&c, m.p, m.n);
    int32_t unshared = -VOC;
    memcpy(c.p + 20, &unshared, 4);
    expect_bad("unshared without classifier", &c, &t, "implies");
    /* tokenizer */
    blob tt = {t.p, 2, 0};
    expect_bad("tokenizer 2 bytes", &m, &tt, "t.bin");
    tt.n = t.n - 3;
    expect_bad("tokenizer cut", &m, &tt, "t.bin");
    c.n = 0;
    put(&c, t.p, t.n);
    int32_t small_max = 2;
    memcpy(c.p, &small_max, 4);
    expect_bad("token longer than max_token_length", &m, &c, "max_token_length");
    c.n = 0;
    put(&c, t.p, t.n);
    int32_t huge = 0x7fffffff;
    memcpy(c.p + 8, &huge, 4); /* length of token 0 */
    expect_bad("huge token length", &m, &c, "t.bin");
    free(c.p);
    free(m.p);
    free(t.p);
}

/* Seeded mutations of header and tokenizer: never a crash, always a
 * one-line message on refusal. */
static void test_mutations(void)
{
    blob m = make_model(true), t = make_tok();
    uint64_t rng = 12345;
    int accepted = 0, refused = 0;
    for (int it = 0; it < 20000; it++) {
        blob mm = {malloc(m.n), m.n, m.n}, tm = {malloc(t.n), t.n, t.n};
        memcpy(mm.p, m.p, m.n);
        memcpy(tm.p, t.p, t.n);
        int k = 1 + (int)(rng % 3);
        for (int j = 0; j < k; j++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t r = (uint32_t)(rng >> 33);
            blob *b = (r & 1) ? &mm : &tm;
            size_t lim = b == &mm ? (b->n < 28 ? b->n : 28) : b->n; /* model: mutate the header */
            if (lim == 0) continue;
            size_t at = (r >> 1) % lim;
            switch ((r >> 20) % 4) {
            case 0: b->p[at] ^= (uint8_t)(1u << ((r >> 8) % 8)); break;
            case 1: b->p[at] = (uint8_t)(r >> 12); break;
            case 2: b->n = at; break; /* truncate */
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
    free(m.p);
    free(t.p);
}

int main(void)
{
    test_good(tu_tmpdir("llama2c"));
    test_corrupt();
    test_mutations();
    return tu_finish("test_llama2c");
}
