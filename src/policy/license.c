/*
 * license.c — model licences: read general.license* from GGUF, classify
 * them against a table of known licences, and keep the user's acceptances
 * in a small JSON store (psi.h "trust"). Enforcement is the caller's: the
 * CLI refuses to run, the library only answers.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gguf.h"
#include "policy.h"
#include "util.h"

/* The Llama community licences' main obligations, summarised (the licence
 * text at general.license.link is what binds). Sources: Llama 2 and
 * Llama 3.x community licences and acceptable use policies. */
static const char llama_terms[] =
    "Summary of the Llama community licence and acceptable use policy (the licence text binds, not this):\n"
    "  - Attribution: redistributions carry a copy of the licence and its notice; Llama 3 and later\n"
    "    also require \"Built with Llama\" to be displayed with products that use the model, and a\n"
    "    model derived from it to be named starting with \"Llama\".\n"
    "  - Products with more than 700 million monthly active users need a separate licence from Meta.\n"
    "  - Do not use the model to break the law or others' rights; for violence, terrorism, child\n"
    "    sexual exploitation, trafficking or sexual violence; to harass, discriminate or bully; for\n"
    "    unlicensed professional practice; to collect sensitive personal data unlawfully; to make\n"
    "    malware or attack systems; for weapons, illegal drugs, critical infrastructure or self-harm;\n"
    "    to deceive (fraud, disinformation, impersonation, fake reviews, spam).\n"
    "  - Tell end users about known dangers of the AI system; do not pass generated content off as\n"
    "    written by a person.\n";

static const struct {
    const char *id;
    psi_license_need need;
} known[] = {
    {"apache-2.0", PSI_LICENSE_OPEN},   {"mit", PSI_LICENSE_OPEN},          {"bsd-2-clause", PSI_LICENSE_OPEN},
    {"bsd-3-clause", PSI_LICENSE_OPEN}, {"cc0-1.0", PSI_LICENSE_OPEN},      {"cc-by-4.0", PSI_LICENSE_OPEN},
    {"cc-by-sa-4.0", PSI_LICENSE_OPEN}, {"mpl-2.0", PSI_LICENSE_OPEN},      {"unlicense", PSI_LICENSE_OPEN},
    {"gpl-3.0", PSI_LICENSE_OPEN},      {"lgpl-3.0", PSI_LICENSE_OPEN},     {"llama2", PSI_LICENSE_ACCEPT},
    {"llama3", PSI_LICENSE_ACCEPT},     {"llama3.1", PSI_LICENSE_ACCEPT},   {"llama3.2", PSI_LICENSE_ACCEPT},
    {"llama3.3", PSI_LICENSE_ACCEPT},   {"llama4", PSI_LICENSE_ACCEPT},
};

/* GGUF strings should be UTF-8, but a file may hold any bytes: those that
 * are not become U+FFFD, and a long value is cut between characters, so
 * that what is shown is what the acceptance store records and matches
 * (JSON: a licence id that is not UTF-8 could not be written there, and
 * `psi license accept` would accept nothing) and what psi serve lists. */
static void copy_str(const gguf *g, const char *key, char *out, size_t size)
{
    gguf_str s;
    out[0] = 0;
    if (gguf_get_str(g, key, &s, NULL, 0) != PSI_OK) return;
    utf8_sanitize((const uint8_t *)s.ptr, (size_t)s.len, out, size);
}

psi_status psi_license_read(const char *path, psi_license_info *out, char *err, size_t err_size)
{
    if (!path || !out) return PSI_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(path, &st)) {
        err_setf(err, err_size, "%s: %s", path, strerror(errno));
        return PSI_ERR_IO;
    }
    if (!S_ISREG(st.st_mode)) { /* and opening a FIFO would block */
        err_setf(err, err_size, "%s: not a regular file", path);
        return PSI_ERR_IO;
    }
    gguf *g = NULL;
    psi_status rc = gguf_open(path, &g, err, err_size);
    if (rc != PSI_OK) return rc;
    copy_str(g, "general.license", out->id, sizeof out->id);
    copy_str(g, "general.license.name", out->name, sizeof out->name);
    copy_str(g, "general.license.link", out->link, sizeof out->link);
    copy_str(g, "general.name", out->model, sizeof out->model);
    copy_str(g, "general.organization", out->org, sizeof out->org);
    gguf_close(g);
    out->need = PSI_LICENSE_UNKNOWN;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcasecmp(out->id, known[i].id)) out->need = known[i].need;
    if (!strncasecmp(out->id, "llama", 5)) {
        out->need = PSI_LICENSE_ACCEPT; /* any Llama licence, also one newer than the table */
        out->terms = llama_terms;
    }
    return PSI_OK;
}

psi_status psi_license_store_path(char *buf, size_t size)
{
    return policy_xdg_path("XDG_CONFIG_HOME", ".config", "licenses.json", buf, size);
}

/* The store's entries array; a missing file is an empty store, anything
 * else that is not {"accepted": [...]} is an error. */
