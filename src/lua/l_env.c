/* mbpo.env: the Lua face of src/sim (the six MuJoCo tasks and user MJCF models).
     local E = require "mbpo.env"
     local env = E.make("Hopper" [, {seed =, max_steps =}])   -- also "Hopper-v2", "hopper"
     local obs = env:reset{seed =, noise_scale =}               -- mbpo.Tensor [obs_dim]
     local obs, r, terminated, truncated = env:step(action [, obs_out])
     env.obs_dim  env.act_dim  env.dt  env.max_steps  env.name  env.steps
     env:get_state() -> qpos, qvel, steps     env:set_state(qpos, qvel) -> obs
     env:state() -> table (exact, for checkpoints)   env:load_state(t)
     env:termination(next_obs [, opts]) -> done     env:termination_fn([opts]) -> f
     E.termination(name [, {two_sided = true}]) -> f, f(next_obs [N x obs_dim]) -> [N] 0/1
     E.from_mjcf(path, task [, {seed =}]) -> env | nil, message
   Actions are the policy's u in [-1, 1] (an mbpo.Tensor or a Lua array); the env maps them
   to each actuator's ctrlrange. Custom task tables are described above e_frommjcf. */
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/l_mbpo.h"
#include "mbpo/env.h"

/* module opener, registered by l_init.c through its weak declaration */

#define MBL_ENV  "mbpo.Env"
#define MBL_VIEW "mbpo.EnvView"

/* user values of an env userdata */
enum { UV_TASK = 1, UV_VIEW, UV_BEFORE, UV_RNG, UV_COUNT = UV_RNG };

typedef struct LEnv {
  mbEnv *env;              /* NULL once closed */
  int busy;                /* > 0 while one of its task callbacks runs: close is refused */
} LEnv;

/* what the collector is told an env holds (mjModel + mjData with its arena: a few MiB) */
#define MBL_ENV_BYTES ((size_t)4 << 20)

/* a read-only window on an env's simulation, valid only inside a task callback */
typedef struct LView {
  mbEnv *env;
  int before;              /* 1: the snapshot at the start of the step */
  int valid;
} LView;

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

static LEnv *checklenv(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, MBL_ENV);
}

static mbEnv *checkenv(lua_State *L, int idx) {
  LEnv *e = checklenv(L, idx);
  if (!e->env) luaL_error(L, "mbpo.Env: the env has been closed");
  return e->env;
}

mbEnv *mbL_checkenv(lua_State *L, int idx) {
  return checkenv(L, idx);
}

/* pushes a new [n] tensor holding x (float32) */
static void pushvec(lua_State *L, const double *x, int n) {
  int64_t size = n;
  mbTensor *t = mbL_newtensor(L, 1, &size);
  float *p = mbt_data(t);
  for (int i = 0; i < n; i++) p[i] = (float)x[i];
}

/* reads n numbers from a tensor (any shape with n elements, contiguous) or a Lua array at
   idx into out; raises naming fname/what on a wrong length or a non-number. Non-finite
   values are passed through (callers decide). */
static void readvec(lua_State *L, int idx, const char *fname, const char *what, double *out,
                    int n, const char *owner) {
  mbTensor *t = mbL_testtensor(L, idx);
  if (t) {
    /* any shape with n elements: [n], [1 x n], ... */
    if (!t->storage) luaL_error(L, "%s: %s is a closed tensor", fname, what);
    int64_t k = mbt_numel(t);
    if (k != n)
      luaL_error(L, "%s: %s has %d values, %s expects %d", fname, what, (int)k, owner, n);
    if (!mbt_isContiguous(t)) luaL_error(L, "%s: %s must be a contiguous tensor", fname, what);
    const float *p = mbt_data(t);
    for (int i = 0; i < n; i++) out[i] = p[i];
    return;
  }
  /* a Lua array: raw reads (no metamethods), each element must be a number */
  if (!lua_istable(L, idx))
    luaL_error(L, "%s: %s must be an mbpo.Tensor or a table of numbers, got %s", fname, what,
               luaL_typename(L, idx));
  lua_Integer k = (lua_Integer)lua_rawlen(L, idx);
  if (k != n) luaL_error(L, "%s: %s has %d values, %s expects %d", fname, what, (int)k, owner, n);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, idx, i + 1);
    int isnum;
    out[i] = lua_tonumberx(L, -1, &isnum);
    if (!isnum)
      luaL_error(L, "%s: %s[%d] is not a number (%s)", fname, what, i + 1, luaL_typename(L, -1));
    lua_pop(L, 1);
  }
}

