/* Tensor storage, geometry and views (the math kernels live beside it in tensor_*.c).
   Storage is one 64-byte aligned float array with a reference count; a tensor is a view of
   it: an offset, sizes and strides in floats. Views never copy: narrow and select move the
   offset, transpose swaps strides, view re-labels a contiguous block. Only reshape and
   contiguous copy, and only when the view's layout demands it. */
#include "mbpo/tensor.h"
#include "mbpo/core.h"

#include <stdio.h>
#include <string.h>

/* Storage ------------------------------------------------------------------------------ */

/* allocates storage for a contiguous tensor of the given shape; zero-fills when asked.
   The size check keeps numel * sizeof(float) * 2 inside int64 so no later product
   overflows. */
static int alloc(mbTensor *t, int ndim, const int64_t *size, int zero) {
  memset(t, 0, sizeof *t);
  if (ndim < 0 || ndim > MB_MAXDIM)
    return mbu_error("tensor: %d dimensions (at most %d)", ndim, MB_MAXDIM);
  /* nz, the product of the non-zero sizes, is bounded too: a zero dimension must not let
     the others (and so the strides and any product of sizes) overflow */
  int64_t n = 1, nz = 1;
  for (int i = 0; i < ndim; i++) {
    if (size[i] < 0) return mbu_error("tensor: negative size %lld in dimension %d",
                                      (long long)size[i], i + 1);
    if (size[i] > 0 && nz > INT64_MAX / 8 / size[i]) {
      char want[160];
      return mbu_error("tensor: shape %s too large", mbt_sizeStr(want, sizeof want, ndim, size));
    }
    n *= size[i];
    if (size[i] > 0) nz *= size[i];
  }
  mbStorage *s = mbu_malloc(sizeof *s);
  if (!s) return MB_ERR;
  s->data = mbu_alignedAlloc((size_t)n * sizeof(float));
  if (!s->data) { mbu_free(s); return MB_ERR; }
  if (zero) memset(s->data, 0, (size_t)n * sizeof(float));
  s->size = n;
  s->refcount = 1;
  t->storage = s;
  t->offset = 0;
  t->ndim = ndim;
  /* row-major strides; a zero size keeps the later strides distinct (harmless, never used) */
  int64_t st = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    t->size[i] = size[i];
    t->stride[i] = st;
    st *= size[i] > 0 ? size[i] : 1;
  }
  return MB_OK;
}

int mbt_init(mbTensor *t, int ndim, const int64_t *size) { return alloc(t, ndim, size, 1); }

int mbt_empty(mbTensor *t, int ndim, const int64_t *size) { return alloc(t, ndim, size, 0); }

/* sharing is a struct copy plus one reference */
void mbt_view(mbTensor *dst, const mbTensor *src) {
  if (dst != src) *dst = *src;
  if (dst->storage) dst->storage->refcount++;
}

/* the last reference frees the data and the storage record; t is left empty, so a second
   release (as __gc after __close) does nothing */
void mbt_release(mbTensor *t) {
  mbStorage *s = t->storage;
  if (s && --s->refcount == 0) {
    mbu_free(s->data);
    mbu_free(s);
  }
  t->storage = NULL;
  t->ndim = 0;
}

/* Geometry ------------------------------------------------------------------------------- */

int64_t mbt_numel(const mbTensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->size[i];
  return n;
}

/* strides must match the row-major ones except on size-1 dimensions, whose stride is
   never used to step (select and unsqueeze leave arbitrary ones there) */
int mbt_isContiguous(const mbTensor *t) {
  int64_t st = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->size[i] != 1 && t->stride[i] != st) return 0;
    st *= t->size[i];
  }
  return 1;
}

int mbt_sameShape(const mbTensor *a, const mbTensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->size[i] != b->size[i]) return 0;
  return 1;
}

