/*
 * tokenizer_bpe.c — Llama 3 byte-level BPE encoding ("gpt2" vocabularies
 * with tokenizer.ggml.pre = "llama-bpe").
 *
 * Text is split into pre-tokens by the Llama 3 regex (PCRE2, UTF + UCP);
 * each pre-token's bytes are mapped through GPT-2's bytes_to_unicode table;
 * a pre-token that is itself a vocabulary token is emitted whole (Llama 3's
 * ignore_merges), otherwise its characters are merged pair by pair, lowest
 * tokenizer.ggml.merges rank first (ties: leftmost). Invalid UTF-8 in the
 * input is replaced by U+FFFD before splitting.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <inttypes.h>
#include <pcre2.h>

#include "tokenizer.h"
#include "util.h"

#define LLAMA3_PRE_RE                                                                              \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

struct bpe_state {
    char pre[68];     /* tokenizer.ggml.pre (cut to 64 bytes); "" when absent */
    bool has_pre;
    bool pre_ok;      /* pre is "llama-bpe" and the regex compiled */
    pcre2_code *re;
    /* merges: "left right" -> rank (its index); open addressing, -1 = empty */
    int32_t n_merges;
    char *pool;
    uint32_t *off, *len;
    int32_t *hash;
    uint32_t mask;
};

static uint32_t fnv(uint32_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

/* Rank of the merge "l r", or -1. */
static int32_t merge_rank(const struct bpe_state *b, const char *l, size_t ln, const char *r, size_t rn)
{
    if (!b->hash) return -1;
    uint32_t h = fnv(fnv(fnv(2166136261u, l, ln), " ", 1), r, rn);
    for (uint32_t i = h & b->mask;; i = (i + 1) & b->mask) {
        int32_t m = b->hash[i];
        if (m < 0) return -1;
        const char *k = b->pool + b->off[m];
        if (b->len[m] == ln + 1 + rn && memcmp(k, l, ln) == 0 && k[ln] == ' ' && memcmp(k + ln + 1, r, rn) == 0)
            return m;
    }
}

void bpe_free(struct bpe_state *b)
{
    if (!b) return;
    if (b->re) pcre2_code_free(b->re);
    mem_free(b->pool);
    mem_free(b->off);
    mem_free(b->len);
    mem_free(b->hash);
    mem_free(b);
}

psi_status bpe_load(vocab *v, const gguf *g, char *err, size_t err_size)
{
    const char *path = g->path ? g->path : "(gguf)";
    struct bpe_state *b = mem_calloc(1, sizeof *b);
    if (!b) return PSI_ERR_NO_MEMORY;
    v->bpe = b;

    gguf_str pre;
    if (gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL, 0) == PSI_OK) {
        size_t n = pre.len > 64 ? 64 : (size_t)pre.len;
        memcpy(b->pre, pre.ptr, n);
        b->pre[n] = 0;
        for (size_t i = 0; i < n; i++) /* keep error messages one printable line */
            if ((uint8_t)b->pre[i] < 0x20 || b->pre[i] == 0x7f) b->pre[i] = '?';
        b->has_pre = true;
        if (gguf_str_eq(pre, "llama-bpe")) {
            int ec;
            PCRE2_SIZE eo;
            b->re = pcre2_compile((PCRE2_SPTR)LLAMA3_PRE_RE, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ec,
                                  &eo, NULL);
            if (!b->re) {
                PCRE2_UCHAR msg[128];
                pcre2_get_error_message(ec, msg, sizeof msg);
                err_setf(err, err_size, "%s: cannot compile the llama-bpe pre-tokenizer regex: %s", path,
                         (const char *)msg);
                return PSI_ERR_UNSUPPORTED;
            }
            (void)pcre2_jit_compile(b->re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
            b->pre_ok = true;
        }
    }

    int64_t k = gguf_find_key(g, "tokenizer.ggml.merges");
    if (k < 0) return PSI_OK; /* reported when tokenizing */
    const gguf_kv *mk = &g->kv[k];
    if (mk->type != GGUF_ARRAY || mk->arr_type != GGUF_STRING) {
        err_setf(err, err_size, "%s: tokenizer.ggml.merges is not an array of strings", path);
        return PSI_ERR_FORMAT;
    }
    if (mk->n > (1u << 30)) {
        err_setf(err, err_size, "%s: tokenizer.ggml.merges has %" PRIu64 " entries (limit %d)", path, mk->n,
                 1 << 30);
        return PSI_ERR_FORMAT;
    }
    int32_t n = (int32_t)mk->n;
    size_t pool = 0;
    for (int32_t i = 0; i < n; i++) {
        if (mk->strs[i].len > (1u << 20)) {
            err_setf(err, err_size, "%s: tokenizer.ggml.merges[%" PRId32 "] is %" PRIu64 " bytes long", path,
                     i, mk->strs[i].len);
            return PSI_ERR_FORMAT;
        }
        if (size_add_ovf(pool, (size_t)mk->strs[i].len, &pool)) return PSI_ERR_NO_MEMORY;
    }
    if (pool > UINT32_MAX) {
        err_setf(err, err_size, "%s: tokenizer.ggml.merges is too large", path);
        return PSI_ERR_FORMAT;
    }
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)n)
        cap *= 2;
    b->pool = mem_alloc(pool ? pool : 1);
    b->off = mem_alloc((size_t)(n ? n : 1) * sizeof *b->off);
    b->len = mem_alloc((size_t)(n ? n : 1) * sizeof *b->len);
    b->hash = mem_alloc((size_t)cap * sizeof *b->hash);
    if (!b->pool || !b->off || !b->len || !b->hash) return PSI_ERR_NO_MEMORY;
    memset(b->hash, 0xff, (size_t)cap * sizeof *b->hash);
    b->mask = cap - 1;
    b->n_merges = n;
    size_t p = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t l = (size_t)mk->strs[i].len;
        if (l) memcpy(b->pool + p, mk->strs[i].ptr, l);
        b->off[i] = (uint32_t)p;
        b->len[i] = (uint32_t)l;
        p += l;
        const char *s = b->pool + b->off[i];
        for (uint32_t j = fnv(2166136261u, s, l) & b->mask;; j = (j + 1) & b->mask) {
            int32_t o = b->hash[j];
            if (o < 0) {
                b->hash[j] = i;
                break;
            }
            if (b->len[o] == l && memcmp(b->pool + b->off[o], s, l) == 0) break; /* duplicate: first wins */
        }
    }
    return PSI_OK;
}