static psi_status store_load(const char *store, json_t **root, char *err, size_t err_size)
{
    json_error_t je;
    struct stat st;
    if (stat(store, &st) && (errno == ENOENT || errno == ENOTDIR)) { /* no store: nothing accepted yet */
        *root = json_pack("{s:i,s:[]}", "version", 1, "accepted");
        return *root ? PSI_OK : PSI_ERR_NO_MEMORY;
    }
    FILE *f = fopen(store, "r");
    if (!f) {
        err_setf(err, err_size, "%s: cannot read the licence acceptance file: %s", store, strerror(errno));
        return PSI_ERR_IO;
    }
    *root = json_loadf(f, 0, &je);
    fclose(f);
    if (!*root) {
        err_setf(err, err_size, "%s: the licence acceptance file is corrupt (line %d: %s); fix or remove it",
                 store, je.line, je.text);
        return PSI_ERR_FORMAT;
    }
    if (!json_is_array(json_object_get(*root, "accepted"))) {
        json_decref(*root);
        *root = NULL;
        err_setf(err, err_size, "%s: the licence acceptance file has no \"accepted\" list; fix or remove it", store);
        return PSI_ERR_FORMAT;
    }
    return PSI_OK;
}

psi_status psi_license_is_accepted(const char *store, const char *model_path, const psi_license_info *li,
                                   bool *yes, char *err, size_t err_size)
{
    if (!store || !model_path || !li || !yes) return PSI_ERR_INVALID_ARG;
    *yes = false;
    struct stat st;
    if (stat(model_path, &st)) {
        err_setf(err, err_size, "%s: %s", model_path, strerror(errno));
        return PSI_ERR_IO;
    }
    char id[128], hex[65] = "";
    policy_file_id(&st, id, sizeof id);
    json_t *root;
    psi_status rc = store_load(store, &root, err, err_size);
    if (rc != PSI_OK) return rc;
    json_t *arr = json_object_get(root, "accepted"), *e;
    size_t i;
    json_array_foreach(arr, i, e) {
        const char *lic = json_string_value(json_object_get(e, "license"));
        const char *sha = json_string_value(json_object_get(e, "sha256"));
        const char *fid = json_string_value(json_object_get(e, "file_id"));
        if (!lic || !sha || strcmp(lic, li->id)) continue;
        if (fid && !strcmp(fid, id)) { /* same file, unchanged since it was hashed */
            *yes = true;
            break;
        }
        if (!hex[0]) {
            uint8_t d[32];
            uint64_t size;
            if ((rc = psi_file_sha256(model_path, d, &size, NULL, NULL, err, err_size)) != PSI_OK) break;
            policy_hex(d, 32, hex);
        }
        if (!strcmp(sha, hex)) {
            *yes = true;
            break;
        }
    }
    json_decref(root);
    return rc;
}

psi_status psi_license_accept(const char *store, const char *model_path, const psi_license_info *li, char *err,
                              size_t err_size)
{
    if (!store || !model_path || !li) return PSI_ERR_INVALID_ARG;
    struct stat st;
    if (stat(model_path, &st)) {
        err_setf(err, err_size, "%s: %s", model_path, strerror(errno));
        return PSI_ERR_IO;
    }
    uint8_t d[32];
    uint64_t size;
    char hex[65], id[128], when[32];
    psi_status rc = psi_file_sha256(model_path, d, &size, NULL, NULL, err, err_size);
    if (rc != PSI_OK) return rc;
    policy_hex(d, 32, hex);
    policy_file_id(&st, id, sizeof id);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    /* read-modify-write under an exclusive lock, so that two processes
     * accepting at once do not lose one of the records */
    char lock_path[4200];
    snprintf(lock_path, sizeof lock_path, "%s.lock", store);
    char *dir = mem_strndup(store, strlen(store)), *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash && slash != dir) {
        *slash = 0;
        rc = policy_mkdirs(dir, err, err_size);
    }
    mem_free(dir);
    if (rc != PSI_OK) return rc;
    int lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0 || flock(lock, LOCK_EX)) {
        err_setf(err, err_size, "%s: cannot lock: %s", lock_path, strerror(errno));
        if (lock >= 0) close(lock);
        return PSI_ERR_IO;
    }
    json_t *root;
    if ((rc = store_load(store, &root, err, err_size)) != PSI_OK) {
        close(lock);
        return rc;
    }
    json_t *arr = json_object_get(root, "accepted"), *e;
    size_t i;
    json_array_foreach(arr, i, e) { /* one record per (file contents, licence) */
        const char *lic = json_string_value(json_object_get(e, "license"));
        const char *sha = json_string_value(json_object_get(e, "sha256"));
        if (lic && sha && !strcmp(lic, li->id) && !strcmp(sha, hex)) {
            json_array_remove(arr, i);
            break;
        }
    }
    /* the path as UTF-8 too (a file name may be any bytes), or the record would be lost */
    size_t plen = strlen(model_path);
    char *upath = malloc(3 * plen + 1);
    if (upath) utf8_sanitize((const uint8_t *)model_path, plen, upath, 3 * plen + 1);
    json_t *rec = upath ? json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "sha256", hex, "license", li->id, "time", when,
                                    "model", li->model, "path", upath, "file_id", id)
                        : NULL;
    free(upath);
    char *txt = rec && !json_array_append_new(arr, rec) ? json_dumps(root, JSON_INDENT(1)) : NULL;
    json_decref(root);
    size_t len = txt ? strlen(txt) : 0;
    if (txt) {
        rc = policy_write_atomic(store, txt, len, 0600, len, err, err_size);
    } else {
        err_setf(err, err_size, "%s: cannot record the acceptance: out of memory", store);
        rc = PSI_ERR_NO_MEMORY;
    }
    free(txt);
    close(lock); /* releases the lock */
    return rc;
}