/* "[2 x 3]", "[5]", "[]" for 0-d; truncated safely when buf is short */
const char *mbt_sizeStr(char *buf, size_t n, int ndim, const int64_t *size) {
  size_t k = 0;
  if (n == 0) return buf;
  buf[0] = 0;
  k += (size_t)snprintf(buf + k, n - k, "[");
  for (int i = 0; i < ndim && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, i ? " x %lld" : "%lld", (long long)size[i]);
  if (k < n) snprintf(buf + k, n - k, "]");
  return buf;
}

const char *mbt_shapeStr(const mbTensor *t, char *buf, size_t n) {
  return mbt_sizeStr(buf, n, t->ndim, t->size);
}

/* offset = base offset + sum of index * stride */
float *mbt_ptr(const mbTensor *t, const int64_t *idx) {
  int64_t off = t->offset;
  for (int i = 0; i < t->ndim; i++) off += idx[i] * t->stride[i];
  return t->storage->data + off;
}

/* Views ---------------------------------------------------------------------------------
   Each computes the new geometry in a local copy r of src, then publishes it into dst,
   taking a reference unless dst is src. */

static void publish(mbTensor *dst, const mbTensor *src, const mbTensor *r) {
  if (dst != src && src->storage) src->storage->refcount++;
  *dst = *r;
}

/* checks that dim names a dimension of t; op names the operation in the message */
static int checkdim(const mbTensor *t, int dim, const char *op) {
  char s[160];
  if (dim < 0 || dim >= t->ndim)
    return mbu_error("%s: dimension %d out of range [0, %d) for %s", op, dim, t->ndim,
                     mbt_shapeStr(t, s, sizeof s));
  return MB_OK;
}

/* the offset moves to element start of dim; that size shrinks to len; strides stay */
int mbt_narrow(mbTensor *dst, const mbTensor *src, int dim, int64_t start, int64_t len) {
  char s[160];
  if (checkdim(src, dim, "narrow") < 0) return MB_ERR;
  /* written so that start + len cannot overflow */
  if (start < 0 || len < 0 || start > src->size[dim] - len)
    return mbu_error("narrow: range [%lld, %lld) out of [0, %lld) in dimension %d of %s",
                     (long long)start, (long long)(start + len), (long long)src->size[dim], dim,
                     mbt_shapeStr(src, s, sizeof s));
  mbTensor r = *src;
  r.offset += start * src->stride[dim];
  r.size[dim] = len;
  publish(dst, src, &r);
  return MB_OK;
}

/* as narrow to one element, then the dimension is dropped by shifting the later ones */
int mbt_select(mbTensor *dst, const mbTensor *src, int dim, int64_t index) {
  char s[160];
  if (checkdim(src, dim, "select") < 0) return MB_ERR;
  if (index < 0 || index >= src->size[dim])
    return mbu_error("select: index %lld out of [0, %lld) in dimension %d of %s",
                     (long long)index, (long long)src->size[dim], dim,
                     mbt_shapeStr(src, s, sizeof s));
  mbTensor r = *src;
  r.offset += index * src->stride[dim];
  for (int i = dim; i + 1 < src->ndim; i++) {
    r.size[i] = src->size[i + 1];
    r.stride[i] = src->stride[i + 1];
  }
  r.ndim--;
  publish(dst, src, &r);
  return MB_OK;
}

/* swapping sizes and strides is the whole transpose: the data stays where it is */
int mbt_transpose(mbTensor *dst, const mbTensor *src, int d1, int d2) {
  if (checkdim(src, d1, "transpose") < 0 || checkdim(src, d2, "transpose") < 0) return MB_ERR;
  mbTensor r = *src;
  r.size[d1] = src->size[d2];
  r.stride[d1] = src->stride[d2];
  r.size[d2] = src->size[d1];
  r.stride[d2] = src->stride[d1];
  publish(dst, src, &r);
  return MB_OK;
}

