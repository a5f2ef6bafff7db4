/*
 * test_tokenizer_bpe.c — Llama 3 byte-level BPE encoding against golden ids:
 * llama.cpp's 46 test strings (ids from the Hugging Face tokenizer), the
 * llama3 chktxt pre-tokenizer string, round trips, invalid UTF-8, and the
 * errors for an unsupported or missing tokenizer.ggml.pre.
 */
#include <stdint.h>
#include <string.h>

#include "gguf.h"
#include "testutil.h"
#include "tokenizer.h"
#include "util.h"

static char err[512];

static int32_t *tokenize(const vocab *v, const char *text, size_t len, bool bos, int32_t *n)
{
    return tu_tokenize(v, text, len, bos, n, err, sizeof err);
}

static char *detok(const vocab *v, const int32_t *ids, int32_t n, size_t *len)
{
    size_t cap = 16, pos = 0;
    char *s = malloc(cap);
    int32_t prev = -1;
    for (int32_t i = 0; i < n; i++) {
        int32_t k = vocab_token_to_piece(v, prev, ids[i], NULL, 0);
        if (k < 0) {
            CHECKF(k >= 0, "token_to_piece(%d)", ids[i]);
            break;
        }
        if (pos + (size_t)k + 1 > cap) {
            cap = (pos + (size_t)k + 1) * 2;
            s = realloc(s, cap);
        }
        vocab_token_to_piece(v, prev, ids[i], s + pos, (size_t)k);
        pos += (size_t)k;
        prev = ids[i];
    }
    s[pos] = 0;
    *len = pos;
    return s;
}

/* Parses the integers in s (any separators); malloc'd, *n = count. */
static int32_t *parse_ids(const char *s, int32_t *n)
{
    size_t cap = 16;
    int32_t *a = malloc(cap * sizeof *a);
    *n = 0;
    while (*s) {
        if (*s >= '0' && *s <= '9') {
            long x = strtol(s, (char **)&s, 10);
            if ((size_t)*n == cap) a = realloc(a, (cap *= 2) * sizeof *a);
            a[(*n)++] = (int32_t)x;
        } else {
            s++;
        }
    }
    return a;
}

