/*
 * hub.c — `psi pull`, `psi list`, `psi rm` and `-m hf:...`: model files from
 * the Hugging Face Hub (API: GET /api/models/OWNER/REPO/tree/main?recursive=true
 * lists {type, path, size, lfs: {oid = SHA-256, size}}; files come from
 * /OWNER/REPO/resolve/main/PATH) or from a plain URL, with libcurl.
 *
 * Downloads go to FILE.part, resume with an HTTP Range request when the
 * connection drops (up to 5 tries) or when a later pull finds the .part,
 * are checked against the Hub's SHA-256 for LFS files (libsodium, streamed
 * over the finished file) and renamed into place. A reference's resolution
 * is remembered in refs/<sha256 of the reference> so `-m hf:...` finds a
 * cached model without the network.
 */
#define _GNU_SOURCE /* vasprintf, memmem, nftw */
#include <curl/curl.h>
#include <stdarg.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "hub.h"

#define MAX_PARTS 256
#define DEFAULT_ENDPOINT "https://huggingface.co"

typedef struct hub_file {
    char *url, *dest;     /* dest: absolute path in the cache */
    char sha256[65];      /* "" when unknown */
    long long size;       /* -1 when unknown */
} hub_file;

bool hub_is_ref(const char *s)
{
    return s && (!strncmp(s, "hf:", 3) || !strncmp(s, "https://", 8) || !strncmp(s, "http://", 7));
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    if (!s) {
        fputs("psi: out of memory\n", stderr);
        exit(1);
    }
    return s;
}

/* $PSI_HOME, else $XDG_CACHE_HOME/psi, else ~/.cache/psi (malloc'd). */
static char *psi_home(void)
{
    const char *h = getenv("PSI_HOME"), *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (h && *h) return xasprintf("%s", h);
    if (x && *x) return xasprintf("%s/psi", x);
    return xasprintf("%s/.cache/psi", home && *home ? home : ".");
}

static const char *endpoint(void)
{
    const char *e = getenv("PSI_HF_ENDPOINT");
    return e && *e ? e : DEFAULT_ENDPOINT;
}

/* mkdir -p of the directory part of path */
static bool make_parents(const char *cmd, const char *path)
{
    char *p = xasprintf("%s", path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            cli_fail(cmd, "cannot create %s: %s", p, strerror(errno));
            free(p);
            return false;
        }
        *s = '/';
    }
    free(p);
    return true;
}

static struct curl_slist *auth_headers(void)
{
    const char *tok = getenv("HF_TOKEN");
    if (!tok || !*tok) return NULL;
    char *h = xasprintf("Authorization: Bearer %s", tok);
    struct curl_slist *l = curl_slist_append(NULL, h);
    free(h);
    return l;
}

static CURL *new_curl(const char *url, struct curl_slist *hdr)
{
    CURL *c = curl_easy_init();
    if (!c) return NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L); /* the Hub redirects to its CDN; curl drops
                                                       Authorization on other hosts */
    curl_easy_setopt(c, CURLOPT_USERAGENT, "psi/0.1");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L); /* a stalled transfer is a dropped one */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (hdr) curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    return c;
}

typedef struct membuf { char *p; size_t n; } membuf;

static size_t mem_write(char *ptr, size_t size, size_t nmemb, void *user)
{
    membuf *b = user;
    size_t n = size * nmemb;
    if (b->n + n > (64u << 20)) return 0; /* an API answer is not that large */
    char *np = realloc(b->p, b->n + n + 1);
    if (!np) return 0;
    memcpy(np + b->n, ptr, n);
    b->p = np;
    b->n += n;
    b->p[b->n] = 0;
    return n;
}

/* One line for an HTTP error status; ref names what was asked for. */
static int http_fail(const char *cmd, const char *what, long code)
{
    if (code == 401 || code == 403)
        return cli_fail(cmd, "%s: access denied (HTTP %ld): the repository is gated or private; accept its "
                             "licence on the Hub and set HF_TOKEN to a token that can read it", what, code);
    if (code == 404) return cli_fail(cmd, "%s: not found (HTTP 404)", what);
    return cli_fail(cmd, "%s: HTTP %ld", what, code);
}

