/* Network kernels: linear forward/backward on sgemm, ReLU, Adam (with decay and a Polyak
   target), init. ReLU and Adam have AVX-512 variants for the run-time AVX-512 path (ens_simd.h),
   with the scalar loop's operations in the same order per element (no contraction under
   -std=c11; sqrt and division are correctly rounded), so the same bits. Swish is the fused
   kernel of ens_kernels.c. */
#include "mbpo/nn.h"
#include "mbpo/state.h"

#include <math.h>
#include <string.h>

#include "nn/ens_simd.h"


void mbn_linearForwardP(mbPrecision prec, float *y, const float *x, const float *W,
                        const float *b, int B, int in, int out) {
  /* broadcast the bias into y, then y += x @ W */
  float beta = 0.0f;
  if (b) {
    for (int r = 0; r < B; r++) memcpy(y + (size_t)r * out, b, sizeof(float) * (size_t)out);
    beta = 1.0f;
  }
  mbn_gemm(prec, 0, 0, B, out, in, 1.0f, x, in, W, out, beta, y, out);
}

void mbn_linearBackwardP(mbPrecision prec, float *dx, float *dW, float *db, const float *dy,
                         const float *x, const float *W, int B, int in, int out) {
  if (dx)  /* dx = dy @ W^T */
    mbn_gemm(prec, 0, 1, B, in, out, 1.0f, dy, out, W, out, 0.0f, dx, in);
  if (dW)  /* dW += x^T @ dy */
    mbn_gemm(prec, 1, 0, in, out, B, 1.0f, x, in, dy, out, 1.0f, dW, out);
  if (db)
    for (int r = 0; r < B; r++) {
      const float *row = dy + (size_t)r * out;
      for (int j = 0; j < out; j++) db[j] += row[j];
    }
}

void mbn_linearForward(float *y, const float *x, const float *W, const float *b,
                       int B, int in, int out) {
  mbn_linearForwardP(MB_FP32, y, x, W, b, B, in, out);
}

void mbn_linearBackward(float *dx, float *dW, float *db, const float *dy, const float *x,
                        const float *W, int B, int in, int out) {
  mbn_linearBackwardP(MB_FP32, dx, dW, db, dy, x, W, B, in, out);
}

#ifdef MB_SIMD16
/* y = x > 0 ? x : 0 (forward, g NULL) or y = h > 0 ? g : 0 (backward, h the forward's output) */
MB_T512 static void relu16(float *y, const float *x, const float *g, size_t n) {
  const __m512 zero = _mm512_setzero_ps();
  for (size_t i = 0; i < n; i += 16) {
    __mmask16 k = mb_mask16(n - i < 16 ? (int)(n - i) : 16);
    __m512 xi = mb_ld16(x + i, k);
    __mmask16 pos = _mm512_cmp_ps_mask(xi, zero, _CMP_GT_OQ);
    __m512 v = g ? mb_ld16(g + i, k) : xi;
    mb_st16(y + i, k, _mm512_maskz_mov_ps(pos, v));
  }
}
#endif

