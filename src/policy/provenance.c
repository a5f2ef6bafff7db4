/*
 * provenance.c — who made this file, and is it still what they made:
 * streamed SHA-256, ed25519 key pairs, and detached signatures over a
 * file's digest and size (libsodium). Also the atomic small-file writer
 * the trust modules share. Formats are in docs/trust.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy.h"
#include "util.h"

#define SIG_MAGIC "psi-signature-v1"
#define KEY_MAGIC "psi-ed25519-secret"
#define PUB_MAGIC "psi-ed25519-public"

void policy_file_id(const struct stat *st, char *out, size_t n)
{
    snprintf(out, n, "%llu:%llu:%llu:%lld.%09ld:%lld.%09ld", (unsigned long long)st->st_dev,
             (unsigned long long)st->st_ino, (unsigned long long)st->st_size, (long long)st->st_mtim.tv_sec,
             (long)st->st_mtim.tv_nsec, (long long)st->st_ctim.tv_sec, (long)st->st_ctim.tv_nsec);
}

void policy_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool policy_unhex(const char *s, uint8_t *p, size_t n)
{
    while (*s == ' ' || *s == '\t') s++;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hi < 0 ? -1 : hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        p[i] = (uint8_t)(hi << 4 | lo);
    }
    s += 2 * n;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    return *s == 0;
}

psi_status policy_mkdirs(char *dir, char *err, size_t err_size)
{
    struct stat st;
    if (!stat(dir, &st)) return PSI_OK;
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        psi_status rc = policy_mkdirs(dir, err, err_size);
        *slash = '/';
        if (rc != PSI_OK) return rc;
    }
    if (mkdir(dir, 0700) && errno != EEXIST) {
        err_setf(err, err_size, "%s: cannot make the folder: %s", dir, strerror(errno));
        return PSI_ERR_IO;
    }
    return PSI_OK;
}

psi_status policy_write_atomic(const char *path, const char *data, size_t len, unsigned mode, size_t stop_after,
                               char *err, size_t err_size)
{
    size_t plen = strlen(path);
    char *tmp = mem_alloc(plen + 16), *dir = mem_strndup(path, plen);
    if (!tmp || !dir) {
        mem_free(tmp);
        mem_free(dir);
        return PSI_ERR_NO_MEMORY;
    }
    psi_status rc = PSI_ERR_IO;
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        if ((rc = policy_mkdirs(dir, err, err_size)) != PSI_OK) goto out;
        rc = PSI_ERR_IO;
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        err_setf(err, err_size, "%s: cannot create a temporary file: %s", tmp, strerror(errno));
        goto out;
    }
    fchmod(fd, (mode_t)mode);
    size_t todo = stop_after < len ? stop_after : len, done = 0;
    while (done < todo) {
        ssize_t w = write(fd, data + done, todo - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    if (stop_after < len) { /* test hook: as if the process died here */
        close(fd);
        err_setf(err, err_size, "%s: stopped after %zu of %zu bytes (test)", tmp, done, len);
        goto out;
    }
    if (done < len || fsync(fd)) {
        err_setf(err, err_size, "%s: cannot write: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (close(fd) || rename(tmp, path)) {
        err_setf(err, err_size, "%s: cannot replace: %s", path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = PSI_OK;
out:
    mem_free(tmp);
    mem_free(dir);
    return rc;
}

psi_status psi_file_sha256(const char *path, uint8_t digest[32], uint64_t *size, psi_hash_progress_fn progress,
                           void *user, char *err, size_t err_size)
{
    if (!path || !digest || !size) return PSI_ERR_INVALID_ARG;
    if (sodium_init() < 0) return PSI_ERR_UNSUPPORTED;
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        err_setf(err, err_size, "%s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return PSI_ERR_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        err_setf(err, err_size, "%s: not a regular file", path);
        return PSI_ERR_IO;
    }
    enum { BUF = 1 << 20 };
    unsigned char *buf = mem_alloc(BUF);
    if (!buf) {
        close(fd);
        return PSI_ERR_NO_MEMORY;
    }
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    uint64_t done = 0, total = (uint64_t)st.st_size, next = 64u << 20;
    psi_status rc = PSI_OK;
    for (;;) {
        ssize_t n = read(fd, buf, BUF);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            err_setf(err, err_size, "%s: read failed: %s", path, strerror(errno));
            rc = PSI_ERR_IO;
            break;
        }
        if (n == 0) break;
        crypto_hash_sha256_update(&h, buf, (unsigned long long)n);
        done += (uint64_t)n;
        if (progress && done >= next) {
            progress(user, done, total);
            next += 64u << 20;
        }
    }
    mem_free(buf);
    close(fd);
    if (rc != PSI_OK) return rc;
    crypto_hash_sha256_final(&h, digest);
    *size = done;
    if (progress) progress(user, done, total);
    return PSI_OK;
}

/* Read "MAGIC HEX" from a key file into n bytes. */
static psi_status read_key(const char *path, const char *magic, uint8_t *key, size_t n, char *err, size_t err_size)
{
    char line[512];
    FILE *f = fopen(path, "r");
    if (!f) {
        err_setf(err, err_size, "%s: %s", path, strerror(errno));
        return PSI_ERR_IO;
    }
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    size_t ml = strlen(magic);
    if (!ok || strncmp(line, magic, ml) || line[ml] != ' ' || !policy_unhex(line + ml + 1, key, n)) {
        sodium_memzero(line, sizeof line);
        err_setf(err, err_size, "%s: not a psi %s key file (psi keygen makes them)", path,
                 !strcmp(magic, KEY_MAGIC) ? "secret" : "public");
        return PSI_ERR_FORMAT;
    }
    sodium_memzero(line, sizeof line);
    return PSI_OK;
}

psi_status psi_keygen(const char *name, char *err, size_t err_size)
{
    if (!name || !*name) {
        err_setf(err, err_size, "the key name is empty (give NAME, which writes NAME.key and NAME.pub)");
        return PSI_ERR_INVALID_ARG;
    }
    if (sodium_init() < 0) return PSI_ERR_UNSUPPORTED;
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    char path[4096], line[sizeof KEY_MAGIC + 2 * crypto_sign_SECRETKEYBYTES + 4];
    snprintf(path, sizeof path, "%s.key", name);
    struct stat st;
    if (!stat(path, &st)) {
        err_setf(err, err_size, "%s exists; not overwriting a secret key", path);
        return PSI_ERR_INVALID_ARG;
    }
    crypto_sign_keypair(pk, sk);
    int n = snprintf(line, sizeof line, "%s ", KEY_MAGIC);
    policy_hex(sk, sizeof sk, line + n);
    strcat(line, "\n");
    psi_status rc = policy_write_atomic(path, line, strlen(line), 0600, SIZE_MAX, err, err_size);
    sodium_memzero(sk, sizeof sk);
    sodium_memzero(line, sizeof line);
    if (rc != PSI_OK) return rc;
    snprintf(path, sizeof path, "%s.pub", name);
    n = snprintf(line, sizeof line, "%s ", PUB_MAGIC);
    policy_hex(pk, sizeof pk, line + n);
    strcat(line, "\n");
    return policy_write_atomic(path, line, strlen(line), 0644, SIZE_MAX, err, err_size);
}

/* What is signed: the magic, the digest and the size (little-endian). */
static void sig_message(const uint8_t digest[32], uint64_t size, unsigned char msg[sizeof SIG_MAGIC + 40])
{
    memcpy(msg, SIG_MAGIC, sizeof SIG_MAGIC); /* with its NUL */
    memcpy(msg + sizeof SIG_MAGIC, digest, 32);
    for (int i = 0; i < 8; i++) msg[sizeof SIG_MAGIC + 32 + i] = (unsigned char)(size >> (8 * i));
}

psi_status psi_sign_file(const char *key_path, const char *path, psi_hash_progress_fn progress, void *user,
                         char *err, size_t err_size)
{
    if (!key_path || !path) return PSI_ERR_INVALID_ARG;
    if (sodium_init() < 0) return PSI_ERR_UNSUPPORTED;
    uint8_t sk[crypto_sign_SECRETKEYBYTES], digest[32], sig[crypto_sign_BYTES];
    psi_status rc = read_key(key_path, KEY_MAGIC, sk, sizeof sk, err, err_size);
    if (rc != PSI_OK) return rc;
    uint64_t size;
    if ((rc = psi_file_sha256(path, digest, &size, progress, user, err, err_size)) != PSI_OK) {
        sodium_memzero(sk, sizeof sk);
        return rc;
    }
    unsigned char msg[sizeof SIG_MAGIC + 40];
    sig_message(digest, size, msg);
    crypto_sign_detached(sig, NULL, msg, sizeof msg, sk);
    char dh[65], ph[65], sh[2 * crypto_sign_BYTES + 1], text[512], sig_path[4096];
    policy_hex(digest, 32, dh);
    policy_hex(sk + 32, 32, ph); /* libsodium's secret key ends with the public key */
    policy_hex(sig, sizeof sig, sh);
    sodium_memzero(sk, sizeof sk);
    int n = snprintf(text, sizeof text, "%s\nalg ed25519\nsha256 %s\nsize %llu\npubkey %s\nsig %s\n", SIG_MAGIC, dh,
                     (unsigned long long)size, ph, sh);
    snprintf(sig_path, sizeof sig_path, "%s.sig", path);
    return policy_write_atomic(sig_path, text, (size_t)n, 0644, SIZE_MAX, err, err_size);
}

/* The value of "name VALUE" lines of a signature file. */
static const char *sig_field(const char *text, const char *name, char *out, size_t size)
{
    size_t nl = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, nl) || p[nl] != ' ') continue;
        const char *v = p + nl + 1, *e = strchr(v, '\n');
        size_t n = e ? (size_t)(e - v) : strlen(v);
        if (n >= size) return NULL;
        memcpy(out, v, n);
        out[n] = 0;
        return out;
    }
    return NULL;
}

