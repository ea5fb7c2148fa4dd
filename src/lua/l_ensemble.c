/* mbpo.ensemble: the probabilistic dynamics ensemble (include/mbpo/ensemble.h) in Lua.
     local Ensemble = require "mbpo.ensemble"
     local ens = Ensemble.new{inputs = 14, outputs = 12, seed = 1}   -- reference defaults
     local info = ens:fit(inputs, targets, {max_epochs = nil, max_seconds = nil})
     local mean, logvar = ens:predict(inputs)           -- [members x N x outputs] each
     local next_obs, reward = ens:step(obs, act, rng)   -- one random elite per row
     local t = ens:state(); fresh:load_state(t)         -- continue bit for bit
   Targets are [reward, next_obs - obs] rows (reward first). Member numbers are 1-based in Lua.
   The options of Ensemble.new, their defaults (the reference, specs/mbpo-algorithm.md section
   2), ranges and docs are the rows of MB_ENS_FIELDS (include/mbpo/ensemble.h), Ensemble.fields
   in Lua; weight_decay, when not given, follows the default list for the depth of hidden.
   Methods: fit, predict, step, evaluate, train_step, loss_grad, elites, holdout_mse,
   parameters, bounds, info, flops, state, load_state. Unknown option names raise, so a
   misspelt key in a config is not ignored.
   Core errors raise "ens:METHOD: message"; a fit interrupted by SIGINT/SIGTERM raises
   "interrupted" (with each member's best weights restored). */
#include <string.h>

#include "lua/l_mbpo.h"
#include "mbpo/ensemble.h"

#define MBL_ENSEMBLE "mbpo.Ensemble"

/* the userdata: a pointer, NULL until built (a failed build is safe for __gc) and after close */
typedef struct lens { mbEnsemble *e; } lens;

/* the ensemble at idx, or a Lua error (wrong type, or closed) */
static mbEnsemble *checkens(lua_State *L, int idx) {
  return ((lens *)mbL_checkopen(L, idx, MBL_ENSEMBLE, "ensemble"))->e;
}

/* __gc and __close */
static int ens_gc(lua_State *L) {
  lens *u = luaL_checkudata(L, 1, MBL_ENSEMBLE);
  mbn_ensFree(u->e);
  u->e = NULL;
  return 0;
}

/* Raises the core's last error as "F: message", without the core's own prefix ("fit: ",
   "step: ", "ensemble: "...) so the name appears once; an interrupt (a fit's SIGINT/SIGTERM)
   as "interrupted", so callers can tell it from a bad argument */
static int coreerror(lua_State *L, const char *F) {
  const char *msg = mbu_lasterror(), *colon = strchr(msg, ':');
  if (strcmp(msg, "interrupted") == 0) return luaL_error(L, "interrupted");
  if (colon && colon[1] == ' ' && colon - msg < 12 && !memchr(msg, ' ', (size_t)(colon - msg)))
    msg = colon + 2;
  return luaL_error(L, "%s: %s", F, msg);
}

/* the names of the fit's stop reasons (mbFitStop order) */
static const char *const STOPS[] = {"patience", "max_epochs", "max_seconds"};

/* Ensemble.new{...} (see the top) */
static int ens_new(lua_State *L) {
  const char *F = "Ensemble.new";
  mbEnsembleConfig c;
  mbn_ensDefaults(&c, 0, 0);
  uint64_t given = mbL_readfields(L, 1, F, mbn_ensFields, &c, NULL);
  const mbField *wd = mbu_fieldFind(mbn_ensFields, "weight_decay");
  if (!(given >> (wd - mbn_ensFields) & 1)) mbn_ensDefaultDecay(&c);
  lens *u = mbL_newobject(L, MBL_ENSEMBLE, sizeof(lens), 0);
  if (mbn_ensCreate(&u->e, &c) < 0) return coreerror(L, F);
  /* parameters, gradients and the two Adam moments */
  mbL_extmem(L, u->e->ntotal * 4 * sizeof(float) + mbn_ensWorkBytes(u->e));
  return 1;
}

/* Training ------------------------------------------------------------------------------------ */

/* the inputs [N x in] at 2 (N in *N) and, when y is not NULL, the targets [N x out] at 3 */
static const float *rows(lua_State *L, mbEnsemble *e, const char *F, int64_t *N,
                         const float **y) {
  const float *x = mbL_checkmatrix(L, 2, F, "inputs", -1, e->cfg.inputs);
  *N = mbL_checktensor(L, 2)->size[0];
  if (y) *y = mbL_checkmatrix(L, 3, F, "targets", *N, e->cfg.outputs);
  return x;
}

