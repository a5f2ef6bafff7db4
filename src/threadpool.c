/*
 * threadpool.c — see threadpool.h. A job is published with a new
 * generation number; each worker runs it once and the last one to finish
 * tells the caller.
 *
 * A forward pass runs dozens of short jobs per token, and a futex sleep and
 * wake-up per job cost about as much as a small job itself. So a worker
 * that has just finished a job, and a caller waiting for its workers, first
 * poll the shared counters for a short, bounded time (POOL_SPIN_NS, yielding
 * the core between polls) and only then sleep on the condition variables,
 * as OpenMP runtimes do with their spin-then-block wait policy. An idle pool (between tokens, between
 * requests) is asleep within that time: nothing busy-waits for longer.
 */
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

#include "util.h"

#define POOL_SPIN_NS 50000 /* 0.05 ms */

struct threadpool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;           /* workers wait for a new generation */
    pthread_cond_t done;           /* caller waits for pending == 0 */
    _Atomic uint64_t generation;   /* written under mu, polled without it */
    atomic_int pending;            /* workers still running the current job */
    atomic_bool quit;
    pool_fn fn;                    /* published before generation (release) */
    void *arg;
};

typedef struct worker_arg {
    threadpool *p;
    int ith;
} worker_arg;

/* Give the core away while polling when other threads want it: on a
 * machine with more runnable threads than cores (other programs, -t above
 * the core count) a thread that only spins would hold up the very thread
 * it waits for. */
static inline void cpu_relax(void) { sched_yield(); }

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Poll for a generation other than seen (or quit) for at most
 * POOL_SPIN_NS; true if one came. */
static bool spin_until_new(threadpool *p, uint64_t seen)
{
    const int64_t deadline = now_ns() + POOL_SPIN_NS;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&p->generation, memory_order_acquire) != seen ||
            atomic_load_explicit(&p->quit, memory_order_relaxed))
            return true;
        cpu_relax();
        if ((i & 15) == 0 && now_ns() > deadline) return false;
    }
}

static bool spin_until_done(threadpool *p)
{
    const int64_t deadline = now_ns() + POOL_SPIN_NS;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0) return true;
        cpu_relax();
        if ((i & 15) == 0 && now_ns() > deadline) return false;
    }
}

static void *worker_main(void *vp)
{
    worker_arg wa = *(worker_arg *)vp;
    mem_free(vp);
    threadpool *p = wa.p;
    uint64_t seen = 0;
    for (;;) {
        if (!spin_until_new(p, seen)) {
            pthread_mutex_lock(&p->mu);
            while (!atomic_load(&p->quit) && atomic_load(&p->generation) == seen)
                pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) break;
        seen = atomic_load_explicit(&p->generation, memory_order_acquire);
        p->fn(p->arg, wa.ith, p->n);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            /* under the mutex, so a caller between its check and its wait
             * cannot miss the signal */
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

psi_status pool_new(int n_threads, threadpool **out)
{
    *out = NULL;
    if (n_threads < 1) n_threads = 1;
    threadpool *p = mem_calloc(1, sizeof *p);
    if (!p) return PSI_ERR_NO_MEMORY;
    p->n = n_threads;
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->quit, false);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->threads = mem_calloc((size_t)n_threads, sizeof(pthread_t));
    if (!p->threads) {
        p->n = 1;
        pool_free(p);
        return PSI_ERR_NO_MEMORY;
    }
    /* Workers start with every signal blocked: process signals go to the
     * application's own threads (psi serve's sigwait, a CLI's handler),
     * never to a library thread that would take the default action. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = mem_alloc(sizeof *wa);
        if (wa) {
            wa->p = p;
            wa->ith = i;
        }
        if (!wa || pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
            mem_free(wa);
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            p->n = i; /* join the ones that started */
            pool_free(p);
            return PSI_ERR_NO_MEMORY;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    *out = p;
    return PSI_OK;
}

void pool_free(threadpool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, true);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    mem_free(p->threads);
    mem_free(p);
}

int pool_size(const threadpool *p) { return p->n; }

void pool_run(threadpool *p, pool_fn fn, void *arg)
{
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->n);
    if (spin_until_done(p)) return;
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
