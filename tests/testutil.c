/* testutil.c — see testutil.h. */
#include "testutil.h"

#include <jansson.h>
#include "tokenizer.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

int tu_failures;
int tu_checks;

const char *tu_data_dir(void)
{
    const char *d = getenv("PSI_TEST_DATA");
    return d && *d ? d : "../shared/data";
}

const char *tu_data(const char *rel)
{
    static char bufs[4][4096];
    static int slot;
    char *b = bufs[slot++ & 3];
    snprintf(b, 4096, "%s/%s", tu_data_dir(), rel);
    return b;
}

const char *tu_tmpdir(const char *name)
{
    static char buf[4096];
    const char *base = getenv("PSI_TMP");
    if (!base || !*base) base = "/tmp";
    mkdir(base, 0755);
    snprintf(buf, sizeof buf, "%s/%s", base, name);
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "cannot create %s: %s\n", buf, strerror(errno));
        exit(2);
    }
    return buf;
}

char *tu_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 65536 + 1 > cap) {
            cap = (len + 65536 + 1) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); fclose(f); return NULL; }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
    }
    fclose(f);
    buf[len] = 0;
    if (size) *size = len;
    return buf;
}

int tu_finish(const char *name)
{
    fprintf(stderr, "%s: %d checks\n", name, tu_checks);
    printf("%d passed, %d failed\n", tu_checks - tu_failures, tu_failures);
    return tu_failures ? 1 : 0;
}

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

const char *tu_psi(void)
{
    const char *p = getenv("PSI");
    if (!p || !*p) {
        fprintf(stderr, "PSI is not set (run the tests through ctest)\n");
        exit(2);
    }
    return p;
}

static char *slurp_fd(int fd)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    lseek(fd, 0, SEEK_SET);
    for (;;) {
        if (len + 1 >= cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) { free(buf); return NULL; }
            buf = nb;
        }
        ssize_t got = read(fd, buf + len, cap - len - 1);
        if (got <= 0) break;
        len += (size_t)got;
    }
    buf[len] = 0;
    return buf;
}

int tu_run(const char *const argv[], char **out, char **err)
{
    char tmpl_out[] = "/tmp/psi-test-out-XXXXXX", tmpl_err[] = "/tmp/psi-test-err-XXXXXX";
    int fo = mkstemp(tmpl_out), fe = mkstemp(tmpl_err);
    if (fo < 0 || fe < 0) return -1;
    unlink(tmpl_out);
    unlink(tmpl_err);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        dup2(fo, 1);
        dup2(fe, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {}
    if (out) *out = slurp_fd(fo);
    if (err) *err = slurp_fd(fe);
    close(fo);
    close(fe);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

/* ------------------------------------------------------------ byte builder */

void tu_put(tu_buf *b, const void *src, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = (b->len + n) * 2 + 64;
        uint8_t *np = realloc(b->p, cap);
        if (!np) {
            fprintf(stderr, "out of memory\n");
            exit(2);
        }
        b->p = np;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_le(tu_buf *b, uint64_t v, int bytes)
{
    uint8_t le[8];
    for (int i = 0; i < bytes; i++)
        le[i] = (uint8_t)(v >> (8 * i));
    tu_put(b, le, (size_t)bytes);
}

void tu_put_u8(tu_buf *b, uint8_t v)
{
    tu_put(b, &v, 1);
}

void tu_put_u16(tu_buf *b, uint16_t v)
{
    put_le(b, v, 2);
}

void tu_put_u32(tu_buf *b, uint32_t v)
{
    put_le(b, v, 4);
}

void tu_put_u64(tu_buf *b, uint64_t v)
{
    put_le(b, v, 8);
}

void tu_put_i32(tu_buf *b, int32_t v)
{
    put_le(b, (uint32_t)v, 4);
}

void tu_put_f32(tu_buf *b, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    put_le(b, u, 4);
}

void tu_put_f64(tu_buf *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    put_le(b, u, 8);
}

void tu_put_pad(tu_buf *b, size_t align)
{
    while (b->len % align)
        tu_put_u8(b, 0);
}

void tu_put_gguf_str(tu_buf *b, const char *s)
{
    size_t n = strlen(s);
    tu_put_u64(b, n);
    tu_put(b, s, n);
}

void tu_put_gguf_key(tu_buf *b, const char *key, uint32_t type)
{
    tu_put_gguf_str(b, key);
    tu_put_u32(b, type);
}

void tu_put_gguf_tinfo(tu_buf *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                       uint64_t offset)
{
    tu_put_gguf_str(b, name);
    tu_put_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        tu_put_u64(b, ne[d]);
    tu_put_u32(b, type);
    tu_put_u64(b, offset);
}

void tu_buf_free(tu_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

uint64_t tu_rng_u64(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 0x2545F4914F6CDD1Dull;
}

float tu_rng_f32(uint64_t *state) { return (float)((double)(tu_rng_u64(state) >> 11) / 4503599627370496.0 - 1.0); }

int32_t *tu_tokenize(const struct vocab *v, const char *text, size_t len, int bos, int32_t *n, char *err,
                     size_t err_size)
{
    int32_t need = 0;
    psi_status rc = vocab_tokenize(v, text, len, bos, false, NULL, 0, &need, err, err_size);
    if (rc != PSI_OK && rc != PSI_ERR_BUFFER_SMALL) {
        *n = -1;
        return NULL;
    }
    int32_t *ids = malloc(sizeof *ids * (size_t)(need + 1));
    rc = vocab_tokenize(v, text, len, bos, false, ids, need, n, err, err_size);
    CHECKF(rc == PSI_OK && *n == need, "second tokenize: %d (%s)", rc, err);
    return ids;
}

char *tu_ids_arg(json_t *arr)
{
    size_t n = json_array_size(arr);
    char *s = malloc(n * 24 + 1);
    size_t len = 0;
    if (!s) exit(2);
    s[0] = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(s + len, "%lld ", (long long)json_integer_value(json_array_get(arr, i)));
    return s;
}