/* checks an action: length act_dim, every element finite */
static void readaction(lua_State *L, int idx, mbEnv *env, double *u) {
  int n = mbs_actDim(env);
  readvec(L, idx, "env:step", "action", u, n, mbs_name(env));
  for (int i = 0; i < n; i++)
    if (!isfinite(u[i]))
      luaL_error(L, "env:step: action[%d] is %s (%s)", i + 1, isnan(u[i]) ? "NaN" : "infinite",
                 mbs_name(env));
}

/* a scratch buffer of n doubles owned by the Lua stack (freed by the GC) */
static double *scratch(lua_State *L, int n) {
  return lua_newuserdatauv(L, sizeof(double) * (size_t)(n > 0 ? n : 1), 0);
}

/* Views ------------------------------------------------------------------------------------- */

static LView *checkview(lua_State *L, int idx, mbsView *v) {
  LView *w = luaL_checkudata(L, idx, MBL_VIEW);
  if (!w->valid || !w->env)
    luaL_error(L, "mbpo.EnvView: a view is only valid inside the task callback it was passed to");
  mbs_view(v, w->env, w->before);
  return w;
}

/* body argument: a name or a 1-based index (1 = world) -> 0-based id */
static int checkbody(lua_State *L, int idx, const LView *w, int nbody) {
  if (lua_type(L, idx) == LUA_TSTRING) {
    const char *name = lua_tostring(L, idx);
    int id = mbs_bodyId(w->env, name);
    if (id < 0) luaL_error(L, "view: no body named '%s'", name);
    return id;
  }
  lua_Integer i = luaL_checkinteger(L, idx);
  if (i < 1 || i > nbody)
    luaL_error(L, "view: body index %d out of range [1, %d] (1 is the world)", (int)i, nbody);
  return (int)i - 1;
}

/* vector accessor: v:qpos() -> tensor [n]; v:qpos(i) -> number (1-based) */
static int vecaccess(lua_State *L, const double *x, int n, const char *what) {
  if (lua_isnoneornil(L, 2)) {
    pushvec(L, x, n);
    return 1;
  }
  lua_Integer i = luaL_checkinteger(L, 2);
  if (i < 1 || i > n) luaL_error(L, "view:%s: index %d out of range [1, %d]", what, (int)i, n);
  lua_pushnumber(L, x[i - 1]);
  return 1;
}

/* per-body accessor: v:xpos() -> tensor [nbody x w]; v:xpos(body) -> w numbers;
   v:xpos(body, k) -> number */
static int bodyaccess(lua_State *L, const LView *lw, const mbsView *v, const double *x, int w) {
  if (lua_isnoneornil(L, 2)) {
    int64_t size[2] = {v->nbody, w};
    mbTensor *t = mbL_newtensor(L, 2, size);
    float *p = mbt_data(t);
    for (int i = 0; i < v->nbody * w; i++) p[i] = (float)x[i];
    return 1;
  }
  int b = checkbody(L, 2, lw, v->nbody);
  if (!lua_isnoneornil(L, 3)) {
    lua_Integer k = luaL_checkinteger(L, 3);
    if (k < 1 || k > w) luaL_error(L, "view: component %d out of range [1, %d]", (int)k, w);
    lua_pushnumber(L, x[b * w + k - 1]);
    return 1;
  }
  for (int k = 0; k < w; k++) lua_pushnumber(L, x[b * w + k]);
  return w;
}

/* the arrays of a view: v:name([i]) for vectors (length at `count`), v:name([body [, k]]) for
   per-body arrays of `width` values */
static const struct { const char *name; size_t data, count; int width; } ARRAYS[] = {
  {"qpos", offsetof(mbsView, qpos), offsetof(mbsView, nq), 0},
  {"qvel", offsetof(mbsView, qvel), offsetof(mbsView, nv), 0},
  {"ctrl", offsetof(mbsView, ctrl), offsetof(mbsView, nu), 0},
  {"xpos", offsetof(mbsView, xpos), 0, 3}, {"xipos", offsetof(mbsView, xipos), 0, 3},
  {"cfrc_ext", offsetof(mbsView, cfrc_ext), 0, 6},
  {"body_mass", offsetof(mbsView, body_mass), 0, 1}};
/* the integer fields of a view */
static const struct { const char *name; size_t offset; } COUNTS[] = {
  {"nq", offsetof(mbsView, nq)}, {"nv", offsetof(mbsView, nv)}, {"nu", offsetof(mbsView, nu)},
  {"nbody", offsetof(mbsView, nbody)}};

