/* mbpo.tensor: the Lua face of src/core/tensor*.c.
   Userdata of type "mbpo.Tensor" hold an mbTensor by value; views share storage.
   (Skeleton: shared helpers used by every binding; the operations are added below.) */
#include <stdio.h>
#include <string.h>

#include "lua/l_mbpo.h"

int mbL_coreerror(lua_State *L) { return luaL_error(L, "%s", mbu_lasterror()); }

mbTensor *mbL_testtensor(lua_State *L, int idx) { return luaL_testudata(L, idx, MBL_TENSOR); }

mbTensor *mbL_checktensor(lua_State *L, int idx) {
  mbTensor *t = luaL_checkudata(L, idx, MBL_TENSOR);
  if (!t->storage) luaL_argerror(L, idx, "tensor has been closed");
  return t;
}

/* a userdata in a safe (empty) state before it acquires memory, as liolib's newprefile */
static mbTensor *newud(lua_State *L) {
  mbTensor *t = lua_newuserdatauv(L, sizeof(mbTensor), 0);
  memset(t, 0, sizeof *t);
  luaL_setmetatable(L, MBL_TENSOR);
  return t;
}

mbTensor *mbL_newtensor(lua_State *L, int ndim, const int64_t *size) {
  mbTensor *t = newud(L);
  MBL_CHECK(L, mbt_init(t, ndim, size));
  return t;
}

mbTensor *mbL_pushview(lua_State *L, const mbTensor *src) {
  mbTensor *t = newud(L);
  mbt_view(t, src);
  return t;
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
    size_t k = 0;
    k += (size_t)snprintf(want + k, sizeof want - k, "[");
    for (int i = 0; i < ndim && k < sizeof want; i++) {
      if (size[i] >= 0)
        k += (size_t)snprintf(want + k, sizeof want - k, i ? " x %lld" : "%lld", (long long)size[i]);
      else
        k += (size_t)snprintf(want + k, sizeof want - k, i ? " x N" : "N");
    }
    if (k < sizeof want) snprintf(want + k, sizeof want - k, "]");
    mbt_shapeStr(t, got, sizeof got);
    luaL_error(L, "%s: %s must be a contiguous %s tensor, got %s%s", fname, argname, want, got,
               mbt_isContiguous(t) ? "" : " (not contiguous)");
  }
  return mbt_data(t);
}

float *mbL_checkmatrix(lua_State *L, int idx, const char *fname, const char *argname,
                       int64_t rows, int64_t cols) {
  int64_t size[2] = {rows, cols};
  return mbL_checkshape(L, idx, fname, argname, 2, size);
}

/* __gc and __close share one function */
static int t_gc(lua_State *L) {
  mbTensor *t = luaL_checkudata(L, 1, MBL_TENSOR);
  mbt_release(t);
  return 0;
}

/* sizes from arguments start..top: either integers or one table of integers */
static int checksizes(lua_State *L, int start, int64_t *size) {
  int n = 0;
  if (lua_istable(L, start)) {
    n = (int)luaL_len(L, start);
    if (n > MB_MAXDIM) luaL_argerror(L, start, "too many dimensions");
    for (int i = 0; i < n; i++) {
      lua_geti(L, start, i + 1);
      size[i] = lua_tointeger(L, -1);
      lua_pop(L, 1);
    }
  } else {
    int top = lua_gettop(L);
    if (top - start + 1 > MB_MAXDIM) luaL_argerror(L, start, "too many dimensions");
    for (int i = start; i <= top; i++) size[n++] = luaL_checkinteger(L, i);
  }
  return n;
}

static int t_zeros(lua_State *L) {
  int64_t size[MB_MAXDIM];
  int n = checksizes(L, 1, size);
  mbL_newtensor(L, n, size);
  return 1;
}

static int t_size(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    lua_Integer d = luaL_checkinteger(L, 2);
    if (d < 0) d += t->ndim + 1;
    luaL_argcheck(L, d >= 1 && d <= t->ndim, 2, "dimension out of range");
    lua_pushinteger(L, t->size[d - 1]);
    return 1;
  }
  lua_createtable(L, t->ndim, 0);
  for (int i = 0; i < t->ndim; i++) {
    lua_pushinteger(L, t->size[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int t_dim(lua_State *L) {
  lua_pushinteger(L, mbL_checktensor(L, 1)->ndim);
  return 1;
}

static int t_numel(lua_State *L) {
  lua_pushinteger(L, mbt_numel(mbL_checktensor(L, 1)));
  return 1;
}

static int t_tostring(lua_State *L) {
  mbTensor *t = luaL_checkudata(L, 1, MBL_TENSOR);
  char shape[160];
  if (!t->storage) lua_pushliteral(L, "mbpo.Tensor (closed)");
  else lua_pushfstring(L, "mbpo.Tensor %s", mbt_shapeStr(t, shape, sizeof shape));
  return 1;
}

static const luaL_Reg funcs[] = {{"zeros", t_zeros}, {NULL, NULL}};
static const luaL_Reg meth[] = {
  {"size", t_size}, {"dim", t_dim}, {"numel", t_numel}, {NULL, NULL}};
static const luaL_Reg metameth[] = {
  {"__index", NULL}, {"__gc", t_gc}, {"__close", t_gc}, {"__tostring", t_tostring},
  {NULL, NULL}};

int luaopen_mbpo_tensor(lua_State *L) {
  luaL_newmetatable(L, MBL_TENSOR);
  luaL_setfuncs(L, metameth, 0);
  luaL_newlibtable(L, meth);
  luaL_setfuncs(L, meth, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  lua_pushliteral(L, MB_VERSION);
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
