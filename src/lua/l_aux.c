/* The binding helpers (lauxlib's twin for mbpo): errors, userdata checks, tensor arguments,
   Lua lists of numbers, module and class openers, and the collector hint of native memory.
   Every l_*.c uses them instead of writing its own; declared in l_mbpo.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lua/l_mbpo.h"

/* Errors ---------------------------------------------------------------------------------- */

int mbL_coreerror(lua_State *L) { return luaL_error(L, "%s", mbu_lasterror()); }

int mbL_errorf(lua_State *L, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  luaL_where(L, 1);
  lua_pushstring(L, buf);
  lua_concat(L, 2);
  return lua_error(L);
}

int mbL_pushfail(lua_State *L) {
  luaL_pushfail(L);
  lua_pushstring(L, mbu_lasterror());
  return 2;
}

/* Userdata -------------------------------------------------------------------------------- */

void *mbL_newobject(lua_State *L, const char *tname, size_t size, int nuv) {
  void *u = memset(lua_newuserdatauv(L, size, nuv), 0, size);
  luaL_setmetatable(L, tname);
  return u;
}

void *mbL_checkopen(lua_State *L, int idx, const char *tname, const char *what) {
  void *u = luaL_checkudata(L, idx, tname), *first;
  memcpy(&first, u, sizeof first);  /* the object pointer (or a tensor's storage) */
  if (!first) luaL_argerror(L, idx, lua_pushfstring(L, "%s has been closed", what));
  return u;
}

/* Tensor arguments ------------------------------------------------------------------------- */

mbTensor *mbL_testtensor(lua_State *L, int idx) { return luaL_testudata(L, idx, MBL_TENSOR); }

mbTensor *mbL_checktensor(lua_State *L, int idx) {
  return mbL_checkopen(L, idx, MBL_TENSOR, "tensor");
}

float *mbL_checkshape(lua_State *L, int idx, const char *fname, const char *argname,
                      int ndim, const int64_t *size) {
  mbTensor *t = mbL_testtensor(L, idx);
  if (!t || !t->storage)
    luaL_error(L, "%s: %s must be a tensor, got %s", fname, argname, luaL_typename(L, idx));
  int ok = t->ndim == ndim && mbt_isContiguous(t);
  for (int i = 0; ok && i < ndim; i++)
    if (size[i] >= 0 && t->size[i] != size[i]) ok = 0;
  if (!ok) {
    char want[160], got[160];
    luaL_error(L, "%s: %s must be a contiguous %s tensor, got %s%s", fname, argname,
               mbu_shapeText(want, sizeof want, 0, ndim, size), mbt_shapeStr(t, got, sizeof got),
               mbt_isContiguous(t) ? "" : " (not contiguous)");
  }
  return mbt_data(t);
}

float *mbL_checkmatrix(lua_State *L, int idx, const char *fname, const char *argname,
                       int64_t rows, int64_t cols) {
  int64_t size[2] = {rows, cols};
  return mbL_checkshape(L, idx, fname, argname, 2, size);
}

/* Lua lists ------------------------------------------------------------------------------- */

/* a new list of the n values push(i) leaves on the stack */
#define PUSHLIST(push) do { lua_createtable(L, n, 0); \
    for (int i = 0; i < n; i++) { push; lua_rawseti(L, -2, i + 1); } } while (0)

void mbL_pushnumbers(lua_State *L, const double *v, int n) { PUSHLIST(lua_pushnumber(L, v[i])); }
void mbL_pushfloats(lua_State *L, const float *v, int n) { PUSHLIST(lua_pushnumber(L, v[i])); }
void mbL_pushints(lua_State *L, const int *v, int n, int base) {
  PUSHLIST(lua_pushinteger(L, (lua_Integer)v[i] + base));
}

/* Modules and classes --------------------------------------------------------------------- */

/* __index of a class with fields: the method (a raw lookup in upvalue 1: this runs on every
   call), else upvalue 2, the class's reader of its fields, with the object at 1 and the key
   at 2 */
static int classindex(lua_State *L) {
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  return lua_tocfunction(L, lua_upvalueindex(2))(L);
}

/* __tostring of a class with show: the name of its metatable is upvalue 1 */
static int classtostring(lua_State *L) {
  const char *tname = lua_tostring(L, lua_upvalueindex(1));
  void *first;
  memcpy(&first, luaL_checkudata(L, 1, tname), sizeof first);  /* as mbL_checkopen */
  if (!first) {
    lua_pushfstring(L, "%s (closed)", tname);
    return 1;
  }
  lua_getglobal(L, "require");
  lua_pushliteral(L, "mbpo.show");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, tname);
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  return 1;
}

void mbL_newclass(lua_State *L, const mbLClass *c) {
  luaL_newmetatable(L, c->tname);
  luaL_setfuncs(L, c->metameth, 0);
  if (c->show) {
    lua_pushstring(L, c->tname);
    lua_pushcclosure(L, classtostring, 1);
    lua_setfield(L, -2, "__tostring");
  }
  lua_newtable(L);  /* (luaL_newlib's size hint needs an array, not a pointer) */
  luaL_setfuncs(L, c->meth, 0);
  if (c->state) mbL_addstate(L, c->state);
  if (c->getfield) {
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "methods");
    lua_pushcfunction(L, c->getfield);
    lua_pushcclosure(L, classindex, 2);
  }
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

int mbL_newlib(lua_State *L, const char *const *needs, const mbLClass *classes,
               const luaL_Reg *funcs) {
  for (int i = 0; needs && needs[i]; i++) {
    lua_getglobal(L, "require");
    lua_pushstring(L, needs[i]);
    lua_call(L, 1, 0);
  }
  for (const mbLClass *c = classes; c && c->tname; c++) mbL_newclass(L, c);
  luaL_checkversion(L);
  lua_newtable(L);
  luaL_setfuncs(L, funcs, 0);
  lua_pushliteral(L, MB_VERSION);
  lua_setfield(L, -2, "_VERSION");
  return 1;
}

/* Native memory --------------------------------------------------------------------------- */

#define MBL_EXTMEM_COLLECT ((size_t)128 << 20)

/* bytes reported since the last full collection (one Lua state per thread) */
static _Thread_local size_t extmem_since = 0;

void mbL_extmem(lua_State *L, size_t bytes) {
  extmem_since += bytes;
  if (extmem_since >= MBL_EXTMEM_COLLECT) {
    extmem_since = 0;
    lua_gc(L, LUA_GCCOLLECT);
  } else if (bytes >= ((size_t)64 << 10)) {
    size_t kb = bytes >> 10;
    lua_gc(L, LUA_GCSTEP, kb < ((size_t)1 << 30) ? (int)kb : 1 << 30);
  }
}