/* the accessor of ARRAYS[upvalue 1] */
static int v_array(lua_State *L) {
  mbsView v;
  LView *w = checkview(L, 1, &v);
  int a = (int)lua_tointeger(L, lua_upvalueindex(1));
  const double *x = *(const double *const *)((const char *)&v + ARRAYS[a].data);
  if (ARRAYS[a].width)
    return bodyaccess(L, w, &v, x, ARRAYS[a].width);
  return vecaccess(L, x, *(const int *)((const char *)&v + ARRAYS[a].count), ARRAYS[a].name);
}

/* v:com() -> x, y, z of the whole-body centre of mass (from xipos and the body masses) */
static int v_com(lua_State *L) {
  mbsView v;
  checkview(L, 1, &v);
  double c[3] = {0, 0, 0}, mass = 0;
  for (int b = 0; b < v.nbody; b++) {
    for (int k = 0; k < 3; k++) c[k] += v.body_mass[b] * v.xipos[3 * b + k];
    mass += v.body_mass[b];
  }
  for (int k = 0; k < 3; k++) lua_pushnumber(L, mass > 0 ? c[k] / mass : 0.0);
  return 3;
}

static int v_time(lua_State *L) {
  mbsView v;
  checkview(L, 1, &v);
  lua_pushnumber(L, v.time);
  return 1;
}

/* the fields nq, nv, nu, nbody (the methods are found first) */
static int v_field(lua_State *L) {
  mbsView v;
  const char *k = luaL_checkstring(L, 2);
  checkview(L, 1, &v);
  for (size_t i = 0; i < sizeof COUNTS / sizeof COUNTS[0]; i++)
    if (strcmp(k, COUNTS[i].name) == 0) {
      lua_pushinteger(L, *(const int *)((const char *)&v + COUNTS[i].offset));
      return 1;
    }
  lua_pushnil(L);
  return 1;
}

static int v_tostring(lua_State *L) {
  LView *w = luaL_checkudata(L, 1, MBL_VIEW);
  lua_pushfstring(L, "mbpo.EnvView (%s%s)", w->before ? "before the step" : "current",
                  w->valid ? "" : ", expired");
  return 1;
}

static const luaL_Reg viewmeth[] = {{"com", v_com}, {"time", v_time}, {NULL, NULL}};
static const luaL_Reg viewmetameth[] = {{"__tostring", v_tostring}, {NULL, NULL}};

/* sets the validity of both views of the env at idx */
static void setviews(lua_State *L, int idx, int valid) {
  /* views live in the env's user values: made once, switched on only during callbacks */
  for (int uv = UV_VIEW; uv <= UV_BEFORE; uv++) {
    lua_getiuservalue(L, idx, uv);
    LView *w = lua_touserdata(L, -1);
    if (w) w->valid = valid;
    lua_pop(L, 1);
  }
}

/* Custom task callbacks ------------------------------------------------------------------ */

/* calls task[field](args at the top nargs slots) with the views valid, nret results;
   errors are re-raised after the views expire */
static void callback(lua_State *L, int envidx, const char *field, int nargs, int nret) {
  lua_getiuservalue(L, envidx, UV_TASK);
  lua_getfield(L, -1, field);
  lua_remove(L, -2);
  lua_insert(L, -(nargs + 1));
  LEnv *e = lua_touserdata(L, envidx);
  setviews(L, envidx, 1);
  e->busy++;
  int rc = lua_pcall(L, nargs, nret, 0);
  e->busy--;
  setviews(L, envidx, 0);
  if (rc != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    luaL_error(L, "task.%s: %s", field, msg ? msg : "(error object is not a string)");
  }
}

/* pushes the current view of the env at envidx */
static void pushview(lua_State *L, int envidx, int before) {
  lua_getiuservalue(L, envidx, before ? UV_BEFORE : UV_VIEW);
}

/* obs = task.observation(view) as a new tensor [obs_dim]; when obs_dim is 0 it is set from
   the first result */
static void customobs(lua_State *L, int envidx, mbEnv *env) {
  pushview(L, envidx, 0);
  callback(L, envidx, "observation", 1, 1);
  int n = mbs_obsDim(env);
  int idx = lua_gettop(L);
  mbTensor *t = mbL_testtensor(L, idx);
  int k;
  if (t && t->storage) k = (int)mbt_numel(t);
  else if (lua_istable(L, idx)) k = (int)luaL_len(L, idx);
  else {
    luaL_error(L, "task.observation must return an mbpo.Tensor or a table of numbers, got %s",
               luaL_typename(L, idx));
    return;
  }
  if (n == 0) {
    if (k < 1) luaL_error(L, "task.observation returned an empty observation");
    mbs_setObsDim(env, k);
    n = k;
  }
  double *x = scratch(L, n);
  readvec(L, idx, "task.observation", "the observation", x, n, mbs_name(env));
  pushvec(L, x, n);   /* the scratch buffer stays referenced until the copy is made */
  lua_remove(L, idx + 1);
  lua_remove(L, idx); /* the callback's result */
}

