/* Network kernels: linear forward/backward on sgemm, activations, Adam, Polyak, init.
   ReLU, Adam and Polyak have AVX-512 variants for the run-time AVX-512 path (ens_simd.h),
   with the scalar loop's operations in the same order per element (no contraction under
   -std=c11; sqrt and division are correctly rounded), so the same bits. Swish is the fused
   kernel of ens_kernels.c. */
#include "mbpo/nn.h"

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

/* Adam (as mbn_adamUpdate) with an optional Polyak step of targ towards the new p */
MB_T512 static void adam16(float *p, float *m, float *v, const float *g, size_t n, float b1,
                           float b2, float step, float rc2, float eps) {
  const __m512 vb1 = _mm512_set1_ps(b1), vb2 = _mm512_set1_ps(b2);
  const __m512 vo1 = _mm512_set1_ps(1.0f - b1), vo2 = _mm512_set1_ps(1.0f - b2);
  const __m512 vstep = _mm512_set1_ps(step), vrc2 = _mm512_set1_ps(rc2), veps = _mm512_set1_ps(eps);
  for (size_t i = 0; i < n; i += 16) {
    __mmask16 k = mb_mask16(n - i < 16 ? (int)(n - i) : 16);
    __m512 gi = mb_ld16(g + i, k);
    __m512 mi = _mm512_add_ps(_mm512_mul_ps(vb1, mb_ld16(m + i, k)),
                              _mm512_mul_ps(vo1, gi));
    __m512 vi = _mm512_add_ps(_mm512_mul_ps(vb2, mb_ld16(v + i, k)),
                              _mm512_mul_ps(_mm512_mul_ps(vo2, gi), gi));
    mb_st16(m + i, k, mi);
    mb_st16(v + i, k, vi);
    __m512 den = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vi), vrc2), veps);
    __m512 pi = _mm512_sub_ps(mb_ld16(p + i, k),
                              _mm512_div_ps(_mm512_mul_ps(vstep, mi), den));
    mb_st16(p + i, k, pi);
  }
}

/* dst = keep dst + tau src */
MB_T512 static void polyak16(float *dst, const float *src, float keep, float tau, size_t n) {
  const __m512 vk = _mm512_set1_ps(keep), vt = _mm512_set1_ps(tau);
  for (size_t i = 0; i < n; i += 16) {
    __mmask16 k = mb_mask16(n - i < 16 ? (int)(n - i) : 16);
    __m512 d = _mm512_add_ps(_mm512_mul_ps(vk, mb_ld16(dst + i, k)),
                             _mm512_mul_ps(vt, mb_ld16(src + i, k)));
    mb_st16(dst + i, k, d);
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
}

void mbn_adamUpdate(float *p, float *m, float *v, const float *g, size_t n, const mbAdam *opt) {
  const float b1 = opt->beta1, b2 = opt->beta2;
  /* bias corrections in double: t can reach millions */
  const float c1 = (float)(1.0 - pow(b1, (double)opt->t));
  const float c2 = (float)(1.0 - pow(b2, (double)opt->t));
  const float step = opt->lr / c1, rc2 = 1.0f / sqrtf(c2), eps = opt->eps;
#ifdef MB_SIMD16
  if (mb_use512()) { adam16(p, m, v, g, n, b1, b2, step, rc2, eps); return; }
#endif
  for (size_t i = 0; i < n; i++) {
    float gi = g[i];
    float mi = b1 * m[i] + (1.0f - b1) * gi;
    float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= step * mi / (sqrtf(vi) * rc2 + eps);
  }
}

void mbn_adamStep(float *p, float *m, float *v, const float *g, size_t n, mbAdam *opt) {
  opt->t++;
  mbn_adamUpdate(p, m, v, g, n, opt);
}

void mbn_addDecay(float *g, const float *p, float wd, size_t n) {
  for (size_t i = 0; i < n; i++) g[i] += wd * p[i];
}

void mbn_polyak(float *dst, const float *src, float tau, size_t n) {
  const float keep = 1.0f - tau;
#ifdef MB_SIMD16
  if (mb_use512()) { polyak16(dst, src, keep, tau, n); return; }
#endif
  for (size_t i = 0; i < n; i++) dst[i] = keep * dst[i] + tau * src[i];
}

void mbn_initTruncNormal(float *w, mbRng *g, size_t n, float std) {
  for (size_t i = 0; i < n; i++) {
    double z;
    do z = mbr_normal(g); while (z < -2.0 || z > 2.0);
    w[i] = (float)(z * std);
  }
}

void mbn_initUniform(float *w, mbRng *g, size_t n, float a) {
  mbr_uniformFill(w, g, n, -a, a);
}
