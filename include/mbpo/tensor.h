/* mbpo tensors: float32 n-d strided views over reference-counted storage.
   A tensor is a plain struct (geometry + a counted pointer to its storage); views share the
   storage and own one reference each. Indices are 0-based in C (1-based only in Lua).

   Conventions of every function below: output arguments first, then inputs, then sizes;
   MB_OK (0) on success, MB_ERR (-1) after recording a message with mbu_error() that names
   the operation and the shapes involved ("matmul: size mismatch, [256 x 14] @ [11 x 256]").
   A function that "initialises" its output overwrites it without releasing what it held;
   a function that "writes into" its output needs it initialised with the right shape.
   The files: tensor.c (storage, geometry, views), tensor_math.c (elementwise, reductions,
   random fills), tensor_blas.c (sgemm), tensor_index.c (gather/scatter, masks, cat). */
#ifndef MBPO_TENSOR_H
#define MBPO_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "mbpo/rng.h"

#define MB_MAXDIM 8

typedef struct mbStorage {
  float  *data;       /* 64-byte aligned, size floats */
  int64_t size;
  int     refcount;
} mbStorage;

typedef struct mbTensor {
  mbStorage *storage; /* NULL only in a tensor that was never initialised or was released */
  int64_t offset;     /* in floats from storage->data */
  int     ndim;       /* 0 (scalar) .. MB_MAXDIM */
  int64_t size[MB_MAXDIM];
  int64_t stride[MB_MAXDIM];
} mbTensor;

/* Pointer to element [0, 0, ...] of t. */
static inline float *mbt_data(const mbTensor *t) { return t->storage->data + t->offset; }

/* Storage and geometry (tensor.c) ------------------------------------------------------ */

/* Allocates a new contiguous zero-filled tensor of the given shape into t (t's previous
   contents are not released). Returns MB_OK or MB_ERR (bad shape, out of memory). */
int mbt_init(mbTensor *t, int ndim, const int64_t *size);

/* As mbt_init, but the values are left uninitialised (for outputs written in full). */
int mbt_empty(mbTensor *t, int ndim, const int64_t *size);

/* Makes dst a view of src (same storage, same geometry) and takes a reference. */
void mbt_view(mbTensor *dst, const mbTensor *src);

/* Drops t's reference to its storage (freeing it at zero) and marks t empty. */
void mbt_release(mbTensor *t);

/* Number of elements. */
int64_t mbt_numel(const mbTensor *t);

/* 1 when t's elements are laid out row-major without gaps. */
int mbt_isContiguous(const mbTensor *t);

/* 1 when a and b have the same number of dimensions and sizes. */
int mbt_sameShape(const mbTensor *a, const mbTensor *b);

/* Writes t's shape as "[256 x 14]" into buf (returns buf). */
const char *mbt_shapeStr(const mbTensor *t, char *buf, size_t n);

/* Writes a shape given as sizes as "[256 x 14]" into buf (returns buf). */
const char *mbt_sizeStr(char *buf, size_t n, int ndim, const int64_t *size);

/* Pointer to the element at the 0-based multi-index idx[0..ndim) (not range checked). */
float *mbt_ptr(const mbTensor *t, const int64_t *idx);

/* Views: dst becomes a view of src and takes a reference (dst's previous contents are not
   released; dst may be src, which then changes in place without a new reference). */

/* dst = src restricted to [start, start + len) along dim. */
int mbt_narrow(mbTensor *dst, const mbTensor *src, int dim, int64_t start, int64_t len);

/* dst = slice index of dimension dim (one dimension fewer). */
int mbt_select(mbTensor *dst, const mbTensor *src, int dim, int64_t index);

/* dst = src with dimensions d1 and d2 swapped. */
int mbt_transpose(mbTensor *dst, const mbTensor *src, int d1, int d2);

/* dst = src with a size-1 dimension inserted at position dim (0..ndim). */
int mbt_unsqueeze(mbTensor *dst, const mbTensor *src, int dim);

