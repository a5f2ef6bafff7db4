/*
 * gguf.c — GGUF v2/v3 reader and writer.
 *
 * Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
 *   header   : magic "GGUF", u32 version, u64 tensor_count, u64 kv_count
 *   kv       : string key, u32 value type, value (arrays: u32 elem type, u64 n, elems)
 *   tensors  : string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset
 *   padding to general.alignment (default 32), then the data section.
 * Strings are u64 length + bytes (no NUL). All little-endian.
 *
 * The reader never trusts a count or length from the file: everything is
 * checked against the bytes that remain before it is used, with
 * overflow-checked arithmetic (llama.cpp's GGUF CVEs came from exactly this).
 * Not handled: big-endian files (v3 allows them; none are published) and v1.
 */
#define _GNU_SOURCE /* mremap */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "types.h"
#include "util.h"

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
/* Sanity limits far above any real file, so absurd counts fail fast with a
 * clear message instead of a huge allocation. */
#define GGUF_MAX_KEY_LEN 65535u

static const char *const vtype_names[GGUF_VTYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};
static const uint8_t vtype_size[GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

static const char *vtype_name(uint32_t t) { return t < GGUF_VTYPE_COUNT ? vtype_names[t] : "?"; }

/* A set of strings (keys or tensor names) for duplicate detection in
 * O(n) — a crafted file with many entries must not make parsing quadratic. */
typedef struct strset {
    const gguf_str **slots;
    size_t mask;
} strset;

static uint64_t str_hash(gguf_str s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (uint64_t i = 0; i < s.len; i++) h = (h ^ (uint8_t)s.ptr[i]) * 0x100000001b3ull;
    return h;
}

static bool strset_init(strset *set, uint64_t n)
{
    size_t cap = 16;
    while (cap < n * 2) cap *= 2;
    set->slots = mem_calloc(cap, sizeof *set->slots);
    set->mask = cap - 1;
    return set->slots != NULL;
}

/* Returns false when s is already in the set. */
static bool strset_add(strset *set, const gguf_str *s)
{
    for (size_t i = (size_t)str_hash(*s) & set->mask;; i = (i + 1) & set->mask) {
        const gguf_str *o = set->slots[i];
        if (!o) {
            set->slots[i] = s;
            return true;
        }
        if (o->len == s->len && !memcmp(o->ptr, s->ptr, (size_t)s->len)) return false;
    }
}

/* ------------------------------------------------------------------ reader */

typedef struct reader {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    const char *name;
    char *err;
    size_t err_size;
} reader;

static psi_status rfail(reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static psi_status rfail(reader *r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    err_setf(r->err, r->err_size, "%s: %s", r->name, msg);
    return PSI_ERR_FORMAT;
}

static bool r_has(const reader *r, uint64_t n) { return n <= r->size - r->pos; }

static psi_status r_bytes(reader *r, uint64_t n, const uint8_t **out, const char *what)
{
    if (!r_has(r, n))
        return rfail(r, "%s at byte %" PRIu64 " needs %" PRIu64 " bytes, only %" PRIu64
                        " left in the file (truncated?)",
                     what, r->pos, n, r->size - r->pos);
    *out = r->base + r->pos;
    r->pos += n;
    return PSI_OK;
}

static psi_status r_u32(reader *r, uint32_t *v, const char *what)
{
    const uint8_t *p = NULL;
    psi_status rc = r_bytes(r, 4, &p, what);
    if (rc == PSI_OK) *v = rd_u32(p);
    return rc;
}

static psi_status r_u64(reader *r, uint64_t *v, const char *what)
{
    const uint8_t *p = NULL;
    psi_status rc = r_bytes(r, 8, &p, what);
    if (rc == PSI_OK) *v = rd_u64(p);
    return rc;
}

static psi_status r_str(reader *r, gguf_str *s, const char *what)
{
    uint64_t len;
    psi_status rc = r_u64(r, &len, what);
    if (rc) return rc;
    if (!r_has(r, len))
        return rfail(r, "%s at byte %" PRIu64 " claims a length of %" PRIu64
                        " bytes, longer than the %" PRIu64 " bytes left in the file",
                     what, r->pos - 8, len, r->size - r->pos);
    s->ptr = (const char *)(r->base + r->pos);
    s->len = len;
    r->pos += len;
    return PSI_OK;
}

/* Printable prefix of a key for messages. */
static void str_show(gguf_str s, char *buf, size_t n)
{
    size_t len = s.len < n - 1 ? (size_t)s.len : n - 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        buf[i] = (c >= 32 && c < 127) ? (char)c : '?';
    }
    buf[len] = 0;
}

static psi_status read_value(reader *r, gguf_kv *kv, const char *key)
{
    if (kv->type == GGUF_STRING) {
        kv->n = 1;
        kv->strs = mem_alloc(sizeof(gguf_str));
        if (!kv->strs) return PSI_ERR_NO_MEMORY;
        kv->data = r->base + r->pos;
        return r_str(r, &kv->strs[0], key);
    }
    if (kv->type == GGUF_ARRAY) {
        psi_status rc = r_u32(r, &kv->arr_type, key);
        if (rc) return rc;
        if (kv->arr_type >= GGUF_VTYPE_COUNT || kv->arr_type == GGUF_ARRAY)
            return rfail(r, "%s: invalid array element type %" PRIu32, key, kv->arr_type);
        if ((rc = r_u64(r, &kv->n, key))) return rc;
        kv->data = r->base + r->pos;
        if (kv->arr_type == GGUF_STRING) {
            /* Each string takes at least 8 bytes: bound n before allocating. */
            if (kv->n > (r->size - r->pos) / 8)
                return rfail(r, "%s: array of %" PRIu64
                                " strings cannot fit in the %" PRIu64 " bytes left",
                             key, kv->n, r->size - r->pos);
            kv->strs = mem_calloc((size_t)(kv->n ? kv->n : 1), sizeof(gguf_str));
            if (!kv->strs) return PSI_ERR_NO_MEMORY;
            for (uint64_t i = 0; i < kv->n; i++)
                if ((rc = r_str(r, &kv->strs[i], key))) return rc;
            return PSI_OK;
        }
        uint64_t bytes;
        if (u64_mul_ovf(kv->n, vtype_size[kv->arr_type], &bytes) || !r_has(r, bytes))
            return rfail(r, "%s: array of %" PRIu64 " %s values runs past the end of the file",
                         key, kv->n, vtype_name(kv->arr_type));
        if (kv->arr_type == GGUF_BOOL)
            for (uint64_t i = 0; i < kv->n; i++)
                if (kv->data[i] > 1)
                    return rfail(r, "%s: bool element %" PRIu64 " = %u is neither 0 nor 1", key, i, kv->data[i]);
        r->pos += bytes;
        return PSI_OK;
    }
    if (kv->type >= GGUF_VTYPE_COUNT)
        return rfail(r, "%s: invalid value type %" PRIu32, key, kv->type);
    kv->n = 1;
    const uint8_t *p = NULL;
    psi_status rc = r_bytes(r, vtype_size[kv->type], &p, key);
    if (rc) return rc;
    kv->data = p;
    if (kv->type == GGUF_BOOL && *p > 1)
        return rfail(r, "%s: bool value %u is neither 0 nor 1", key, *p);
    return PSI_OK;
}

static psi_status parse_kv(reader *r, gguf *g, uint64_t i, strset *seen)
{
    gguf_kv *kv = &g->kv[i];
    char label[64];
    snprintf(label, sizeof label, "key of metadata entry %" PRIu64, i);
    psi_status rc = r_str(r, &kv->key, label);
    if (rc) return rc;
    char key[96];
    str_show(kv->key, key, sizeof key);
    if (kv->key.len == 0 || kv->key.len > GGUF_MAX_KEY_LEN)
        return rfail(r, "metadata entry %" PRIu64 " has an invalid key length %" PRIu64, i, kv->key.len);
    if (!strset_add(seen, &kv->key)) return rfail(r, "metadata key '%s' appears twice", key);
    char what[128];
    snprintf(what, sizeof what, "metadata '%s'", key);
    if ((rc = r_u32(r, &kv->type, what))) return rc;
    return read_value(r, kv, what);
}

static psi_status parse_kvs(reader *r, gguf *g)
{
    /* Each kv takes at least 8 (key length) + 4 (type) bytes. */
    if (g->n_kv > (r->size - r->pos) / 12)
        return rfail(r, "header claims %" PRIu64 " metadata entries, more than the file can hold",
                     g->n_kv);
    g->kv = mem_calloc((size_t)(g->n_kv ? g->n_kv : 1), sizeof(gguf_kv));
    strset seen = {0};
    if (!g->kv || !strset_init(&seen, g->n_kv)) {
        mem_free(seen.slots);
        return PSI_ERR_NO_MEMORY;
    }
    psi_status rc = PSI_OK;
    for (uint64_t i = 0; i < g->n_kv && rc == PSI_OK; i++) rc = parse_kv(r, g, i, &seen);
    mem_free(seen.slots);
    return rc;
}

static psi_status parse_tensor_info(reader *r, gguf *g, uint64_t i, strset *seen)
{
    gguf_tensor *t = &g->tensors[i];
    char label[64];
    snprintf(label, sizeof label, "name of tensor %" PRIu64, i);
    psi_status rc = r_str(r, &t->name, label);
    if (rc) return rc;
    char name[96];
    str_show(t->name, name, sizeof name);
    if (t->name.len == 0 || t->name.len > GGUF_MAX_KEY_LEN)
        return rfail(r, "tensor %" PRIu64 " has an invalid name length %" PRIu64, i, t->name.len);
    if (!strset_add(seen, &t->name)) return rfail(r, "tensor name '%s' appears twice", name);
    char what[128];
    snprintf(what, sizeof what, "tensor '%s'", name);
    if ((rc = r_u32(r, &t->n_dims, what))) return rc;
    if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
        return rfail(r, "tensor '%s' has %" PRIu32 " dimensions (1 to %d allowed)", name, t->n_dims,
                     GGUF_MAX_DIMS);
    uint64_t nel = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d < t->n_dims && (rc = r_u64(r, &t->ne[d], what))) return rc;
        if (t->ne[d] == 0 || t->ne[d] > INT64_MAX)
            return rfail(r, "tensor '%s' has invalid dimension %" PRIu32 " = %" PRIu64, name, d, t->ne[d]);
        if (u64_mul_ovf(nel, t->ne[d], &nel) || nel > INT64_MAX)
            return rfail(r, "tensor '%s': shape overflows (element count > 2^63)", name);
    }
    if ((rc = r_u32(r, &t->type, what))) return rc;
    const type_traits *tt = type_get(t->type);
    if (!tt) return rfail(r, "tensor '%s' has unknown type id %" PRIu32, name, t->type);
    if (t->ne[0] % tt->blck_size)
        return rfail(r, "tensor '%s': row length %" PRIu64 " is not a multiple of %s's block size %" PRIu32,
                     name, t->ne[0], tt->name, tt->blck_size);
    uint64_t nbytes;
    if (u64_mul_ovf(nel / tt->blck_size, tt->type_size, &nbytes))
        return rfail(r, "tensor '%s': byte size overflows", name);
    t->nbytes = nbytes;
    if ((rc = r_u64(r, &t->offset, what))) return rc;
    if (t->offset % g->alignment)
        return rfail(r, "tensor '%s': data offset %" PRIu64 " is not a multiple of the alignment %" PRIu64,
                     name, t->offset, g->alignment);
    return PSI_OK;
}

