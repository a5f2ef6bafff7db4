/*
 * test_detok.c — round trips and streaming through the public API, on the
 * Llama 2 (SentencePiece) and Llama 3 (byte-level BPE) vocabularies:
 *  - detokenize(tokenize(s)) == s for a seeded corpus of valid UTF-8
 *    (many scripts, emoji, combining marks, whitespace runs, digits, NUL);
 *  - pushing ids one at a time gives the same bytes as decoding them at
 *    once, and every chunk is valid UTF-8 on its own (ids from the corpus
 *    and random ids, which spell broken byte sequences);
 *  - bad input: invalid UTF-8, a 10 MB prompt.
 */
#include <string.h>
#include <time.h>

#include "psi.h"
#include "testutil.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t below(uint32_t n) { return (uint32_t)(next() % n); }

/* Independent UTF-8 check (RFC 3629) for the test's own use. */
static bool valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        if (c >> 5 == 6) { len = 2; cp = c & 31; min = 0x80; }
        else if (c >> 4 == 14) { len = 3; cp = c & 15; min = 0x800; }
        else if (c >> 3 == 30) { len = 4; cp = c & 7; min = 0x10000; }
        else return false;
        if (i + len > n) return false;
        for (size_t k = 1; k < len; k++) {
            if (s[i + k] >> 6 != 2) return false;
            cp = cp << 6 | (s[i + k] & 63);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += len;
    }
    return true;
}

static void put_cp(char *b, size_t *n, uint32_t cp)
{
    if (cp < 0x80) b[(*n)++] = (char)cp;
    else if (cp < 0x800) {
        b[(*n)++] = (char)(0xc0 | cp >> 6);
        b[(*n)++] = (char)(0x80 | (cp & 63));
    } else if (cp < 0x10000) {
        b[(*n)++] = (char)(0xe0 | cp >> 12);
        b[(*n)++] = (char)(0x80 | (cp >> 6 & 63));
        b[(*n)++] = (char)(0x80 | (cp & 63));
    } else {
        b[(*n)++] = (char)(0xf0 | cp >> 18);
        b[(*n)++] = (char)(0x80 | (cp >> 12 & 63));
        b[(*n)++] = (char)(0x80 | (cp >> 6 & 63));
        b[(*n)++] = (char)(0x80 | (cp & 63));
    }
}

/* One random string of about `target` bytes in b (room for target + 64). */
static size_t gen_text(char *b, size_t target)
{
    static const char *const words[] = {"the", "Hello", "world", "don't", "I'm", "naïve", "café", "x",
                                        "psi", "HTTP/1.1", "a_b", "foo.bar", "C++", "(x)", "?!", "--"};
    static const uint32_t ranges[][2] = {
        {0x0400, 0x04ff}, /* Cyrillic */   {0x0370, 0x03ff}, /* Greek */
        {0x0600, 0x06ff}, /* Arabic */     {0x0900, 0x097f}, /* Devanagari */
        {0x4e00, 0x9fff}, /* CJK */        {0xac00, 0xd7a3}, /* Hangul */
        {0x3040, 0x30ff}, /* kana */       {0x1f300, 0x1faff}, /* emoji */
        {0x0300, 0x036f}, /* combining */  {0x00a0, 0x00ff}, /* Latin-1 */
        {0x2000, 0x206f}, /* punctuation, odd spaces */ {0x10000, 0x10ffff}, /* any supplementary */
    };
    size_t n = 0;
    while (n < target) {
        switch (below(6)) {
        case 0: { /* a word */
            const char *w = words[below(16)];
            memcpy(b + n, w, strlen(w));
            n += strlen(w);
            break;
        }
        case 1: { /* whitespace run */
            uint32_t k = 1 + below(4);
            for (uint32_t i = 0; i < k; i++) b[n++] = " \t\n\r  "[below(6)];
            break;
        }
        case 2: { /* digits */
            uint32_t k = 1 + below(7);
            for (uint32_t i = 0; i < k; i++) b[n++] = (char)('0' + below(10));
            break;
        }
        case 3: case 4: { /* characters of some script */
            const uint32_t *r = ranges[below(12)];
            uint32_t k = 1 + below(5);
            for (uint32_t i = 0; i < k; i++) {
                uint32_t cp = r[0] + below(r[1] - r[0] + 1);
                if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x41;
                put_cp(b, &n, cp);
            }
            break;
        }
        default: /* ASCII punctuation or a rare control byte (NUL included) */
            b[n++] = below(8) ? "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"[below(32)] : (char)below(32);
            break;
        }
    }
    return n;
}

