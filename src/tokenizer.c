/*
 * tokenizer.c — vocabulary loading (GGUF tokenizer.ggml.* metadata), the
 * token-text hash table, and decoding of ids to text for both vocabulary
 * kinds. SentencePiece encoding lives in tokenizer_spm.c, Llama 3 BPE
 * encoding (and its merges table) in tokenizer_bpe.c.
 *
 * Metadata keys and token types are those llama.cpp's converters write
 * (gguf-py constants.py: tokenizer.ggml.*; token types as llama_token_type).
 */
#include "tokenizer.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

#include "util.h"

#define MAX_TOKENS    (1 << 30)
#define MAX_TOKEN_LEN (1u << 20)

/* ------------------------------------------------------------ hash table */

static uint32_t text_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

int32_t vocab_find(const vocab *v, const char *text, size_t len)
{
    if (!v || (!text && len)) return -1;
    uint32_t i = text_hash(text, len) & v->hash_mask;
    for (;;) {
        int32_t id = v->hash[i];
        if (id < 0) return -1;
        const vocab_token *t = &v->tokens[id];
        if (t->len == len && memcmp(t->text, text, len) == 0) return id;
        i = (i + 1) & v->hash_mask;
    }
}

/* Builds the table; a text that occurs twice keeps its first id. */
static psi_status build_hash(vocab *v)
{
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)v->n_tokens)
        cap *= 2; /* n_tokens <= 2^30: no overflow */
    v->hash = mem_alloc((size_t)cap * sizeof *v->hash);
    if (!v->hash) return PSI_ERR_NO_MEMORY;
    memset(v->hash, 0xff, (size_t)cap * sizeof *v->hash);
    v->hash_mask = cap - 1;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        const vocab_token *t = &v->tokens[id];
        uint32_t i = text_hash(t->text, t->len) & v->hash_mask;
        for (;;) {
            int32_t o = v->hash[i];
            if (o < 0) {
                v->hash[i] = id;
                break;
            }
            if (v->tokens[o].len == t->len && memcmp(v->tokens[o].text, t->text, t->len) == 0)
                break; /* duplicate text */
            i = (i + 1) & v->hash_mask;
        }
    }
    return PSI_OK;
}