/* Module functions --------------------------------------------------------------------------- */

/* builds the userdata around a new mbEnv (safe empty state first) */
static LEnv *newlenv(lua_State *L) {
  LEnv *e = lua_newuserdatauv(L, sizeof(LEnv), UV_COUNT);
  e->env = NULL;
  e->busy = 0;
  luaL_setmetatable(L, MBL_ENV);
  return e;
}

/* makes the two views (and, for custom envs, the rng userdata) of the env at the top */
static void attachviews(lua_State *L, mbEnv *env) {
  for (int uv = UV_VIEW; uv <= UV_BEFORE; uv++) {
    LView *w = lua_newuserdatauv(L, sizeof(LView), 0);
    w->env = env;
    w->before = uv == UV_BEFORE;
    w->valid = 0;
    luaL_setmetatable(L, MBL_VIEW);
    lua_setiuservalue(L, -2, uv);
  }
  mbRng *g = lua_newuserdatauv(L, sizeof(mbRng), 0);
  *g = *mbs_rng(env);
  luaL_setmetatable(L, MBL_RNG);
  lua_setiuservalue(L, -2, UV_RNG);
}

/* the options of env:reset */
typedef struct ResetOpts {
  uint64_t seed;
  double noise_scale;
} ResetOpts;
static const mbField RESET_FIELDS[] = {
  MB_F_U64(ResetOpts, seed, NAN, "reseeds the env's generator first")
  MB_F_DOUBLE(ResetOpts, noise_scale, 0, 1, 0, HUGE_VAL, "scale of the reset noise")
  MB_F_END};

/* E.make(name [, opts]): opts are the keys of MB_ENV_FIELDS (include/mbpo/env.h) */
static int e_make(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  mbEnvOptions o;
  mbu_fieldDefaults(&o, mbs_mjcfFields);
  if (!lua_isnoneornil(L, 2)) mbL_readfields(L, 2, "E.make", mbs_envFields, &o, NULL);
  LEnv *e = newlenv(L);
  e->env = mbs_make(name, o.seed);
  flushwarnings(L);
  if (!e->env) return mbL_coreerror(L);
  mbL_extmem(L, MBL_ENV_BYTES);
  mbs_setMaxSteps(e->env, o.max_steps);
  attachviews(L, e->env);
  return 1;
}

/* E.from_mjcf(path, task [, {seed =}]) -> env, or nil + message when the model does not load.
   task: a table of functions
     observation(view) -> obs (mbpo.Tensor or table of numbers; its length fixes obs_dim)
     reward(view, action, before) -> number; action = the ctrl values written (a table),
       before = a view of the state at the start of the step
     terminated(view) -> boolean
     reset(view, rng, noise_scale) -> qpos, qvel (optional; either may be nil: qpos0/0 plus
       uniform noise of half-width task.reset_noise, default 0.005, times noise_scale)
     termination(next_obs) -> done (optional; the model-rollout termination function)
   and optional settings frame_skip (1), max_steps (1000), reset_noise (0.005), seed (0).
   A view has qpos([i]), qvel([i]), ctrl([i]), xpos([body [, k]]), xipos(..), cfrc_ext(..),
   body_mass(..), com(), time() and the fields nq, nv, nu, nbody (indices 1-based; bodies
   by name or index, 1 = world); it is only valid during the callback. */