/* ens:fit(inputs [N x in], targets [N x out] [, opts]) -> {epochs, train_loss = {..},
   holdout_mse = {per member}, holdout_curve = {{per member} per epoch}, elites = {..},
   seconds, stopped = "patience"|"max_epochs"|"max_seconds", train_rows, holdout_rows}
   opts: the keys of MB_FIT_FIELDS (max_epochs, max_seconds, and the ensemble's patience,
   batch, holdout_ratio, holdout_cap, improvement for this fit) */
static int ens_fit(lua_State *L) {
  const char *F = "ens:fit";
  mbEnsemble *e = checkens(L, 1);
  int64_t N;
  const float *y, *x = rows(L, e, F, &N, &y);
  mbFitOptions o;
  mbn_fitDefaults(&o, e);
  if (!lua_isnoneornil(L, 4)) mbL_readfields(L, 4, F, mbn_fitFields, &o, NULL);
  mbFitResult r;
  if (mbn_ensFit(&r, e, x, y, N, &o) < 0) return coreerror(L, F);
  /* the report: the arrays are copied out of the ensemble's history */
  const int M = e->cfg.members;
  lua_createtable(L, 0, 10);
  lua_pushinteger(L, r.epochs); lua_setfield(L, -2, "epochs");
  mbL_pushnumbers(L, r.train_loss, r.epochs); lua_setfield(L, -2, "train_loss");
  mbL_pushfloats(L, e->holdout_mse, M); lua_setfield(L, -2, "holdout_mse");
  lua_createtable(L, r.epochs, 0);
  for (int k = 0; k < r.epochs; k++) {
    mbL_pushnumbers(L, r.holdout_curve + (size_t)k * M, M);
    lua_rawseti(L, -2, k + 1);
  }
  lua_setfield(L, -2, "holdout_curve");
  mbL_pushints(L, e->elite, e->cfg.elites, 1); lua_setfield(L, -2, "elites");
  lua_pushnumber(L, r.seconds); lua_setfield(L, -2, "seconds");
  lua_pushstring(L, STOPS[r.stop]); lua_setfield(L, -2, "stopped");
  lua_pushinteger(L, r.train_rows); lua_setfield(L, -2, "train_rows");
  lua_pushinteger(L, r.holdout_rows); lua_setfield(L, -2, "holdout_rows");
  return 1;
}

/* [members x B x in] and [members x B x out] minibatches at 2 and 3 */
static int minibatch(lua_State *L, mbEnsemble *e, const char *F, const float **x,
                     const float **y) {
  int64_t sx[3] = {e->cfg.members, -1, e->cfg.inputs};
  *x = mbL_checkshape(L, 2, F, "inputs", 3, sx);
  int64_t B = mbL_checktensor(L, 2)->size[1];
  int64_t sy[3] = {e->cfg.members, B, e->cfg.outputs};
  *y = mbL_checkshape(L, 3, F, "targets", 3, sy);
  if (B < 1 || B > (1 << 20))
    luaL_error(L, "%s: %d rows per member (expected 1..1048576)", F, (int)B);
  return (int)B;
}

/* ens:train_step(inputs [members x B x in], targets [members x B x out]) -> loss: one Adam
   step on these minibatches (raw inputs: the current standardiser applies) */
typedef int (*lossfn)(double *loss, mbEnsemble *e, const float *x, const float *y, int B);
static int lossstep(lua_State *L, const char *F, lossfn fn) {
  mbEnsemble *e = checkens(L, 1);
  const float *x, *y;
  int B = minibatch(L, e, F, &x, &y);
  double loss;
  if (fn(&loss, e, x, y, B) < 0) return coreerror(L, F);
  lua_pushnumber(L, loss);
  return 1;
}

static int ens_trainstep(lua_State *L) { return lossstep(L, "ens:train_step", mbn_ensTrainStep); }

/* a new 1-d tensor holding a copy of src[n] */
static void pushslab(lua_State *L, const float *src, size_t n) {
  int64_t size = (int64_t)n;
  mbL_newcopy(L, src, 1, &size);
}

/* ens:loss_grad(inputs, targets) -> loss, gradient [slab size] (no update) */
static int ens_lossgrad(lua_State *L) {
  lossstep(L, "ens:loss_grad", mbn_ensLossGrad);
  mbEnsemble *e = checkens(L, 1);
  pushslab(L, e->grads, e->ntotal);
  return 2;
}

