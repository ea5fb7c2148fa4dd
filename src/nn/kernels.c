/* Network kernels: linear forward/backward on sgemm, activations, Adam, Polyak, init. */
#include "mbpo/nn.h"

#include <math.h>
#include <string.h>


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

void mbn_reluForward(float *y, const float *x, size_t n) {
  for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void mbn_reluBackward(float *dx, const float *dy, const float *y, size_t n) {
  for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void mbn_swishForward(float *y, const float *x, size_t n) {
  for (size_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
}

void mbn_swishBackward(float *dx, const float *dy, const float *x, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float s = 1.0f / (1.0f + expf(-x[i]));
    dx[i] = dy[i] * (s + x[i] * s * (1.0f - s));
  }
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
