/*
 * bench_kernels — single-thread throughput of the matrix-product kernels
 * psi uses, per weight type and instruction-set path: one weight matrix
 * (rows × n) times 1 token (decode: GB/s of weights) and times a batch of
 * tokens (prefill: multiply-adds per second), through the same tiles as
 * model_llama.c's matmul ("rows": vec_dot_ny row by row, "gemm": tile
 * kernels, "x8": matrices repacked in groups of 8 rows, "x16": two such groups at
 * a time, AMX). For tuning kernels; figures vary with the machine.
 *
 *   bench_kernels [n] [rows] [tokens] [TYPE,...]   (defaults 2048 2048 64, all types)
 */
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

/* out[t][r] for r < rows, t < nt, the way matmul_worker tiles it. */
/* The repacked path: groups of 8 rows through gemm8, or (pair) two groups
 * at a time through gemm16. */
static void product8(const kern_type *k, bool pair, int64_t n, const uint8_t *g, size_t row_size, int64_t rows,
                     const uint8_t *act, size_t act_row, int nt, float *out)
{
    const int max_ny = pair ? KERN_NY16 : KERN_NY;
    for (int t0 = 0; t0 < nt; t0 += max_ny) {
        int ny = nt - t0 < max_ny ? nt - t0 : max_ny;
        for (int64_t r = 0; r < rows; r += pair ? 16 : 8) {
            const uint8_t *x = g + (size_t)r * row_size, *y = act + (size_t)t0 * act_row;
            if (pair)
                k->gemm16(n, x, 8 * row_size, y, act_row, ny, out + (size_t)t0 * rows + r, rows);
            else
                k->gemm8(n, x, y, act_row, ny, out + (size_t)t0 * rows + r, rows);
        }
    }
}

static void product(const kern_type *k, bool use_gemm, int64_t n, const uint8_t *w, size_t row_size, int64_t rows, const uint8_t *act,
                    size_t act_row, int nt, float *out)
{
    if (nt == 1 && !use_gemm) { /* one token: vec_dot on plain activations, as the model does */
        for (int64_t r = 0; r < rows; r++) k->vec_dot(n, out + r, w + (size_t)r * row_size, act);
        return;
    }
    if (use_gemm && k->gemm) {
        for (int t0 = 0; t0 < nt; t0 += KERN_NY) {
            int ny = nt - t0 < KERN_NY ? nt - t0 : KERN_NY;
            for (int64_t r = 0; r < rows; r += KERN_MX) {
                int nx = rows - r < KERN_MX ? (int)(rows - r) : KERN_MX;
                k->gemm(n, w + (size_t)r * row_size, row_size, nx, act + (size_t)t0 * act_row, act_row, ny,
                        out + (size_t)t0 * rows + r, rows);
            }
        }
        return;
    }
    for (int t0 = 0; t0 < nt; t0 += KERN_NY) {
        int ny = nt - t0 < KERN_NY ? nt - t0 : KERN_NY;
        for (int64_t r = 0; r < rows; r++) {
            if (k->vec_dot_ny)
                k->vec_dot_ny(n, out + (size_t)t0 * rows + r, rows, w + (size_t)r * row_size,
                              act + (size_t)t0 * act_row, act_row, ny);
            else
                for (int t = 0; t < ny; t++)
                    k->vec_dot(n, out + (size_t)(t0 + t) * rows + r, w + (size_t)r * row_size,
                               act + (size_t)(t0 + t) * act_row);
        }
    }
}

/* The activations of nt tokens (asrc) in a kernel's own layout (ff, rowf),
 * or a copy of act when it has none; NULL when out of memory. */
static uint8_t *own_layout(from_float_fn ff, act_row_fn rowf, int64_t n, const float *asrc, int nt,
                           const uint8_t *act, size_t act_row, size_t *row)
{
    *row = ff ? rowf(n) : act_row;
    uint8_t *p = malloc(*row * (size_t)nt);
    for (int t = 0; p && t < nt; t++) {
        if (ff)
            ff(asrc + (size_t)t * n, p + (size_t)t * *row, n);
        else
            memcpy(p + (size_t)t * *row, act + (size_t)t * act_row, act_row);
    }
    return p;
}

/* Whether name is one of the comma-separated names in list (any case). */
static bool name_listed(const char *list, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == len && strncasecmp(p, name, len) == 0) return true;
        p += l + (e ? 1 : 0);
    }
    return false;
}