static int net_fail(const char *cmd, const char *url, CURLcode rc)
{
    return cli_fail(cmd, "cannot reach %s: %s (offline? give a local file with -m FILE.gguf)", url,
                    curl_easy_strerror(rc));
}

/* ---- download with resume and verification */
typedef struct dl {
    FILE *f;
    CURL *c;
    long long have;  /* bytes in .part before this request */
    long long got;   /* bytes written by this request */
    bool checked, tty, ok_status;
    long long total; /* -1 unknown */
    double t0, last;
    const char *name;
} dl;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t file_write(char *ptr, size_t size, size_t nmemb, void *user)
{
    dl *d = user;
    if (!d->checked) {
        long code = 0;
        curl_easy_getinfo(d->c, CURLINFO_RESPONSE_CODE, &code);
        d->ok_status = code == 200 || code == 206;
        if (code == 200 && d->have > 0) { /* the server ignored the Range: start over */
            if (fflush(d->f) || ftruncate(fileno(d->f), 0) || fseek(d->f, 0, SEEK_SET)) return 0;
            d->have = 0;
        }
        d->checked = true;
    }
    size_t n = size * nmemb;
    if (!d->ok_status) return n; /* an error page: not model bytes */
    if (fwrite(ptr, 1, n, d->f) != n) return 0;
    d->got += (long long)n;
    return n;
}

static void human(char *out, size_t n, double bytes)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) bytes /= 1024, u++;
    snprintf(out, n, "%.1f %s", bytes, unit[u]);
}

static int progress_cb(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    dl *d = user;
    double t = now_s();
    if (!d->tty || t - d->last < 0.2) return 0;
    d->last = t;
    double done = (double)(d->have + d->got), speed = (double)d->got / (t - d->t0 > 1e-3 ? t - d->t0 : 1e-3);
    char a[32], b[32], s[32];
    human(a, sizeof a, done);
    human(b, sizeof b, (double)d->total);
    human(s, sizeof s, speed);
    if (d->total > 0) {
        double f = done / (double)d->total, eta = speed > 0 ? ((double)d->total - done) / speed : 0;
        int w = (int)(f * 30);
        fprintf(stderr, "\r%-.40s [%.*s%*s] %5.1f%% %s / %s %s/s ETA %d:%02d ", d->name, w,
                "##############################", 30 - w, "", 100 * f, a, b, s, (int)eta / 60, (int)eta % 60);
    } else {
        fprintf(stderr, "\r%-.40s %s %s/s ", d->name, a, s);
    }
    return 0;
}

static bool sha256_file(const char *path, char hex[65])
{
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    static unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) crypto_hash_sha256_update(&st, buf, n);
    bool ok = !ferror(f);
    fclose(f);
    unsigned char h[32];
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(hex, 65, h, 32);
    return ok;
}

