/*
 * convert_hf.c — Hugging Face Llama checkpoint directory (config.json,
 * *.safetensors [+ model.safetensors.index.json], tokenizer.json,
 * tokenizer_config.json, generation_config.json) to GGUF, written the way
 * llama.cpp's convert_hf_to_gguf.py writes arch `llama`:
 *  - tensor names model.layers.N.self_attn.q_proj -> blk.N.attn_q etc.;
 *  - Q and K rows permuted from Hugging Face's rotate-half RoPE layout to
 *    GGUF's adjacent-pair layout: row h*hd + 2i + j <- row h*hd + j*hd/2 + i;
 *  - rope_freqs.weight from rope_scaling.rope_type = llama3 (Llama 3.1
 *    frequency scaling: wavelengths above original_ctx/low_freq_factor are
 *    divided by factor, below original_ctx/high_freq_factor kept, smooth in
 *    between);
 *  - tokenizer.ggml.* from tokenizer.json's BPE model (tokens by id, ids the
 *    vocabulary lacks as [PADn] UNUSED, added special tokens CONTROL, other
 *    added tokens USER_DEFINED), special ids from tokenizer_config.json then
 *    config.json / generation_config.json, the chat template.
 * Weights are converted to F32 in memory; other --type values go through
 * psi_quantize. Not handled: SentencePiece tokenizers (Llama 2), other
 * architectures, other pre-tokenizers than Llama 3's (clear errors).
 */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "safetensors.h"
#include "util.h"

/* Llama 3's pre-tokenizer regex, as tokenizer.json spells it (llama.cpp: "llama-bpe"). */
static const char LLAMA3_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

typedef struct hf_conv {
    const char *dir, *out; /* out: never one of the files read */
    char *err;
    size_t n;
    json_t *config, *tok, *tok_cfg, *gen_cfg;
    st_file *files[64];
    int n_files;
    float **bufs; /* converted tensors, freed after the write */
    size_t n_bufs;
    char **strs;  /* token texts and merges kept for the writer */
    gguf_writer *w;
    int64_t n_embd, n_ff, n_layer, n_head, n_head_kv, head_dim, n_vocab;
    const psi_convert_hf_params *p;
    uint64_t done, total; /* values converted so far, in all (progress) */
} hf_conv;

/* flags: JSON_DECODE_INT_AS_REAL for tokenizer_config.json, whose
 * model_max_length is often 1e30 written as an integer. */
static json_t *load_json(hf_conv *c, const char *file, bool required, size_t flags, psi_status *rc)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", c->dir, file);
    if (access(path, F_OK) != 0) {
        if (required) {
            err_setf(c->err, c->n, "%s: missing (a Hugging Face checkpoint directory needs it)", path);
            *rc = PSI_ERR_IO;
        }
        return NULL;
    }
    if ((*rc = check_not_input(c->out, path, c->err, c->n))) return NULL;
    json_error_t je;
    json_t *j = json_load_file(path, flags, &je);
    if (!json_is_object(j)) {
        err_setf(c->err, c->n, "%s: not a JSON object (line %d: %.200s)", path, je.line, j ? "wrong type" : je.text);
        json_decref(j);
        *rc = PSI_ERR_FORMAT;
        return NULL;
    }
    return j;
}

static bool cfg_int(hf_conv *c, const char *key, int64_t *out, int64_t def)
{
    json_t *v = json_object_get(c->config, key);
    if (!v && def >= 0) {
        *out = def;
        return true;
    }
    if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > (1 << 24)) {
        err_setf(c->err, c->n, "%s/config.json: '%s' %s", c->dir, key,
                 v ? "must be a positive integer" : "is missing (a positive integer is needed)");
        return false;
    }
    *out = json_integer_value(v);
    return true;
}

/* A safetensors file of the checkpoint, which the output must not replace. */
static psi_status open_shard(hf_conv *c, const char *path, st_file **f)
{
    psi_status rc = check_not_input(c->out, path, c->err, c->n);
    return rc ? rc : st_open(path, f, c->err, c->n);
}