void mbn_reluForward(float *y, const float *x, size_t n) {
#ifdef MB_SIMD16
  if (mb_use512()) { relu16(y, x, NULL, n); return; }
#endif
  for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void mbn_reluBackward(float *dx, const float *dy, const float *y, size_t n) {
#ifdef MB_SIMD16
  if (mb_use512()) { relu16(dx, y, dy, n); return; }
#endif
  for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void mbn_adamDefaults(mbAdam *opt, float lr) {
  opt->lr = lr;
  opt->beta1 = 0.9f;
  opt->beta2 = 0.999f;
  opt->eps = 1e-8f;
  opt->t = 0;
  opt->contract = 0;
}

/* Adam ------------------------------------------------------------------------------------
   The one update of every optimiser (SAC's networks and temperature, the ensemble, mbpo.nn).
   Per element, with step = lr / (1 - b1^t) and rc2 = 1 / sqrt(1 - b2^t) (bias corrections
   in double: t can reach millions):
     g = g + wd p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g g;
     p = p - step m / (sqrt(v) rc2 + eps);  targ = (1 - tau) targ + tau p
   Two arithmetics, each the bits of runs recorded before the Adams were merged: separate
   multiplies and adds everywhere (opt->contract = 0: SAC, mbpo.nn), or, in the vector lanes,
   g, m, v and the denominator contracted into FMAs (opt->contract = 1: the ensemble; the
   elements past the last full 8 take the separate operations). Either way the AVX2 and AVX-512
   paths give the same bits: the contracted 16-lane loop does the 8-lane loop's FMAs and sums
   p^2 in the 8-lane layout; the separate one runs 8 lanes on both paths (16 lanes measured
   0.8x of it on Zen 4, tools/simd_kernels). */

#ifdef MB_SIMD16
/* the contracted vector part on the AVX-512 path: the elements the AVX2 path covers with 8
   lanes (n rounded down to 8); sum(p^2) accumulated in the AVX2 layout (lane l of 8 takes
   elements l, l + 8, l + 16, ... in order: per 16 elements, the low half then the high half
   into one 8-lane accumulator). Returns the elements done. */
MB_T512 static size_t adam_fma16(float *p, float *m, float *v, float *g, float wd, size_t n,
                                 float b1, float b2, float step, float rc2, float eps,
                                 double *sq) {
  const __m512 vb1 = _mm512_set1_ps(b1), vb2 = _mm512_set1_ps(b2);
  const __m512 va1 = _mm512_set1_ps(1.0f - b1), va2 = _mm512_set1_ps(1.0f - b2);
  const __m512 vwd = _mm512_set1_ps(wd), vstep = _mm512_set1_ps(step);
  const __m512 vrc2 = _mm512_set1_ps(rc2), veps = _mm512_set1_ps(eps);
  __m256 acc = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 16) {
    int full = i + 16 <= n;
    __mmask16 k = full ? (__mmask16)0xffff : (__mmask16)0xff;
    __m512 pi = mb_ld16(p + i, k);
    __m512 gi = _mm512_fmadd_ps(vwd, pi, mb_ld16(g + i, k));
    acc = _mm256_fmadd_ps(mb_lo8(pi), mb_lo8(pi), acc);
    if (full) acc = _mm256_fmadd_ps(mb_hi8(pi), mb_hi8(pi), acc);
    __m512 mi = _mm512_fmadd_ps(vb1, mb_ld16(m + i, k), _mm512_mul_ps(va1, gi));
    __m512 vi = _mm512_fmadd_ps(vb2, mb_ld16(v + i, k),
                                _mm512_mul_ps(_mm512_mul_ps(va2, gi), gi));
    __m512 den = _mm512_fmadd_ps(_mm512_sqrt_ps(vi), vrc2, veps);
    mb_st16(g + i, k, gi);
    mb_st16(m + i, k, mi);
    mb_st16(v + i, k, vi);
    mb_st16(p + i, k, _mm512_sub_ps(pi, _mm512_div_ps(_mm512_mul_ps(vstep, mi), den)));
    if (!full) { i += 8; break; }
  }
  float lanes[8];
  _mm256_storeu_ps(lanes, acc);
  for (int l = 0; l < 8; l++) *sq += lanes[l];
  return i;
}
#endif

#ifdef MB_SIMD8
/* the contracted vector part on the AVX2 path (n rounded down to 8); returns the elements done */
static size_t adam_fma8(float *p, float *m, float *v, float *g, float wd, size_t n, float b1,
                        float b2, float step, float rc2, float eps, double *sq) {
  const __m256 vb1 = _mm256_set1_ps(b1), vb2 = _mm256_set1_ps(b2);
  const __m256 va1 = _mm256_set1_ps(1.0f - b1), va2 = _mm256_set1_ps(1.0f - b2);
  const __m256 vwd = _mm256_set1_ps(wd), vstep = _mm256_set1_ps(step);
  const __m256 vrc2 = _mm256_set1_ps(rc2), veps = _mm256_set1_ps(eps);
  __m256 acc = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 pi = _mm256_loadu_ps(p + i);
    __m256 gi = _mm256_fmadd_ps(vwd, pi, _mm256_loadu_ps(g + i));
    acc = _mm256_fmadd_ps(pi, pi, acc);
    __m256 mi = _mm256_fmadd_ps(vb1, _mm256_loadu_ps(m + i), _mm256_mul_ps(va1, gi));
    __m256 vi = _mm256_fmadd_ps(vb2, _mm256_loadu_ps(v + i),
                                _mm256_mul_ps(_mm256_mul_ps(va2, gi), gi));
    __m256 den = _mm256_fmadd_ps(_mm256_sqrt_ps(vi), vrc2, veps);
    _mm256_storeu_ps(g + i, gi);
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    _mm256_storeu_ps(p + i, _mm256_sub_ps(pi, _mm256_div_ps(_mm256_mul_ps(vstep, mi), den)));
  }
  float lanes[8];
  _mm256_storeu_ps(lanes, acc);
  for (int l = 0; l < 8; l++) *sq += lanes[l];
  return i;
}

/* the separate-operations vector part (both paths; n rounded down to 8), with the Polyak step
   of targ when not NULL; returns the elements done */
