/*
 * serve_config.c — `psi serve --config FILE`: the models one server serves,
 * each open (any valid key, or anyone when there are no keys) or restricted
 * (only the keys that list it), and the named API keys, stored as the
 * SHA-256 of the key. The schema and its meaning are in docs/server.md
 * and docs/trust.md ("Access control"):
 *
 *   {"models": [{"name": "tiny", "path": "tiny.gguf", "access": "open"},
 *               {"name": "secret", "path": "s.gguf", "access": "restricted",
 *                "require_signed": "me.pub", "chat_template": "llama3"}],
 *    "keys": [{"name": "alice", "sha256": "<64 hex>", "models": ["secret"]}]}
 *
 * Strict: an unknown field, a duplicate, a missing file or a malformed hash
 * stops the server before it starts, with one line naming the place (a
 * misspelt "access" must never leave a model open). Relative paths are
 * relative to the config file's folder. Nothing is loaded here.
 */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hub.h"
#include "serve.h"

/* One line: "psi serve: FILE: where: what". Returns -1. */
static int bad(const srv_front *f, const char *where, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(const srv_front *f, const char *where, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "psi serve: %s: %s%s%s\n", f->cfg.config_path, where, where[0] ? ": " : "", msg);
    return -1;
}

/* Every field of o is one of the known ones (NULL-terminated). */
static int known_fields(const srv_front *f, const char *where, json_t *o, const char *const *known)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        const char *const *q = known;
        while (*q && strcmp(*q, k)) q++;
        if (*q) continue;
        char list[256] = "";
        for (q = known; *q; q++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", q == known ? "" : ", ", *q);
        return bad(f, where, "unknown field '%.60s' (known: %s)", k, list);
    }
    return 0;
}

/* A string field: NULL when absent (and not required); -1 when wrong. */
static int str_field(const srv_front *f, const char *where, json_t *o, const char *name, bool required,
                     const char **out)
{
    json_t *v = json_object_get(o, name);
    *out = NULL;
    if (!v && !required) return 0;
    if (!v) return bad(f, where, "'%s' is required", name);
    if (!json_is_string(v) || !json_string_length(v) || strlen(json_string_value(v)) != json_string_length(v))
        return bad(f, where, "'%s' must be a non-empty string", name);
    *out = json_string_value(v);
    return 0;
}

/* A name clients send (model id, key name): printable, at most max bytes. */
static int check_name(const srv_front *f, const char *where, const char *what, const char *name, size_t max)
{
    if (strlen(name) > max) return bad(f, where, "%s is longer than %zu bytes", what, max);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return bad(f, where, "%s contains a control character", what);
    return 0;
}

/* path as it is (absolute, hf:...) or relative to the config file's folder; malloc'd. */
static char *resolve(const srv_front *f, const char *path)
{
    const char *cfg = f->cfg.config_path, *slash = strrchr(cfg, '/');
    if (path[0] == '/' || !slash || hub_is_ref(path)) return strdup(path);
    size_t n = (size_t)(slash - cfg) + 1, len = n + strlen(path) + 1;
    char *out = malloc(len);
    if (out) snprintf(out, len, "%.*s%s", (int)n, cfg, path);
    return out;
}

static int load_model(srv_front *f, json_t *m, int i, srv *s)
{
    static const char *const fields[] = {"name", "path", "access", "require_signed", "chat_template", NULL};
    char where[160];
    snprintf(where, sizeof where, "models[%d]", i);
    if (!json_is_object(m)) return bad(f, where, "must be an object");
    const char *name, *path, *acc, *pub, *tmpl;
    if (known_fields(f, where, m, fields) || str_field(f, where, m, "name", true, &name)) return -1;
    snprintf(where, sizeof where, "model '%.100s'", name);
    if (check_name(f, where, "the name", name, 100) || str_field(f, where, m, "path", true, &path) ||
        str_field(f, where, m, "access", true, &acc) || str_field(f, where, m, "require_signed", false, &pub) ||
        str_field(f, where, m, "chat_template", false, &tmpl))
        return -1;
    for (int k = 0; k < i; k++)
        if (!strcmp(f->models[k]->model_id, name)) return bad(f, where, "a second model of this name");
    if (strcmp(acc, "open") && strcmp(acc, "restricted"))
        return bad(f, where, "'access' is '%.40s'; it must be \"open\" or \"restricted\"", acc);
    s->cfg = f->cfg;
    s->front = f;
    s->index = i;
    s->restricted = !strcmp(acc, "restricted");
    if (!(s->own_name = strdup(name)) || !(s->own_path = resolve(f, path)) || (pub && !(s->own_pub = resolve(f, pub))))
        return bad(f, where, "out of memory");
    s->model_id = s->own_name;
    if (hub_is_ref(s->own_path)) { /* hf:... pulls on first use */
        char *local = hub_model_path("serve", s->own_path);
        if (!local) return -1;
        free(s->own_path);
        s->own_path = local;
    }
    s->cfg.model_path = s->own_path;
    if (access(s->own_path, R_OK)) return bad(f, where, "%s: %s", s->own_path, strerror(errno));
    if (pub && access(s->own_pub, R_OK)) return bad(f, where, "require_signed: %s: %s", s->own_pub, strerror(errno));
    s->cfg.trust.model_signed = s->own_pub;
    if (tmpl) {
        s->cfg.chat_template = NULL;
        for (const char *const *t = psi_chat_templates(); *t; t++)
            if (!strcmp(*t, tmpl)) s->cfg.chat_template = *t;
        if (!s->cfg.chat_template)
            return bad(f, where, "unknown chat_template '%.40s' (known: llama3, llama3.1, llama3.2, llama2, plain)",
                       tmpl);
    }
    return 0;
}

