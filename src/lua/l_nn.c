/* mbpo.nn: multilayer perceptrons with forward, backward and Adam, for tests and examples.
     local NN = require "mbpo.nn"
     local net = NN.mlp{sizes = {3, 64, 1}, activation = "relu", seed = 1}
     local y = net:forward(x)          -- x [B x 3] -> y [B x 1]
     net:zero_grad(); local dx = net:backward(dy)   -- gradients accumulate (+=)
     net:adam_step{lr = 1e-3}          -- one Adam step on the parameter slab
     net:parameters()                  -- a tensor view of the parameter slab (writes go through)
     net:state() / net:load_state(t)   -- parameters, Adam moments, step count and settings
     local opt = NN.adam(p, {lr = 1e-3, weight_decay = 0})   -- Adam over any contiguous tensor
     opt:step(g)                       -- p updated in place from the gradient g (same size)
   Parameters, gradients and both Adam moments each live in one slab (the mbMlp layout of
   include/mbpo/nn.h: per layer W [in x out] then b [out]). */
#include <string.h>

#include "lua/l_mbpo.h"
#include "mbpo/nn.h"

#define MBL_MLP "mbpo.Mlp"
#define MBL_ADAM "mbpo.Adam"

/* the userdata: the core's trainable network (include/mbpo/nn.h), slabs as tensors so that
   parameters() and gradients() can hand out views */
typedef mbMlpNet lmlp;

/* the network at idx, or a Lua error (wrong type, or closed) */
static lmlp *checkmlp(lua_State *L, int idx) {
  return mbL_checkopen(L, idx, MBL_MLP, "network");
}

/* __gc and __close */
static int mlp_gc(lua_State *L) {
  mbn_netFree(luaL_checkudata(L, 1, MBL_MLP));
  return 0;
}

/* net:adam_step and opt:step: the options at idx over *a and *wd (they persist there), then
   one Adam step of p, m, v [n] from g (g + wd * p written back); leaves the object at 1 */
static void adamstep(lua_State *L, int idx, const char *F, mbAdam *a, float *wd, float *p,
                     float *m, float *v, float *g, size_t n) {
  mbAdamOptions o = {*a, *wd};
  if (!lua_isnoneornil(L, idx)) mbL_readfields(L, idx, F, mbn_adamFields, &o, NULL);
  *a = o.adam;
  *wd = o.weight_decay;
  a->t++;
  mbn_adam(p, m, v, g, n, a, *wd, NULL, 0.0f);
  lua_settop(L, 1);
}

/* NN.mlp{sizes = {in, h..., out}, activation = "relu"|"swish", seed = 0,
          init = "uniform"|"truncnormal", lr = 1e-3} */
static int nn_mlp(lua_State *L) {
  mbNetOptions o;
  mbu_fieldDefaults(&o, mbn_netFields);
  mbL_readfields(L, 1, "NN.mlp", mbn_netFields, &o, NULL);
  int n = o.nsizes;
  if (n < 2)
    return luaL_error(L, "NN.mlp: %d sizes (expected 2..%d)", n, MB_MLP_MAXLAYERS + 1);
  lmlp *net = mbL_newobject(L, MBL_MLP, sizeof(lmlp), 0);
  MBL_CHECK(L, mbn_netInit(net, &o));
  return 1;
}

/* net:forward(x [B x in]) -> y [B x out] (a new tensor); remembers x for backward */
static int mlp_forward(lua_State *L) {
  lmlp *n = checkmlp(L, 1);
  const mbMlp *m = &n->net;
  float *x = mbL_checkmatrix(L, 2, "mlp:forward", "x", -1, m->sizes[0]);
  int64_t B = mbL_checktensor(L, 2)->size[0];
  if (B < 1 || B > (1 << 24))
    return luaL_error(L, "mlp:forward: %I rows (expected 1..16777216)", (LUAI_UACINT)B);
  const float *y = mbn_netForward(n, x, (int)B);
  if (!y) return mbL_coreerror(L);
  int64_t size[2] = {B, m->sizes[m->nlayers]};
  mbL_newcopy(L, y, 2, size);
  return 1;
}

/* net:backward(dy [B x out]) -> dx [B x in]; parameter gradients accumulate */
static int mlp_backward(lua_State *L) {
  lmlp *n = checkmlp(L, 1);
  const mbMlp *m = &n->net;
  if (n->B == 0) return luaL_error(L, "mlp:backward: call forward first");
  const float *dy = mbL_checkmatrix(L, 2, "mlp:backward", "dy", n->B, m->sizes[m->nlayers]);
  int64_t size[2] = {n->B, m->sizes[0]};
  MBL_CHECK(L, mbn_netBackward(n, mbt_data(mbL_newtensor(L, 2, size)), dy));
  return 1;
}

/* net:zero_grad() -> net */
static int mlp_zerograd(lua_State *L) {
  lmlp *n = checkmlp(L, 1);
  memset(mbt_data(&n->g), 0, sizeof(float) * n->net.nparams);
  lua_settop(L, 1);
  return 1;
}

/* net:adam_step{lr =, weight_decay = 0, beta1 =, beta2 =, eps =}: g += wd * p on every
   parameter, then one Adam step; the options given persist, but weight_decay (0 unless
   given) */
