/* Tensor indexing: index tensors to integer indices, index_select / index_copy of slices,
   Torch-style gather / scatter, masked selection of rows or elements, cat and stack.
   Every index is checked before anything is written. Temporary views below are plain
   copies of a tensor's struct narrowed in place: they borrow its storage reference. */
#include "mbpo/tensor.h"
#include "mbpo/core.h"

#include <math.h>
#include <string.h>

/* Index tensors are float tensors holding integral values (exact below 2^24). The range
   test runs on the float before the cast, so huge or infinite values cannot overflow int64;
   NaN fails the integer test. The message shows the value as the caller wrote it (1-based
   from Lua, base 1). */
int mbt_toIndex(int64_t *idx, const mbTensor *t, int64_t base, int64_t limit, const char *name) {
  mbTensor c;
  if (mbt_contiguous(&c, t) < 0) return MB_ERR;
  const float *v = mbt_data(&c);
  int64_t n = mbt_numel(&c);
  int rc = MB_OK;
  for (int64_t i = 0; i < n; i++) {
    float x = v[i];
    if (!(x == floorf(x))) {
      rc = mbu_error("%s: index %g is not an integer", name, (double)x);
      break;
    }
    if (x < (float)base || x >= (float)base + (float)limit) {
      rc = mbu_error("%s: index %.0f out of range [%lld, %lld]", name, (double)x,
                     (long long)base, (long long)(base + limit - 1));
      break;
    }
    idx[i] = (int64_t)x - base;
  }
  mbt_release(&c);
  return rc;
}

/* checks dim against t and every idx[0..n) against size[dim]; the binding has already
   checked them with 1-based messages, this guards C callers */
static int checkindex(const mbTensor *t, int dim, const int64_t *idx, int64_t n, const char *name) {
  char s[160];
  if (dim < 0 || dim >= t->ndim)
    return mbu_error("%s: dimension %d out of range [0, %d) for %s", name, dim, t->ndim,
                     mbt_shapeStr(t, s, sizeof s));
  for (int64_t i = 0; i < n; i++)
    if (idx[i] < 0 || idx[i] >= t->size[dim])
      return mbu_error("%s: index %lld out of range [0, %lld) in dimension %d of %s", name,
                       (long long)idx[i], (long long)t->size[dim], dim,
                       mbt_shapeStr(t, s, sizeof s));
  return MB_OK;
}

int mbt_argIndexCopy(const mbTensor *t, int dim, int64_t n, const mbTensor *src, int base,
                     const char *name) {
  char s1[160], s2[160];
  if (checkindex(t, dim, NULL, 0, name) < 0) return MB_ERR;
  int ok = src->ndim == t->ndim && src->size[dim] == n;
  for (int d = 0; ok && d < t->ndim; d++) ok = d == dim || src->size[d] == t->size[d];
  if (!ok)
    return mbu_error("%s: source %s does not fit %lld slices of %s along dimension %d", name,
                     mbt_shapeStr(src, s1, sizeof s1), (long long)n,
                     mbt_shapeStr(t, s2, sizeof s2), dim + base);
  return MB_OK;
}

int mbt_argGather(const mbTensor *t, int dim, const mbTensor *index, const mbTensor *src,
                  int base, const char *name) {
  char s1[160], s2[160], s3[160];
  if (checkindex(t, dim, NULL, 0, name) < 0) return MB_ERR;
  int ok = index->ndim == t->ndim && (!src || mbt_sameShape(index, src));
  for (int d = 0; ok && d < t->ndim; d++) ok = d == dim || index->size[d] <= t->size[d];
  if (ok) return MB_OK;
  if (src)
    return mbu_error("%s: index %s and source %s must have one shape that fits %s", name,
                     mbt_shapeStr(index, s1, sizeof s1), mbt_shapeStr(src, s2, sizeof s2),
                     mbt_shapeStr(t, s3, sizeof s3));
  return mbu_error("%s: index %s does not fit %s along dimension %d", name,
                   mbt_shapeStr(index, s1, sizeof s1), mbt_shapeStr(t, s2, sizeof s2), dim + base);
}

/* floats per slice of dimension 0 when t is contiguous, else -1: rows of a contiguous
   tensor are contiguous blocks, so gathering rows (the replay-buffer case) is one memcpy
   per row instead of an iterator per row */
static int64_t rowlen(const mbTensor *t) {
  if (!mbt_isContiguous(t) || t->ndim == 0) return -1;
  int64_t n = 1;
  for (int d = 1; d < t->ndim; d++) n *= t->size[d];
  return n;
}

/* dst slice i of dim = src slice j of dim, through the strided copy (the general path);
   the views are borrowed struct copies, so no references are taken or dropped */