static psi_status parse_tensors(reader *r, gguf *g)
{
    /* Each tensor info takes at least 8 + 4 + 4 + 8 bytes. */
    if (g->n_tensors > (r->size - r->pos) / 24)
        return rfail(r, "header claims %" PRIu64 " tensors, more than the file can hold", g->n_tensors);
    g->tensors = mem_calloc((size_t)(g->n_tensors ? g->n_tensors : 1), sizeof(gguf_tensor));
    strset seen = {0};
    if (!g->tensors || !strset_init(&seen, g->n_tensors)) {
        mem_free(seen.slots);
        return PSI_ERR_NO_MEMORY;
    }
    psi_status rc = PSI_OK;
    for (uint64_t i = 0; i < g->n_tensors && rc == PSI_OK; i++) rc = parse_tensor_info(r, g, i, &seen);
    mem_free(seen.slots);
    return rc;
}

static psi_status parse(reader *r, gguf *g)
{
    uint32_t magic;
    psi_status rc = r_u32(r, &magic, "magic");
    if (rc) return rc;
    if (magic != GGUF_MAGIC) return rfail(r, "not a GGUF file (bad magic 0x%08" PRIx32 ")", magic);
    if ((rc = r_u32(r, &g->version, "version"))) return rc;
    if (g->version == 1) return rfail(r, "GGUF version 1 is not supported (re-convert the model)");
    if (g->version != 2 && g->version != 3)
        return rfail(r, "unsupported GGUF version %" PRIu32 " (2 and 3 are supported)", g->version);
    if ((rc = r_u64(r, &g->n_tensors, "tensor count"))) return rc;
    if ((rc = r_u64(r, &g->n_kv, "metadata count"))) return rc;
    if ((rc = parse_kvs(r, g))) return rc;

    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = gguf_find_key(g, "general.alignment");
    if (ai >= 0) {
        const gguf_kv *kv = &g->kv[ai];
        if (kv->type != GGUF_U32)
            return rfail(r, "general.alignment has type %s, expected u32", vtype_name(kv->type));
        uint32_t a = rd_u32(kv->data);
        if (a == 0 || (a & (a - 1)))
            return rfail(r, "general.alignment = %" PRIu32 " is not a power of two", a);
        g->alignment = a;
    }
    if ((rc = parse_tensors(r, g))) return rc;

    /* Data section starts at the next multiple of the alignment. A file
     * without tensors may end before that point (vocab-only files do). */
    uint64_t pad = (g->alignment - r->pos % g->alignment) % g->alignment;
    if (u64_add_ovf(r->pos, pad, &g->data_offset)) return rfail(r, "data offset overflows");
    if (g->n_tensors && g->data_offset > r->size)
        return rfail(r, "tensor data section would start at byte %" PRIu64 ", past the end of the file (%" PRIu64 ")",
                     g->data_offset, r->size);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        uint64_t start, end;
        char name[96];
        str_show(t->name, name, sizeof name);
        if (u64_add_ovf(g->data_offset, t->offset, &start) || u64_add_ovf(start, t->nbytes, &end) ||
            end > r->size)
            return rfail(r, "tensor '%s' (%" PRIu64 " bytes at data offset %" PRIu64
                            ") ends past the end of the file (%" PRIu64 " bytes)",
                         name, t->nbytes, t->offset, r->size);
        t->data = r->base + start;
    }
    return PSI_OK;
}

