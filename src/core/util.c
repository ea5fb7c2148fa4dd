/* Core utilities: the per-thread last-error message, checked allocation, threads, clock. */
#include "mbpo/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cblas.h>

volatile sig_atomic_t mbu_interrupted = 0;

static _Thread_local char errbuf[1024];

int mbu_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errbuf, sizeof errbuf, fmt, ap);
  va_end(ap);
  return MB_ERR;
}

const char *mbu_lasterror(void) { return errbuf; }

void *mbu_malloc(size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  if (!p) mbu_error("out of memory (%zu bytes)", bytes);
  return p;
}

void *mbu_calloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) mbu_error("out of memory (%zu x %zu bytes)", n, size);
  return p;
}

void *mbu_alignedAlloc(size_t bytes) {
  void *p = NULL;
  size_t rounded = (bytes + 63) & ~(size_t)63;
  if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0) {
    mbu_error("out of memory (%zu bytes)", bytes);
    return NULL;
  }
  return p;
}

void mbu_free(void *p) { free(p); }

static int nthreads = 1;

void mbu_setThreads(int n) {
  if (n < 1) n = 1;
  nthreads = n;
  openblas_set_num_threads(n);
}

int mbu_threads(void) { return nthreads; }

double mbu_clock(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