static int32_t *tokenize(psi_model *m, const char *s, size_t n, int32_t *count)
{
    int32_t need = 0;
    psi_status rc = psi_tokenize(m, s, n, false, false, NULL, 0, &need);
    int32_t *ids = malloc((size_t)(need + 1) * sizeof *ids);
    if (rc == PSI_ERR_BUFFER_SMALL || rc == PSI_OK) rc = psi_tokenize(m, s, n, false, false, ids, need, count);
    CHECKF(rc == PSI_OK, "tokenize: %s", psi_model_errmsg(m));
    if (rc != PSI_OK) *count = 0;
    return ids;
}

static char *detokenize(psi_model *m, const int32_t *ids, int32_t n, size_t *len)
{
    size_t need = 0;
    psi_status rc = psi_detokenize(m, ids, n, NULL, 0, &need);
    CHECK(rc == PSI_OK || rc == PSI_ERR_BUFFER_SMALL);
    char *s = malloc(need + 1);
    CHECK(psi_detokenize(m, ids, n, s, need + 1, len) == PSI_OK && *len == need);
    return s;
}

/* Stream ids one by one; true when the result equals want[0..want_len)
 * and every chunk was valid UTF-8. */
static bool stream_equal(psi_model *m, const int32_t *ids, int32_t n, const char *want, size_t want_len,
                         int *bad_chunks)
{
    psi_detok *d = NULL;
    if (psi_detok_new(m, -1, &d) != PSI_OK) return false;
    size_t at = 0;
    bool same = true;
    for (int32_t i = 0; i <= n; i++) {
        const char *t;
        size_t k;
        psi_status rc = i < n ? psi_detok_push(d, ids[i], &t, &k) : psi_detok_flush(d, &t, &k);
        if (rc != PSI_OK) {
            same = false;
            break;
        }
        if (!valid_utf8((const unsigned char *)t, k)) (*bad_chunks)++;
        if (at + k > want_len || memcmp(want + at, t, k)) same = false;
        at += k;
    }
    psi_detok_free(d);
    return same && at == want_len;
}

static psi_model *load_vocab(const char *rel)
{
    psi_model_params p = psi_model_default_params();
    p.vocab_only = true;
    psi_model *m = NULL;
    char err[512];
    CHECKF(psi_model_load(tu_data(rel), &p, &m, err, sizeof err) == PSI_OK, "%s", err);
    return m;
}