psi_status gguf_parse(const void *data, size_t size, const char *name, gguf **out, char *err,
                      size_t err_size)
{
    *out = NULL;
    gguf *g = mem_calloc(1, sizeof *g);
    if (!g) goto oom;
    g->path = mem_strndup(name, strlen(name));
    if (!g->path) goto oom;
    g->base = data;
    g->size = size;
    reader r = {.base = data, .size = size, .name = name, .err = err, .err_size = err_size};
    psi_status rc = parse(&r, g);
    if (rc == PSI_ERR_NO_MEMORY) goto oom;
    if (rc) {
        gguf_close(g);
        return rc;
    }
    *out = g;
    return PSI_OK;
oom:
    gguf_close(g);
    err_setf(err, err_size, "%s: out of memory while reading the GGUF header", name);
    return PSI_ERR_NO_MEMORY;
}

static psi_status gguf_open_one(const char *path, gguf **out, char *err, size_t err_size)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_setf(err, err_size, "%s: cannot open: %s", path, strerror(errno));
        return PSI_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        err_setf(err, err_size, "%s: not a regular file", path);
        close(fd);
        return PSI_ERR_IO;
    }
    if (st.st_size < 8) {
        close(fd);
        err_setf(err, err_size, "%s: file is %lld bytes, too short for a GGUF header", path,
                 (long long)st.st_size);
        return PSI_ERR_FORMAT;
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        err_setf(err, err_size, "%s: mmap failed: %s", path, strerror(errno));
        return PSI_ERR_IO;
    }
    psi_status rc = gguf_parse(map, size, path, out, err, err_size);
    if (rc) {
        munmap(map, size);
        return rc;
    }
    (*out)->mapped = true;
    (*out)->dev = (uint64_t)st.st_dev;
    (*out)->ino = (uint64_t)st.st_ino;
    return PSI_OK;
}

/* One file of gguf_read_in. The copy is made at the same offset from a
 * 2 MiB boundary as the mapping, so that mremap moves its huge pages
 * whole; its header is compared with the bytes parsed, so that a file
 * replaced or rewritten since it was opened is not taken for the one
 * checked. Returns 1 when the bytes are now the process's own, 0 when
 * the mapping is kept (no memory for a copy), or -1 with err set. */
