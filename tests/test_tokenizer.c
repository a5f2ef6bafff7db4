/*
 * test_tokenizer.c — the vocabulary loader and tokenizers against golden ids:
 * stories260K (llama2.c's run.c), the Llama 2 SentencePiece vocabulary with
 * llama.cpp's 46 test strings (ids from the Hugging Face tokenizer), decode
 * of the Llama 3 BPE vocabulary (encoding: test_tokenizer_bpe.c), and
 * hand-made corrupt metadata.
 */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "gguf.h"
#include "testutil.h"
#include "tokenizer.h"
#include "util.h"

static char err[512];

static vocab *load_vocab(const char *rel, gguf **gout)
{
    gguf *g = NULL;
    vocab *v = NULL;
    err[0] = 0;
    psi_status rc = gguf_open(tu_data(rel), &g, err, sizeof err);
    CHECKF(rc == PSI_OK, "%s: %s", rel, err);
    if (rc != PSI_OK) return NULL;
    rc = vocab_load(&v, g, err, sizeof err);
    CHECKF(rc == PSI_OK, "%s: %s", rel, err);
    if (gout)
        *gout = g;
    else
        gguf_close(g); /* the vocab must not borrow from the file */
    return v;
}

static int32_t *tokenize(const vocab *v, const char *text, size_t len, bool bos, int32_t *n)
{
    return tu_tokenize(v, text, len, bos, n, err, sizeof err);
}

/* Decode ids[0..n) with prev chaining (prev = -1 for the first); malloc'd, NUL-terminated. */
static char *detok(const vocab *v, const int32_t *ids, int32_t n, int32_t prev, size_t *len)
{
    size_t cap = 64, pos = 0;
    char *s = malloc(cap);
    for (int32_t i = 0; i < n; i++) {
        int32_t k = vocab_token_to_piece(v, prev, ids[i], s + pos, cap - pos - 1);
        CHECKF(k >= 0, "token_to_piece(%d) = %d", ids[i], k);
        if (k < 0) break;
        if ((size_t)k > cap - pos - 1) {
            cap = (pos + (size_t)k + 1) * 2;
            s = realloc(s, cap);
            k = vocab_token_to_piece(v, prev, ids[i], s + pos, cap - pos - 1);
        }
        pos += (size_t)k;
        prev = ids[i];
    }
    s[pos] = 0;
    if (len) *len = pos;
    return s;
}

static bool ids_eq(const int32_t *a, int32_t na, const int32_t *b, int32_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, sizeof *a * (size_t)na) == 0);
}

