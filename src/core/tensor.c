/* Tensor storage, geometry and views (the math kernels live beside it in tensor_*.c). */
#include "mbpo/tensor.h"
#include "mbpo/core.h"

#include <stdio.h>
#include <string.h>

int mbt_init(mbTensor *t, int ndim, const int64_t *size) {
  memset(t, 0, sizeof *t);
  if (ndim < 0 || ndim > MB_MAXDIM)
    return mbu_error("tensor: %d dimensions (at most %d)", ndim, MB_MAXDIM);
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (size[i] < 0) return mbu_error("tensor: negative size %lld in dimension %d",
                                      (long long)size[i], i + 1);
    if (size[i] > 0 && n > INT64_MAX / 8 / size[i])
      return mbu_error("tensor: shape too large");
    n *= size[i];
  }
  mbStorage *s = mbu_malloc(sizeof *s);
  if (!s) return MB_ERR;
  s->data = mbu_alignedAlloc((size_t)n * sizeof(float));
  if (!s->data) { mbu_free(s); return MB_ERR; }
  memset(s->data, 0, (size_t)n * sizeof(float));
  s->size = n;
  s->refcount = 1;
  t->storage = s;
  t->offset = 0;
  t->ndim = ndim;
  int64_t st = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    t->size[i] = size[i];
    t->stride[i] = st;
    st *= size[i] > 0 ? size[i] : 1;
  }
  return MB_OK;
}

void mbt_view(mbTensor *dst, const mbTensor *src) {
  if (dst != src) *dst = *src;
  if (dst->storage) dst->storage->refcount++;
}

void mbt_release(mbTensor *t) {
  mbStorage *s = t->storage;
  if (s && --s->refcount == 0) {
    mbu_free(s->data);
    mbu_free(s);
  }
  t->storage = NULL;
  t->ndim = 0;
}

int64_t mbt_numel(const mbTensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->size[i];
  return n;
}

int mbt_isContiguous(const mbTensor *t) {
  int64_t st = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->size[i] != 1 && t->stride[i] != st) return 0;
    st *= t->size[i];
  }
  return 1;
}

const char *mbt_shapeStr(const mbTensor *t, char *buf, size_t n) {
  size_t k = 0;
  k += (size_t)snprintf(buf + k, n - k, "[");
  for (int i = 0; i < t->ndim && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, i ? " x %lld" : "%lld", (long long)t->size[i]);
  if (k < n) snprintf(buf + k, n - k, "]");
  return buf;
}
