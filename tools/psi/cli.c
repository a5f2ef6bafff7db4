/* cli.c — argument helpers shared by the sub-commands (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

int cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "psi %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

const char *cli_value(const char *cmd, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        cli_fail(cmd, "option %s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

bool cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) {
        cli_fail(cmd, "%s: '%s' is not an integer", opt, s);
        return false;
    }
    if (v < lo || v > hi) {
        cli_fail(cmd, "%s: %ld is out of range [%ld, %ld]", opt, v, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

bool cli_float(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || isnan(v)) {
        cli_fail(cmd, "%s: '%s' is not a number", opt, s);
        return false;
    }
    if (v < lo || v > hi) {
        cli_fail(cmd, "%s: %g is out of range [%g, %g]", opt, v, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

bool cli_u64(const char *cmd, const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s == '-') {
        cli_fail(cmd, "%s: '%s' must not be negative", opt, s);
        return false;
    }
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end) {
        cli_fail(cmd, "%s: '%s' is not an unsigned integer", opt, s);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_ids(const char *cmd, const char *s, int32_t **ids, int32_t *n)
{
    size_t cap = 16, len = 0;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) return cli_fail(cmd, "out of memory"), false;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (errno || end == p || x < 0 || x > INT32_MAX ||
            (*end && *end != ' ' && *end != ',' && *end != '\t' && *end != '\n')) {
            free(v);
            cli_fail(cmd, "--tokens: '%.20s' is not a valid token id", p);
            return false;
        }
        if (len == cap) {
            int32_t *nv = realloc(v, (cap *= 2) * sizeof *v);
            if (!nv) return free(v), cli_fail(cmd, "out of memory"), false;
            v = nv;
        }
        v[len++] = (int32_t)x;
        p = end;
    }
    if (len == 0 || len > INT32_MAX) {
        free(v);
        cli_fail(cmd, "--tokens: no token ids given");
        return false;
    }
    *ids = v;
    *n = (int32_t)len;
    return true;
}

char *cli_read_file(const char *cmd, const char *path, size_t *len)
{
    const bool in = !strcmp(path, "-");
    FILE *f = in ? stdin : fopen(path, "rb");
    if (!f) {
        cli_fail(cmd, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
        if (cap - n - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    bool bad = ferror(f);
    if (!in) fclose(f);
    if (!buf || bad) {
        free(buf);
        cli_fail(cmd, "%s: cannot read the file", in ? "standard input" : path);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

bool cli_kv_type(const char *cmd, const char *s, psi_type *out)
{
    if (!strcmp(s, "f32")) *out = PSI_TYPE_F32;
    else if (!strcmp(s, "f16")) *out = PSI_TYPE_F16;
    else if (!strcmp(s, "q8_0")) *out = PSI_TYPE_Q8_0;
    else return cli_fail(cmd, "--kv-type: '%s' is not one of f32, f16, q8_0", s), false;
    return true;
}

bool cli_ftype(const char *cmd, const char *s, bool allow_f32, psi_ftype *out)
{
    static const struct { const char *name; psi_ftype ftype; } ftypes[] = {
        {"f32", PSI_FTYPE_F32},       {"f16", PSI_FTYPE_F16},       {"bf16", PSI_FTYPE_BF16},
        {"q8_0", PSI_FTYPE_Q8_0},     {"q4_0", PSI_FTYPE_Q4_0},     {"q4_1", PSI_FTYPE_Q4_1},
        {"q5_0", PSI_FTYPE_Q5_0},     {"q5_1", PSI_FTYPE_Q5_1},     {"q4_k_s", PSI_FTYPE_Q4_K_S},
        {"q4_k_m", PSI_FTYPE_Q4_K_M}, {"q5_k_s", PSI_FTYPE_Q5_K_S}, {"q5_k_m", PSI_FTYPE_Q5_K_M},
        {"q6_k", PSI_FTYPE_Q6_K},
    };
    for (size_t k = allow_f32 ? 0 : 1; k < sizeof ftypes / sizeof ftypes[0]; k++)
        if (!strcasecmp(s, ftypes[k].name)) {
            *out = ftypes[k].ftype;
            return true;
        }
    cli_fail(cmd, "type '%s' is not supported (supported: %sf16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k_s, "
                  "q4_k_m, q5_k_s, q5_k_m, q6_k)", s, allow_f32 ? "f32, " : "");
    return false;
}

void cli_show_progress(void *user, const char *tensor, psi_type type, uint64_t done, uint64_t total)
{
    cli_progress *p = user;
    const double f = total ? (double)done / (double)total : 1.0;
    const char *tn = psi_type_name(type);
    if (p->tty) {
        char bar[31];
        int fill = (int)(f * 30.0);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r[%s] %3d%% %-32.32s %-5s", bar, (int)(f * 100.0), tensor, tn ? tn : "?");
        if (done >= total) fputc('\n', stderr);
        fflush(stderr);
        return;
    }
    int q = (int)(f * 4.0);
    if (q > p->quarter) {
        p->quarter = q;
        fprintf(stderr, "psi %s: %3d%% (%s)\n", p->cmd, q * 25, tensor);
    }
}

json_t *cli_json_text(const char *t, size_t n)
{
    json_t *j = json_stringn(t, n);
    if (j || n > (SIZE_MAX - 1) / 3) return j ? j : json_string("");
    char *buf = malloc(n * 3 + 1);
    if (!buf) return json_string("");
    j = json_stringn(buf, psi_utf8_sanitize(t, n, buf, n * 3 + 1));
    free(buf);
    return j ? j : json_string("");
}

bool cli_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static char cleanup_path[4][4096];
static volatile sig_atomic_t n_cleanup;

static void cleanup_and_die(int sig)
{
    for (sig_atomic_t i = 0; i < n_cleanup; i++)
        unlink(cleanup_path[i]); /* async-signal-safe */
    signal(sig, SIG_DFL);
    raise(sig);
}

void cli_remove_on_signal(const char *path)
{
    struct stat st;
    if (n_cleanup == 4 || strlen(path) >= sizeof cleanup_path[0] || lstat(path, &st) == 0) return;
    memcpy(cleanup_path[n_cleanup], path, strlen(path) + 1);
    if (n_cleanup++ == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = cleanup_and_die;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
    }
}
