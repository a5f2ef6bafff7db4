/*
 * test_gguf_split.c — split GGUF sets (llama.cpp gguf-split layout) opened as
 * one file: tensors of every part, metadata of part 1; hand-made broken sets
 * (missing part, wrong split.no, tensor count, a tensor in two parts, a name
 * without the -00001-of-0000n suffix) are clear errors.
 */
#include <string.h>
#include <unistd.h>

#include "gguf.h"

#include "testutil.h"

static float w[4][8];

/* part k (1-based) of n holding tensors named names[0..n_names) */
static void write_part(const char *dir, const char *stem, int k, int n, uint16_t no, int32_t total,
                       const char *const *names, int n_names)
{
    char path[4096], err[256];
    snprintf(path, sizeof path, "%s/%s-%05d-of-%05d.gguf", dir, stem, k, n);
    uint16_t cnt = (uint16_t)n;
    gguf_writer *g = gguf_writer_new();
    CHECK(gguf_writer_set_u32(g, "split.no", no) == PSI_OK);
    CHECK(gguf_writer_set_u32(g, "split.count", cnt) == PSI_OK);
    CHECK(gguf_writer_set_i32(g, "split.tensors.count", total) == PSI_OK);
    if (k == 1) CHECK(gguf_writer_set_str(g, "general.architecture", "llama") == PSI_OK);
    uint64_t ne[1] = {8};
    for (int i = 0; i < n_names; i++)
        CHECK(gguf_writer_add_tensor(g, names[i], PSI_TYPE_F32, 1, ne, w[i % 4]) == PSI_OK);
    CHECK(gguf_writer_write(g, path, err, sizeof err) == PSI_OK);
    gguf_writer_free(g);
}

static psi_status open_set(const char *dir, const char *stem, int n, gguf **g, char *err, size_t en)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s-00001-of-%05d.gguf", dir, stem, n);
    return gguf_open(path, g, err, en);
}

int main(void)
{
    const char *dir = tu_tmpdir("gguf_split");
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 8; j++) w[i][j] = (float)(i * 10 + j);
    static const char *const a[] = {"t0", "t1"}, *const b[] = {"t2"}, *const c[] = {"t3"};
    char err[512];
    gguf *g = NULL;

    /* a good set of three */
    write_part(dir, "good", 1, 3, 0, 4, a, 2);
    write_part(dir, "good", 2, 3, 1, 4, b, 1);
    write_part(dir, "good", 3, 3, 2, 4, c, 1);
    CHECKF(open_set(dir, "good", 3, &g, err, sizeof err) == PSI_OK, "%s", err);
    if (g) {
        CHECK(g->n_tensors == 4 && g->n_parts == 2);
        int64_t t3 = gguf_find_tensor(g, "t3");
        /* t3 is the first tensor of part 3: w[0]; t1 the second of part 1: w[1] */
        int64_t t1 = gguf_find_tensor(g, "t1");
        CHECK(t3 >= 0 && ((const float *)g->tensors[t3].data)[7] == 7.0f);
        CHECK(t1 >= 0 && ((const float *)g->tensors[t1].data)[7] == 17.0f);
        CHECK(gguf_find_key(g, "general.architecture") >= 0);
        /* read into memory (use_mmap = false): every part, the same bytes at the same addresses */
        bool own = false;
        CHECKF(gguf_read_in(g, &own, err, sizeof err) == PSI_OK && own, "%s", err);
        CHECK(t3 >= 0 && ((const float *)g->tensors[t3].data)[7] == 7.0f);
        CHECK(t1 >= 0 && ((const float *)g->tensors[t1].data)[7] == 17.0f);
        gguf_read_only(g);
        CHECK(t1 >= 0 && ((const float *)g->tensors[t1].data)[6] == 16.0f);
    }
    gguf_close(g);
    g = NULL;
    /* a part rewritten (another size) or replaced (another file) between the open and the read */
    for (int how = 0; how < 2; how++) {
        CHECKF(open_set(dir, "good", 3, &g, err, sizeof err) == PSI_OK, "%s", err);
        if (!g) break;
        char p3[4096], tmp[4096];
        snprintf(p3, sizeof p3, "%s/good-00003-of-00003.gguf", dir);
        snprintf(tmp, sizeof tmp, "%s/other-00003-of-00003.gguf", dir);
        if (how == 0) {
            write_part(dir, "good", 3, 3, 2, 4, c, 0); /* no tensor: shorter */
        } else {
            write_part(dir, "other", 3, 3, 2, 4, c, 1); /* the same bytes, another inode */
            CHECK(rename(tmp, p3) == 0);
        }
        bool own = true;
        CHECK(gguf_read_in(g, &own, err, sizeof err) == PSI_ERR_IO && !own &&
              strstr(err, "changed while it was loading"));
        gguf_close(g);
        g = NULL;
        write_part(dir, "good", 3, 3, 2, 4, c, 1);
    }
    /* part 2 alone opens as itself */
    char p2[4096];
    snprintf(p2, sizeof p2, "%s/good-00002-of-00003.gguf", dir);
    CHECK(gguf_open(p2, &g, err, sizeof err) == PSI_OK && g && g->n_tensors == 1 && g->n_parts == 0);
    gguf_close(g);
    g = NULL;

    /* broken sets */
    write_part(dir, "miss", 1, 3, 0, 4, a, 2);
    write_part(dir, "miss", 2, 3, 1, 4, b, 1);
    CHECK(open_set(dir, "miss", 3, &g, err, sizeof err) == PSI_ERR_IO && !g && strstr(err, "miss-00003-of-00003.gguf"));
    write_part(dir, "no", 1, 2, 0, 3, a, 2);
    write_part(dir, "no", 2, 2, 5, 3, b, 1);
    CHECK(open_set(dir, "no", 2, &g, err, sizeof err) == PSI_ERR_FORMAT && !g && strstr(err, "split.no"));
    write_part(dir, "cnt", 1, 2, 0, 9, a, 2);
    write_part(dir, "cnt", 2, 2, 1, 9, b, 1);
    CHECK(open_set(dir, "cnt", 2, &g, err, sizeof err) == PSI_ERR_FORMAT && !g && strstr(err, "split.tensors.count"));
    write_part(dir, "dup", 1, 2, 0, 3, a, 2);
    write_part(dir, "dup", 2, 2, 1, 3, a, 1);
    CHECK(open_set(dir, "dup", 2, &g, err, sizeof err) == PSI_ERR_FORMAT && !g && strstr(err, "two parts"));
    /* split.count 2 on a file whose name has no -00001-of-00002 suffix */
    write_part(dir, "name", 1, 2, 0, 2, a, 2);
    char from[4096], to[4096];
    snprintf(from, sizeof from, "%s/name-00001-of-00002.gguf", dir);
    snprintf(to, sizeof to, "%s/renamed.gguf", dir);
    CHECK(rename(from, to) == 0);
    CHECK(gguf_open(to, &g, err, sizeof err) == PSI_ERR_FORMAT && !g && strstr(err, "does not end in"));
    return tu_finish("test_gguf_split");
}