static psi_status open_weights(hf_conv *c)
{
    char path[4096];
    psi_status rc = PSI_OK;
    snprintf(path, sizeof path, "%s/model.safetensors", c->dir);
    if (access(path, F_OK) == 0) {
        c->n_files = 1;
        return open_shard(c, path, &c->files[0]);
    }
    json_t *idx = load_json(c, "model.safetensors.index.json", false, 0, &rc);
    if (rc) return rc;
    json_t *map = json_object_get(idx, "weight_map");
    if (!idx || !json_is_object(map)) {
        err_setf(c->err, c->n, "%s: no model.safetensors and no model.safetensors.index.json with a weight_map",
                 c->dir);
        json_decref(idx);
        return idx ? PSI_ERR_FORMAT : PSI_ERR_IO;
    }
    const char *key;
    json_t *v;
    json_object_foreach(map, key, v) {
        const char *file = json_string_value(v);
        if (!file || strchr(file, '/') || file[0] == '.') {
            err_setf(c->err, c->n, "%s/model.safetensors.index.json: bad file name for '%.200s'", c->dir, key);
            rc = PSI_ERR_FORMAT;
            break;
        }
        snprintf(path, sizeof path, "%s/%s", c->dir, file);
        bool seen = false;
        for (int i = 0; i < c->n_files; i++) seen |= !strcmp(c->files[i]->path, path);
        if (seen) continue;
        if (c->n_files == (int)(sizeof c->files / sizeof c->files[0])) {
            err_setf(c->err, c->n, "%s: more than 64 safetensors shards", c->dir);
            rc = PSI_ERR_UNSUPPORTED;
            break;
        }
        if ((rc = open_shard(c, path, &c->files[c->n_files]))) break;
        c->n_files++;
    }
    json_decref(idx);
    return rc;
}

static const st_tensor *find_tensor(hf_conv *c, const char *name)
{
    for (int i = 0; i < c->n_files; i++) {
        const st_tensor *t = st_find(c->files[i], name);
        if (t) return t;
    }
    return NULL;
}

static float *new_buf(hf_conv *c, uint64_t n_floats)
{
    float **nb = mem_realloc(c->bufs, (c->n_bufs + 1) * sizeof *nb);
    if (!nb) return NULL;
    c->bufs = nb;
    size_t bytes;
    if (size_mul_ovf((size_t)n_floats, sizeof(float), &bytes)) return NULL;
    float *b = mem_alloc(bytes ? bytes : 1);
    if (b) c->bufs[c->n_bufs++] = b;
    return b;
}

/* Add HF tensor `src` as GGUF tensor `dst` (F32), checking its shape; rows
 * != 0 asks for a matrix [rows][cols], rows == 0 a vector [cols]. permute_heads
 * > 0 applies the Q/K RoPE row permutation. */
static psi_status add(hf_conv *c, const char *src, const char *dst, int64_t rows, int64_t cols,
                      int64_t permute_heads, bool optional)
{
    const st_tensor *t = find_tensor(c, src);
    if (!t) {
        if (optional) return PSI_OK;
        err_setf(c->err, c->n, "%s: tensor '%s' is missing from the safetensors files", c->dir, src);
        return PSI_ERR_FORMAT;
    }
    bool ok = rows ? t->n_dims == 2 && t->shape[0] == (uint64_t)rows && t->shape[1] == (uint64_t)cols
                   : t->n_dims == 1 && t->shape[0] == (uint64_t)cols;
    if (!ok) {
        err_setf(c->err, c->n, "%s: tensor '%s' has shape [%" PRIu64 ", %" PRIu64 "], config.json implies [%" PRId64
                               ", %" PRId64 "]", c->dir, src, t->shape[0], t->n_dims > 1 ? t->shape[1] : 0,
                 rows ? rows : cols, rows ? cols : 0);
        return PSI_ERR_FORMAT;
    }
    float *b = new_buf(c, t->n_elems);
    if (!b) {
        err_setf(c->err, c->n, "%s: out of memory converting '%s'", c->dir, src);
        return PSI_ERR_NO_MEMORY;
    }
    uint64_t R = rows ? (uint64_t)rows : 1, C = (uint64_t)cols;
    uint64_t hd = permute_heads ? R / (uint64_t)permute_heads : 0;
    for (uint64_t r = 0; r < R; r++) {
        uint64_t from = r;
        if (permute_heads) { /* r = h*hd + 2i + j takes row h*hd + j*hd/2 + i */
            uint64_t h = r / hd, k = r % hd;
            from = h * hd + (k % 2) * (hd / 2) + k / 2;
        }
        for (uint64_t j = 0; j < C; j++) b[r * C + j] = st_get_f32(t, from * C + j);
    }
    uint64_t ne[2] = {C, R};
    psi_status rc = gguf_writer_add_tensor(c->w, dst, PSI_TYPE_F32, rows ? 2 : 1, ne, b);
    c->done += t->n_elems;
    if (!rc && c->p->progress)
        c->p->progress(c->p->progress_user, dst, PSI_TYPE_F32, c->done < c->total ? c->done : c->total, c->total);
    if (rc) err_setf(c->err, c->n, "%s: cannot add tensor '%s' (%s)", c->dir, dst, psi_status_str(rc));
    return rc;
}

