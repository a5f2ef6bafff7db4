/*
 * detok.c — streaming detokenizer: token ids in, text out, never half a
 * UTF-8 character. A character spelled by several byte-fallback tokens
 * (SentencePiece "<0xE2><0x82><0xAC>") or split across BPE tokens is held
 * until it is complete. Bytes that can never form a character are replaced
 * by U+FFFD, one per maximal invalid subpart (Unicode's recommended
 * practice, as Python's errors="replace" does); a character still
 * incomplete at the end becomes one U+FFFD when the stream is flushed.
 * psi_detokenize runs the same code over a whole array, so streamed and
 * one-shot output are the same bytes.
 */
#include <stdlib.h>

#include "model.h"
#include "tokenizer.h"
#include "util.h"

struct psi_detok {
    const vocab *v;
    int32_t prev;     /* previous token, -1 = start of text */
    uint8_t hold[4];  /* start of an incomplete character */
    size_t n_hold;
    char *out;        /* text of the last push/flush */
    size_t out_len, out_cap;
    char *piece;      /* scratch for one token's text */
    size_t piece_cap;
};

static const char replacement[3] = {'\xef', '\xbf', '\xbd'}; /* U+FFFD */

static bool out_reserve(psi_detok *d, size_t more)
{
    size_t need;
    if (size_add_ovf(d->out_len, more, &need)) return false;
    if (need <= d->out_cap) return true;
    size_t cap = d->out_cap ? d->out_cap : 64;
    while (cap < need) {
        if (size_mul_ovf(cap, 2, &cap)) return false;
    }
    char *p = mem_realloc(d->out, cap);
    if (!p) return false;
    d->out = p;
    d->out_cap = cap;
    return true;
}

static void out_put(psi_detok *d, const void *s, size_t n)
{
    memcpy(d->out + d->out_len, s, n);
    d->out_len += n;
}

/* Feed bytes: complete characters go out, a cut one at the end is held. */
static psi_status feed(psi_detok *d, const uint8_t *s, size_t n)
{
    /* at most 3 output bytes per input byte (a lone byte becomes U+FFFD) */
    size_t room;
    if (size_add_ovf(n, d->n_hold, &room) || size_mul_ovf(room, 3, &room) || !out_reserve(d, room))
        return PSI_ERR_NO_MEMORY;
    size_t i = 0;
    if (d->n_hold) { /* complete the held character first */
        uint8_t buf[4];
        size_t k = d->n_hold;
        memcpy(buf, d->hold, k);
        while (k < 4 && i < n) {
            buf[k++] = s[i++];
            size_t need, p = utf8_prefix(buf, k, &need);
            if (p == need) { /* complete */
                out_put(d, buf, k);
                d->n_hold = 0;
                break;
            }
            if (p < k) { /* broken: the held bytes were an invalid subpart */
                out_put(d, replacement, 3);
                d->n_hold = 0;
                i -= k - p; /* the bytes after the subpart are read again */
                break;
            }
        }
        if (d->n_hold) { /* still incomplete: all of s was taken */
            memcpy(d->hold, buf, k);
            d->n_hold = k;
            return PSI_OK;
        }
    }
    while (i < n) {
        if (s[i] < 0x80) {
            out_put(d, s + i, 1);
            i++;
            continue;
        }
        size_t need, p = utf8_prefix(s + i, n - i, &need);
        if (p == need && need > 1) {
            out_put(d, s + i, p);
        } else if (i + p == n && p < need) {
            memcpy(d->hold, s + i, p); /* cut by the end of this piece */
            d->n_hold = p;
        } else {
            out_put(d, replacement, 3);
        }
        i += p;
    }
    return PSI_OK;
}

psi_status psi_detok_new(const psi_model *m, int32_t prev, psi_detok **out)
{
    if (!out) return PSI_ERR_INVALID_ARG;
    *out = NULL;
    if (!m || prev < -1 || prev >= vocab_n_tokens(m->vocab)) return PSI_ERR_INVALID_ARG;
    psi_detok *d = mem_calloc(1, sizeof *d);
    if (!d) return PSI_ERR_NO_MEMORY;
    d->v = m->vocab;
    d->prev = prev;
    *out = d;
    return PSI_OK;
}

void psi_detok_free(psi_detok *d)
{
    if (!d) return;
    mem_free(d->out);
    mem_free(d->piece);
    mem_free(d);
}

psi_status psi_detok_push(psi_detok *d, int32_t token, const char **text, size_t *len)
{
    if (!d || !text || !len) return PSI_ERR_INVALID_ARG;
    *text = "";
    *len = 0;
    d->out_len = 0;
    int32_t n = vocab_token_to_piece(d->v, d->prev, token, d->piece, d->piece_cap);
    if (n < 0) return PSI_ERR_INVALID_ARG;
    if ((size_t)n > d->piece_cap) {
        char *p = mem_realloc(d->piece, (size_t)n);
        if (!p) return PSI_ERR_NO_MEMORY;
        d->piece = p;
        d->piece_cap = (size_t)n;
        vocab_token_to_piece(d->v, d->prev, token, d->piece, d->piece_cap);
    }
    psi_status rc = feed(d, (const uint8_t *)d->piece, (size_t)n);
    if (rc != PSI_OK) return rc;
    d->prev = token;
    *text = d->out ? d->out : "";
    *len = d->out_len;
    return PSI_OK;
}

psi_status psi_detok_flush(psi_detok *d, const char **text, size_t *len)
{
    if (!d || !text || !len) return PSI_ERR_INVALID_ARG;
    *text = "";
    *len = 0;
    d->out_len = 0;
    if (d->n_hold) {
        if (!out_reserve(d, 3)) return PSI_ERR_NO_MEMORY;
        out_put(d, replacement, 3);
        d->n_hold = 0;
    }
    *text = d->out ? d->out : "";
    *len = d->out_len;
    return PSI_OK;
}

size_t psi_detok_pending(const psi_detok *d) { return d ? d->n_hold : 0; }

size_t psi_utf8_sanitize(const char *s, size_t n, char *out, size_t size)
{
    if (!out || size == 0) return 0;
    return utf8_sanitize((const uint8_t *)(s ? s : ""), s ? n : 0, out, size);
}
