/* Tensor math: elementwise operations with broadcasting, fills and copies, reductions over
   all elements or along a dimension, random fills. Every operation walks its operands with
   one strided iterator (below); the innermost run of each kernel has a unit-stride fast
   path written as a plain loop that the compiler vectorises. */
#include "mbpo/tensor.h"
#include "mbpo/core.h"

#include <math.h>
#include <string.h>

/* GCC's -O2 only vectorises loops whose trip count is a multiple of the vector width; the
   kernels here want the dynamic cost model (as at -O3). Loops calling libm (exp, log, tanh,
   pow; sqrt, which may set errno) stay scalar. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=dynamic")
#endif

/* Names of the operations, as the Lua API spells them ---------------------------------- */

static const char *const unary_names[MB_NUNARY] = {
  "neg", "exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "softplus", "isfinite",
  "square"};
static const char *const binary_names[MB_NBINARY] = {
  "add", "sub", "mul", "div", "pow", "minimum", "maximum", "lt", "le", "gt", "ge", "eq", "ne",
  "sub", "div"};
static const char *const reduce_names[MB_NREDUCE] = {
  "sum", "mean", "max", "min", "argmax", "argmin", "std", "var", "all", "any"};

const char *mbt_unaryName(mbUnaryOp op) {
  return (unsigned)op < MB_NUNARY ? unary_names[op] : "unary";
}
const char *mbt_binaryName(mbBinaryOp op) {
  return (unsigned)op < MB_NBINARY ? binary_names[op] : "binary";
}
const char *mbt_reduceName(mbReduceOp op) {
  return (unsigned)op < MB_NREDUCE ? reduce_names[op] : "reduce";
}

/* The strided iterator ------------------------------------------------------------------
   Up to MAXOP operands seen with one shape (the output's): an operand with fewer
   dimensions or a size 1 where the shape has more is broadcast with stride 0. Dimensions
   of size 1 are dropped and neighbours that are contiguous in every operand are merged, so
   a contiguous tensor becomes one run and a row broadcast [N x D] op [D] becomes N runs of
   D. iter_run calls a kernel on each innermost run, in row-major order of the shape. */

#define MAXOP 4

typedef struct iter {
  int nop, ndim;
  int64_t size[MB_MAXDIM];
  int64_t stride[MAXOP][MB_MAXDIM];
  float *ptr[MAXOP];
} iter;

/* kernel on one run: p[k] = first element of operand k, st[k] its stride, n elements */
typedef void (*runfn)(void *ctx, float *const *p, const int64_t *st, int64_t n);

/* an iterator over the given shape with no operands yet */
static void iter_init(iter *it, int ndim, const int64_t *size) {
  memset(it, 0, sizeof *it);
  it->ndim = ndim;
  for (int d = 0; d < ndim; d++) it->size[d] = size[d];
}

/* adds t as the next operand, broadcasting it to the iterator's shape; 0 when it cannot */
static int iter_add(iter *it, const mbTensor *t) {
  int k = it->nop++;
  int shift = it->ndim - t->ndim;
  if (shift < 0) return 0;
  it->ptr[k] = mbt_data(t);
  for (int d = 0; d < it->ndim; d++) {
    int td = d - shift;
    if (td < 0 || (t->size[td] == 1 && it->size[d] != 1)) it->stride[k][d] = 0;
    else if (t->size[td] == it->size[d]) it->stride[k][d] = t->stride[td];
    else return 0;
  }
  return 1;
}

/* drops size-1 dimensions and merges neighbours contiguous in every operand: dimension d
   folds into the previous kept one when, for each operand, stepping the previous one equals
   stepping d size[d] times. A stride-0 (broadcast) operand merges only with stride 0. */
static void iter_collapse(iter *it) {
  int n = 0;
  for (int d = 0; d < it->ndim; d++) {
    if (it->size[d] == 1) continue;
    if (n > 0) {
      int merge = 1;
      for (int k = 0; k < it->nop; k++)
        if (it->stride[k][n - 1] != it->stride[k][d] * it->size[d]) merge = 0;
      if (merge) {
        it->size[n - 1] *= it->size[d];
        for (int k = 0; k < it->nop; k++) it->stride[k][n - 1] = it->stride[k][d];
        continue;
      }
    }
    it->size[n] = it->size[d];
    for (int k = 0; k < it->nop; k++) it->stride[k][n] = it->stride[k][d];
    n++;
  }
  it->ndim = n;
}

/* calls fn on every innermost run: an odometer over the outer dimensions advances each
   operand's pointer by its stride and rewinds a dimension when it wraps. An empty shape
   makes no call; a 0-d one (or everything merged away) makes one call of one element. */