static bool same(const int32_t *a, int32_t na, const int32_t *b, int32_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

static void test_golden(const vocab *v)
{
    size_t isz = 0, osz = 0;
    char *inp = tu_read_file(tu_data("vocab/ggml-vocab-llama-bpe.gguf.inp"), &isz);
    char *out = tu_read_file(tu_data("vocab/ggml-vocab-llama-bpe.gguf.out"), &osz);
    CHECK(inp && out);
    if (!inp || !out) goto done;
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const size_t seplen = sizeof sep - 1;
    char *p = inp, *q = out;
    int cases = 0, passed = 0;
    for (;;) {
        char *e = strstr(p, sep);
        if (!e) break;
        char *qe = strchr(q, '\n');
        CHECK(qe != NULL);
        if (!qe) break;
        *qe = 0;
        int32_t nw = 0, n = 0;
        int32_t *want = parse_ids(q, &nw);
        int32_t *got = tokenize(v, p, (size_t)(e - p), false, &n);
        cases++;
        if (got && same(got, n, want, nw))
            passed++;
        else
            fprintf(stderr, "case %d '%.*s': got %d ids (%s), want %d\n", cases, (int)(e - p), p, n,
                    n < 0 ? err : "", nw);
        free(want);
        free(got);
        p = e + seplen;
        q = qe + 1;
    }
    CHECKF(cases == 46 && passed == cases, "%d of %d golden strings", passed, cases);
    printf("llama-bpe golden: %d/%d\n", passed, cases);
done:
    free(inp);
    free(out);
}

static void test_chktxt(const vocab *v)
{
    size_t tsz = 0, ksz = 0;
    char *txt = tu_read_file(tu_data("vocab/llama3-chktxt.txt"), &tsz);
    char *tok = tu_read_file(tu_data("vocab/llama3-chktxt.tokens"), &ksz);
    CHECK(txt && tok);
    if (txt && tok) {
        int32_t nw = 0, n = 0;
        int32_t *want = parse_ids(tok, &nw);
        int32_t *got = tokenize(v, txt, tsz, true, &n);
        CHECKF(got && same(got, n, want, nw), "chktxt: %d ids, want %d (%s)", n, nw, n < 0 ? err : "");
        if (got && n > 1) {
            size_t dl;
            char *d = detok(v, got + 1, n - 1, &dl);
            CHECK(dl == tsz && memcmp(d, txt, tsz) == 0);
            free(d);
        }
        free(want);
        free(got);
    }
    free(txt);
    free(tok);
}

static void test_misc(const vocab *v)
{
    int32_t n;
    int32_t *ids = tokenize(v, "Hello world", 11, true, &n);
    static const int32_t hw[] = {128000, 9906, 1917};
    CHECK(ids && same(ids, n, hw, 3));
    free(ids);

    ids = tokenize(v, "", 0, true, &n);
    CHECK(ids && n == 1 && ids[0] == 128000);
    free(ids);
    ids = tokenize(v, "", 0, false, &n);
    CHECK(ids && n == 0);
    free(ids);

    /* buffer too small */
    int32_t one[1];
    psi_status rc = vocab_tokenize(v, "Hello world", 11, true, false, one, 1, &n, err, sizeof err);
    CHECK(rc == PSI_ERR_BUFFER_SMALL && n == 3 && one[0] == 128000);

    static const char *const rt[] = {
        "Hello, world! 123456 ",
        "  multiple   spaces\n\n\ttabs\r\nand CRLF",
        "I'm sure they'll've DONE it'S",
        "Ünïcödé 日本語のテキスト 🦙🦙 ℕ ½ \xe2\x80\xaf x",
        "code: for (int i = 0; i < n; i++) { x[i] = y; }\n",
    };
    for (size_t i = 0; i < sizeof rt / sizeof rt[0]; i++) {
        size_t len = strlen(rt[i]), dl = 0;
        ids = tokenize(v, rt[i], len, false, &n);
        CHECKF(ids && n > 0, "round trip %zu: %s", i, err);
        if (!ids) continue;
        char *d = detok(v, ids, n, &dl);
        CHECKF(dl == len && memcmp(d, rt[i], len) == 0, "round trip %zu: '%s'", i, d);
        free(d);
        free(ids);
    }

    /* invalid UTF-8: each byte that begins no character tokenized as U+FFFD, never a crash */
#define R "\xef\xbf\xbd"
    static const char *const bad[][2] = {{"\xff", R},
                                         {"abc\xc3", "abc" R},
                                         {"\xed\xa0\x80 x", R R R " x"},
                                         {"\xc0\xaf\xe2\x82", R R R R},
                                         {"a\x80\x80\x80-", "a" R R R "-"},
                                         {"\xf4\x90\x80\x80", R R R R}};
#undef R
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t n2 = 0;
        ids = tokenize(v, bad[i][0], strlen(bad[i][0]), true, &n);
        int32_t *want = tokenize(v, bad[i][1], strlen(bad[i][1]), true, &n2);
        CHECKF(ids && want && n >= 2 && n == n2 && memcmp(ids, want, (size_t)n * sizeof *ids) == 0,
               "invalid utf-8 %zu: not tokenized as its U+FFFD text (%s)", i, err);
        free(ids);
        free(want);
    }
    ids = tokenize(v, "\xff", 1, false, &n);
    size_t dl = 0;
    char *d = ids ? detok(v, ids, n, &dl) : NULL;
    CHECK(d && dl == 3 && memcmp(d, "\xef\xbf\xbd", 3) == 0);
    free(d);
    free(ids);
    /* NUL bytes are text like any other */
    ids = tokenize(v, "a\0b", 3, false, &n);
    d = ids ? detok(v, ids, n, &dl) : NULL;
    CHECK(d && dl == 3 && memcmp(d, "a\0b", 3) == 0);
    free(d);
    free(ids);

    /* a long run of one letter (merge heap, no quadratic blow-up) */
    size_t big = 200000;
    char *s = malloc(big);
    memset(s, 'a', big);
    ids = tokenize(v, s, big, false, &n);
    CHECK(ids && n > 0 && n < (int32_t)big);
    if (ids) {
        d = detok(v, ids, n, &dl);
        CHECK(dl == big && memcmp(d, s, big) == 0);
        free(d);
    }
    free(ids);
    free(s);
}

