/*
 * test_threadpool.c — the worker pool: every job runs exactly once on every
 * thread with the right (ith, nth), back to back (the polling path) and
 * after pauses longer than the polling time (the sleeping path); an idle
 * pool uses no CPU; pool_split covers [0, n) evenly.
 */
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "testutil.h"
#include "threadpool.h"

typedef struct job {
    atomic_int calls[8];
    atomic_int bad;
    int expect_nth;
} job;

static void count(void *arg, int ith, int nth)
{
    job *j = arg;
    if (nth != j->expect_nth || ith < 0 || ith >= nth) atomic_fetch_add(&j->bad, 1);
    else atomic_fetch_add(&j->calls[ith], 1);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(void)
{
    for (int n = 1; n <= 4; n++) {
        threadpool *p = NULL;
        CHECK(pool_new(n, &p) == PSI_OK && p);
        if (!p) continue;
        CHECK(pool_size(p) == n);
        job j;
        memset(&j, 0, sizeof j);
        j.expect_nth = n;
        const int rounds = 2000;
        for (int r = 0; r < rounds; r++) {
            pool_run(p, count, &j);
            if (r % 500 == 7) sleep_ms(5); /* workers fall asleep, then must wake */
        }
        CHECK(atomic_load(&j.bad) == 0);
        for (int i = 0; i < n; i++)
            CHECKF(atomic_load(&j.calls[i]) == rounds, "n %d: thread %d ran %d jobs, want %d", n, i,
                   atomic_load(&j.calls[i]), rounds);
        if (n == 4) {
            /* idle: after the polling time the workers sleep */
            sleep_ms(20);
            double c0 = cpu_seconds();
            sleep_ms(200);
            double used = cpu_seconds() - c0;
            CHECKF(used < 0.05, "an idle pool of 4 used %.3f s of CPU in 0.2 s", used);
        }
        pool_free(p);
    }
    pool_free(NULL);
    for (int64_t n = 0; n < 50; n++)
        for (int nth = 1; nth <= 5; nth++) {
            int64_t next = 0, min = n, max = 0;
            for (int ith = 0; ith < nth; ith++) {
                int64_t lo, hi;
                pool_split(n, ith, nth, &lo, &hi);
                CHECK(lo == next && hi >= lo);
                next = hi;
                if (hi - lo < min) min = hi - lo;
                if (hi - lo > max) max = hi - lo;
            }
            CHECK(next == n && max - min <= 1);
        }
    return tu_finish("test_threadpool");
}
