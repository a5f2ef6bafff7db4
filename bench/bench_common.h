/*
 * bench_common.h — what the kernel benchmarks share: a monotonic clock
 * and the seeded random values (xorshift64, uniform in [-1, 1)) their
 * matrices are made of, the same sequence in every program.
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

static uint64_t bench_rng = 88172645463325252ull;
static inline float frand(void)
{
    bench_rng ^= bench_rng << 13;
    bench_rng ^= bench_rng >> 7;
    bench_rng ^= bench_rng << 17;
    return (float)((bench_rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

#endif