/* ------------------------------------------------------------------ loading */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* The byte of a "<0xXX>" text, or -1. */
static int byte_of_text(const char *s, size_t n)
{
    if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    int hi = hexval(s[3]), lo = hexval(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* An optional token id. Absent: *id unchanged, PSI_OK. "None" is written as
 * u32 0xFFFFFFFF by llama.cpp's converters (or -1 as a signed integer). */
static psi_status get_id(const gguf *g, const char *key, int32_t n_tokens, int32_t *id, char *err,
                         size_t err_size)
{
    int64_t k = gguf_find_key(g, key);
    if (k < 0) return PSI_OK;
    const gguf_kv *kv = &g->kv[k];
    if ((kv->type == GGUF_I32 && (int32_t)rd_u32(kv->data) == -1) ||
        (kv->type == GGUF_I64 && (int64_t)rd_u64(kv->data) == -1)) {
        *id = -1;
        return PSI_OK;
    }
    uint32_t u;
    psi_status rc = gguf_get_u32(g, key, &u, err, err_size);
    if (rc != PSI_OK) return rc;
    if (u == UINT32_MAX) {
        *id = -1;
        return PSI_OK;
    }
    if (u >= (uint32_t)n_tokens) {
        err_setf(err, err_size,
                 "%s: %s = %" PRIu32 " is out of range (the vocabulary has %" PRId32 " tokens)", g->path, key,
                 u, n_tokens);
        return PSI_ERR_FORMAT;
    }
    *id = (int32_t)u;
    return PSI_OK;
}

static psi_status get_flag(const gguf *g, const char *key, bool *out, char *err, size_t err_size)
{
    psi_status rc = gguf_get_bool(g, key, out, err, err_size);
    return rc == PSI_ERR_INVALID_ARG ? PSI_OK : rc; /* absent: keep the default */
}

/* An optional array of n numeric elements: *kv NULL when absent. */
static psi_status get_num_arr(const gguf *g, const char *key, bool is_float, int64_t n, const gguf_kv **kv,
                              char *err, size_t err_size)
{
    *kv = NULL;
    int64_t k = gguf_find_key(g, key);
    if (k < 0) return PSI_OK;
    const gguf_kv *a = &g->kv[k];
    bool ok = a->type == GGUF_ARRAY &&
              (is_float ? a->arr_type == GGUF_F32 : (a->arr_type == GGUF_I32 || a->arr_type == GGUF_U32));
    if (!ok) {
        err_setf(err, err_size, "%s: %s is not an array of %s", g->path, key, is_float ? "f32" : "i32");
        return PSI_ERR_FORMAT;
    }
    if (a->n != (uint64_t)n) {
        err_setf(err, err_size, "%s: %s has %" PRIu64 " entries, expected %" PRId64, g->path, key, a->n, n);
        return PSI_ERR_FORMAT;
    }
    *kv = a;
    return PSI_OK;
}

static void add_eog(vocab *v, int32_t id)
{
    if (id < 0) return;
    for (int i = 0; i < v->n_eog; i++)
        if (v->eog[i] == id) return;
    if (v->n_eog < VOCAB_MAX_EOG) v->eog[v->n_eog++] = id;
}

static bool is_special_type(int type)
{
    return type == VOCAB_TT_CONTROL || type == VOCAB_TT_USER_DEFINED || type == VOCAB_TT_UNKNOWN;
}

typedef struct special_key {
    uint8_t first;
    uint32_t len;
    int32_t id;
} special_key;

static int special_cmp(const void *pa, const void *pb)
{
    const special_key *a = pa, *b = pb;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1; /* longest first */
    return a->id < b->id ? -1 : a->id > b->id;
}

/* The table of tokens that text may spell out (see vocab.special). */
static psi_status build_specials(vocab *v)
{
    int32_t n = 0;
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (is_special_type(v->tokens[i].type) && v->tokens[i].len) n++;
    special_key *keys = mem_alloc((size_t)n * sizeof *keys);
    v->special = mem_alloc((size_t)n * sizeof *v->special);
    if (!keys || !v->special) {
        mem_free(keys);
        return PSI_ERR_NO_MEMORY;
    }
    int32_t k = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        const vocab_token *t = &v->tokens[i];
        if (!is_special_type(t->type) || !t->len) continue;
        keys[k++] = (special_key){(uint8_t)t->text[0], t->len, i};
        unsigned lo = (uint8_t)t->text[0];
        for (unsigned hi = 0; hi < 256; hi++) { /* a one-byte token goes with any next byte */
            if (t->len > 1 && hi != (uint8_t)t->text[1]) continue;
            unsigned pair = lo | hi << 8;
            v->special_pair[pair >> 3] |= (uint8_t)(1u << (pair & 7));
        }
    }
    qsort(keys, (size_t)n, sizeof *keys, special_cmp);
    memset(v->special_start, 0, sizeof v->special_start);
    for (int32_t i = 0; i < n; i++) {
        v->special[i] = keys[i].id;
        v->special_start[keys[i].first + 1]++;
    }
    for (int b = 0; b < 256; b++)
        v->special_start[b + 1] += v->special_start[b];
    mem_free(keys);
    return PSI_OK;
}

static psi_status load(vocab *v, const gguf *g, char *err, size_t err_size)
{
    psi_status rc;
    const char *path = g->path ? g->path : "(gguf)";

    gguf_str model;
    rc = gguf_get_str(g, "tokenizer.ggml.model", &model, err, err_size);
    if (rc == PSI_ERR_INVALID_ARG) {
        err_setf(err, err_size, "%s: tokenizer.ggml.model is missing", path);
        return PSI_ERR_FORMAT;
    }
    if (rc != PSI_OK) return rc;
    if (gguf_str_eq(model, "llama")) {
        v->kind = VOCAB_SPM;
    } else if (gguf_str_eq(model, "gpt2")) {
        v->kind = VOCAB_BPE;
    } else {
        err_setf(err, err_size, "%s: tokenizer.ggml.model '%.*s' is not supported (llama, gpt2)", path,
                 (int)(model.len > 64 ? 64 : model.len), model.ptr);
        return PSI_ERR_UNSUPPORTED;
    }
    bool spm = v->kind == VOCAB_SPM;

    /* tokens */
    int64_t k = gguf_find_key(g, "tokenizer.ggml.tokens");
    if (k < 0) {
        err_setf(err, err_size, "%s: tokenizer.ggml.tokens is missing", path);
        return PSI_ERR_FORMAT;
    }
    const gguf_kv *tk = &g->kv[k];
    if (tk->type != GGUF_ARRAY || tk->arr_type != GGUF_STRING) {
        err_setf(err, err_size, "%s: tokenizer.ggml.tokens is not an array of strings", path);
        return PSI_ERR_FORMAT;
    }
    if (tk->n == 0 || tk->n > MAX_TOKENS) {
        err_setf(err, err_size, "%s: tokenizer.ggml.tokens has %" PRIu64 " entries (1 to %d allowed)", path,
                 tk->n, MAX_TOKENS);
        return PSI_ERR_FORMAT;
    }
    int32_t n = (int32_t)tk->n;
    v->n_tokens = n;

    size_t pool = 0;
    for (int32_t i = 0; i < n; i++) {
        if (tk->strs[i].len > MAX_TOKEN_LEN) {
            err_setf(err, err_size,
                     "%s: tokenizer.ggml.tokens[%" PRId32 "] is %" PRIu64 " bytes long (limit %u)", path, i,
                     tk->strs[i].len, MAX_TOKEN_LEN);
            return PSI_ERR_FORMAT;
        }
        if (size_add_ovf(pool, (size_t)tk->strs[i].len + 1, &pool)) return PSI_ERR_NO_MEMORY;
    }
    v->tokens = mem_calloc((size_t)n, sizeof *v->tokens);
    v->text_pool = mem_alloc(pool);
    if (!v->tokens || !v->text_pool) return PSI_ERR_NO_MEMORY;
    char *p = v->text_pool;
    for (int32_t i = 0; i < n; i++) {
        size_t len = (size_t)tk->strs[i].len;
        if (len) memcpy(p, tk->strs[i].ptr, len);
        p[len] = 0;
        v->tokens[i].text = p;
        v->tokens[i].len = (uint32_t)len;
        v->tokens[i].type = VOCAB_TT_NORMAL;
        p += len + 1;
    }

    /* scores */
    const gguf_kv *sc;
    rc = get_num_arr(g, "tokenizer.ggml.scores", true, n, &sc, err, err_size);
    if (rc != PSI_OK) return rc;
    if (!sc && spm) {
        err_setf(err, err_size, "%s: tokenizer.ggml.scores is missing (needed by the llama tokenizer)", path);
        return PSI_ERR_FORMAT;
    }
    if (sc) {
        for (int32_t i = 0; i < n; i++) {
            float s = rd_f32(sc->data + (size_t)i * 4);
            if (isnan(s)) {
                err_setf(err, err_size, "%s: tokenizer.ggml.scores[%" PRId32 "] is NaN", path, i);
                return PSI_ERR_FORMAT;
            }
            v->tokens[i].score = s;
        }
    }

    /* special ids (llama.cpp's SPM defaults when absent) */
    v->bos = v->eos = v->unk = -1;
    if (spm) {
        v->unk = 0;
        if (n > 1) v->bos = 1;
        if (n > 2) v->eos = 2;
    }
    int32_t eot = -1, eom = -1;
    if ((rc = get_id(g, "tokenizer.ggml.bos_token_id", n, &v->bos, err, err_size)) ||
        (rc = get_id(g, "tokenizer.ggml.eos_token_id", n, &v->eos, err, err_size)) ||
        (rc = get_id(g, "tokenizer.ggml.unknown_token_id", n, &v->unk, err, err_size)) ||
        (rc = get_id(g, "tokenizer.ggml.eot_token_id", n, &eot, err, err_size)) ||
        (rc = get_id(g, "tokenizer.ggml.eom_token_id", n, &eom, err, err_size)))
        return rc;

    /* token types */
    const gguf_kv *tt;
    rc = get_num_arr(g, "tokenizer.ggml.token_type", false, n, &tt, err, err_size);
    if (rc != PSI_OK) return rc;
    if (tt) {
        for (int32_t i = 0; i < n; i++) {
            int32_t t = (int32_t)rd_u32(tt->data + (size_t)i * 4);
            if (t < VOCAB_TT_UNDEFINED || t > VOCAB_TT_BYTE) {
                err_setf(err, err_size,
                         "%s: tokenizer.ggml.token_type[%" PRId32 "] = %" PRId32
                         " is not a token type (0..6)",
                         path, i, t);
                return PSI_ERR_FORMAT;
            }
            v->tokens[i].type = (uint8_t)(t == VOCAB_TT_UNDEFINED ? VOCAB_TT_NORMAL : t);
        }
    } else if (spm) {
        /* No types: recognise what the types would have said. */
        for (int32_t i = 0; i < n; i++)
            if (byte_of_text(v->tokens[i].text, v->tokens[i].len) >= 0) v->tokens[i].type = VOCAB_TT_BYTE;
        if (v->bos >= 0) v->tokens[v->bos].type = VOCAB_TT_CONTROL;
        if (v->eos >= 0) v->tokens[v->eos].type = VOCAB_TT_CONTROL;
        if (v->unk >= 0) v->tokens[v->unk].type = VOCAB_TT_UNKNOWN;
    }

    /* byte tokens (SPM byte fallback) */
    for (int b = 0; b < 256; b++)
        v->byte_tok[b] = -1;
    if (spm) {
        for (int32_t i = 0; i < n; i++) {
            if (v->tokens[i].type != VOCAB_TT_BYTE) continue;
            int b = byte_of_text(v->tokens[i].text, v->tokens[i].len);
            if (b < 0) {
                err_setf(err, err_size,
                         "%s: tokenizer.ggml.tokens[%" PRId32 "] = '%.*s' has "
                         "token type BYTE but is not of the form <0xXX>",
                         path, i, (int)(v->tokens[i].len > 32 ? 32 : v->tokens[i].len), v->tokens[i].text);
                return PSI_ERR_FORMAT;
            }
            if (v->byte_tok[b] < 0) v->byte_tok[b] = i;
        }
    }

    /* flags */
    v->add_bos = spm;
    if (!spm) {
        gguf_str pre;
        if (gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL, 0) == PSI_OK && gguf_str_eq(pre, "llama-bpe"))
            v->add_bos = true;
    }
    v->add_space_prefix = spm;
    if ((rc = get_flag(g, "tokenizer.ggml.add_bos_token", &v->add_bos, err, err_size)) ||
        (rc = get_flag(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, err, err_size)))
        return rc;

    if ((rc = build_hash(v)) != PSI_OK || (rc = build_specials(v)) != PSI_OK) return rc;
    v->spm_word_split = spm;
    for (int32_t i = 0; spm && i < n; i++) {
        const vocab_token *t = &v->tokens[i];
        if (t->type != VOCAB_TT_NORMAL && t->type != VOCAB_TT_USER_DEFINED) continue;
        for (uint32_t j = 1; j + 3 <= t->len; j++)
            if (!memcmp(t->text + j, "\xe2\x96\x81", 3) && (j < 3 || memcmp(t->text + j - 3, "\xe2\x96\x81", 3)))
                v->spm_word_split = false;
    }
    if (!spm && (rc = bpe_load(v, g, err, err_size)) != PSI_OK) return rc;

    /* end of generation */
    add_eog(v, v->eos);
    add_eog(v, eot);
    add_eog(v, eom);
    if (!spm) {
        static const char *const names[] = {"<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            add_eog(v, vocab_find(v, names[i], strlen(names[i])));
    }
    return PSI_OK;
}

psi_status vocab_load(vocab **out, const gguf *g, char *err, size_t err_size)
{
    if (!out) return PSI_ERR_INVALID_ARG;
    *out = NULL;
    if (!g) return PSI_ERR_INVALID_ARG;
    vocab *v = mem_calloc(1, sizeof *v);
    if (!v) {
        err_setf(err, err_size, "%s: out of memory loading the vocabulary", g->path);
        return PSI_ERR_NO_MEMORY;
    }
    psi_status rc = load(v, g, err, err_size);
    if (rc != PSI_OK) {
        if (rc == PSI_ERR_NO_MEMORY)
            err_setf(err, err_size, "%s: out of memory loading the vocabulary", g->path);
        vocab_free(v);
        return rc;
    }
    *out = v;
    return PSI_OK;
}

void vocab_free(vocab *v)
{
    if (!v) return;
    mem_free(v->tokens);
    mem_free(v->text_pool);
    mem_free(v->hash);
    mem_free(v->special);
    bpe_free(v->bpe);
    mem_free(v);
}

/* ---------------------------------------------------------------- accessors */

int32_t vocab_n_tokens(const vocab *v)
{
    return v ? v->n_tokens : 0;
}
int32_t vocab_bos(const vocab *v)
{
    return v ? v->bos : -1;
}
int32_t vocab_eos(const vocab *v)
{
    return v ? v->eos : -1;
}
int32_t vocab_unk(const vocab *v)
{
    return v ? v->unk : -1;
}
bool vocab_add_bos(const vocab *v)
{
    return v && v->add_bos && v->bos >= 0;
}

bool vocab_is_eog(const vocab *v, int32_t tok)
{
    if (!v || tok < 0) return false;
    for (int i = 0; i < v->n_eog; i++)
        if (v->eog[i] == tok) return true;
    return false;
}

const char *vocab_token_text(const vocab *v, int32_t tok, size_t *len)
{
    if (!v || tok < 0 || tok >= v->n_tokens) return NULL;
    if (len) *len = v->tokens[tok].len;
    return v->tokens[tok].text;
}

int vocab_token_type(const vocab *v, int32_t tok)
{
    if (!v || tok < 0 || tok >= v->n_tokens) return -1;
    return v->tokens[tok].type;
}

/* ----------------------------------------------------------------- encoding */

static void out_push(spm_out *o, int32_t id)
{
    if (o->n < o->max_tokens) o->tokens[o->n] = id;
    o->n++;
}

/* One piece of plain text; first: it starts the text or follows a token. */
static psi_status tokenize_piece(const vocab *v, const char *text, size_t len, bool first, spm_out *o, char *err,
                                 size_t err_size)
{
    if (v->kind == VOCAB_SPM) return spm_tokenize(v, text, len, first, o, err, err_size);
    return bpe_tokenize(v, text, len, o, err, err_size);
}

/* Length of the special token spelled at s[0..n) (the longest), or 0. */
static size_t match_special(const vocab *v, const char *s, size_t n, bool parse_special, int32_t *id)
{
    unsigned pair = (uint8_t)s[0] | (n > 1 ? (unsigned)(uint8_t)s[1] << 8 : 0);
    if (n > 1 && !(v->special_pair[pair >> 3] & (1u << (pair & 7)))) return 0;
    uint8_t b = (uint8_t)s[0];
    for (int32_t k = v->special_start[b]; k < v->special_start[b + 1]; k++) {
        const vocab_token *t = &v->tokens[v->special[k]];
        if (t->len > n || (!parse_special && t->type != VOCAB_TT_USER_DEFINED)) continue;
        if (memcmp(s, t->text, t->len) == 0) {
            *id = v->special[k];
            return t->len;
        }
    }
    return 0;
}

static psi_status check_args(const vocab *v, const int32_t *tokens, int32_t max_tokens, const int32_t *n_tokens,
                             char *err, size_t err_size)
{
    if (!v || !n_tokens || max_tokens < 0 || (!tokens && max_tokens > 0)) {
        err_setf(err, err_size, "tokenize: invalid argument");
        return PSI_ERR_INVALID_ARG;
    }
    return PSI_OK;
}

static psi_status finish(const spm_out *o, int32_t *n_tokens, char *err, size_t err_size)
{
    *n_tokens = o->n;
    if (o->n > o->max_tokens) {
        err_setf(err, err_size, "tokenize: the text needs %" PRId32 " tokens, room for %" PRId32, o->n,
                 o->max_tokens);
        return PSI_ERR_BUFFER_SMALL;
    }
    return PSI_OK;
}

/* SPM: every input byte gives at most one id (a space becomes one 3-byte
 * symbol), plus a space prefix per piece and BOS: the count fits an int32
 * while the text stays under INT32_MAX/2 bytes. BPE (where an invalid byte
 * becomes U+FFFD) checks as it goes. */
#define MAX_TEXT ((size_t)INT32_MAX / 2 - 16)

psi_status vocab_tokenize(const vocab *v, const char *text, size_t len, bool add_bos, bool parse_special,
                          int32_t *tokens, int32_t max_tokens, int32_t *n_tokens, char *err, size_t err_size)
{
    if (n_tokens) *n_tokens = 0;
    psi_status rc = check_args(v, tokens, max_tokens, n_tokens, err, err_size);
    if (rc != PSI_OK) return rc;
    if (!text && len) {
        err_setf(err, err_size, "tokenize: invalid argument");
        return PSI_ERR_INVALID_ARG;
    }
    if (len > MAX_TEXT) {
        err_setf(err, err_size, "tokenize: text of %zu bytes is too long (limit %zu)", len, MAX_TEXT);
        return PSI_ERR_INVALID_ARG;
    }
    spm_out o = {tokens, max_tokens, 0};
    if (add_bos && v->bos >= 0) out_push(&o, v->bos);
    bool first = true;
    size_t start = 0;
    for (size_t i = 0; i < len;) {
        int32_t id;
        size_t m = match_special(v, text + i, len - i, parse_special, &id);
        if (!m) {
            i++;
            continue;
        }
        if (i > start) {
            if ((rc = tokenize_piece(v, text + start, i - start, first, &o, err, err_size)) != PSI_OK) return rc;
        }
        out_push(&o, id);
        first = true;
        i += m;
        start = i;
    }
    if (len > start && (rc = tokenize_piece(v, text + start, len - start, first, &o, err, err_size)) != PSI_OK)
        return rc;
    return finish(&o, n_tokens, err, err_size);
}

psi_status vocab_tokenize_parts(const vocab *v, const vocab_part *parts, size_t n_parts, int32_t *tokens,
                                int32_t max_tokens, int32_t *n_tokens, char *err, size_t err_size)
{
    if (n_tokens) *n_tokens = 0;
    psi_status rc = check_args(v, tokens, max_tokens, n_tokens, err, err_size);
    if (rc != PSI_OK) return rc;
    size_t total = 0;
    for (size_t i = 0; i < n_parts; i++) {
        if (parts[i].id >= v->n_tokens || (parts[i].id < 0 && !parts[i].text && parts[i].len)) {
            err_setf(err, err_size, "tokenize: invalid argument");
            return PSI_ERR_INVALID_ARG;
        }
        if (parts[i].id < 0 && size_add_ovf(total, parts[i].len, &total)) total = SIZE_MAX;
    }
    if (total > MAX_TEXT) {
        err_setf(err, err_size, "tokenize: text of %zu bytes is too long (limit %zu)", total, MAX_TEXT);
        return PSI_ERR_INVALID_ARG;
    }
    spm_out o = {tokens, max_tokens, 0};
    char *buf = NULL;
    bool first = true;
    rc = PSI_OK;
    for (size_t i = 0; i < n_parts && rc == PSI_OK;) {
        if (parts[i].id >= 0) {
            out_push(&o, parts[i].id);
            first = true;
            i++;
            continue;
        }
        size_t j = i, n = 0;
        for (; j < n_parts && parts[j].id < 0; j++)
            n += parts[j].len;
        const char *text = parts[i].text;
        if (j - i > 1) { /* join a run of text parts */
            mem_free(buf);
            if (!(buf = mem_alloc(n))) {
                err_setf(err, err_size, "tokenize: out of memory");
                return PSI_ERR_NO_MEMORY;
            }
            size_t p = 0;
            for (size_t k = i; k < j; k++) {
                if (parts[k].len) memcpy(buf + p, parts[k].text, parts[k].len);
                p += parts[k].len;
            }
            text = buf;
        }
        if (n) {
            rc = tokenize_piece(v, text, n, first, &o, err, err_size);
            first = false;
        }
        i = j;
    }
    mem_free(buf);
    return rc == PSI_OK ? finish(&o, n_tokens, err, err_size) : rc;
}

/* ----------------------------------------------------------------- decoding */

/* Appends s[0..n) to buf as far as it fits; *pos counts every byte. */
static void put(char *buf, size_t size, size_t *pos, const char *s, size_t n)
{
    if (*pos < size) {
        size_t room = size - *pos;
        memcpy(buf + *pos, s, n < room ? n : room);
    }
    *pos += n;
}

/* Length of the valid UTF-8 character at s[0..n) and its code point; an
 * invalid or cut sequence is one byte with *cp = -1. */
static size_t utf8_next(const uint8_t *s, size_t n, int32_t *cp)
{
    uint8_t c = s[0];
    size_t len;
    int32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if ((c & 0xe0) == 0xc0) {
        len = 2;
        v = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        v = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        v = c & 0x07;
    } else {
        *cp = -1;
        return 1;
    }
    if (len > n) {
        *cp = -1;
        return 1;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *cp = -1;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3f);
    }
    *cp = v;
    return len;
}

