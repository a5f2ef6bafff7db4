/*
 * test_gguf_fuzz.c — a deterministic mutation fuzzer for the GGUF reader that
 * runs in seconds inside the normal test suite (the libFuzzer target in fuzz/
 * is the long-running, coverage-guided one).
 *
 * Seeds: the header region of the stories260K fixture and a small GGUF built
 * here. Each round applies 1-4 mutations (bit flips, bytes set to 0/0xFF/
 * random, u32/u64 header fields set to edge values, truncation, inserted and
 * deleted bytes) with a fixed seed, calls gguf_parse and, when it succeeds,
 * gguf_print to /dev/null. It passes when nothing crashes (run it under
 * ASan+UBSan), every rejection carries a one-line message, and every accepted
 * file keeps its promises (tensor data and strings inside the buffer, data
 * aligned). It prints how many mutants parsed and how many were rejected.
 * PSI_FUZZ_ITERS overrides the number of rounds per seed.
 */
#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "gguf.h"
#include "testutil.h"
#include "types.h"

#define MAGIC 0x46554747u

/* ------------------------------------------------------------ rng (splitmix64) */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static size_t rng_below(uint64_t *s, size_t n)
{
    return n ? (size_t)(rng_next(s) % n) : 0;
}

/* ------------------------------------------------------------ a small seed file */

/* Every value type once, a string array, and three tensors (F32, F16, Q8_0). */
static void build_small(tu_buf *b)
{
    tu_put_u32(b, MAGIC);
    tu_put_u32(b, 3);
    tu_put_u64(b, 3);  /* tensors */
    tu_put_u64(b, 15); /* kvs */
    tu_put_gguf_key(b, "general.architecture", GGUF_STRING);
    tu_put_gguf_str(b, "llama");
    tu_put_gguf_key(b, "general.alignment", GGUF_U32);
    tu_put_u32(b, 32);
    tu_put_gguf_key(b, "k.u8", GGUF_U8);
    tu_put_u8(b, 200);
    tu_put_gguf_key(b, "k.i8", GGUF_I8);
    tu_put_u8(b, 0x80);
    tu_put_gguf_key(b, "k.u16", GGUF_U16);
    tu_put_u16(b, 65535);
    tu_put_gguf_key(b, "k.i16", GGUF_I16);
    tu_put_u16(b, 0x8000);
    tu_put_gguf_key(b, "k.u32", GGUF_U32);
    tu_put_u32(b, 123456);
    tu_put_gguf_key(b, "k.i32", GGUF_I32);
    tu_put_u32(b, 0xFFFFFFFFu);
    tu_put_gguf_key(b, "k.f32", GGUF_F32);
    tu_put_u32(b, 0x3f800000u); /* 1.0f */
    tu_put_gguf_key(b, "k.bool", GGUF_BOOL);
    tu_put_u8(b, 1);
    tu_put_gguf_key(b, "k.u64", GGUF_U64);
    tu_put_u64(b, UINT64_MAX);
    tu_put_gguf_key(b, "k.i64", GGUF_I64);
    tu_put_u64(b, (uint64_t)INT64_MIN);
    tu_put_gguf_key(b, "k.f64", GGUF_F64);
    tu_put_u64(b, 0x3ff8000000000000ull); /* 1.5 */
    tu_put_gguf_key(b, "tokenizer.ggml.tokens", GGUF_ARRAY);
    tu_put_u32(b, GGUF_STRING);
    tu_put_u64(b, 5);
    tu_put_gguf_str(b, "<unk>");
    tu_put_gguf_str(b, "<s>");
    tu_put_gguf_str(b, "</s>");
    tu_put_gguf_str(b, "\xe2\x96\x81the");
    tu_put_gguf_str(b, "");
    tu_put_gguf_key(b, "tokenizer.ggml.scores", GGUF_ARRAY);
    tu_put_u32(b, GGUF_F32);
    tu_put_u64(b, 5);
    for (int i = 0; i < 5; i++)
        tu_put_u32(b, 0xbf800000u); /* -1.0f */
    static const uint64_t ne_a[2] = {4, 3}, ne_b[1] = {8}, ne_c[2] = {32, 2};
    tu_put_gguf_tinfo(b, "token_embd.weight", 2, ne_a, PSI_TYPE_F32, 0);   /* 48 bytes */
    tu_put_gguf_tinfo(b, "output_norm.weight", 1, ne_b, PSI_TYPE_F16, 64); /* 16 bytes */
    tu_put_gguf_tinfo(b, "output.weight", 2, ne_c, PSI_TYPE_Q8_0, 96);     /* 68 bytes */
    tu_put_pad(b, 32);
    for (int i = 0; i < 96 + 68; i++)
        tu_put_u8(b, (uint8_t)(i * 37));
}