/* Prediction ---------------------------------------------------------------------------------- */

/* ens:predict(inputs [N x in]) -> mean, logvar [members x N x out] */
static int ens_predict(lua_State *L) {
  mbEnsemble *e = checkens(L, 1);
  int64_t N;
  const float *x = rows(L, e, "ens:predict", &N, NULL);
  int64_t size[3] = {e->cfg.members, N, e->cfg.outputs};
  mbTensor *mean = mbL_newtensor(L, 3, size);
  mbTensor *lv = mbL_newtensor(L, 3, size);
  if (mbn_ensPredict(mbt_data(mean), mbt_data(lv), e, x, N) < 0)
    return coreerror(L, "ens:predict");
  return 2;
}

/* ens:evaluate(inputs, targets) -> {MSE of each member's mean} */
static int ens_evaluate(lua_State *L) {
  mbEnsemble *e = checkens(L, 1);
  int64_t N;
  const float *y, *x = rows(L, e, "ens:evaluate", &N, &y);
  float mse[MB_ENS_MAXMEMBERS];
  if (mbn_ensEvaluate(mse, e, x, y, N) < 0) return coreerror(L, "ens:evaluate");
  mbL_pushfloats(L, mse, e->cfg.members);
  return 1;
}

/* ens:step(obs [N x obs], act [N x act], rng [, opts]) -> next_obs [N x obs], reward [N]
   [, member [N]]. opts: prediction = "sample"|"mean" (default: the ensemble's),
   member = true (also return each row's member, 1-based; 0 in mean mode),
   next_obs = T, reward = T (write into these tensors instead of new ones) */