static int read_in_one(gguf *g, char *err, size_t n)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE), huge = (size_t)2 << 20;
    const size_t len = ((size_t)g->size + page - 1) / page * page, span = len + huge;
    uint8_t *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return 0;
    size_t lead = ((uintptr_t)g->base % huge + huge - (uintptr_t)raw % huge) % huge;
    uint8_t *own = raw + lead;
    if (lead) munmap(raw, lead);
    if (span - lead - len) munmap(own + len, span - lead - len);
#ifdef MADV_HUGEPAGE
    (void)madvise(own, len, MADV_HUGEPAGE); /* where the kernel's transparent huge pages are "madvise" */
#endif
    int rc = -1, fd = open(g->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        err_setf(err, n, "%s: cannot open: %s", g->path, strerror(errno));
        goto done;
    }
    if ((uint64_t)st.st_dev != g->dev || (uint64_t)st.st_ino != g->ino || (uint64_t)st.st_size != g->size) {
        err_setf(err, n, "%s: the file was replaced or changed while it was loading", g->path);
        goto done;
    }
    for (size_t got = 0; got < g->size;) {
        size_t want = g->size - got > ((size_t)1 << 30) ? (size_t)1 << 30 : (size_t)g->size - got;
        ssize_t r = pread(fd, own + got, want, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            err_setf(err, n, "%s: cannot read: %s", g->path,
                     r ? strerror(errno) : "the file is shorter than it was");
            goto done;
        }
        got += (size_t)r;
    }
    if (memcmp(own, g->base, (size_t)g->data_offset) != 0) {
        err_setf(err, n, "%s: the file was replaced or changed while it was loading", g->path);
        goto done;
    }
    rc = 0;
    if (mremap(own, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)g->base) == (void *)g->base)
        rc = 1; /* the file's mapping is gone; the same bytes are at the same addresses */
done:
    if (fd >= 0) close(fd);
    if (rc != 1) munmap(own, len);
    return rc;
}

void gguf_read_only(gguf *g)
{
    for (uint32_t i = 0; i <= g->n_parts; i++) {
        const gguf *p = i ? g->parts[i - 1] : g;
        if (p->mapped) (void)mprotect((void *)p->base, (size_t)p->size, PROT_READ);
    }
}

psi_status gguf_read_in(gguf *g, bool *own, char *err, size_t n)
{
    *own = false;
    if (!g->mapped) return PSI_OK;
    for (uint32_t i = 0; i <= g->n_parts; i++) {
        int r = read_in_one(i ? g->parts[i - 1] : g, err, n);
        if (r < 0) return PSI_ERR_IO;
        if (r == 0) return PSI_OK;
    }
    *own = true;
    return PSI_OK;
}

/* The other parts of a split set (llama.cpp gguf-split: part k is
 * PREFIX-0000k-of-0000n.gguf, split.no = k-1). */
static psi_status open_split(gguf *g, uint32_t count, char *err, size_t n)
{
    size_t len = strlen(g->path);
    char tail[32];
    snprintf(tail, sizeof tail, "-00001-of-%05" PRIu32 ".gguf", count);
    size_t tl = strlen(tail);
    if (count > 9999 || len < tl || strcmp(g->path + len - tl, tail) != 0) {
        err_setf(err, n, "%s: split.count is %" PRIu32 " but the name does not end in %s", g->path, count, tail);
        return PSI_ERR_FORMAT;
    }
    uint32_t want_tensors = 0;
    psi_status rc = gguf_get_u32(g, "split.tensors.count", &want_tensors, err, n);
    if (rc == PSI_ERR_INVALID_ARG) want_tensors = 0; /* absent: not checked */
    else if (rc) return rc;
    if (!(g->parts = mem_calloc(count - 1, sizeof *g->parts))) return PSI_ERR_NO_MEMORY;
    uint64_t total = g->n_tensors;
    char *p = mem_alloc(len + 1);
    if (!p) return PSI_ERR_NO_MEMORY;
    for (uint32_t k = 2; k <= count; k++) {
        snprintf(p, len + 1, "%.*s-%05" PRIu32 "-of-%05" PRIu32 ".gguf", (int)(len - tl), g->path, k, count);
        gguf *q = NULL;
        if ((rc = gguf_open_one(p, &q, err, n))) break;
        g->parts[g->n_parts++] = q;
        uint32_t no = 0, cnt = 0;
        if (gguf_get_u32(q, "split.no", &no, err, n) || gguf_get_u32(q, "split.count", &cnt, err, n) ||
            no != k - 1 || cnt != count) {
            err_setf(err, n, "%s: split.no/split.count are not %" PRIu32 "/%" PRIu32 " (part of another set?)", p,
                     k - 1, count);
            rc = PSI_ERR_FORMAT;
            break;
        }
        total += q->n_tensors;
    }
    mem_free(p);
    if (rc) return rc;
    if (want_tensors && total != want_tensors) {
        err_setf(err, n, "%s: the %" PRIu32 " parts hold %" PRIu64 " tensors, split.tensors.count says %" PRIu32,
                 g->path, count, total, want_tensors);
        return PSI_ERR_FORMAT;
    }
    gguf_tensor *all = mem_realloc(g->tensors, (size_t)total * sizeof *all);
    if (!all) return PSI_ERR_NO_MEMORY;
    g->tensors = all;
    for (uint32_t i = 0; i < g->n_parts; i++) {
        memcpy(all + g->n_tensors, g->parts[i]->tensors, (size_t)g->parts[i]->n_tensors * sizeof *all);
        g->n_tensors += g->parts[i]->n_tensors;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++)
        for (uint64_t j = 0; j < i; j++)
            if (all[i].name.len == all[j].name.len && !memcmp(all[i].name.ptr, all[j].name.ptr, all[i].name.len)) {
                err_setf(err, n, "%s: tensor '%.*s' is in two parts of the split set", g->path,
                         (int)(all[i].name.len > 200 ? 200 : all[i].name.len), all[i].name.ptr);
                return PSI_ERR_FORMAT;
            }
    return PSI_OK;
}

