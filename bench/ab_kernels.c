/*
 * ab_kernels — two builds of the AVX2 kernel file (src/kernels/x86_avx2.c,
 * e.g. HEAD's and the working tree's) side by side in one process: one
 * weight type's repacked tile (repack8 + gemm8) on the same random
 * matrix and activations, in alternating rounds of about 20 ms (A B, then
 * B A), so that the machine's slow and fast minutes fall on both alike.
 * Prints each side's median GMAC/s and the median and quartiles of the
 * rounds' B/A speed ratios, after checking that both give the same
 * results bit for bit. One thread. bench/ab_kernels.sh builds the two
 * sides (shared objects with kernels_fill_avx2) and runs this.
 *
 *   ab_kernels A.so B.so TYPE [n] [rows] [tokens] [rounds]
 *   (defaults 2048 256 8 41)
 *
 * Code placement alone moves a tight loop by several percent, so run a
 * side against itself first: its B/A range is the noise floor.
 */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kernels/kernels.h"
#include "types.h"
#include "bench_common.h"

typedef void (*fill_fn)(kernels *k);

typedef struct side {
    const kern_type *k;
    uint8_t *w;   /* the matrix, repacked */
    uint8_t *act; /* the activations in the tile's layout */
    size_t act_row;
    float *out;
} side;

static void run(const side *s, int64_t n, int64_t rows, size_t row_size, int ny)
{
    for (int64_t r = 0; r < rows; r += 8)
        s->k->gemm8(n, s->w + (size_t)r * row_size, s->act, s->act_row, ny, s->out + r, rows);
}

/* One side: its table from path's kernels_fill_avx2, the matrix q
 * repacked and the activations x converted by its own functions. */