static void iter_run(iter *it, runfn fn, void *ctx) {
  for (int d = 0; d < it->ndim; d++)
    if (it->size[d] == 0) return;
  iter_collapse(it);
  float *p[MAXOP];
  int64_t st[MAXOP] = {0};
  for (int k = 0; k < it->nop; k++) p[k] = it->ptr[k];
  if (it->ndim == 0) {
    fn(ctx, p, st, 1);
    return;
  }
  int last = it->ndim - 1;
  for (int k = 0; k < it->nop; k++) st[k] = it->stride[k][last];
  int64_t outer = 1, cnt[MB_MAXDIM] = {0};
  for (int d = 0; d < last; d++) outer *= it->size[d];
  for (int64_t o = 0; o < outer; o++) {
    fn(ctx, p, st, it->size[last]);
    for (int d = last - 1; d >= 0; d--) {
      for (int k = 0; k < it->nop; k++) p[k] += it->stride[k][d];
      if (++cnt[d] < it->size[d]) break;
      for (int k = 0; k < it->nop; k++) p[k] -= it->stride[k][d] * it->size[d];
      cnt[d] = 0;
    }
  }
}

/* a 0-d tensor over one float on the stack (for scalar operands) */
static void scalar_tensor(mbTensor *t, mbStorage *s, float *v) {
  memset(t, 0, sizeof *t);
  s->data = v;
  s->size = 1;
  s->refcount = 1;
  t->storage = s;
}

/* Elementwise kernels ------------------------------------------------------------------- */

/* stable logistic function and softplus (log(1 + e^x) = max(x, 0) + log1p(e^-|x|)) */
static inline float sigmoidf(float x) {
  float e = expf(-fabsf(x)), r = 1.0f / (1.0f + e);
  return x >= 0 ? r : e * r;
}
static inline float softplusf(float x) { return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))); }

/* minimum / maximum that propagate NaN from either side */
static inline float minf(float x, float y) { return x != x ? x : (x < y ? x : y); }
static inline float maxf(float x, float y) { return x != x ? x : (x > y ? x : y); }

/* what unary_run applies: op, or clamp to [lo, hi] when clamp is set */
typedef struct unaryctx { mbUnaryOp op; float lo, hi; int clamp; } unaryctx;

/* o = EXPR(x) over a run; in place (o == a) gets its own loop so it vectorises */
#define UN_LOOP(EXPR) do {                                                                   \
    if (so == 1 && sa == 1) {                                                                \
      if (o == a) for (int64_t i = 0; i < n; i++) { float x = o[i]; o[i] = (EXPR); }         \
      else for (int64_t i = 0; i < n; i++) { float x = a[i]; o[i] = (EXPR); }                \
    } else for (int64_t i = 0; i < n; i++) { float x = a[i * sa]; o[i * so] = (EXPR); }     \
  } while (0)

/* operands: 0 out, 1 a. The switch is outside the loops, so each case is its own loop */
static void unary_run(void *vctx, float *const *p, const int64_t *st, int64_t n) {
  const unaryctx *c = vctx;
  float *o = p[0];
  const float *a = p[1];
  int64_t so = st[0], sa = st[1];
  if (c->clamp) {
    float lo = c->lo, hi = c->hi;
    UN_LOOP(x < lo ? lo : (x > hi ? hi : x));
    return;
  }
  switch (c->op) {
    case MB_NEG: UN_LOOP(-x); break;
    case MB_EXP: UN_LOOP(expf(x)); break;
    case MB_LOG: UN_LOOP(logf(x)); break;
    case MB_SQRT: UN_LOOP(sqrtf(x)); break;
    case MB_ABS: UN_LOOP(fabsf(x)); break;
    case MB_TANH: UN_LOOP(tanhf(x)); break;
    case MB_SIGMOID: UN_LOOP(sigmoidf(x)); break;
    case MB_RELU: UN_LOOP(x > 0 ? x : 0.0f); break;
    case MB_SOFTPLUS: UN_LOOP(softplusf(x)); break;
    case MB_ISFINITE: UN_LOOP(isfinite(x) ? 1.0f : 0.0f); break;
    case MB_SQUARE: UN_LOOP(x * x); break;
    default: break;
  }
}

/* shared by mbt_unary and mbt_clamp: out must have a's shape (no broadcasting here) */
static int unary_apply(mbTensor *out, const mbTensor *a, unaryctx *c, const char *name) {
  char s1[160], s2[160];
  if (!mbt_sameShape(out, a))
    return mbu_error("%s: cannot write the %s result into %s", name,
                     mbt_shapeStr(a, s1, sizeof s1), mbt_shapeStr(out, s2, sizeof s2));
  iter it;
  iter_init(&it, out->ndim, out->size);
  iter_add(&it, out);
  iter_add(&it, a);
  iter_run(&it, unary_run, c);
  return MB_OK;
}