static psi_status add_rope_freqs(hf_conv *c, double theta)
{
    json_t *rs = json_object_get(c->config, "rope_scaling");
    const char *type = json_string_value(json_object_get(rs, "rope_type"));
    if (!type) type = json_string_value(json_object_get(rs, "type"));
    if (!rs || json_is_null(rs) || (type && !strcmp(type, "default"))) return PSI_OK;
    if (!type || strcmp(type, "llama3") != 0) {
        err_setf(c->err, c->n, "%s/config.json: rope_scaling type '%s' is not supported (supported: llama3)", c->dir,
                 type ? type : "?");
        return PSI_ERR_UNSUPPORTED;
    }
    double factor = json_number_value(json_object_get(rs, "factor"));
    double lo = json_number_value(json_object_get(rs, "low_freq_factor"));
    double hi = json_number_value(json_object_get(rs, "high_freq_factor"));
    double octx = json_number_value(json_object_get(rs, "original_max_position_embeddings"));
    if (!(factor > 0) || !(lo > 0) || !(hi > lo) || !(octx > 0)) {
        err_setf(c->err, c->n, "%s/config.json: rope_scaling llama3 needs factor, low_freq_factor < "
                               "high_freq_factor and original_max_position_embeddings", c->dir);
        return PSI_ERR_FORMAT;
    }
    int64_t half = c->head_dim / 2;
    float *f = new_buf(c, (uint64_t)half);
    if (!f) return PSI_ERR_NO_MEMORY;
    double lo_wl = octx / lo, hi_wl = octx / hi;
    for (int64_t i = 0; i < half; i++) {
        double freq = 1.0 / pow(theta, (double)(2 * i) / (double)c->head_dim);
        double wl = 2 * M_PI / freq, r;
        if (wl < hi_wl) r = 1;
        else if (wl > lo_wl) r = factor;
        else {
            double smooth = (octx / wl - lo) / (hi - lo);
            r = 1 / ((1 - smooth) / factor + smooth);
        }
        f[i] = (float)r;
    }
    uint64_t ne[1] = {(uint64_t)half};
    return gguf_writer_add_tensor(c->w, "rope_freqs.weight", PSI_TYPE_F32, 1, ne, f);
}

static char *keep_str(hf_conv *c, size_t *n_strs, const char *s, size_t len)
{
    char *d = mem_strndup(s, len);
    if (d) c->strs[(*n_strs)++] = d;
    return d;
}

/* "a b", kept like keep_str's copies (a merge given as ["a", "b"]; until
 * session 15 this copied strlen(a) + strlen(b) + 1 bytes out of a's
 * buffer, reading past its end: found by fuzz_convert_hf) */
static char *keep_pair(hf_conv *c, size_t *n_strs, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *m = mem_alloc(la + lb + 2);
    if (!m) return NULL;
    memcpy(m, a, la);
    m[la] = ' ';
    memcpy(m + la + 1, b, lb + 1);
    c->strs[(*n_strs)++] = m;
    return m;
}

/* id of a token text, or -1 */
static int64_t token_id(hf_conv *c, const char *text)
{
    json_t *added = json_object_get(c->tok, "added_tokens"), *e;
    size_t i;
    json_array_foreach(added, i, e) {
        const char *s = json_string_value(json_object_get(e, "content"));
        if (s && !strcmp(s, text)) return json_integer_value(json_object_get(e, "id"));
    }
    json_t *id = json_object_get(json_object_get(json_object_get(c->tok, "model"), "vocab"), text);
    return json_is_integer(id) ? json_integer_value(id) : -1;
}