static void copyslice(mbTensor *dst, int64_t i, const mbTensor *src, int64_t j, int dim) {
  mbTensor a = *dst, b = *src;
  mbt_select(&a, &a, dim, i);
  mbt_select(&b, &b, dim, j);
  mbt_copy(&a, &b);
}

/* out is cleared first so that a failure leaves it empty (and safe to release) */
int mbt_indexSelect(mbTensor *out, const mbTensor *src, int dim, const int64_t *idx, int64_t n) {
  memset(out, 0, sizeof *out);
  if (checkindex(src, dim, idx, n, "index_select") < 0) return MB_ERR;
  if (n < 0) return mbu_error("index_select: negative count %lld", (long long)n);
  int64_t size[MB_MAXDIM];
  memcpy(size, src->size, sizeof size);
  size[dim] = n;
  if (mbt_empty(out, src->ndim, size) < 0) return MB_ERR;
  int64_t len = dim == 0 ? rowlen(src) : -1;
  if (len >= 0) { /* rows of a contiguous source into the fresh contiguous out */
    const float *s = mbt_data(src);
    float *o = mbt_data(out);
    for (int64_t k = 0; k < n; k++)
      memcpy(o + k * len, s + idx[k] * len, (size_t)len * sizeof(float));
    return MB_OK;
  }
  for (int64_t k = 0; k < n; k++) copyslice(out, k, src, idx[k], dim);
  return MB_OK;
}

/* the inverse of index_select; memmove because src may be a view of dst */
int mbt_indexCopy(mbTensor *dst, int dim, const int64_t *idx, int64_t n, const mbTensor *src) {
  if (checkindex(dst, dim, idx, n, "index_copy") < 0 ||
      mbt_argIndexCopy(dst, dim, n, src, 0, "index_copy") < 0)
    return MB_ERR;
  int64_t len = dim == 0 ? rowlen(dst) : -1;
  if (len >= 0 && rowlen(src) == len) {
    const float *s = mbt_data(src);
    float *o = mbt_data(dst);
    for (int64_t k = 0; k < n; k++)
      memmove(o + idx[k] * len, s + k * len, (size_t)len * sizeof(float));
    return MB_OK;
  }
  for (int64_t k = 0; k < n; k++) copyslice(dst, idx[k], src, k, dim);
  return MB_OK;
}

/* Shared walk of gather and scatter: `shape` is the index's shape; for each position (in
   row-major order) the element of `big` at that position with index[pos] at dim pairs with
   the element of `small` at that position. */
static int gather_walk(const mbTensor *big, const mbTensor *small, int dim, const int64_t *index,
                       int scatter, const char *name) {
  char s2[160];
  if (mbt_argGather(big, dim, small, NULL, 0, name) < 0) return MB_ERR;
  int64_t n = mbt_numel(small);
  for (int64_t i = 0; i < n; i++)
    if (index[i] < 0 || index[i] >= big->size[dim])
      return mbu_error("%s: index %lld out of range [0, %lld) in dimension %d of %s", name,
                       (long long)index[i], (long long)big->size[dim], dim,
                       mbt_shapeStr(big, s2, sizeof s2));
  if (n == 0) return MB_OK;
  /* walk the positions of small with a multi-index counter; big's offset uses the index
     value in place of the counter at dim */
  int64_t cnt[MB_MAXDIM] = {0};
  float *bd = mbt_data(big), *sd = mbt_data(small);
  for (int64_t i = 0; i < n; i++) {
    int64_t ob = 0, os = 0;
    for (int d = 0; d < small->ndim; d++) {
      os += cnt[d] * small->stride[d];
      ob += (d == dim ? index[i] : cnt[d]) * big->stride[d];
    }
    if (scatter) bd[ob] = sd[os];
    else sd[os] = bd[ob];
    for (int d = small->ndim - 1; d >= 0; d--) {
      if (++cnt[d] < small->size[d]) break;
      cnt[d] = 0;
    }
  }
  return MB_OK;
}

int mbt_gather(mbTensor *out, const mbTensor *src, int dim, const int64_t *index) {
  return gather_walk(src, out, dim, index, 0, "gather");
}

int mbt_scatter(mbTensor *dst, int dim, const int64_t *index, const mbTensor *src) {
  return gather_walk(dst, src, dim, index, 1, "scatter");
}

/* counts first (the output size), then copies in order; a mask of src's own shape selects
   elements, a vector selects rows (a 1-d src is both, with the same result) */