psi_status psi_verify_file(const char *pub_path, const char *path, psi_hash_progress_fn progress, void *user,
                           char *err, size_t err_size)
{
    if (!pub_path || !path) return PSI_ERR_INVALID_ARG;
    if (sodium_init() < 0) return PSI_ERR_UNSUPPORTED;
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], spk[32], sig[crypto_sign_BYTES], digest[32], sdigest[32];
    psi_status rc = read_key(pub_path, PUB_MAGIC, pk, sizeof pk, err, err_size);
    if (rc != PSI_OK) return rc;
    char sig_path[4096], text[1024], v[256];
    snprintf(sig_path, sizeof sig_path, "%s.sig", path);
    FILE *f = fopen(sig_path, "r");
    if (!f) {
        err_setf(err, err_size, "%s is not signed: %s: %s", path, sig_path, strerror(errno));
        return PSI_ERR_DENIED;
    }
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    char *end;
    unsigned long long ssize = 0;
    if (strncmp(text, SIG_MAGIC "\n", sizeof SIG_MAGIC) || !sig_field(text, "alg", v, sizeof v) ||
        strcmp(v, "ed25519") || !sig_field(text, "sha256", v, sizeof v) || !policy_unhex(v, sdigest, 32) ||
        !sig_field(text, "size", v, sizeof v) || (errno = 0, ssize = strtoull(v, &end, 10), errno || *end || !*v) ||
        !sig_field(text, "pubkey", v, sizeof v) || !policy_unhex(v, spk, 32) || !sig_field(text, "sig", v, sizeof v) ||
        !policy_unhex(v, sig, sizeof sig)) {
        err_setf(err, err_size, "%s: not a psi signature file", sig_path);
        return PSI_ERR_DENIED;
    }
    if (sodium_memcmp(spk, pk, 32)) {
        err_setf(err, err_size, "%s: signed by another key than %s", path, pub_path);
        return PSI_ERR_DENIED;
    }
    uint64_t size;
    if ((rc = psi_file_sha256(path, digest, &size, progress, user, err, err_size)) != PSI_OK) return rc;
    if (size != ssize || sodium_memcmp(digest, sdigest, 32)) {
        err_setf(err, err_size, "%s: the file changed since it was signed (SHA-256 or size differs)", path);
        return PSI_ERR_DENIED;
    }
    unsigned char msg[sizeof SIG_MAGIC + 40];
    sig_message(digest, size, msg); /* the digest of the file as it is now */
    if (crypto_sign_verify_detached(sig, msg, sizeof msg, pk)) {
        err_setf(err, err_size, "%s: the signature in %s is not valid for %s", path, sig_path, pub_path);
        return PSI_ERR_DENIED;
    }
    return PSI_OK;
}