/* Content of tokenizer_config.json's "<typ>_token" (a string or {"content"}). */
static const char *special_content(hf_conv *c, const char *typ)
{
    char name[64];
    snprintf(name, sizeof name, "%s_token", typ);
    json_t *v = json_object_get(c->tok_cfg, name);
    if (json_is_object(v)) v = json_object_get(v, "content");
    return json_string_value(v);
}

/* Whether tokenizer.json's TemplateProcessing post-processor (alone or in a
 * Sequence) puts the special token `content` first (first = true) or last
 * in a single sequence: how Llama 3 tokenizers say "add BOS" when
 * tokenizer_config.json has no add_bos_token. */
static bool template_adds(hf_conv *c, const char *content, bool first)
{
    json_t *pp = json_object_get(c->tok, "post_processor"), *e;
    size_t i;
    if (json_is_object(pp) && json_is_array(json_object_get(pp, "processors")))
        json_array_foreach(json_object_get(pp, "processors"), i, e) {
            const char *t = json_string_value(json_object_get(e, "type"));
            if (t && !strcmp(t, "TemplateProcessing")) pp = e;
        }
    const char *t = json_string_value(json_object_get(pp, "type"));
    json_t *single = json_object_get(pp, "single");
    if (!content || !t || strcmp(t, "TemplateProcessing") != 0 || !json_array_size(single)) return false;
    json_t *item = json_array_get(single, first ? 0 : json_array_size(single) - 1);
    const char *id = json_string_value(json_object_get(json_object_get(item, "SpecialToken"), "id"));
    return id && !strcmp(id, content);
}

static psi_status set_special(hf_conv *c, const char *typ, const char *key)
{
    char name[64];
    const char *content = special_content(c, typ);
    int64_t id = content ? token_id(c, content) : -1;
    snprintf(name, sizeof name, "%s_token_id", typ);
    json_t *srcs[2] = {c->config, c->gen_cfg};
    for (int s = 0; s < 2 && id < 0; s++) {
        json_t *x = json_object_get(srcs[s], name);
        if (json_is_integer(x)) id = json_integer_value(x);
    }
    if (id < 0 || id >= c->n_vocab) return PSI_OK;
    return gguf_writer_set_u32(c->w, key, (uint32_t)id);
}

