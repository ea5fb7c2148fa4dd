/* A small persistent thread pool for coarse task parallelism (e.g. ensemble members, twin
   critics): static assignment of task i to thread i % nthreads keeps results deterministic. */
#include "mbpo/core.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <cblas.h>

#define MAXWORKERS 64
/* Before sleeping on a condition variable, a waiting thread polls this long, yielding the
   core between polls: back-to-back sections (a SAC update has four) then start without a
   wake-up through the kernel (on a virtual machine it can take hundreds of microseconds),
   and a process sharing the core still gets it (a busy spin there made 2 threads slower
   than 1). */
#define SPIN_SECONDS 200e-6

static struct {
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  pthread_t tid[MAXWORKERS];
  int nworkers;        /* started worker threads (thread ids 1..nworkers) */
  unsigned long gen;   /* incremented per section: wakes the workers */
  int pending;         /* workers still busy in this section */
  _Atomic unsigned long agen; /* copies of gen and pending for spinning without the lock */
  _Atomic int apending;
  int nthreads, n;     /* threads used in this section, task count */
  mbu_task fn;
  void *ctx;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .go = PTHREAD_COND_INITIALIZER,
            .done = PTHREAD_COND_INITIALIZER};

static void run_share(int t, int nthreads, int n, mbu_task fn, void *ctx) {
  for (int i = t; i < n; i += nthreads) fn(ctx, i);
}

/* spin until a new section is posted / every worker is done, or SPIN_SECONDS pass */
static void spin_while_gen(unsigned long old) {
  double t0 = mbu_clock();
  for (int k = 1; atomic_load_explicit(&pool.agen, memory_order_acquire) == old; k++) {
    sched_yield();
    if ((k & 15) == 0 && mbu_clock() - t0 > SPIN_SECONDS) return;
  }
}

static void spin_while_pending(void) {
  double t0 = mbu_clock();
  for (int k = 1; atomic_load_explicit(&pool.apending, memory_order_acquire) > 0; k++) {
    sched_yield();
    if ((k & 15) == 0 && mbu_clock() - t0 > SPIN_SECONDS) return;
  }
}

static void *worker(void *arg) {
  int me = (int)(intptr_t)arg;
  unsigned long seen = 0;
  pthread_mutex_lock(&pool.mu);
  for (;;) {
    if (pool.gen == seen) {
      pthread_mutex_unlock(&pool.mu);
      spin_while_gen(seen);
      pthread_mutex_lock(&pool.mu);
    }
    while (pool.gen == seen) pthread_cond_wait(&pool.go, &pool.mu);
    seen = pool.gen;
    int nthreads = pool.nthreads, n = pool.n;
    mbu_task fn = pool.fn;
    void *ctx = pool.ctx;
    if (me >= nthreads) continue; /* not needed in this section */
    pthread_mutex_unlock(&pool.mu);
    run_share(me, nthreads, n, fn, ctx);
    pthread_mutex_lock(&pool.mu);
    atomic_fetch_sub_explicit(&pool.apending, 1, memory_order_release);
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
  atomic_store_explicit(&pool.apending, nthreads - 1, memory_order_relaxed);
  atomic_store_explicit(&pool.agen, pool.gen, memory_order_release);
  pthread_cond_broadcast(&pool.go);
  pthread_mutex_unlock(&pool.mu);
  run_share(0, nthreads, n, fn, ctx);
  spin_while_pending();
  pthread_mutex_lock(&pool.mu);
  while (pool.pending > 0) pthread_cond_wait(&pool.done, &pool.mu);
  pthread_mutex_unlock(&pool.mu);
  openblas_set_num_threads(mbu_threads());
}
