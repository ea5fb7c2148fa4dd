/* A minimal C test harness: CHECK / CHECK_NEAR record failures without stopping, and
   TEST_MAIN runs the listed tests and prints "N passed, N failed" as its last line. */
#ifndef MBPO_TEST_H
#define MBPO_TEST_H

#include <math.h>
#include <stdio.h>

static int tst_checks_failed = 0;
static int tst_passed = 0, tst_failed = 0;

#define CHECK(cond, ...) do {                                              \
    if (!(cond)) {                                                         \
      tst_checks_failed++;                                                 \
      fprintf(stderr, "  %s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                        \
      fprintf(stderr, "\n");                                               \
    }                                                                      \
  } while (0)

/* |a - b| <= tol * max(1, |b|) */
#define CHECK_NEAR(a, b, tol) do {                                         \
    double a_ = (double)(a), b_ = (double)(b);                             \
    double s_ = fabs(b_) > 1 ? fabs(b_) : 1;                               \
    CHECK(fabs(a_ - b_) <= (tol) * s_,                                     \
          "%s = %.9g, expected %.9g (tol %g)", #a, a_, b_, (double)(tol)); \
  } while (0)

#define RUN(fn) do {                                                       \
    int before_ = tst_checks_failed;                                       \
    fn();                                                                  \
    if (tst_checks_failed == before_) tst_passed++;                        \
    else { tst_failed++; fprintf(stderr, "FAIL %s\n", #fn); }              \
  } while (0)

#define TEST_REPORT() (printf("%d passed, %d failed\n", tst_passed, tst_failed), tst_failed != 0)

#endif
