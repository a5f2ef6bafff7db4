/*
 * tokenizer_spm.c — SentencePiece BPE encoding (tokenizer.ggml.model "llama").
 *
 * The algorithm of SentencePiece's bpe_model.cc, as llama.cpp's SPM
 * tokenizer runs it on GGUF vocabularies:
 *  1. a space is put in front of non-empty text (add_space_prefix, the
 *     "dummy prefix"; only for text at the start or after a special token)
 *     and every ' ' becomes U+2581 "▁";
 *  2. the text is split into UTF-8 characters (a byte that does not start a
 *     valid sequence is a symbol of its own);
 *  3. while some adjacent pair of symbols concatenates to a vocabulary
 *     token, the pair whose token has the highest score is merged (ties: the
 *     leftmost pair). A max-heap of candidate pairs keeps this O(n log n);
 *     entries made stale by earlier merges are skipped when popped;
 *  4. each final symbol is its token; a symbol that is not one (only single
 *     characters can be: merges only ever make vocabulary tokens, so
 *     llama.cpp's "resegment" never has to split a merged symbol) becomes
 *     one byte token <0xXX> per UTF-8 byte, or one unknown token for the
 *     character when the vocabulary lacks some of those byte tokens.
 * Only NORMAL and USER_DEFINED tokens take part, so control, byte and unused
 * tokens are never produced from plain text.
 */
#include <inttypes.h>

#include "tokenizer.h"
#include "util.h"

typedef struct sym {
    int32_t start; /* byte offset in the normalised text */
    int32_t n;     /* bytes; 0 once merged into its left neighbour */
    int32_t prev, next;
} sym;

typedef struct pair {
    float score;
    int32_t left, right;
    int32_t size; /* bytes of the merged text when the entry was made */
} pair;

typedef struct heap {
    pair *a;
    size_t n, cap;
} heap;

/* a comes out before b */
static bool pair_before(const pair *a, const pair *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static bool heap_push(heap *h, pair p)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64, bytes;
        if (size_mul_ovf(cap, sizeof *h->a, &bytes)) return false;
        pair *a = mem_realloc(h->a, bytes);
        if (!a) return false;
        h->a = a;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!pair_before(&p, &h->a[up])) break;
        h->a[i] = h->a[up];
        i = up;
    }
    h->a[i] = p;
    return true;
}

static pair heap_pop(heap *h)
{
    pair top = h->a[0];
    pair last = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && pair_before(&h->a[c + 1], &h->a[c])) c++;
        if (!pair_before(&h->a[c], &last)) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n) h->a[i] = last;
    return top;
}

static bool mergeable(const vocab *v, int32_t id)
{
    if (id < 0) return false;
    int t = v->tokens[id].type;
    return t == VOCAB_TT_NORMAL || t == VOCAB_TT_USER_DEFINED;
}

/* Queue the pair (l, r) when its concatenation is a token. */
static bool try_pair(const vocab *v, const char *text, const sym *s, heap *h, int32_t l, int32_t r)
{
    if (l < 0 || r < 0) return true;
    int32_t size = s[l].n + s[r].n;
    int32_t id = vocab_find(v, text + s[l].start, (size_t)size);
    if (!mergeable(v, id)) return true;
    pair p = {v->tokens[id].score, l, r, size};
    return heap_push(h, p);
}

static void emit(spm_out *o, int32_t id)
{
    if (o->n < o->max_tokens) o->tokens[o->n] = id;
    o->n++;
}

/* Length of the UTF-8 character at s[0..n): 1 for an invalid or cut one. */
static int32_t char_len(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 1;
    if (len > n) return 1;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80) return 1;
    return (int32_t)len;
}

