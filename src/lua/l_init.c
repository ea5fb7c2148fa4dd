/* Native module registry and mbpo.core (threads, clock, interrupts, version).
   Every native module is registered in package.preload so `require "mbpo.tensor"` etc.
   work in any script; LuaFileSystem is linked in statically as `lfs`. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench/bench.h"
#include "lua/l_mbpo.h"
#include "mbpo/nn.h"

#include <lfs.h>

volatile sig_atomic_t mbL_signal = 0;
volatile sig_atomic_t mbL_deferInterrupts = 0;

/* core.threads() -> n */
static int c_threads(lua_State *L) {
  lua_pushinteger(L, mbu_threads());
  return 1;
}

/* core.set_threads(n): OpenBLAS and our own parallel sections */
static int c_setthreads(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 1 && n <= 256, 1, "thread count out of range [1, 256]");
  mbu_setThreads((int)n);
  return 0;
}

/* core.pool_stats() -> {sections=, caller_tasks=, worker_tasks=, alone=, sleeps=, wait=}:
   the pool's cumulative counters (mbu_poolStats; wait in seconds) */
static int c_poolstats(lua_State *L) {
  mbuPoolStats p;
  mbu_poolStats(&p);
  const struct { const char *k; double v; } f[] = {{"sections", p.sections},
    {"caller_tasks", p.caller_tasks}, {"worker_tasks", p.worker_tasks}, {"alone", p.alone},
    {"sleeps", p.sleeps}, {"wait", p.wait}};
  lua_createtable(L, 0, 6);
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
    lua_pushnumber(L, f[i].v);
    lua_setfield(L, -2, f[i].k);
  }
  return 1;
}

/* core.isa() -> the elementwise kernels' instruction-set path, "avx512" or "avx2" */
static int c_isa(lua_State *L) {
  lua_pushstring(L, mbn_isaName(mbn_isa()));
  return 1;
}

/* core.clock() -> monotonic seconds */
static int c_clock(lua_State *L) {
  lua_pushnumber(L, mbu_clock());
  return 1;
}

/* core.interrupted() -> signal number (SIGINT 2, SIGTERM 15) or nil */
static int c_interrupted(lua_State *L) {
  if (mbL_signal) lua_pushinteger(L, mbL_signal);
  else lua_pushnil(L);
  return 1;
}

/* core.defer_interrupts(on): while on, Ctrl-C / SIGTERM only mark the process as
   interrupted (core.interrupted()) for the Lua code to act on at a safe point */
static int c_deferinterrupts(lua_State *L) {
  mbL_deferInterrupts = lua_toboolean(L, 1);
  return 0;
}

/* core.isatty(fd) */
static int c_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_optinteger(L, 1, 1)));
  return 1;
}

/* core.getpid() */
static int c_getpid(lua_State *L) {
  lua_pushinteger(L, getpid());
  return 1;
}

/* core.ncpu() -> online processors */
static int c_ncpu(lua_State *L) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  lua_pushinteger(L, n > 0 ? n : 1);
  return 1;
}

static const luaL_Reg corefuncs[] = {
  {"threads", c_threads}, {"set_threads", c_setthreads}, {"clock", c_clock},
  {"interrupted", c_interrupted}, {"defer_interrupts", c_deferinterrupts},
  {"isatty", c_isatty}, {"getpid", c_getpid},
  {"ncpu", c_ncpu}, {"pool_stats", c_poolstats}, {"isa", c_isa}, {NULL, NULL}};

int luaopen_mbpo_core(lua_State *L) { return mbL_newlib(L, NULL, NULL, corefuncs); }

void mbL_preload(lua_State *L) {
  const struct { const char *name; lua_CFunction open; } mods[] = {
    {"lfs", luaopen_lfs},
    {"mbpo.core", luaopen_mbpo_core},
    {"mbpo.tensor", luaopen_mbpo_tensor},
    {"mbpo.rng", luaopen_mbpo_rng},
    {"mbpo.nn", luaopen_mbpo_nn},
    {"mbpo.ensemble", luaopen_mbpo_ensemble},
    {"mbpo.sac", luaopen_mbpo_sac},
    {"mbpo.buffer", luaopen_mbpo_buffer},
    {"mbpo.env.native", luaopen_mbpo_env},
    {"mbpo.io.native", luaopen_mbpo_io},
    {"mbpo.render", luaopen_mbpo_render},
    {"mbpo.bench.native", luaopen_mbpo_bench_native},
  };
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (size_t i = 0; i < sizeof mods / sizeof mods[0]; i++) {
    lua_pushcfunction(L, mods[i].open);
    lua_setfield(L, -2, mods[i].name);
  }
  lua_pop(L, 1);
}
