/*
 * membw.c — STREAM-like probe of the memory read bandwidth that decoding
 * can hope for: T threads each sum their share of a buffer much larger
 * than the caches (default 1 GiB), repeated; prints the best and median
 * GB/s (1e9 bytes/s). Token generation reads every weight once per token,
 * so this is its ceiling. The buffer is in 2 MiB pages where the kernel's
 * transparent huge pages allow (madvise), as `psi --no-mmap` holds the
 * weights: on the Zen 3 VM that reads about 8% faster than 4 KiB pages
 * (-4k), which is what a model mapped from its file gets. The line says
 * which pages the buffer got.
 *
 *   membw [-t THREADS] [-s MiB] [-r REPEATS] [-4k]
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "bench_common.h"

typedef struct job {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
    pthread_barrier_t *start;
} job;

static void *reader(void *arg)
{
    job *j = arg;
    pthread_barrier_wait(j->start);
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    const uint64_t *p = j->p;
    for (size_t i = 0; i + 8 <= j->n; i += 8) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
        s4 += p[i + 4];
        s5 += p[i + 5];
        s6 += p[i + 6];
        s7 += p[i + 7];
    }
    j->sum = s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = 2, reps = 7, small = 0, bad = 0;
    size_t mib = 1024;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-4k"))
            small = 1;
        else if (i + 1 == argc)
            bad = 1;
        else if (!strcmp(argv[i], "-t"))
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-s"))
            mib = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "-r"))
            reps = atoi(argv[++i]);
        else
            bad = 1;
    }
    if (bad || threads < 1 || threads > 256 || mib < 64 || reps < 1 || reps > 100) {
        fprintf(stderr, "usage: membw [-t THREADS] [-s MiB >= 64] [-r REPEATS] [-4k]\n");
        return 2;
    }
    size_t n = mib * (1u << 20) / sizeof(uint64_t);
    const size_t huge = (size_t)2 << 20; /* aligned_alloc wants a multiple of its alignment */
    uint64_t *buf = aligned_alloc(huge, (n * sizeof *buf + huge - 1) / huge * huge);
    if (!buf) {
        fprintf(stderr, "membw: cannot allocate %zu MiB\n", mib);
        return 1;
    }
#if defined(MADV_HUGEPAGE) && defined(MADV_NOHUGEPAGE)
    (void)madvise(buf, n * sizeof *buf, small ? MADV_NOHUGEPAGE : MADV_HUGEPAGE);
#endif
    for (size_t i = 0; i < n; i++) buf[i] = i; /* fault every page in */
    long huge_kb = 0;                          /* what the kernel gave */
    FILE *sm = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    while (sm && fgets(line, sizeof line, sm))
        if (!strncmp(line, "AnonHugePages:", 14)) huge_kb = atol(line + 14);
    if (sm) fclose(sm);
    double gbs[100];
    uint64_t check = 0;
    for (int r = 0; r < reps; r++) {
        pthread_t th[256];
        job jobs[256];
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
        size_t per = n / (size_t)threads;
        for (int t = 0; t < threads; t++) {
            jobs[t] = (job){buf + per * (size_t)t, per, 0, &start};
            pthread_create(&th[t], NULL, reader, &jobs[t]);
        }
        double t0 = now_s();
        pthread_barrier_wait(&start);
        for (int t = 0; t < threads; t++) {
            pthread_join(th[t], NULL);
            check += jobs[t].sum;
        }
        double dt = now_s() - t0;
        pthread_barrier_destroy(&start);
        gbs[r] = (double)(per * (size_t)threads * sizeof *buf) / dt / 1e9;
    }
    qsort(gbs, (size_t)reps, sizeof *gbs, cmp_double);
    printf("memory read bandwidth: %.1f GB/s best, %.1f GB/s median (%d threads, %zu MiB, %d runs, %s pages) "
           "[%llu]\n",
           gbs[reps - 1], gbs[reps / 2], threads, mib, reps,
           huge_kb * 1024 >= (long)(n * sizeof *buf) / 2 ? "2 MiB" : "4 KiB",
           (unsigned long long)(check & 0xff));
    free(buf);
    return 0;
}
