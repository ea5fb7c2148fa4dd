/* State descriptors (include/mbpo/state.h): the small helpers every object's descriptor
   uses, and the descriptor of a generator. */
#include "mbpo/state.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

mbStateBlock *mbu_block(mbStateBlock *b, const char *name, int dtype, int flags, void *data,
                        int ndim, int64_t d0, int64_t d1) {
  memset(b, 0, sizeof *b);
  b->name = name;
  b->dtype = dtype;
  b->flags = flags;
  b->data = data;
  b->ndim = ndim;
  b->shape[0] = d0;
  b->shape[1] = d1;
  return b + 1;
}

int64_t mbu_blockNumel(const mbStateBlock *b) {
  int64_t n = 1;
  for (int d = 0; d < b->ndim; d++) n *= b->shape[d];
  return n;
}

int mbu_dtypeSize(int dtype) {
  switch (dtype) {
  case MB_F32: case MB_I32: case MB_BOOL: return 4;
  case MB_STR: return 1;
  default: return 8;
  }
}

const char *mbu_dtypeName(int dtype) {
  static const char *const names[] = {"?", "F32", "I64", "F64", "U64", "I64", "bool", "string"};
  return dtype >= MB_F32 && dtype <= MB_STR ? names[dtype] : names[0];
}

const char *mbu_blockShape(char *buf, int n, const mbStateBlock *b) {
  if (b->ndim == 0) snprintf(buf, (size_t)n, "[]");
  else if (b->ndim == 1) snprintf(buf, (size_t)n, "[%lld]", (long long)b->shape[0]);
  else snprintf(buf, (size_t)n, "[%lld x %lld]", (long long)b->shape[0], (long long)b->shape[1]);
  return buf;
}

const char *mbu_shapeText(char *buf, size_t n, int dtype, int ndim, const int64_t *shape) {
  int k = dtype ? snprintf(buf, n, "%s [", mbu_dtypeName(dtype)) : snprintf(buf, n, "[");
  for (int d = 0; d < ndim && k > 0 && (size_t)k < n; d++)
    k += shape[d] < 0 ? snprintf(buf + k, n - (size_t)k, d ? " x N" : "N") :
         snprintf(buf + k, n - (size_t)k, d ? " x %lld" : "%lld", (long long)shape[d]);
  if (k > 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, "]");
  return buf;
}

const char *mbu_blockWant(char *buf, size_t n, const mbStateBlock *b) {
  if (b->ndim > 0) {
    int64_t shape[2] = {b->flags & MB_ST_ROWS ? -1 : b->shape[0], b->shape[1]};
    return mbu_shapeText(buf, n, b->dtype == MB_I32 ? MB_I64 : b->dtype, b->ndim, shape);
  }
  switch (b->dtype) {
  case MB_F32: case MB_F64: snprintf(buf, n, "a number"); break;
  case MB_BOOL: snprintf(buf, n, "a boolean"); break;
  case MB_STR: snprintf(buf, n, "'%.150s'", b->text); break;
  default:
    if (b->flags & MB_ST_CHECK) snprintf(buf, n, "%lld", (long long)*(const int64_t *)b->data);
    else snprintf(buf, n, "an integer");
  }
  return buf;
}

const char *mbu_blockCheck(char *buf, size_t n, const mbStateBlock *b) {
  int64_t numel = mbu_blockNumel(b);
  if ((b->flags & MB_ST_NONZERO) && b->dtype == MB_U64) {
    uint64_t any = 0;
    for (int64_t i = 0; i < numel; i++) any |= ((const uint64_t *)b->data)[i];
    if (!any) return "is all zero";
  }
  for (int64_t i = 0; i < numel && b->dtype == MB_F32; i++) {
    float v = ((const float *)b->data)[i];
    if (((b->flags & MB_ST_FINITE) && !isfinite(v)) ||
        ((b->flags & MB_ST_POSITIVE) && !(v > 0 && isfinite(v)))) {
      snprintf(buf, n, "[%lld] = %g is not a %s number", (long long)i + 1, (double)v,
               b->flags & MB_ST_POSITIVE ? "positive" : "finite");
      return buf;
    }
  }
  if (b->dtype == MB_I64 && b->ndim == 0 && !(b->flags & MB_ST_CHECK) &&
      *(const int64_t *)b->data < 0) {
    snprintf(buf, n, "is %lld: a count must be >= 0", (long long)*(const int64_t *)b->data);
    return buf;
  }
  for (int64_t i = 0; i < numel && (b->flags & MB_ST_INDEX); i++) {
    int v = ((const int *)b->data)[i];
    if (v < 0 || v >= b->bound) {
      snprintf(buf, n, "[%lld] = %d is not in 1..%lld", (long long)i + 1, v + 1,
               (long long)b->bound);
      return buf;
    }
  }
  return NULL;
}

mbStateBlock *mbr_rngBlocks(mbStateBlock *b, mbRng *g) {
  return mbu_block(b, "rng", MB_U64, MB_ST_NONZERO, g->s, 1, 4, 0);
}

mbStateBlock *mbn_adamBlocks(mbStateBlock *b, mbAdam *a, float *m, float *v, int64_t n) {
  b = mbu_block(b, "adam_m", MB_F32, 0, m, 1, n, 0);
  b = mbu_block(b, "adam_v", MB_F32, 0, v, 1, n, 0);
  b = mbu_block(b, "adam_t", MB_I64, 0, &a->t, 0, 0, 0);
  b = mbu_block(b, "lr", MB_F32, MB_ST_OPTIONAL, &a->lr, 0, 0, 0);
  b = mbu_block(b, "beta1", MB_F32, MB_ST_OPTIONAL, &a->beta1, 0, 0, 0);
  b = mbu_block(b, "beta2", MB_F32, MB_ST_OPTIONAL, &a->beta2, 0, 0, 0);
  return mbu_block(b, "eps", MB_F32, MB_ST_OPTIONAL, &a->eps, 0, 0, 0);
}
