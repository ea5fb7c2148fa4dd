/* mbpo.rng: seeded xoshiro256++ generators with exact state save/restore.
     local G = require "mbpo.rng"
     local g = G.new(seed [, stream])   g:uniform([lo, hi])  g:normal([mu, sigma])
     g:integer(lo, hi)  g:permutation(n) -> {..}  g:state() -> words  g:set_state(words)
     g:clone()  g:split(stream) -> new independent generator from this one's draws */

#include "lua/l_mbpo.h"

mbRng *mbL_testrng(lua_State *L, int idx) { return luaL_testudata(L, idx, MBL_RNG); }
mbRng *mbL_checkrng(lua_State *L, int idx) { return luaL_checkudata(L, idx, MBL_RNG); }

#define newrng(L) ((mbRng *)mbL_newobject(L, MBL_RNG, sizeof(mbRng), 0))

/* G.new(seed [, stream]): any integers (negative ones as their 64-bit words) */
static int rng_new(lua_State *L) {
  uint64_t seed = (uint64_t)luaL_checkinteger(L, 1), stream = (uint64_t)luaL_optinteger(L, 2, 0);
  mbg_seed(newrng(L), seed, stream);
  return 1;
}

/* g:uniform() in [0,1); g:uniform(hi); g:uniform(lo, hi) */
static int rng_uniform(lua_State *L) {
  mbRng *g = mbL_checkrng(L, 1);
  double u = mbg_uniform(g);
  if (lua_isnoneornil(L, 2)) lua_pushnumber(L, u);
  else if (lua_isnoneornil(L, 3)) lua_pushnumber(L, u * luaL_checknumber(L, 2));
  else {
    double lo = luaL_checknumber(L, 2), hi = luaL_checknumber(L, 3);
    lua_pushnumber(L, lo + (hi - lo) * u);
  }
  return 1;
}

/* g:normal([mu [, sigma]]) */
static int rng_normal(lua_State *L) {
  mbRng *g = mbL_checkrng(L, 1);
  double mu = luaL_optnumber(L, 2, 0.0), sigma = luaL_optnumber(L, 3, 1.0);
  lua_pushnumber(L, mu + sigma * mbg_normal(g));
  return 1;
}

/* g:integer(hi) in [1, hi]; g:integer(lo, hi) in [lo, hi] (inclusive, like math.random) */
static int rng_integer(lua_State *L) {
  mbRng *g = mbL_checkrng(L, 1);
  lua_Integer lo = 1, hi;
  if (lua_isnoneornil(L, 3)) hi = luaL_checkinteger(L, 2);
  else { lo = luaL_checkinteger(L, 2); hi = luaL_checkinteger(L, 3); }
  if (hi < lo)
    return luaL_error(L, "rng:integer: empty range [%I, %I]", (LUAI_UACINT)lo, (LUAI_UACINT)hi);
  uint64_t span = (uint64_t)hi - (uint64_t)lo + 1;
  uint64_t r = span ? mbg_below(g, span) : mbg_next(g);
  lua_pushinteger(L, (lua_Integer)((uint64_t)lo + r));
  return 1;
}

/* g:permutation(n) -> Lua array of 1..n in random order */
static int rng_permutation(lua_State *L) {
  mbRng *g = mbL_checkrng(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_argcheck(L, n >= 0 && n <= (1 << 26), 2, "permutation size out of range");
  lua_createtable(L, (int)n, 0);
  int64_t *p = mbu_malloc((size_t)(n ? n : 1) * sizeof *p);
  if (!p) return mbL_coreerror(L);
  mbg_permutation(p, g, (size_t)n);
  for (lua_Integer i = 0; i < n; i++) {
    lua_pushinteger(L, p[i] + 1);
    lua_rawseti(L, -2, i + 1);
  }
  mbu_free(p);
  return 1;
}

/* g:state() -> the generator's four words (mbpo.Array U64 [4]); g:set_state(words) */
static void *checkrngobj(lua_State *L, int idx) { return mbL_checkrng(L, idx); }
static int rngblocks(mbStateBlock *b, void *g) { return (int)(mbg_stateBlocks(b, g) - b); }
static mbLStateType STATE = {"rng", "generator", checkrngobj, rngblocks, NULL, NULL, 1};
static int rng_setstate(lua_State *L) { return mbL_loadstate(L, &STATE); }

static int rng_clone(lua_State *L) {
  mbRng *g = mbL_checkrng(L, 1);
  *newrng(L) = *g;
  return 1;
}

/* g:split([stream]) -> a new generator seeded from this one's next draw (and stream) */
static int rng_split(lua_State *L) {
  mbRng *g = mbL_checkrng(L, 1);
  uint64_t stream = (uint64_t)luaL_optinteger(L, 2, 0);
  mbg_seed(newrng(L), mbg_next(g), stream);
  return 1;
}

static int rng_tostring(lua_State *L) {
  mbRng *g = mbL_checkrng(L, 1);
  lua_pushfstring(L, "mbpo.Rng (%p)", (void *)g);
  return 1;
}

static const luaL_Reg funcs[] = {{"new", rng_new}, {NULL, NULL}};
static const luaL_Reg meth[] = {
  {"uniform", rng_uniform}, {"normal", rng_normal}, {"integer", rng_integer},
  {"permutation", rng_permutation}, {"set_state", rng_setstate},
  {"clone", rng_clone}, {"split", rng_split}, {NULL, NULL}};
static const luaL_Reg metameth[] = {{"__index", NULL}, {"__tostring", rng_tostring}, {NULL, NULL}};

int luaopen_mbpo_rng(lua_State *L) {
  static const mbLClass classes[] = {{MBL_RNG, meth, metameth, NULL, &STATE, 0}, {NULL}};
  return mbL_newlib(L, NULL, classes, funcs);
}