int mbt_unary(mbTensor *out, const mbTensor *a, mbUnaryOp op) {
  if ((unsigned)op >= MB_NUNARY) return mbu_error("unary: unknown operation %d", (int)op);
  unaryctx c = {op, 0, 0, 0};
  return unary_apply(out, a, &c, mbt_unaryName(op));
}

int mbt_clamp(mbTensor *out, const mbTensor *a, float lo, float hi) {
  if (lo > hi) return mbu_error("clamp: lower bound %g above upper bound %g", lo, hi);
  unaryctx c = {MB_NEG, lo, hi, 1};
  return unary_apply(out, a, &c, "clamp");
}

/* o = EXPR(x, y) over a run, with fast paths for unit strides and a broadcast scalar */
#define BIN_LOOP(EXPR) do {                                                                  \
    if (so == 1 && sa == 1 && sb == 1) {                                                     \
      if (o == a) for (int64_t i = 0; i < n; i++) { float x = o[i], y = b[i]; o[i] = (EXPR); } \
      else for (int64_t i = 0; i < n; i++) { float x = a[i], y = b[i]; o[i] = (EXPR); }      \
    } else if (so == 1 && sa == 1 && sb == 0) {                                              \
      const float y = *b;                                                                    \
      if (o == a) for (int64_t i = 0; i < n; i++) { float x = o[i]; o[i] = (EXPR); }         \
      else for (int64_t i = 0; i < n; i++) { float x = a[i]; o[i] = (EXPR); }                \
    } else if (so == 1 && sa == 0 && sb == 1) {                                              \
      const float x = *a;                                                                    \
      for (int64_t i = 0; i < n; i++) { float y = b[i]; o[i] = (EXPR); }                     \
    } else {                                                                                 \
      for (int64_t i = 0; i < n; i++) {                                                      \
        float x = a[i * sa], y = b[i * sb];                                                  \
        o[i * so] = (EXPR);                                                                  \
      }                                                                                      \
    }                                                                                        \
  } while (0)

/* operands: 0 out, 1 a, 2 b; x is a's element and y b's in each expression */
static void binary_run(void *vctx, float *const *p, const int64_t *st, int64_t n) {
  mbBinaryOp op = *(const mbBinaryOp *)vctx;
  float *o = p[0];
  const float *a = p[1], *b = p[2];
  int64_t so = st[0], sa = st[1], sb = st[2];
  switch (op) {
    case MB_ADD: BIN_LOOP(x + y); break;
    case MB_SUB: BIN_LOOP(x - y); break;
    case MB_MUL: BIN_LOOP(x * y); break;
    case MB_DIV: BIN_LOOP(x / y); break;
    case MB_POW: BIN_LOOP(powf(x, y)); break;
    case MB_MINIMUM: BIN_LOOP(minf(x, y)); break;
    case MB_MAXIMUM: BIN_LOOP(maxf(x, y)); break;
    case MB_LT: BIN_LOOP(x < y ? 1.0f : 0.0f); break;
    case MB_LE: BIN_LOOP(x <= y ? 1.0f : 0.0f); break;
    case MB_GT: BIN_LOOP(x > y ? 1.0f : 0.0f); break;
    case MB_GE: BIN_LOOP(x >= y ? 1.0f : 0.0f); break;
    case MB_EQ: BIN_LOOP(x == y ? 1.0f : 0.0f); break;
    case MB_NE: BIN_LOOP(x != y ? 1.0f : 0.0f); break;
    case MB_RSUB: BIN_LOOP(y - x); break;
    case MB_RDIV: BIN_LOOP(y / x); break;
    default: break;
  }
}

/* numpy's rule: align the shapes at their last dimensions; each pair of sizes must be
   equal or contain a 1, and the result takes the larger */
int mbt_broadcastShape(int *ndim, int64_t *size, const mbTensor *a, const mbTensor *b,
                       const char *name) {
  char s1[160], s2[160];
  int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
  for (int d = 0; d < nd; d++) {
    int da = d - (nd - a->ndim), db = d - (nd - b->ndim);
    int64_t sa = da >= 0 ? a->size[da] : 1, sb = db >= 0 ? b->size[db] : 1;
    if (sa != sb && sa != 1 && sb != 1)
      return mbu_error("%s: shapes not broadcastable, %s and %s", name,
                       mbt_shapeStr(a, s1, sizeof s1), mbt_shapeStr(b, s2, sizeof s2));
    size[d] = sa == 1 ? sb : sa;
  }
  *ndim = nd;
  return MB_OK;
}

int mbt_whereShape(int *ndim, int64_t *size, const mbTensor *cond, const mbTensor *a,
                   const mbTensor *b) {
  mbTensor ca = {0};  /* only the shape of cond with a, for the second step */
  if (mbt_broadcastShape(&ca.ndim, ca.size, cond, a, "where") < 0) return MB_ERR;
  return mbt_broadcastShape(ndim, size, &ca, b, "where");
}