static int ens_step(lua_State *L) {
  const char *F = "ens:step";
  mbEnsemble *e = checkens(L, 1);
  int od = e->cfg.outputs - 1, ad = e->cfg.inputs - od;
  if (od < 1 || ad < 0)
    return luaL_error(L, "%s: the ensemble maps %d inputs to %d outputs; a model step needs "
                      "outputs = 1 + obs and inputs = obs + act", F, e->cfg.inputs,
                      e->cfg.outputs);
  const float *obs = mbL_checkmatrix(L, 2, F, "obs", -1, od);
  int64_t N = mbL_checktensor(L, 2)->size[0];
  const float *act = mbL_checkmatrix(L, 3, F, "act", N, ad);
  mbRng *g = mbL_checkrng(L, 4);
  mbPredMode mode = e->cfg.prediction;
  lua_settop(L, 5);
  int opts = !lua_isnil(L, 5), want_member = 0;
  if (opts) {
    static const char *const extra[] = {"member", "next_obs", "reward", NULL};
    const mbField pred[] = {*mbu_fieldFind(mbn_ensFields, "prediction"), MB_F_END};
    mbEnsembleConfig o = e->cfg;
    mbL_readfields(L, 5, F, pred, &o, extra);
    mode = o.prediction;
    lua_getfield(L, 5, "member");
    want_member = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  /* the outputs at 6 and 7: given tensors (checked) or new ones; with given ones a step
     allocates nothing (the core reuses its workspaces) */
  static const char *const outs[2] = {"opts.next_obs", "opts.reward"};
  int64_t sn[2] = {N, od}, sr[1] = {N};
  float *out[2];
  for (int i = 0; i < 2; i++) {
    if (!opts || lua_getfield(L, 5, outs[i] + 5) == LUA_TNIL) {
      lua_settop(L, 5 + i);
      out[i] = mbt_data(mbL_newtensor(L, 2 - i, i ? sr : sn));
    } else {
      out[i] = mbL_checkshape(L, 6 + i, F, outs[i], 2 - i, i ? sr : sn);
    }
  }
  /* the member of each row, as a scratch userdata (converted to 1-based numbers below) */
  int32_t *member = NULL;
  if (want_member) member = lua_newuserdatauv(L, (size_t)(N ? N : 1) * sizeof(int32_t), 0);
  if (mbn_ensStep(out[0], out[1], member, e, obs, act, N, g, mode) < 0)
    return coreerror(L, F);
  lua_pushvalue(L, 6);
  lua_pushvalue(L, 7);
  if (!want_member) return 2;
  float *m = mbt_data(mbL_newtensor(L, 1, sr));
  for (int64_t r = 0; r < N; r++) m[r] = (float)(member[r] + 1);
  return 3;
}

/* Inspection ---------------------------------------------------------------------------------- */

/* The small queries, one function told which by its upvalue (QUERIES order):
   ens:elites() -> {member numbers, lowest holdout MSE first}
   ens:holdout_mse() -> {per member} after the last fit (NaN before)
   ens:parameters() -> a copy of the parameter slab (members' MLPs, then max and min logvar)
   ens:bounds() -> max_logvar, min_logvar (copies, [out] each)
   ens:flops([B = batch]) -> floating-point operations of one training step on B rows per
     member, and of the forward of one row through one member */
static const char *const QUERIES[] = {"elites", "holdout_mse", "parameters", "bounds", "flops",
                                      NULL};
static int ens_query(lua_State *L) {
  mbEnsemble *e = checkens(L, 1);
  switch (lua_tointeger(L, lua_upvalueindex(1))) {
  case 0: mbL_pushints(L, e->elite, e->cfg.elites, 1); return 1;
  case 1: mbL_pushfloats(L, e->holdout_mse, e->cfg.members); return 1;
  case 2: pushslab(L, e->params, e->ntotal); return 1;
  case 3:
    pushslab(L, e->max_logvar, (size_t)e->cfg.outputs);
    pushslab(L, e->min_logvar, (size_t)e->cfg.outputs);
    return 2;
  default:
    lua_pushnumber(L, mbn_ensTrainFlops(e, (int)luaL_optinteger(L, 2, e->cfg.batch)));
    lua_pushnumber(L, mbn_ensForwardFlops(e));
    return 2;
  }
}

/* "inputs=14 outputs=12 members=7 hidden=200,200,200,200 activation=swish" */
static void pushlayout(lua_State *L, mbEnsemble *e) {
  mbStateBlock b[MB_STATE_MAXBLOCKS];
  mbn_ensStateBlocks(b, e);   /* its identity block: one home for the layout's words */
  lua_pushstring(L, b[1].text);
}

/* ens:info() -> the configuration (the keys of Ensemble.new) and sizes */
static int ens_info(lua_State *L) {
  mbEnsemble *e = checkens(L, 1);
  lua_createtable(L, 0, 26);
  mbL_pushstruct(L, mbn_ensFields, &e->cfg);
  lua_pushinteger(L, (lua_Integer)e->nparams); lua_setfield(L, -2, "member_params");
  lua_pushinteger(L, (lua_Integer)e->ntotal); lua_setfield(L, -2, "params");
  lua_pushinteger(L, e->fits); lua_setfield(L, -2, "fits");
  pushlayout(L, e); lua_setfield(L, -2, "layout");
  return 1;
}

/* State --------------------------------------------------------------------------------------- */

/* ens:state() -> the blocks of mbn_ensStateBlocks (include/mbpo/ensemble.h), copies: every
   value needed to continue bit for bit; ens:load_state(t): a state of the same layout */
static void *checkensobj(lua_State *L, int idx) { return checkens(L, idx); }
static int ensblocks(mbStateBlock *b, void *e) { return mbn_ensStateBlocks(b, e); }
static mbLStateType STATE = {"ens", "ensemble", checkensobj, ensblocks, NULL, NULL, 0};

static const luaL_Reg funcs[] = {{"new", ens_new}, {NULL, NULL}};
static const luaL_Reg meth[] = {
  {"fit", ens_fit}, {"train_step", ens_trainstep}, {"loss_grad", ens_lossgrad},
  {"predict", ens_predict}, {"evaluate", ens_evaluate}, {"step", ens_step},
  {"info", ens_info}, {NULL, NULL}};
static const luaL_Reg metameth[] = {
  {"__index", NULL}, {"__gc", ens_gc}, {"__close", ens_gc}, {NULL, NULL}};

int luaopen_mbpo_ensemble(lua_State *L) {
  /* tensors and generators cross this module's boundary: their metatables must exist */
  static const mbLClass classes[] = {{MBL_ENSEMBLE, meth, metameth, NULL, &STATE, 1}, {NULL}};
  mbL_newlib(L, (const char *[]){"mbpo.tensor", "mbpo.rng", NULL}, classes, funcs);
  luaL_getmetatable(L, MBL_ENSEMBLE);
  lua_getfield(L, -1, "__index");
  for (int i = 0; QUERIES[i]; i++) {
    lua_pushinteger(L, i);
    lua_pushcclosure(L, ens_query, 1);
    lua_setfield(L, -2, QUERIES[i]);
  }
  lua_pop(L, 2);
  mbL_setfields(L, "fields", mbn_ensFields);
  mbL_setfields(L, "fit_fields", mbn_fitFields);
  return 1;
}