static void print_ids(const char *what, const int32_t *ids, int32_t n)
{
    fprintf(stderr, "  %s:", what);
    for (int32_t i = 0; i < n; i++)
        fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

static int32_t parse_ids(const char *s, int32_t *ids, int32_t max)
{
    int32_t n = 0;
    char *end;
    for (;;) {
        long x = strtol(s, &end, 10);
        if (end == s) break;
        if (n < max) ids[n] = (int32_t)x;
        n++;
        s = end;
    }
    return n;
}

static void check_tok(const vocab *v, const char *text, bool bos, const int32_t *want, int32_t nwant)
{
    int32_t n;
    int32_t *ids = tokenize(v, text, strlen(text), bos, &n);
    bool ok = ids && ids_eq(ids, n, want, nwant);
    CHECKF(ok, "tokenize '%s'", text);
    if (!ok && ids) {
        print_ids("got ", ids, n);
        print_ids("want", want, nwant);
    }
    free(ids);
}

/* ------------------------------------------------------------ stories260K */

static void test_stories(void)
{
    vocab *v = load_vocab("models/stories260K.gguf", NULL);
    if (!v) return;
    CHECK(vocab_n_tokens(v) == 512);
    CHECK(vocab_bos(v) == 1 && vocab_eos(v) == 2 && vocab_unk(v) == 0);
    CHECK(vocab_add_bos(v));
    CHECK(vocab_is_eog(v, 2) && !vocab_is_eog(v, 1) && !vocab_is_eog(v, 13));

    check_tok(v, "Once upon a time", true, (const int32_t[]){1, 403, 407, 261, 378}, 5);
    check_tok(v, "The little dog", true, (const int32_t[]){1, 291, 376, 400, 428}, 5);
    check_tok(v, "", true, (const int32_t[]){1}, 1);
    check_tok(v, "", false, NULL, 0);
    check_tok(v, "Once upon a time", false, (const int32_t[]){403, 407, 261, 378}, 4);

    /* buffer too small: the needed count comes back, what fits is written */
    int32_t ids[8] = {0}, n = 0;
    psi_status rc = vocab_tokenize(v, "Once upon a time", 16, true, false, ids, 2, &n, err, sizeof err);
    CHECK(rc == PSI_ERR_BUFFER_SMALL && n == 5 && ids[0] == 1 && ids[1] == 403 && ids[2] == 0);
    rc = vocab_tokenize(v, "Once", 4, true, false, NULL, 0, &n, err, sizeof err);
    CHECK(rc == PSI_ERR_BUFFER_SMALL && n == 2);
    CHECK(vocab_tokenize(v, "x", 1, true, false, NULL, 3, &n, err, sizeof err) == PSI_ERR_INVALID_ARG);
    CHECK(vocab_tokenize(v, NULL, 1, true, false, ids, 8, &n, err, sizeof err) == PSI_ERR_INVALID_ARG);
    CHECK(vocab_tokenize(v, NULL, 0, true, false, ids, 8, &n, err, sizeof err) == PSI_OK && n == 1);

    /* pieces */
    char buf[16];
    CHECK(vocab_token_to_piece(v, 1, 403, buf, sizeof buf) == 4 && memcmp(buf, "Once", 4) == 0);
    CHECK(vocab_token_to_piece(v, -1, 403, buf, sizeof buf) == 4 && memcmp(buf, "Once", 4) == 0);
    CHECK(vocab_token_to_piece(v, 378, 403, buf, sizeof buf) == 5 && memcmp(buf, " Once", 5) == 0);
    CHECK(vocab_token_to_piece(v, 378, 403, buf, 2) == 5 && memcmp(buf, " O", 2) == 0);
    CHECK(vocab_token_to_piece(v, 378, 403, NULL, 0) == 5);
    CHECK(vocab_token_to_piece(v, 378, 13, buf, sizeof buf) == 1 && buf[0] == '\n');
    CHECK(vocab_token_to_piece(v, 378, 1, buf, sizeof buf) == 0);
    CHECK(vocab_token_to_piece(v, 378, 2, buf, sizeof buf) == 0);
    CHECK(vocab_token_to_piece(v, 378, 512, buf, sizeof buf) == -1);
    CHECK(vocab_token_to_piece(v, 378, -1, buf, sizeof buf) == -1);
    CHECK(vocab_token_to_piece(v, 378, 0, buf, sizeof buf) == 5 && memcmp(buf, "<unk>", 5) == 0);

    /* run.c's output for the reference sequences */
    size_t size;
    char *ref = tu_read_file(tu_data("models/stories260K-reference.txt"), &size);
    CHECKF(ref != NULL, "cannot read stories260K-reference.txt");
    int cases = 0;
    for (const char *p = ref; ref && (p = strstr(p, "token ids (pos 0..63 + final): ")); cases++) {
        p += strlen("token ids (pos 0..63 + final): ");
        int32_t seq[80];
        int32_t ns = parse_ids(p, seq, 80);
        CHECK(ns == 65);
        const char *a = strstr(p, "<<<\n"), *b = a ? strstr(a, "\n>>>") : NULL;
        CHECK(a && b);
        if (!a || !b || ns != 65) break;
        a += 4;
        size_t want_len = (size_t)(b - a); /* without run.c's final '\n' */
        /* run.c prints the piece of every token after the first */
        size_t got_len;
        char *got = detok(v, seq + 1, ns - 1, seq[0], &got_len);
        CHECKF(got_len == want_len && memcmp(got, a, want_len) == 0,
               "decode of reference %d:\n  got  '%s'\n  want '%.*s'", cases + 1, got, (int)want_len, a);
        free(got);
        p = b;
    }
    CHECK(cases == 3);
    free(ref);
    vocab_free(v);
}

/* ------------------------------------------------------ Llama 2 SPM vocab */

static void test_llama_spm(void)
{
    gguf *g = NULL;
    vocab *v = load_vocab("vocab/ggml-vocab-llama-spm.gguf", &g);
    if (!v) return;
    CHECK(vocab_n_tokens(v) == 32000);
    CHECK(vocab_bos(v) == 1 && vocab_eos(v) == 2);
    for (int b = 0; b < 256; b++)
        CHECK(v->byte_tok[b] == b + 3);

    /* every token text finds its own id (no duplicates in this vocab) */
    int bad = 0;
    for (int32_t i = 0; i < vocab_n_tokens(v); i++) {
        size_t len;
        const char *t = vocab_token_text(v, i, &len);
        if (vocab_find(v, t, len) != i) bad++;
    }
    CHECKF(bad == 0, "%d token texts do not map back to their id", bad);
    CHECK(vocab_find(v, "\xe2\x96\x81Hello", 8) == 15043);
    CHECK(vocab_find(v, "no such token", 13) == -1);
    CHECK(vocab_token_type(v, 13) == VOCAB_TT_BYTE && vocab_token_type(v, 1) == VOCAB_TT_CONTROL);
    gguf_close(g);

    /* golden vectors */
    size_t in_size, out_size;
    char *in = tu_read_file(tu_data("vocab/ggml-vocab-llama-spm.gguf.inp"), &in_size);
    char *out = tu_read_file(tu_data("vocab/ggml-vocab-llama-spm.gguf.out"), &out_size);
    CHECK(in && out);
    if (!in || !out) {
        free(in);
        free(out);
        vocab_free(v);
        return;
    }
    static const char sep[] = "\n__ggml_vocab_test__\n";
    int cases = 0, pass = 0;
    const char *p = in, *line = out;
    static int32_t want[4096];
    for (;;) {
        const char *e = strstr(p, sep);
        if (!e) break;
        const char *nl = strchr(line, '\n');
        CHECK(nl != NULL);
        if (!nl) break;
        size_t len = (size_t)(e - p);
        char *ln = strndup(line, (size_t)(nl - line));
        int32_t nw = parse_ids(ln, want, 4096);
        free(ln);
        int32_t n;
        int32_t *ids = tokenize(v, p, len, false, &n);
        bool ok = ids && ids_eq(ids, n, want, nw);
        CHECKF(ok, "llama-spm case %d '%.*s'", cases, (int)len, p);
        if (!ok && ids) {
            print_ids("got ", ids, n);
            print_ids("want", want, nw);
        }
        /* and back to the text */
        if (ids) {
            size_t dl;
            char *d = detok(v, ids, n, -1, &dl);
            CHECKF(dl == len && memcmp(d, p, len) == 0, "round trip of case %d: '%s'", cases, d);
            free(d);
        }
        pass += ok;
        free(ids);
        cases++;
        p = e + strlen(sep);
        line = nl + 1;
    }
    fprintf(stderr, "llama-spm golden vectors: %d of %d pass\n", pass, cases);
    CHECK(cases == 46);
    free(in);
    free(out);

    /* round trips, with and without BOS */
    static const char *const texts[] = {
        "Hello world",
        " leading space and  double  spaces ",
        "emoji \xf0\x9f\xa6\x99\xf0\x9f\x9a\x80 and CJK \xe6\x88\x91\xe6\x83\xb3\xe5\x9c\xa8",
        "Khmer \xe1\x9e\x80\xe1\x9e\xb6\xe1\x9e\x93\xe1\x9f\x8b byte fallback",
        "invalid utf-8: \xff\xfe \xc3 \xe2\x96 end\x80",
        "tabs\tand\nnewlines\r\n",
        "<s> and </s> and <0x41> stay text",
        "   ",
        "\n",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        for (int bos = 0; bos < 2; bos++) {
            int32_t n;
            size_t len = strlen(texts[i]);
            int32_t *ids = tokenize(v, texts[i], len, bos, &n);
            CHECK(ids != NULL);
            if (!ids) continue;
            CHECK(!bos || (n > 0 && ids[0] == 1));
            for (int32_t k = bos; k < n; k++)
                CHECKF(vocab_token_type(v, ids[k]) != VOCAB_TT_CONTROL, "control id from text");
            size_t dl;
            char *d = detok(v, ids, n, -1, &dl);
            CHECKF(dl == len && memcmp(d, texts[i], len) == 0, "round trip '%s' -> '%s'", texts[i], d);
            free(d);
            free(ids);
        }
    }
    /* a byte-fallback character gives its UTF-8 bytes as <0xXX> tokens */
    check_tok(v, "\xe1\x9e\x80", false, (const int32_t[]){29871, 31849}, 2);
    check_tok(v, "\xf0\x9f\xa6\x99", false, (const int32_t[]){29871, 243, 162, 169, 156}, 5);

    /* a long text: the heap keeps this fast (no timing check, just print) */
    size_t big = 1u << 20;
    char *text = malloc(big + 1);
    static const char chunk[] = "The quick brown fox jumps over the lazy dog. \xe6\x88\x91 ";
    for (size_t i = 0; i < big; i++)
        text[i] = chunk[i % (sizeof chunk - 1)];
    text[big] = 0;
    clock_t t0 = clock();
    int32_t n;
    int32_t *ids = tokenize(v, text, big, true, &n);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    fprintf(stderr, "tokenized %zu bytes into %d tokens in %.3f s\n", big, n, secs);
    CHECK(ids != NULL && n > 0);
    if (ids) {
        size_t dl;
        char *d = detok(v, ids, n, -1, &dl);
        CHECK(dl == big && memcmp(d, text, big) == 0);
        free(d);
    }
    free(ids);
    /* a worst case for merging: one long run of the same character */
    memset(text, 'a', big);
    t0 = clock();
    ids = tokenize(v, text, big, false, &n);
    secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    fprintf(stderr, "tokenized %zu x 'a' into %d tokens in %.3f s\n", big, n, secs);
    CHECK(ids != NULL && n > 0);
    free(ids);
    free(text);

    /* allocation failures while tokenizing: clean errors, no leaks */
    for (long k = 0; k < 8; k++) {
        int32_t m;
        psi__mem_fail_after(k);
        psi_status rc = vocab_tokenize(v, "Hello world", 11, true, false, NULL, 0, &m, err, sizeof err);
        psi__mem_fail_after(-1);
        CHECKF(rc == PSI_ERR_NO_MEMORY || rc == PSI_ERR_BUFFER_SMALL, "fail after %ld: %d", k, rc);
    }
    vocab_free(v);
}

/* ------------------------------------------------------ Llama 3 BPE vocab */

static void test_llama3_bpe(void)
{
    vocab *v = load_vocab("vocab/llama3-vocab.gguf", NULL);
    if (!v) return;
    CHECK(vocab_n_tokens(v) == 128256);
    CHECK(vocab_bos(v) == 128000 && vocab_eos(v) == 128001);
    CHECK(vocab_add_bos(v));
    CHECK(vocab_is_eog(v, 128001) && vocab_is_eog(v, 128009) && !vocab_is_eog(v, 128000));
    CHECK(vocab_is_eog(v, vocab_find(v, "<|eom_id|>", 10)) == (vocab_find(v, "<|eom_id|>", 10) >= 0));

    char buf[64];
    int32_t hello = vocab_find(v, "Hello", 5);
    int32_t world = vocab_find(v, "\xc4\xa0World", 7); /* "ĠWorld" */
    int32_t nl = vocab_find(v, "\xc4\x8a", 2);         /* "Ċ" = '\n' */
    CHECK(hello >= 0 && world >= 0 && nl >= 0);
    int32_t k = vocab_token_to_piece(v, -1, hello, buf, sizeof buf);
    CHECK(k == 5 && memcmp(buf, "Hello", 5) == 0);
    k = vocab_token_to_piece(v, -1, world, buf, sizeof buf); /* no space stripping */
    CHECK(k == 6 && memcmp(buf, " World", 6) == 0);
    k = vocab_token_to_piece(v, hello, nl, buf, sizeof buf);
    CHECK(k == 1 && buf[0] == '\n');
    CHECK(vocab_token_to_piece(v, -1, 128000, buf, sizeof buf) == 0);
    CHECK(vocab_token_to_piece(v, -1, 128009, buf, sizeof buf) == 0);
    /* a token whose text is a Latin-1 byte sequence: "Ã©" is the UTF-8 of 'é' */
    int32_t e = vocab_find(v, "\xc3\x83\xc2\xa9", 4);
    if (e >= 0) {
        k = vocab_token_to_piece(v, -1, e, buf, sizeof buf);
        CHECK(k == 2 && memcmp(buf, "\xc3\xa9", 2) == 0);
    }

    /* encoding: see test_tokenizer_bpe.c */
    int32_t n = 7, ids[4];
    psi_status rc = vocab_tokenize(v, "Hello world", 11, true, false, ids, 4, &n, err, sizeof err);
    CHECKF(rc == PSI_OK && n == 3 && ids[0] == 128000 && ids[1] == hello && ids[2] == 1917, "%d %s", rc, err);
    vocab_free(v);
}

/* ------------------------------------------------- hand-made metadata */

/* What to put in the tiny vocabulary's metadata. */
typedef struct spec {
    const char *model; /* NULL: key absent */
    int n_tokens;      /* tokens written */
    int tokens_as_u32; /* write tokens as an array of u32 instead */
    int n_scores;      /* -1: key absent */
    int n_types;       /* -1: key absent */
    int32_t bad_type;  /* when nonzero: token_type[3] */
    uint32_t bos;      /* written as u32 */
    int byte_tok_bad;  /* give token 6 type BYTE with a non-<0xXX> text */
    float nan_score;   /* nonzero: scores[4] = NaN */
} spec;

static const char *const tiny_tokens[] = {
    "<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b", "ab", "\342\226\201a", "ba", "c",
};
#define TINY_N 10
static const float tiny_scores[] = {0, 0, 0, -1, -2, -2, -3, -4, -3, -5};
static const int32_t tiny_types[] = {2, 3, 3, 1, 1, 1, 1, 1, 1, 1};

static uint8_t *build_gguf(const spec *s, size_t *size)
{
    tu_buf b = {0};
    uint64_t n_kv =
        (uint64_t)((s->model != NULL) + (s->n_tokens > 0) + (s->n_scores >= 0) + (s->n_types >= 0) + 1);
    tu_put(&b, "GGUF", 4);
    tu_put_u32(&b, 3);
    tu_put_u64(&b, 0);
    tu_put_u64(&b, n_kv);
    if (s->model) {
        tu_put_gguf_key(&b, "tokenizer.ggml.model", GGUF_STRING);
        tu_put_gguf_str(&b, s->model);
    }
    if (s->n_tokens > 0) {
        tu_put_gguf_key(&b, "tokenizer.ggml.tokens", GGUF_ARRAY);
        tu_put_u32(&b, s->tokens_as_u32 ? GGUF_U32 : GGUF_STRING);
        tu_put_u64(&b, (uint64_t)s->n_tokens);
        for (int i = 0; i < s->n_tokens; i++) {
            if (s->tokens_as_u32)
                tu_put_u32(&b, (uint32_t)i);
            else if (i == 6 && s->byte_tok_bad)
                tu_put_gguf_str(&b, "<0xZZ>");
            else
                tu_put_gguf_str(&b, tiny_tokens[i % TINY_N]);
        }
    }
    if (s->n_scores >= 0) {
        tu_put_gguf_key(&b, "tokenizer.ggml.scores", GGUF_ARRAY);
        tu_put_u32(&b, GGUF_F32);
        tu_put_u64(&b, (uint64_t)s->n_scores);
        for (int i = 0; i < s->n_scores; i++) {
            float f = tiny_scores[i % TINY_N];
            if (i == 4 && s->nan_score != 0) f = s->nan_score;
            tu_put_f32(&b, f);
        }
    }
    if (s->n_types >= 0) {
        tu_put_gguf_key(&b, "tokenizer.ggml.token_type", GGUF_ARRAY);
        tu_put_u32(&b, GGUF_I32);
        tu_put_u64(&b, (uint64_t)s->n_types);
        for (int i = 0; i < s->n_types; i++) {
            int32_t t = tiny_types[i % TINY_N];
            if (i == 3 && s->bad_type) t = s->bad_type;
            if (i == 6 && s->byte_tok_bad) t = VOCAB_TT_BYTE;
            tu_put_i32(&b, t);
        }
    }
    tu_put_gguf_key(&b, "tokenizer.ggml.bos_token_id", GGUF_U32);
    tu_put_u32(&b, s->bos);
    tu_put_pad(&b, 32);
    *size = b.len;
    return b.p;
}

/* Parse the spec; returns vocab_load's status and leaves the message in err. */
static psi_status load_spec(const spec *s, vocab **out)
{
    size_t size;
    uint8_t *buf = build_gguf(s, &size);
    gguf *g = NULL;
    err[0] = 0;
    *out = NULL;
    psi_status rc = gguf_parse(buf, size, "tiny.gguf", &g, err, sizeof err);
    CHECKF(rc == PSI_OK, "gguf_parse: %s", err);
    if (rc == PSI_OK) {
        rc = vocab_load(out, g, err, sizeof err);
        gguf_close(g);
    }
    free(buf);
    return rc;
}

static void expect_fail(const spec *s, psi_status want, const char *needle)
{
    vocab *v = (vocab *)1;
    psi_status rc = load_spec(s, &v);
    CHECKF(rc == want && v == NULL && strstr(err, "tiny.gguf") && strstr(err, needle),
           "want %d with '%s', got %d: '%s'", want, needle, rc, err);
    vocab_free(v);
}

static void test_corrupt(void)
{
    const spec good = {"llama", TINY_N, 0, TINY_N, TINY_N, 0, 1, 0, 0};
    vocab *v;
    psi_status rc = load_spec(&good, &v);
    CHECKF(rc == PSI_OK, "%s", err);
    if (v) {
        CHECK(vocab_n_tokens(v) == TINY_N && vocab_bos(v) == 1);
        /* "ab" (-3) beats "▁a" (-4): ▁ a b -> ▁ ab; "ba" (-3) ties "ab", leftmost wins;
         * 'd' is unknown and the vocab has no byte tokens: one <unk> */
        check_tok(v, "ab", true, (const int32_t[]){1, 3, 6}, 3);
        check_tok(v, "a", false, (const int32_t[]){7}, 1);
        check_tok(v, "aba", false, (const int32_t[]){3, 6, 4}, 3);
        check_tok(v, "bab", false, (const int32_t[]){3, 8, 5}, 3);
        check_tok(v,
                  "d\xc3\xa9"
                  "c",
                  false, (const int32_t[]){3, 0, 0, 9}, 4);
        vocab_free(v);
    }
    spec s;
    s = good;
    s.bos = UINT32_MAX; /* "no BOS" */
    rc = load_spec(&s, &v);
    CHECKF(rc == PSI_OK && vocab_bos(v) == -1 && !vocab_add_bos(v), "%s", err);
    if (v) check_tok(v, "a", true, (const int32_t[]){7}, 1);
    vocab_free(v);

    s = good;
    s.n_scores = 7;
    expect_fail(&s, PSI_ERR_FORMAT, "tokenizer.ggml.scores has 7 entries, expected 10");
    s = good;
    s.n_types = 12;
    expect_fail(&s, PSI_ERR_FORMAT, "tokenizer.ggml.token_type has 12 entries, expected 10");
    s = good;
    s.bos = 10;
    expect_fail(&s, PSI_ERR_FORMAT, "tokenizer.ggml.bos_token_id = 10 is out of range");
    s = good;
    s.bad_type = 9;
    expect_fail(&s, PSI_ERR_FORMAT, "tokenizer.ggml.token_type[3]");
    s = good;
    s.n_scores = -1;
    expect_fail(&s, PSI_ERR_FORMAT, "tokenizer.ggml.scores is missing");
    s = good;
    s.n_tokens = 0;
    expect_fail(&s, PSI_ERR_FORMAT, "tokenizer.ggml.tokens is missing");
    s = good;
    s.tokens_as_u32 = 1;
    expect_fail(&s, PSI_ERR_FORMAT, "tokenizer.ggml.tokens is not an array of strings");
    s = good;
    s.model = NULL;
    expect_fail(&s, PSI_ERR_FORMAT, "tokenizer.ggml.model");
    s = good;
    s.model = "bert";
    expect_fail(&s, PSI_ERR_UNSUPPORTED, "tokenizer.ggml.model");
    s = good;
    s.byte_tok_bad = 1;
    expect_fail(&s, PSI_ERR_FORMAT, "tokenizer.ggml.tokens[6]");
    s = good;
    s.nan_score = __builtin_nanf("");
    expect_fail(&s, PSI_ERR_FORMAT, "tokenizer.ggml.scores[4] is NaN");

    /* gpt2 without scores is fine; types optional */
    s = good;
    s.model = "gpt2";
    s.n_scores = -1;
    s.n_types = -1;
    rc = load_spec(&s, &v);
    CHECKF(rc == PSI_OK, "%s", err);
    vocab_free(v);

    /* allocation failures while loading: clean errors, no leaks */
    size_t size;
    uint8_t *buf = build_gguf(&good, &size);
    gguf *g = NULL;
    if (gguf_parse(buf, size, "tiny.gguf", &g, err, sizeof err) == PSI_OK) {
        int ok_at = -1;
        for (long k = 0; k < 32 && ok_at < 0; k++) {
            psi__mem_fail_after(k);
            rc = vocab_load(&v, g, err, sizeof err);
            psi__mem_fail_after(-1);
            if (rc == PSI_OK) {
                ok_at = (int)k;
                vocab_free(v);
            } else {
                CHECKF(rc == PSI_ERR_NO_MEMORY && v == NULL && strstr(err, "tiny.gguf"),
                       "fail after %ld: %d '%s'", k, rc, err);
            }
        }
        CHECK(ok_at > 0);
        gguf_close(g);
    }
    free(buf);
}

/* Word-by-word SentencePiece encoding (spm_word_split) gives exactly the
 * ids of encoding the whole text at once, on text rich in spaces. */
static void test_spm_word_split(void)
{
    vocab *v = load_vocab("vocab/ggml-vocab-llama-spm.gguf", NULL);
    if (!v) return;
    CHECK(v->spm_word_split);
    static const char *const bits[] = {" ", "  ", "   ", "\t", "\n", "the", "Hello", "ab", "▁", "x▁y", "é", "中文",
                                       "🦙", "1234", "--", "don't", " a", "def", "    return", "\xff"};
    uint64_t r = 12345;
    int same = 0;
    char text[2048];
    for (int k = 0; k < 300; k++) {
        size_t n = 0;
        while (n < 1500) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            const char *b = bits[(r >> 33) % 20];
            memcpy(text + n, b, strlen(b));
            n += strlen(b);
        }
        int32_t na = 0, nb = 0;
        int32_t *a = tokenize(v, text, n, k & 1, &na);
        v->spm_word_split = false;
        int32_t *b = tokenize(v, text, n, k & 1, &nb);
        v->spm_word_split = true;
        if (na == nb && na > 0 && !memcmp(a, b, (size_t)na * sizeof *a)) same++;
        free(a);
        free(b);
    }
    CHECKF(same == 300, "word split differs from whole-text encoding on %d of 300 texts", 300 - same);
    vocab_free(v);
}

int main(void)
{
    test_stories();
    test_spm_word_split();
    test_llama_spm();
    test_llama3_bpe();
    test_corrupt();
    return tu_finish("test_tokenizer");
}