/* the broadcast shape must be out's exactly: an in-place x:add_(y) cannot grow x */
int mbt_binary(mbTensor *out, const mbTensor *a, const mbTensor *b, mbBinaryOp op) {
  char s1[160], s2[160], s3[160], s4[160];
  if ((unsigned)op >= MB_NBINARY) return mbu_error("binary: unknown operation %d", (int)op);
  const char *name = mbt_binaryName(op);
  int nd;
  int64_t size[MB_MAXDIM];
  if (mbt_broadcastShape(&nd, size, a, b, name) < 0) return MB_ERR;
  int ok = nd == out->ndim;
  for (int d = 0; ok && d < nd; d++) ok = size[d] == out->size[d];
  if (!ok)
    return mbu_error("%s: cannot write the %s result of %s and %s into %s", name,
                     mbt_sizeStr(s1, sizeof s1, nd, size), mbt_shapeStr(a, s2, sizeof s2),
                     mbt_shapeStr(b, s3, sizeof s3), mbt_shapeStr(out, s4, sizeof s4));
  iter it;
  iter_init(&it, nd, size);
  iter_add(&it, out);
  iter_add(&it, a);
  iter_add(&it, b);
  iter_run(&it, binary_run, &op);
  return MB_OK;
}

/* a scalar is a 0-d tensor on the stack: broadcast with stride 0, so the kernels' scalar
   fast path takes it */
int mbt_binaryScalar(mbTensor *out, const mbTensor *a, float s, mbBinaryOp op) {
  mbStorage st;
  mbTensor b;
  scalar_tensor(&b, &st, &s);
  return mbt_binary(out, a, &b, op);
}

/* o = c != 0 ? a : b */
static void where_run(void *ctx, float *const *p, const int64_t *st, int64_t n) {
  (void)ctx;
  float *o = p[0];
  const float *c = p[1], *a = p[2], *b = p[3];
  if (st[0] == 1 && st[1] == 1 && st[2] == 1 && st[3] == 1) {
    for (int64_t i = 0; i < n; i++) o[i] = c[i] != 0 ? a[i] : b[i];
  } else {
    for (int64_t i = 0; i < n; i++)
      o[i * st[0]] = c[i * st[1]] != 0 ? a[i * st[2]] : b[i * st[3]];
  }
}

/* the three inputs broadcast to out's shape (not to each other's) */
int mbt_where(mbTensor *out, const mbTensor *cond, const mbTensor *a, const mbTensor *b) {
  char s0[160], s1[160], s2[160], s3[160];
  iter it;
  iter_init(&it, out->ndim, out->size);
  iter_add(&it, out);
  if (!iter_add(&it, cond) || !iter_add(&it, a) || !iter_add(&it, b))
    return mbu_error("where: shapes not broadcastable to %s: condition %s, %s and %s",
                     mbt_shapeStr(out, s0, sizeof s0), mbt_shapeStr(cond, s1, sizeof s1),
                     mbt_shapeStr(a, s2, sizeof s2), mbt_shapeStr(b, s3, sizeof s3));
  iter_run(&it, where_run, NULL);
  return MB_OK;
}

int mbt_maskedFill(mbTensor *out, const mbTensor *a, const mbTensor *mask, float v) {
  mbStorage st;
  mbTensor s;
  scalar_tensor(&s, &st, &v);
  return mbt_where(out, mask, &s, a);
}

/* Fills and copies ------------------------------------------------------------------------ */

static void fill_run(void *ctx, float *const *p, const int64_t *st, int64_t n) {
  float v = *(const float *)ctx;
  float *o = p[0];
  if (st[0] == 1) for (int64_t i = 0; i < n; i++) o[i] = v;
  else for (int64_t i = 0; i < n; i++) o[i * st[0]] = v;
}

int mbt_fill(mbTensor *t, float v) {
  iter it;
  iter_init(&it, t->ndim, t->size);
  iter_add(&it, t);
  iter_run(&it, fill_run, &v);
  return MB_OK;
}

/* memmove for unit strides (src may overlap dst when both view one storage) */
static void copy_run(void *ctx, float *const *p, const int64_t *st, int64_t n) {
  (void)ctx;
  float *o = p[0];
  const float *a = p[1];
  if (st[0] == 1 && st[1] == 1) memmove(o, a, (size_t)n * sizeof(float));
  else if (st[1] == 0) for (int64_t i = 0; i < n; i++) o[i * st[0]] = *a;
  else for (int64_t i = 0; i < n; i++) o[i * st[0]] = a[i * st[1]];
}

