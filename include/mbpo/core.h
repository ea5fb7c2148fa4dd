/* mbpo core utilities: error reporting, allocation, threads, interrupts, clocks.
   The core never calls exit() and never sees lua_State: a failing function records one
   message with mbu_error() and returns a negative code; the binding layer turns that
   message into a Lua error (or nil, message for expected failures). */
#ifndef MBPO_CORE_H
#define MBPO_CORE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#define MB_VERSION "0.1.0"

/* error codes returned by core functions (0 is success) */
#define MB_OK      0
#define MB_ERR    -1   /* message in mbu_lasterror() */

/* Records a printf-style message as the last error of this thread; returns MB_ERR. */
int mbu_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The last error message recorded on this thread ("" when none). */
const char *mbu_lasterror(void);

/* malloc/calloc that record "out of memory (N bytes)" on failure and return NULL. */
void *mbu_malloc(size_t bytes);
void *mbu_calloc(size_t n, size_t size);
/* 64-byte aligned allocation (free with mbu_free) for SIMD-friendly slabs. */
void *mbu_alignedAlloc(size_t bytes);
void  mbu_free(void *p);

/* Set by the host's SIGINT/SIGTERM handler (the signal number); long-running core loops
   (ensemble fits, benchmarks) poll it and return an error "interrupted" early. */
extern volatile sig_atomic_t mbu_interrupted;

/* OpenBLAS thread count (and the count our own parallel sections use). */
void mbu_setThreads(int n);
int  mbu_threads(void);

/* Monotonic seconds. */
double mbu_clock(void);

#endif

/* Parallel sections ------------------------------------------------------------------------
   mbu_parallelFor runs fn(ctx, i) for i = 0..n-1 on up to mbu_threads() threads of a
   persistent pool, the caller included. Tasks are claimed dynamically by whichever thread is
   free (a thread the OS does not schedule takes none), so a task's result must depend only on
   i, never on the thread; then results are deterministic for any thread count. A task may
   use scratch indexed by i. During the section OpenBLAS runs single-threaded in each task
   (restored after). Must not be nested. Returns after every task has finished. */
typedef void (*mbu_task)(void *ctx, int i);
void mbu_parallelFor(int n, mbu_task fn, void *ctx);

/* Counters of the pool since the process started (for benchmarks; cumulative, relaxed
   atomics). sections: mbu_parallelFor calls that used more than one thread; caller_tasks /
   worker_tasks: tasks run by the calling thread / by pool workers; alone: sections whose
   tasks all ran on the caller (no worker arrived in time); sleeps: times a worker went to
   sleep on the condition variable after polling in vain; wait: seconds the caller spent,
   after its own tasks, waiting for workers to finish theirs. */
typedef struct mbuPoolStats {
  double sections, caller_tasks, worker_tasks, alone, sleeps, wait;
} mbuPoolStats;
void mbu_poolStats(mbuPoolStats *out);
