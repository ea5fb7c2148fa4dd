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
  CHECK(atomic_load(&wrong) == 0, "%d tasks ran with another section's function", atomic_load(&wrong));
  for (int i = 0; i < 3; i++) CHECK(atomic_load(&hits2[i]) == 5000, "task2 %d ran %d times", i, atomic_load(&hits2[i]));
  for (int i = 0; i < 2; i++) CHECK(atomic_load(&hits[i]) == 5000, "task %d ran %d times", i, atomic_load(&hits[i]));
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

int main(void) {
  RUN(test_each_task_once);
  RUN(test_alternating_sections);
  RUN(test_small_n);
  return TEST_REPORT();
}