int mbt_copy(mbTensor *dst, const mbTensor *src) {
  char s1[160], s2[160];
  iter it;
  iter_init(&it, dst->ndim, dst->size);
  iter_add(&it, dst);
  if (!iter_add(&it, src))
    return mbu_error("copy: cannot copy %s into %s", mbt_shapeStr(src, s1, sizeof s1),
                     mbt_shapeStr(dst, s2, sizeof s2));
  iter_run(&it, copy_run, NULL);
  return MB_OK;
}

/* start + k * step computed in double from the running count k, so long ranges do not
   accumulate rounding */
typedef struct arangectx { double start, step; int64_t k; } arangectx;

static void arange_run(void *vctx, float *const *p, const int64_t *st, int64_t n) {
  arangectx *c = vctx;
  for (int64_t i = 0; i < n; i++)
    p[0][i * st[0]] = (float)(c->start + (double)(c->k + i) * c->step);
  c->k += n;
}

/* the count is a double until it is known to be small, so no cast overflows */
int mbt_arangeSize(int64_t *n, double start, double stop, double step) {
  if (step == 0 || step != step) return mbu_error("arange: step must be nonzero, got %g", step);
  double count = ceil((stop - start) / step);
  if (!(count < 1e12))
    return mbu_error("arange: [%g, %g) by %g is too long", start, stop, step);
  *n = count > 0 ? (int64_t)count : 0;
  return MB_OK;
}

int mbt_arange(mbTensor *t, double start, double step) {
  arangectx c = {start, step, 0};
  iter it;
  iter_init(&it, t->ndim, t->size);
  iter_add(&it, t);
  iter_run(&it, arange_run, &c);
  return MB_OK;
}

/* Random fills --------------------------------------------------------------------------- */

/* Draws go into t's data when it is contiguous, else into a temporary that is copied into
   the view: either way the n draws land in t's row-major order, so a fill depends only on
   the generator's state and t's shape, not on its strides. */
typedef enum { FILL_UNIFORM, FILL_NORMAL, FILL_INT } fillkind;

static int randfill(mbTensor *t, mbRng *g, fillkind kind, double p0, double p1) {
  int64_t n = mbt_numel(t);
  int contig = mbt_isContiguous(t);
  float *buf = contig ? mbt_data(t) : mbu_alignedAlloc((size_t)n * sizeof(float));
  if (!buf) return MB_ERR;
  switch (kind) {
    case FILL_UNIFORM:
      mbg_uniformFill(buf, g, (size_t)n, (float)p0, (float)p1);
      break;
    case FILL_NORMAL: {
      mbg_normalFill(buf, g, (size_t)n);
      float mean = (float)p0, std = (float)p1;
      for (int64_t i = 0; i < n; i++) buf[i] = mean + std * buf[i];
      break;
    }
    case FILL_INT: { /* mbg_below is unbiased over the span hi - lo + 1 */
      int64_t lo = (int64_t)p0;
      uint64_t span = (uint64_t)((int64_t)p1 - lo) + 1;
      for (int64_t i = 0; i < n; i++) buf[i] = (float)(lo + (int64_t)mbg_below(g, span));
      break;
    }
  }
  if (!contig) { /* a contiguous tensor header over the temporary, copied into the view */
    mbStorage s = {buf, n, 1};
    mbTensor src = *t;
    src.storage = &s;
    src.offset = 0;
    int64_t st = 1;
    for (int d = t->ndim - 1; d >= 0; d--) { src.stride[d] = st; st *= t->size[d]; }
    mbt_copy(t, &src);
    mbu_free(buf);
  }
  return MB_OK;
}

int mbt_uniform(mbTensor *t, mbRng *g, float lo, float hi) {
  if (!(lo <= hi)) return mbu_error("uniform: empty range [%g, %g)", lo, hi);
  return randfill(t, g, FILL_UNIFORM, lo, hi);
}

int mbt_normal(mbTensor *t, mbRng *g, float mean, float std) {
  if (!(std >= 0)) return mbu_error("normal: negative standard deviation %g", std);
  return randfill(t, g, FILL_NORMAL, mean, std);
}

int mbt_randint(mbTensor *t, mbRng *g, int64_t lo, int64_t hi) {
  if (hi < lo) return mbu_error("randint: empty range [%lld, %lld]", (long long)lo, (long long)hi);
  if (lo < -(INT64_C(1) << 53) || hi > (INT64_C(1) << 53))
    return mbu_error("randint: range [%lld, %lld] beyond 2^53", (long long)lo, (long long)hi);
  return randfill(t, g, FILL_INT, (double)lo, (double)hi);
}

/* Reductions ------------------------------------------------------------------------------ */

