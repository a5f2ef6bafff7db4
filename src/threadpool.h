/*
 * threadpool.h — a fixed set of worker threads that run one parallel job at
 * a time. Between jobs, workers poll for the next one for at most 0.05 ms,
 * then sleep on a condition variable (an idle pool does not busy-wait);
 * the calling thread takes part as thread 0.
 */
#ifndef PSI_THREADPOOL_H
#define PSI_THREADPOOL_H

#include "psi.h"

typedef struct threadpool threadpool;
/* fn is called once on every thread with ith in [0, nth). */
typedef void (*pool_fn)(void *arg, int ith, int nth);

/* n_threads >= 1 (1 = no worker threads). */
psi_status pool_new(int n_threads, threadpool **out);
void pool_free(threadpool *p);
int pool_size(const threadpool *p);
void pool_run(threadpool *p, pool_fn fn, void *arg);

/* Split [0, n) into nth nearly equal parts; part ith is [*lo, *hi). */
static inline void pool_split(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi)
{
    int64_t per = n / nth, rem = n % nth;
    *lo = ith * per + (ith < rem ? ith : rem);
    *hi = *lo + per + (ith < rem ? 1 : 0);
}

#endif