/* dst = src without dimension dim, which must have size 1; dim < 0 drops every size-1
   dimension. */
int mbt_squeeze(mbTensor *dst, const mbTensor *src, int dim);

/* Resolves a shape with at most one -1 entry (inferred) against numel elements into out;
   name is the operation for the message. */
int mbt_inferShape(int64_t *out, int ndim, const int64_t *size, int64_t numel, const char *name,
                   const mbTensor *src);

/* Arguments counted from base (1 from Lua): the bindings' checks of caller-supplied positions.
   Each converts to 0-based; messages name `name`, the value and the range as the caller
   counts them ("narrow: dimension 3 out of range [1, 2] for [4 x 5]"). */

/* *dim = the dimension that d names in a tensor of t's rank plus extra (1 where a new last
   dimension may follow, as in unsqueeze): d counted from base, or from the end if negative. */
int mbt_argDim(int *dim, const mbTensor *t, int64_t d, int base, int extra, const char *name);

/* *i = index - base, when index names an element of dimension dim of t. */
int mbt_argIndex(int64_t *i, const mbTensor *t, int dim, int64_t index, int base,
                 const char *name);

/* *first = start - base, when the len elements from start lie in dimension dim of t. */
int mbt_argRange(int64_t *first, const mbTensor *t, int dim, int64_t start, int64_t len,
                 int base, const char *name);

/* dst = contiguous src seen with a new shape (sizes may hold one -1); fails when src is not
   contiguous. */
int mbt_viewShape(mbTensor *dst, const mbTensor *src, int ndim, const int64_t *size);

/* As mbt_viewShape, but copies src into new storage when it is not contiguous (dst != src,
   dst initialised). */
int mbt_reshape(mbTensor *dst, const mbTensor *src, int ndim, const int64_t *size);

/* dst = src when contiguous (a view), else a contiguous copy (dst != src, dst initialised). */
int mbt_contiguous(mbTensor *dst, const mbTensor *src);

/* Elementwise math (tensor_math.c) -------------------------------------------------------- */

/* operations of one tensor: out = f(a) */
typedef enum mbUnaryOp {
  MB_NEG, MB_EXP, MB_LOG, MB_SQRT, MB_ABS, MB_TANH, MB_SIGMOID, MB_RELU, MB_SOFTPLUS,
  MB_ISFINITE, MB_SQUARE, MB_NUNARY
} mbUnaryOp;

/* operations of two tensors: out = a op b; comparisons give 0 or 1; RSUB and RDIV are b - a
   and b / a (for scalar-first operators); minimum and maximum propagate NaN */
typedef enum mbBinaryOp {
  MB_ADD, MB_SUB, MB_MUL, MB_DIV, MB_POW, MB_MINIMUM, MB_MAXIMUM,
  MB_LT, MB_LE, MB_GT, MB_GE, MB_EQ, MB_NE, MB_RSUB, MB_RDIV, MB_NBINARY
} mbBinaryOp;

/* The Lua name of a unary / binary operation ("exp", "add"), used in messages. */
const char *mbt_unaryName(mbUnaryOp op);
const char *mbt_binaryName(mbBinaryOp op);

/* Broadcast shape of a and b (sizes aligned from the right; a size 1 or a missing dimension
   stretches) into ndim/size; fails naming the operation `name` and both shapes. */
int mbt_broadcastShape(int *ndim, int64_t *size, const mbTensor *a, const mbTensor *b,
                       const char *name);

/* The broadcast shape of cond, a and b (cond with a, then that with b), as mbt_where needs. */
int mbt_whereShape(int *ndim, int64_t *size, const mbTensor *cond, const mbTensor *a,
                   const mbTensor *b);

/* Writes f(a) into out, of a's shape (out may be a). */
int mbt_unary(mbTensor *out, const mbTensor *a, mbUnaryOp op);

