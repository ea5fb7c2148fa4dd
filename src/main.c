/* mbpo: the host. Boots Debian's Lua 5.4, opens the standard libraries, preloads the native
   modules and LuaFileSystem, points package.path at lua/mbpo (source tree or install), and
   hands argv to lua/mbpo/cli.lua. Uncaught errors print a message and traceback and exit 1;
   SIGINT/SIGTERM raise an "interrupted" Lua error at the next instruction hook, after which
   the process exits with 128 + signal. */
#include <ctype.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "lua/l_mbpo.h"
#include "mbpo/nn.h"

static lua_State *globalL = NULL;

/* hook installed by the signal handler: clears itself and raises "interrupted" */
static void interrupt_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted (%s)", mbL_signal == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* lua_sethook is async-signal-safe (lua.c relies on it for Ctrl-C) */
static void on_signal(int sig) {
  mbL_signal = sig;
  signal(sig, SIG_DFL); /* a second Ctrl-C kills outright */
  if (mbL_deferInterrupts) {
    static const char msg[] = "\nmbpo: interrupted; saving a checkpoint at the next safe point "
                              "(Ctrl-C again to kill)\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    return;
  }
  mbu_interrupted = sig;
  int mask = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
  if (globalL) lua_sethook(globalL, interrupt_hook, mask, 1);
}

/* message handler: string messages get a traceback; other error objects pass through */
static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  /* a message without a "chunk:line:" position was raised at level 0 by the library on
     purpose (a user's mistake, said in one line): no traceback. Errors with a position (a
     bug in a user's script, a Lua runtime error) keep theirs. */
  const char *colon = strchr(msg, ':');
  int positioned = 0;
  if (colon && colon > msg && isdigit((unsigned char)colon[1])) {
    const char *p = colon + 1;
    while (isdigit((unsigned char)*p)) p++;
    positioned = *p == ':';
  }
  if (!positioned) { lua_pushstring(L, msg); return 1; }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* directory of the running executable (from /proc/self/exe) */
static void exe_dir(char *out, size_t n) {
  char path[PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", path, sizeof path - 1);
  if (len <= 0) { snprintf(out, n, "."); return; }
  path[len] = 0;
  snprintf(out, n, "%s", dirname(path));
}

static int file_exists(const char *p) { return access(p, R_OK) == 0; }

/* finds lua/mbpo: $MBPO_HOME/lua, <exe>/../lua (source tree build/mbpo),
   <exe>/../share/mbpo/lua (make install); sets package.path and mbpo_root/mbpo_lua_dir */
static int setup_paths(lua_State *L) {
  char dir[PATH_MAX], cand[PATH_MAX + 128], root[PATH_MAX + 64];
  const char *home = getenv("MBPO_HOME");
  exe_dir(dir, sizeof dir);
  /* candidate roots: each holds lua/mbpo/cli.lua */
  const char *suffix[] = {"", "/..", "/../..", "/../share/mbpo"};
  for (int i = home ? 0 : 1; i < 4; i++) {
    const char *base = i == 0 ? home : dir;
    snprintf(root, sizeof root, "%s%s", base, suffix[i]);
    snprintf(cand, sizeof cand, "%s/lua", root);
    char probe[PATH_MAX + 256];
    snprintf(probe, sizeof probe, "%s/mbpo/cli.lua", cand);
    if (!file_exists(probe)) continue;
    char real[PATH_MAX];
    if (realpath(root, real)) snprintf(root, sizeof root, "%s", real);
    if (realpath(cand, real)) snprintf(cand, sizeof cand, "%s", real);
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;./?.lua;./?/init.lua", cand, cand);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    lua_pushstring(L, root);
    lua_setglobal(L, "MBPO_ROOT");
    return 1;
  }
  fprintf(stderr, "mbpo: cannot find the Lua library (lua/mbpo/cli.lua) next to %s; "
                  "set MBPO_HOME to the source tree or install prefix/share/mbpo\n", dir);
  return 0;
}

/* the protected main: require "mbpo.cli" and return cli.main(args) */
static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  luaL_openlibs(L);
  mbL_preload(L);
  /* the tensor metatable must exist before any module returns a tensor */
  luaL_requiref(L, "mbpo.tensor", luaopen_mbpo_tensor, 0);
  lua_pop(L, 1);
  if (!setup_paths(L)) {
    lua_pushinteger(L, 1);
    return 1;
  }
  lua_createtable(L, argc, 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_setglobal(L, "MBPO_ARGV");
  lua_pushcfunction(L, msghandler);
  lua_setglobal(L, "MBPO_MSGHANDLER");
  lua_getglobal(L, "require");
  lua_pushliteral(L, "mbpo.cli");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "main");
  lua_getglobal(L, "MBPO_ARGV");
  lua_call(L, 1, 1);
  return 1;
}

int main(int argc, char **argv) {
  /* threads: MBPO_THREADS, else the online processors (at most 8: the kernels' tasks are
     coarse and small GEMMs gain nothing from more) */
  const char *t = getenv("MBPO_THREADS");
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  if (t && atoi(t) > 0) mbu_setThreads(atoi(t));
  else mbu_setThreads(ncpu < 1 ? 1 : ncpu > 8 ? 8 : (int)ncpu);
  /* the kernels' instruction-set path: MBPO_ISA (avx2, avx512, auto), else the best here */
  if (mbn_isaFromEnv() < 0) {
    fprintf(stderr, "mbpo: %s\n", mbu_lasterror());
    return 2;
  }
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "mbpo: cannot create the Lua state (out of memory)\n");
    return 1;
  }
  globalL = L;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  lua_pushcfunction(L, msghandler);
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  int status = lua_pcall(L, 2, 1, 1);
  int code;
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "mbpo: %s\n", msg ? msg : "(error object is not a string)");
    code = 1;
  } else {
    code = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
  }
  globalL = NULL;
  lua_close(L);
  if (mbL_signal) code = 128 + mbL_signal;
  return code;
}
