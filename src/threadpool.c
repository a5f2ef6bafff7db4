/*
 * threadpool.c — see threadpool.h. A job is published under the mutex with a
 * new generation number; each worker runs it once and the last one to finish
 * signals the caller.
 */
#include "threadpool.h"

#include <pthread.h>

#include "util.h"

struct threadpool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* workers wait for a new generation */
    pthread_cond_t done; /* caller waits for pending == 0 */
    uint64_t generation;
    int pending;
    bool quit;
    pool_fn fn;
    void *arg;
};

typedef struct worker_arg {
    threadpool *p;
    int ith;
} worker_arg;

static void *worker_main(void *vp)
{
    worker_arg wa = *(worker_arg *)vp;
    mem_free(vp);
    threadpool *p = wa.p;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->generation == seen) pthread_cond_wait(&p->wake, &p->mu);
        if (p->quit) break;
        seen = p->generation;
        pool_fn fn = p->fn;
        void *arg = p->arg;
        pthread_mutex_unlock(&p->mu);
        fn(arg, wa.ith, p->n);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

psi_status pool_new(int n_threads, threadpool **out)
{
    *out = NULL;
    if (n_threads < 1) n_threads = 1;
    threadpool *p = mem_calloc(1, sizeof *p);
    if (!p) return PSI_ERR_NO_MEMORY;
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->threads = mem_calloc((size_t)n_threads, sizeof(pthread_t));
    if (!p->threads) {
        p->n = 1;
        pool_free(p);
        return PSI_ERR_NO_MEMORY;
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = mem_alloc(sizeof *wa);
        if (wa) {
            wa->p = p;
            wa->ith = i;
        }
        if (!wa || pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
            mem_free(wa);
            p->n = i; /* join the ones that started */
            pool_free(p);
            return PSI_ERR_NO_MEMORY;
        }
    }
    *out = p;
    return PSI_OK;
}

void pool_free(threadpool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = true;
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
    p->pending = p->n - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->n);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
