/*
 * test_trust.c — licences and provenance (issue 6, docs/trust.md): a Llama
 * licence is refused until accepted and runs after, an apache-2.0 model runs
 * without a word, the acceptance store survives a write stopped half-way
 * and a corrupt one is reported; sign/verify round trip and every sampled
 * single-byte change of a signed file is refused. The models are
 * stories260K rewritten with other general.license values.
 */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gguf.h"
#include "policy/policy.h"
#include "testutil.h"

static char dir[4096];

/* stories260K with general.license (and .name) set to lic, or none when NULL. */
static void make_model(const char *out, const char *lic, const char *lic_name)
{
    gguf *g = NULL;
    char err[256];
    CHECKF(gguf_open(tu_data("models/stories260K.gguf"), &g, err, sizeof err) == PSI_OK, "%s", err);
    if (!g) exit(2);
    gguf_writer *w = gguf_writer_new();
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (strncmp(g->kv[i].key.ptr, "general.license", 15)) gguf_writer_copy_kv(w, g, i);
    if (lic) gguf_writer_set_str(w, "general.license", lic);
    if (lic_name) gguf_writer_set_str(w, "general.license.name", lic_name);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data);
    }
    CHECKF(gguf_writer_write(w, out, err, sizeof err) == PSI_OK, "%s", err);
    gguf_writer_free(w);
    gguf_close(g);
}

static const char *path(const char *name)
{
    static char buf[32][4096]; /* every path the test names stays valid */
    static int k;
    if (k == 32) exit(2);
    k++;
    snprintf(buf[k - 1], sizeof buf[k - 1], "%s/%s", dir, name);
    return buf[k - 1];
}

/* psi with the arguments up to a NULL (at most 15); stderr into *err (may be NULL). */
static int psi(char **err, ...)
{
    const char *argv[17] = {tu_psi()};
    va_list ap;
    va_start(ap, err);
    for (int i = 1; i < 16 && (argv[i] = va_arg(ap, const char *)); i++) continue;
    va_end(ap);
    char *e = NULL;
    int rc = tu_run(argv, NULL, &e);
    if (err) *err = e;
    else free(e);
    return rc;
}

#define RUN(model, ...) psi(&err, "run", "-m", model, "-n", "2", "-p", "Once", __VA_ARGS__)

