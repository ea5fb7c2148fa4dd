/* mbpo.nn's objects. A trainable multilayer perceptron: the mlp.c descriptor with its
   parameter, gradient and Adam moment slabs, and the buffers a forward / backward pair needs
   (the workspace, a copy of the input, the backward scratch), grown on demand. Adam over a
   tensor: a view of the parameters and both moments. Unlike the kernels they allocate; a
   zeroed struct is the safe empty state of each (the Free functions cope). */
#include <string.h>

#include "mbpo/core.h"
#include "mbpo/nn.h"
#include "mbpo/state.h"

/* grows *buf to n floats (its contents are not kept) */
static int grow(float **buf, size_t *cap, size_t n) {
  if (n <= *cap) return MB_OK;
  float *p = mbu_alignedAlloc(n * sizeof(float));
  if (!p) return MB_ERR;
  mbu_free(*buf);
  *buf = p;
  *cap = n;
  return MB_OK;
}

const mbField mbn_netFields[] = {MB_NET_FIELDS(mbNetOptions) MB_F_END};

/* a row of an Adam setting: a float inside mbAdamOptions, without a default */
#define ADAM_ROW(nm, member, l, h, fl, dc) {.name = #nm, .type = MB_FIELD_FLOAT, .flags = (fl), \
  .offset = offsetof(mbAdamOptions, member), .n = 1, .def = NAN, .lo = (l), .hi = (h), .doc = (dc)},
const mbField mbn_adamFields[] = {
  ADAM_ROW(lr, adam.lr, 0, HUGE_VAL, 0, "step size")
  ADAM_ROW(beta1, adam.beta1, 0, 1, MB_F_OPEN_HI, "decay of the first moment")
  ADAM_ROW(beta2, adam.beta2, 0, 1, MB_F_OPEN_HI, "decay of the second moment")
  ADAM_ROW(eps, adam.eps, 0, HUGE_VAL, 0, "added to the root of the second moment")
  ADAM_ROW(weight_decay, weight_decay, 0, HUGE_VAL, 0, "g + weight_decay * p")
  MB_F_END};

int mbn_netInit(mbMlpNet *n, const mbNetOptions *o) {
  if (mbn_mlpInit(&n->net, o->nsizes - 1, o->sizes, (mbActivation)o->activation) < 0)
    return MB_ERR;
  int64_t np = (int64_t)n->net.nparams;
  mbTensor *slabs[4] = {&n->p, &n->g, &n->m, &n->v};
  for (int i = 0; i < 4; i++)
    if (mbt_init(slabs[i], 1, &np) < 0) return MB_ERR;
  mbRng g;
  mbg_seed(&g, o->seed, 0);
  if (o->init == 1) mbn_mlpInitTruncNormal(mbt_data(&n->p), &n->net, &g);
  else mbn_mlpInitUniform(mbt_data(&n->p), &n->net, &g);
  mbn_adamDefaults(&n->adam, o->lr);
  return MB_OK;
}

void mbn_netFree(mbMlpNet *n) {
  mbt_release(&n->p); mbt_release(&n->g); mbt_release(&n->m); mbt_release(&n->v);
  mbu_free(n->ws); mbu_free(n->x); mbu_free(n->scratch);
  n->ws = n->x = n->scratch = NULL;
  n->wscap = n->xcap = n->scap = 0;
}

const float *mbn_netForward(mbMlpNet *n, const float *x, int B) {
  const mbMlp *m = &n->net;
  size_t nx = (size_t)B * (size_t)m->sizes[0];
  if (grow(&n->ws, &n->wscap, mbn_mlpWorkspace(m, B)) < 0 || grow(&n->x, &n->xcap, nx) < 0)
    return NULL;
  memcpy(n->x, x, sizeof(float) * nx);  /* backward needs it even if the caller changes x */
  n->B = B;
  return mbn_mlpForward(n->ws, m, mbt_data(&n->p), n->x, B);
}

int mbn_netBackward(mbMlpNet *n, float *dx, const float *dy) {
  if (n->B == 0) return mbu_error("backward before any forward");
  if (grow(&n->scratch, &n->scap, mbn_mlpScratch(&n->net, n->B)) < 0) return MB_ERR;
  mbn_mlpBackward(dx, mbt_data(&n->g), n->scratch, &n->net, mbt_data(&n->p), n->x, n->ws, dy,
                  n->B);
  return MB_OK;
}

int mbn_netStateBlocks(mbStateBlock *b, mbMlpNet *n) {
  int64_t np = (int64_t)n->net.nparams;
  mbStateBlock *p = mbu_block(b, "sizes", MB_I32, MB_ST_CHECK, n->net.sizes, 1,
                              n->net.nlayers + 1, 0);
  p = mbu_block(p, "activation", MB_STR, MB_ST_CHECK, NULL, 0, 0, 0);
  strcpy(p[-1].text, n->net.act == MB_ACT_SWISH ? "swish" : "relu");
  p = mbu_block(p, "params", MB_F32, 0, mbt_data(&n->p), 1, np, 0);
  p = mbn_adamBlocks(p, &n->adam, mbt_data(&n->m), mbt_data(&n->v), np);
  return (int)(p - b);
}

int mbn_adamTensorInit(mbAdamTensor *a, const mbTensor *p, const mbAdamOptions *o) {
  if (!mbt_isContiguous(p)) return mbu_error("Adam's parameters must be contiguous");
  int64_t n = mbt_numel(p);
  if (mbt_init(&a->m, 1, &n) < 0 || mbt_init(&a->v, 1, &n) < 0) return MB_ERR;
  mbt_view(&a->p, p);
  a->o = *o;
  return MB_OK;
}

void mbn_adamTensorFree(mbAdamTensor *a) {
  mbt_release(&a->p); mbt_release(&a->m); mbt_release(&a->v);
}

int mbn_adamTensorStateBlocks(mbStateBlock *b, mbAdamTensor *a) {
  mbStateBlock *p = mbn_adamBlocks(b, &a->o.adam, mbt_data(&a->m), mbt_data(&a->v),
                                   mbt_numel(&a->m));
  p = mbu_block(p, "weight_decay", MB_F32, MB_ST_OPTIONAL, &a->o.weight_decay, 0, 0, 0);
  return (int)(p - b);
}
