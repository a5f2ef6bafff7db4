/*
 * util.c — the allocation layer, error formatting and half-precision
 * conversions shared by the library. See util.h.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Fault injection for tests (Lua's ltests.c idea). The only mutable global
 * of the library, and only tests touch it. */
static long mem_fail_countdown = -1;

void psi__mem_fail_after(long n) { mem_fail_countdown = n; }

static bool mem_should_fail(void)
{
    if (mem_fail_countdown < 0) return false;
    if (mem_fail_countdown == 0) return true;
    mem_fail_countdown--;
    return false;
}

void *mem_alloc(size_t n)
{
    if (mem_should_fail()) return NULL;
    return malloc(n ? n : 1);
}

void *mem_calloc(size_t count, size_t size)
{
    if (mem_should_fail()) return NULL;
    if (count == 0 || size == 0) count = size = 1;
    return calloc(count, size);
}

void *mem_alloc_lines(size_t n)
{
    if (mem_should_fail()) return NULL;
    void *p = NULL;
    return posix_memalign(&p, MEM_LINE, n ? n : 1) ? NULL : p;
}

void *mem_realloc(void *p, size_t n)
{
    if (mem_should_fail()) return NULL;
    return realloc(p, n ? n : 1);
}

void mem_free(void *p) { free(p); }

char *mem_strndup(const char *s, size_t n)
{
    char *d = mem_alloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

void err_vsetf(char *buf, size_t size, const char *fmt, va_list ap)
{
    if (!buf || size == 0) return;
    vsnprintf(buf, size, fmt, ap);
    /* Messages are one line: fold any newline that came from file data. */
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

void err_setf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vsetf(buf, size, fmt, ap);
    va_end(ap);
}

/* IEEE 754 binary16 <-> binary32, exact for every half value; rounding to
 * nearest even on the way down (same results as F16C's vcvtps2ph). */
float fp16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do { e++; man <<= 1; } while (!(man & 0x400));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t f32_to_fp16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t exp = (u >> 23) & 0xff;
    uint32_t man = u & 0x7fffff;
    if (exp == 0xff) /* inf / nan */
        return (uint16_t)(sign | 0x7c00 | (man ? 0x200 | (man >> 13) : 0));
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00); /* overflow → inf */
    if (e <= 0) {                                   /* subnormal or zero */
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; /* may carry into exp: fine */
    return (uint16_t)(sign | half);
}

uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 64); /* quiet NaN */
    return (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

/* Second-byte range per lead byte (Unicode Table 3-7, well-formed UTF-8). */
static size_t utf8_lead(uint8_t c, uint8_t *lo, uint8_t *hi)
{
    *lo = 0x80;
    *hi = 0xbf;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) return 2;
    if (c >= 0xe0 && c <= 0xef) {
        if (c == 0xe0) *lo = 0xa0;
        if (c == 0xed) *hi = 0x9f;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (c == 0xf0) *lo = 0x90;
        if (c == 0xf4) *hi = 0x8f;
        return 4;
    }
    return 0;
}

size_t utf8_prefix(const uint8_t *s, size_t n, size_t *need)
{
    uint8_t lo, hi;
    size_t len = utf8_lead(s[0], &lo, &hi);
    *need = len ? len : 1;
    if (len <= 1) return 1;
    size_t i = 1;
    for (; i < len && i < n; i++) {
        uint8_t b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b & 0xc0) != 0x80) break;
    }
    return i;
}

size_t utf8_valid(const uint8_t *s, size_t n)
{
    size_t need, k = utf8_prefix(s, n, &need);
    return k == need && (need > 1 || s[0] < 0x80) ? k : 0;
}

size_t utf8_sanitize(const uint8_t *s, size_t n, char *out, size_t size)
{
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_valid(s + i, n - i);
        const char *c = l ? (const char *)s + i : "\xEF\xBF\xBD";
        size_t w = l ? l : 3;
        if (k + w > size - 1) break;
        memcpy(out + k, c, w);
        k += w;
        i += l ? l : 1;
    }
    out[k] = 0;
    return k;
}

/* The number at the start of a file ("max" and absent files: 0). */
static uint64_t file_u64(const char *path)
{
    FILE *f = fopen(path, "r");
    unsigned long long v = 0;
    if (!f) return 0;
    if (fscanf(f, "%llu", &v) != 1) v = 0;
    fclose(f);
    return v;
}