/* GPT-2's bytes_to_unicode maps the printable bytes 33..126, 161..172 and
 * 174..255 to themselves and the other 68 bytes, in increasing order, to
 * U+0100..U+0143. This is the inverse; -1 outside the table. */
static int gpt2_unicode_to_byte(int32_t cp)
{
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255)) return cp;
    if (cp < 256 || cp >= 256 + 68) return -1;
    int k = cp - 256;
    if (k < 33) return k;                 /* 0..32 */
    if (k < 33 + 34) return 127 + k - 33; /* 127..160 */
    return 173;
}

int32_t vocab_token_to_piece(const vocab *v, int32_t prev, int32_t token, char *buf, size_t buf_size)
{
    if (!v || token < 0 || token >= v->n_tokens || (!buf && buf_size)) return -1;
    const vocab_token *t = &v->tokens[token];
    size_t pos = 0;

    if (t->type == VOCAB_TT_CONTROL || t->type == VOCAB_TT_UNUSED) return 0;
    if (t->type == VOCAB_TT_UNKNOWN || t->type == VOCAB_TT_USER_DEFINED) {
        put(buf, buf_size, &pos, t->text, t->len);
        return (int32_t)pos;
    }

    if (v->kind == VOCAB_BPE) {
        const uint8_t *s = (const uint8_t *)t->text;
        size_t i = 0;
        while (i < t->len) {
            int32_t cp;
            size_t l = utf8_next(s + i, t->len - i, &cp);
            int b = gpt2_unicode_to_byte(cp);
            if (b >= 0) {
                char c = (char)b;
                put(buf, buf_size, &pos, &c, 1);
            } else {
                put(buf, buf_size, &pos, t->text + i, l);
            }
            i += l;
        }
        return (int32_t)pos;
    }

    /* SentencePiece */
    bool strip = v->add_space_prefix && (prev == -1 || (prev >= 0 && prev == v->bos));
    if (t->type == VOCAB_TT_BYTE) {
        char c = (char)byte_of_text(t->text, t->len);
        if (!(strip && c == ' ')) put(buf, buf_size, &pos, &c, 1);
        return (int32_t)pos;
    }
    size_t i = 0;
    while (i < t->len) {
        if (t->len - i >= 3 && memcmp(t->text + i, "\xe2\x96\x81", 3) == 0) {
            if (!(strip && i == 0)) put(buf, buf_size, &pos, " ", 1);
            i += 3;
        } else {
            if (strip && i == 0 && t->text[0] == ' ') {
                i++;
                continue;
            }
            put(buf, buf_size, &pos, t->text + i, 1);
            i++;
        }
    }
    return (int32_t)pos;
}