int mbt_maskedSelect(mbTensor *out, const mbTensor *src, const mbTensor *mask) {
  char s1[160], s2[160];
  memset(out, 0, sizeof *out);
  int elements = mbt_sameShape(mask, src);
  if (!elements && !(mask->ndim == 1 && src->ndim >= 1 && mask->size[0] == src->size[0]))
    return mbu_error("masked_select: mask %s must be a vector of %s's first size or have its "
                     "shape", mbt_shapeStr(mask, s1, sizeof s1), mbt_shapeStr(src, s2, sizeof s2));
  int64_t n = mbt_countNonzero(mask);
  mbTensor m, c = {0};
  if (mbt_contiguous(&m, mask) < 0) return MB_ERR;
  const float *mv = mbt_data(&m);
  int rc = MB_OK;
  if (elements) {
    if (mbt_contiguous(&c, src) < 0 || mbt_empty(out, 1, &n) < 0) {
      mbt_release(&m);
      mbt_release(&c);
      return MB_ERR;
    }
    const float *cv = mbt_data(&c);
    float *o = mbt_data(out);
    int64_t total = mbt_numel(src), k = 0;
    for (int64_t i = 0; i < total; i++)
      if (mv[i] != 0) o[k++] = cv[i];
    mbt_release(&c);
  } else {
    int64_t size[MB_MAXDIM];
    memcpy(size, src->size, sizeof size);
    size[0] = n;
    if (mbt_empty(out, src->ndim, size) < 0) rc = MB_ERR;
    else {
      int64_t len = rowlen(src), k = 0;
      for (int64_t i = 0; i < src->size[0]; i++) {
        if (mv[i] == 0) continue;
        if (len >= 0)
          memcpy(mbt_data(out) + k * len, mbt_data(src) + i * len, (size_t)len * sizeof(float));
        else
          copyslice(out, k, src, i, 0);
        k++;
      }
    }
  }
  mbt_release(&m);
  return rc;
}

/* checks every shape, allocates the sum along dim, then copies each input into its narrowed
   block of out (any input layout: mbt_copy reads strides) */
int mbt_cat(mbTensor *out, const mbTensor *const *list, int n, int dim) {
  char s1[160], s2[160];
  memset(out, 0, sizeof *out);
  if (n < 1) return mbu_error("cat: no tensors to concatenate");
  const mbTensor *f = list[0];
  if (dim < 0 || dim >= f->ndim)
    return mbu_error("cat: dimension %d out of range [0, %d) for %s", dim, f->ndim,
                     mbt_shapeStr(f, s1, sizeof s1));
  int64_t size[MB_MAXDIM];
  memcpy(size, f->size, sizeof size);
  size[dim] = 0;
  for (int i = 0; i < n; i++) {
    const mbTensor *t = list[i];
    int ok = t->ndim == f->ndim;
    for (int d = 0; ok && d < f->ndim; d++) ok = d == dim || t->size[d] == f->size[d];
    if (!ok)
      return mbu_error("cat: tensor %d of shape %s does not match %s (tensor 1) outside the "
                       "concatenated dimension", i + 1, mbt_shapeStr(t, s1, sizeof s1),
                       mbt_shapeStr(f, s2, sizeof s2));
    size[dim] += t->size[dim];
  }
  if (mbt_empty(out, f->ndim, size) < 0) return MB_ERR;
  int64_t at = 0;
  for (int i = 0; i < n; i++) {
    mbTensor v = *out;
    mbt_narrow(&v, &v, dim, at, list[i]->size[dim]);
    mbt_copy(&v, list[i]);
    at += list[i]->size[dim];
  }
  return MB_OK;
}

/* as cat, into select(out, dim, i) for input i of a shape with the new dimension */
int mbt_stack(mbTensor *out, const mbTensor *const *list, int n, int dim) {
  char s1[160], s2[160];
  memset(out, 0, sizeof *out);
  if (n < 1) return mbu_error("stack: no tensors to stack");
  const mbTensor *f = list[0];
  if (dim < 0 || dim > f->ndim || f->ndim >= MB_MAXDIM)
    return mbu_error("stack: dimension %d out of range [0, %d] for %s", dim, f->ndim,
                     mbt_shapeStr(f, s1, sizeof s1));
  for (int i = 1; i < n; i++)
    if (!mbt_sameShape(list[i], f))
      return mbu_error("stack: tensor %d of shape %s differs from %s (tensor 1)", i + 1,
                       mbt_shapeStr(list[i], s1, sizeof s1), mbt_shapeStr(f, s2, sizeof s2));
  int64_t size[MB_MAXDIM];
  for (int d = 0, k = 0; d <= f->ndim; d++) size[d] = d == dim ? n : f->size[k++];
  if (mbt_empty(out, f->ndim + 1, size) < 0) return MB_ERR;
  for (int i = 0; i < n; i++) {
    mbTensor v = *out;
    mbt_select(&v, &v, dim, i);
    mbt_copy(&v, list[i]);
  }
  return MB_OK;
}