/* sum of a run in double: eight lanes so the unit-stride loop vectorises in a fixed order */
static double run_sum(const float *a, int64_t s, int64_t n) {
  double acc = 0;
  if (s != 1) {
    for (int64_t i = 0; i < n; i++) acc += a[i * s];
    return acc;
  }
  double l[8] = {0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) l[j] += a[i + j];
  for (; i < n; i++) acc += a[i];
  return acc + (((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7])));
}

/* sum of squared deviations from mean of a run, in double */
static double run_ssd(const float *a, int64_t s, int64_t n, double mean) {
  double acc = 0;
  if (s != 1) {
    for (int64_t i = 0; i < n; i++) { double d = a[i * s] - mean; acc += d * d; }
    return acc;
  }
  double l[8] = {0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) { double d = a[i + j] - mean; l[j] += d * d; }
  for (; i < n; i++) { double d = a[i] - mean; acc += d * d; }
  return acc + (((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7])));
}

/* is x a better extreme than the best so far? A NaN beats any number and stays once found,
   so max/min propagate NaN and argmax/argmin point at the first NaN; among equal values the
   earliest stays, as the comparisons are strict */
static inline int better(float x, float best, int max) {
  if (best != best) return 0;
  if (x != x) return 1;
  return max ? x > best : x < best;
}

/* the extreme of a unit-stride run of n >= 1 elements, NaN when one is NaN: eight lanes
   and a NaN flag, so the loop vectorises */
static float run_extreme(const float *a, int64_t n, int max) {
  float m[8];
  int nan = 0;
  int64_t i = 0;
  for (int j = 0; j < 8; j++) m[j] = a[0];
  if (max) {
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; j++) { float x = a[i + j]; nan |= x != x; m[j] = x > m[j] ? x : m[j]; }
  } else {
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; j++) { float x = a[i + j]; nan |= x != x; m[j] = x < m[j] ? x : m[j]; }
  }
  float best = m[0];
  for (int j = 1; j < 8; j++)
    best = max ? (m[j] > best ? m[j] : best) : (m[j] < best ? m[j] : best);
  for (; i < n; i++) {
    float x = a[i];
    nan |= x != x;
    best = max ? (x > best ? x : best) : (x < best ? x : best);
  }
  return nan ? NAN : best;
}

/* position of the extreme of a run (the first one), the run nonempty */
static int64_t run_argext(const float *a, int64_t s, int64_t n, int max) {
  if (s == 1) { /* find the value fast, then its first position */
    float best = run_extreme(a, n, max);
    int64_t i = 0;
    if (best != best) while (a[i] == a[i]) i++;
    else while (a[i] != best) i++;
    return i;
  }
  int64_t bi = 0;
  float best = a[0];
  for (int64_t i = 1; i < n; i++)
    if (better(a[i * s], best, max)) { best = a[i * s]; bi = i; }
  return bi;
}

/* count of nonzero elements of a run (NaN is nonzero) */
static int64_t run_nonzero(const float *a, int64_t s, int64_t n) {
  int64_t c = 0;
  if (s == 1) for (int64_t i = 0; i < n; i++) c += a[i] != 0;
  else for (int64_t i = 0; i < n; i++) c += a[i * s] != 0;
  return c;
}

/* state of a reduction over all elements, carried across the iterator's runs */
typedef struct reducectx {
  mbReduceOp op;
  double acc, mean;   /* running sum (or sum of squared deviations); the mean of pass 2 */
  int64_t count;      /* elements seen so far */
  int64_t nonzero;
  float best;         /* extreme so far and its position */
  int64_t bestpos;
} reducectx;

/* folds one run into the state; positions are counted in the row-major order of the runs */
static void reduce_run(void *vctx, float *const *p, const int64_t *st, int64_t n) {
  reducectx *c = vctx;
  const float *a = p[0];
  int64_t s = st[0];
  switch (c->op) {
    case MB_SUM: case MB_MEAN: c->acc += run_sum(a, s, n); break;
    case MB_STD: case MB_VAR: c->acc += run_ssd(a, s, n, c->mean); break;
    case MB_MAX: case MB_MIN: case MB_ARGMAX: case MB_ARGMIN: {
      int max = c->op == MB_MAX || c->op == MB_ARGMAX;
      if ((c->op == MB_MAX || c->op == MB_MIN) && s == 1) {
        float v = run_extreme(a, n, max);
        if (c->count == 0 || better(v, c->best, max)) c->best = v;
        break;
      }
      int64_t i = run_argext(a, s, n, max);
      if (c->count == 0 || better(a[i * s], c->best, max)) {
        c->best = a[i * s];
        c->bestpos = c->count + i;
      }
      break;
    }
    case MB_ALL: case MB_ANY: c->nonzero += run_nonzero(a, s, n); break;
    default: break;
  }
  c->count += n;
}

/* one pass of reduce_run over every element of a */
static void reduce_pass(reducectx *c, const mbTensor *a) {
  iter it;
  iter_init(&it, a->ndim, a->size);
  iter_add(&it, a);
  c->count = 0;
  iter_run(&it, reduce_run, c);
}