int main(int argc, char **argv)
{
    int64_t n = argc > 1 ? atoll(argv[1]) : 2048, rows = argc > 2 ? atoll(argv[2]) : 2048;
    int nt = argc > 3 ? atoi(argv[3]) : 64;
    if (n <= 0 || n % 256 || rows <= 0 || nt <= 0) {
        fprintf(stderr, "bench_kernels: n must be a positive multiple of 256, rows and tokens positive\n");
        return 1;
    }
    static const uint32_t types[] = {PSI_TYPE_F32,  PSI_TYPE_F16,  PSI_TYPE_BF16, PSI_TYPE_Q8_0,
                                     PSI_TYPE_Q4_0, PSI_TYPE_Q4_1, PSI_TYPE_Q5_0, PSI_TYPE_Q5_1,
                                     PSI_TYPE_Q4_K, PSI_TYPE_Q5_K, PSI_TYPE_Q6_K};
    float *src = malloc((size_t)n * rows * sizeof(float)), *asrc = malloc((size_t)n * nt * sizeof(float));
    float *out = malloc((size_t)rows * nt * sizeof(float));
    if (!src || !asrc || !out) return 1;
    for (int64_t i = 0; i < n * rows; i++) src[i] = frand();
    for (int64_t i = 0; i < n * nt; i++) asrc[i] = frand();
    printf("n %lld, rows %lld, batch %d tokens, 1 thread\n", (long long)n, (long long)rows, nt);
    printf("%-8s %-8s %-6s %12s %14s\n", "type", "path", "kernel", "decode GB/s", "batch GMAC/s");
    const char *only = argc > 4 ? argv[4] : NULL;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const type_traits *tt = type_get(types[ti]);
        if (only && !name_listed(only, tt->name)) continue;
        size_t row_size = type_row_size(types[ti], n);
        uint8_t *w = malloc(row_size * (size_t)rows);
        const type_traits *at = type_get(tt->vec_dot_type);
        size_t act_row = type_row_size(tt->vec_dot_type, n);
        uint8_t *act = malloc(act_row * (size_t)nt);
        for (int64_t r = 0; r < rows; r++) tt->from_float(src + r * n, w + (size_t)r * row_size, n);
        for (int t = 0; t < nt; t++) at->from_float(asrc + (size_t)t * n, act + (size_t)t * act_row, n);
        for (int lv = 0; lv < KERN_LEVELS; lv++) {
            const kernels *ks = kernels_for((kern_level)lv);
            if (!ks) continue;
            const kern_type *k = kernels_type(ks, types[ti]);
            if (!k->vec_dot) continue;
            size_t actn_row; /* vec_dot_ny's own layout for the batch, when it has one */
            uint8_t *actn = own_layout(k->ny_from_float, k->ny_act_row, n, asrc, nt, act, act_row, &actn_row);
            size_t actg_row; /* and gemm's */
            uint8_t *actg = own_layout(k->gemm_from_float, k->gemm_act_row, n, asrc, nt, act, act_row, &actg_row);
            if (!actn || !actg) return 1;
            for (int g = k->gemm ? 1 : 0; g >= 0; g--) {
                double best1 = 1e30, bestn = 1e30;
                for (int rep = 0; rep < 5; rep++) {
                    double t0 = now_s();
                    product(k, g, n, w, row_size, rows, g ? actg : act, g ? actg_row : act_row, 1, out);
                    double t1 = now_s();
                    product(k, g, n, w, row_size, rows, g ? actg : actn, g ? actg_row : actn_row, nt, out);
                    double t2 = now_s();
                    if (t1 - t0 < best1) best1 = t1 - t0;
                    if (t2 - t1 < bestn) bestn = t2 - t1;
                }
                printf("%-8s %-8s %-6s %12.1f %14.1f\n", tt->name, ks->name, g ? "gemm" : "rows",
                       (double)row_size * rows / best1 * 1e-9, (double)n * rows * nt / bestn * 1e-9);
            }
            free(actn);
            free(actg);
            if (k->repack8 && k->gemm8 && rows % 8 == 0) {
                uint8_t *g = malloc(row_size * (size_t)rows);
                if (!g) return 1;
                for (int64_t r = 0; r < rows; r += 8)
                    k->repack8(n, w + (size_t)r * row_size, row_size, g + (size_t)r * row_size);
                size_t act8_row;
                uint8_t *act8 = own_layout(k->x8_from_float, k->x8_act_row, n, asrc, nt, act, act_row, &act8_row);
                if (!act8) return 1;
                double best1 = 1e30, bestn = 1e30;
                for (int rep = 0; rep < 5; rep++) {
                    double t0 = now_s();
                    product8(k, false, n, g, row_size, rows, act8, act8_row, 1, out);
                    double t1 = now_s();
                    product8(k, false, n, g, row_size, rows, act8, act8_row, nt, out);
                    double t2 = now_s();
                    if (t1 - t0 < best1) best1 = t1 - t0;
                    if (t2 - t1 < bestn) bestn = t2 - t1;
                }
                printf("%-8s %-8s %-6s %12.1f %14.1f\n", tt->name, ks->name, "x8", (double)row_size * rows / best1 * 1e-9,
                       (double)n * rows * nt / bestn * 1e-9);
                if (k->gemm16 && rows % 16 == 0) { /* the same groups two at a time (AMX) */
                    double best = 1e30;
                    for (int rep = 0; rep < 5; rep++) {
                        double t0 = now_s();
                        product8(k, true, n, g, row_size, rows, act8, act8_row, nt, out);
                        double dt = now_s() - t0;
                        if (dt < best) best = dt;
                    }
                    printf("%-8s %-8s %-6s %12s %14.1f\n", tt->name, ks->name, "x16", "",
                           (double)n * rows * nt / best * 1e-9);
                }
                free(g);
                free(act8);
            }
        }
        free(w);
        free(act);
    }
    free(src);
    free(asrc);
    free(out);
    return 0;
}