/* ------------------------------------------------------------- encoding */

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the other
 * 68 in increasing order to U+0100.. */
static uint32_t byte_to_cp(uint8_t c)
{
    if ((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174) return c;
    if (c <= 32) return 256u + c;
    if (c <= 160) return 256u + 33 + (c - 127u);
    return 256u + 67; /* 173 */
}

typedef struct bsym {
    int32_t start, n; /* bytes in the mapped text; n = 0 once merged away */
    int32_t prev, next;
} bsym;

typedef struct bpair {
    int32_t rank, left, right, size;
} bpair;

typedef struct bwork {
    char *map;
    size_t map_cap;
    bsym *sym;
    size_t sym_cap;
    bpair *heap;
    size_t heap_n, heap_cap;
} bwork;

static bool bp_before(const bpair *a, const bpair *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->left < b->left;
}

static bool heap_push(bwork *w, bpair p)
{
    if (w->heap_n == w->heap_cap) {
        size_t cap = w->heap_cap ? w->heap_cap * 2 : 64;
        bpair *a = mem_realloc(w->heap, cap * sizeof *a);
        if (!a) return false;
        w->heap = a;
        w->heap_cap = cap;
    }
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!bp_before(&p, &w->heap[up])) break;
        w->heap[i] = w->heap[up];
        i = up;
    }
    w->heap[i] = p;
    return true;
}

