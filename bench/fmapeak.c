/*
 * fmapeak.c — the f32 multiply-add rate the CPU's vector units can reach:
 * T threads each run 12 independent chains of fused multiply-adds on the
 * widest vectors the CPU has (zmm with AVX-512F, ymm with AVX2+FMA, else
 * GCC's 128-bit vectors, FMA where the target has it), repeated; prints the
 * best and median GMAC/s (1e9 f32 multiply-adds a second) over all threads.
 *
 * Prompt processing with float weights (F16, BF16, F32) is one multiply-add
 * per weight and token, plus attention's, all in f32 FMAs: this is its
 * ceiling, as bench/membw's bandwidth is generation's. (The quantized types
 * multiply bytes, whose ceiling depends on each type's instruction mix;
 * bench_kernels measures those tiles one by one.)
 *
 *   fmapeak [-t THREADS] [-r REPEATS]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"

#define CHAINS 12

typedef struct job {
    long iters;
    float sum;
    pthread_barrier_t *start;
    int width; /* floats per vector */
} job;

/* One chain step a = a·m + c per vector and iteration; m slightly below 1
 * and c tiny keep every value normal, so no denormal slows a chain. The
 * body is written once, for each vector width. */
#define FMA_LOOP(NAME, V, ATTR)                                                                              \
    typedef float NAME##_v __attribute__((vector_size(sizeof(float) * (V))));                                \
    ATTR static float NAME(long iters)                                                                       \
    {                                                                                                        \
        NAME##_v a[CHAINS], m, c;                                                                            \
        for (int k = 0; k < (V); k++) {                                                                      \
            m[k] = 0.9999999f;                                                                               \
            c[k] = 1e-7f;                                                                                    \
        }                                                                                                    \
        for (int j = 0; j < CHAINS; j++)                                                                     \
            for (int k = 0; k < (V); k++)                                                                    \
                a[j][k] = 1.0f + (float)(j * (V) + k) * 1e-3f;                                               \
        for (long i = 0; i < iters; i++) {                                                                   \
            /* float arithmetic does not reassociate: each chain runs all its steps */                       \
            _Pragma("GCC unroll 12") for (int j = 0; j < CHAINS; j++) a[j] = a[j] * m + c;                   \
        }                                                                                                    \
        float s = 0;                                                                                         \
        for (int j = 0; j < CHAINS; j++)                                                                     \
            for (int k = 0; k < (V); k++)                                                                    \
                s += a[j][k];                                                                                \
        return s;                                                                                            \
    }

FMA_LOOP(fma_v4, 4, )
#if defined(__x86_64__) || defined(__i386__)
FMA_LOOP(fma_v8, 8, __attribute__((target("avx2,fma"))))
FMA_LOOP(fma_v16, 16, __attribute__((target("avx512f"))))
#endif

static void *worker(void *arg)
{
    job *j = arg;
    pthread_barrier_wait(j->start);
#if defined(__x86_64__) || defined(__i386__)
    if (j->width == 16)
        j->sum = fma_v16(j->iters);
    else if (j->width == 8)
        j->sum = fma_v8(j->iters);
    else
#endif
        j->sum = fma_v4(j->iters);
    return NULL;
}

/* Seconds for `threads` threads to run `iters` iterations each. */
static double timed(int threads, int width, long iters, float *check)
{
    pthread_t th[256];
    job jobs[256];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    for (int k = 0; k < threads; k++) {
        jobs[k] = (job){.iters = iters, .start = &start, .width = width};
        if (pthread_create(&th[k], NULL, worker, &jobs[k])) {
            fprintf(stderr, "fmapeak: cannot start thread %d\n", k);
            exit(1);
        }
    }
    pthread_barrier_wait(&start);
    double t0 = now_s();
    for (int k = 0; k < threads; k++)
        pthread_join(th[k], NULL);
    double t = now_s() - t0;
    pthread_barrier_destroy(&start);
    for (int k = 0; k < threads; k++)
        *check += jobs[k].sum;
    return t;
}

int main(int argc, char **argv)
{
    int threads = 2, reps = 7;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "-t"))
            threads = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "-r"))
            reps = atoi(argv[++i]);
        else
            threads = 0; /* anything else: usage */
    }
    if (threads < 1 || threads > 256 || reps < 1 || reps > 100) {
        fprintf(stderr, "usage: fmapeak [-t THREADS] [-r REPEATS]\n");
        return 2;
    }
    int width = 4;
    const char *unit = "128-bit";
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        width = 16, unit = "zmm FMA";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        width = 8, unit = "ymm FMA";
#endif
    /* about 0.2 s a repeat */
    float check = 0;
    long iters = 1 << 16;
    while (timed(1, width, iters, &check) < 0.05 && iters < (1L << 40))
        iters *= 2;
    iters *= 4;
    double gmacs[100];
    for (int r = 0; r < reps; r++)
        gmacs[r] =
            (double)threads * (double)iters * CHAINS * width / timed(threads, width, iters, &check) * 1e-9;
    qsort(gmacs, (size_t)reps, sizeof(double), cmp_double);
    if (check != check)
        fprintf(stderr, "fmapeak: a chain went to NaN\n"); /* uses the sums: nothing is dead code */
    printf("fmapeak: %d thread%s (%s): %.1f GMAC/s best, %.1f median (f32 multiply-adds)\n", threads,
           threads == 1 ? "" : "s", unit, gmacs[reps - 1], gmacs[reps / 2]);
    return 0;
}
