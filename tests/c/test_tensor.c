/* Tests of src/core/tensor*.c: views writing through, broadcasting, elementwise kernels,
   reductions against plain loops in double, matmul/addmm against a naive triple loop on
   random shapes and layouts (transposed, narrowed, strided, aliased), indexing, fills. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mbpo/core.h"
#include "mbpo/rng.h"
#include "mbpo/tensor.h"
#include "test.h"

static mbRng rng;

/* a new contiguous tensor of uniform values in [-1, 1) */
static mbTensor randt(int ndim, const int64_t *size) {
  mbTensor t;
  if (mbt_init(&t, ndim, size) < 0) abort();
  mbt_uniform(&t, &rng, -1, 1);
  return t;
}

static mbTensor mat(int64_t r, int64_t c) {
  int64_t s[2] = {r, c};
  return randt(2, s);
}

/* element (i, j) of a 2-d view */
static float at2(const mbTensor *t, int64_t i, int64_t j) {
  int64_t idx[2] = {i, j};
  return *mbt_ptr(t, idx);
}

/* Storage and views ----------------------------------------------------------------------- */

static void test_views_write_through(void) {
  int64_t s[2] = {4, 6};
  mbTensor a;
  CHECK(mbt_init(&a, 2, s) == MB_OK, "init");
  mbt_arange(&a, 0, 1);
  CHECK(a.storage->refcount == 1, "refcount %d", a.storage->refcount);
  /* narrow columns 2..4 and write through */
  mbTensor n;
  CHECK(mbt_narrow(&n, &a, 1, 2, 3) == MB_OK, "narrow");
  CHECK(a.storage->refcount == 2, "narrow takes a reference");
  CHECK(n.size[0] == 4 && n.size[1] == 3 && !mbt_isContiguous(&n), "narrow geometry");
  mbt_fill(&n, -1);
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 6; j++) {
      float want = (j >= 2 && j <= 4) ? -1.0f : (float)(i * 6 + j);
      CHECK(at2(&a, i, j) == want, "a[%d][%d] = %g, want %g", i, j, at2(&a, i, j), want);
    }
  /* select a row of the transpose = a column of a */
  mbTensor tr, col;
  CHECK(mbt_transpose(&tr, &a, 0, 1) == MB_OK, "transpose");
  CHECK(tr.size[0] == 6 && tr.size[1] == 4, "transpose sizes");
  CHECK(mbt_select(&col, &tr, 0, 5) == MB_OK, "select");
  CHECK(col.ndim == 1 && col.size[0] == 4 && col.stride[0] == 6, "select geometry");
  mbt_binaryScalar(&col, &col, 100, MB_ADD);
  for (int i = 0; i < 4; i++)
    CHECK(at2(&a, i, 5) == (float)(i * 6 + 5 + 100), "column write-through row %d", i);
  /* view of a contiguous tensor shares storage; of a non-contiguous one fails */
  mbTensor v, r;
  int64_t vs[3] = {2, -1, 3};
  CHECK(mbt_viewShape(&v, &a, 3, vs) == MB_OK, "view");
  CHECK(v.size[1] == 4 && v.storage == a.storage, "view inferred size %lld", (long long)v.size[1]);
  CHECK(mbt_viewShape(&r, &tr, 3, vs) == MB_ERR, "view of a transpose must fail");
  CHECK(strstr(mbu_lasterror(), "not contiguous") != NULL, "message: %s", mbu_lasterror());
  /* reshape of a transpose copies: values in the transpose's row-major order */
  int64_t flat[1] = {24};
  CHECK(mbt_reshape(&r, &tr, 1, flat) == MB_OK, "reshape");
  CHECK(r.storage != a.storage, "reshape of a non-contiguous view copies");
  for (int k = 0; k < 24; k++)
    CHECK(r.storage->data[k] == at2(&a, k % 4, k / 4), "reshape order at %d", k);
  int64_t bad[2] = {5, 5};
  CHECK(mbt_viewShape(&v, &a, 2, bad) == MB_ERR && strstr(mbu_lasterror(), "[5 x 5]"),
        "bad view message: %s", mbu_lasterror());
  /* squeeze / unsqueeze */
  mbTensor u, q;
  CHECK(mbt_unsqueeze(&u, &col, 1) == MB_OK && u.ndim == 2 && u.size[1] == 1, "unsqueeze");
  CHECK(mbt_squeeze(&q, &u, -1) == MB_OK && q.ndim == 1 && q.size[0] == 4, "squeeze");
  CHECK(mbt_select(&q, &a, 0, 4) == MB_ERR, "select out of range must fail");
  CHECK(mbt_narrow(&q, &a, 1, 4, 3) == MB_ERR, "narrow out of range must fail");
  mbTensor *views[] = {&n, &tr, &col, &v, &u, &q};
  for (size_t i = 0; i < sizeof views / sizeof views[0]; i++) mbt_release(views[i]);
  CHECK(a.storage->refcount == 1, "views released: refcount %d", a.storage->refcount);
  mbt_release(&r);
  mbt_release(&a);
}

/* Elementwise ------------------------------------------------------------------------------ */