/* std and var take two passes (the mean, then squared deviations from it) in double, which
   avoids the cancellation of the one-pass sum-of-squares formula */
int mbt_reduceAll(double *res, const mbTensor *a, mbReduceOp op) {
  char s[160];
  if ((unsigned)op >= MB_NREDUCE) return mbu_error("reduce: unknown operation %d", (int)op);
  int64_t n = mbt_numel(a);
  reducectx c = {0};
  c.op = op;
  switch (op) {
    case MB_MAX: case MB_MIN: case MB_ARGMAX: case MB_ARGMIN:
      if (n == 0)
        return mbu_error("%s: empty tensor %s", mbt_reduceName(op), mbt_shapeStr(a, s, sizeof s));
      reduce_pass(&c, a);
      *res = op == MB_MAX || op == MB_MIN ? (double)c.best : (double)c.bestpos;
      return MB_OK;
    case MB_SUM: case MB_MEAN:
      reduce_pass(&c, a);
      *res = op == MB_SUM ? c.acc : n ? c.acc / (double)n : NAN;
      return MB_OK;
    case MB_STD: case MB_VAR:
      c.op = MB_SUM;
      reduce_pass(&c, a);
      c.mean = c.acc / (double)n;
      c.op = op;
      c.acc = 0;
      reduce_pass(&c, a);
      *res = n > 1 ? c.acc / (double)(n - 1) : NAN;
      if (op == MB_STD) *res = sqrt(*res);
      return MB_OK;
    case MB_ALL: case MB_ANY:
      reduce_pass(&c, a);
      *res = op == MB_ALL ? (double)(c.nonzero == n) : (double)(c.nonzero > 0);
      return MB_OK;
    default:
      return MB_ERR;
  }
}

int64_t mbt_countNonzero(const mbTensor *t) {
  reducectx c = {0};
  c.op = MB_ANY;
  reduce_pass(&c, t);
  return c.nonzero;
}

/* reduction of the R x inner block x (contiguous, rows of `inner`) down its R rows into
   out[0..inner); acc and acc2 are scratch of `inner` doubles, best of `inner` floats */
static void reduce_rows(float *out, const float *x, int64_t R, int64_t inner, mbReduceOp op,
                        double *acc, double *acc2, float *best) {
  switch (op) {
    case MB_SUM: case MB_MEAN: case MB_STD: case MB_VAR: {
      for (int64_t j = 0; j < inner; j++) acc[j] = 0;
      for (int64_t r = 0; r < R; r++) {
        const float *row = x + r * inner;
        for (int64_t j = 0; j < inner; j++) acc[j] += row[j];
      }
      if (op == MB_SUM) {
        for (int64_t j = 0; j < inner; j++) out[j] = (float)acc[j];
        return;
      }
      for (int64_t j = 0; j < inner; j++) acc[j] = R ? acc[j] / (double)R : NAN;
      if (op == MB_MEAN) {
        for (int64_t j = 0; j < inner; j++) out[j] = (float)acc[j];
        return;
      }
      for (int64_t j = 0; j < inner; j++) acc2[j] = 0;
      for (int64_t r = 0; r < R; r++) {
        const float *row = x + r * inner;
        for (int64_t j = 0; j < inner; j++) { double d = row[j] - acc[j]; acc2[j] += d * d; }
      }
      for (int64_t j = 0; j < inner; j++) {
        double v = R > 1 ? acc2[j] / (double)(R - 1) : NAN;
        out[j] = (float)(op == MB_STD ? sqrt(v) : v);
      }
      return;
    }
    case MB_MAX: case MB_MIN: case MB_ARGMAX: case MB_ARGMIN: {
      int max = op == MB_MAX || op == MB_ARGMAX, arg = op == MB_ARGMAX || op == MB_ARGMIN;
      for (int64_t j = 0; j < inner; j++) { best[j] = x[j]; out[j] = 0; }
      for (int64_t r = 1; r < R; r++) {
        const float *row = x + r * inner;
        float rf = (float)r;
        for (int64_t j = 0; j < inner; j++) {
          float v = row[j], b = best[j];
          /* better(v, b): b not NaN and (v NaN or v beyond b), written without branches */
          int take = (b == b) & ((v != v) | (max ? v > b : v < b));
          best[j] = take ? v : b;
          out[j] = take ? rf : out[j];
        }
      }
      if (!arg) for (int64_t j = 0; j < inner; j++) out[j] = best[j];
      return;
    }
    case MB_ALL: case MB_ANY: {
      int all = op == MB_ALL;
      for (int64_t j = 0; j < inner; j++) out[j] = all ? 1.0f : 0.0f;
      for (int64_t r = 0; r < R; r++) {
        const float *row = x + r * inner;
        if (all) for (int64_t j = 0; j < inner; j++) out[j] = row[j] != 0 ? out[j] : 0.0f;
        else for (int64_t j = 0; j < inner; j++) out[j] = row[j] != 0 ? 1.0f : out[j];
      }
      return;
    }
    default:
      return;
  }
}