psi_status policy_xdg_path(const char *xdg_var, const char *home_dir, const char *file, char *buf, size_t size)
{
    const char *xdg = getenv(xdg_var), *home = getenv("HOME");
    int n;
    if (xdg && *xdg) n = snprintf(buf, size, "%s/psi/%s", xdg, file);
    else if (home && *home) n = snprintf(buf, size, "%s/%s/psi/%s", home, home_dir, file);
    else return PSI_ERR_INVALID_ARG;
    return n < 0 || (size_t)n >= size ? PSI_ERR_BUFFER_SMALL : PSI_OK;
}

psi_status psi_verify_cache_path(char *buf, size_t size)
{
    return policy_xdg_path("XDG_CACHE_HOME", ".cache", "verified.json", buf, size);
}

/* "file id|sig id|public key" of a verification, or false when a file is missing. */
static bool verify_ident(const char *pub_path, const char *path, char *out, size_t n)
{
    struct stat st, ss;
    char sig_path[4096], fid[128], sid[128], pk_hex[2 * crypto_sign_PUBLICKEYBYTES + 1];
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    snprintf(sig_path, sizeof sig_path, "%s.sig", path);
    if (stat(path, &st) || stat(sig_path, &ss) || read_key(pub_path, PUB_MAGIC, pk, sizeof pk, NULL, 0) != PSI_OK)
        return false;
    policy_file_id(&st, fid, sizeof fid);
    policy_file_id(&ss, sid, sizeof sid);
    policy_hex(pk, sizeof pk, pk_hex);
    snprintf(out, n, "%s|%s|%s", fid, sid, pk_hex);
    return true;
}

