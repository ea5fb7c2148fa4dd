/* Multilayer perceptron over one parameter slab: descriptor, init, forward, backward. */
#include "mbpo/nn.h"
#include "mbpo/core.h"

#include <math.h>
#include <string.h>

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

size_t mbn_mlpWorkspace(const mbMlp *m, int B) {
  size_t n = 0;
  for (int l = 1; l < m->nlayers; l++) n += 2 * (size_t)m->sizes[l];
  n += (size_t)m->sizes[m->nlayers];
  return n * (size_t)B;
}

size_t mbn_mlpGradScratch(const mbMlp *m, int B) {
  int w = 0;
  for (int l = 0; l <= m->nlayers; l++) if (m->sizes[l] > w) w = m->sizes[l];
  return 2 * (size_t)w * (size_t)B;
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

/* offset of hidden layer l's z (l = 1..nlayers-1; its h follows) inside ws; l = nlayers
   gives the output */
static size_t zoff(const mbMlp *m, int B, int l) {
  size_t off = 0;
  for (int k = 1; k < l; k++) off += 2 * (size_t)m->sizes[k] * (size_t)B;
  return off;
}

float *mbn_mlpOutput(float *ws, const mbMlp *m, int B) {
  return ws + zoff(m, B, m->nlayers);
}

float *mbn_mlpForward(float *ws, const mbMlp *m, const float *p, const float *x, int B) {
  const float *in = x;
  float *cur = ws;
  for (int l = 0; l < m->nlayers; l++) {
    int ni = m->sizes[l], no = m->sizes[l + 1];
    size_t n = (size_t)B * (size_t)no;
    mbn_linearForward(cur, in, p + m->woff[l], p + m->boff[l], B, ni, no);
    if (l == m->nlayers - 1) return cur;
    float *h = cur + n;
    if (m->act == MB_ACT_RELU) mbn_reluForward(h, cur, n);
    else mbn_swishForward(h, cur, n);
    in = h;
    cur = h + n;
  }
  return cur; /* not reached: nlayers >= 1 */
}

void mbn_mlpBackward(float *dx, float *g, float *scratch, const mbMlp *m, const float *p,
                     const float *x, const float *ws, const float *dy, int B) {
  int w = 0;
  for (int l = 0; l <= m->nlayers; l++) if (m->sizes[l] > w) w = m->sizes[l];
  float *bufs[2] = {scratch, scratch + (size_t)w * (size_t)B};
  const float *grad = dy; /* gradient w.r.t. the output of layer l (pre-activation for last) */
  int which = 0;
  for (int l = m->nlayers - 1; l >= 0; l--) {
    int ni = m->sizes[l], no = m->sizes[l + 1];
    /* input of layer l: x for l = 0, else h of hidden layer l */
    const float *in = l == 0 ? x : ws + zoff(m, B, l) + (size_t)B * ni;
    float *din = l == 0 ? dx : bufs[which];
    mbn_linearBackward(din, g + m->woff[l], g + m->boff[l], grad, in, p + m->woff[l], B, ni, no);
    if (l == 0) break;
    /* through the activation of hidden layer l: dz = dh * act'(z) */
    const float *z = ws + zoff(m, B, l);
    size_t n = (size_t)B * ni;
    if (m->act == MB_ACT_RELU) mbn_reluBackward(din, din, z + n, n);
    else mbn_swishBackward(din, din, z, n);
    grad = din;
    which ^= 1;
  }
}