static psi_status add_tokenizer(hf_conv *c)
{
    json_t *model = json_object_get(c->tok, "model");
    json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    const char *mtype = json_string_value(json_object_get(model, "type"));
    if (!mtype || strcmp(mtype, "BPE") != 0 || !json_is_object(vocab) || !json_is_array(merges) ||
        json_is_true(json_object_get(model, "byte_fallback"))) {
        err_setf(c->err, c->n, "%s/tokenizer.json: only byte-level BPE tokenizers (Llama 3) are supported", c->dir);
        return PSI_ERR_UNSUPPORTED;
    }
    /* the pre-tokenizer decides llama.cpp's tokenizer.ggml.pre */
    char *pre = json_dumps(json_object_get(c->tok, "pre_tokenizer"), JSON_COMPACT);
    json_t *rxs = json_string(LLAMA3_REGEX);
    char *rx = rxs ? json_dumps(rxs, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(rxs);
    bool llama3 = pre && rx && strstr(pre, rx);
    free(pre);
    free(rx);
    if (!llama3) {
        err_setf(c->err, c->n, "%s/tokenizer.json: pre-tokenizer is not Llama 3's (only llama-bpe is supported)",
                 c->dir);
        return PSI_ERR_UNSUPPORTED;
    }
    size_t V = (size_t)c->n_vocab, n_merges = json_array_size(merges), n_strs = 0;
    c->strs = mem_calloc(V + n_merges + 1, sizeof(char *));
    const char **texts = mem_calloc(V, sizeof(char *));
    int32_t *types = mem_alloc(V * sizeof(int32_t));
    const char **mtexts = mem_calloc(n_merges + 1, sizeof(char *));
    psi_status rc = PSI_ERR_NO_MEMORY;
    if (!c->strs || !texts || !types || !mtexts) goto out;
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        json_int_t id = json_integer_value(v);
        if (!json_is_integer(v) || id < 0 || (size_t)id >= V) {
            err_setf(c->err, c->n, "%s/tokenizer.json: token '%.100s' has id outside 0..%zu", c->dir, key, V - 1);
            rc = PSI_ERR_FORMAT;
            goto out;
        }
        texts[id] = key, types[id] = 1;
    }
    json_t *added = json_object_get(c->tok, "added_tokens");
    size_t i;
    json_array_foreach(added, i, v) {
        json_int_t id = json_integer_value(json_object_get(v, "id"));
        const char *s = json_string_value(json_object_get(v, "content"));
        if (!s || id < 0 || (size_t)id >= V) {
            err_setf(c->err, c->n, "%s/tokenizer.json: added token %zu has no content or an id outside 0..%zu",
                     c->dir, i, V - 1);
            rc = PSI_ERR_FORMAT;
            goto out;
        }
        texts[id] = s, types[id] = json_is_true(json_object_get(v, "special")) ? 3 : 4;
    }
    for (size_t t = 0; t < V; t++)
        if (!texts[t]) {
            char pad[32];
            snprintf(pad, sizeof pad, "[PAD%zu]", t);
            if (!(texts[t] = keep_str(c, &n_strs, pad, strlen(pad)))) goto out;
            types[t] = 5;
        }
    json_array_foreach(merges, i, v) {
        if (json_is_string(v)) {
            mtexts[i] = json_string_value(v);
        } else if (json_is_array(v) && json_array_size(v) == 2 && json_is_string(json_array_get(v, 0)) &&
                   json_is_string(json_array_get(v, 1))) { /* newer tokenizers: ["a", "b"] */
            const char *a = json_string_value(json_array_get(v, 0)), *b = json_string_value(json_array_get(v, 1));
            if (!(mtexts[i] = keep_pair(c, &n_strs, a, b))) goto out;
        } else {
            err_setf(c->err, c->n, "%s/tokenizer.json: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", c->dir, i);
            rc = PSI_ERR_FORMAT;
            goto out;
        }
    }
    if ((rc = gguf_writer_set_str(c->w, "tokenizer.ggml.model", "gpt2")) ||
        (rc = gguf_writer_set_str(c->w, "tokenizer.ggml.pre", "llama-bpe")) ||
        (rc = gguf_writer_set_arr_str(c->w, "tokenizer.ggml.tokens", texts, V)) ||
        (rc = gguf_writer_set_arr(c->w, "tokenizer.ggml.token_type", GGUF_I32, types, V)) ||
        (rc = gguf_writer_set_arr_str(c->w, "tokenizer.ggml.merges", mtexts, n_merges)) ||
        (rc = set_special(c, "bos", "tokenizer.ggml.bos_token_id")) ||
        (rc = set_special(c, "eos", "tokenizer.ggml.eos_token_id")) ||
        (rc = set_special(c, "unk", "tokenizer.ggml.unknown_token_id")) ||
        (rc = set_special(c, "pad", "tokenizer.ggml.padding_token_id")))
        goto out;
    json_t *ab = json_object_get(c->tok_cfg, "add_bos_token"), *ae = json_object_get(c->tok_cfg, "add_eos_token");
    if ((json_is_boolean(ab) || template_adds(c, special_content(c, "bos"), true)) &&
        (rc = gguf_writer_set_bool(c->w, "tokenizer.ggml.add_bos_token", ab ? json_is_true(ab) : true)))
        goto out;
    if ((json_is_boolean(ae) || template_adds(c, special_content(c, "eos"), false)) &&
        (rc = gguf_writer_set_bool(c->w, "tokenizer.ggml.add_eos_token", ae ? json_is_true(ae) : true)))
        goto out;
    json_t *tmpl = json_object_get(c->tok_cfg, "chat_template");
    if (json_is_array(tmpl)) { /* [{"name": "default", "template": ...}, ...] */
        json_t *found = NULL;
        json_array_foreach(tmpl, i, v) {
            const char *nm = json_string_value(json_object_get(v, "name"));
            if (nm && !strcmp(nm, "default")) found = json_object_get(v, "template");
        }
        tmpl = found;
    }
    if (json_is_string(tmpl) && (rc = gguf_writer_set_str(c->w, "tokenizer.chat_template", json_string_value(tmpl))))
        goto out;
    rc = PSI_OK;
out:
    if (rc == PSI_ERR_NO_MEMORY) err_setf(c->err, c->n, "%s: out of memory reading the tokenizer", c->dir);
    mem_free(texts);
    mem_free(types);
    mem_free(mtexts);
    return rc;
}