static void test_broadcast(void) {
  int N = 5, D = 7;
  mbTensor x = mat(N, D), out;
  int64_t dsz[1] = {D}, rsz[2] = {1, D}, csz[2] = {N, 1};
  mbTensor row = randt(1, dsz), row2 = randt(2, rsz), colv = randt(2, csz);
  int64_t osz[2] = {N, D};
  mbt_init(&out, 2, osz);
  /* [N x D] + [D] */
  CHECK(mbt_binary(&out, &x, &row, MB_ADD) == MB_OK, "add row");
  for (int i = 0; i < N; i++)
    for (int j = 0; j < D; j++)
      CHECK(at2(&out, i, j) == at2(&x, i, j) + row.storage->data[j], "add row %d %d", i, j);
  /* [1 x D] * [N x D] (broadcast on the left) */
  CHECK(mbt_binary(&out, &row2, &x, MB_MUL) == MB_OK, "mul row");
  for (int i = 0; i < N; i++)
    for (int j = 0; j < D; j++)
      CHECK(at2(&out, i, j) == at2(&x, i, j) * row2.storage->data[j], "mul row %d %d", i, j);
  /* [N x D] - [N x 1] */
  CHECK(mbt_binary(&out, &x, &colv, MB_SUB) == MB_OK, "sub column");
  for (int i = 0; i < N; i++)
    for (int j = 0; j < D; j++)
      CHECK(at2(&out, i, j) == at2(&x, i, j) - colv.storage->data[i], "sub col %d %d", i, j);
  /* in place with a row, and on a transposed (non-contiguous) output */
  mbTensor y;
  mbt_init(&y, 2, osz);
  mbt_copy(&y, &x);
  CHECK(mbt_binary(&y, &y, &row, MB_DIV) == MB_OK, "div_ row");
  for (int i = 0; i < N; i++)
    for (int j = 0; j < D; j++)
      CHECK(at2(&y, i, j) == at2(&x, i, j) / row.storage->data[j], "div_ %d %d", i, j);
  mbTensor xt, yt;
  mbt_transpose(&xt, &x, 0, 1);
  int64_t tsz[2] = {D, N};
  mbt_init(&yt, 2, tsz);
  mbTensor cn;
  int64_t cnsz[1] = {N};
  mbt_init(&cn, 1, cnsz);
  mbt_uniform(&cn, &rng, -1, 1);
  CHECK(mbt_binary(&yt, &xt, &cn, MB_MAXIMUM) == MB_OK, "maximum on a transpose");
  for (int i = 0; i < D; i++)
    for (int j = 0; j < N; j++) {
      float a = at2(&x, j, i), b = cn.storage->data[j];
      CHECK(at2(&yt, i, j) == (a > b ? a : b), "maximum %d %d", i, j);
    }
  /* errors name the operation and both shapes */
  int64_t bsz[1] = {4};
  mbTensor bad = randt(1, bsz);
  CHECK(mbt_binary(&out, &x, &bad, MB_ADD) == MB_ERR, "non-broadcastable must fail");
  CHECK(strstr(mbu_lasterror(), "add: shapes not broadcastable, [5 x 7] and [4]") != NULL,
        "message: %s", mbu_lasterror());
  CHECK(mbt_binary(&row2, &row2, &x, MB_ADD) == MB_ERR, "in place into a smaller tensor fails");
  CHECK(strstr(mbu_lasterror(), "[1 x 7]") != NULL, "message: %s", mbu_lasterror());
  /* comparisons and where */
  mbTensor c, w;
  mbt_init(&c, 2, osz);
  mbt_init(&w, 2, osz);
  mbt_binaryScalar(&c, &x, 0, MB_GT);
  CHECK(mbt_where(&w, &c, &x, &row) == MB_OK, "where");
  for (int i = 0; i < N; i++)
    for (int j = 0; j < D; j++) {
      float xv = at2(&x, i, j);
      CHECK(at2(&c, i, j) == (xv > 0 ? 1.0f : 0.0f), "gt %d %d", i, j);
      CHECK(at2(&w, i, j) == (xv > 0 ? xv : row.storage->data[j]), "where %d %d", i, j);
    }
  mbTensor *ts[] = {&x, &out, &row, &row2, &colv, &y, &xt, &yt, &cn, &bad, &c, &w};
  for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) mbt_release(ts[i]);
}

/* reference values of the unary operations, in double */
static double ref_unary(mbUnaryOp op, double x) {
  switch (op) {
    case MB_NEG: return -x;
    case MB_EXP: return exp(x);
    case MB_LOG: return log(x);
    case MB_SQRT: return sqrt(x);
    case MB_ABS: return fabs(x);
    case MB_TANH: return tanh(x);
    case MB_SIGMOID: return 1 / (1 + exp(-x));
    case MB_RELU: return x > 0 ? x : 0;
    case MB_SOFTPLUS: return x > 30 ? x : log(1 + exp(x));
    case MB_ISFINITE: return isfinite(x) ? 1 : 0;
    case MB_SQUARE: return x * x;
    default: return NAN;
  }
}