static int e_frommjcf(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (!lua_istable(L, 2))
    return luaL_error(L, "from_mjcf: task must be a table of functions (observation, reward, "
                      "terminated), got %s", luaL_typename(L, 2));
  /* the task table is checked completely before the model is loaded (the first three
     functions are required) */
  static const char *const fns[] = {"observation", "reward", "terminated", "reset",
                                    "termination"};
  for (int i = 0; i < 5; i++) {
    lua_getfield(L, 2, fns[i]);
    if (!lua_isfunction(L, -1) && (i < 3 || !lua_isnil(L, -1)))
      return luaL_error(L, "from_mjcf: task.%s must be a function%s, got %s", fns[i],
                        i < 3 ? "" : " or nil", luaL_typename(L, -1));
    lua_pop(L, 1);
  }
  /* the task's settings (MB_MJCF_FIELDS), and the options' seed over the task's */
  mbEnvOptions o;
  mbu_fieldDefaults(&o, mbs_mjcfFields);
  mbL_readfields(L, 2, "from_mjcf: task", mbs_mjcfFields, &o, mbL_anykey);
  if (lua_istable(L, 3)) mbL_readfields(L, 3, "from_mjcf", mbs_envFields, &o, NULL);
  int fs = o.frame_skip, max_steps = o.max_steps;
  double noise = o.reset_noise;
  uint64_t seed = o.seed;
  LEnv *e = newlenv(L);
  int envidx = lua_gettop(L);
  e->env = mbs_fromFile(path, (int)fs, seed);
  flushwarnings(L);
  if (!e->env) return mbL_pushfail(L);
  mbL_extmem(L, MBL_ENV_BYTES);
  mbs_setMaxSteps(e->env, (int)max_steps);
  mbs_setResetNoise(e->env, noise);
  attachviews(L, e->env);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, envidx, UV_TASK);
  /* obs_dim from one observation of qpos0 (no noise; the episode is not started) */
  mbRng saved = *mbs_rng(e->env);   /* the probe reset must not consume draws */
  ECHECK(L, mbs_resetData(e->env));
  ECHECK(L, mbs_resetTo(e->env, NULL, NULL, 0.0));
  *mbs_rng(e->env) = saved;
  customobs(L, envidx, e->env);
  lua_pop(L, 1);
  mbs_setProgress(e->env, 0, 0, 0);
  lua_settop(L, envidx);
  return 1;
}

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

static int flagsfrom(lua_State *L, int idx) {
  int flags = 0;
  if (lua_istable(L, idx)) {
    lua_getfield(L, idx, "two_sided");
    if (lua_toboolean(L, -1)) flags |= MBS_TWO_SIDED;
    lua_pop(L, 1);
  } else if (!lua_isnoneornil(L, idx)) {
    luaL_error(L, "termination: opts must be a table, got %s", luaL_typename(L, idx));
  }
  return flags;
}

/* evaluates the named task's function on the value at idx: an [N x obs_dim] (or [obs_dim])
   tensor -> [N] tensor of 0/1; a Lua array of rows -> Lua array of 0/1 numbers */
static int evaltermination(lua_State *L, const char *name, int flags, int idx) {
  int d = mbs_taskObsDim(name);
  char fname[96];
  snprintf(fname, sizeof fname, "termination(%s)", name);
  mbTensor *t = mbL_testtensor(L, idx);
  if (t) {
    /* a tensor: one row [obs_dim] or a batch [N x obs_dim], answered as a tensor [N] */
    int64_t n;
    const float *x;
    if (t->storage && t->ndim == 1) {
      int64_t size[1] = {d};
      x = mbL_checkshape(L, idx, fname, "next_obs", 1, size);
      n = 1;
    } else {
      x = mbL_checkmatrix(L, idx, fname, "next_obs", -1, d);
      n = t->size[0];
    }
    mbTensor *out = mbL_newtensor(L, 1, &n);
    MBL_CHECK(L, mbs_termination(mbt_data(out), name, x, n, d, flags));
    return 1;
  }
  if (!lua_istable(L, idx))
    return luaL_error(L, "%s: next_obs must be an mbpo.Tensor [N x %d] or a table of rows, got %s",
                      fname, d, luaL_typename(L, idx));
  /* a table of rows: packed into float rows (as a tensor would hold them) */
  lua_Integer n = luaL_len(L, idx);
  float *x = lua_newuserdatauv(L, sizeof(float) * (size_t)(n > 0 ? n : 1) * (size_t)d, 0);
  float *done = lua_newuserdatauv(L, sizeof(float) * (size_t)(n > 0 ? n : 1), 0);
  double *row = scratch(L, d);
  for (lua_Integer r = 0; r < n; r++) {
    lua_geti(L, idx, r + 1);
    char what[48];
    snprintf(what, sizeof what, "row %d", (int)r + 1);
    readvec(L, lua_gettop(L), fname, what, row, d, name);
    lua_pop(L, 1);
    for (int k = 0; k < d; k++) x[r * d + k] = (float)row[k];
  }
  MBL_CHECK(L, mbs_termination(done, name, x, n, d, flags));
  lua_createtable(L, (int)n, 0);
  for (lua_Integer r = 0; r < n; r++) {
    lua_pushnumber(L, done[r]);
    lua_rawseti(L, -2, r + 1);
  }
  return 1;
}