static int download(const char *cmd, const hub_file *hf)
{
    if (!make_parents(cmd, hf->dest)) return 1;
    char *part = xasprintf("%s.part", hf->dest);
    const char *name = strrchr(hf->dest, '/') ? strrchr(hf->dest, '/') + 1 : hf->dest;
    bool tty = isatty(STDERR_FILENO) == 1;
    struct curl_slist *hdr = auth_headers();
    int rc = 1;
    FILE *f = fopen(part, "ab");
    if (!f) {
        cli_fail(cmd, "cannot write %s: %s", part, strerror(errno));
        goto out;
    }
    char sz[32] = "size unknown";
    if (hf->size >= 0) human(sz, sizeof sz, (double)hf->size);
    fprintf(stderr, "psi %s: downloading %s (%s)\n", cmd, name, sz);
    for (int attempt = 0;; attempt++) {
        fflush(f);
        long long have = (long long)ftello(f);
        if (hf->size >= 0 && have == hf->size) break; /* a finished .part from an earlier run */
        dl d = {.f = f, .have = have, .tty = tty, .total = hf->size, .t0 = now_s(), .name = name};
        CURL *c = d.c = new_curl(hf->url, hdr);
        if (!c) {
            cli_fail(cmd, "cannot start libcurl");
            goto out;
        }
        char range[48];
        snprintf(range, sizeof range, "%lld-", have);
        if (have > 0) curl_easy_setopt(c, CURLOPT_RANGE, range);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, file_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &d);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress_cb);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, &d);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        CURLcode cr = curl_easy_perform(c);
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_cleanup(c);
        if (tty) fputc('\n', stderr);
        if (cr == CURLE_OK && (code == 200 || code == 206)) break;
        if (cr == CURLE_OK && code == 416 && have > 0 && hf->size < 0) break; /* nothing left to send */
        if (cr == CURLE_OK || code >= 400) {
            http_fail(cmd, hf->url, code);
            if (code == 416) unlink(part); /* the .part does not fit the file any more */
            goto out;
        }
        if (cr == CURLE_COULDNT_CONNECT || cr == CURLE_COULDNT_RESOLVE_HOST || cr == CURLE_WRITE_ERROR ||
            attempt == 4) {
            if (cr == CURLE_WRITE_ERROR) cli_fail(cmd, "cannot write %s: %s", part, strerror(errno));
            else net_fail(cmd, hf->url, cr);
            goto out;
        }
        fprintf(stderr, "psi %s: connection lost after %lld bytes (%s); resuming\n", cmd, have + d.got,
                curl_easy_strerror(cr));
        sleep((unsigned)attempt);
    }
    if (fclose(f) != 0) {
        f = NULL;
        cli_fail(cmd, "cannot write %s: %s", part, strerror(errno));
        goto out;
    }
    f = NULL;
    struct stat st;
    if (stat(part, &st) != 0 || (hf->size >= 0 && st.st_size != hf->size)) {
        cli_fail(cmd, "%s: got %lld bytes, the Hub lists %lld", name, (long long)st.st_size, hf->size);
        unlink(part);
        goto out;
    }
    if (hf->sha256[0]) {
        char hex[65];
        if (!sha256_file(part, hex)) {
            cli_fail(cmd, "cannot read back %s", part);
            goto out;
        }
        if (strcasecmp(hex, hf->sha256) != 0) {
            cli_fail(cmd, "%s: SHA-256 mismatch (got %s, the Hub publishes %s); download removed", name, hex,
                     hf->sha256);
            unlink(part);
            goto out;
        }
    }
    if (rename(part, hf->dest) != 0) {
        cli_fail(cmd, "cannot rename %s: %s", part, strerror(errno));
        goto out;
    }
    fprintf(stderr, "psi %s: %s%s\n", cmd, hf->dest, hf->sha256[0] ? " (SHA-256 verified)" : "");
    rc = 0;
out:
    if (f) fclose(f);
    curl_slist_free_all(hdr);
    free(part);
    return rc;
}

/* ---- references */
/* "-00001-of-00003.gguf" at the end of a name: sets *no and *count. */
static bool split_part(const char *path, int *no, int *count, size_t *prefix_len)
{
    size_t n = strlen(path);
    int a, b, end = 0;
    if (n < 20) return false;
    const char *t = path + n - 20;
    if (sscanf(t, "-%5d-of-%5d.gguf%n", &a, &b, &end) != 2 || end != 20 || a < 1 || b < 1 || a > b) return false;
    *no = a, *count = b, *prefix_len = n - 20;
    return true;
}

/* QUANT appears in the file name as a whole word (Q4_K does not match Q4_K_M). */
static bool has_quant(const char *path, const char *q)
{
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    size_t ql = strlen(q);
    for (const char *s = base; *s; s++) {
        if (strncasecmp(s, q, ql) != 0) continue;
        char before = s == base ? '-' : s[-1], after = s[ql];
        bool word = (before == '-' || before == '.' || before == '_') &&
                    (after == '-' || after == '.' || after == 0);
        if (word) return true;
    }
    return false;
}

static void free_files(hub_file *f, int n)
{
    for (int i = 0; i < n; i++) free(f[i].url), free(f[i].dest);
}

static bool ends_gguf(const char *p)
{
    size_t n = strlen(p);
    return n > 5 && !strcasecmp(p + n - 5, ".gguf");
}