/* Steps 2-4 for the normalised text norm[w0..w1), symbols in s. */
static psi_status spm_word(const vocab *v, const char *norm, size_t w0, size_t w1, sym *s, heap *hp, spm_out *o,
                           char *err, size_t err_size)
{
    /* 2. characters */
    int32_t ns = 0;
    for (size_t i = w0; i < w1;) {
        int32_t cl = char_len((const uint8_t *)norm + i, w1 - i);
        s[ns] = (sym){(int32_t)i, cl, ns - 1, ns + 1};
        ns++;
        i += (size_t)cl;
    }
    s[ns - 1].next = -1;

    /* 3. merges */
    for (int32_t i = 0; i + 1 < ns; i++)
        if (!try_pair(v, norm, s, hp, i, i + 1)) return PSI_ERR_NO_MEMORY;
    while (hp->n) {
        pair p = heap_pop(hp);
        sym *l = &s[p.left], *r = &s[p.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != p.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = p.left;
        if (!try_pair(v, norm, s, hp, l->prev, p.left) || !try_pair(v, norm, s, hp, p.left, l->next))
            return PSI_ERR_NO_MEMORY;
    }

    /* 4. output */
    for (int32_t i = 0; i >= 0; i = s[i].next) {
        const char *t = norm + s[i].start;
        int32_t id = vocab_find(v, t, (size_t)s[i].n);
        if (mergeable(v, id)) {
            emit(o, id);
            continue;
        }
        bool bytes = true;
        for (int32_t j = 0; j < s[i].n; j++)
            if (v->byte_tok[(uint8_t)t[j]] < 0) bytes = false;
        if (bytes) {
            for (int32_t j = 0; j < s[i].n; j++)
                emit(o, v->byte_tok[(uint8_t)t[j]]);
        } else if (v->unk >= 0) {
            emit(o, v->unk); /* one per character, as SentencePiece does */
        } else {
            err_setf(err, err_size,
                     "tokenize: a character has no token (the vocabulary has "
                     "neither byte tokens for it nor an unknown token)");
            return PSI_ERR_UNSUPPORTED;
        }
    }
    return PSI_OK;
}

psi_status spm_tokenize(const vocab *v, const char *text, size_t len, bool prefix, spm_out *o, char *err,
                        size_t err_size)
{
    if (len == 0) return PSI_OK;
    psi_status rc = PSI_ERR_NO_MEMORY;
    char *norm = NULL;
    sym *s = NULL;
    heap h = {0};

    /* 1. normalise: len <= INT32_MAX-16 (vocab_tokenize), so 3*(len+1) fits a size_t
     * and the offsets below fit an int32 as long as the result does. */
    size_t cap = 3 * (len + 1), nn = 0;
    norm = mem_alloc(cap);
    if (!norm) goto out;
    if (prefix && v->add_space_prefix) {
        memcpy(norm, "\xe2\x96\x81", 3);
        nn = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(norm + nn, "\xe2\x96\x81", 3);
            nn += 3;
        } else {
            norm[nn++] = text[i];
        }
    }
    if (nn > (size_t)INT32_MAX) {
        err_setf(err, err_size, "tokenize: text of %zu bytes is too long", len);
        rc = PSI_ERR_INVALID_ARG;
        goto out;
    }

    s = mem_alloc(nn * sizeof *s);
    if (!s) goto out;
    /* Steps 2-4 run word by word when no token can span a word start (see
     * spm_word_split): the same merges happen, on small heaps. */
    for (size_t w0 = 0; w0 < nn;) {
        size_t w1 = nn;
        if (v->spm_word_split)
            for (size_t i = w0 + 1; i + 3 <= nn; i++)
                if (!memcmp(norm + i, "\xe2\x96\x81", 3) && (i < 3 || memcmp(norm + i - 3, "\xe2\x96\x81", 3))) {
                    w1 = i;
                    break;
                }
        h.n = 0;
        rc = spm_word(v, norm, w0, w1, s, &h, o, err, err_size);
        if (rc != PSI_OK) goto out;
        w0 = w1;
    }
    rc = PSI_OK;

out:
    if (rc == PSI_ERR_NO_MEMORY) err_setf(err, err_size, "tokenize: out of memory");
    mem_free(h.a);
    mem_free(s);
    mem_free(norm);
    return rc;
}
