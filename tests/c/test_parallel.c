/* Tests of src/core/parallel.c: every task runs exactly once, for any thread count, across
   many back-to-back sections (where a late worker must not run the next section's tasks
   with the previous section's function). */
#include <stdatomic.h>

#include "mbpo/core.h"
#include "test.h"

static atomic_int hits[1000];
static atomic_int wrong;

static void task(void *ctx, int i) {
  (void)ctx;
  atomic_fetch_add(&hits[i], 1);
}

/* a second task function: counts calls into another array, and flags any index it should
   never see (sections of this function have 3 tasks) */
static atomic_int hits2[3];
static void task2(void *ctx, int i) {
  (void)ctx;
  if (i < 0 || i >= 3) atomic_fetch_add(&wrong, 1);
  else atomic_fetch_add(&hits2[i], 1);
}

static void test_each_task_once(void) {
  for (int threads = 1; threads <= 3; threads++) {
    mbu_setThreads(threads);
    for (int rep = 0; rep < 50; rep++) {
      for (int i = 0; i < 1000; i++) atomic_store(&hits[i], 0);
      mbu_parallelFor(1000, task, NULL);
      int bad = 0;
      for (int i = 0; i < 1000; i++) bad += atomic_load(&hits[i]) != 1;
      CHECK(bad == 0, "%d tasks not run exactly once (threads %d)", bad, threads);
    }
  }
  mbu_setThreads(1);
}

static void test_alternating_sections(void) {
  /* thousands of short sections of two functions back to back */
  mbu_setThreads(2);
  for (int i = 0; i < 3; i++) atomic_store(&hits2[i], 0);
  for (int i = 0; i < 2; i++) atomic_store(&hits[i], 0);
  atomic_store(&wrong, 0);
  for (int rep = 0; rep < 5000; rep++) {
    mbu_parallelFor(3, task2, NULL);
    mbu_parallelFor(2, task, NULL);
  }
  CHECK(atomic_load(&wrong) == 0, "%d tasks ran with another section's function",
        atomic_load(&wrong));
  for (int i = 0; i < 3; i++)
    CHECK(atomic_load(&hits2[i]) == 5000, "task2 %d ran %d times", i, atomic_load(&hits2[i]));
  for (int i = 0; i < 2; i++)
    CHECK(atomic_load(&hits[i]) == 5000, "task %d ran %d times", i, atomic_load(&hits[i]));
  mbu_setThreads(1);
}

static void test_small_n(void) {
  mbu_setThreads(2);
  atomic_store(&hits[0], 0);
  mbu_parallelFor(1, task, NULL);
  CHECK(atomic_load(&hits[0]) == 1, "single task ran %d times", atomic_load(&hits[0]));
  mbu_parallelFor(0, task, NULL);
  mbu_setThreads(1);
}

/* the pool's counters: per multi-thread section one section, its n tasks split between
   caller and workers, "alone" at most once, waits non-negative; a one-thread section (or a
   section of one task) is not counted */
static void slow_task(void *ctx, int i) {
  (void)ctx;
  double t0 = mbu_clock();
  while (mbu_clock() - t0 < 2e-4) {}
  atomic_fetch_add(&hits[i], 1);
}

static void test_pool_stats(void) {
  mbuPoolStats a, b;
  mbu_setThreads(2);
  mbu_poolStats(&a);
  for (int rep = 0; rep < 20; rep++) mbu_parallelFor(4, slow_task, NULL);
  mbu_poolStats(&b);
  CHECK(b.sections - a.sections == 20, "sections %g", b.sections - a.sections);
  CHECK((b.caller_tasks - a.caller_tasks) + (b.worker_tasks - a.worker_tasks) == 80,
        "tasks %g + %g", b.caller_tasks - a.caller_tasks, b.worker_tasks - a.worker_tasks);
  CHECK(b.caller_tasks - a.caller_tasks >= 20, "the caller claims at least one task a section");
  CHECK(b.alone - a.alone >= 0 && b.alone - a.alone <= 20, "alone %g", b.alone - a.alone);
  CHECK(b.wait >= a.wait && b.sleeps >= a.sleeps, "cumulative");
  mbu_setThreads(1);
  mbu_poolStats(&a);
  mbu_parallelFor(4, slow_task, NULL);
  mbu_setThreads(2);
  mbu_parallelFor(1, slow_task, NULL);
  mbu_poolStats(&b);
  CHECK(b.sections == a.sections && b.caller_tasks == a.caller_tasks, "one thread: not counted");
}

int main(void) {
  RUN(test_each_task_once);
  RUN(test_alternating_sections);
  RUN(test_small_n);
  RUN(test_pool_stats);
  return TEST_REPORT();
}