static int hex_hash(const char *hex, unsigned char out[32])
{
    if (strlen(hex) != 64) return -1;
    for (int i = 0; i < 64; i++) {
        char c = hex[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (v < 0) return -1;
        out[i / 2] = (unsigned char)(i % 2 ? out[i / 2] | v : v << 4);
    }
    return 0;
}

static int load_key(srv_front *f, json_t *k, size_t i, srv_key *key)
{
    static const char *const fields[] = {"name", "sha256", "models", NULL};
    char where[160];
    snprintf(where, sizeof where, "keys[%zu]", i);
    if (!json_is_object(k)) return bad(f, where, "must be an object");
    const char *name, *hex;
    if (known_fields(f, where, k, fields) || str_field(f, where, k, "name", true, &name)) return -1;
    snprintf(where, sizeof where, "key '%.60s'", name);
    if (check_name(f, where, "the name", name, sizeof key->name - 1) || str_field(f, where, k, "sha256", true, &hex))
        return -1;
    if (hex_hash(hex, key->hash))
        return bad(f, where, "'sha256' must be 64 hexadecimal digits, the SHA-256 of the key (psi keyhash makes it)");
    for (size_t j = 0; j < i; j++) {
        if (!strcmp(f->keys[j].name, name)) return bad(f, where, "a second key of this name");
        if (!memcmp(f->keys[j].hash, key->hash, 32)) return bad(f, where, "the same key as '%s'", f->keys[j].name);
    }
    snprintf(key->name, sizeof key->name, "%s", name);
    json_t *ms = json_object_get(k, "models");
    if (ms && !json_is_array(ms)) return bad(f, where, "'models' must be an array of model names");
    for (size_t j = 0; j < json_array_size(ms); j++) {
        json_t *m = json_array_get(ms, j);
        int found = -1;
        for (int q = 0; json_is_string(m) && q < f->n_models; q++)
            if (json_string_length(m) == strlen(f->models[q]->model_id) &&
                !strcmp(json_string_value(m), f->models[q]->model_id))
                found = q;
        if (!json_is_string(m)) return bad(f, where, "'models' must be an array of model names");
        if (found < 0) return bad(f, where, "'models' names '%.100s', which is not a model of this config",
                                  json_string_value(m));
        key->models |= (uint64_t)1 << found;
    }
    return 0;
}

int config_load(srv_front *f)
{
    json_error_t je;
    json_t *root = json_load_file(f->cfg.config_path, JSON_REJECT_DUPLICATES, &je), *models, *keys;
    static const char *const fields[] = {"models", "keys", NULL};
    int rc = -1;
    if (!root) {
        if (je.line < 1) return bad(f, "", "%s", je.text); /* cannot be read */
        return bad(f, "", "not valid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
    }
    if (!json_is_object(root)) {
        bad(f, "", "must be a JSON object {\"models\": [...], \"keys\": [...]}");
        goto done;
    }
    if (known_fields(f, "", root, fields)) goto done;
    models = json_object_get(root, "models");
    keys = json_object_get(root, "keys");
    if (!json_is_array(models) || !json_array_size(models)) {
        bad(f, "", "'models' must be a non-empty array");
        goto done;
    }
    if (json_array_size(models) > SRV_MAX_MODELS) {
        bad(f, "", "%zu models; at most %d", json_array_size(models), SRV_MAX_MODELS);
        goto done;
    }
    if (keys && !json_is_array(keys)) {
        bad(f, "", "'keys' must be an array");
        goto done;
    }
    size_t n = json_array_size(models), nk = json_array_size(keys);
    if (!(f->models = calloc(n, sizeof *f->models)) || (nk && !(f->keys = calloc(nk, sizeof *f->keys)))) {
        bad(f, "", "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(f->models[i] = calloc(1, sizeof *f->models[i]))) {
            bad(f, "", "out of memory");
            goto done;
        }
        f->n_models = (int)i + 1;
        if (load_model(f, json_array_get(models, i), (int)i, f->models[i])) goto done;
    }
    for (size_t i = 0; i < nk; i++) {
        if (load_key(f, json_array_get(keys, i), i, &f->keys[i])) goto done;
        f->n_keys = i + 1;
    }
    rc = 0;
    for (int i = 0; i < f->n_models && !rc; i++) {
        srv *s = f->models[i];
        uint64_t any = 0;
        for (size_t k = 0; k < f->n_keys; k++) any |= f->keys[k].models;
        if (s->restricted && !f->n_keys)
            rc = bad(f, "", "model '%s' is restricted but the config has no keys: nobody could use it", s->model_id);
        else if (s->restricted && !(any >> i & 1))
            fprintf(stderr, "psi serve: note: %s: no key lists the restricted model '%s'\n", f->cfg.config_path,
                    s->model_id);
    }
done:
    json_decref(root);
    return rc;
}

void srv_models_free(srv_front *f)
{
    for (int i = 0; i < f->n_models; i++) {
        srv *s = f->models[i];
        if (!s) continue;
        free(s->own_name);
        free(s->own_path);
        free(s->own_pub);
        free(s);
    }
    free(f->models);
    f->models = NULL;
    f->n_models = 0;
}
