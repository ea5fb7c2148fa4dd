/* mbpo.env.native: the C half of mbpo.env, the Lua face of src/sim (lua/mbpo/env.lua, the
   module scripts require, documents the API). The class mbpo.Env, E.make, E.termination and
   E.tasks live here. A custom env (E.from_mjcf) is the same userdata: its physics runs here,
   and its reset, step, set_state and termination call its task runner (written in Lua, user
   value 1), which applies the task's rules through the functions marked "custom". */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lua/l_mbpo.h"
#include "mbpo/env.h"

#define MBL_ENV "mbpo.Env"

typedef struct LEnv {
  mbEnv *env;              /* NULL once closed */
  int busy;                /* > 0 while its task runner runs: close is refused */
} LEnv;

/* what the collector is told an env holds (mjModel + mjData with its arena: a few MiB) */
#define MBL_ENV_BYTES ((size_t)4 << 20)

/* Helpers -------------------------------------------------------------------------------- */

/* surfaces queued MuJoCo warnings as Lua warnings */
static void flushwarnings(lua_State *L) {
  const char *w;
  while ((w = mbs_nextWarning()) != NULL) {
    lua_warning(L, "mbpo.env: MuJoCo warning: ", 1);
    lua_warning(L, w, 0);
  }
}

/* MBL_CHECK plus the warnings */
#define ECHECK(L, call) do { int rc_ = (call); flushwarnings(L); \
    if (rc_ < 0) mbL_coreerror(L); } while (0)

mbEnv *mbL_checkenv(lua_State *L, int idx) {
  LEnv *e = luaL_checkudata(L, idx, MBL_ENV);
  if (!e->env) luaL_error(L, "mbpo.Env: the env has been closed");
  return e->env;
}

/* pushes a new [n] tensor holding x (float32) */
static void pushvec(lua_State *L, const double *x, int n) {
  int64_t size = n;
  mbTensor *t = mbL_newtensor(L, 1, &size);
  float *p = mbt_data(t);
  for (int i = 0; i < n; i++) p[i] = (float)x[i];
}

/* a scratch buffer of n doubles owned by the Lua stack (freed by the GC) */
static double *scratch(lua_State *L, int n) {
  return lua_newuserdatauv(L, sizeof(double) * (size_t)(n > 0 ? n : 1), 0);
}

/* reads n numbers from a tensor (any shape with n elements, contiguous) or a Lua array at
   idx (absolute; raw reads) into out, or into a new scratch buffer when out is NULL; raises
   naming fname/what on a wrong length or a non-number. Non-finite values are passed through
   (callers decide). */
static double *readvec(lua_State *L, int idx, const char *fname, const char *what,
                       double *out, int n, const char *owner) {
  if (!out) out = scratch(L, n);
  mbTensor *t = mbL_testtensor(L, idx);
  if (t && !t->storage) luaL_error(L, "%s: %s is a closed tensor", fname, what);
  if (!t && !lua_istable(L, idx))
    luaL_error(L, "%s: %s must be an mbpo.Tensor or a table of numbers, got %s", fname, what,
               luaL_typename(L, idx));
  int64_t k = t ? mbt_numel(t) : (int64_t)lua_rawlen(L, idx);
  if (k != n) luaL_error(L, "%s: %s has %d values, %s expects %d", fname, what, (int)k, owner, n);
  if (t && !mbt_isContiguous(t)) luaL_error(L, "%s: %s must be a contiguous tensor", fname, what);
  const float *p = t ? mbt_data(t) : NULL;
  for (int i = 0; i < n; i++) {
    if (p) { out[i] = p[i]; continue; }
    lua_rawgeti(L, idx, i + 1);
    int isnum;
    out[i] = lua_tonumberx(L, -1, &isnum);
    if (!isnum)
      luaL_error(L, "%s: %s[%d] is not a number (%s)", fname, what, i + 1, luaL_typename(L, -1));
    lua_pop(L, 1);
  }
  return out;
}

/* Custom envs ----------------------------------------------------------------------------- */

