/* mbpo.sac: the Lua face of src/rl/sac.c (Soft Actor-Critic).
     local SAC = require "mbpo.sac"
     local agent = SAC.new{obs = 11, act = 3, hidden = {256, 256}, lr = 3e-4, gamma = 0.99}
         the keys, defaults, ranges and docs are the rows of MB_SAC_FIELDS (include/mbpo/
         sac.h), SAC.fields in Lua; obs and act are required; precision "bf16" runs the
         matrix products of the update and of act with bf16 operands and fp32 accumulation
         (weights, Adam, losses and elementwise work stay fp32; a CPU without AVX512-BF16
         or AMX refuses it in one line)
     agent:update(batch [, stats])  batch = {obs=, act=, reward=, next_obs=, done=}
     agent:update(obs, act, reward, next_obs, done [, stats])
         one whole update (critic, actor, temperature, Polyak; noise from the agent's own
         generator); returns a table (the stats table when given, refilled) of the numbers of
         mbSacStats (include/mbpo/sac.h): q1_loss, q2_loss, critic_loss, actor_loss,
         alpha_loss, alpha, q_mean, q_pi, target_mean, entropy. NaN or inf there means
         non-finite data or weights: the update still ran and the caller decides
     agent:update_mixed(real, model, n, real_ratio, rng, sums) -> count [, critic, actor]
         n updates, each on a batch (the agent's batch size) drawn as
         buffer.sample_mixed(real, model, batch, real_ratio, rng): the same draws and bits as
         that Lua loop; each update's statistics (keys as update's) added into the table sums;
         stops at the first non-finite critic or actor loss: returns the finite updates before
         it and that update's critic and actor loss
     agent:act(obs [, {deterministic = bool, out = tensor} [, rng]])  -> actions
         obs [N x obs] -> [N x act]; obs [obs] -> [act]; tanh(mean) when deterministic, else
         a sample with noise from rng or, when nil, the agent's own generator; out (a
         contiguous tensor of the result's shape) is filled and returned: no allocation
     agent:state() -> {config, layout, pi, pi_m, pi_v, q, q_target, q_m, q_v (tensors; q's
         are [2 x nq]: critic 1, critic 2), pi_t, q_t, alpha_t, updates (integers),
         log_alpha, alpha_m, alpha_v (numbers), rng (mbpo.Array U64 [4])}: copies; with
         SAC.new(t.config) and load_state(t) a run continues bit for bit
     agent:load_state(t) -> agent; raises when t does not fit (the agent is then
         unchanged); the hyper-parameters stay the agent's own
     agent:alpha()  agent:updates()  agent:flops([B])  agent:config()  agent:close()
   Inputs are contiguous mbpo.Tensor (reward and done [B] or [B x 1]); plain Lua tables of
   numbers (rows as tables) are accepted too and copied, and then act returns Lua tables.
   Results are identical for the same seed and data whatever the thread count. */
#include <math.h>

#include "lua/l_mbpo.h"
#include "mbpo/buffer.h"
#include "mbpo/sac.h"

#define MBL_SAC "mbpo.Sac"

/* the userdata: a pointer, NULL until built and after close (mbL_checkopen) */
typedef struct lsac { mbSac *s; } lsac;

/* the agent at idx, or a Lua error (wrong type, or closed) */
static mbSac *checksac(lua_State *L, int idx) {
  return ((lsac *)mbL_checkopen(L, idx, MBL_SAC, "agent"))->s;
}

/* SAC.new(config): the keys of MB_SAC_FIELDS (include/mbpo/sac.h), mbpo.sac.fields in Lua */
static int sac_new(lua_State *L) {
  mbSacConfig c;
  mbr_sacDefaults(&c, 0, 0);
  mbL_readfields(L, 1, "SAC.new", mbr_sacFields, &c, NULL);
  lsac *u = mbL_newobject(L, MBL_SAC, sizeof *u, 0);
  if (!(u->s = mbu_calloc(1, sizeof(mbSac)))) mbL_coreerror(L);
  MBL_CHECK(L, mbr_sacInit(u->s, &c));
  /* the parameter slab and the update workspace, for the collector's pace */
  mbL_extmem(L, sizeof(float) * (4 * u->s->npi + 10 * u->s->nq + u->s->ws_floats));
  return 1;
}

/* __gc and __close */
static int sac_gc(lua_State *L) {
  lsac *u = luaL_checkudata(L, 1, MBL_SAC);
  if (u->s) mbr_sacFree(u->s);
  mbu_free(u->s);
  u->s = NULL;
  return 0;
}

/* Inputs -------------------------------------------------------------------------------- */

/* An input of n rows of floats: a contiguous tensor or a Lua table (table: copied into a
   tensor left on the stack); flat: a 1-d tensor or a flat Lua table. */
