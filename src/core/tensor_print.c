/* mbt_format: a tensor as text, as Torch prints it (tensor.h). The values (2-d slices of
   larger tensors under "(i,j,.,.) =" headers) and a last line "[mbpo.Tensor of size 2x3]".
   Past 1000 elements only the first and last three entries of each dimension are shown, with
   "..." between. One number format for all: integers when every shown value is one, else
   fixed or exponent by magnitude. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbpo/core.h"
#include "mbpo/tensor.h"

#define EDGE 3

typedef struct printer {
  const mbTensor *t;
  int summarize;
  int pass;           /* 0 gather the format, 1 measure the width, 2 write */
  double maxabs;
  int allint;
  int mode;           /* 0 fixed, 1 integer, 2 exponent */
  int width;
  char *s;            /* pass 2: the text, len bytes of cap */
  size_t len, cap;
  int oom;
} printer;

static void addstr(printer *p, const char *s) {
  size_t n = strlen(s);
  if (p->oom) return;
  if (p->len + n + 1 > p->cap) {
    size_t cap = (p->len + n + 1) * 2;
    char *q = realloc(p->s, cap);
    if (!q) { p->oom = 1; return; }
    p->s = q;
    p->cap = cap;
  }
  memcpy(p->s + p->len, s, n + 1);
  p->len += n;
}

static void fmtval(const printer *p, char *buf, size_t n, float v) {
  if (v != v) snprintf(buf, n, "nan"); /* not "-nan" for a NaN with its sign bit set */
  else if (p->mode == 1) snprintf(buf, n, "%.0f", (double)v);
  else if (p->mode == 2) snprintf(buf, n, "%.4e", (double)v);
  else snprintf(buf, n, "%.4f", (double)v);
}

static void putval(printer *p, float v) {
  char buf[64];
  if (p->pass == 0) {
    if (isfinite(v)) {
      if (fabsf(v) > p->maxabs) p->maxabs = fabsf(v);
      if (v != floorf(v)) p->allint = 0;
    }
    return;
  }
  fmtval(p, buf, sizeof buf, v);
  int len = (int)strlen(buf);
  if (p->pass == 1) {
    if (len > p->width) p->width = len;
    return;
  }
  for (int i = len; i < p->width + 1; i++) addstr(p, " ");
  addstr(p, buf);
}

static void putstr(printer *p, const char *s) {
  if (p->pass == 2) addstr(p, s);
}

/* one row (the last dimension) from offset off */
static void printrow(printer *p, int64_t off) {
  const mbTensor *t = p->t;
  int last = t->ndim - 1;
  int64_t size = t->size[last], all = p->summarize && size > 2 * EDGE ? 2 * EDGE + 1 : size;
  for (int64_t k = 0; k < all; k++) {
    int64_t i = k;
    if (p->summarize && size > 2 * EDGE) {
      if (k == EDGE) { putstr(p, " ..."); continue; }
      i = k < EDGE ? k : size - (2 * EDGE + 1 - k);
    }
    putval(p, t->storage->data[off + i * t->stride[last]]);
  }
  putstr(p, "\n");
}

/* the dimensions from dim on, at offset off; idx holds the 1-based leading indices */
static void printdims(printer *p, int dim, int64_t off, int64_t *idx) {
  const mbTensor *t = p->t;
  if (dim == t->ndim - 1) {
    printrow(p, off);
    return;
  }
  int64_t size = t->size[dim], all = p->summarize && size > 2 * EDGE ? 2 * EDGE + 1 : size;
  for (int64_t k = 0; k < all; k++) {
    int64_t i = k;
    if (p->summarize && size > 2 * EDGE) {
      if (k == EDGE) { putstr(p, dim == t->ndim - 2 ? " ...\n" : "...\n\n"); continue; }
      i = k < EDGE ? k : size - (2 * EDGE + 1 - k);
    }
    idx[dim] = i + 1;
    if (dim == t->ndim - 3) { /* a 2-d slice header */
      putstr(p, "(");
      for (int d = 0; d <= dim; d++) {
        char num[32];
        snprintf(num, sizeof num, "%lld,", (long long)idx[d]);
        putstr(p, num);
      }
      putstr(p, ".,.) =\n");
    }
    printdims(p, dim + 1, off + i * t->stride[dim], idx);
    if (dim == t->ndim - 3) putstr(p, "\n");
  }
}

char *mbt_format(const mbTensor *t) {
  int64_t n = mbt_numel(t), idx[MB_MAXDIM] = {0};
  printer p = {t, n > 1000, 0, 0, 1, 0, 1, NULL, 0, 0, 0};
  for (p.pass = 0; p.pass < 3 && n > 0; p.pass++) {
    if (p.pass == 1) {
      if (p.allint && p.maxabs < 1e9) p.mode = 1;
      else if (p.maxabs >= 1e5 || (p.maxabs > 0 && p.maxabs < 1e-3)) p.mode = 2;
    }
    if (t->ndim == 0) {
      putval(&p, mbt_data(t)[0]);
      putstr(&p, "\n");
    } else {
      printdims(&p, 0, t->offset, idx);
    }
  }
  if (t->ndim == 0) {
    addstr(&p, "[mbpo.Tensor with no dimension]");
  } else {
    addstr(&p, "[mbpo.Tensor of size ");
    for (int d = 0; d < t->ndim; d++) {
      char num[32];
      snprintf(num, sizeof num, d ? "x%lld" : "%lld", (long long)t->size[d]);
      addstr(&p, num);
    }
    addstr(&p, "]");
  }
  if (p.oom) {
    free(p.s);
    mbu_error("tostring: out of memory");
    return NULL;
  }
  return p.s;
}