static void test_vocab(const char *rel, const char *label)
{
    psi_model *m = load_vocab(rel);
    if (!m) return;
    int n_strings = 400, round_ok = 0, stream_ok = 0, bad_chunks = 0;
    size_t bytes = 0;
    char *buf = malloc(4096);
    for (int k = 0; k < n_strings; k++) {
        size_t n = gen_text(buf, 1 + below(600));
        bytes += n;
        int32_t count = 0;
        int32_t *ids = tokenize(m, buf, n, &count);
        size_t len = 0;
        char *back = detokenize(m, ids, count, &len);
        if (len == n && !memcmp(back, buf, n)) round_ok++;
        else if (round_ok == k) /* show the first failure */
            fprintf(stderr, "%s: round trip differs for a %zu-byte string (got %zu bytes)\n", label, n, len);
        if (stream_equal(m, ids, count, back, len, &bad_chunks)) stream_ok++;
        free(back);
        free(ids);
    }
    CHECKF(round_ok == n_strings, "%s: %d of %d round trips exact", label, round_ok, n_strings);
    CHECKF(stream_ok == n_strings, "%s: %d of %d streams equal", label, stream_ok, n_strings);

    /* random ids: broken byte sequences, control tokens, anything */
    int32_t n_vocab = psi_model_n_vocab(m), ids[64];
    int rand_ok = 0;
    for (int k = 0; k < 2000; k++) {
        int32_t n = (int32_t)(1 + below(64));
        for (int32_t i = 0; i < n; i++) {
            /* favour byte tokens (SPM 3..258) and short tokens */
            uint32_t r = below(4);
            ids[i] = (int32_t)(r == 0 ? 3 + below(256) : r == 1 ? below(1000) : below((uint32_t)n_vocab));
        }
        size_t len = 0;
        char *all = detokenize(m, ids, n, &len);
        if (!valid_utf8((const unsigned char *)all, len)) bad_chunks++;
        if (stream_equal(m, ids, n, all, len, &bad_chunks)) rand_ok++;
        free(all);
    }
    CHECKF(rand_ok == 2000, "%s: %d of 2000 random-id streams equal", label, rand_ok);
    CHECKF(bad_chunks == 0, "%s: %d chunks of invalid UTF-8", label, bad_chunks);
    printf("%s: %d/%d round trips (%zu bytes), %d/%d corpus streams, %d/2000 random-id streams equal, %d invalid chunks\n",
           label, round_ok, n_strings, bytes, stream_ok, n_strings, rand_ok, bad_chunks);

    /* invalid UTF-8 in and out: SentencePiece keeps the bytes (byte
     * fallback), BPE replaces them by U+FFFD; the decoded text is valid UTF-8 */
    static const char bad[] = "ok \xff\xfe ok \xe2\x82 end \xc0\xaf";
    int32_t count = 0;
    int32_t *bi = tokenize(m, bad, sizeof bad - 1, &count);
    size_t len = 0;
    char *back = detokenize(m, bi, count, &len);
    CHECKF(valid_utf8((const unsigned char *)back, len) && strstr(back, "ok ") && strstr(back, " end "),
           "%s: invalid input decoded to [%s]", label, back);
    CHECKF(strstr(back, "\xef\xbf\xbd"), "%s: U+FFFD expected in [%s]", label, back);
    free(back);
    free(bi);

    /* a character split over tokens is held back until complete */
    static const char euro[] = "\xe2\x82\xac"; /* € */
    bi = tokenize(m, euro, 3, &count);
    psi_detok *d = NULL;
    CHECK(psi_detok_new(m, -1, &d) == PSI_OK);
    /* feed the euro sign's bytes through single-byte tokens */
    int32_t byte_ids[3];
    int have = 0;
    for (int i = 0; i < 3; i++) /* the token whose text is that one byte */
        for (int32_t t = 0; t < n_vocab; t++) {
            char piece[8];
            if (psi_token_to_piece(m, 0, t, piece, sizeof piece) == 1 && piece[0] == euro[i]) {
                byte_ids[i] = t;
                have++;
                break;
            }
        }
    if (have == 3) {
        const char *t;
        size_t k;
        CHECK(psi_detok_push(d, byte_ids[0], &t, &k) == PSI_OK && k == 0 && psi_detok_pending(d) == 1);
        CHECK(psi_detok_push(d, byte_ids[1], &t, &k) == PSI_OK && k == 0 && psi_detok_pending(d) == 2);
        CHECK(psi_detok_push(d, byte_ids[2], &t, &k) == PSI_OK && k == 3 && !memcmp(t, euro, 3));
        CHECK(psi_detok_push(d, byte_ids[0], &t, &k) == PSI_OK && k == 0);
        CHECK(psi_detok_flush(d, &t, &k) == PSI_OK && k == 3 && !memcmp(t, "\xef\xbf\xbd", 3));
        CHECK(psi_detok_pending(d) == 0);
    }
    CHECKF(have == 3, "%s: no single-byte tokens for the euro sign's bytes", label);
    const char *t;
    size_t k;
    CHECK(psi_detok_push(d, -1, &t, &k) == PSI_ERR_INVALID_ARG);
    CHECK(psi_detok_push(d, n_vocab, &t, &k) == PSI_ERR_INVALID_ARG);
    psi_detok_free(d);
    free(bi);

    /* a 10 MB prompt tokenizes (no limit hit, no crash); NUL bytes are bytes */
    size_t big = 10u << 20, n = 0;
    char *text = malloc(big + 4096);
    while (n < big) n += gen_text(text + n, 512);
    double t0 = (double)clock();
    int32_t *many = tokenize(m, text, n, &count);
    double s = ((double)clock() - t0) / CLOCKS_PER_SEC;
    CHECKF(count > (int32_t)(n / 16) && count < (int32_t)n, "%s: 10 MB gave %d tokens", label, count);
    printf("%s: %zu-byte prompt -> %d tokens in %.2f s\n", label, n, count, s);
    free(many);
    free(text);
    free(buf);
    psi_model_free(m);
}