typedef struct Rows { const float *data; int n, flat, table; } Rows;

/* reads the argument at idx as rows of `cols` floats; want = required row count or -1.
   vector: a 1-d input is one row (act's obs) rather than a column (reward, done). */
static Rows getrows(lua_State *L, int idx, const char *fname, const char *arg, int cols,
                    int want, int vector) {
  Rows r = {NULL, 0, 0, 0};
  idx = lua_absindex(L, idx);
  mbTensor *t = mbL_testtensor(L, idx);
  if (!t) {
    if (!lua_istable(L, idx))
      luaL_error(L, "%s: %s must be a tensor or a table, got %s", fname, arg,
                 luaL_typename(L, idx));
    lua_pushfstring(L, "%s: %s", fname, arg);
    t = mbL_tabletensor(L, idx, lua_tostring(L, -1));
    lua_remove(L, -2);
    idx = lua_gettop(L);  /* the copy */
    r.table = 1;
  }
  if (t->storage && t->ndim == 1 && mbt_isContiguous(t) && (vector || cols == 1)) {
    if (vector && t->size[0] != cols)
      luaL_error(L, "%s: %s has %d numbers, expected %d", fname, arg, (int)t->size[0], cols);
    r.n = vector ? 1 : (int)t->size[0];
    r.flat = 1;
    r.data = mbt_data(t);
  } else {
    r.data = mbL_checkmatrix(L, idx, fname, arg, -1, cols);
    r.n = (int)t->size[0];
  }
  if (r.n < 1) luaL_error(L, "%s: %s is empty", fname, arg);
  if (want >= 0 && r.n != want)
    luaL_error(L, "%s: %s has %d rows, expected %d", fname, arg, r.n, want);
  return r;
}

/* Update -------------------------------------------------------------------------------- */

/* sets the statistics into the table at idx, keys of mbr_sacStatNames */
static void setstats(lua_State *L, int idx, const mbSacStats *st) {
  for (int i = 0; i < MB_SAC_NSTATS; i++) {
    lua_pushnumber(L, st->v[i]);
    lua_setfield(L, idx, mbr_sacStatNames[i]);
  }
}

/* agent:update(batch [, stats]) or agent:update(obs, act, reward, next_obs, done [, stats]) */
static int sac_update(lua_State *L) {
  mbSac *s = checksac(L, 1);
  static const char *const names[5] = {"obs", "act", "reward", "next_obs", "done"};
  int batchform = 0;
  if (lua_type(L, 2) == LUA_TTABLE) {
    batchform = lua_getfield(L, 2, "obs") != LUA_TNIL;
    lua_pop(L, 1);
  }
  int statsidx = batchform ? 3 : 7, base = batchform ? 4 : 2;
  lua_settop(L, statsidx);
  for (int i = 0; batchform && i < 5; i++)
    if (lua_getfield(L, 2, names[i]) == LUA_TNIL)
      luaL_error(L, "sac:update: batch.%s is missing", names[i]);
  /* the five inputs: rows of obs, act, 1, obs, 1 floats, as many rows as obs has */
  int top = lua_gettop(L), B = -1, O = s->cfg.obs;
  const int cols[5] = {O, s->cfg.act, 1, O, 1};
  const float *x[5];
  for (int i = 0; i < 5; i++) {
    Rows r = getrows(L, base + i, "sac:update", names[i], cols[i], B, 0);
    x[i] = r.data;
    B = r.n;
  }
  mbSacStats st;
  MBL_CHECK(L, mbr_sacUpdate(s, &st, x[0], x[1], x[2], x[3], x[4], B));
  lua_settop(L, top);
  if (!lua_istable(L, statsidx)) {
    lua_createtable(L, 0, MB_SAC_NSTATS);
    lua_replace(L, statsidx);
  }
  setstats(L, statsidx, &st);
  lua_pushvalue(L, statsidx);
  return 1;
}

/* agent:update_mixed(real, model, n, real_ratio, rng, sums) -> count [, critic, actor] (see
   the top): every finite update's statistics are added into sums (a missing key counts as 0)
   key by key in update order, so the sums are bit for bit those of the Lua loop */
static int sac_updatemixed(lua_State *L) {
  mbSac *s = checksac(L, 1);
  mbBuffer *real = mbL_checkbuffer(L, 2), *model = mbL_checkbuffer(L, 3);
  lua_Integer n = luaL_checkinteger(L, 4);
  double ratio = luaL_checknumber(L, 5);
  mbRng *g = mbL_checkrng(L, 6);
  luaL_checktype(L, 7, LUA_TTABLE);
  if (n < 0 || n > (1 << 30))
    luaL_error(L, "sac:update_mixed: n must be in 0..2^30, got %d", (int)n);
  mbSacSums acc;
  for (int i = 0; i < MB_SAC_NSTATS; i++) {
    lua_getfield(L, 7, mbr_sacStatNames[i]);
    acc.v[i] = luaL_optnumber(L, -1, 0.0);
    lua_pop(L, 1);
  }
  mbSacStats bad;
  int done = mbr_sacUpdatesMixed(s, &acc, &bad, real, model, g, s->cfg.batch, ratio, (int)n);
  if (done < 0) mbL_coreerror(L);
  if (done > 0) setstats(L, 7, &acc);  /* keys absent and never added stay absent */
  lua_pushinteger(L, done);
  if (done == n) return 1;
  lua_pushnumber(L, bad.critic_loss);
  lua_pushnumber(L, bad.actor_loss);
  return 3;
}