/* A file name from the Hub's list, joined below the cache directory and
 * into a URL: '/'-separated parts, none empty, "." or "..", no leading '/',
 * no backslash or control character. The Hub never lists such names; a
 * mirror (PSI_HF_ENDPOINT) or anything answering in its place might, and
 * would otherwise have psi write outside its cache. */
static bool is_ctl(char c) { return (unsigned char)c < 0x20 || c == 0x7f; }

static bool hub_path_ok(const char *p)
{
    for (const char *part = p;; part++) {
        size_t n = strcspn(part, "/");
        if (n == 0 || (n == 1 && part[0] == '.') || (n == 2 && part[0] == '.' && part[1] == '.'))
            return false;
        for (size_t k = 0; k < n; k++)
            if (is_ctl(part[k]) || part[k] == '\\') return false;
        part += n;
        if (!*part) return true;
    }
}

/* url-escaped (curl_easy_escape) parts of a checked name, '/' kept */
static char *url_path(const char *p)
{
    char *out = xasprintf("%s", "");
    for (const char *part = p;; part++) {
        size_t n = strcspn(part, "/");
        char *e = curl_easy_escape(NULL, part, (int)n); /* the handle is not used (libcurl >= 7.82) */
        char *joined = xasprintf("%s%s%s", out, *out ? "/" : "", e ? e : "");
        curl_free(e);
        free(out);
        out = joined;
        part += n;
        if (!*part) return out;
    }
}

/* Resolve an hf: reference through the Hub's tree API into files[] (all parts
 * of a split set). Returns the count, 0 after an error was printed. */