/* ------------------------------------------------------------ field map */

/* Positions of the u32/u64 fields of a parsed file, where edge values are
 * most likely to reach a check. */
typedef struct field {
    size_t pos;
    int width;
} field;

typedef struct fields {
    field *f;
    size_t n, cap;
} fields;

static void add_field(fields *fs, size_t pos, int width)
{
    if (fs->n == fs->cap) {
        fs->cap = fs->cap ? fs->cap * 2 : 64;
        fs->f = realloc(fs->f, fs->cap * sizeof(field));
        if (!fs->f) exit(2);
    }
    fs->f[fs->n].pos = pos;
    fs->f[fs->n].width = width;
    fs->n++;
}

static void map_fields(const gguf *g, fields *fs)
{
    add_field(fs, 0, 4);
    add_field(fs, 4, 4);
    add_field(fs, 8, 8);
    add_field(fs, 16, 8);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const gguf_kv *kv = &g->kv[i];
        size_t key = (size_t)((const uint8_t *)kv->key.ptr - g->base);
        size_t type = key + (size_t)kv->key.len;
        add_field(fs, key - 8, 8);
        add_field(fs, type, 4);
        if (kv->type == GGUF_ARRAY) {
            add_field(fs, type + 4, 4);
            add_field(fs, type + 8, 8);
        }
        if (kv->strs) /* string lengths: a few of them is enough */
            for (uint64_t j = 0; j < kv->n && j < 16; j++)
                add_field(fs, (size_t)((const uint8_t *)kv->strs[j].ptr - g->base) - 8, 8);
        if (kv->type == GGUF_U32 || kv->type == GGUF_I32) add_field(fs, (size_t)(kv->data - g->base), 4);
        if (kv->type == GGUF_U64 || kv->type == GGUF_I64) add_field(fs, (size_t)(kv->data - g->base), 8);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        size_t name = (size_t)((const uint8_t *)t->name.ptr - g->base);
        size_t p = name + (size_t)t->name.len;
        add_field(fs, name - 8, 8);
        add_field(fs, p, 4);
        for (uint32_t d = 0; d < t->n_dims; d++)
            add_field(fs, p + 4 + 8 * d, 8);
        add_field(fs, p + 4 + 8 * t->n_dims, 4);
        add_field(fs, p + 8 + 8 * t->n_dims, 8);
    }
}

/* ------------------------------------------------------------ mutation */

typedef struct seed {
    const char *name;
    const uint8_t *bytes;
    size_t size; /* whole file */
    size_t hdr;  /* mutated prefix: header, kvs, tensor infos, a little data */
    fields fs;
} seed;

static const uint64_t edge64[] = {
    0,
    1,
    2,
    3,
    4,
    5,
    7,
    8,
    31,
    32,
    33,
    0x7F,
    0xFF,
    0x100,
    0xFFFF,
    0x10000,
    0x7FFFFFFF,
    0x80000000u,
    0xFFFFFFFFu,
    0x100000000ull,
    0x7FFFFFFFFFFFFFFFull,
    0x8000000000000000ull,
    0xFFFFFFFFFFFFFFFFull,
    0xFFFFFFFFFFFFFFE0ull,
    0x4000000000000000ull,
    0x2000000000000000ull,
    0x0100000000000000ull,
    1ull << 40,
};
static const uint32_t edge32[] = {
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,          10,          11,          12,
    13, 14, 15, 16, 29, 30, 31, 39, 64, 0x7FFFFFFF, 0x80000000u, 0xFFFFFFFFu, 0x46554747u,
};