/* reduction of one contiguous run of R elements into *out */
static void reduce_one(float *out, const float *x, int64_t R, mbReduceOp op) {
  switch (op) {
    case MB_SUM: *out = (float)run_sum(x, 1, R); return;
    case MB_MEAN: *out = R ? (float)(run_sum(x, 1, R) / (double)R) : NAN; return;
    case MB_STD: case MB_VAR: {
      double mean = run_sum(x, 1, R) / (double)R;
      double v = R > 1 ? run_ssd(x, 1, R, mean) / (double)(R - 1) : NAN;
      *out = (float)(op == MB_STD ? sqrt(v) : v);
      return;
    }
    case MB_MAX: case MB_MIN: case MB_ARGMAX: case MB_ARGMIN: {
      int max = op == MB_MAX || op == MB_ARGMAX;
      if (op == MB_MAX || op == MB_MIN) *out = run_extreme(x, R, max);
      else *out = (float)run_argext(x, 1, R, max);
      return;
    }
    case MB_ALL: *out = run_nonzero(x, 1, R) == R ? 1.0f : 0.0f; return;
    case MB_ANY: *out = run_nonzero(x, 1, R) > 0 ? 1.0f : 0.0f; return;
    default: return;
  }
}

/* A contiguous a is [outer x R x inner] around dim. inner == 1 (the last dimension, e.g.
   row sums) reduces each contiguous run of R; otherwise whole rows of `inner` are combined
   elementwise into scratch accumulators (e.g. column sums of [N x D]: D accumulators, one
   vectorised pass per row). Views are copied to contiguous first; out may be any view. */
int mbt_reduceDim(mbTensor *out, const mbTensor *a, int dim, mbReduceOp op) {
  char s1[160], s2[160];
  if ((unsigned)op >= MB_NREDUCE) return mbu_error("reduce: unknown operation %d", (int)op);
  const char *name = mbt_reduceName(op);
  if (dim < 0 || dim >= a->ndim)
    return mbu_error("%s: dimension %d out of range [0, %d) for %s", name, dim, a->ndim,
                     mbt_shapeStr(a, s1, sizeof s1));
  int ok = out->ndim == a->ndim && out->size[dim] == 1;
  for (int d = 0; ok && d < a->ndim; d++) ok = d == dim || out->size[d] == a->size[d];
  if (!ok)
    return mbu_error("%s: output %s does not fit the reduction of %s along dimension %d", name,
                     mbt_shapeStr(out, s2, sizeof s2), mbt_shapeStr(a, s1, sizeof s1), dim);
  int64_t R = a->size[dim], outer = 1, inner = 1;
  for (int d = 0; d < dim; d++) outer *= a->size[d];
  for (int d = dim + 1; d < a->ndim; d++) inner *= a->size[d];
  if (outer * inner == 0) return MB_OK;
  if (R == 0 && (op == MB_MAX || op == MB_MIN || op == MB_ARGMAX || op == MB_ARGMIN))
    return mbu_error("%s: the reduced dimension of %s is empty", name,
                     mbt_shapeStr(a, s1, sizeof s1));
  /* work on contiguous input and output, copying when they are views */
  mbTensor x, y;
  if (mbt_contiguous(&x, a) < 0) return MB_ERR;
  int ycontig = mbt_isContiguous(out);
  if (ycontig) mbt_view(&y, out);
  else if (mbt_empty(&y, out->ndim, out->size) < 0) { mbt_release(&x); return MB_ERR; }
  double *acc = NULL;
  float *best = NULL;
  int rc = MB_OK;
  if (inner > 1) { /* two rows of double accumulators (mean, deviations) and one of floats */
    acc = mbu_malloc(2 * (size_t)inner * sizeof *acc);
    best = mbu_malloc((size_t)inner * sizeof *best);
    if (!acc || !best) rc = MB_ERR;
  }
  if (rc == MB_OK) {
    const float *xd = mbt_data(&x);
    float *yd = mbt_data(&y);
    for (int64_t o = 0; o < outer; o++) {
      if (inner == 1) reduce_one(yd + o, xd + o * R, R, op);
      else reduce_rows(yd + o * inner, xd + o * R * inner, R, inner, op, acc, acc + inner, best);
    }
    if (!ycontig) mbt_copy(out, &y);
  }
  mbu_free(acc);
  mbu_free(best);
  mbt_release(&x);
  mbt_release(&y);
  return rc;
}