static int resolve_hf(const char *cmd, const char *ref, const char *home, hub_file *files)
{
    const char *spec = ref + 3;
    char owner[128], repo[256], quant[64] = "", file[1024] = "";
    const char *s1 = strchr(spec, '/');
    if (!s1 || s1 == spec || (size_t)(s1 - spec) >= sizeof owner) {
        cli_fail(cmd, "%s: expected hf:OWNER/REPO[:QUANT] or hf:OWNER/REPO/FILE.gguf", ref);
        return 0;
    }
    snprintf(owner, sizeof owner, "%.*s", (int)(s1 - spec), spec);
    const char *r = s1 + 1, *s2 = strchr(r, '/'), *colon = strchr(r, ':');
    size_t rl = s2 ? (size_t)(s2 - r) : colon ? (size_t)(colon - r) : strlen(r);
    if (rl == 0 || rl >= sizeof repo || (s2 && (!s2[1] || strlen(s2 + 1) >= sizeof file)) ||
        (!s2 && colon && (!colon[1] || strlen(colon + 1) >= sizeof quant)) || strstr(spec, "..")) {
        cli_fail(cmd, "%s: expected hf:OWNER/REPO[:QUANT] or hf:OWNER/REPO/FILE.gguf", ref);
        return 0;
    }
    snprintf(repo, sizeof repo, "%.*s", (int)rl, r);
    if (s2) snprintf(file, sizeof file, "%s", s2 + 1);
    else if (colon) snprintf(quant, sizeof quant, "%s", colon + 1);

    char *api = xasprintf("%s/api/models/%s/%s/tree/main?recursive=true", endpoint(), owner, repo);
    struct curl_slist *hdr = auth_headers();
    CURL *c = new_curl(api, hdr);
    membuf b = {0};
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mem_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    CURLcode cr = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdr);
    int n = 0;
    json_t *tree = NULL;
    if (cr != CURLE_OK) {
        net_fail(cmd, endpoint(), cr);
        goto out;
    }
    if (code != 200) {
        http_fail(cmd, ref, code);
        goto out;
    }
    json_error_t je;
    tree = json_loads(b.p ? b.p : "", 0, &je);
    if (!json_is_array(tree)) {
        cli_fail(cmd, "%s: the Hub's file list is not a JSON array (%.100s)", ref, tree ? "wrong type" : je.text);
        goto out;
    }
    /* pick the file: named, by quant, the only one, or Q4_K_M */
    const char *pick = NULL;
    int n_match = 0, n_all = 0;
    size_t i;
    json_t *e;
    for (int pass = 0; pass < 2 && !pick; pass++) {
        const char *q = pass == 0 ? quant : "Q4_K_M";
        if (pass == 1 && (quant[0] || file[0])) break;
        n_match = 0;
        json_array_foreach(tree, i, e) {
            const char *p = json_string_value(json_object_get(e, "path"));
            const char *type = json_string_value(json_object_get(e, "type"));
            if (!p || !type || strcmp(type, "file") != 0 || !ends_gguf(p)) continue;
            int no, cnt;
            size_t pl;
            bool ok = file[0] ? !strcmp(p, file) : q[0] ? has_quant(p, q) : true;
            if (!ok || (split_part(p, &no, &cnt, &pl) && no != 1)) continue;
            if (!pick) pick = p;
            n_match++;
        }
        if (n_match > 1 && !file[0] && !(pass == 0 && !q[0])) {
            cli_fail(cmd, "%s: %d files match; name one with hf:%s/%s/FILE.gguf", ref, n_match, owner, repo);
            goto out;
        }
        if (pass == 0) n_all = n_match;
        if (n_match > 1) pick = NULL; /* no quant and several files: try Q4_K_M */
    }
    if (pick && !hub_path_ok(pick)) {
        char shown[201]; /* one line: control characters shown as '?' */
        snprintf(shown, sizeof shown, "%s", pick);
        for (char *q = shown; *q; q++)
            if (is_ctl(*q)) *q = '?';
        cli_fail(cmd, "%s: the Hub lists an unsafe file name (%s): refused", ref, shown);
        goto out;
    }
    if (!pick) {
        if (file[0]) cli_fail(cmd, "%s: no file %s in %s/%s", ref, file, owner, repo);
        else if (quant[0]) cli_fail(cmd, "%s: no GGUF file with %s in its name in %s/%s", ref, quant, owner, repo);
        else if (n_all) cli_fail(cmd, "%s: %d GGUF files and none is Q4_K_M; add :QUANT", ref, n_all);
        else cli_fail(cmd, "%s: no GGUF file in %s/%s", ref, owner, repo);
        goto out;
    }
    int no = 0, cnt = 1;
    size_t pl = 0;
    bool split = split_part(pick, &no, &cnt, &pl);
    if (cnt > MAX_PARTS) {
        cli_fail(cmd, "%s: %d parts (at most %d)", ref, cnt, MAX_PARTS);
        goto out;
    }
    char *prefix = xasprintf("%.*s", (int)pl, pick);
    for (int k = 1; k <= cnt; k++) {
        char *want = split ? xasprintf("%s-%05d-of-%05d.gguf", prefix, k, cnt) : xasprintf("%s", pick);
        json_t *found = NULL;
        json_array_foreach(tree, i, e) {
            const char *p = json_string_value(json_object_get(e, "path"));
            if (p && !strcmp(p, want)) found = e;
        }
        if (!found) {
            cli_fail(cmd, "%s: part %s of the split set is missing on the Hub", ref, want);
            free(want);
            free(prefix);
            free_files(files, n);
            n = 0;
            goto out;
        }
        hub_file *f = &files[n++];
        char *up = url_path(want);
        f->url = xasprintf("%s/%s/%s/resolve/main/%s", endpoint(), owner, repo, up);
        free(up);
        f->dest = xasprintf("%s/models/hf/%s/%s/%s", home, owner, repo, want);
        json_t *lfs = json_object_get(found, "lfs");
        const char *oid = json_string_value(json_object_get(lfs, "oid"));
        json_t *size = lfs ? json_object_get(lfs, "size") : json_object_get(found, "size");
        f->size = json_is_integer(size) ? (long long)json_integer_value(size) : -1;
        f->sha256[0] = 0;
        if (oid && strlen(oid) == 64) snprintf(f->sha256, sizeof f->sha256, "%s", oid);
        free(want);
    }
    free(prefix);
out:
    json_decref(tree);
    free(b.p);
    free(api);
    return n;
}

