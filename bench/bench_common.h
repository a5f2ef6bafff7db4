/*
 * bench_common.h — what the benchmarks share: a monotonic clock, qsort's
 * comparison of doubles (for medians), and the seeded random values
 * (xorshift64, uniform in [-1, 1)) the kernel benchmarks' matrices are
 * made of, the same sequence in every program.
 */
#ifndef PSI_BENCH_COMMON_H
#define PSI_BENCH_COMMON_H

#include <stdint.h>
#include <time.h>

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint64_t bench_rng __attribute__((unused)) = 88172645463325252ull;
static inline float frand(void)
{
    bench_rng ^= bench_rng << 13;
    bench_rng ^= bench_rng >> 7;
    bench_rng ^= bench_rng << 17;
    return (float)((bench_rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

#endif