/* A tiny gpt2 vocabulary with the given pre (NULL: none) and merges. */
static vocab *tiny(const char *pre, bool merges)
{
    static const char *const toks[] = {"a", "b", "ab", "<s>"};
    tu_buf b = {0};
    tu_put(&b, "GGUF", 4);
    tu_put_u32(&b, 3);
    tu_put_u64(&b, 0);
    tu_put_u64(&b, 2 + (pre != NULL) + merges);
    tu_put_gguf_key(&b, "tokenizer.ggml.model", 8);
    tu_put_gguf_str(&b, "gpt2");
    tu_put_gguf_key(&b, "tokenizer.ggml.tokens", 9);
    tu_put_u32(&b, 8);
    tu_put_u64(&b, 4);
    for (int i = 0; i < 4; i++)
        tu_put_gguf_str(&b, toks[i]);
    if (pre) {
        tu_put_gguf_key(&b, "tokenizer.ggml.pre", 8);
        tu_put_gguf_str(&b, pre);
    }
    if (merges) {
        tu_put_gguf_key(&b, "tokenizer.ggml.merges", 9);
        tu_put_u32(&b, 8);
        tu_put_u64(&b, 1);
        tu_put_gguf_str(&b, "a b");
    }
    char path[512];
    snprintf(path, sizeof path, "%s/tiny.gguf", tu_tmpdir("test_tokenizer_bpe"));
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) {
        tu_buf_free(&b);
        return NULL;
    }
    fwrite(b.p, 1, b.len, f);
    fclose(f);
    tu_buf_free(&b);
    gguf *g = NULL;
    vocab *v = NULL;
    psi_status rc = gguf_open(path, &g, err, sizeof err);
    CHECKF(rc == PSI_OK, "%s", err);
    if (rc != PSI_OK) return NULL;
    rc = vocab_load(&v, g, err, sizeof err);
    CHECKF(rc == PSI_OK, "%s", err);
    gguf_close(g);
    return v;
}

static void test_pre_errors(void)
{
    int32_t n = 5;
    vocab *v = tiny("xyz", true);
    if (v) {
        psi_status rc = vocab_tokenize(v, "ab", 2, false, false, NULL, 0, &n, err, sizeof err);
        CHECKF(rc == PSI_ERR_UNSUPPORTED && strstr(err, "tokenizer.ggml.pre 'xyz' is not supported") && n == 0,
               "%d %s", rc, err);
    }
    vocab_free(v);
    v = tiny(NULL, true);
    if (v) {
        psi_status rc = vocab_tokenize(v, "ab", 2, false, false, NULL, 0, &n, err, sizeof err);
        CHECKF(rc == PSI_ERR_UNSUPPORTED && strstr(err, "tokenizer.ggml.pre is missing"), "%d %s", rc, err);
    }
    vocab_free(v);
    v = tiny("llama-bpe", false);
    if (v) {
        psi_status rc = vocab_tokenize(v, "ab", 2, false, false, NULL, 0, &n, err, sizeof err);
        CHECKF(rc != PSI_OK && strstr(err, "merges"), "%d %s", rc, err);
    }
    vocab_free(v);
    v = tiny("llama-bpe", true);
    if (v) {
        int32_t ids[4];
        psi_status rc = vocab_tokenize(v, "abab", 4, false, false, ids, 4, &n, err, sizeof err);
        CHECKF(rc == PSI_OK && n == 2 && ids[0] == 2 && ids[1] == 2, "%d %d %s", rc, n, err);
        rc = vocab_tokenize(v, "ba", 2, false, false, ids, 4, &n, err, sizeof err);
        CHECKF(rc == PSI_OK && n == 2 && ids[0] == 1 && ids[1] == 0, "%d %d %s", rc, n, err);
        rc = vocab_tokenize(v, "c", 1, false, false, ids, 4, &n, err, sizeof err);
        CHECKF(rc != PSI_OK, "no token for 'c': %d", rc);
    }
    vocab_free(v);
}

int main(void)
{
    gguf *g = NULL;
    vocab *v = NULL;
    psi_status rc = gguf_open(tu_data("vocab/llama3-vocab.gguf"), &g, err, sizeof err);
    CHECKF(rc == PSI_OK, "%s", err);
    if (rc == PSI_OK) {
        rc = vocab_load(&v, g, err, sizeof err);
        CHECKF(rc == PSI_OK, "%s", err);
        gguf_close(g);
    }
    if (v) {
        test_golden(v);
        test_chktxt(v);
        test_misc(v);
        vocab_free(v);
    }
    test_pre_errors();
    return tu_finish("test_tokenizer_bpe");
}