static int resolve(const char *cmd, const char *ref, const char *home, hub_file *files)
{
    if (!strncmp(ref, "hf:", 3)) return resolve_hf(cmd, ref, home, files);
    const char *hp = strstr(ref, "://") + 3;
    const char *q = strpbrk(hp, "?#");
    size_t len = q ? (size_t)(q - hp) : strlen(hp);
    if (len == 0 || hp[len - 1] == '/' || memmem(hp, len, "..", 2)) {
        cli_fail(cmd, "%s: the URL must name a file", ref);
        return 0;
    }
    files[0].url = xasprintf("%s", ref);
    files[0].dest = xasprintf("%s/models/url/%.*s", home, (int)len, hp);
    files[0].sha256[0] = 0;
    files[0].size = -1;
    return 1;
}

/* refs/<sha256(ref)>: one line, the cached path of the first file */
static char *ref_index_path(const char *home, const char *ref)
{
    unsigned char h[32];
    char hex[65];
    crypto_hash_sha256(h, (const unsigned char *)ref, strlen(ref));
    sodium_bin2hex(hex, sizeof hex, h, 32);
    return xasprintf("%s/refs/%s", home, hex);
}

static char *cached(const char *home, const char *ref)
{
    char *ip = ref_index_path(home, ref);
    FILE *f = fopen(ip, "r");
    free(ip);
    if (!f) return NULL;
    char line[4096];
    char *path = NULL;
    if (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (access(line, R_OK) == 0) path = xasprintf("%s", line);
    }
    fclose(f);
    return path;
}

/* Pull ref; returns the first file's path (malloc'd) or NULL. */
static char *pull(const char *cmd, const char *ref, const char *home)
{
    static hub_file files[MAX_PARTS];
    int n = resolve(cmd, ref, home, files);
    if (!n) return NULL;
    char *path = NULL;
    for (int i = 0; i < n; i++) {
        if (access(files[i].dest, R_OK) == 0) {
            fprintf(stderr, "psi %s: %s is already in the cache\n", cmd, files[i].dest);
            continue;
        }
        if (download(cmd, &files[i]) != 0) goto out;
    }
    char *ip = ref_index_path(home, ref);
    FILE *f = make_parents(cmd, ip) ? fopen(ip, "w") : NULL;
    if (f) {
        fprintf(f, "%s\n%s\n", files[0].dest, ref);
        fclose(f);
    }
    free(ip);
    path = xasprintf("%s", files[0].dest);
out:
    free_files(files, n);
    return path;
}

char *hub_model_path(const char *cmd, const char *ref)
{
    if (!hub_is_ref(ref)) return xasprintf("%s", ref);
    if (sodium_init() < 0) {
        cli_fail(cmd, "libsodium failed to initialise");
        return NULL;
    }
    char *home = psi_home();
    char *path = cached(home, ref);
    if (!path) {
        fprintf(stderr, "psi %s: %s is not in the cache (%s); pulling it\n", cmd, ref, home);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        path = pull(cmd, ref, home);
        curl_global_cleanup();
    }
    free(home);
    return path;
}

int cmd_pull(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: psi pull hf:OWNER/REPO[:QUANT] | hf:OWNER/REPO/FILE.gguf | https://…/FILE.gguf\n"
               "  downloads into the cache ($PSI_HOME, default $XDG_CACHE_HOME/psi); HF_TOKEN is sent\n"
               "  for gated repositories; PSI_HF_ENDPOINT replaces https://huggingface.co\n");
        return 0;
    }
    if (argc != 2) return cli_fail("pull", "usage: psi pull REF (see psi pull --help)");
    if (!hub_is_ref(argv[1])) return cli_fail("pull", "%s: not hf:OWNER/REPO[:QUANT] nor an http(s) URL", argv[1]);
    if (sodium_init() < 0) return cli_fail("pull", "libsodium failed to initialise");
    char *home = psi_home();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char *path = pull("pull", argv[1], home);
    curl_global_cleanup();
    free(home);
    if (!path) return 1;
    printf("%s\n", path);
    free(path);
    return 0;
}

/* ---- list and rm */
static const char *g_root; /* nftw has no user pointer; set only for the walk */
static int g_count;