psi_status psi_verify_file_cached(const char *pub_path, const char *path, const char *cache_path, bool *cached,
                                  char *err, size_t err_size)
{
    if (!cached) return PSI_ERR_INVALID_ARG;
    *cached = false;
    char ident[512];
    bool have = cache_path && verify_ident(pub_path, path, ident, sizeof ident);
    /* a cache that is missing or unreadable only costs a full check */
    json_t *root = have ? json_load_file(cache_path, 0, NULL) : NULL, *list = json_object_get(root, "verified");
    if (have && !json_is_array(list)) {
        json_decref(root);
        root = json_pack("{s:i,s:[]}", "version", 1, "verified");
        list = json_object_get(root, "verified");
    }
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) {
        const char *p = json_string_value(json_object_get(e, "path")), *id = json_string_value(json_object_get(e, "id"));
        if (p && id && !strcmp(p, path) && !strcmp(id, ident)) {
            json_decref(root);
            *cached = true;
            return PSI_OK;
        }
    }
    psi_status rc = psi_verify_file(pub_path, path, NULL, NULL, err, err_size);
    if (rc == PSI_OK && root) {
        json_array_foreach(list, i, e) { /* one entry per file */
            const char *p = json_string_value(json_object_get(e, "path"));
            if (p && !strcmp(p, path)) {
                json_array_remove(list, i);
                break;
            }
        }
        json_array_append_new(list, json_pack("{s:s,s:s}", "path", path, "id", ident));
        char *txt = json_dumps(root, JSON_INDENT(1));
        if (txt) policy_write_atomic(cache_path, txt, strlen(txt), 0600, SIZE_MAX, NULL, 0); /* best effort */
        free(txt);
    }
    json_decref(root);
    return rc;
}