static int side_init(side *s, kernels *tab, const char *path, uint32_t type, int64_t n, int64_t rows,
                     size_t row_size, const uint8_t *q, const float *x, int ny)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    fill_fn fill = h ? (fill_fn)dlsym(h, "kernels_fill_avx2") : NULL;
    if (!fill) {
        fprintf(stderr, "ab_kernels: %s: %s\n", path, dlerror());
        return -1;
    }
    memset(tab, 0, sizeof *tab);
    fill(tab);
    s->k = &tab->t[type];
    if (!s->k->repack8 || !s->k->gemm8) {
        fprintf(stderr, "ab_kernels: %s has no repacked tile for %s\n", path, type_get(type)->name);
        return -1;
    }
    const uint32_t vdt = type_get(type)->vec_dot_type;
    const type_traits *vt = type_get(vdt);
    s->act_row = s->k->x8_from_float ? s->k->x8_act_row(n) : type_row_size(vdt, n);
    s->w = aligned_alloc(64, (row_size * (size_t)rows + 63) / 64 * 64);
    s->act = malloc(s->act_row * (size_t)ny);
    s->out = malloc(sizeof(float) * (size_t)rows * (size_t)ny);
    if (!s->w || !s->act || !s->out) {
        fprintf(stderr, "ab_kernels: out of memory\n");
        return -1;
    }
    for (int64_t r = 0; r < rows; r += 8)
        s->k->repack8(n, q + (size_t)r * row_size, row_size, s->w + (size_t)r * row_size);
    for (int t = 0; t < ny; t++)
        (s->k->x8_from_float ? s->k->x8_from_float : vt->from_float)(x + (size_t)t * n,
                                                                     s->act + (size_t)t * s->act_row, n);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: ab_kernels A.so B.so TYPE [n] [rows] [tokens] [rounds]\n");
        return 2;
    }
    int64_t n = argc > 4 ? atoll(argv[4]) : 2048, rows = argc > 5 ? atoll(argv[5]) : 256;
    int ny = argc > 6 ? atoi(argv[6]) : 8, rounds = argc > 7 ? atoi(argv[7]) : 41;
    static const uint32_t types[] = {PSI_TYPE_Q8_0, PSI_TYPE_Q4_0, PSI_TYPE_Q4_1, PSI_TYPE_Q5_0,
                                     PSI_TYPE_Q5_1, PSI_TYPE_Q4_K, PSI_TYPE_Q5_K, PSI_TYPE_Q6_K};
    uint32_t type = UINT32_MAX;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcasecmp(type_get(types[i])->name, argv[3])) type = types[i];
    if (type == UINT32_MAX || n <= 0 || n % 256 || rows <= 0 || rows % 8 || ny < 1 || ny > KERN_NY ||
        rounds < 3) {
        fprintf(stderr,
                "ab_kernels: TYPE one of Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K, n a positive multiple of "
                "256, rows of 8, "
                "tokens 1-%d, rounds >= 3\n",
                KERN_NY);
        return 2;
    }
    const type_traits *tt = type_get(type);
    size_t row_size = type_row_size(type, n);
    uint8_t *q = malloc(row_size * (size_t)rows);
    float *x = malloc(sizeof(float) * (size_t)n * (size_t)ny); /* a row at a time, then the tokens */
    if (!q || !x || !tt->from_float) {
        fprintf(stderr, "ab_kernels: out of memory or no quantizer for %s\n", tt->name);
        return 1;
    }
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < n; i++)
            x[i] = frand();
        tt->from_float(x, q + (size_t)r * row_size, n);
    }
    for (int64_t i = 0; i < n * ny; i++)
        x[i] = frand();
    static kernels ta, tb;
    side a, b;
    if (side_init(&a, &ta, argv[1], type, n, rows, row_size, q, x, ny) ||
        side_init(&b, &tb, argv[2], type, n, rows, row_size, q, x, ny))
        return 1;
    run(&a, n, rows, row_size, ny);
    run(&b, n, rows, row_size, ny);
    bool same = !memcmp(a.out, b.out, sizeof(float) * (size_t)rows * (size_t)ny);
    double t0 = now_s();
    run(&a, n, rows, row_size, ny);
    int reps = (int)(0.02 / (now_s() - t0 + 1e-9)) + 1; /* about 20 ms a side a round */
    double *ta_s = malloc(sizeof(double) * (size_t)rounds), *tb_s = malloc(sizeof(double) * (size_t)rounds);
    double *ratio = malloc(sizeof(double) * (size_t)rounds);
    if (!ta_s || !tb_s || !ratio) return 1;
    for (int k = 0; k < rounds; k++) {
        const side *first = k % 2 ? &b : &a, *second = k % 2 ? &a : &b;
        double t1 = now_s();
        for (int i = 0; i < reps; i++)
            run(first, n, rows, row_size, ny);
        double t2 = now_s();
        for (int i = 0; i < reps; i++)
            run(second, n, rows, row_size, ny);
        double t3 = now_s();
        ta_s[k] = k % 2 ? t3 - t2 : t2 - t1;
        tb_s[k] = k % 2 ? t2 - t1 : t3 - t2;
        ratio[k] = ta_s[k] / tb_s[k];
    }
    qsort(ta_s, (size_t)rounds, sizeof(double), cmp_double);
    qsort(tb_s, (size_t)rounds, sizeof(double), cmp_double);
    qsort(ratio, (size_t)rounds, sizeof(double), cmp_double);
    double macs = (double)n * (double)rows * ny * reps * 1e-9;
    printf("%s n %lld, rows %lld, %d token(s), %d rounds: A %.1f, B %.1f GMAC/s (medians); "
           "B/A %.3f (quartiles %.3f-%.3f); results %s\n",
           tt->name, (long long)n, (long long)rows, ny, rounds, macs / ta_s[rounds / 2],
           macs / tb_s[rounds / 2], ratio[rounds / 2], ratio[rounds / 4], ratio[3 * rounds / 4],
           same ? "bit for bit equal" : "DIFFER between A and B");
    return same ? 0 : 1;
}