psi_status gguf_open(const char *path, gguf **out, char *err, size_t err_size)
{
    psi_status rc = gguf_open_one(path, out, err, err_size);
    if (rc) return rc;
    uint32_t count = 0, no = 0;
    if (gguf_get_u32(*out, "split.count", &count, err, err_size) != PSI_OK || count < 2) return PSI_OK;
    if (gguf_get_u32(*out, "split.no", &no, err, err_size) != PSI_OK || no != 0) return PSI_OK; /* one part alone */
    if ((rc = open_split(*out, count, err, err_size))) {
        if (rc == PSI_ERR_NO_MEMORY) err_setf(err, err_size, "%s: out of memory", path);
        gguf_close(*out);
        *out = NULL;
    }
    return rc;
}

void gguf_close(gguf *g)
{
    if (!g) return;
    for (uint32_t i = 0; i < g->n_parts; i++) gguf_close(g->parts[i]);
    mem_free(g->parts);
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++) mem_free(g->kv[i].strs);
    mem_free(g->kv);
    mem_free(g->tensors);
    if (g->mapped) munmap((void *)g->base, (size_t)g->size);
    mem_free(g->path);
    mem_free(g);
}

bool gguf_str_eq(gguf_str s, const char *cstr)
{
    size_t n = strlen(cstr);
    return s.len == n && memcmp(s.ptr, cstr, n) == 0;
}

int64_t gguf_find_key(const gguf *g, const char *key)
{
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (gguf_str_eq(g->kv[i].key, key)) return (int64_t)i;
    return -1;
}

int64_t gguf_find_tensor(const gguf *g, const char *name)
{
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (gguf_str_eq(g->tensors[i].name, name)) return (int64_t)i;
    return -1;
}

/* Integer value of a scalar kv as int64 plus a flag for u64 values above
 * INT64_MAX. Returns false when the kv is not an integer. */
static bool kv_int(const gguf_kv *kv, int64_t *v, bool *huge)
{
    *huge = false;
    const uint8_t *p = kv->data;
    switch (kv->type) {
    case GGUF_U8: *v = p[0]; return true;
    case GGUF_I8: *v = (int8_t)p[0]; return true;
    case GGUF_U16: *v = rd_u16(p); return true;
    case GGUF_I16: *v = (int16_t)rd_u16(p); return true;
    case GGUF_U32: *v = rd_u32(p); return true;
    case GGUF_I32: *v = (int32_t)rd_u32(p); return true;
    case GGUF_U64: {
        uint64_t u = rd_u64(p);
        *huge = u > INT64_MAX;
        *v = (int64_t)(u & INT64_MAX);
        return true;
    }
    case GGUF_I64: *v = (int64_t)rd_u64(p); return true;
    default: return false;
    }
}

static psi_status get_kv(const gguf *g, const char *key, const gguf_kv **kv)
{
    int64_t i = gguf_find_key(g, key);
    if (i < 0) return PSI_ERR_INVALID_ARG;
    *kv = &g->kv[i];
    return PSI_OK;
}

static psi_status wrong_type(const gguf *g, const char *key, const gguf_kv *kv, const char *want,
                             char *err, size_t n)
{
    err_setf(err, n, "%s: metadata '%s' has type %s, expected %s", g->path, key,
             kv->type == GGUF_ARRAY ? "array" : vtype_name(kv->type), want);
    return PSI_ERR_FORMAT;
}

psi_status gguf_get_u32(const gguf *g, const char *key, uint32_t *out, char *err, size_t n)
{
    const gguf_kv *kv;
    if (get_kv(g, key, &kv)) return PSI_ERR_INVALID_ARG;
    int64_t v;
    bool huge;
    if (!kv_int(kv, &v, &huge)) return wrong_type(g, key, kv, "an integer", err, n);
    if (huge || v < 0 || v > UINT32_MAX) {
        err_setf(err, n, "%s: metadata '%s' = %s%" PRId64 " is out of range", g->path, key,
                 huge ? ">" : "", v);
        return PSI_ERR_FORMAT;
    }
    *out = (uint32_t)v;
    return PSI_OK;
}

psi_status gguf_get_f32(const gguf *g, const char *key, float *out, char *err, size_t n)
{
    const gguf_kv *kv;
    if (get_kv(g, key, &kv)) return PSI_ERR_INVALID_ARG;
    if (kv->type == GGUF_F32) {
        *out = rd_f32(kv->data);
    } else if (kv->type == GGUF_F64) {
        double d;
        memcpy(&d, kv->data, sizeof d);
        *out = (float)d;
    } else {
        return wrong_type(g, key, kv, "f32", err, n);
    }
    return PSI_OK;
}

psi_status gguf_get_bool(const gguf *g, const char *key, bool *out, char *err, size_t n)
{
    const gguf_kv *kv;
    if (get_kv(g, key, &kv)) return PSI_ERR_INVALID_ARG;
    if (kv->type != GGUF_BOOL) return wrong_type(g, key, kv, "bool", err, n);
    *out = kv->data[0] != 0;
    return PSI_OK;
}

psi_status gguf_get_str(const gguf *g, const char *key, gguf_str *out, char *err, size_t n)
{
    const gguf_kv *kv;
    if (get_kv(g, key, &kv)) return PSI_ERR_INVALID_ARG;
    if (kv->type != GGUF_STRING) return wrong_type(g, key, kv, "string", err, n);
    *out = kv->strs[0];
    return PSI_OK;
}