/* The files this process's cgroups give for a controller: v2's v2_file in
 * the unified hierarchy, v1's v1_file in the controller's own (its name one
 * of the comma-separated ones on the line), each also at the hierarchy's
 * root (a container without a cgroup namespace sees its own cgroup there
 * and the host's path in /proc/self/cgroup). Returns how many (0..4). */
static int cgroup_files(const char *ctrl, const char *v1_file, const char *v2_file, char out[4][2200])
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    char line[2048];
    int n = 0;
    size_t cl = strlen(ctrl);
    while (f && n <= 2 && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
        if (!b) continue;
        if (b == a + 1) { /* "0::/path": cgroup v2 */
            snprintf(out[n++], sizeof out[0], "/sys/fs/cgroup%s/%s", b + 1, v2_file);
            snprintf(out[n++], sizeof out[0], "/sys/fs/cgroup/%s", v2_file);
            continue;
        }
        for (const char *c = a + 1; c < b;) {
            size_t k = strcspn(c, ",:");
            if (k == cl && !strncmp(c, ctrl, cl)) {
                snprintf(out[n++], sizeof out[0], "/sys/fs/cgroup/%s%s/%s", ctrl, b + 1, v1_file);
                snprintf(out[n++], sizeof out[0], "/sys/fs/cgroup/%s/%s", ctrl, v1_file);
                break;
            }
            c += k + 1;
        }
    }
    if (f) fclose(f);
    return n;
}

uint64_t mem_limit(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t lim = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    char path[4][2200];
    int n = cgroup_files("memory", "memory.limit_in_bytes", "memory.max", path);
    for (int i = 0; i < n; i++) {
        uint64_t v = file_u64(path[i]);
        if (v && (!lim || v < lim)) lim = v;
    }
    return lim;
}

int cpu_quota(void)
{
    char path[4][2200];
    int n = cgroup_files("cpu", "cpu.cfs_quota_us", "cpu.max", path), best = 0;
    for (int i = 0; i < n; i++) {
        long long quota = 0, period = 0;
        FILE *f = fopen(path[i], "r");
        if (!f) continue;
        bool v2 = strstr(path[i], "cpu.max") != NULL;
        bool ok = v2 ? fscanf(f, "%lld %lld", &quota, &period) == 2 : fscanf(f, "%lld", &quota) == 1;
        fclose(f);
        if (ok && !v2) { /* v1: the period is a file of its own */
            char pp[2200];
            snprintf(pp, sizeof pp, "%.*s/cpu.cfs_period_us", (int)(strrchr(path[i], '/') - path[i]),
                     path[i]);
            period = (long long)file_u64(pp);
        }
        if (!ok || quota <= 0 || period <= 0) continue;
        int cpus = (int)((quota + period - 1) / period);
        if (cpus > 0 && (!best || cpus < best)) best = cpus;
    }
    return best;
}

psi_status check_output(const char *out, char *err, size_t n)
{
    struct stat st;
    if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) {
        err_setf(err, n, "%s: is a directory", out);
        return PSI_ERR_IO;
    }
    const char *slash = strrchr(out, '/');
    if (!slash || slash == out) return PSI_OK;
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - out), out);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        err_setf(err, n, "%s: cannot create: %s is not a directory", out, dir);
        return PSI_ERR_IO;
    }
    return PSI_OK;
}

psi_status check_not_input(const char *out, const char *in, char *err, size_t n)
{
    struct stat so, si;
    if (stat(out, &so) != 0 || stat(in, &si) != 0 || so.st_dev != si.st_dev || so.st_ino != si.st_ino)
        return PSI_OK;
    if (!strcmp(out, in))
        err_setf(err, n, "%s: the output would replace the input; write it to another path", out);
    else
        err_setf(err, n, "%s: the output would replace the input %s; write it to another path", out, in);
    return PSI_ERR_INVALID_ARG;
}

psi_status map_file_ro(const char *path, const uint8_t **p, size_t *size, char *err, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_setf(err, n, "%s: cannot open: %s", path, strerror(errno));
        return PSI_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
        close(fd);
        err_setf(err, n, "%s: not a regular, non-empty file", path);
        return PSI_ERR_IO;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        err_setf(err, n, "%s: mmap failed: %s", path, strerror(errno));
        return PSI_ERR_IO;
    }
    *p = m;
    *size = (size_t)st.st_size;
    return PSI_OK;
}
