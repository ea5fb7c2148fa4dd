/* Tests of src/core/parallel.c: every task runs once, on its fixed thread. */
#include <pthread.h>

#include "mbpo/core.h"
#include "test.h"

static int hits[1000];
static pthread_t who[1000];

static void task(void *ctx, int i) {
  (void)ctx;
  hits[i]++;
  who[i] = pthread_self();
}

static void test_each_task_once(void) {
  for (int threads = 1; threads <= 3; threads++) {
    mbu_setThreads(threads);
    for (int rep = 0; rep < 50; rep++) {
      for (int i = 0; i < 1000; i++) hits[i] = 0;
      mbu_parallelFor(1000, task, NULL);
      int bad = 0;
      for (int i = 0; i < 1000; i++) bad += hits[i] != 1;
      CHECK(bad == 0, "%d tasks not run exactly once (threads %d)", bad, threads);
    }
    /* static split: tasks i and i + threads ran on the same thread */
    int same = 1;
    for (int i = 0; i + threads < 1000; i++) same &= pthread_equal(who[i], who[i + threads]) != 0;
    CHECK(same, "task placement not fixed (threads %d)", threads);
  }
  mbu_setThreads(1);
}

static void test_small_n(void) {
  mbu_setThreads(2);
  hits[0] = 0;
  mbu_parallelFor(1, task, NULL);
  CHECK(hits[0] == 1, "single task ran %d times", hits[0]);
  mbu_parallelFor(0, task, NULL);
  mbu_setThreads(1);
}

int main(void) {
  RUN(test_each_task_once);
  RUN(test_small_n);
  return TEST_REPORT();
}