static void wr_le(uint8_t *p, uint64_t v, int width)
{
    for (int i = 0; i < width; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* One mutation of h[0..*len) (capacity cap). Returns false when it truncated. */
static bool mutate(uint64_t *rng, const seed *s, uint8_t *h, size_t *len, size_t cap)
{
    size_t n = *len;
    switch (rng_below(rng, 10)) {
    case 0: /* bit flip */
        if (n) h[rng_below(rng, n)] ^= (uint8_t)(1u << rng_below(rng, 8));
        break;
    case 1: { /* byte set */
        static const uint8_t vals[] = {0, 0xFF, 0x7F, 0x80, 1};
        if (n)
            h[rng_below(rng, n)] =
                rng_below(rng, 2) ? vals[rng_below(rng, sizeof vals)] : (uint8_t)rng_next(rng);
        break;
    }
    case 2:
    case 3:
    case 4: { /* a known field set to an edge value (or random, or +-1) */
        const field *f = &s->fs.f[rng_below(rng, s->fs.n)];
        if (f->pos + (size_t)f->width > n) break;
        uint64_t v;
        size_t pick = rng_below(rng, 8);
        if (pick == 0) {
            v = rng_next(rng);
        } else if (pick == 1) { /* nudge the current value */
            uint64_t cur = 0;
            for (int i = 0; i < f->width; i++)
                cur |= (uint64_t)h[f->pos + (size_t)i] << (8 * i);
            v = cur + (rng_below(rng, 2) ? 1 : (uint64_t)-1);
        } else if (f->width == 4) {
            v = edge32[rng_below(rng, sizeof edge32 / sizeof edge32[0])];
        } else {
            v = edge64[rng_below(rng, sizeof edge64 / sizeof edge64[0])];
        }
        wr_le(h + f->pos, v, f->width);
        break;
    }
    case 5: { /* random position, random width, edge value */
        int width = rng_below(rng, 2) ? 8 : 4;
        if (n < (size_t)width) break;
        size_t pos = rng_below(rng, n - (size_t)width + 1);
        wr_le(h + pos,
              width == 8 ? edge64[rng_below(rng, sizeof edge64 / sizeof edge64[0])]
                         : edge32[rng_below(rng, sizeof edge32 / sizeof edge32[0])],
              width);
        break;
    }
    case 6: /* truncation */ *len = rng_below(rng, n + 1); return false;
    case 7: { /* insert 1-16 bytes */
        size_t k = 1 + rng_below(rng, 16);
        if (n + k > cap) break;
        size_t pos = rng_below(rng, n + 1);
        memmove(h + pos + k, h + pos, n - pos);
        for (size_t i = 0; i < k; i++)
            h[pos + i] = rng_below(rng, 2) ? 0 : (uint8_t)rng_next(rng);
        *len = n + k;
        break;
    }
    case 8: { /* delete 1-16 bytes */
        size_t k = 1 + rng_below(rng, 16);
        if (k > n) break;
        size_t pos = rng_below(rng, n - k + 1);
        memmove(h + pos, h + pos + k, n - pos - k);
        *len = n - k;
        break;
    }
    default: { /* copy a chunk over another place (duplicated keys, names) */
        if (n < 2) break;
        size_t k = 1 + rng_below(rng, n < 64 ? n - 1 : 64);
        size_t from = rng_below(rng, n - k + 1), to = rng_below(rng, n - k + 1);
        memmove(h + to, h + from, k);
        break;
    }
    }
    return true;
}

/* ------------------------------------------------------------ oracle */

static bool inside(const gguf *g, const void *p, uint64_t n)
{
    const uint8_t *q = p;
    return q >= g->base && (uint64_t)(q - g->base) <= g->size && n <= g->size - (uint64_t)(q - g->base);
}

/* What an accepted file promises its users. */
static void check_accepted(const gguf *g, const char *label, uint64_t iter)
{
    CHECKF(g->version == 2 || g->version == 3, "%s #%" PRIu64 ": version %u", label, iter, g->version);
    CHECKF(g->alignment && !(g->alignment & (g->alignment - 1)) && g->data_offset % g->alignment == 0,
           "%s #%" PRIu64 ": alignment %" PRIu64 ", data at %" PRIu64, label, iter, g->alignment,
           g->data_offset);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const gguf_kv *kv = &g->kv[i];
        CHECKF(kv->key.len && inside(g, kv->key.ptr, kv->key.len), "%s #%" PRIu64 ": key %" PRIu64, label,
               iter, i);
        CHECKF(kv->type < GGUF_VTYPE_COUNT, "%s #%" PRIu64 ": kv type", label, iter);
        if (kv->strs)
            for (uint64_t j = 0; j < kv->n; j++)
                if (!inside(g, kv->strs[j].ptr, kv->strs[j].len)) {
                    CHECKF(0, "%s #%" PRIu64 ": string %" PRIu64 " of kv %" PRIu64 " outside", label, iter, j,
                           i);
                    break;
                }
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        CHECKF(t->n_dims >= 1 && t->n_dims <= GGUF_MAX_DIMS, "%s #%" PRIu64 ": n_dims", label, iter);
        CHECKF(inside(g, t->name.ptr, t->name.len), "%s #%" PRIu64 ": name", label, iter);
        CHECKF(inside(g, t->data, t->nbytes) &&
                   (uint64_t)((const uint8_t *)t->data - g->base) >= g->data_offset,
               "%s #%" PRIu64 ": tensor %" PRIu64 " data outside the file", label, iter, i);
        CHECKF(((uint64_t)((const uint8_t *)t->data - g->base) - g->data_offset) % g->alignment == 0,
               "%s #%" PRIu64 ": tensor %" PRIu64 " unaligned", label, iter, i);
        const type_traits *tt = type_get(t->type);
        CHECKF(tt != NULL, "%s #%" PRIu64 ": tensor type %u", label, iter, t->type);
        size_t row = tt ? type_row_size(t->type, (int64_t)t->ne[0]) : 0;
        uint64_t want = (uint64_t)row * (t->ne[1] * t->ne[2] * t->ne[3]);
        CHECKF(row && want == t->nbytes, "%s #%" PRIu64 ": tensor %" PRIu64 " nbytes %" PRIu64, label, iter,
               i, t->nbytes);
    }
}

/* ------------------------------------------------------------ the loop */

typedef struct tally {
    uint64_t ok, rejected, nomem;
} tally;

static void fuzz_seed(seed *s, uint64_t iters, uint64_t rng, FILE *devnull, tally *tl)
{
    /* The tail (tensor data past s->hdr) is never mutated and the parser
     * never reads it, so it stays in place at the end of one allocation and
     * each mutant's header is copied just before it: the buffer still ends
     * exactly at the allocation's end, where ASan's redzone starts. */
    size_t tail = s->size - s->hdr, slack = 16 * 4;
    size_t hcap = s->hdr + slack, cap = hcap + tail;
    uint8_t *arena = malloc(cap);
    uint8_t *h = malloc(hcap);
    if (!arena || !h) exit(2);
    memcpy(arena + hcap, s->bytes + s->hdr, tail);
    tally before = *tl;
    for (uint64_t it = 0; it < iters; it++) {
        memcpy(h, s->bytes, s->hdr);
        size_t len = s->hdr;
        bool whole = true;
        size_t nmut = 1 + rng_below(&rng, 4);
        for (size_t m = 0; m < nmut && whole; m++)
            whole = mutate(&rng, s, h, &len, hcap);
        const uint8_t *data;
        size_t size;
        uint8_t *exact = NULL;
        if (whole) { /* header + untouched tail */
            uint8_t *start = arena + hcap - len;
            memcpy(start, h, len);
            data = start;
            size = len + tail;
        } else { /* truncated: an exact-size copy */
            exact = malloc(len ? len : 1);
            if (!exact) exit(2);
            if (len) memcpy(exact, h, len);
            data = exact;
            size = len;
        }
        gguf *g = NULL;
        char err[512] = "";
        psi_status rc = gguf_parse(data, size, s->name, &g, err, sizeof err);
        if (rc == PSI_OK) {
            tl->ok++;
            check_accepted(g, s->name, it);
            gguf_print(g, devnull, 1 + (int)(it % 16));
            gguf_close(g);
        } else {
            if (rc == PSI_ERR_NO_MEMORY)
                tl->nomem++;
            else
                tl->rejected++;
            CHECKF(rc == PSI_ERR_FORMAT || rc == PSI_ERR_NO_MEMORY, "%s #%" PRIu64 ": status %d", s->name, it,
                   rc);
            CHECKF(g == NULL, "%s #%" PRIu64 ": *out set on failure", s->name, it);
            CHECKF(err[0] && !strchr(err, '\n'), "%s #%" PRIu64 ": message [%s]", s->name, it, err);
        }
        free(exact);
    }
    printf("%-12s %6" PRIu64 " mutants: %6" PRIu64 " parsed, %6" PRIu64 " rejected, %" PRIu64
           " out of memory\n",
           s->name, iters, tl->ok - before.ok, tl->rejected - before.rejected, tl->nomem - before.nomem);
    free(arena);
    free(h);
}

/* Parses the pristine seed (it must be valid) and maps its fields. */
static bool prepare(seed *s)
{
    gguf *g = NULL;
    char err[512] = "";
    psi_status rc = gguf_parse(s->bytes, s->size, s->name, &g, err, sizeof err);
    CHECKF(rc == PSI_OK, "seed %s: %s", s->name, err);
    if (rc != PSI_OK) return false;
    map_fields(g, &s->fs);
    /* Mutate the header and the first bytes of the data section. */
    s->hdr = (size_t)g->data_offset + 64 < s->size ? (size_t)g->data_offset + 64 : s->size;
    gguf_close(g);
    return true;
}

int main(void)
{
    uint64_t iters = 25000; /* per seed: about 3 s under ASan */
    const char *e = getenv("PSI_FUZZ_ITERS");
    if (e && *e) iters = strtoull(e, NULL, 10);
    FILE *devnull = fopen("/dev/null", "w");
    CHECK(devnull != NULL);
    if (!devnull) return tu_finish("test_gguf_fuzz");
    tally tl = {0};

    tu_buf small = {0};
    build_small(&small);
    seed s1 = {.name = "small", .bytes = small.p, .size = small.len};
    if (prepare(&s1)) fuzz_seed(&s1, iters, 0x5eed0001u, devnull, &tl);

    size_t n = 0;
    char *stories = tu_read_file(tu_data("models/stories260K.gguf"), &n);
    CHECKF(stories != NULL, "cannot read %s", tu_data("models/stories260K.gguf"));
    if (stories) {
        seed s2 = {.name = "stories260K", .bytes = (const uint8_t *)stories, .size = n};
        if (prepare(&s2)) fuzz_seed(&s2, iters, 0x5eed0002u, devnull, &tl);
        free(s2.fs.f);
    }
    printf("total: %" PRIu64 " parsed, %" PRIu64 " rejected, %" PRIu64 " out of memory\n", tl.ok, tl.rejected,
           tl.nomem);
    free(stories);
    tu_buf_free(&small);
    free(s1.fs.f);
    fclose(devnull);
    return tu_finish("test_gguf_fuzz");
}