static const char *ftype_name(int64_t ft)
{
    switch (ft) {
    case 0: return "F32";   case 1: return "F16";   case 2: return "Q4_0";   case 3: return "Q4_1";
    case 7: return "Q8_0";  case 8: return "Q5_0";  case 9: return "Q5_1";   case 10: return "Q2_K";
    case 11: return "Q3_K_S"; case 12: return "Q3_K_M"; case 13: return "Q3_K_L"; case 14: return "Q4_K_S";
    case 15: return "Q4_K_M"; case 16: return "Q5_K_S"; case 17: return "Q5_K_M"; case 18: return "Q6_K";
    case 32: return "BF16";
    default: return "?";
    }
}

static int list_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag != FTW_F || !ends_gguf(path)) return 0;
    int no, cnt;
    size_t pl;
    bool split = split_part(path, &no, &cnt, &pl);
    if (split && no != 1) return 0; /* the set is listed once, by its first part */
    double size = (double)st->st_size;
    if (split)
        for (int k = 2; k <= cnt; k++) {
            char *p = xasprintf("%.*s-%05d-of-%05d.gguf", (int)pl, path, k, cnt);
            struct stat s2;
            if (stat(p, &s2) == 0) size += (double)s2.st_size;
            free(p);
        }
    char sz[32];
    human(sz, sizeof sz, size);
    psi_model_params mp = psi_model_default_params();
    mp.vocab_only = true;
    psi_model *m = NULL;
    char err[256];
    const char *type = "?", *lic = "?";
    if (psi_model_load(path, &mp, &m, err, sizeof err) == PSI_OK) {
        int64_t ft;
        if (psi_model_meta_int(m, "general.file_type", &ft)) type = ftype_name(ft);
        if (psi_model_meta_str(m, "general.license")) lic = psi_model_meta_str(m, "general.license");
    }
    printf("%-60s %10s  %-7s %s%s\n", path + strlen(g_root) + 1, sz, type, lic,
           split ? " (split set)" : "");
    psi_model_free(m);
    g_count++;
    return 0;
}

int cmd_list(int argc, char **argv)
{
    if (argc > 1) {
        if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
            printf("usage: psi list\n  the models in the cache ($PSI_HOME/models): name, size, type, licence\n");
            return 0;
        }
        return cli_fail("list", "unexpected argument '%s'", argv[1]);
    }
    char *home = psi_home();
    char *root = xasprintf("%s/models", home);
    g_root = root;
    g_count = 0;
    printf("%-60s %10s  %-7s %s\n", "NAME", "SIZE", "TYPE", "LICENCE");
    if (access(root, F_OK) == 0) nftw(root, list_one, 16, FTW_PHYS);
    if (!g_count) fprintf(stderr, "psi list: no models in %s\n", root);
    free(root);
    free(home);
    return 0;
}

int cmd_rm(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: psi rm NAME\n  removes a cached model: NAME as psi list prints it, or the hf:/URL "
               "reference it was pulled with (all parts of a split set)\n");
        return 0;
    }
    if (argc != 2) return cli_fail("rm", "usage: psi rm NAME");
    if (sodium_init() < 0) return cli_fail("rm", "libsodium failed to initialise");
    char *home = psi_home();
    char *path = NULL, *ip = NULL;
    if (hub_is_ref(argv[1])) {
        ip = ref_index_path(home, argv[1]);
        path = cached(home, argv[1]);
    } else if (!strstr(argv[1], "..") && argv[1][0] != '/') {
        path = xasprintf("%s/models/%s", home, argv[1]);
    }
    int rc = 0;
    struct stat st;
    if (!path || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = cli_fail("rm", "%s is not in the cache (see psi list)", argv[1]);
    } else {
        int no, cnt = 1;
        size_t pl;
        bool split = split_part(path, &no, &cnt, &pl);
        for (int k = 1; k <= cnt; k++) {
            char *p = split ? xasprintf("%.*s-%05d-of-%05d.gguf", (int)pl, path, k, cnt) : xasprintf("%s", path);
            if (unlink(p) == 0) fprintf(stderr, "psi rm: removed %s\n", p);
            else if (errno != ENOENT) rc = cli_fail("rm", "cannot remove %s: %s", p, strerror(errno));
            free(p);
        }
        if (ip) unlink(ip);
    }
    free(ip);
    free(path);
    free(home);
    return rc;
}
