/* A small persistent thread pool for coarse task parallelism (e.g. ensemble members, twin
   critics): static assignment of task i to thread i % nthreads keeps results deterministic. */
#include "mbpo/core.h"

#include <pthread.h>
#include <cblas.h>

#define MAXWORKERS 64

static struct {
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  pthread_t tid[MAXWORKERS];
  int nworkers;        /* started worker threads (thread ids 1..nworkers) */
  unsigned long gen;   /* incremented per section: wakes the workers */
  int pending;         /* workers still busy in this section */
  int nthreads, n;     /* threads used in this section, task count */
  mbu_task fn;
  void *ctx;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .go = PTHREAD_COND_INITIALIZER,
            .done = PTHREAD_COND_INITIALIZER};

static void run_share(int t, int nthreads, int n, mbu_task fn, void *ctx) {
  for (int i = t; i < n; i += nthreads) fn(ctx, i);
}

static void *worker(void *arg) {
  int me = (int)(intptr_t)arg;
  unsigned long seen = 0;
  pthread_mutex_lock(&pool.mu);
  for (;;) {
    while (pool.gen == seen) pthread_cond_wait(&pool.go, &pool.mu);
    seen = pool.gen;
    int nthreads = pool.nthreads, n = pool.n;
    mbu_task fn = pool.fn;
    void *ctx = pool.ctx;
    if (me >= nthreads) continue; /* not needed in this section */
    pthread_mutex_unlock(&pool.mu);
    run_share(me, nthreads, n, fn, ctx);
    pthread_mutex_lock(&pool.mu);
    if (--pool.pending == 0) pthread_cond_signal(&pool.done);
  }
  return NULL;
}

void mbu_parallelFor(int n, mbu_task fn, void *ctx) {
  int nthreads = mbu_threads();
  if (nthreads > n) nthreads = n;
  if (nthreads > MAXWORKERS + 1) nthreads = MAXWORKERS + 1;
  if (nthreads <= 1) {
    run_share(0, 1, n, fn, ctx);
    return;
  }
  /* before the workers wake: their sgemm calls must already see one OpenBLAS thread */
  openblas_set_num_threads(1);
  pthread_mutex_lock(&pool.mu);
  while (pool.nworkers < nthreads - 1) {
    int id = pool.nworkers + 1;
    if (pthread_create(&pool.tid[pool.nworkers], NULL, worker, (void *)(intptr_t)id) != 0)
      break;
    pthread_detach(pool.tid[pool.nworkers]);
    pool.nworkers++;
  }
  if (nthreads - 1 > pool.nworkers) nthreads = pool.nworkers + 1;
  pool.nthreads = nthreads;
  pool.n = n;
  pool.fn = fn;
  pool.ctx = ctx;
  pool.pending = nthreads - 1;
  pool.gen++;
  pthread_cond_broadcast(&pool.go);
  pthread_mutex_unlock(&pool.mu);
  run_share(0, nthreads, n, fn, ctx);
  pthread_mutex_lock(&pool.mu);
  while (pool.pending > 0) pthread_cond_wait(&pool.done, &pool.mu);
  pthread_mutex_unlock(&pool.mu);
  openblas_set_num_threads(mbu_threads());
}