static int mlp_adamstep(lua_State *L) {
  lmlp *n = checkmlp(L, 1);
  float wd = 0.0f;
  adamstep(L, 2, "mlp:adam_step", &n->adam, &wd, mbt_data(&n->p), mbt_data(&n->m),
           mbt_data(&n->v), mbt_data(&n->g), n->net.nparams);
  return 1;
}

/* views of the slabs (writes go through) */
static int mlp_parameters(lua_State *L) { mbL_pushview(L, &checkmlp(L, 1)->p); return 1; }
static int mlp_gradients(lua_State *L) { mbL_pushview(L, &checkmlp(L, 1)->g); return 1; }

/* net:sizes() -> {in, h..., out} */
static int mlp_sizes(lua_State *L) {
  lmlp *n = checkmlp(L, 1);
  mbL_pushints(L, n->net.sizes, n->net.nlayers + 1, 0);
  return 1;
}

/* net:state() -> {sizes, activation (identity), params, adam_m, adam_v (copies), adam_t,
   lr, beta1, beta2, eps}; net:load_state(t): a state of a network of the same sizes (the
   Adam settings when given) */
static void *checkmlpobj(lua_State *L, int idx) { return checkmlp(L, idx); }
static int mlpblocks(mbStateBlock *b, void *n) { return mbn_netStateBlocks(b, n); }
static mbLStateType MLPSTATE = {"mlp", "network", checkmlpobj, mlpblocks, NULL, NULL, 0};

/* Adam over a tensor ----------------------------------------------------------------------- */

/* the userdata: the core's Adam over a tensor (include/mbpo/nn.h) */
typedef mbAdamTensor ladam;

static ladam *checkadam(lua_State *L, int idx) {
  return mbL_checkopen(L, idx, MBL_ADAM, "optimiser");
}

static int adam_gc(lua_State *L) {
  mbn_adamTensorFree(luaL_checkudata(L, 1, MBL_ADAM));
  return 0;
}

/* NN.adam(params [, {lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0}]):
   params is a contiguous tensor, updated in place by opt:step(grad) */
static int nn_adam(lua_State *L) {
  mbTensor *p = mbL_checktensor(L, 1);
  if (!mbt_isContiguous(p)) return luaL_argerror(L, 1, "parameters must be contiguous");
  mbAdamOptions o = {{0}, 0.0f};
  mbn_adamDefaults(&o.adam, 1e-3f);
  if (!lua_isnoneornil(L, 2)) mbL_readfields(L, 2, "NN.adam", mbn_adamFields, &o, NULL);
  MBL_CHECK(L, mbn_adamTensorInit(mbL_newobject(L, MBL_ADAM, sizeof(ladam), 0), p, &o));
  return 1;
}

/* opt:step(grad [, opts]) -> opt: one Adam step (options given here persist) */
static int adam_step(lua_State *L) {
  ladam *a = checkadam(L, 1);
  int64_t n = mbt_numel(&a->p);
  mbTensor *g = mbL_checktensor(L, 2);
  if (!mbt_isContiguous(g) || mbt_numel(g) != n) {
    char shape[160];
    return luaL_error(L, "adam:step: the gradient must be a contiguous tensor of %I elements, "
                      "got %s", (LUAI_UACINT)n, mbt_shapeStr(g, shape, sizeof shape));
  }
  /* the decay goes into the caller's gradient tensor as well (g + wd * p) */
  adamstep(L, 3, "adam:step", &a->o.adam, &a->o.weight_decay, mbt_data(&a->p), mbt_data(&a->m),
           mbt_data(&a->v), mbt_data(g), (size_t)n);
  return 1;
}

/* opt:state() -> {adam_m, adam_v (copies), adam_t, lr, beta1, beta2, eps, weight_decay};
   opt:load_state(t): moments and step count of an optimiser of the same size (and its
   settings when given) */
static void *checkadamobj(lua_State *L, int idx) { return checkadam(L, idx); }
static int adamblocks(mbStateBlock *b, void *a) { return mbn_adamTensorStateBlocks(b, a); }
static mbLStateType ADAMSTATE = {"adam", "optimiser", checkadamobj, adamblocks, NULL, NULL, 0};

static const luaL_Reg adam_meth[] = {
  {"step", adam_step}, {NULL, NULL}};
static const luaL_Reg adam_metameth[] = {
  {"__index", NULL}, {"__gc", adam_gc}, {"__close", adam_gc}, {NULL, NULL}};

static const luaL_Reg funcs[] = {
  {"mlp", nn_mlp}, {"adam", nn_adam}, {NULL, NULL}};
static const luaL_Reg meth[] = {
  {"forward", mlp_forward}, {"backward", mlp_backward}, {"zero_grad", mlp_zerograd},
  {"adam_step", mlp_adamstep}, {"parameters", mlp_parameters}, {"gradients", mlp_gradients},
  {"sizes", mlp_sizes}, {NULL, NULL}};
static const luaL_Reg metameth[] = {
  {"__index", NULL}, {"__gc", mlp_gc}, {"__close", mlp_gc}, {NULL, NULL}};

int luaopen_mbpo_nn(lua_State *L) {
  static const mbLClass classes[] = {{MBL_MLP, meth, metameth, NULL, &MLPSTATE, 1},
    {MBL_ADAM, adam_meth, adam_metameth, NULL, &ADAMSTATE, 1}, {NULL}};
  return mbL_newlib(L, (const char *[]){"mbpo.tensor", NULL}, classes, funcs);
}