static size_t adam_sep8(float *p, float *m, float *v, const float *g, float *targ, float tau,
                        size_t n, float b1, float b2, float step, float rc2, float eps) {
  const __m256 vb1 = _mm256_set1_ps(b1), vb2 = _mm256_set1_ps(b2),
               vo1 = _mm256_set1_ps(1.0f - b1), vo2 = _mm256_set1_ps(1.0f - b2),
               vstep = _mm256_set1_ps(step), vrc2 = _mm256_set1_ps(rc2),
               veps = _mm256_set1_ps(eps), vkeep = _mm256_set1_ps(1.0f - tau),
               vtau = _mm256_set1_ps(tau);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 gi = _mm256_loadu_ps(g + i);
    __m256 mi = _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(vo1, gi));
    __m256 vi = _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_loadu_ps(v + i)),
                              _mm256_mul_ps(_mm256_mul_ps(vo2, gi), gi));
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    __m256 den = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vi), vrc2), veps);
    __m256 pi = _mm256_sub_ps(_mm256_loadu_ps(p + i), _mm256_div_ps(_mm256_mul_ps(vstep, mi), den));
    _mm256_storeu_ps(p + i, pi);
    if (targ)
      _mm256_storeu_ps(targ + i, _mm256_add_ps(_mm256_mul_ps(vkeep, _mm256_loadu_ps(targ + i)),
                                               _mm256_mul_ps(vtau, pi)));
  }
  return i;
}
#endif

double mbn_adam(float *p, float *m, float *v, float *g, size_t n, const mbAdam *opt, float wd,
                float *targ, float tau) {
  const float b1 = opt->beta1, b2 = opt->beta2;
  const float c1 = (float)(1.0 - pow(b1, (double)opt->t));
  const float c2 = (float)(1.0 - pow(b2, (double)opt->t));
  const float step = opt->lr / c1, rc2 = 1.0f / sqrtf(c2), eps = opt->eps, keep = 1.0f - tau;
  const int fused = opt->contract;
  double sq = 0.0;  /* sum(p^2) before the update */
  size_t i = 0;
  if (fused) {
#ifdef MB_SIMD16
    if (mb_use512()) i = adam_fma16(p, m, v, g, wd, n, b1, b2, step, rc2, eps, &sq);
    else
#endif
#ifdef MB_SIMD8
      i = adam_fma8(p, m, v, g, wd, n, b1, b2, step, rc2, eps, &sq);
#endif
    if (targ)
      for (size_t j = 0; j < i; j++) targ[j] = keep * targ[j] + tau * p[j];
  } else {
    if (wd != 0.0f)
      for (size_t j = 0; j < n; j++) {
        sq += (double)p[j] * p[j];
        g[j] += wd * p[j];
      }
#ifdef MB_SIMD8
    i = adam_sep8(p, m, v, g, targ, tau, n, b1, b2, step, rc2, eps);
#endif
  }
  for (; i < n; i++) {
    float pi = p[i], gi = g[i];
    if (fused) {
      gi += wd * pi;
      sq += (double)pi * pi;
      g[i] = gi;
    }
    float mi = b1 * m[i] + (1.0f - b1) * gi;
    float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    pi -= step * mi / (sqrtf(vi) * rc2 + eps);
    p[i] = pi;
    if (targ) targ[i] = keep * targ[i] + tau * pi;
  }
  return 0.5 * (double)wd * sq;
}


void mbn_addDecay(float *g, const float *p, float wd, size_t n) {
  for (size_t i = 0; i < n; i++) g[i] += wd * p[i];
}

void mbn_initTruncNormal(float *w, mbRng *g, size_t n, float std) {
  for (size_t i = 0; i < n; i++) {
    double z;
    do z = mbg_normal(g); while (z < -2.0 || z > 2.0);
    w[i] = (float)(z * std);
  }
}

void mbn_initUniform(float *w, mbRng *g, size_t n, float a) {
  mbg_uniformFill(w, g, n, -a, a);
}

/* Adam's moments, step count and settings as state blocks (include/mbpo/state.h) */
mbStateBlock *mbn_adamBlocks(mbStateBlock *b, mbAdam *a, float *m, float *v, int64_t n) {
  b = mbu_block(b, "adam_m", MB_F32, 0, m, 1, n, 0);
  b = mbu_block(b, "adam_v", MB_F32, 0, v, 1, n, 0);
  b = mbu_block(b, "adam_t", MB_I64, 0, &a->t, 0, 0, 0);
  b = mbu_block(b, "lr", MB_F32, MB_ST_OPTIONAL, &a->lr, 0, 0, 0);
  b = mbu_block(b, "beta1", MB_F32, MB_ST_OPTIONAL, &a->beta1, 0, 0, 0);
  b = mbu_block(b, "beta2", MB_F32, MB_ST_OPTIONAL, &a->beta2, 0, 0, 0);
  return mbu_block(b, "eps", MB_F32, MB_ST_OPTIONAL, &a->eps, 0, 0, 0);
}