/* later dimensions shift up one place to make room for the size-1 one */
int mbt_unsqueeze(mbTensor *dst, const mbTensor *src, int dim) {
  char s[160];
  /* the messages name no position: C counts from 0, Lua from 1, and both reach them */
  if (src->ndim >= MB_MAXDIM)
    return mbu_error("unsqueeze: %s already has %d dimensions, the most a tensor holds",
                     mbt_shapeStr(src, s, sizeof s), MB_MAXDIM);
  if (dim < 0 || dim > src->ndim)
    return mbu_error("unsqueeze: position %d out of range [0, %d] for %s", dim, src->ndim,
                     mbt_shapeStr(src, s, sizeof s));
  mbTensor r = *src;
  for (int i = src->ndim; i > dim; i--) {
    r.size[i] = src->size[i - 1];
    r.stride[i] = src->stride[i - 1];
  }
  r.size[dim] = 1;
  /* the stride of a size-1 dimension is never used to step; keep it row-major-like */
  r.stride[dim] = dim < src->ndim ? src->size[dim] * src->stride[dim] : 1;
  r.ndim++;
  publish(dst, src, &r);
  return MB_OK;
}

/* keeps the dimensions not dropped, in order; dim < 0 drops every size-1 one */
int mbt_squeeze(mbTensor *dst, const mbTensor *src, int dim) {
  char s[160];
  if (dim >= 0) {
    if (checkdim(src, dim, "squeeze") < 0) return MB_ERR;
    if (src->size[dim] != 1)
      return mbu_error("squeeze: the dimension to drop of %s has size %lld, not 1",
                       mbt_shapeStr(src, s, sizeof s), (long long)src->size[dim]);
  }
  mbTensor r = *src;
  int k = 0;
  for (int i = 0; i < src->ndim; i++) {
    int drop = dim >= 0 ? i == dim : src->size[i] == 1;
    if (drop) continue;
    r.size[k] = src->size[i];
    r.stride[k] = src->stride[i];
    k++;
  }
  r.ndim = k;
  publish(dst, src, &r);
  return MB_OK;
}

/* the product of the known sizes must divide numel when a -1 is present, and equal it
   otherwise; a second -1 is reported as an invalid size */
int mbt_inferShape(int64_t *out, int ndim, const int64_t *size, int64_t numel, const char *name,
                   const mbTensor *src) {
  char s[160], want[160];
  int infer = -1;
  int64_t known = 1, nz = 1;  /* nz: the product of the non-zero sizes, bounded as well */
  if (ndim < 0 || ndim > MB_MAXDIM)
    return mbu_error("%s: %d dimensions (at most %d)", name, ndim, MB_MAXDIM);
  for (int i = 0; i < ndim; i++) {
    if (size[i] == -1 && infer < 0) { infer = i; continue; }
    if (size[i] < 0)
      return mbu_error("%s: invalid size %lld in %s", name, (long long)size[i],
                       mbt_sizeStr(want, sizeof want, ndim, size));
    if (size[i] > 0 && nz > INT64_MAX / 8 / size[i])
      return mbu_error("%s: shape %s too large", name, mbt_sizeStr(want, sizeof want, ndim, size));
    known *= size[i];
    if (size[i] > 0) nz *= size[i];
  }
  for (int i = 0; i < ndim; i++) out[i] = size[i];
  if (infer >= 0) {
    if (known == 0 || numel % known != 0)
      return mbu_error("%s: cannot infer the -1 in %s for %s (%lld elements)", name,
                       mbt_sizeStr(want, sizeof want, ndim, size), mbt_shapeStr(src, s, sizeof s),
                       (long long)numel);
    out[infer] = numel / known;
    known *= out[infer];
  }
  if (known != numel)
    return mbu_error("%s: shape %s (%lld elements) does not fit %s (%lld elements)", name,
                     mbt_sizeStr(want, sizeof want, ndim, size), (long long)known,
                     mbt_shapeStr(src, s, sizeof s), (long long)numel);
  return MB_OK;
}

/* Arguments counted from base ---------------------------------------------------------- */