/* a custom env's env:NAME(args) (the env at 1): runner:NAME(env, args) of its task runner,
   with the env busy so that a task callback cannot close it (the step or reset that called
   it still uses the simulation); returns the runner's results. where: an error message gets
   the position of the method's caller, as the method's own luaL_error would */
static int forward(lua_State *L, const char *name, int where) {
  LEnv *e = luaL_checkudata(L, 1, MBL_ENV);
  int base = lua_gettop(L);
  lua_getiuservalue(L, 1, 1);
  lua_getfield(L, -1, name);
  lua_insert(L, -2);
  for (int i = 1; i <= base; i++) lua_pushvalue(L, i);
  e->busy++;
  int rc = lua_pcall(L, base + 1, LUA_MULTRET, 0);
  e->busy--;
  if (rc != LUA_OK && where && lua_type(L, -1) == LUA_TSTRING)
    return luaL_error(L, "%s", lua_tostring(L, -1));
  if (rc != LUA_OK) return lua_error(L);
  return lua_gettop(L) - base;
}

/* custom: N.sim(env, before, name [, i [, count]]) -> a copy of the simulation's array name
   (mbsView: qpos, qvel, ctrl [n], xpos, xipos [nbody * 3], cfrc_ext [nbody * 6], body_mass
   [nbody]) as an mbpo.Array F64, or its count (1) numbers from the 1-based i, or the number
   time; before: the snapshot at the start of the step */
static int e_sim(lua_State *L) {
  static const char *const names[] = {"qpos", "qvel", "ctrl", "xpos", "xipos", "cfrc_ext",
                                      "body_mass", "time", NULL};
  mbsView v;
  mbs_view(&v, mbL_checkenv(L, 1), lua_toboolean(L, 2));
  int a = luaL_checkoption(L, 3, NULL, names);
  const double *x[] = {v.qpos, v.qvel, v.ctrl, v.xpos, v.xipos, v.cfrc_ext, v.body_mass};
  const int64_t n[] = {v.nq, v.nv, v.nu, 3 * v.nbody, 3 * v.nbody, 6 * v.nbody, v.nbody};
  if (a == 7) {
    lua_pushnumber(L, v.time);
    return 1;
  }
  if (lua_isnoneornil(L, 4)) {
    memcpy(mbL_newarray(L, MB_F64, 1, &n[a])->data, x[a], sizeof(double) * (size_t)n[a]);
    return 1;
  }
  lua_Integer i = luaL_checkinteger(L, 4), count = luaL_optinteger(L, 5, 1);
  luaL_argcheck(L, i >= 1 && count >= 1 && count <= n[a] - i + 1, 4, "out of range");
  luaL_checkstack(L, (int)count, "N.sim");
  for (lua_Integer k = i - 1; k < i - 1 + count; k++) lua_pushnumber(L, x[a][k]);
  return (int)count;
}

/* custom: N.body(env, name) -> the 1-based index of the body (1 = world), or nil */
static int e_body(lua_State *L) {
  int id = mbs_bodyId(mbL_checkenv(L, 1), luaL_checkstring(L, 2));
  if (id < 0) return 0;
  lua_pushinteger(L, id + 1);
  return 1;
}

/* custom: N.observation(env, obs) -> a new tensor [obs_dim] of task.observation's result (a
   tensor or a table of numbers); the first one fixes obs_dim */
static int e_observation(lua_State *L) {
  mbEnv *env = mbL_checkenv(L, 1);
  mbTensor *t = mbL_testtensor(L, 2);
  int n = mbs_obsDim(env);
  int k = t && t->storage ? (int)mbt_numel(t) : lua_istable(L, 2) ? (int)luaL_len(L, 2) : -1;
  if (k < 0)
    return luaL_error(L, "task.observation must return an mbpo.Tensor or a table of numbers, "
                      "got %s", luaL_typename(L, 2));
  if (n == 0) {
    if (k < 1) luaL_error(L, "task.observation returned an empty observation");
    mbs_setObsDim(env, n = k);
  }
  pushvec(L, readvec(L, 2, "task.observation", "the observation", NULL, n, mbs_name(env)), n);
  return 1;
}