static void test_unary(void) {
  /* values across the range, including large magnitudes where naive formulas overflow */
  const float xs[] = {-100, -30, -5, -1, -0.25f, 0, 0.25f, 1, 5, 30, 100, 0.001f};
  int64_t n = sizeof xs / sizeof xs[0];
  mbTensor x, y;
  mbt_init(&x, 1, &n);
  mbt_init(&y, 1, &n);
  memcpy(x.storage->data, xs, sizeof xs);
  for (int op = 0; op < MB_NUNARY; op++) {
    CHECK(mbt_unary(&y, &x, (mbUnaryOp)op) == MB_OK, "%s", mbt_unaryName((mbUnaryOp)op));
    for (int i = 0; i < n; i++) {
      /* the reference rounded to float (exp(100) overflows to inf there too) */
      double want = (float)ref_unary((mbUnaryOp)op, xs[i]), got = y.storage->data[i];
      if (isnan(want)) CHECK(isnan(got), "%s(%g) = %g, want nan", mbt_unaryName(op), xs[i], got);
      else if (isinf(want)) CHECK(got == want, "%s(%g) = %g", mbt_unaryName(op), xs[i], got);
      else CHECK(fabs(got - want) <= 2e-6 * (fabs(want) > 1 ? fabs(want) : 1),
                 "%s(%g) = %.9g, want %.9g", mbt_unaryName(op), xs[i], got, want);
    }
  }
  /* in place, clamp, isfinite of inf/nan */
  mbt_clamp(&x, &x, -1, 2);
  for (int i = 0; i < n; i++) {
    float want = xs[i] < -1 ? -1 : xs[i] > 2 ? 2 : xs[i];
    CHECK(x.storage->data[i] == want, "clamp_(%g) = %g", xs[i], x.storage->data[i]);
  }
  x.storage->data[0] = INFINITY;
  x.storage->data[1] = NAN;
  mbt_unary(&y, &x, MB_ISFINITE);
  CHECK(y.storage->data[0] == 0 && y.storage->data[1] == 0 && y.storage->data[2] == 1, "isfinite");
  mbt_release(&x);
  mbt_release(&y);
}

/* Reductions ------------------------------------------------------------------------------- */

/* reference reduction of the values v[0..n) taken with stride s, in double */
static double ref_reduce(mbReduceOp op, const mbTensor *t, int64_t off, int64_t s, int64_t n) {
  const float *d = t->storage->data + off;
  double sum = 0, best = d[0];
  int64_t bi = 0, nz = 0;
  for (int64_t i = 0; i < n; i++) {
    double x = d[i * s];
    sum += x;
    nz += x != 0;
    if ((op == MB_MAX || op == MB_ARGMAX) ? x > best : x < best) { best = x; bi = i; }
  }
  double mean = sum / n, ss = 0;
  for (int64_t i = 0; i < n; i++) ss += (d[i * s] - mean) * (d[i * s] - mean);
  switch (op) {
    case MB_SUM: return sum;
    case MB_MEAN: return mean;
    case MB_MAX: case MB_MIN: return best;
    case MB_ARGMAX: case MB_ARGMIN: return (double)bi;
    case MB_STD: return sqrt(ss / (n - 1));
    case MB_VAR: return ss / (n - 1);
    case MB_ALL: return nz == n;
    case MB_ANY: return nz > 0;
    default: return NAN;
  }
}

static void test_reductions(void) {
  int64_t s[3] = {5, 9, 4};
  mbTensor a = randt(3, s);
  /* a few exact zeros so ALL and ANY see both answers */
  for (int k = 0; k < 180; k += 7) a.storage->data[k] = 0;
  mbTensor views[2];
  mbt_view(&views[0], &a);
  mbt_transpose(&views[1], &a, 0, 2); /* [4 x 9 x 5], non-contiguous */
  for (int v = 0; v < 2; v++) {
    mbTensor *t = &views[v];
    for (int op = 0; op < MB_NREDUCE; op++) {
      /* everything: the row-major walk of a [A x B x C] view is one run per (i, j) */
      double got;
      CHECK(mbt_reduceAll(&got, t, (mbReduceOp)op) == MB_OK, "reduceAll");
      double want;
      if (v == 0) want = ref_reduce((mbReduceOp)op, t, 0, 1, 180);
      else { /* copy the view in row-major order, then reduce */
        mbTensor c;
        mbt_contiguous(&c, t);
        want = ref_reduce((mbReduceOp)op, &c, 0, 1, 180);
        mbt_release(&c);
      }
      CHECK(fabs(got - want) <= 1e-9 * (fabs(want) > 1 ? fabs(want) : 1),
            "%s over all (view %d) = %.12g, want %.12g", mbt_reduceName(op), v, got, want);
      /* along each dimension */
      for (int d = 0; d < 3; d++) {
        int64_t os[3] = {t->size[0], t->size[1], t->size[2]};
        os[d] = 1;
        mbTensor out;
        mbt_init(&out, 3, os);
        CHECK(mbt_reduceDim(&out, t, d, (mbReduceOp)op) == MB_OK, "reduceDim");
        for (int64_t i = 0; i < os[0]; i++)
          for (int64_t j = 0; j < os[1]; j++)
            for (int64_t k = 0; k < os[2]; k++) {
              int64_t idx[3] = {i, j, k};
              int64_t off = t->offset + i * t->stride[0] + j * t->stride[1] + k * t->stride[2];
              double w = ref_reduce((mbReduceOp)op, t, off, t->stride[d], t->size[d]);
              double g = *mbt_ptr(&out, idx);
              CHECK(fabs(g - w) <= 2e-6 * (fabs(w) > 1 ? fabs(w) : 1),
                    "%s dim %d view %d at %lld %lld %lld = %.9g, want %.9g", mbt_reduceName(op),
                    d, v, (long long)i, (long long)j, (long long)k, g, w);
            }
        mbt_release(&out);
      }
    }
  }
  /* sums accumulate in double: 1e7 ones plus one 0.5 is exact */
  int64_t big = 10000001;
  mbTensor ones;
  mbt_init(&ones, 1, &big);
  mbt_fill(&ones, 1);
  ones.storage->data[0] = 0.5f;
  double sum;
  mbt_reduceAll(&sum, &ones, MB_SUM);
  CHECK(sum == 10000000.5, "double accumulation: %.3f", sum);
  /* NaN propagates through max and argmax finds it; empty max fails */
  ones.storage->data[3] = NAN;
  double m, am;
  mbt_reduceAll(&m, &ones, MB_MAX);
  mbt_reduceAll(&am, &ones, MB_ARGMAX);
  CHECK(isnan(m) && am == 3, "max with NaN = %g at %g", m, am);
  int64_t zero = 0;
  mbTensor empty;
  mbt_init(&empty, 1, &zero);
  CHECK(mbt_reduceAll(&m, &empty, MB_MAX) == MB_ERR, "max of nothing must fail");
  CHECK(mbt_reduceAll(&m, &empty, MB_SUM) == MB_OK && m == 0, "sum of nothing");
  mbt_release(&empty);
  mbt_release(&ones);
  mbt_release(&views[0]);
  mbt_release(&views[1]);
  mbt_release(&a);
}

