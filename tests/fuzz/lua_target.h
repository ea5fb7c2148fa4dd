/* Shared body of the libFuzzer targets that drive the Lua library (mbpo.config,
   mbpo.checkpoint): one Lua state with the native modules, as src/main.c sets it up, and a
   driver script tests/fuzz/<name>.lua returning function(bytes). The driver returns
   normally for any input (expected failures are nil, message); a Lua error escaping it is a
   bug: the message is printed and the target aborts, which libFuzzer reports as a crash. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

#include <lualib.h>

#include "lua/l_mbpo.h"

#ifndef MBPO_FUZZ_ROOT
#define MBPO_FUZZ_ROOT "."
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *fuzz_L;
static int fuzz_ref = LUA_NOREF;

/* at exit: the driver's global FUZZ_CLEANUP(), when it set one (removes its files) */
static void fuzz_cleanup(void) {
  if (!fuzz_L) return;
  lua_getglobal(fuzz_L, "FUZZ_CLEANUP");
  if (lua_isfunction(fuzz_L, -1)) lua_pcall(fuzz_L, 0, 0, 0);
}

/* opens the state and loads tests/fuzz/<driver>.lua; exits on failure */
static void fuzz_open(const char *driver) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  mbL_preload(L);
  luaL_requiref(L, "mbpo.tensor", luaopen_mbpo_tensor, 0);
  lua_pop(L, 1);
  const char *root = getenv("MBPO_HOME") ? getenv("MBPO_HOME") : MBPO_FUZZ_ROOT;
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua", root, root);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  lua_pushstring(L, root);
  lua_setglobal(L, "MBPO_ROOT");
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/fuzz/%s.lua", root, driver);
  if (luaL_loadfile(L, path) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK ||
      !lua_isfunction(L, -1)) {
    fprintf(stderr, "fuzz: cannot load %s: %s\n", path, lua_tostring(L, -1));
    exit(1);
  }
  fuzz_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  fuzz_L = L;
  atexit(fuzz_cleanup);
}

/* runs the driver on one input; aborts on an error that escaped it */
static int fuzz_run(const uint8_t *data, size_t size) {
  lua_State *L = fuzz_L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, fuzz_ref);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "fuzz: a Lua error escaped the driver: %s\n", lua_tostring(L, -1));
    abort();
  }
  return 0;
}
