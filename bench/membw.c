/*
 * membw.c — STREAM-like probe of the memory read bandwidth that decoding
 * can hope for: T threads each sum their share of a buffer much larger
 * than the caches (default 1 GiB), repeated; prints the best and median
 * GB/s (1e9 bytes/s). Token generation reads every weight once per token,
 * so this is its ceiling.
 *
 *   membw [-t THREADS] [-s MiB] [-r REPEATS]
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    int threads = 2, reps = 7;
    size_t mib = 1024;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-t")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-s")) mib = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "-r")) reps = atoi(argv[i + 1]);
    }
    if (threads < 1 || threads > 256 || mib < 64 || reps < 1 || reps > 100) {
        fprintf(stderr, "usage: membw [-t THREADS] [-s MiB >= 64] [-r REPEATS]\n");
        return 2;
    }
    size_t n = mib * (1u << 20) / sizeof(uint64_t);
    uint64_t *buf = malloc(n * sizeof *buf);
    if (!buf) {
        fprintf(stderr, "membw: cannot allocate %zu MiB\n", mib);
        return 1;
    }
    for (size_t i = 0; i < n; i++) buf[i] = i; /* fault every page in */
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
    printf("memory read bandwidth: %.1f GB/s best, %.1f GB/s median (%d threads, %zu MiB, %d runs) [%llu]\n",
           gbs[reps - 1], gbs[reps / 2], threads, mib, reps, (unsigned long long)(check & 0xff));
    free(buf);
    return 0;
}