static psi_status build(hf_conv *c)
{
    psi_status rc = PSI_OK;
    if (!(c->config = load_json(c, "config.json", true, 0, &rc))) return rc;
    if (!(c->tok = load_json(c, "tokenizer.json", true, 0, &rc))) return rc;
    if (!(c->tok_cfg = load_json(c, "tokenizer_config.json", true, JSON_DECODE_INT_AS_REAL, &rc))) return rc;
    c->gen_cfg = load_json(c, "generation_config.json", false, 0, &rc);
    if (rc) return rc;
    const char *mt = json_string_value(json_object_get(c->config, "model_type"));
    if (!mt || strcmp(mt, "llama") != 0) {
        err_setf(c->err, c->n, "%s/config.json: model_type '%s' is not supported (supported: llama)", c->dir,
                 mt ? mt : "?");
        return PSI_ERR_UNSUPPORTED;
    }
    int64_t ctx;
    if (!cfg_int(c, "hidden_size", &c->n_embd, -1) || !cfg_int(c, "intermediate_size", &c->n_ff, -1) ||
        !cfg_int(c, "num_hidden_layers", &c->n_layer, -1) || !cfg_int(c, "num_attention_heads", &c->n_head, -1) ||
        !cfg_int(c, "num_key_value_heads", &c->n_head_kv, c->n_head) ||
        /* no head_dim: hidden_size / heads, if that divides (a zero head_dim made the Q/K row
           permutation divide by zero on a crafted checkpoint) */
        !cfg_int(c, "head_dim", &c->head_dim, c->n_embd % c->n_head ? -1 : c->n_embd / c->n_head) ||
        !cfg_int(c, "vocab_size", &c->n_vocab, -1) ||
        !cfg_int(c, "max_position_embeddings", &ctx, 4096))
        return PSI_ERR_FORMAT;
    if (c->n_head % c->n_head_kv || c->head_dim % 2) {
        err_setf(c->err, c->n, "%s/config.json: %" PRId64 " heads, %" PRId64 " KV heads, head_dim %" PRId64
                               " is not a Llama shape", c->dir, c->n_head, c->n_head_kv, c->head_dim);
        return PSI_ERR_FORMAT;
    }
    json_t *th = json_object_get(c->config, "rope_theta"), *eps = json_object_get(c->config, "rms_norm_eps");
    double theta = th ? json_number_value(th) : 10000.0, rms_eps = eps ? json_number_value(eps) : 1e-6;
    const char *slash = strrchr(c->dir, '/');
    const char *name = slash && slash[1] ? slash + 1 : c->dir;
    gguf_writer *w = c->w;
    if ((rc = gguf_writer_set_str(w, "general.architecture", "llama")) ||
        (rc = gguf_writer_set_str(w, "general.type", "model")) ||
        (rc = gguf_writer_set_str(w, "general.name", name)) ||
        (rc = gguf_writer_set_u32(w, "llama.block_count", (uint32_t)c->n_layer)) ||
        (rc = gguf_writer_set_u32(w, "llama.context_length", (uint32_t)ctx)) ||
        (rc = gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)c->n_embd)) ||
        (rc = gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)c->n_ff)) ||
        (rc = gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_head)) ||
        (rc = gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_head_kv)) ||
        (rc = gguf_writer_set_f32(w, "llama.rope.freq_base", (float)theta)) ||
        (rc = gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", (float)rms_eps)) ||
        (rc = gguf_writer_set_u32(w, "llama.attention.key_length", (uint32_t)c->head_dim)) ||
        (rc = gguf_writer_set_u32(w, "llama.attention.value_length", (uint32_t)c->head_dim)) ||
        (rc = gguf_writer_set_u32(w, "general.file_type", 0)) ||
        (rc = gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)c->n_vocab)) ||
        (rc = gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)c->head_dim)))
        return rc;
    if ((rc = add_tokenizer(c)) || (rc = open_weights(c)) || (rc = add_rope_freqs(c, theta))) return rc;
    for (int i = 0; i < c->n_files; i++)
        for (size_t k = 0; k < c->files[i]->n_tensors; k++) c->total += c->files[i]->tensors[k].n_elems;
    int64_t E = c->n_embd, F = c->n_ff, Q = c->n_head * c->head_dim, K = c->n_head_kv * c->head_dim;
    if ((rc = add(c, "model.embed_tokens.weight", "token_embd.weight", c->n_vocab, E, 0, false)) ||
        (rc = add(c, "model.norm.weight", "output_norm.weight", 0, E, 0, false)) ||
        (rc = add(c, "lm_head.weight", "output.weight", c->n_vocab, E, 0,
                  json_is_true(json_object_get(c->config, "tie_word_embeddings")))))
        return rc;
    for (int64_t l = 0; l < c->n_layer; l++) {
        static const struct { const char *hf, *gg; int rows, cols, perm; } map[9] = {
            /* rows/cols: 0 = vector, 1 = E, 2 = F, 3 = Q, 4 = K; perm: 1 = heads, 2 = KV heads */
            {"input_layernorm", "attn_norm", 0, 1, 0},          {"self_attn.q_proj", "attn_q", 3, 1, 1},
            {"self_attn.k_proj", "attn_k", 4, 1, 2},            {"self_attn.v_proj", "attn_v", 4, 1, 0},
            {"self_attn.o_proj", "attn_output", 1, 3, 0},       {"post_attention_layernorm", "ffn_norm", 0, 1, 0},
            {"mlp.gate_proj", "ffn_gate", 2, 1, 0},             {"mlp.down_proj", "ffn_down", 1, 2, 0},
            {"mlp.up_proj", "ffn_up", 2, 1, 0},
        };
        const int64_t dims[5] = {0, E, F, Q, K};
        for (int k = 0; k < 9; k++) {
            char src[128], dst[128];
            snprintf(src, sizeof src, "model.layers.%" PRId64 ".%s.weight", l, map[k].hf);
            snprintf(dst, sizeof dst, "blk.%" PRId64 ".%s.weight", l, map[k].gg);
            int64_t perm = map[k].perm == 1 ? c->n_head : map[k].perm == 2 ? c->n_head_kv : 0;
            if ((rc = add(c, src, dst, dims[map[k].rows], dims[map[k].cols], perm, false))) return rc;
        }
    }
    return PSI_OK;
}