psi_status gguf_get_arr(const gguf *g, const char *key, uint32_t elem_type, uint64_t want_n,
                        const gguf_kv **out, char *err, size_t n)
{
    const gguf_kv *kv;
    if (get_kv(g, key, &kv)) return PSI_ERR_INVALID_ARG;
    if (kv->type != GGUF_ARRAY || kv->arr_type != elem_type) {
        err_setf(err, n, "%s: metadata '%s' has type %s%s%s, expected array of %s", g->path, key,
                 vtype_name(kv->type), kv->type == GGUF_ARRAY ? " of " : "",
                 kv->type == GGUF_ARRAY ? vtype_name(kv->arr_type) : "", vtype_name(elem_type));
        return PSI_ERR_FORMAT;
    }
    if (want_n && kv->n != want_n) {
        err_setf(err, n, "%s: metadata '%s' has %" PRIu64 " entries, expected %" PRIu64, g->path,
                 key, kv->n, want_n);
        return PSI_ERR_FORMAT;
    }
    *out = kv;
    return PSI_OK;
}

/* ------------------------------------------------------------------ printing */

static void print_str(FILE *f, gguf_str s, size_t max)
{
    fputc('"', f);
    size_t n = s.len < max ? (size_t)s.len : max;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c < 32 || c == 127) fprintf(f, "\\x%02x", c);
        else fputc(c, f);
    }
    fputc('"', f);
    if (n < s.len) fprintf(f, "…(%" PRIu64 " bytes)", s.len);
}

static void print_scalar(FILE *f, uint32_t type, const uint8_t *p)
{
    switch (type) {
    case GGUF_U8: fprintf(f, "%u", p[0]); break;
    case GGUF_I8: fprintf(f, "%d", (int8_t)p[0]); break;
    case GGUF_U16: fprintf(f, "%u", rd_u16(p)); break;
    case GGUF_I16: fprintf(f, "%d", (int16_t)rd_u16(p)); break;
    case GGUF_U32: fprintf(f, "%" PRIu32, rd_u32(p)); break;
    case GGUF_I32: fprintf(f, "%" PRId32, (int32_t)rd_u32(p)); break;
    case GGUF_U64: fprintf(f, "%" PRIu64, rd_u64(p)); break;
    case GGUF_I64: fprintf(f, "%" PRId64, (int64_t)rd_u64(p)); break;
    case GGUF_F32: fprintf(f, "%g", rd_f32(p)); break;
    case GGUF_F64: {
        double d;
        memcpy(&d, p, sizeof d);
        fprintf(f, "%g", d);
        break;
    }
    case GGUF_BOOL: fputs(p[0] ? "true" : "false", f); break;
    default: fputs("?", f);
    }
}

void gguf_print(const gguf *g, FILE *f, int max_array)
{
    if (max_array < 1) max_array = 1;
    fprintf(f, "file: %s\nGGUF version %" PRIu32 ", %" PRIu64 " bytes, alignment %" PRIu64
               ", data at byte %" PRIu64 "\n",
            g->path, g->version, g->size, g->alignment, g->data_offset);
    fprintf(f, "\nmetadata (%" PRIu64 " entries):\n", g->n_kv);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const gguf_kv *kv = &g->kv[i];
        fprintf(f, "  %.*s", (int)kv->key.len, kv->key.ptr);
        if (kv->type == GGUF_STRING) {
            fputs(" = ", f);
            print_str(f, kv->strs[0], 200);
        } else if (kv->type == GGUF_ARRAY) {
            fprintf(f, " = [%s × %" PRIu64 "] [", vtype_name(kv->arr_type), kv->n);
            uint64_t shown = kv->n < (uint64_t)max_array ? kv->n : (uint64_t)max_array;
            for (uint64_t j = 0; j < shown; j++) {
                if (j) fputs(", ", f);
                if (kv->arr_type == GGUF_STRING) print_str(f, kv->strs[j], 60);
                else print_scalar(f, kv->arr_type, kv->data + j * vtype_size[kv->arr_type]);
            }
            if (shown < kv->n) fprintf(f, ", … %" PRIu64 " more", kv->n - shown);
            fputs("]", f);
        } else {
            fprintf(f, " (%s) = ", vtype_name(kv->type));
            print_scalar(f, kv->type, kv->data);
        }
        fputc('\n', f);
    }
    fprintf(f, "\ntensors (%" PRIu64 "):\n", g->n_tensors);
    fprintf(f, "  %-40s %-6s %-28s %12s %12s\n", "name", "type", "shape", "offset", "bytes");
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        char shape[96];
        int len = 0;
        for (uint32_t d = 0; d < t->n_dims; d++)
            len += snprintf(shape + len, sizeof shape - (size_t)len, "%s%" PRIu64, d ? " x " : "[",
                            t->ne[d]);
        snprintf(shape + len, sizeof shape - (size_t)len, "]");
        const type_traits *tt = type_get(t->type);
        fprintf(f, "  %-40.*s %-6s %-28s %12" PRIu64 " %12" PRIu64 "\n", (int)t->name.len,
                t->name.ptr, tt ? tt->name : "?", shape, t->offset, t->nbytes);
    }
}

/* ------------------------------------------------------------------ writer */

typedef struct wkv {
    char *key;
    uint32_t type, arr_type;
    uint64_t n;
    uint8_t *data;     /* scalar / fixed-size array payload */
    size_t data_size;
    char **strs;       /* string values */
} wkv;

typedef struct wtensor {
    char *name;
    uint32_t type, n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    uint64_t nbytes, offset;
    const void *data;
} wtensor;

struct gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
    uint64_t alignment;
};

gguf_writer *gguf_writer_new(void)
{
    gguf_writer *w = mem_calloc(1, sizeof *w);
    if (w) w->alignment = GGUF_DEFAULT_ALIGNMENT;
    return w;
}