static void test_licences(void)
{
    char *err = NULL, store[4096], msg[512];
    const char *llama = path("llama.gguf"), *apache = path("apache.gguf"), *none = path("none.gguf");
    make_model(llama, "llama3.2", "Llama 3.2 Community License Agreement");
    make_model(apache, "apache-2.0", NULL);
    make_model(none, NULL, NULL);
    CHECK(psi_license_store_path(store, sizeof store) == PSI_OK);
    CHECK(!strcmp(store, path("xdg/psi/licenses.json")));

    psi_license_info li;
    CHECK(psi_license_read(llama, &li, msg, sizeof msg) == PSI_OK);
    CHECK(li.need == PSI_LICENSE_ACCEPT && !strcmp(li.id, "llama3.2") && li.terms != NULL);
    CHECK(psi_license_read(apache, &li, msg, sizeof msg) == PSI_OK);
    CHECK(li.need == PSI_LICENSE_OPEN && li.terms == NULL);
    CHECK(psi_license_read(none, &li, msg, sizeof msg) == PSI_OK);
    CHECK(li.need == PSI_LICENSE_UNKNOWN && li.id[0] == 0);

    /* refused before acceptance, with what to do; runs after */
    CHECK(RUN(llama, NULL) == 1);
    CHECKF(err && strstr(err, "psi license accept") && strstr(err, "--accept-license") && !strchr(strchr(err, '\n') + 1, '\n'),
           "%s", err);
    free(err);
    CHECK(psi(&err, "chat", "-m", llama, NULL) == 1 && strstr(err, "licence 'llama3.2'"));
    free(err);
    CHECK(psi(&err, "license", "show", llama, NULL) == 0);
    free(err);
    CHECK(psi(&err, "license", "accept", llama, NULL) == 0);
    free(err);
    struct stat st;
    CHECK(stat(store, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECKF(RUN(llama, NULL) == 0, "%s", err);
    free(err);
    /* apache-2.0 and no licence (default policy open) run without a word */
    CHECK(RUN(apache, NULL) == 0 && !strstr(err, "licen"));
    free(err);
    CHECK(RUN(none, NULL) == 0 && !strstr(err, "licen"));
    free(err);
    CHECK(RUN(none, "--license-policy", "require", NULL) == 1 && strstr(err, "licence '(none)'"));
    free(err);
    CHECK(RUN(none, "--license-policy", "warn", NULL) == 0 && strstr(err, "no licence"));
    free(err);

    /* another Llama model: --accept-license runs it and records that */
    const char *llama4 = path("llama4.gguf");
    make_model(llama4, "llama4", NULL);
    CHECK(RUN(llama4, "--accept-license", NULL) == 0);
    free(err);
    CHECK(RUN(llama4, NULL) == 0);
    free(err);
    /* a service without a writable store (read-only file system, no HOME):
     * --accept-license holds for the run, said on stderr; without it, one
     * line that names the way out */
    const char *old_xdg = getenv("XDG_CONFIG_HOME");
    char *saved = old_xdg ? strdup(old_xdg) : NULL;
    setenv("XDG_CONFIG_HOME", "/proc/version/not-a-dir", 1);
    CHECKF(RUN(llama4, "--accept-license", NULL) == 0 && strstr(err, "accepted for this run only"), "%s",
           err);
    free(err);
    CHECK(RUN(llama4, NULL) == 1 && strstr(err, "which you have not accepted"));
    free(err);
    const char *old_home = getenv("HOME");
    char *saved_home = old_home ? strdup(old_home) : NULL;
    unsetenv("XDG_CONFIG_HOME");
    unsetenv("HOME");
    CHECKF(RUN(llama4, "--accept-license", NULL) == 0 && strstr(err, "no XDG_CONFIG_HOME or HOME"), "%s",
           err);
    free(err);
    CHECK(RUN(llama4, NULL) == 1 && strstr(err, "or add --accept-license") &&
          !strchr(strchr(err, '\n') + 1, '\n'));
    free(err);
    if (saved_home) setenv("HOME", saved_home, 1);
    if (saved) setenv("XDG_CONFIG_HOME", saved, 1);
    free(saved_home);
    free(saved);

    /* a licence id and a file name that are not UTF-8 (GGUF strings and
     * paths may be any bytes): shown with U+FFFD, and the acceptance is
     * recorded and honoured (the store is JSON: before, the record was
     * silently dropped, and the run refused what had been accepted) */
    const char *odd = path("odd\xe9.gguf");
    make_model(odd, "llama3\xff.1 with a long tail cut inside a character:  \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
               NULL); /* 54 bytes as read, then 2-byte characters: 62 fit the 64-byte field, not 63 */
    CHECK(psi_license_read(odd, &li, msg, sizeof msg) == PSI_OK);
    CHECKF(li.need == PSI_LICENSE_ACCEPT && !strncmp(li.id, "llama3\xef\xbf\xbd.1 with", 14) && strlen(li.id) == 62,
           "'%s' (%zu bytes)", li.id, strlen(li.id));
    CHECK(RUN(odd, NULL) == 1 && strstr(err, "not accepted"));
    free(err);
    CHECKF(psi(&err, "license", "accept", odd, NULL) == 0, "%s", err);
    free(err);
    CHECKF(RUN(odd, NULL) == 0, "%s", err);
    free(err);

    /* acceptance is for the contents: a changed file is a new model */
    size_t n;
    char *bytes = tu_read_file(llama4, &n);
    bytes[n - 1] ^= 1;
    FILE *f = fopen(llama4, "wb");
    fwrite(bytes, 1, n, f);
    fclose(f);
    free(bytes);
    CHECK(RUN(llama4, NULL) == 1 && strstr(err, "not accepted"));
    free(err);

    /* a write stopped half-way leaves the old store whole */
    size_t old_len;
    char *old = tu_read_file(store, &old_len);
    const char *junk = "{\"version\": 1, \"accepted\": [ {\"sha256\": \"00\", \"license\": \"llama3.2\"}, ";
    char err2[256];
    CHECK(policy_write_atomic(store, junk, strlen(junk), 0600, strlen(junk) / 2, err2, sizeof err2) == PSI_ERR_IO);
    size_t now_len;
    char *now = tu_read_file(store, &now_len);
    CHECK(now && old && now_len == old_len && !memcmp(now, old, old_len));
    free(now);
    free(old);
    CHECK(psi_license_read(llama, &li, msg, sizeof msg) == PSI_OK);
    bool yes = false;
    CHECKF(psi_license_is_accepted(store, llama, &li, &yes, msg, sizeof msg) == PSI_OK && yes, "%s", msg);
    CHECK(RUN(llama, NULL) == 0);
    free(err);
    /* and accepting again works beside the leftover temporary file */
    CHECK(psi_license_accept(store, apache, &li, msg, sizeof msg) == PSI_OK);

    /* acceptances made at the same moment by several processes are all kept */
    enum { N_PAR = 6 };
    char par[N_PAR][4096];
    for (int i = 0; i < N_PAR; i++) {
        char nm[32];
        snprintf(par[i], sizeof par[i], "%s/par%d.gguf", dir, i);
        snprintf(nm, sizeof nm, "licence copy %d", i); /* other bytes, other SHA-256 */
        make_model(par[i], "llama3", nm);
    }
    pid_t kids[N_PAR];
    for (int i = 0; i < N_PAR; i++)
        if ((kids[i] = fork()) == 0) {
            psi_license_info pl;
            char m2[256];
            _exit(psi_license_read(par[i], &pl, m2, sizeof m2) != PSI_OK ||
                  psi_license_accept(store, par[i], &pl, m2, sizeof m2) != PSI_OK);
        }
    for (int i = 0; i < N_PAR; i++) {
        int st_kid = -1;
        waitpid(kids[i], &st_kid, 0);
        CHECK(WIFEXITED(st_kid) && WEXITSTATUS(st_kid) == 0);
    }
    for (int i = 0; i < N_PAR; i++) {
        psi_license_info pl;
        CHECK(psi_license_read(par[i], &pl, msg, sizeof msg) == PSI_OK);
        yes = false;
        CHECKF(psi_license_is_accepted(store, par[i], &pl, &yes, msg, sizeof msg) == PSI_OK && yes,
               "concurrent acceptance %d lost", i);
    }

    /* a corrupt store is reported, not read as empty */
    static const char *const corrupt[] = {"{\"version\": 1, \"accepted\": [", "{\"accepted\": 5}", "", "[]"};
    for (size_t i = 0; i < sizeof corrupt / sizeof corrupt[0]; i++) {
        f = fopen(store, "w");
        fputs(corrupt[i], f);
        fclose(f);
        CHECK(psi_license_is_accepted(store, llama, &li, &yes, msg, sizeof msg) == PSI_ERR_FORMAT && !yes);
        CHECKF(strstr(msg, "fix or remove it"), "%s", msg);
        CHECK(psi_license_accept(store, llama, &li, msg, sizeof msg) == PSI_ERR_FORMAT);
        CHECK(RUN(llama, NULL) == 1 && strstr(err, "licenses.json"));
        free(err);
    }
    unlink(store);
}

static void flip(const char *file, uint64_t at)
{
    FILE *f = fopen(file, "r+b");
    fseek(f, (long)at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, (long)at, SEEK_SET);
    fputc(c ^ 0x20, f);
    fclose(f);
}

static void test_signatures(void)
{
    char *err = NULL, *out = NULL, msg[512];
    const char *model = path("signed.gguf"), *key = path("alice.key"), *pub = path("alice.pub");
    make_model(model, "apache-2.0", NULL);

    /* psi hash = SHA-256 of the bytes */
    size_t n;
    unsigned char *bytes = (unsigned char *)tu_read_file(model, &n), d[32];
    crypto_hash_sha256(d, bytes, n);
    free(bytes);
    char hex[65];
    policy_hex(d, 32, hex);
    const char *hargv[] = {tu_psi(), "hash", model, NULL};
    CHECK(tu_run(hargv, &out, NULL) == 0 && !strncmp(out, hex, 64));
    free(out);

    CHECK(psi(&err, "keygen", path("alice"), NULL) == 0);
    free(err);
    struct stat st;
    CHECK(stat(key, &st) == 0 && (st.st_mode & 0777) == 0600 && stat(pub, &st) == 0);
    CHECK(psi(&err, "keygen", path("alice"), NULL) == 1 && strstr(err, "exists"));
    free(err);
    CHECK(psi_keygen(path("bob"), msg, sizeof msg) == PSI_OK);
    CHECK(psi(&err, "keygen", "", NULL) == 1 && strstr(err, "key name is empty")); /* was "psi keygen: " */
    free(err);

    CHECK(psi(&err, "verify", "--pubkey", pub, model, NULL) == 1 && strstr(err, "not signed"));
    free(err);
    CHECK(RUN(model, "--require-signed", pub, NULL) == 1 && strstr(err, "not signed"));
    free(err);
    CHECK(psi(&err, "sign", "--key", key, model, NULL) == 0);
    free(err);
    CHECK(psi(&err, "verify", "--pubkey", pub, model, NULL) == 0);
    free(err);
    CHECKF(RUN(model, "--require-signed", pub, NULL) == 0 && strstr(err, "verified now"), "%s", err);
    free(err);
    /* the second time the cache answers: same file, same .sig, same key */
    CHECKF(RUN(model, "--require-signed", pub, NULL) == 0 && strstr(err, "verified before"), "%s", err);
    free(err);
    /* a changed byte with the old mtime put back is still caught: ctime moved */
    struct stat before;
    CHECK(stat(model, &before) == 0);
    flip(model, before.st_size - 7);
    struct timespec times[2] = {before.st_atim, before.st_mtim};
    CHECK(utimensat(AT_FDCWD, model, times, 0) == 0);
    CHECK(RUN(model, "--require-signed", pub, NULL) == 1 && strstr(err, "changed since it was signed"));
    free(err);
    flip(model, before.st_size - 7);
    CHECK(RUN(model, "--require-signed", pub, NULL) == 0 && strstr(err, "verified now"));
    free(err);
    /* another key is not answered from the cache */
    CHECK(RUN(model, "--require-signed", path("bob.pub"), NULL) == 1 && strstr(err, "another key"));
    free(err);
    CHECK(psi_verify_file(path("bob.pub"), model, NULL, NULL, msg, sizeof msg) == PSI_ERR_DENIED &&
          strstr(msg, "another key"));
    CHECK(psi_verify_file(key, model, NULL, NULL, msg, sizeof msg) == PSI_ERR_FORMAT); /* a secret key is no public key */

    /* every sampled single-byte change is refused: header, metadata, tensor data */
    gguf *g = NULL;
    CHECK(gguf_open(model, &g, msg, sizeof msg) == PSI_OK);
    uint64_t size = g->size, kv_end = g->tensors[0].name.ptr - (const char *)g->base, data = g->data_offset;
    gguf_close(g);
    uint64_t at[48];
    int n_at = 0;
    for (uint64_t i = 0; i < 24; i += 3) at[n_at++] = i;                        /* magic, version, counts */
    for (uint64_t i = 0; i < 12; i++) at[n_at++] = 24 + (kv_end - 24) * i / 12; /* metadata */
    for (uint64_t i = 0; i < 8; i++) at[n_at++] = kv_end + (data - kv_end) * i / 8; /* tensor infos */
    for (uint64_t i = 0; i < 19; i++) at[n_at++] = data + (size - data) * i / 19;     /* tensor data */
    at[n_at++] = size - 1;
    int refused = 0;
    for (int i = 0; i < n_at; i++) {
        flip(model, at[i]);
        psi_status rc = psi_verify_file(pub, model, NULL, NULL, msg, sizeof msg);
        refused += rc == PSI_ERR_DENIED;
        CHECKF(rc == PSI_ERR_DENIED, "byte %llu changed but the signature still verified",
               (unsigned long long)at[i]);
        flip(model, at[i]);
    }
    CHECK(refused == n_at);
    CHECK(psi_verify_file(pub, model, NULL, NULL, msg, sizeof msg) == PSI_OK);
    /* through run too: one flipped byte in a tensor */
    flip(model, size - 100);
    CHECK(RUN(model, "--require-signed", pub, NULL) == 1 && strstr(err, "changed since it was signed"));
    free(err);
    flip(model, size - 100);
    /* a byte appended, a signature file edited or cut */
    char sig[4096];
    snprintf(sig, sizeof sig, "%s.sig", model);
    size_t sn;
    char *s = tu_read_file(sig, &sn);
    FILE *f = fopen(sig, "w");
    fwrite(s, 1, sn / 2, f);
    fclose(f);
    CHECK(psi_verify_file(pub, model, NULL, NULL, msg, sizeof msg) == PSI_ERR_DENIED);
    char *last = strstr(s, "\nsig ") + 5;
    *last = *last == '0' ? '1' : '0'; /* first hex digit of the signature */
    f = fopen(sig, "w");
    fwrite(s, 1, sn, f);
    fclose(f);
    CHECK(psi_verify_file(pub, model, NULL, NULL, msg, sizeof msg) == PSI_ERR_DENIED && strstr(msg, "not valid"));
    free(s);
    f = fopen(model, "ab");
    fputc(0, f);
    fclose(f);
    CHECK(psi(&err, "sign", "--key", key, model, NULL) == 0);
    free(err);
    CHECK(psi_verify_file(pub, model, NULL, NULL, msg, sizeof msg) == PSI_OK);
    f = fopen(model, "ab");
    fputc(0, f);
    fclose(f);
    CHECK(psi_verify_file(pub, model, NULL, NULL, msg, sizeof msg) == PSI_ERR_DENIED);
    CHECK(psi(&err, "verify", "--pubkey", pub, model, NULL) == 1);
    free(err);
}

/* bad command lines: exit 1 and exactly one line on stderr */
static void test_cli_errors(void)
{
    static const char *const cases[][6] = {
        {"hash", "/nonexistent/model.gguf", NULL},
        {"hash", NULL},
        {"keygen", NULL},
        {"sign", "x.gguf", NULL},
        {"verify", "--pubkey", NULL},
        {"verify", "--pubkey", "/nonexistent.pub", "x.gguf", NULL},
        {"license", "shows", "x.gguf", NULL},
        {"license", "show", "/nonexistent/model.gguf", NULL},
        {"run", "-m", "x.gguf", "--license-policy", "maybe", NULL},
        {"run", "-m", "x.gguf", "--require-signed", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *err = NULL;
        int rc = psi(&err, cases[i][0], cases[i][1], cases[i][2], cases[i][3], cases[i][4], NULL);
        const char *nl = err ? strchr(err, '\n') : NULL;
        CHECKF(rc == 1 && nl && !nl[1] && !strncmp(err, "psi ", 4), "psi %s ...: rc %d, stderr '%s'", cases[i][0], rc,
               err ? err : "");
        free(err);
    }
}

int main(void)
{
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("trust"));
    const char *names[] = {"alice.key", "alice.pub", "bob.key", "bob.pub", "signed.gguf.sig"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) unlink(path(names[i]));
    unlink(path("xdg/psi/licenses.json"));
    setenv("XDG_CONFIG_HOME", path("xdg"), 1);
    setenv("XDG_CACHE_HOME", path("cache"), 1);
    unlink(path("cache/psi/verified.json"));
    if (sodium_init() < 0) return 2;
    test_licences();
    test_signatures();
    test_cli_errors();
    return tu_finish("test_trust");
}