/* Matrix multiplication ------------------------------------------------------------------ */

/* kinds of 2-d views given to addmm: they exercise every sgemm path */
enum { CONTIG, TRANSPOSED, NARROWED, STRIDED, NKIND };

/* a [r x c] view of the given kind, holding fresh random values; *owner keeps the storage */
static mbTensor make_view(int kind, int64_t r, int64_t c, mbTensor *owner) {
  mbTensor v;
  switch (kind) {
    case TRANSPOSED: /* column-major: the transpose of a [c x r] matrix */
      *owner = mat(c, r);
      mbt_transpose(&v, owner, 0, 1);
      break;
    case NARROWED: /* row-major with a leading dimension larger than c */
      *owner = mat(r + 2, c + 3);
      mbt_narrow(&v, owner, 1, 2, c);
      mbt_narrow(&v, &v, 0, 1, r);
      break;
    case STRIDED: { /* neither: every second element of both dimensions */
      *owner = mat(2 * r, 2 * c);
      int64_t s[4] = {r, 2, c, 2};
      mbTensor w;
      mbt_viewShape(&w, owner, 4, s);
      mbt_select(&v, &w, 3, 1);
      mbt_select(&v, &v, 1, 0);
      mbt_release(&w);
      break;
    }
    default:
      *owner = mat(r, c);
      mbt_view(&v, owner);
  }
  return v;
}

static void test_addmm_random(void) {
  int trials = 0, failures = 0;
  for (int trial = 0; trial < 64; trial++) {
    int64_t M = 1 + (int64_t)mbg_below(&rng, 40), N = 1 + (int64_t)mbg_below(&rng, 40);
    int64_t K = 1 + (int64_t)mbg_below(&rng, 40);
    int ka = trial % NKIND, kb = (trial / NKIND) % NKIND, kc = (trial / 16) % NKIND;
    mbTensor oa, ob, oc;
    mbTensor A = make_view(ka, M, K, &oa), B = make_view(kb, K, N, &ob);
    mbTensor C = make_view(kc, M, N, &oc);
    float beta = trial % 3 == 0 ? 0.0f : (float)mbg_uniform(&rng) * 2 - 1;
    float alpha = (float)mbg_uniform(&rng) * 2 - 1;
    /* reference beta * C + alpha * A @ B in double, from the values before the call */
    double *ref = malloc(sizeof(double) * (size_t)(M * N));
    double *bound = malloc(sizeof(double) * (size_t)(M * N));
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        double s = 0, abs = 0;
        for (int64_t k = 0; k < K; k++) {
          s += (double)at2(&A, i, k) * at2(&B, k, j);
          abs += fabs((double)at2(&A, i, k) * at2(&B, k, j));
        }
        ref[i * N + j] = (beta == 0 ? 0 : beta * (double)at2(&C, i, j)) + alpha * s;
        bound[i * N + j] = 1e-6 * (fabs(alpha) * abs + fabs(beta * at2(&C, i, j))) + 1e-6;
      }
    if (beta == 0) mbt_fill(&C, NAN); /* beta 0 must ignore C's old values */
    CHECK(mbt_addmm(&C, &A, &B, beta, alpha) == MB_OK, "addmm: %s", mbu_lasterror());
    int bad = 0;
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++)
        if (!(fabs(at2(&C, i, j) - ref[i * N + j]) <= bound[i * N + j])) bad++;
    trials++;
    if (bad) {
      failures++;
      CHECK(0, "addmm [%lld x %lld] @ [%lld x %lld], kinds %d %d %d: %d wrong", (long long)M,
            (long long)K, (long long)K, (long long)N, ka, kb, kc, bad);
    }
    free(ref);
    free(bound);
    mbTensor *ts[] = {&A, &B, &C, &oa, &ob, &oc};
    for (size_t i = 0; i < 6; i++) mbt_release(ts[i]);
  }
  CHECK(trials == 64 && failures == 0, "%d of %d trials failed", failures, trials);
}

