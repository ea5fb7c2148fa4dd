/* A small persistent thread pool for coarse task parallelism (ensemble members, twin
   critics, row chunks). Tasks are claimed from a shared counter by whichever thread is
   free, the caller included: a thread that the OS does not schedule (another process on
   the core) simply takes no task, instead of stalling the section. Results are
   deterministic when each task's output depends only on its index, never on the thread. */
#include "mbpo/core.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <cblas.h>

#define MAXWORKERS 64
/* Before sleeping on a condition variable, a waiting thread polls for spin_seconds, yielding
   the core between polls: back-to-back sections (a SAC update has four) then start without
   a wake-up through the kernel (on a virtual machine it can take hundreds of microseconds,
   and a section that starts without its worker runs alone or waits for the late one's
   task), and a process sharing the core still gets it. The window covers the caller's work
   between the SAC updates of two env steps inside a run (an env step with the policy's act
   and the loop's Lua: 150-300 us measured on Zen 4; 200 us left the workers asleep about
   once per env step in bf16). MBPO_POOL_SPIN_US (0..100000) overrides it, for A/B runs. */
#define SPIN_DEFAULT_US 2000
static double spin_seconds = SPIN_DEFAULT_US * 1e-6;
static pthread_once_t spin_once = PTHREAD_ONCE_INIT;

static void spin_init(void) {
  const char *v = getenv("MBPO_POOL_SPIN_US");
  if (!v || !*v) return;
  char *end;
  long us = strtol(v, &end, 10);
  if (*end == '\0' && us >= 0 && us <= 100000) spin_seconds = (double)us * 1e-6;
}

static struct {
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  pthread_t tid[MAXWORKERS];
  int nworkers;          /* started worker threads (ids 1..nworkers) */
  unsigned long gen;     /* incremented per section: wakes the workers */
  _Atomic unsigned long agen;  /* copy of gen for polling without the lock */
  int nthreads;          /* threads allowed in this section (caller included) */
  int active;            /* workers that took this section and may still claim tasks */
  int n;                 /* tasks of this section */
  mbu_task fn;
  void *ctx;
  atomic_int next;       /* next task index to claim */
  atomic_int finished;   /* tasks completed */
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .go = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

/* mbu_poolStats counters (relaxed: read for reports only) */
static struct {
  atomic_ullong sections, caller_tasks, worker_tasks, alone, sleeps, wait_ns;
} stats;

static void count(atomic_ullong *c, unsigned long long v) {
  atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

void mbu_poolStats(mbuPoolStats *out) {
  out->sections = (double)atomic_load_explicit(&stats.sections, memory_order_relaxed);
  out->caller_tasks = (double)atomic_load_explicit(&stats.caller_tasks, memory_order_relaxed);
  out->worker_tasks = (double)atomic_load_explicit(&stats.worker_tasks, memory_order_relaxed);
  out->alone = (double)atomic_load_explicit(&stats.alone, memory_order_relaxed);
  out->sleeps = (double)atomic_load_explicit(&stats.sleeps, memory_order_relaxed);
  out->wait = 1e-9 * (double)atomic_load_explicit(&stats.wait_ns, memory_order_relaxed);
}

/* claims and runs tasks until none is left; signals the caller after the last one; returns
   the number of tasks it ran */
static int run_claims(int n, mbu_task fn, void *ctx) {
  int ran = 0;
  for (int i; (i = atomic_fetch_add_explicit(&pool.next, 1, memory_order_relaxed)) < n;) {
    fn(ctx, i);
    ran++;
    if (atomic_fetch_add_explicit(&pool.finished, 1, memory_order_acq_rel) + 1 == n) {
      pthread_mutex_lock(&pool.mu);
      pthread_cond_broadcast(&pool.done);
      pthread_mutex_unlock(&pool.mu);
    }
  }
  return ran;
}

/* polls (yielding) while cond holds, for at most spin_seconds */
#define SPIN_WHILE(cond) do {                                                    \
    double t0_ = mbu_clock();                                                    \
    for (int k_ = 1; (cond); k_++) {                                             \
      sched_yield();                                                             \
      if ((k_ & 15) == 0 && mbu_clock() - t0_ > spin_seconds) break;             \
    }                                                                            \
  } while (0)

static void *worker(void *arg) {
  int me = (int)(intptr_t)arg;
  unsigned long seen = 0;
  for (;;) {
    SPIN_WHILE(atomic_load_explicit(&pool.agen, memory_order_acquire) == seen);
    pthread_mutex_lock(&pool.mu);
    if (pool.gen == seen) count(&stats.sleeps, 1);
    while (pool.gen == seen) pthread_cond_wait(&pool.go, &pool.mu);
    seen = pool.gen;
    if (me >= pool.nthreads) {   /* not needed in this section */
      pthread_mutex_unlock(&pool.mu);
      continue;
    }
    /* taking the section under the lock: the caller cannot post the next one (and reset
       the counters) until this worker has left it */
    pool.active++;
    int n = pool.n;
    mbu_task fn = pool.fn;
    void *ctx = pool.ctx;
    pthread_mutex_unlock(&pool.mu);
    count(&stats.worker_tasks, (unsigned long long)run_claims(n, fn, ctx));
    pthread_mutex_lock(&pool.mu);
    if (--pool.active == 0) pthread_cond_broadcast(&pool.done);
    pthread_mutex_unlock(&pool.mu);
  }
  return NULL;
}

void mbu_parallelFor(int n, mbu_task fn, void *ctx) {
  int nthreads = mbu_threads();
  if (nthreads > n) nthreads = n;
  if (nthreads > MAXWORKERS + 1) nthreads = MAXWORKERS + 1;
  if (nthreads <= 1) {
    for (int i = 0; i < n; i++) fn(ctx, i);
    return;
  }
  pthread_once(&spin_once, spin_init);   /* before the first worker polls */
  /* before any task starts: every sgemm inside must see one OpenBLAS thread */
  openblas_set_num_threads(1);
  pthread_mutex_lock(&pool.mu);
  while (pool.nworkers < nthreads - 1) {
    int id = pool.nworkers + 1;
    if (pthread_create(&pool.tid[pool.nworkers], NULL, worker, (void *)(intptr_t)id) != 0)
      break;
    pthread_detach(pool.tid[pool.nworkers]);
    pool.nworkers++;
  }
  /* workers still inside the previous section must leave it before the counters reset */
  while (pool.active > 0) pthread_cond_wait(&pool.done, &pool.mu);
  pool.nthreads = nthreads;
  pool.n = n;
  pool.fn = fn;
  pool.ctx = ctx;
  atomic_store(&pool.next, 0);
  atomic_store(&pool.finished, 0);
  pool.gen++;
  atomic_store_explicit(&pool.agen, pool.gen, memory_order_release);
  pthread_cond_broadcast(&pool.go);
  pthread_mutex_unlock(&pool.mu);
  int mine = run_claims(n, fn, ctx);
  double t0 = mbu_clock();
  SPIN_WHILE(atomic_load_explicit(&pool.finished, memory_order_acquire) < n);
  pthread_mutex_lock(&pool.mu);
  while (atomic_load(&pool.finished) < n) pthread_cond_wait(&pool.done, &pool.mu);
  pthread_mutex_unlock(&pool.mu);
  count(&stats.wait_ns, (unsigned long long)((mbu_clock() - t0) * 1e9));
  count(&stats.sections, 1);
  count(&stats.caller_tasks, (unsigned long long)mine);
  if (mine == n) count(&stats.alone, 1);
  openblas_set_num_threads(mbu_threads());
}
