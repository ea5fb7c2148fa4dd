/* Fused elementwise kernels of the SAC update: a ReLU MLP forward/backward over an mbMlp
   descriptor whose ReLU runs in place (no pre-activation copy) and whose bias gradient is
   summed in the same pass as the ReLU mask, and a fused Adam + Polyak step. The matrix
   products are the shared linear layer (mbn_linearForward / mbn_linearBackward); only the
   elementwise passes around them are here, written so the compiler vectorises them
   (restrict pointers, the vectoriser on for this file, AVX for Adam's square root). The arithmetic of each
   element is the same as the scalar kernels of src/nn (no reassociation, no contraction
   under -std=c11), so results do not depend on the vector width. Each pass is written once
   as an always-inline body and compiled twice: for the AVX2 build and, with AVX-512 enabled by
   a target attribute (ens_simd.h), for the run-time AVX-512 path. */
#pragma GCC optimize("O3")

#include "mbpo/sac.h"

#include <math.h>
#include <string.h>
#ifdef __AVX__
#include <immintrin.h>
#endif

#include "nn/ens_simd.h"

#define INLINE static inline __attribute__((always_inline))

/* NAME(args) runs NAME##_body on the AVX-512 path (a clone with the target attribute) or the
   build's own; CALL is the argument list */
#ifdef MB_SIMD16
#define TWO_PATHS(NAME, PARAMS, CALL)                                                        \
  MB_T512 static void NAME##_512 PARAMS { NAME##_body CALL; }                               \
  static void NAME PARAMS {                                                                  \
    if (mb_use512()) NAME##_512 CALL;                                                        \
    else NAME##_body CALL;                                                                   \
  }
#else
#define TWO_PATHS(NAME, PARAMS, CALL) static void NAME PARAMS { NAME##_body CALL; }
#endif

size_t mbn_reluMlpWorkspace(const mbMlp *m, int B) {
  size_t n = 0;
  for (int l = 1; l <= m->nlayers; l++) n += (size_t)m->sizes[l];
  return n * (size_t)B;
}

size_t mbn_reluMlpScratch(const mbMlp *m, int B) {
  int w = 0;
  for (int l = 1; l < m->nlayers; l++) if (m->sizes[l] > w) w = m->sizes[l];
  return 2 * (size_t)w * (size_t)B;
}

/* offset of layer l's output (l = 1..nlayers) inside a workspace of B rows */
static size_t layer_off(const mbMlp *m, int B, int l) {
  size_t off = 0;
  for (int k = 1; k < l; k++) off += (size_t)m->sizes[k] * (size_t)B;
  return off;
}

float *mbn_reluMlpHidden(float *ws, const mbMlp *m, int B, int l) {
  return ws + layer_off(m, B, l);
}

float *mbn_reluMlpOutput(float *ws, const mbMlp *m, int B) {
  return ws + layer_off(m, B, m->nlayers);
}

/* y[n] = max(y, 0) in place */
INLINE void relu_inplace_body(float *restrict y, size_t n) {
  for (size_t i = 0; i < n; i++) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
}
TWO_PATHS(relu_inplace, (float *restrict y, size_t n), (y, n))

float *mbn_reluMlpForward(float *ws, const mbMlp *m, const float *p, const float *x, int B) {
  const float *in = x;
  float *cur = ws;
  for (int l = 0; l < m->nlayers; l++) {
    int ni = m->sizes[l], no = m->sizes[l + 1];
    mbn_linearForwardP(m->prec, cur, in, p + m->woff[l], p + m->boff[l], B, ni, no);
    if (l == m->nlayers - 1) break;
    relu_inplace(cur, (size_t)B * no);
    in = cur;
    cur += (size_t)B * no;
  }
  return cur;
}

/* d[B x n] *= (h > 0) and db[n] += column sums of the masked d */
INLINE void relu_back_colsum_body(float *restrict d, float *restrict db,
                                  const float *restrict h, int B, int n) {
  for (int r = 0; r < B; r++) {
    float *restrict dr = d + (size_t)r * n;
    const float *restrict hr = h + (size_t)r * n;
    for (int j = 0; j < n; j++) {
      float v = hr[j] > 0.0f ? dr[j] : 0.0f;
      dr[j] = v;
      db[j] += v;
    }
  }
}
TWO_PATHS(relu_back_colsum, (float *restrict d, float *restrict db, const float *restrict h,
                             int B, int n), (d, db, h, B, n))

/* db[n] += column sums of d[B x n] */
INLINE void colsum_body(float *restrict db, const float *restrict d, int B, int n) {
  for (int r = 0; r < B; r++) {
    const float *restrict dr = d + (size_t)r * n;
    for (int j = 0; j < n; j++) db[j] += dr[j];
  }
}
TWO_PATHS(colsum, (float *restrict db, const float *restrict d, int B, int n), (db, d, B, n))

void mbn_reluMlpBackward(float *dx, float *g, float *scratch, const mbMlp *m, const float *p,
                         const float *x, const float *ws, const float *dy, int B) {
  int L = m->nlayers, w = 0;
  for (int l = 1; l < L; l++) if (m->sizes[l] > w) w = m->sizes[l];
  float *bufs[2] = {scratch, scratch + (size_t)w * (size_t)B};
  const float *grad = dy; /* gradient w.r.t. the pre-activation of layer l's output */
  colsum(g + m->boff[L - 1], dy, B, m->sizes[L]);
  for (int l = L - 1, which = 0; l >= 0; l--, which ^= 1) {
    int ni = m->sizes[l], no = m->sizes[l + 1];
    const float *in = l == 0 ? x : ws + layer_off(m, B, l);
    float *din = l == 0 ? dx : bufs[which];
    mbn_linearBackwardP(m->prec, din, g + m->woff[l], NULL, grad, in, p + m->woff[l], B, ni, no);
    if (l == 0) break;
    /* through the ReLU of hidden layer l (its output is `in`), bias gradient of layer l-1 */
    relu_back_colsum(din, g + m->boff[l - 1], in, B, ni);
    grad = din;
  }
}