/* custom: N.reset_to(env, qpos, qvel, noise_scale [, g]): the episode starts from the task's
   reset (either may be nil: qpos0 / 0 plus the default noise times noise_scale); g, the
   generator the task's reset drew from, becomes the env's */
static int e_resetto(lua_State *L) {
  mbEnv *env = mbL_checkenv(L, 1);
  if (!lua_isnoneornil(L, 5)) *mbs_rng(env) = *mbL_checkrng(L, 5);
  double *q = lua_isnoneornil(L, 2) ? NULL :
              readvec(L, 2, "task.reset", "qpos", NULL, mbs_nq(env), mbs_name(env));
  double *v = lua_isnoneornil(L, 3) ? NULL :
              readvec(L, 3, "task.reset", "qvel", NULL, mbs_nv(env), mbs_name(env));
  ECHECK(L, mbs_resetTo(env, q, v, luaL_checknumber(L, 4)));
  return 0;
}

/* Module functions --------------------------------------------------------------------------- */

/* E.make(name [, opts]) -> env (opts: the keys of MB_ENV_FIELDS, include/mbpo/env.h), and
   custom: N.load(path, task, opts, newrunner) -> env | nil, message, a model's physics with
   the task table's settings (MB_MJCF_FIELDS) and opts' over them; newrunner(env) makes its
   task runner (user value 1), and the observation of qpos0 (as loaded) fixes obs_dim */
static int newenv(lua_State *L, int custom) {
  const char *name = luaL_checkstring(L, 1);
  mbEnvOptions o;
  mbu_fieldDefaults(&o, mbs_mjcfFields);
  if (custom) mbL_readfields(L, 2, "from_mjcf: task", mbs_mjcfFields, &o, mbL_anykey);
  if (custom ? lua_istable(L, 3) : !lua_isnoneornil(L, 2))
    mbL_readfields(L, 2 + custom, custom ? "from_mjcf" : "E.make", mbs_envFields, &o, NULL);
  LEnv *e = mbL_newobject(L, MBL_ENV, sizeof(LEnv), 1);
  e->env = custom ? mbs_fromFile(name, o.frame_skip, o.seed) : mbs_make(name, o.seed);
  flushwarnings(L);
  if (!e->env) return custom ? mbL_pushfail(L) : mbL_coreerror(L);
  mbL_extmem(L, MBL_ENV_BYTES);
  mbs_setMaxSteps(e->env, o.max_steps);
  if (!custom) return 1;
  mbs_setResetNoise(e->env, o.reset_noise);
  lua_replace(L, 1);                 /* env, task, opts, newrunner */
  lua_settop(L, 4);
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  lua_setiuservalue(L, 1, 1);
  lua_settop(L, 1);
  forward(L, "observe", 1);
  lua_settop(L, 1);
  return 1;
}
static int e_make(lua_State *L) { return newenv(L, 0); }
static int e_load(lua_State *L) { return newenv(L, 1); }

