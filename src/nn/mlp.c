/* The multilayer perceptron of SAC's networks and of mbpo.nn: descriptor, initialisers,
   forward, backward, and the input gradient of a one-output ReLU network on selected rows.
   The matrix products are the shared linear layer (mbn_linearForwardP / mbn_linearBackwardP);
   the activations run in place on each layer's output (ReLU: the mask comes from the output;
   swish: the sigmoid is kept beside it), and each hidden bias gradient is summed in the same
   pass as the activation's backward where it can be. The elementwise passes are written so
   the compiler vectorises them (restrict pointers, O3 for this file); the arithmetic of each
   element is the same at any vector width (no reassociation, no contraction under -std=c11).
   Each pass is an always-inline body compiled twice: for the AVX2 build and, with AVX-512
   enabled by a target attribute (ens_simd.h), for the run-time AVX-512 path. */
#pragma GCC optimize("O3")

#include "mbpo/nn.h"
#include "mbpo/core.h"

#include <math.h>
#include <string.h>

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

/* Descriptor and initialisers ------------------------------------------------------------ */

int mbn_mlpInit(mbMlp *m, int nlayers, const int *sizes, mbActivation act) {
  memset(m, 0, sizeof *m);
  if (nlayers < 1 || nlayers > MB_MLP_MAXLAYERS)
    return mbu_error("mlp: %d layers (expected 1..%d)", nlayers, MB_MLP_MAXLAYERS);
  if (act != MB_ACT_RELU && act != MB_ACT_SWISH)
    return mbu_error("mlp: unknown activation %d", (int)act);
  size_t off = 0;
  for (int l = 0; l <= nlayers; l++) {
    if (sizes[l] < 1 || sizes[l] > (1 << 20))
      return mbu_error("mlp: layer size %d at position %d out of range", sizes[l], l + 1);
    m->sizes[l] = sizes[l];
  }
  for (int l = 0; l < nlayers; l++) {
    m->woff[l] = off;
    off += (size_t)sizes[l] * (size_t)sizes[l + 1];
    m->boff[l] = off;
    off += (size_t)sizes[l + 1];
  }
  m->nlayers = nlayers;
  m->act = act;
  m->nparams = off;
  return MB_OK;
}

void mbn_mlpInitTruncNormal(float *p, const mbMlp *m, mbRng *g) {
  for (int l = 0; l < m->nlayers; l++) {
    int in = m->sizes[l], out = m->sizes[l + 1];
    mbn_initTruncNormal(p + m->woff[l], g, (size_t)in * out, 1.0f / (2.0f * sqrtf((float)in)));
    memset(p + m->boff[l], 0, sizeof(float) * (size_t)out);
  }
}

void mbn_mlpInitUniform(float *p, const mbMlp *m, mbRng *g) {
  for (int l = 0; l < m->nlayers; l++) {
    int in = m->sizes[l], out = m->sizes[l + 1];
    float a = 1.0f / sqrtf((float)in);
    mbn_initUniform(p + m->woff[l], g, (size_t)in * out, a);
    mbn_initUniform(p + m->boff[l], g, (size_t)out, a);
  }
}

/* Workspace ------------------------------------------------------------------------------- */

/* offset of layer l's output (l = 1..nlayers) inside a workspace of B rows */
static size_t layer_off(const mbMlp *m, int B, int l) {
  size_t off = 0;
  for (int k = 1; k < l; k++) off += (size_t)m->sizes[k] * (size_t)B;
  return off;
}

/* offset of the sigmoid of hidden layer l (swish only), after every layer's output */
static size_t sig_off(const mbMlp *m, int B, int l) {
  return layer_off(m, B, m->nlayers + 1) + layer_off(m, B, l);
}

size_t mbn_mlpWorkspace(const mbMlp *m, int B) {
  size_t n = layer_off(m, B, m->nlayers + 1);
  if (m->act == MB_ACT_SWISH) n += layer_off(m, B, m->nlayers);
  return n;
}

size_t mbn_mlpScratch(const mbMlp *m, int B) {
  int w = 0;
  for (int l = 1; l < m->nlayers; l++) if (m->sizes[l] > w) w = m->sizes[l];
  return 2 * (size_t)w * (size_t)B;
}

float *mbn_mlpHidden(float *ws, const mbMlp *m, int B, int l) {
  return ws + layer_off(m, B, l);
}

float *mbn_mlpOutput(float *ws, const mbMlp *m, int B) {
  return ws + layer_off(m, B, m->nlayers);
}

/* Forward and backward -------------------------------------------------------------------- */

/* y[n] = max(y, 0) in place */
INLINE void relu_inplace_body(float *restrict y, size_t n) {
  for (size_t i = 0; i < n; i++) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
}
TWO_PATHS(relu_inplace, (float *restrict y, size_t n), (y, n))

float *mbn_mlpForward(float *ws, const mbMlp *m, const float *p, const float *x, int B) {
  const float *in = x;
  float *cur = ws;
  for (int l = 0; l < m->nlayers; l++) {
    int ni = m->sizes[l], no = m->sizes[l + 1];
    mbn_linearForwardP(m->prec, cur, in, p + m->woff[l], p + m->boff[l], B, ni, no);
    if (l == m->nlayers - 1) break;
    size_t n = (size_t)B * no;
    if (m->act == MB_ACT_RELU) relu_inplace(cur, n);
    else mbn_swishForwardSig(cur, ws + sig_off(m, B, l + 1), cur, n);
    in = cur;
    cur += n;
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

void mbn_mlpBackward(float *dx, float *g, float *scratch, const mbMlp *m, const float *p,
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
    /* through the activation of hidden layer l (its output is `in`), bias gradient of
       layer l-1 */
    if (m->act == MB_ACT_RELU) relu_back_colsum(din, g + m->boff[l - 1], in, B, ni);
    else {
      mbn_swishBackwardSig(din, din, in, ws + sig_off(m, B, l), (size_t)B * ni);
      colsum(g + m->boff[l - 1], din, B, ni);
    }
    grad = din;
  }
}

/* Input gradient on selected rows (ReLU) -------------------------------------------------- */

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

void mbn_mlpInputGradRows(float *dx, float *bufA, float *bufB, const mbMlp *m, const float *p,
                          const float *ws, int B, const int *idx, int n, float dy, int c0,
                          int nc) {
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