static void test_matmul_alias_and_errors(void) {
  /* c and a are column blocks of one storage: addmm must not read what it writes */
  mbTensor X = mat(6, 8), A, C, B = mat(3, 5);
  mbt_narrow(&A, &X, 1, 0, 3);
  mbt_narrow(&C, &X, 1, 3, 5);
  double ref[6][5];
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 5; j++) {
      double s = at2(&C, i, j);
      for (int k = 0; k < 3; k++) s += (double)at2(&A, i, k) * at2(&B, k, j);
      ref[i][j] = s;
    }
  CHECK(mbt_addmm(&C, &A, &B, 1, 1) == MB_OK, "aliased addmm");
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 5; j++) CHECK_NEAR(at2(&C, i, j), ref[i][j], 1e-5);
  /* a @ a^T into c: shared inputs are fine */
  mbTensor At, S;
  int64_t ss[2] = {6, 6};
  mbt_transpose(&At, &A, 0, 1);
  mbt_init(&S, 2, ss);
  CHECK(mbt_matmul(&S, &A, &At) == MB_OK, "a @ a^T");
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 6; j++) CHECK_NEAR(at2(&S, i, j), at2(&S, j, i), 1e-6);
  /* the message names both shapes */
  mbTensor P = mat(256, 14), Q = mat(11, 256), R = mat(256, 256);
  CHECK(mbt_matmul(&R, &P, &Q) == MB_ERR, "mismatch must fail");
  CHECK(strcmp(mbu_lasterror(), "matmul: size mismatch, [256 x 14] @ [11 x 256]") == 0,
        "message: %s", mbu_lasterror());
  CHECK(mbt_addmm(&S, &R, &R, 1, 1) == MB_ERR && strstr(mbu_lasterror(), "[6 x 6]"),
        "wrong output: %s", mbu_lasterror());
  mbTensor *ts[] = {&X, &A, &C, &B, &At, &S, &P, &Q, &R};
  for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) mbt_release(ts[i]);
}

/* Indexing --------------------------------------------------------------------------------- */

static void test_indexing(void) {
  mbTensor x = mat(6, 4), y, xt;
  int64_t idx[4] = {5, 0, 5, 2};
  CHECK(mbt_indexSelect(&y, &x, 0, idx, 4) == MB_OK, "index_select rows");
  for (int k = 0; k < 4; k++)
    for (int j = 0; j < 4; j++) CHECK(at2(&y, k, j) == at2(&x, idx[k], j), "row %d", k);
  mbt_release(&y);
  mbt_transpose(&xt, &x, 0, 1); /* [4 x 6], the slow path */
  CHECK(mbt_indexSelect(&y, &xt, 1, idx, 3) == MB_OK, "index_select columns of a view");
  for (int i = 0; i < 4; i++)
    for (int k = 0; k < 3; k++) CHECK(at2(&y, i, k) == at2(&x, idx[k], i), "col %d %d", i, k);
  /* index_copy puts them back */
  mbTensor z;
  int64_t zs[2] = {6, 4};
  mbt_init(&z, 2, zs);
  mbTensor sel;
  CHECK(mbt_indexSelect(&sel, &x, 0, idx + 1, 3) == MB_OK, "select 3 rows");
  CHECK(mbt_indexCopy(&z, 0, idx + 1, 3, &sel) == MB_OK, "index_copy");
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 4; j++) {
      int picked = i == 0 || i == 5 || i == 2;
      CHECK(at2(&z, i, j) == (picked ? at2(&x, i, j) : 0.0f), "index_copy %d %d", i, j);
    }
  int64_t badidx[1] = {6};
  mbt_release(&y);
  CHECK(mbt_indexSelect(&y, &x, 0, badidx, 1) == MB_ERR, "index out of range must fail");
  CHECK(y.storage == NULL, "a failed index_select leaves its output empty");
  /* gather one column per row, scatter it back */
  int64_t gs[2] = {6, 1};
  mbTensor g;
  mbt_init(&g, 2, gs);
  int64_t gi[6] = {3, 2, 1, 0, 3, 2};
  CHECK(mbt_gather(&g, &x, 1, gi) == MB_OK, "gather");
  for (int i = 0; i < 6; i++) CHECK(at2(&g, i, 0) == at2(&x, i, gi[i]), "gather %d", i);
  mbt_fill(&z, 0);
  CHECK(mbt_scatter(&z, 1, gi, &g) == MB_OK, "scatter");
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 4; j++)
      CHECK(at2(&z, i, j) == (j == gi[i] ? at2(&x, i, j) : 0.0f), "scatter %d %d", i, j);
  /* index tensors: float values, 1-based from Lua */
  mbTensor it;
  int64_t three = 3;
  mbt_init(&it, 1, &three);
  it.storage->data[0] = 1; it.storage->data[1] = 6; it.storage->data[2] = 2.5f;
  int64_t out[3];
  CHECK(mbt_toIndex(out, &it, 1, 6, "f") == MB_ERR, "fractional index must fail");
  CHECK(strstr(mbu_lasterror(), "index 2.5 is not an integer") != NULL, "%s", mbu_lasterror());
  it.storage->data[2] = 7;
  CHECK(mbt_toIndex(out, &it, 1, 6, "f") == MB_ERR, "index 7 must fail");
  CHECK(strstr(mbu_lasterror(), "f: index 7 out of range [1, 6]") != NULL, "%s", mbu_lasterror());
  it.storage->data[2] = 3;
  CHECK(mbt_toIndex(out, &it, 1, 6, "f") == MB_OK && out[0] == 0 && out[1] == 5 && out[2] == 2,
        "toIndex");
  /* masked rows, cat and stack */
  int64_t six = 6;
  mbTensor mask, ms;
  mbt_init(&mask, 1, &six);
  mask.storage->data[1] = 1; mask.storage->data[4] = -2;
  CHECK(mbt_maskedSelect(&ms, &x, &mask) == MB_OK && ms.size[0] == 2 && ms.size[1] == 4, "mask");
  for (int j = 0; j < 4; j++)
    CHECK(at2(&ms, 0, j) == at2(&x, 1, j) && at2(&ms, 1, j) == at2(&x, 4, j), "masked %d", j);
  mbTensor cat, st;
  const mbTensor *list[3] = {&x, &z, &x};
  CHECK(mbt_cat(&cat, list, 3, 0) == MB_OK && cat.size[0] == 18, "cat rows");
  for (int j = 0; j < 4; j++)
    CHECK(at2(&cat, 14, j) == at2(&x, 2, j) && at2(&cat, 7, j) == at2(&z, 1, j), "cat %d", j);
  mbt_release(&cat);
  const mbTensor *list2[2] = {&x, &xt};
  CHECK(mbt_cat(&cat, list2, 2, 1) == MB_ERR && strstr(mbu_lasterror(), "[4 x 6]"),
        "cat of mismatched shapes: %s", mbu_lasterror());
  CHECK(mbt_stack(&st, list, 3, 1) == MB_OK && st.ndim == 3 && st.size[1] == 3, "stack");
  int64_t i3[3] = {2, 2, 3};
  CHECK(*mbt_ptr(&st, i3) == at2(&x, 2, 3), "stack value");
  mbTensor *ts[] = {&x, &y, &xt, &z, &sel, &g, &it, &mask, &ms, &st};
  for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) mbt_release(ts[i]);
}