/* E.tasks() -> {"InvertedPendulum", "Hopper", ...} */
static int e_tasks(lua_State *L) {
  lua_createtable(L, mbs_taskCount(), 0);
  for (int i = 0; i < mbs_taskCount(); i++) {
    lua_pushstring(L, mbs_taskName(i));
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* Termination functions ------------------------------------------------------------------ */

/* the flags of opts {two_sided = true} at idx (nil: none) */
static int flagsfrom(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return 0;
  if (!lua_istable(L, idx))
    luaL_error(L, "termination: opts must be a table, got %s", luaL_typename(L, idx));
  lua_getfield(L, idx, "two_sided");
  int flags = lua_toboolean(L, -1) ? MBS_TWO_SIDED : 0;
  lua_pop(L, 1);
  return flags;
}

/* evaluates the named task's function on the value at idx: an [N x obs_dim] (or [obs_dim])
   tensor -> [N] tensor of 0/1; a Lua array of rows -> Lua array of 0/1 numbers */
static int evaltermination(lua_State *L, const char *name, int flags, int idx) {
  int d = mbs_taskObsDim(name);
  char fname[96];
  snprintf(fname, sizeof fname, "termination(%s)", name);
  mbTensor *t = mbL_testtensor(L, idx);
  int64_t n = 1, size[2] = {-1, d};
  float *x;
  if (t && t->storage && t->ndim == 1) {  /* one row */
    x = mbL_checkshape(L, idx, fname, "next_obs", 1, &size[1]);
  } else if (t) {                          /* a batch */
    x = mbL_checkshape(L, idx, fname, "next_obs", 2, size);
    n = t->size[0];
  } else if (lua_istable(L, idx)) {        /* rows, packed as a tensor holds them */
    n = luaL_len(L, idx);
    x = lua_newuserdatauv(L, sizeof(float) * (size_t)(n > 0 ? n : 1) * (size_t)d, 0);
    double *row = scratch(L, d);
    for (int64_t r = 0; r < n; r++) {
      char what[48];
      snprintf(what, sizeof what, "row %d", (int)r + 1);
      lua_geti(L, idx, r + 1);
      readvec(L, lua_gettop(L), fname, what, row, d, name);
      lua_pop(L, 1);
      for (int k = 0; k < d; k++) x[r * d + k] = (float)row[k];
    }
  } else {
    return luaL_error(L, "%s: next_obs must be an mbpo.Tensor [N x %d] or a table of rows, got %s",
                      fname, d, luaL_typename(L, idx));
  }
  float *done = mbt_data(mbL_newtensor(L, 1, &n));
  MBL_CHECK(L, mbs_termination(done, name, x, n, d, flags));
  if (!t) mbL_pushfloats(L, done, (int)n);
  return 1;
}

/* the closure returned by E.termination: upvalues name, flags. f(next_obs), or
   f(obs, act, next_obs) as MBPO's static functions are called */
static int termclosure(lua_State *L) {
  return evaltermination(L, lua_tostring(L, lua_upvalueindex(1)),
                         (int)lua_tointeger(L, lua_upvalueindex(2)), lua_gettop(L) >= 3 ? 3 : 1);
}

/* E.termination(name [, {two_sided = true}]) -> f */
static int e_termination(lua_State *L) {
  const char *canon = mbs_canonicalName(luaL_checkstring(L, 1));
  if (!canon) return luaL_error(L, "termination: unknown task '%s'", lua_tostring(L, 1));
  int flags = flagsfrom(L, 2);
  lua_pushstring(L, canon);
  lua_pushinteger(L, flags);
  lua_pushcclosure(L, termclosure, 2);
  return 1;
}

/* Methods ------------------------------------------------------------------------------------ */

/* env:reset([{seed =, noise_scale =}]) -> obs */
static int m_reset(lua_State *L) {
  mbEnv *env = mbL_checkenv(L, 1);
  mbsResetOptions o = {0, 1.0};
  if (!lua_isnoneornil(L, 2) && mbL_readfields(L, 2, "env:reset", mbs_resetFields, &o, NULL) & 1)
    mbg_seed(mbs_rng(env), o.seed, 0);
  if (mbs_isCustom(env)) {  /* the task's reset rule sees qpos0 */
    ECHECK(L, mbs_resetData(env));
    lua_settop(L, 1);
    lua_pushnumber(L, o.noise_scale);
    return forward(L, "reset", 1);
  }
  int64_t n = mbs_obsDim(env);
  ECHECK(L, mbs_reset(mbt_data(mbL_newtensor(L, 1, &n)), env, o.noise_scale));
  return 1;
}

/* env:step(action [, obs_out]) -> obs, reward, terminated, truncated */
static int m_step(lua_State *L) {
  mbEnv *env = mbL_checkenv(L, 1);
  int n = mbs_actDim(env);
  double ubuf[64];
  double *u = readvec(L, 2, "env:step", "action", n <= 64 ? ubuf : NULL, n, mbs_name(env));
  for (int i = 0; i < n; i++)   /* every element finite */
    if (!isfinite(u[i]))
      luaL_error(L, "env:step: action[%d] is %s (%s)", i + 1, isnan(u[i]) ? "NaN" : "infinite",
                 mbs_name(env));
  int64_t d = mbs_obsDim(env);
  float *out = lua_isnoneornil(L, 3) ? NULL : mbL_checkshape(L, 3, "env:step", "obs_out", 1, &d);
  if (mbs_isCustom(env)) {  /* the physics here, the task's rules in its runner */
    ECHECK(L, mbs_simulate(env, u));
    lua_settop(L, 3);
    forward(L, "step", 1);         /* obs, reward, terminated */
    lua_pushboolean(L, mbs_endStep(env, lua_toboolean(L, -1)));
    return 4;
  }
  if (out) lua_pushvalue(L, 3);
  double r;
  int term, trunc;
  ECHECK(L, mbs_step(out ? out : mbt_data(mbL_newtensor(L, 1, &d)), &r, &term, &trunc, env, u));
  lua_pushnumber(L, r);
  lua_pushboolean(L, term);
  lua_pushboolean(L, trunc);
  return 4;
}

/* env:get_state() -> qpos [nq], qvel [nv] (float32 tensors), steps */
static int m_getstate(lua_State *L) {
  mbEnv *env = mbL_checkenv(L, 1);
  mbsView v;
  mbs_view(&v, env, 0);
  pushvec(L, v.qpos, v.nq);
  pushvec(L, v.qvel, v.nv);
  lua_pushinteger(L, (lua_Integer)mbs_steps(env));
  return 3;
}

/* env:set_state(qpos, qvel) -> obs (tensors or tables; tables keep double precision) */
static int m_setstate(lua_State *L) {
  mbEnv *env = mbL_checkenv(L, 1);
  double *qpos = readvec(L, 2, "env:set_state", "qpos", NULL, mbs_nq(env), mbs_name(env));
  double *qvel = readvec(L, 3, "env:set_state", "qvel", NULL, mbs_nv(env), mbs_name(env));
  int64_t d = mbs_obsDim(env);
  float *obs = mbs_isCustom(env) ? NULL : mbt_data(mbL_newtensor(L, 1, &d));
  ECHECK(L, mbs_setState(obs, env, qpos, qvel));
  if (obs) return 1;
  lua_settop(L, 1);
  return forward(L, "observe", 1);
}

/* env:state() -> {name, steps, started, done, rng (mbpo.Array U64 [4]), and mbpo.Array F64
   of time, qpos, qvel, act, ctrl, qacc_warmstart, xpos, xipos, cfrc_ext}: everything a
   bit-for-bit continuation needs; env:load_state(t): a state of an env of the same task */
static void *checkenvobj(lua_State *L, int idx) { return mbL_checkenv(L, idx); }
static int envblocks(mbStateBlock *b, void *env) { return mbs_stateBlocks(b, env); }
static mbLStateType STATE = {"env", "env", checkenvobj, envblocks, NULL, NULL, 0};

/* env:termination(next_obs [, opts]) -> done (a custom task: task.termination(next_obs)) */
static int m_termination(lua_State *L) {
  mbEnv *env = mbL_checkenv(L, 1);
  if (mbs_isCustom(env)) return forward(L, "termination", 0);
  return evaltermination(L, mbs_name(env), flagsfrom(L, 3), 2);
}

/* env:termination_fn([opts]) -> f (the task's model-rollout termination function: that of
   E.termination), or nil, message for a custom task without task.termination */
static int m_termfn(lua_State *L) {
  mbEnv *env = mbL_checkenv(L, 1);
  if (mbs_isCustom(env)) return forward(L, "termination_fn", 0);
  lua_pushstring(L, mbs_name(env));
  lua_replace(L, 1);
  return e_termination(L);
}

/* env:seed(s): reseeds the env's generator */
static int m_seed(lua_State *L) {
  mbEnv *env = mbL_checkenv(L, 1);
  mbg_seed(mbs_rng(env), (uint64_t)luaL_checkinteger(L, 2), 0);
  return 0;
}

/* env:ctrl_range() -> lo, hi (tables of act_dim numbers; +-inf for unlimited actuators) */
static int m_ctrlrange(lua_State *L) {
  mbEnv *env = mbL_checkenv(L, 1);
  int n = mbs_actDim(env);
  double *lo = scratch(L, 2 * n);
  mbs_ctrlRange(lo, lo + n, env);
  mbL_pushnumbers(L, lo, n);
  mbL_pushnumbers(L, lo + n, n);
  return 2;
}

/* env:close() and __close: refused while its task runner runs (the step or reset that called
   a task callback still uses the simulation) */
static int m_close(lua_State *L) {
  LEnv *e = luaL_checkudata(L, 1, MBL_ENV);
  if (e->busy > 0)
    return luaL_error(L, "env:close: cannot close an env inside its own task callback "
                      "(close it after the step or reset returns)");
  mbs_free(e->env);
  e->env = NULL;
  return 0;
}

/* __gc: the userdata is on the stack of a running callback's caller, so busy cannot be set
   here when Lua collects it; an explicit __gc call during a callback is a no-op */
static int m_gc(lua_State *L) {
  return ((LEnv *)luaL_checkudata(L, 1, MBL_ENV))->busy == 0 ? m_close(L) : 0;
}

/* fields: obs_dim act_dim dt timestep frame_skip max_steps name steps nq nv nbody custom
   (the methods are found first) */
static int m_field(lua_State *L) {
  const char *k = luaL_checkstring(L, 2);
  mbEnv *env = mbL_checkenv(L, 1);
  if (strcmp(k, "obs_dim") == 0) lua_pushinteger(L, mbs_obsDim(env));
  else if (strcmp(k, "act_dim") == 0) lua_pushinteger(L, mbs_actDim(env));
  else if (strcmp(k, "dt") == 0) lua_pushnumber(L, mbs_dt(env));
  else if (strcmp(k, "timestep") == 0) lua_pushnumber(L, mbs_timestep(env));
  else if (strcmp(k, "frame_skip") == 0) lua_pushinteger(L, mbs_frameSkip(env));
  else if (strcmp(k, "max_steps") == 0) lua_pushinteger(L, mbs_maxSteps(env));
  else if (strcmp(k, "name") == 0) lua_pushstring(L, mbs_name(env));
  else if (strcmp(k, "steps") == 0) lua_pushinteger(L, (lua_Integer)mbs_steps(env));
  else if (strcmp(k, "nq") == 0) lua_pushinteger(L, mbs_nq(env));
  else if (strcmp(k, "nv") == 0) lua_pushinteger(L, mbs_nv(env));
  else if (strcmp(k, "nbody") == 0) lua_pushinteger(L, mbs_nbody(env));
  else if (strcmp(k, "custom") == 0) lua_pushboolean(L, mbs_isCustom(env));
  else lua_pushnil(L);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"make", e_make}, {"termination", e_termination}, {"tasks", e_tasks}, {"load", e_load},
  {"sim", e_sim}, {"body", e_body}, {"observation", e_observation}, {"reset_to", e_resetto},
  {NULL, NULL}};
static const luaL_Reg meth[] = {
  {"reset", m_reset}, {"step", m_step}, {"get_state", m_getstate}, {"set_state", m_setstate},
  {"termination", m_termination}, {"termination_fn", m_termfn}, {"seed", m_seed},
  {"ctrl_range", m_ctrlrange}, {"close", m_close}, {NULL, NULL}};
static const luaL_Reg metameth[] = {{"__gc", m_gc}, {"__close", m_close}, {NULL, NULL}};

int luaopen_mbpo_env(lua_State *L) {
  static const mbLClass classes[] = {{MBL_ENV, meth, metameth, m_field, &STATE, 1}, {NULL}};
  mbL_newlib(L, (const char *[]){"mbpo.tensor", NULL}, classes, funcs);
  mbL_setfields(L, "fields", mbs_envFields);
  mbL_setfields(L, "task_fields", mbs_mjcfFields);
  return 1;
}