static void wkv_clear(wkv *kv)
{
    mem_free(kv->key);
    mem_free(kv->data);
    if (kv->strs)
        for (uint64_t i = 0; i < kv->n; i++) mem_free(kv->strs[i]);
    mem_free(kv->strs);
}

void gguf_writer_free(gguf_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) wkv_clear(&w->kv[i]);
    for (size_t i = 0; i < w->n_t; i++) mem_free(w->t[i].name);
    mem_free(w->kv);
    mem_free(w->t);
    mem_free(w);
}

static bool grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap) return true;
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = mem_realloc(*arr, nc * elem);
    if (!p) return false;
    *arr = p;
    *cap = nc;
    return true;
}

/* Returns a fresh entry for key (replacing an existing one). */
static wkv *writer_slot(gguf_writer *w, const char *key)
{
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) {
            wkv_clear(&w->kv[i]);
            memset(&w->kv[i], 0, sizeof(wkv));
            w->kv[i].key = mem_strndup(key, strlen(key));
            return w->kv[i].key ? &w->kv[i] : NULL;
        }
    if (!grow((void **)&w->kv, &w->cap_kv, w->n_kv, sizeof(wkv))) return NULL;
    wkv *kv = &w->kv[w->n_kv];
    memset(kv, 0, sizeof *kv);
    kv->key = mem_strndup(key, strlen(key));
    if (!kv->key) return NULL;
    w->n_kv++;
    return kv;
}

/* Keys and names the reader would accept: 1 to GGUF_MAX_KEY_LEN bytes. */
static bool valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n > 0 && n <= GGUF_MAX_KEY_LEN;
}

static psi_status set_fixed(gguf_writer *w, const char *key, uint32_t type, uint32_t arr_type,
                            const void *data, uint64_t n, size_t elem)
{
    size_t bytes;
    if (!valid_name(key) || size_mul_ovf((size_t)n, elem, &bytes)) return PSI_ERR_INVALID_ARG;
    /* the writer pads with this value: it must be one the reader accepts */
    if (!strcmp(key, "general.alignment") &&
        (type != GGUF_U32 || !data || rd_u32(data) == 0 || (rd_u32(data) & (rd_u32(data) - 1))))
        return PSI_ERR_INVALID_ARG;
    wkv *kv = writer_slot(w, key);
    if (!kv) return PSI_ERR_NO_MEMORY;
    kv->type = type;
    kv->arr_type = arr_type;
    kv->n = n;
    kv->data = mem_alloc(bytes);
    if (!kv->data) return PSI_ERR_NO_MEMORY;
    memcpy(kv->data, data, bytes);
    kv->data_size = bytes;
    return PSI_OK;
}

psi_status gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t val)
{
    return set_fixed(w, key, GGUF_U32, 0, &val, 1, 4);
}
psi_status gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t val)
{
    return set_fixed(w, key, GGUF_I32, 0, &val, 1, 4);
}
psi_status gguf_writer_set_f32(gguf_writer *w, const char *key, float val)
{
    return set_fixed(w, key, GGUF_F32, 0, &val, 1, 4);
}
psi_status gguf_writer_set_bool(gguf_writer *w, const char *key, bool val)
{
    uint8_t b = val;
    return set_fixed(w, key, GGUF_BOOL, 0, &b, 1, 1);
}

psi_status gguf_writer_set_arr(gguf_writer *w, const char *key, uint32_t elem_type,
                               const void *data, uint64_t n)
{
    if (elem_type >= GGUF_VTYPE_COUNT || !vtype_size[elem_type]) return PSI_ERR_INVALID_ARG;
    return set_fixed(w, key, GGUF_ARRAY, elem_type, data, n, vtype_size[elem_type]);
}

static psi_status set_strs(gguf_writer *w, const char *key, uint32_t type, const char *const *strs,
                           uint64_t n)
{
    if (!valid_name(key) || !strcmp(key, "general.alignment")) return PSI_ERR_INVALID_ARG;
    wkv *kv = writer_slot(w, key);
    if (!kv) return PSI_ERR_NO_MEMORY;
    kv->type = type;
    kv->arr_type = GGUF_STRING;
    kv->strs = mem_calloc((size_t)(n ? n : 1), sizeof(char *));
    if (!kv->strs) return PSI_ERR_NO_MEMORY;
    for (uint64_t i = 0; i < n; i++) {
        kv->strs[i] = mem_strndup(strs[i], strlen(strs[i]));
        if (!kv->strs[i]) return PSI_ERR_NO_MEMORY;
        kv->n = i + 1;
    }
    kv->n = n;
    return PSI_OK;
}

psi_status gguf_writer_set_str(gguf_writer *w, const char *key, const char *val)
{
    return set_strs(w, key, GGUF_STRING, &val, 1);
}

psi_status gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs,
                                   uint64_t n)
{
    return set_strs(w, key, GGUF_ARRAY, strs, n);
}

psi_status gguf_writer_copy_kv(gguf_writer *w, const gguf *g, uint64_t i)
{
    if (i >= g->n_kv) return PSI_ERR_INVALID_ARG;
    const gguf_kv *kv = &g->kv[i];
    char *key = mem_strndup(kv->key.ptr, (size_t)kv->key.len);
    if (!key) return PSI_ERR_NO_MEMORY;
    psi_status rc;
    if (kv->strs) {
        char **strs = mem_calloc((size_t)(kv->n ? kv->n : 1), sizeof(char *));
        rc = strs ? PSI_OK : PSI_ERR_NO_MEMORY;
        for (uint64_t j = 0; rc == PSI_OK && j < kv->n; j++)
            if (!(strs[j] = mem_strndup(kv->strs[j].ptr, (size_t)kv->strs[j].len))) rc = PSI_ERR_NO_MEMORY;
        if (rc == PSI_OK) rc = set_strs(w, key, kv->type, (const char *const *)strs, kv->n);
        for (uint64_t j = 0; strs && j < kv->n; j++) mem_free(strs[j]);
        mem_free(strs);
    } else if (kv->type == GGUF_ARRAY) {
        rc = set_fixed(w, key, GGUF_ARRAY, kv->arr_type, kv->data, kv->n, vtype_size[kv->arr_type]);
    } else {
        rc = set_fixed(w, key, kv->type, 0, kv->data, 1, vtype_size[kv->type]);
    }
    mem_free(key);
    return rc;
}