/* Acting -------------------------------------------------------------------------------- */

/* agent:act(obs [, opts [, rng]]) */
static int sac_act(lua_State *L) {
  mbSac *s = checksac(L, 1);
  int det = 0, A = s->cfg.act, outidx = 0;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_getfield(L, 3, "deterministic");
    det = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  mbRng *g = lua_isnoneornil(L, 4) ? NULL : mbL_checkrng(L, 4);
  Rows obs = getrows(L, 2, "sac:act", "obs", s->cfg.obs, -1, 1);
  /* the result: opts.out (checked), else a new tensor shaped like the input (for a table
     input, copied into Lua tables below) */
  int64_t size[2] = {obs.n, A};
  if (lua_istable(L, 3) && lua_getfield(L, 3, "out") != LUA_TNIL) outidx = lua_gettop(L);
  float *dst = outidx ? mbL_checkshape(L, outidx, "sac:act", "opts.out", 2 - obs.flat,
                                       size + obs.flat)
                      : mbt_data(mbL_newtensor(L, 2 - obs.flat, size + obs.flat));
  MBL_CHECK(L, mbr_sacAct(s, dst, obs.data, obs.n, det, g));
  if (outidx) lua_pushvalue(L, outidx);
  else if (obs.table) {  /* tables in, tables out: the result's x:to_table() */
    lua_getfield(L, -1, "to_table");
    lua_insert(L, -2);
    lua_call(L, 1, 1);
  }
  return 1;
}

/* State ----------------------------------------------------------------------------------- */

/* agent:config() -> the table SAC.new would take to build the same agent: the rows of
   MB_SAC_FIELDS but the shorthand lr, which the three rates give */
static int sac_config(lua_State *L) {
  mbSac *s = checksac(L, 1);
  lua_createtable(L, 0, 14);
  mbL_pushstruct(L, mbr_sacFields, &s->cfg);
  lua_pushnil(L);
  lua_setfield(L, -2, "lr");
  return 1;
}

/* agent:state() and agent:load_state(t) (see the top): mbr_sacStateBlocks' blocks */
static void *checksacobj(lua_State *L, int idx) { return checksac(L, idx); }
static int sacblocks(mbStateBlock *b, void *s) { return mbr_sacStateBlocks(b, s); }
static mbLStateType STATE = {"sac", "agent", checksacobj, sacblocks, NULL, sac_config, 0};

/* Small queries ------------------------------------------------------------------------- */

/* agent:alpha() -> the current temperature exp(log_alpha) */
static int sac_alpha(lua_State *L) {
  lua_pushnumber(L, expf(checksac(L, 1)->log_alpha));
  return 1;
}

/* agent:updates() -> updates done */
static int sac_updates(lua_State *L) {
  lua_pushinteger(L, checksac(L, 1)->updates);
  return 1;
}

/* agent:flops([B]) -> FLOPs of the matrix products of one update of B rows (default batch) */
static int sac_flops(lua_State *L) {
  mbSac *s = checksac(L, 1);
  lua_Integer B = luaL_optinteger(L, 2, s->cfg.batch);
  luaL_argcheck(L, B >= 1, 2, "batch must be positive");
  lua_pushnumber(L, mbr_sacUpdateFlops(s, (int)B));
  return 1;
}

static const luaL_Reg funcs[] = {{"new", sac_new}, {NULL, NULL}};
static const luaL_Reg meth[] = {
  {"update", sac_update}, {"update_mixed", sac_updatemixed}, {"act", sac_act},
  {"config", sac_config}, {"alpha", sac_alpha},
  {"updates", sac_updates}, {"flops", sac_flops}, {"close", sac_gc}, {NULL, NULL}};
static const luaL_Reg metameth[] = {
  {"__index", NULL}, {"__gc", sac_gc}, {"__close", sac_gc}, {NULL, NULL}};

int luaopen_mbpo_sac(lua_State *L) {
  static const mbLClass classes[] = {{MBL_SAC, meth, metameth, NULL, &STATE, 1}, {NULL}};
  mbL_newlib(L, NULL, classes, funcs);
  mbL_setfields(L, "fields", mbr_sacFields);
  return 1;
}