/* the closure returned by E.termination: upvalues name, flags. f(next_obs), or
   f(obs, act, next_obs) as MBPO's static functions are called */
static int termclosure(lua_State *L) {
  const char *name = lua_tostring(L, lua_upvalueindex(1));
  int flags = (int)lua_tointeger(L, lua_upvalueindex(2));
  int idx = lua_gettop(L) >= 3 ? 3 : 1;
  return evaltermination(L, name, flags, idx);
}

/* pushes the termination closure of a built-in task */
static void pushtermfn(lua_State *L, const char *canon, int flags) {
  lua_pushstring(L, canon);
  lua_pushinteger(L, flags);
  lua_pushcclosure(L, termclosure, 2);
}

/* E.termination(name [, {two_sided = true}]) -> f */
static int e_termination(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *canon = mbs_canonicalName(name);
  if (!canon) return luaL_error(L, "termination: unknown task '%s'", name);
  pushtermfn(L, canon, flagsfrom(L, 2));
  return 1;
}

/* Methods ------------------------------------------------------------------------------------ */

/* env:reset([{seed =, noise_scale =}]) -> obs */
static int m_reset(lua_State *L) {
  mbEnv *env = checkenv(L, 1);
  ResetOpts o = {0, 1.0};
  if (!lua_isnoneornil(L, 2) && mbL_readfields(L, 2, "env:reset", RESET_FIELDS, &o, NULL) & 1)
    mbr_seed(mbs_rng(env), o.seed, 0);
  double scale = o.noise_scale;
  if (!mbs_isCustom(env)) {
    int64_t n = mbs_obsDim(env);
    mbTensor *obs = mbL_newtensor(L, 1, &n);
    ECHECK(L, mbs_reset(mbt_data(obs), env, scale));
    return 1;
  }
  /* custom: the task's reset rule sees qpos0 and draws from the env's generator */
  ECHECK(L, mbs_resetData(env));
  lua_getiuservalue(L, 1, UV_TASK);
  lua_getfield(L, -1, "reset");
  int has = !lua_isnil(L, -1);
  lua_pop(L, 2);
  double *qpos = NULL, *qvel = NULL;
  if (has) {
    lua_getiuservalue(L, 1, UV_RNG);
    mbRng *g = lua_touserdata(L, -1);
    *g = *mbs_rng(env);
    lua_pop(L, 1);
    pushview(L, 1, 0);
    lua_getiuservalue(L, 1, UV_RNG);
    lua_pushnumber(L, scale);
    callback(L, 1, "reset", 3, 2);
    *mbs_rng(env) = *g;
    int top = lua_gettop(L);
    if (!lua_isnil(L, top - 1)) {
      qpos = scratch(L, mbs_nq(env));
      readvec(L, top - 1, "task.reset", "qpos", qpos, mbs_nq(env), mbs_name(env));
    }
    if (!lua_isnil(L, top)) {
      qvel = scratch(L, mbs_nv(env));
      readvec(L, top, "task.reset", "qvel", qvel, mbs_nv(env), mbs_name(env));
    }
  }
  ECHECK(L, mbs_resetTo(env, qpos, qvel, scale));
  customobs(L, 1, env);
  return 1;
}

/* env:step(action [, obs_out]) -> obs, reward, terminated, truncated */
static int m_step(lua_State *L) {
  mbEnv *env = checkenv(L, 1);
  int n = mbs_actDim(env);
  double ubuf[64];
  double *u = n <= 64 ? ubuf : scratch(L, n);
  readaction(L, 2, env, u);
  int64_t d = mbs_obsDim(env);
  float *out = lua_isnoneornil(L, 3) ? NULL : mbL_checkshape(L, 3, "env:step", "obs_out", 1, &d);
  double r;
  int term, trunc;
  if (!mbs_isCustom(env)) {
    /* built-in: one C call; the obs goes into obs_out or a new tensor */
    if (out) lua_pushvalue(L, 3);
    float *obs = out ? out : mbt_data(mbL_newtensor(L, 1, &d));
    ECHECK(L, mbs_step(obs, &r, &term, &trunc, env, u));
    lua_pushnumber(L, r);
    lua_pushboolean(L, term);
    lua_pushboolean(L, trunc);
    return 4;
  }
  /* custom: the physics in C, then the task's rules in Lua on views of the result */
  ECHECK(L, mbs_simulate(env, u));
  int top = lua_gettop(L);
  customobs(L, 1, env);                       /* top + 1: obs */
  mbsView v;
  mbs_view(&v, env, 0);
  pushview(L, 1, 0);
  mbL_pushnumbers(L, v.ctrl, v.nu);           /* the ctrl written */
  pushview(L, 1, 1);
  callback(L, 1, "reward", 3, 1);             /* reward(view, ctrl, before) */
  int isnum;
  r = lua_tonumberx(L, -1, &isnum);
  if (!isnum)
    return luaL_error(L, "task.reward must return a number, got %s", luaL_typename(L, -1));
  lua_pop(L, 1);
  pushview(L, 1, 0);
  callback(L, 1, "terminated", 1, 1);
  if (!lua_isboolean(L, -1) && !lua_isnil(L, -1))
    return luaL_error(L, "task.terminated must return a boolean, got %s", luaL_typename(L, -1));
  term = lua_toboolean(L, -1);
  lua_pop(L, 1);
  trunc = mbs_endStep(env, term);
  if (out) {                                  /* copied into obs_out when given */
    memcpy(out, mbt_data(mbL_checktensor(L, top + 1)), sizeof(float) * (size_t)d);
    lua_pushvalue(L, 3);
    lua_replace(L, top + 1);
  }
  lua_pushnumber(L, r);
  lua_pushboolean(L, term);
  lua_pushboolean(L, trunc);
  return 4;
}