psi_convert_hf_params psi_convert_hf_default_params(void)
{
    psi_convert_hf_params p = {PSI_FTYPE_F32, 0, NULL, NULL};
    return p;
}

psi_status psi_convert_hf(const char *dir, const char *out_path, const psi_convert_hf_params *params, char *err,
                          size_t n)
{
    if (!dir || !out_path) return PSI_ERR_INVALID_ARG;
    psi_convert_hf_params defaults = psi_convert_hf_default_params();
    if (!params) params = &defaults;
    psi_ftype ftype = params->ftype;
    hf_conv c = {.dir = dir, .out = out_path, .err = err, .n = n, .p = params};
    psi_status rc = check_output(out_path, err, n);
    if (rc) return rc;
    if (!(c.w = gguf_writer_new())) return PSI_ERR_NO_MEMORY;
    rc = build(&c);
    if (!rc) {
        if (ftype == PSI_FTYPE_F32) {
            rc = gguf_writer_write(c.w, out_path, err, n);
        } else { /* F32 first, then llama-quantize's choices for the file type */
            char tmp[4096];
            snprintf(tmp, sizeof tmp, "%s.f32.tmp", out_path);
            psi_quantize_params qp = psi_quantize_default_params();
            qp.ftype = ftype;
            qp.n_threads = params->n_threads;
            qp.progress = params->progress;
            qp.progress_user = params->progress_user;
            rc = gguf_writer_write(c.w, tmp, err, n);
            gguf_writer_free(c.w);
            c.w = NULL;
            for (size_t i = 0; i < c.n_bufs; i++) mem_free(c.bufs[i]);
            c.n_bufs = 0;
            if (!rc) rc = psi_quantize(tmp, out_path, &qp, err, n);
            unlink(tmp);
        }
    }
    gguf_writer_free(c.w);
    for (size_t i = 0; i < c.n_bufs; i++) mem_free(c.bufs[i]);
    mem_free(c.bufs);
    for (size_t i = 0; c.strs && c.strs[i]; i++) mem_free(c.strs[i]);
    mem_free(c.strs);
    for (int i = 0; i < c.n_files; i++) st_close(c.files[i]);
    json_decref(c.config);
    json_decref(c.tok);
    json_decref(c.tok_cfg);
    json_decref(c.gen_cfg);
    return rc;
}