int mbt_argDim(int *dim, const mbTensor *t, int64_t d, int base, int extra, const char *name) {
  char s[160];
  int n = t->ndim + extra;
  int64_t d0 = d < 0 ? d + n : d - base;
  if (d0 < 0 || d0 >= n)
    return mbu_error("%s: dimension %lld out of range [%d, %d] for %s", name, (long long)d, base,
                     n - 1 + base, mbt_shapeStr(t, s, sizeof s));
  *dim = (int)d0;
  return MB_OK;
}

int mbt_argIndex(int64_t *i, const mbTensor *t, int dim, int64_t index, int base,
                 const char *name) {
  char s[160];
  if (checkdim(t, dim, name) < 0) return MB_ERR;
  if (index < base || index - base >= t->size[dim])
    return mbu_error("%s: index %lld out of range [%d, %lld] in dimension %d of %s", name,
                     (long long)index, base, (long long)(t->size[dim] - 1 + base), dim + base,
                     mbt_shapeStr(t, s, sizeof s));
  *i = index - base;
  return MB_OK;
}

/* the test cannot overflow; the last element's position wraps (defined) for absurd values */
int mbt_argRange(int64_t *first, const mbTensor *t, int dim, int64_t start, int64_t len,
                 int base, const char *name) {
  char s[160];
  if (checkdim(t, dim, name) < 0) return MB_ERR;
  int64_t size = t->size[dim];
  if (len < 0 || start < base || start - base > size || len > size - (start - base))
    return mbu_error("%s: elements %lld to %lld out of range [%d, %lld] in dimension %d of %s",
                     name, (long long)start, (long long)((uint64_t)start + (uint64_t)len - 1), base,
                     (long long)(size - 1 + base), dim + base, mbt_shapeStr(t, s, sizeof s));
  *first = start - base;
  return MB_OK;
}

/* contiguous geometry of the given shape on src's storage and offset */
static void setcontiguous(mbTensor *r, int ndim, const int64_t *size) {
  r->ndim = ndim;
  int64_t st = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    r->size[i] = size[i];
    r->stride[i] = st;
    st *= size[i] > 0 ? size[i] : 1;
  }
}

/* a contiguous block read with new row-major strides: same storage, same offset */
int mbt_viewShape(mbTensor *dst, const mbTensor *src, int ndim, const int64_t *size) {
  char s[160];
  int64_t shape[MB_MAXDIM];
  if (mbt_inferShape(shape, ndim, size, mbt_numel(src), "view", src) < 0) return MB_ERR;
  if (!mbt_isContiguous(src))
    return mbu_error("view: %s tensor is not contiguous (use reshape, which copies, or "
                     "contiguous)", mbt_shapeStr(src, s, sizeof s));
  mbTensor r = *src;
  setcontiguous(&r, ndim, shape);
  publish(dst, src, &r);
  return MB_OK;
}

/* a view when it can be one; otherwise a contiguous copy (in src's row-major order)
   relabelled with the new shape */
int mbt_reshape(mbTensor *dst, const mbTensor *src, int ndim, const int64_t *size) {
  int64_t shape[MB_MAXDIM];
  if (mbt_inferShape(shape, ndim, size, mbt_numel(src), "reshape", src) < 0) return MB_ERR;
  if (mbt_isContiguous(src)) {
    mbTensor r = *src;
    setcontiguous(&r, ndim, shape);
    publish(dst, src, &r);
    return MB_OK;
  }
  mbTensor c;
  if (mbt_contiguous(&c, src) < 0) return MB_ERR;
  setcontiguous(&c, ndim, shape);
  *dst = c;
  return MB_OK;
}

/* the copy goes through mbt_copy, whose iterator reads any strides */
int mbt_contiguous(mbTensor *dst, const mbTensor *src) {
  if (mbt_isContiguous(src)) {
    mbt_view(dst, src);
    return MB_OK;
  }
  mbTensor c;
  if (mbt_empty(&c, src->ndim, src->size) < 0) return MB_ERR;
  if (mbt_copy(&c, src) < 0) {
    mbt_release(&c);
    return MB_ERR;
  }
  *dst = c;
  return MB_OK;
}