/* Writes min(max(a, lo), hi) into out, of a's shape (out may be a). */
int mbt_clamp(mbTensor *out, const mbTensor *a, float lo, float hi);

/* Writes a op b into out, whose shape must be the broadcast shape of a and b (out may be a
   or b; other overlaps of out with the inputs give unspecified values). */
int mbt_binary(mbTensor *out, const mbTensor *a, const mbTensor *b, mbBinaryOp op);

/* Writes a op s into out, of a's shape (out may be a). */
int mbt_binaryScalar(mbTensor *out, const mbTensor *a, float s, mbBinaryOp op);

/* Writes cond != 0 ? a : b into out; the three inputs broadcast to out's shape. */
int mbt_where(mbTensor *out, const mbTensor *cond, const mbTensor *a, const mbTensor *b);

/* Writes mask != 0 ? v : a into out, of a's shape (out may be a; mask broadcasts; messages
   say "where"). */
int mbt_maskedFill(mbTensor *out, const mbTensor *a, const mbTensor *mask, float v);

/* Sets every element of t to v. */
int mbt_fill(mbTensor *t, float v);

/* Copies src into dst (src broadcasts to dst's shape; any strides on both sides). */
int mbt_copy(mbTensor *dst, const mbTensor *src);

/* *n = the number of values start, start + step, ... before stop (numpy's arange); fails on
   a zero or NaN step and past 1e12 values. */
int mbt_arangeSize(int64_t *n, double start, double stop, double step);

/* Writes start + i * step into the elements of t in row-major order. */
int mbt_arange(mbTensor *t, double start, double step);

/* Random fills from g, drawn in row-major order of t (tensor_math.c) ----------------------- */

/* t = uniform in [lo, hi). */
int mbt_uniform(mbTensor *t, mbRng *g, float lo, float hi);
/* t = normal with the given mean and standard deviation. */
int mbt_normal(mbTensor *t, mbRng *g, float mean, float std);
/* t = uniform integers in [lo, hi] (both ends included; exact while |values| < 2^24). */
int mbt_randint(mbTensor *t, mbRng *g, int64_t lo, int64_t hi);

/* Reductions (tensor_math.c; sums accumulate in double) ------------------------------------ */

/* MB_STD and MB_VAR are unbiased (divide by n - 1); ARGMAX/ARGMIN give the first position
   of the extreme value (a NaN counts as the maximum and the minimum); MAX/MIN propagate
   NaN; ALL and ANY give 1 or 0 (ALL of nothing is 1). */
typedef enum mbReduceOp {
  MB_SUM, MB_MEAN, MB_MAX, MB_MIN, MB_ARGMAX, MB_ARGMIN, MB_STD, MB_VAR, MB_ALL, MB_ANY,
  MB_NREDUCE
} mbReduceOp;

/* The Lua name of a reduction ("sum"), used in messages. */
const char *mbt_reduceName(mbReduceOp op);

/* *res = op over every element of a (ARGMAX/ARGMIN: the 0-based row-major position).
   MAX, MIN, ARGMAX and ARGMIN fail on an empty tensor; MEAN, STD, VAR of too few elements
   give NaN. */
int mbt_reduceAll(double *res, const mbTensor *a, mbReduceOp op);

/* Writes op along dimension dim of a into out, a tensor of a's shape with size 1 at dim
   (ARGMAX/ARGMIN write 0-based indices as floats). */
int mbt_reduceDim(mbTensor *out, const mbTensor *a, int dim, mbReduceOp op);

/* Number of nonzero elements of t (NaN counts as nonzero). */
int64_t mbt_countNonzero(const mbTensor *t);

/* Linear algebra through OpenBLAS (tensor_blas.c) ----------------------------------------- */

/* c = beta * c + alpha * a @ b, a [M x K], b [K x N], c [M x N]. Row- or column-major views
   (transposes, narrowed columns) go to sgemm with transpose flags and leading dimensions;
   only views that are neither are copied. c may share storage with a or b (a temporary is
   used then). beta = 0 ignores c's previous values (NaN included). */