/* env:get_state() -> qpos [nq], qvel [nv] (float32 tensors), steps */
static int m_getstate(lua_State *L) {
  mbEnv *env = checkenv(L, 1);
  mbsView v;
  mbs_view(&v, env, 0);
  pushvec(L, v.qpos, v.nq);
  pushvec(L, v.qvel, v.nv);
  lua_pushinteger(L, (lua_Integer)mbs_steps(env));
  return 3;
}

/* env:set_state(qpos, qvel) -> obs (tensors or tables; tables keep double precision) */
static int m_setstate(lua_State *L) {
  mbEnv *env = checkenv(L, 1);
  int nq = mbs_nq(env), nv = mbs_nv(env);
  double *qpos = scratch(L, nq), *qvel = scratch(L, nv);
  readvec(L, 2, "env:set_state", "qpos", qpos, nq, mbs_name(env));
  readvec(L, 3, "env:set_state", "qvel", qvel, nv, mbs_name(env));
  if (!mbs_isCustom(env)) {
    int64_t d = mbs_obsDim(env);
    mbTensor *obs = mbL_newtensor(L, 1, &d);
    ECHECK(L, mbs_setState(mbt_data(obs), env, qpos, qvel));
    return 1;
  }
  ECHECK(L, mbs_setState(NULL, env, qpos, qvel));
  customobs(L, 1, env);
  return 1;
}

/* env:state() -> {name, steps, started, done, rng (mbpo.Array U64 [4]), and mbpo.Array F64
   of time, qpos, qvel, act, ctrl, qacc_warmstart, xpos, xipos, cfrc_ext}: everything a
   bit-for-bit continuation needs; env:load_state(t): a state of an env of the same task */
static void *checkenvobj(lua_State *L, int idx) { return checkenv(L, idx); }
static int envblocks(mbStateBlock *b, void *env) { return mbs_stateBlocks(b, env); }
static mbLStateType STATE = {"env", "env", checkenvobj, envblocks, NULL, NULL, 0};

/* env:termination(next_obs [, opts]) -> done */
static int m_termination(lua_State *L) {
  mbEnv *env = checkenv(L, 1);
  if (!mbs_isCustom(env)) return evaltermination(L, mbs_name(env), flagsfrom(L, 3), 2);
  lua_getiuservalue(L, 1, UV_TASK);
  lua_getfield(L, -1, "termination");
  if (lua_isnil(L, -1))
    return luaL_error(L, "env:termination: custom task '%s' has no task.termination function",
                      mbs_name(env));
  lua_pushvalue(L, 2);
  lua_call(L, 1, 1);
  return 1;
}

/* env:termination_fn([opts]) -> f (the task's model-rollout termination function), or
   nil, message for a custom task without task.termination */
static int m_termfn(lua_State *L) {
  mbEnv *env = checkenv(L, 1);
  if (!mbs_isCustom(env)) {
    pushtermfn(L, mbs_name(env), flagsfrom(L, 2));
    return 1;
  }
  lua_getiuservalue(L, 1, UV_TASK);
  lua_getfield(L, -1, "termination");
  if (lua_isnil(L, -1)) {
    lua_pushfstring(L, "custom task '%s' has no task.termination function", mbs_name(env));
    return 2;
  }
  return 1;
}