/* d[i, :] = (h[idx[i], :] > 0) ? d[i, :] : 0 for i < n, rows of width w */
INLINE void relu_mask_rows_body(float *restrict d, const float *restrict h, const int *idx,
                                int n, int w) {
  for (int i = 0; i < n; i++) {
    const float *restrict hr = h + (size_t)idx[i] * w;
    float *restrict dr = d + (size_t)i * w;
    for (int j = 0; j < w; j++) dr[j] = hr[j] > 0.0f ? dr[j] : 0.0f;
  }
}
TWO_PATHS(relu_mask_rows, (float *restrict d, const float *restrict h, const int *idx, int n,
                           int w), (d, h, idx, n, w))

/* d[i, :] = dy * W[:] for i < n, rows of width w */
INLINE void bcast_rows_body(float *restrict d, const float *restrict W, float dy, int n, int w) {
  for (int i = 0; i < n; i++) {
    float *restrict di = d + (size_t)i * w;
    for (int j = 0; j < w; j++) di[j] = dy * W[j];
  }
}
TWO_PATHS(bcast_rows, (float *restrict d, const float *restrict W, float dy, int n, int w),
          (d, W, dy, n, w))

void mbn_reluMlpInputGradRows(float *dx, float *bufA, float *bufB, const mbMlp *m,
                              const float *p, const float *ws, int B, const int *idx, int n,
                              float dy, int c0, int nc) {
  int L = m->nlayers;
  /* last layer (one output): dh = dy * W[:, 0] on every selected row, then the ReLU mask */
  int wl = m->sizes[L - 1];
  bcast_rows(bufA, p + m->woff[L - 1], dy, n, wl);
  relu_mask_rows(bufA, ws + layer_off(m, B, L - 1), idx, n, wl);
  /* hidden layers down to layer 1, then the rows c0.. of layer 0's weights */
  for (int l = L - 1; l >= 1; l--) {
    int ni = m->sizes[l - 1], no = m->sizes[l];
    const float *W = p + m->woff[l - 1];
    if (l == 1) {
      mbn_linearBackwardP(m->prec, dx, NULL, NULL, bufA, NULL, W + (size_t)c0 * no, n, nc, no);
      return;
    }
    mbn_linearBackwardP(m->prec, bufB, NULL, NULL, bufA, NULL, W, n, ni, no);
    relu_mask_rows(bufB, ws + layer_off(m, B, l - 1), idx, n, ni);
    float *t = bufA;
    bufA = bufB;
    bufB = t;
  }
}

void mbn_adamPolyak(float *restrict p, float *restrict mom, float *restrict vel,
                    const float *restrict g, float *restrict targ, float tau, size_t n,
                    const mbAdam *opt) {
  const float b1 = opt->beta1, b2 = opt->beta2;
  /* as mbn_adamUpdate: bias corrections in double, then the same float arithmetic */
  const float c1 = (float)(1.0 - pow(b1, (double)opt->t));
  const float c2 = (float)(1.0 - pow(b2, (double)opt->t));
  const float step = opt->lr / c1, rc2 = 1.0f / sqrtf(c2), eps = opt->eps;
  const float keep = 1.0f - tau, omb1 = 1.0f - b1, omb2 = 1.0f - b2;
  size_t i = 0;
  /* one loop for both paths: a 16-lane version measured 0.8x of this one on Zen 4
     (tools/simd_kernels), so the AVX-512 path runs the 8-lane loop too */
#ifdef __AVX__
  /* 8 lanes with the scalar loop's operations in the same order (sqrt and div are correctly
     rounded, so every lane gives the scalar result) */
  const __m256 vb1 = _mm256_set1_ps(b1), vb2 = _mm256_set1_ps(b2), vo1 = _mm256_set1_ps(omb1),
               vo2 = _mm256_set1_ps(omb2), vstep = _mm256_set1_ps(step),
               vrc2 = _mm256_set1_ps(rc2), veps = _mm256_set1_ps(eps),
               vkeep = _mm256_set1_ps(keep), vtau = _mm256_set1_ps(tau);
  for (; i + 8 <= n; i += 8) {
    __m256 gi = _mm256_loadu_ps(g + i);
    __m256 mi = _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_loadu_ps(mom + i)), _mm256_mul_ps(vo1, gi));
    __m256 vi = _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_loadu_ps(vel + i)),
                              _mm256_mul_ps(_mm256_mul_ps(vo2, gi), gi));
    _mm256_storeu_ps(mom + i, mi);
    _mm256_storeu_ps(vel + i, vi);
    __m256 den = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vi), vrc2), veps);
    __m256 pi = _mm256_sub_ps(_mm256_loadu_ps(p + i), _mm256_div_ps(_mm256_mul_ps(vstep, mi), den));
    _mm256_storeu_ps(p + i, pi);
    if (targ)
      _mm256_storeu_ps(targ + i, _mm256_add_ps(_mm256_mul_ps(vkeep, _mm256_loadu_ps(targ + i)),
                                               _mm256_mul_ps(vtau, pi)));
  }
#endif
  for (; i < n; i++) {
    float gi = g[i];
    float mi = b1 * mom[i] + omb1 * gi;
    float vi = b2 * vel[i] + omb2 * gi * gi;
    mom[i] = mi;
    vel[i] = vi;
    float pi = p[i] - step * mi / (sqrtf(vi) * rc2 + eps);
    p[i] = pi;
    if (targ) targ[i] = keep * targ[i] + tau * pi;
  }
}