/* Fills ------------------------------------------------------------------------------------ */

static void test_random_fills(void) {
  int64_t s[2] = {50, 40};
  mbTensor a, b, bt;
  mbt_init(&a, 2, s);
  mbt_init(&b, 2, s);
  mbRng g1, g2;
  mbg_seed(&g1, 9, 0);
  mbg_seed(&g2, 9, 0);
  mbt_normal(&a, &g1, 0, 1);
  float buf[2000];
  mbg_normalFill(buf, &g2, 2000);
  CHECK(memcmp(buf, a.storage->data, sizeof buf) == 0, "normal fill = mbg_normalFill");
  /* a non-contiguous target is filled in its own row-major order */
  int64_t ts[2] = {40, 50};
  mbt_init(&bt, 2, ts);
  mbTensor v;
  mbt_transpose(&v, &bt, 0, 1);
  mbg_seed(&g1, 9, 0);
  mbt_normal(&v, &g1, 0, 1);
  for (int i = 0; i < 50; i++)
    for (int j = 0; j < 40; j++) CHECK(at2(&v, i, j) == at2(&a, i, j), "strided fill %d %d", i, j);
  CHECK(mbt_randint(&b, &g1, -2, 3) == MB_OK, "randint");
  int seen[6] = {0};
  for (int k = 0; k < 2000; k++) {
    float x = b.storage->data[k];
    CHECK(x >= -2 && x <= 3 && x == floorf(x), "randint value %g", x);
    if (x >= -2 && x <= 3) seen[(int)x + 2] = 1;
  }
  for (int k = 0; k < 6; k++) CHECK(seen[k], "randint never drew %d", k - 2);
  CHECK(mbt_randint(&b, &g1, 3, 2) == MB_ERR, "empty randint range must fail");
  mbt_arange(&b, 1, 0.5);
  CHECK(at2(&b, 1, 0) == 21.0f, "arange: %g", at2(&b, 1, 0));
  mbt_release(&a);
  mbt_release(&b);
  mbt_release(&bt);
  mbt_release(&v);
}

/* Printing --------------------------------------------------------------------------------- */

/* mbt_format of a tensor holding vals (row-major) in the given shape, optionally transposed
   (dims 0 and 1), against the text written out by hand */
static void check_format(int ndim, const int64_t *size, const float *vals, int transpose,
                         const char *want) {
  mbTensor t, v;
  mbt_init(&t, ndim, size);
  for (int64_t i = 0; i < mbt_numel(&t); i++) t.storage->data[i] = vals ? vals[i] : (float)i;
  if (transpose) mbt_transpose(&v, &t, 0, 1);
  else mbt_view(&v, &t);
  char *got = mbt_format(&v);
  CHECK(got && strcmp(got, want) == 0, "format:\n%s\nexpected:\n%s", got ? got : "(null)",
        want);
  mbu_free(got);
  mbt_release(&v);
  mbt_release(&t);
}

static void test_format(void) {
  const int64_t s23[2] = {2, 3}, s212[3] = {2, 1, 2}, s2[1] = {2}, s2000[1] = {2000};
  check_format(2, s23, (const float[]){1, 2, 3, 4, 5.5f, 6}, 0,
               " 1.0000 2.0000 3.0000\n 4.0000 5.5000 6.0000\n[mbpo.Tensor of size 2x3]");
  /* integers, one width for all (the widest, "-10"), a header per 2-d slice */
  check_format(3, s212, (const float[]){1, 2, 3, -10}, 0,
               "(1,.,.) =\n   1   2\n\n(2,.,.) =\n   3 -10\n\n[mbpo.Tensor of size 2x1x2]");
  /* a strided view prints in its own order */
  check_format(2, s23, NULL, 1, " 0 3\n 1 4\n 2 5\n[mbpo.Tensor of size 3x2]");
  check_format(1, s2, (const float[]){1e6f, 0.5f}, 0,
               " 1.0000e+06 5.0000e-01\n[mbpo.Tensor of size 2]");
  check_format(1, s2, (const float[]){NAN, -INFINITY}, 0, "  nan -inf\n[mbpo.Tensor of size 2]");
  /* past 1000 elements: the first and last three */
  check_format(1, s2000, NULL, 0,
               "    0    1    2 ... 1997 1998 1999\n[mbpo.Tensor of size 2000]");
  check_format(0, NULL, (const float[]){3}, 0, " 3\n[mbpo.Tensor with no dimension]");
}

/* Argument checks for the bindings ----------------------------------------------------------- */

/* rc is MB_ERR and the message is exactly want */
static void check_error(int rc, const char *want, const char *what) {
  CHECK(rc == MB_ERR, "%s must fail", what);
  CHECK(strcmp(mbu_lasterror(), want) == 0, "%s: message '%s', want '%s'", what, mbu_lasterror(),
        want);
}