psi_status gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type,
                                  uint32_t n_dims, const uint64_t *ne, const void *data)
{
    if (n_dims == 0 || n_dims > GGUF_MAX_DIMS || !valid_name(name)) return PSI_ERR_INVALID_ARG;
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) return PSI_ERR_INVALID_ARG; /* names are unique */
    uint64_t nel = 1;
    for (uint32_t d = 0; d < n_dims; d++)
        if (ne[d] == 0 || u64_mul_ovf(nel, ne[d], &nel)) return PSI_ERR_INVALID_ARG;
    size_t row = type_row_size(type, (int64_t)ne[0]);
    if (!row) return PSI_ERR_INVALID_ARG;
    uint64_t nbytes;
    if (u64_mul_ovf(row, nel / ne[0], &nbytes)) return PSI_ERR_INVALID_ARG;
    if (!grow((void **)&w->t, &w->cap_t, w->n_t, sizeof(wtensor))) return PSI_ERR_NO_MEMORY;
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = mem_strndup(name, strlen(name));
    if (!t->name) return PSI_ERR_NO_MEMORY;
    t->type = type;
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->nbytes = nbytes;
    t->data = data;
    w->n_t++;
    return PSI_OK;
}

typedef struct wout {
    FILE *f;
    bool ok;
    uint64_t pos; /* bytes written (devices and pipes have no file position) */
} wout;

static void w_raw(wout *o, const void *p, size_t n)
{
    if (o->ok && n && fwrite(p, 1, n, o->f) != n) o->ok = false;
    o->pos += n;
}
static void w_u32(wout *o, uint32_t v) { w_raw(o, &v, 4); }
static void w_u64(wout *o, uint64_t v) { w_raw(o, &v, 8); }
static void w_str(wout *o, const char *s)
{
    uint64_t n = strlen(s);
    w_u64(o, n);
    w_raw(o, s, (size_t)n);
}
static void w_pad(wout *o, uint64_t pos, uint64_t align)
{
    static const uint8_t zeros[64];
    uint64_t pad = (align - pos % align) % align;
    while (pad) {
        size_t k = pad < sizeof zeros ? (size_t)pad : sizeof zeros;
        w_raw(o, zeros, k);
        pad -= k;
    }
}

/* A regular file is written to PATH.tmp and renamed over PATH, so that it is
 * whole or absent. Anything else that exists at PATH (/dev/null, a pipe) is
 * written in place: renaming over a device node would replace it (a
 * directory fails to open). */
psi_status gguf_writer_write(gguf_writer *w, const char *path, char *err, size_t err_size)
{
    struct stat st;
    const bool in_place = stat(path, &st) == 0 && !S_ISREG(st.st_mode);
    size_t plen = strlen(path);
    char *tmp = mem_alloc(plen + 5);
    if (!tmp) return PSI_ERR_NO_MEMORY;
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    const char *dest = in_place ? path : tmp;
    wout o = {fopen(dest, "wb"), true, 0};
    if (!o.f) {
        err_setf(err, err_size, "%s: cannot create: %s", dest, strerror(errno));
        mem_free(tmp);
        return PSI_ERR_IO;
    }
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, "general.alignment")) w->alignment = rd_u32(w->kv[i].data);
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        w->t[i].offset = off;
        off += w->t[i].nbytes;
        off += (w->alignment - off % w->alignment) % w->alignment;
    }
    w_u32(&o, GGUF_MAGIC);
    w_u32(&o, 3);
    w_u64(&o, w->n_t);
    w_u64(&o, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        const wkv *kv = &w->kv[i];
        w_str(&o, kv->key);
        w_u32(&o, kv->type);
        if (kv->type == GGUF_ARRAY) {
            w_u32(&o, kv->arr_type);
            w_u64(&o, kv->n);
        }
        if (kv->strs)
            for (uint64_t j = 0; j < kv->n; j++) w_str(&o, kv->strs[j]);
        else
            w_raw(&o, kv->data, kv->data_size);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        w_str(&o, t->name);
        w_u32(&o, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) w_u64(&o, t->ne[d]);
        w_u32(&o, t->type);
        w_u64(&o, t->offset);
    }
    if (w->n_t) w_pad(&o, o.pos, w->alignment);
    for (size_t i = 0; i < w->n_t; i++) {
        w_raw(&o, w->t[i].data, (size_t)w->t[i].nbytes);
        if (i + 1 < w->n_t) w_pad(&o, w->t[i].nbytes, w->alignment);
    }
    if (o.ok && fflush(o.f) != 0) o.ok = false;
    if (o.ok && !in_place && fsync(fileno(o.f)) != 0) o.ok = false;
    int saved = errno;
    if (fclose(o.f) != 0) o.ok = false;
    if (!o.ok || (!in_place && rename(tmp, path) != 0)) {
        err_setf(err, err_size, "%s: write failed: %s", path, strerror(o.ok ? errno : saved));
        if (!in_place) unlink(tmp);
        mem_free(tmp);
        return PSI_ERR_IO;
    }
    mem_free(tmp);
    return PSI_OK;
}