/* env:seed(s): reseeds the env's generator */
static int m_seed(lua_State *L) {
  mbEnv *env = checkenv(L, 1);
  mbr_seed(mbs_rng(env), (uint64_t)luaL_checkinteger(L, 2), 0);
  return 0;
}

/* env:ctrl_range() -> lo, hi (tables of act_dim numbers; +-inf for unlimited actuators) */
static int m_ctrlrange(lua_State *L) {
  mbEnv *env = checkenv(L, 1);
  int n = mbs_actDim(env);
  double *lo = scratch(L, n), *hi = scratch(L, n);
  mbs_ctrlRange(lo, hi, env);
  mbL_pushnumbers(L, lo, n);
  mbL_pushnumbers(L, hi, n);
  return 2;
}

/* frees the simulation (idempotent) */
static void freeenv(lua_State *L, LEnv *e) {
  if (e->env) {
    for (int uv = UV_VIEW; uv <= UV_BEFORE; uv++) {
      lua_getiuservalue(L, 1, uv);
      LView *w = lua_touserdata(L, -1);
      if (w) { w->env = NULL; w->valid = 0; }
      lua_pop(L, 1);
    }
    mbs_free(e->env);
    e->env = NULL;
  }
}

/* env:close() and __close: refused inside one of the env's own task callbacks (the step or
   reset that called it still uses the simulation) */
static int m_close(lua_State *L) {
  LEnv *e = checklenv(L, 1);
  if (e->busy > 0)
    return luaL_error(L, "env:close: cannot close an env inside its own task callback "
                      "(close it after the step or reset returns)");
  freeenv(L, e);
  return 0;
}

/* __gc: the userdata is on the stack of a running callback's caller, so busy cannot be set
   here when Lua collects it; an explicit __gc call during a callback is a no-op */
static int m_gc(lua_State *L) {
  LEnv *e = checklenv(L, 1);
  if (e->busy == 0) freeenv(L, e);
  return 0;
}

static int m_tostring(lua_State *L) {
  LEnv *e = checklenv(L, 1);
  if (!e->env) lua_pushliteral(L, "mbpo.Env (closed)");
  else lua_pushfstring(L, "mbpo.Env %s (obs %d, act %d, dt %f)", mbs_name(e->env),
                       mbs_obsDim(e->env), mbs_actDim(e->env), mbs_dt(e->env));
  return 1;
}

/* fields: obs_dim act_dim dt timestep frame_skip max_steps name steps nq nv nbody custom
   (the methods are found first) */
static int m_field(lua_State *L) {
  const char *k = luaL_checkstring(L, 2);
  mbEnv *env = checkenv(L, 1);
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
  {"make", e_make}, {"from_mjcf", e_frommjcf}, {"termination", e_termination},
  {"tasks", e_tasks}, {NULL, NULL}};
static const luaL_Reg meth[] = {
  {"reset", m_reset}, {"step", m_step}, {"get_state", m_getstate}, {"set_state", m_setstate},
  {"termination", m_termination}, {"termination_fn", m_termfn}, {"seed", m_seed},
  {"ctrl_range", m_ctrlrange}, {"close", m_close}, {NULL, NULL}};
static const luaL_Reg metameth[] = {
  {"__gc", m_gc}, {"__close", m_close}, {"__tostring", m_tostring},
  {NULL, NULL}};

int luaopen_mbpo_env(lua_State *L) {
  /* the tensor and rng metatables must exist before we build userdata of those types */
  luaL_requiref(L, "mbpo.tensor", luaopen_mbpo_tensor, 0);
  luaL_requiref(L, "mbpo.rng", luaopen_mbpo_rng, 0);
  lua_pop(L, 2);
  mbL_newclass(L, MBL_ENV, meth, metameth, m_field);
  mbL_setstate(L, MBL_ENV, &STATE);
  mbL_newclass(L, MBL_VIEW, viewmeth, viewmetameth, v_field);
  luaL_getmetatable(L, MBL_VIEW);
  lua_getfield(L, -1, "methods");
  for (size_t a = 0; a < sizeof ARRAYS / sizeof ARRAYS[0]; a++) {
    lua_pushinteger(L, (lua_Integer)a);
    lua_pushcclosure(L, v_array, 1);
    lua_setfield(L, -2, ARRAYS[a].name);
  }
  lua_pop(L, 2);
  mbL_newmodule(L, NULL, NULL, NULL, funcs);
  mbL_pushfields(L, mbs_envFields);
  lua_setfield(L, -2, "fields");
  mbL_pushfields(L, mbs_mjcfFields);
  lua_setfield(L, -2, "task_fields");
  return 1;
}