/* positions counted from base (1 as in Lua, 0 as in C), negative dimensions from the end, and
   the messages the bindings show; the shapes of a @ b, where, and the length of arange */
static void test_argument_checks(void) {
  int64_t s45[2] = {4, 5};
  mbTensor t, a = mat(256, 14), b = mat(11, 256), c = mat(14, 3), v = mat(1, 3), col = mat(4, 1);
  mbt_init(&t, 2, s45);
  int d = -1;
  int64_t i = -1, size[MB_MAXDIM];
  CHECK(mbt_argDim(&d, &t, 2, 1, 0, "f") == MB_OK && d == 1, "dim 2 (1-based) -> %d", d);
  CHECK(mbt_argDim(&d, &t, -1, 1, 0, "f") == MB_OK && d == 1, "dim -1 -> %d", d);
  CHECK(mbt_argDim(&d, &t, -2, 1, 0, "f") == MB_OK && d == 0, "dim -2 -> %d", d);
  CHECK(mbt_argDim(&d, &t, 0, 0, 0, "f") == MB_OK && d == 0, "dim 0 (0-based) -> %d", d);
  CHECK(mbt_argDim(&d, &t, 3, 1, 1, "f") == MB_OK && d == 2, "dim 3 with extra -> %d", d);
  CHECK(mbt_argDim(&d, &t, -1, 1, 1, "f") == MB_OK && d == 2, "dim -1 with extra -> %d", d);
  check_error(mbt_argDim(&d, &t, 3, 1, 0, "narrow"),
              "narrow: dimension 3 out of range [1, 2] for [4 x 5]", "dim 3 of 2");
  check_error(mbt_argDim(&d, &t, 0, 1, 0, "size"),
              "size: dimension 0 out of range [1, 2] for [4 x 5]", "dim 0 counted from 1");
  check_error(mbt_argDim(&d, &t, -3, 1, 0, "f"), "f: dimension -3 out of range [1, 2] for [4 x 5]",
              "dim -3 of 2");
  check_error(mbt_argDim(&d, &t, 2, 0, 0, "f"), "f: dimension 2 out of range [0, 1] for [4 x 5]",
              "dim 2 counted from 0");
  check_error(mbt_argDim(&d, &t, INT64_MIN, 1, 0, "f"),
              "f: dimension -9223372036854775808 out of range [1, 2] for [4 x 5]", "INT64_MIN");
  CHECK(mbt_argIndex(&i, &t, 1, 5, 1, "get") == MB_OK && i == 4, "index 5 -> %lld", (long long)i);
  CHECK(mbt_argIndex(&i, &t, 0, 0, 0, "get") == MB_OK && i == 0, "index 0 -> %lld", (long long)i);
  check_error(mbt_argIndex(&i, &t, 0, 5, 1, "select"),
              "select: index 5 out of range [1, 4] in dimension 1 of [4 x 5]", "index 5 of 4");
  check_error(mbt_argIndex(&i, &t, 1, 0, 1, "get"),
              "get: index 0 out of range [1, 5] in dimension 2 of [4 x 5]", "index 0 from 1");
  check_error(mbt_argIndex(&i, &t, 1, INT64_MIN, 1, "get"),
              "get: index -9223372036854775808 out of range [1, 5] in dimension 2 of [4 x 5]",
              "index INT64_MIN");
  CHECK(mbt_argIndex(&i, &t, 2, 1, 1, "get") == MB_ERR, "a dimension beyond t must fail");
  CHECK(mbt_argRange(&i, &t, 1, 2, 3, 1, "narrow") == MB_OK && i == 1, "elements 2..4");
  CHECK(mbt_argRange(&i, &t, 1, 6, 0, 1, "narrow") == MB_OK && i == 5, "empty range at the end");
  check_error(mbt_argRange(&i, &t, 1, 4, 3, 1, "narrow"),
              "narrow: elements 4 to 6 out of range [1, 5] in dimension 2 of [4 x 5]", "4..6 of 5");
  check_error(mbt_argRange(&i, &t, 0, 0, 1, 1, "narrow"),
              "narrow: elements 0 to 0 out of range [1, 4] in dimension 1 of [4 x 5]", "start 0");
  check_error(mbt_argRange(&i, &t, 0, 1, -1, 1, "narrow"),
              "narrow: elements 1 to -1 out of range [1, 4] in dimension 1 of [4 x 5]", "len -1");
  check_error(mbt_argRange(&i, &t, 0, 7, 0, 1, "narrow"),
              "narrow: elements 7 to 6 out of range [1, 4] in dimension 1 of [4 x 5]", "past end");
  CHECK(mbt_argRange(&i, &t, 0, INT64_MAX, INT64_MAX, 1, "narrow") == MB_ERR, "huge range fails");
  /* a @ b */
  CHECK(mbt_mmShape(size, &a, &c, "matmul") == MB_OK && size[0] == 256 && size[1] == 3,
        "[256 x 14] @ [14 x 3] -> [%lld x %lld]", (long long)size[0], (long long)size[1]);
  check_error(mbt_mmShape(size, &a, &b, "matmul"),
              "matmul: size mismatch, [256 x 14] @ [11 x 256]", "inner sizes differ");
  mbTensor r = t;
  r.ndim = 1;
  check_error(mbt_mmShape(size, &r, &c, "mm"), "mm: expected 2-d tensors, got [4] @ [14 x 3]",
              "1-d operand");
  /* where: cond [1 x 3] with a [4 x 1] gives [4 x 3], which b [4 x 5] does not fit */
  int nd = 0;
  CHECK(mbt_whereShape(&nd, size, &v, &col, &v) == MB_OK && nd == 2 && size[0] == 4 &&
        size[1] == 3, "where shape [%lld x %lld]", (long long)size[0], (long long)size[1]);
  check_error(mbt_whereShape(&nd, size, &v, &col, &t),
              "where: shapes not broadcastable, [4 x 3] and [4 x 5]", "where third operand");
  check_error(mbt_whereShape(&nd, size, &t, &v, &col),
              "where: shapes not broadcastable, [4 x 5] and [1 x 3]", "where first pair");
  /* arange: numpy's count, half-open */
  int64_t n = -1;
  CHECK(mbt_arangeSize(&n, 0, 5, 1) == MB_OK && n == 5, "arange(5): %lld", (long long)n);
  CHECK(mbt_arangeSize(&n, 1, 2, 0.25) == MB_OK && n == 4, "arange(1, 2, .25): %lld", (long long)n);
  CHECK(mbt_arangeSize(&n, 5, 0, -1.5) == MB_OK && n == 4, "arange(5, 0, -1.5): %lld",
        (long long)n);
  CHECK(mbt_arangeSize(&n, 3, 1, 1) == MB_OK && n == 0, "empty: %lld", (long long)n);
  check_error(mbt_arangeSize(&n, 0, 1, 0), "arange: step must be nonzero, got 0", "step 0");
  CHECK(mbt_arangeSize(&n, 0, 1, NAN) == MB_ERR, "NaN step must fail");
  check_error(mbt_arangeSize(&n, 0, 1e13, 1), "arange: [0, 1e+13) by 1 is too long", "too long");
  CHECK(mbt_arangeSize(&n, 0, INFINITY, 1) == MB_ERR, "infinite range must fail");
  /* the shapes of index_copy, gather and scatter against t [4 x 5] */
  int64_t s25[2] = {2, 5}, s43[2] = {4, 3}, s63[2] = {6, 3};
  mbTensor two, i43, i63;
  mbt_init(&two, 2, s25);
  mbt_init(&i43, 2, s43);
  mbt_init(&i63, 2, s63);
  CHECK(mbt_argIndexCopy(&t, 0, 2, &two, 1, "index_copy_") == MB_OK, "2 rows into [4 x 5]");
  check_error(mbt_argIndexCopy(&t, 0, 3, &two, 1, "index_copy_"),
              "index_copy_: source [2 x 5] does not fit 3 slices of [4 x 5] along dimension 1",
              "2 rows for 3 indices");
  check_error(mbt_argIndexCopy(&t, 1, 2, &two, 0, "index_copy"),
              "index_copy: source [2 x 5] does not fit 2 slices of [4 x 5] along dimension 1",
              "rows as columns, counted from 0");
  CHECK(mbt_argGather(&t, 1, &i43, NULL, 1, "gather") == MB_OK, "gather [4 x 3] from [4 x 5]");
  CHECK(mbt_argGather(&t, 0, &i63, NULL, 1, "gather") == MB_OK, "more rows along dim 0");
  check_error(mbt_argGather(&t, 1, &i63, NULL, 1, "gather"),
              "gather: index [6 x 3] does not fit [4 x 5] along dimension 2", "6 rows of 4");
  check_error(mbt_argGather(&t, 1, &i63, NULL, 0, "gather"),
              "gather: index [6 x 3] does not fit [4 x 5] along dimension 1", "counted from 0");
  check_error(mbt_argGather(&t, 1, &r, NULL, 1, "gather"),
              "gather: index [4] does not fit [4 x 5] along dimension 2", "another rank");
  check_error(mbt_argGather(&t, 1, &i43, &v, 1, "scatter_"),
              "scatter_: index [4 x 3] and source [1 x 3] must have one shape that fits [4 x 5]",
              "scatter source of another shape");
  CHECK(mbt_argGather(&t, 1, &i43, &i43, 1, "scatter_") == MB_OK, "scatter of one shape");
  CHECK(mbt_argGather(&t, 2, &i43, NULL, 1, "gather") == MB_ERR, "a dimension beyond t fails");
  /* masked fill: v where the mask (a broadcast row) is nonzero, in place */
  mbt_fill(&v, 0);
  *mbt_ptr(&v, (int64_t[]){0, 1}) = 1;
  mbt_fill(&i43, 2);
  CHECK(mbt_maskedFill(&i43, &i43, &v, -7) == MB_OK, "masked fill");
  for (int row = 0; row < 4; row++)
    for (int k = 0; k < 3; k++)
      CHECK(at2(&i43, row, k) == (k == 1 ? -7.0f : 2.0f), "masked fill [%d][%d]", row, k);
  check_error(mbt_maskedFill(&i43, &i43, &two, 1),
              "where: shapes not broadcastable to [4 x 3]: condition [2 x 5], [] and [4 x 3]",
              "a [2 x 5] mask on [4 x 3]");
  mbTensor *ts[] = {&t, &a, &b, &c, &v, &col, &two, &i43, &i63};
  for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) mbt_release(ts[k]);
}

int main(void) {
  mbg_seed(&rng, 2024, 0);
  RUN(test_views_write_through);
  RUN(test_broadcast);
  RUN(test_unary);
  RUN(test_reductions);
  RUN(test_addmm_random);
  RUN(test_matmul_alias_and_errors);
  RUN(test_indexing);
  RUN(test_random_fills);
  RUN(test_format);
  RUN(test_argument_checks);
  return TEST_REPORT();
}