/* psi_utf8_sanitize: a table of inputs and the text they must give (one
 * U+FFFD per byte that does not begin a valid character), a small output
 * cut between characters, and random bytes always giving valid UTF-8 that
 * keeps every valid input as it is. */
static void test_sanitize(void)
{
#define R "\xef\xbf\xbd"
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"", ""},
        {"plain ascii", "plain ascii"},
        {"\xc3\xa9t\xc3\xa9 \xf0\x9f\xa6\x99", "\xc3\xa9t\xc3\xa9 \xf0\x9f\xa6\x99"},
        {"\xff", R},
        {"abc\xc3", "abc" R},
        {"\xed\xa0\x80 x", R R R " x"}, /* a surrogate */
        {"\xc0\xaf\xe2\x82", R R R R},  /* overlong, then cut short */
        {"a\x80\x80\x80-", "a" R R R "-"},
        {"\xf4\x90\x80\x80", R R R R}, /* above U+10FFFF */
        {"\xe2\x82\xac\xe2\x82", "\xe2\x82\xac" R R},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].in);
        char out[64];
        memset(out, 'x', sizeof out);
        size_t k = psi_utf8_sanitize(cases[i].in, n, out, 3 * n + 1);
        CHECKF(k == strlen(cases[i].want) && memcmp(out, cases[i].want, k + 1) == 0, "sanitize case %zu", i);
    }
    /* cut between characters: "é€" into 5 bytes (4 and the NUL) keeps é only */
    char small[5];
    CHECK(psi_utf8_sanitize("\xc3\xa9\xe2\x82\xac", 5, small, sizeof small) == 2 &&
          strcmp(small, "\xc3\xa9") == 0);
    CHECK(psi_utf8_sanitize("\xff", 1, small, 3) == 0 && small[0] == 0); /* U+FFFD needs 4 bytes with NUL */
    CHECK(psi_utf8_sanitize("abc", 3, small, 0) == 0);
#undef R
    int bad = 0, changed = 0;
    for (int it = 0; it < 2000; it++) {
        unsigned char in[24];
        char out[3 * sizeof in + 1];
        size_t n = below(sizeof in + 1);
        for (size_t j = 0; j < n; j++)
            in[j] = (unsigned char)(it % 2 ? next() : 0x80 + below(0x80));
        size_t k = psi_utf8_sanitize((const char *)in, n, out, sizeof out);
        if (!valid_utf8((const unsigned char *)out, k) || out[k] != 0) bad++;
        if (valid_utf8(in, n) && (k != n || memcmp(in, out, n) != 0)) changed++;
    }
    CHECKF(bad == 0 && changed == 0, "sanitize: %d invalid outputs, %d valid inputs changed", bad, changed);
}

int main(void)
{
    test_sanitize();
    test_vocab("vocab/ggml-vocab-llama-spm.gguf", "llama-spm");
    test_vocab("vocab/llama3-vocab.gguf", "llama3-bpe");
    return tu_finish("test_detok");
}
