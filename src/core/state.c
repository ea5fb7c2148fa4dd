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

/* an int64 into an int; 0 when out of range */
static int toint(int *out, int64_t v) {
  if (v < -2147483647 || v > 2147483647) return 0;
  *out = (int)v;
  return 1;
}

/* mbu_blockTake but the check of an identity's value */
static int take(mbStateBlock *s, const mbStateBlock *v, unsigned char **scratch) {
  if (s->ndim == 0) {  /* a scalar: converted into 8 bytes of scratch */
    if (v->ndim != 0) return 0;
    void *p = *scratch;
    *scratch += 8;
    s->data = p;
    switch (s->dtype) {
    case MB_STR: return v->dtype == MB_STR && strcmp(v->data, s->text) == 0;
    case MB_BOOL: return v->dtype == MB_BOOL && (*(int *)p = *(const int *)v->data, 1);
    case MB_F32: case MB_F64: {
      if (v->dtype != MB_F64 && v->dtype != MB_I64) return 0;
      double d = v->dtype == MB_F64 ? *(const double *)v->data : (double)*(const int64_t *)v->data;
      if (s->dtype == MB_F32) *(float *)p = (float)d;
      else *(double *)p = d;
      return 1;
    }
    case MB_I32: return v->dtype == MB_I64 && toint(p, *(const int64_t *)v->data);
    default:
      if (v->dtype != MB_I64) return 0;
      *(int64_t *)p = *(const int64_t *)v->data;
      return 1;
    }
  }
  /* arrays: the same dtype (MB_I32 as I64) and shape (the first dimension free for ROWS) */
  if (v->dtype != (s->dtype == MB_I32 ? MB_I64 : s->dtype) || v->ndim != s->ndim) return 0;
  for (int d = 0; d < s->ndim; d++)
    if (v->shape[d] != s->shape[d] && !(d == 0 && (s->flags & MB_ST_ROWS))) return 0;
  s->shape[0] = v->shape[0];
  s->data = v->data;
  if (s->dtype != MB_I32) return 1;
  int64_t n = mbu_blockNumel(s);   /* I64 values into ints (1-based indices back to 0-based) */
  int *p = (int *)(void *)*scratch, sub = s->flags & MB_ST_INDEX ? 1 : 0;
  *scratch += ((size_t)n * sizeof(int) + 7) & ~(size_t)7;
  for (int64_t i = 0; i < n; i++)
    if (!toint(&p[i], ((const int64_t *)v->data)[i] - sub)) return 0;
  s->data = p;
  return 1;
}

int mbu_blockTake(mbStateBlock *s, const mbStateBlock *v, unsigned char **scratch) {
  const void *own = s->data;
  if (!take(s, v, scratch)) return 0;
  size_t bytes = (size_t)(mbu_blockNumel(s) * mbu_dtypeSize(s->dtype));
  return !(s->flags & MB_ST_CHECK) || s->dtype == MB_STR || !bytes || !memcmp(s->data, own, bytes);
}

void mbu_blockCopy(mbStateBlock *b, const mbStateBlock *s, int n) {
  for (int i = 0; i < n; i++) {
    size_t bytes = (size_t)(mbu_blockNumel(&b[i]) * mbu_dtypeSize(b[i].dtype));
    if (!(b[i].flags & MB_ST_CHECK) && s[i].data != b[i].data && bytes)
      memmove(b[i].data, s[i].data, bytes);
  }
}

void mbu_blockWords(uint64_t *out, const mbStateBlock *b) {
  int64_t n = mbu_blockNumel(b);
  if (b->dtype != MB_I32) {
    if (n) memcpy(out, b->data, sizeof(uint64_t) * (size_t)n);
    return;
  }
  int add = b->flags & MB_ST_INDEX ? 1 : 0;
  for (int64_t i = 0; i < n; i++) out[i] = (uint64_t)((int64_t)((const int *)b->data)[i] + add);
}

size_t mbu_blockScratch(const mbStateBlock *b, int n) {
  size_t bytes = 8;
  for (int i = 0; i < n; i++)
    bytes += b[i].ndim == 0 ? 8 : b[i].dtype == MB_I32 ?
      (((size_t)mbu_blockNumel(&b[i]) * sizeof(int) + 7) & ~(size_t)7) : 0;
  return bytes;
}

mbStateBlock *mbg_stateBlocks(mbStateBlock *b, mbRng *g) {
  return mbu_block(b, "rng", MB_U64, MB_ST_NONZERO, g->s, 1, 4, 0);
}