int mbt_addmm(mbTensor *c, const mbTensor *a, const mbTensor *b, float beta, float alpha);

/* size[0..2) = [M, N], the shape of a @ b for a [M x K] and b [K x N]; fails naming `name`
   and both shapes when a or b is not 2-d or K differs. */
int mbt_mmShape(int64_t *size, const mbTensor *a, const mbTensor *b, const char *name);

/* c = a @ b, with c initialised as [M x N] (messages say "matmul"). */
int mbt_matmul(mbTensor *c, const mbTensor *a, const mbTensor *b);

/* Printing (tensor_print.c) ---------------------------------------------------------------- */

/* t as text, as Torch prints it: the values (2-d slices of larger tensors under
   "(i,j,.,.) =" headers, past 1000 elements only the first and last three entries of each
   dimension with "..." between; integers when every shown value is one, else "%.4f" or
   "%.4e" by magnitude, right-aligned to one width), then "[mbpo.Tensor of size 2x3]" (or
   "[mbpo.Tensor with no dimension]"). A new string for mbu_free, or NULL (out of memory). */
char *mbt_format(const mbTensor *t);

/* Indexing (tensor_index.c) --------------------------------------------------------------- */

/* idx[i] = t's i-th value (row-major) - base, checking that each value is an integer in
   [base, base + limit); the message names `name`, the value and the range. */
int mbt_toIndex(int64_t *idx, const mbTensor *t, int64_t base, int64_t limit, const char *name);

/* The shape checks of index_copy, gather and scatter (before any index is read), dim shown
   counted from base as in mbt_argDim: src has t's shape but n at dim (index_copy); index has
   t's rank and no larger sizes outside dim (gather), and src index's shape (scatter: src not
   NULL). */
int mbt_argIndexCopy(const mbTensor *t, int dim, int64_t n, const mbTensor *src, int base,
                     const char *name);
int mbt_argGather(const mbTensor *t, int dim, const mbTensor *index, const mbTensor *src,
                  int base, const char *name);

/* Initialises out with the slices idx[0..n) of src along dim (src's shape, size n at dim). */
int mbt_indexSelect(mbTensor *out, const mbTensor *src, int dim, const int64_t *idx, int64_t n);

/* The slices idx[0..n) of dst along dim = the slices 0..n-1 of src along dim (src has dst's
   shape except size n at dim; a repeated index keeps the last write). */
int mbt_indexCopy(mbTensor *dst, int dim, const int64_t *idx, int64_t n, const mbTensor *src);

/* out[i][j]... = src[..., index[i][j]..., ...] with the index replacing position dim
   (Torch's gather); index is row-major in out's shape, whose sizes may not exceed src's
   outside dim. */
int mbt_gather(mbTensor *out, const mbTensor *src, int dim, const int64_t *index);

/* dst[..., index[i][j]..., ...] = src[i][j]... (Torch's scatter, the inverse of gather);
   index is row-major in src's shape. */
int mbt_scatter(mbTensor *dst, int dim, const int64_t *index, const mbTensor *src);

/* Rows of src (along dimension 0) where mask[i] != 0, mask a vector of src's first size,
   or the elements of src where mask != 0 when mask has src's shape (out 1-d). Initialises
   out (mbt_countNonzero(mask) rows). */
int mbt_maskedSelect(mbTensor *out, const mbTensor *src, const mbTensor *mask);

/* Initialises out with the n tensors of list concatenated along dim (equal sizes
   elsewhere). */
int mbt_cat(mbTensor *out, const mbTensor *const *list, int n, int dim);

/* Initialises out with the n tensors of list (one shape) stacked along a new dimension at
   position dim (0..ndim). */
int mbt_stack(mbTensor *out, const mbTensor *const *list, int n, int dim);

#endif