static bpair heap_pop(bwork *w)
{
    bpair top = w->heap[0], last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bp_before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!bp_before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

static bool try_pair(const vocab *v, bwork *w, int32_t l, int32_t r)
{
    if (l < 0 || r < 0) return true;
    const bsym *a = &w->sym[l], *b = &w->sym[r];
    int32_t rank = merge_rank(v->bpe, w->map + a->start, (size_t)a->n, w->map + b->start, (size_t)b->n);
    if (rank < 0) return true;
    return heap_push(w, (bpair){rank, l, r, a->n + b->n});
}

static psi_status emit(spm_out *o, int32_t id, char *err, size_t err_size)
{
    if (o->n == INT32_MAX) {
        err_setf(err, err_size, "tokenize: the text needs too many tokens");
        return PSI_ERR_INVALID_ARG;
    }
    if (o->n < o->max_tokens) o->tokens[o->n] = id;
    o->n++;
    return PSI_OK;
}

/* One pre-token: bytes s[0..n). */
static psi_status encode_piece(const vocab *v, bwork *w, const uint8_t *s, size_t n, spm_out *o, char *err,
                               size_t err_size)
{
    if (n == 0) return PSI_OK;
    if (n > SIZE_MAX / 2 || n > (size_t)INT32_MAX / 2) return PSI_ERR_NO_MEMORY;
    if (w->map_cap < 2 * n) {
        char *m = mem_realloc(w->map, 2 * n);
        if (!m) return PSI_ERR_NO_MEMORY;
        w->map = m;
        w->map_cap = 2 * n;
    }
    if (w->sym_cap < n) {
        bsym *a = mem_realloc(w->sym, n * sizeof *a);
        if (!a) return PSI_ERR_NO_MEMORY;
        w->sym = a;
        w->sym_cap = n;
    }
    int32_t ml = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = byte_to_cp(s[i]);
        w->sym[i] = (bsym){ml, 0, (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1};
        if (cp < 0x80) {
            w->map[ml++] = (char)cp;
        } else {
            w->map[ml++] = (char)(0xc0 | (cp >> 6));
            w->map[ml++] = (char)(0x80 | (cp & 0x3f));
        }
        w->sym[i].n = ml - w->sym[i].start;
    }
    int32_t whole = vocab_find(v, w->map, (size_t)ml);
    if (whole >= 0) return emit(o, whole, err, err_size);

    w->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (!try_pair(v, w, (int32_t)i, (int32_t)i + 1)) return PSI_ERR_NO_MEMORY;
    while (w->heap_n) {
        bpair p = heap_pop(w);
        bsym *l = &w->sym[p.left], *r = &w->sym[p.right];
        if (l->n == 0 || r->n == 0 || l->next != p.right || l->n + r->n != p.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) w->sym[r->next].prev = p.left;
        if (!try_pair(v, w, l->prev, p.left) || !try_pair(v, w, p.left, l->next)) return PSI_ERR_NO_MEMORY;
    }
    for (int32_t i = 0; i >= 0; i = w->sym[i].next) {
        const bsym *y = &w->sym[i];
        int32_t id = vocab_find(v, w->map + y->start, (size_t)y->n);
        if (id >= 0) {
            psi_status rc = emit(o, id, err, err_size);
            if (rc != PSI_OK) return rc;
            continue;
        }
        /* not in the vocabulary (a malformed merge list): one token per character */
        int32_t end = y->start + y->n;
        for (int32_t c = y->start; c < end;) {
            int32_t cl = ((uint8_t)w->map[c] < 0x80) ? 1 : 2;
            id = vocab_find(v, w->map + c, (size_t)cl);
            if (id < 0) id = v->unk;
            if (id < 0) {
                err_setf(err, err_size, "tokenize: the vocabulary has no token for byte 0x%02x",
                         (unsigned)(cl == 1 ? (uint8_t)w->map[c] : 0));
                return PSI_ERR_FORMAT;
            }
            psi_status rc = emit(o, id, err, err_size);
            if (rc != PSI_OK) return rc;
            c += cl;
        }
    }
    return PSI_OK;
}

psi_status bpe_tokenize(const vocab *v, const char *text, size_t len, spm_out *o, char *err, size_t err_size)
{
    const struct bpe_state *b = v->bpe;
    if (!b || !b->has_pre) {
        err_setf(err, err_size,
                 "tokenize: tokenizer.ggml.pre is missing; only 'llama-bpe' (Llama 3) is supported for gpt2 "
                 "vocabularies");
        return PSI_ERR_UNSUPPORTED;
    }
    if (!b->pre_ok) {
        err_setf(err, err_size, "tokenize: tokenizer.ggml.pre '%s' is not supported (llama-bpe)", b->pre);
        return PSI_ERR_UNSUPPORTED;
    }
    if (!b->hash) {
        err_setf(err, err_size, "tokenize: tokenizer.ggml.merges is missing (needed by the gpt2 tokenizer)");
        return PSI_ERR_FORMAT;
    }
    if (len == 0) return PSI_OK;

    /* Replace invalid UTF-8 by U+FFFD so that PCRE2 may skip its check. */
    const uint8_t *s = (const uint8_t *)text;
    char *clean = NULL;
    size_t i = 0;
    while (i < len) {
        size_t l = utf8_valid(s + i, len - i);
        if (!l) break;
        i += l;
    }
    if (i < len) {
        size_t cap;
        if (size_mul_ovf(len, 3, &cap) || cap == SIZE_MAX) return PSI_ERR_NO_MEMORY;
        clean = mem_alloc(cap + 1);
        if (!clean) {
            err_setf(err, err_size, "tokenize: out of memory");
            return PSI_ERR_NO_MEMORY;
        }
        len = utf8_sanitize(s, len, clean, cap + 1); /* 3 bytes a byte at most: never cut */
        s = (const uint8_t *)clean;
    }

    psi_status rc = PSI_OK;
    bwork w = {0};
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(b->re, NULL);
    if (!md) rc = PSI_ERR_NO_MEMORY;
    size_t off = 0;
    while (rc == PSI_OK && off < len) {
        int m = pcre2_match(b->re, (PCRE2_SPTR)s, len, off, PCRE2_NO_UTF_CHECK, md, NULL);
        size_t ms, me;
        if (m == PCRE2_ERROR_NOMATCH) {
            ms = me = len;
        } else if (m < 0) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(m, msg, sizeof msg);
            err_setf(err, err_size, "tokenize: pre-tokenizer regex failed: %s", (const char *)msg);
            rc = m == PCRE2_ERROR_NOMEMORY ? PSI_ERR_NO_MEMORY : PSI_ERR_UNSUPPORTED;
            break;
        } else {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            ms = ov[0];
            me = ov[1];
            if (me <= off) me = ms = len; /* cannot happen: no alternative matches empty */
        }
        if (ms > off) rc = encode_piece(v, &w, s + off, ms - off, o, err, err_size); /* unmatched gap */
        if (rc == PSI_OK && me > ms) rc = encode_piece(v, &w, s + ms, me - ms, o, err, err_size);
        off = me;
    }
    if (rc == PSI_ERR_NO_MEMORY) err_setf(err, err_size, "tokenize: out of memory");
    if (md) pcre2_match_data_free(md);
    mem_free(w.map);
    mem_free(w.sym);
    mem_free(w.heap);
    mem_free(clean);
    return rc;
}
