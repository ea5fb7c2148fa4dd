/* The one generic state / load_state pair of the bindings (see l_mbpo.h), and mbpo.Array,
   the Lua value of F64, U64 and I64 arrays. Every object's state is declared once, in the
   core, as named typed blocks (include/mbpo/state.h); this file is the only code that turns
   blocks into Lua values and back. */
#include <stdio.h>
#include <string.h>

#include "lua/l_mbpo.h"

/* mbpo.Array ------------------------------------------------------------------------------- */

mbLArray *mbL_testarray(lua_State *L, int idx) { return luaL_testudata(L, idx, MBL_ARRAY); }

static mbLArray *checkarray(lua_State *L, int idx) { return luaL_checkudata(L, idx, MBL_ARRAY); }

/* a[i] as a Lua number (F64) or integer (U64 words keep their bits) */
static void pushelem(lua_State *L, const mbLArray *a, int64_t i) {
  if (a->dtype == MB_F64) {
    double d;
    memcpy(&d, &a->data[i], sizeof d);
    lua_pushnumber(L, d);
  } else
    lua_pushinteger(L, (lua_Integer)a->data[i]);
}

/* a[i] (1-based; nil outside 1..n); any other key that is no method is nil */
static int arr_field(lua_State *L) {
  mbLArray *a = checkarray(L, 1);
  lua_Integer i = lua_type(L, 2) == LUA_TNUMBER ? luaL_checkinteger(L, 2) : 0;
  if (i < 1 || i > a->n) lua_pushnil(L);
  else pushelem(L, a, i - 1);
  return 1;
}

static int arr_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)checkarray(L, 1)->n);
  return 1;
}

static int arr_dtype(lua_State *L) {
  lua_pushstring(L, mbu_dtypeName(checkarray(L, 1)->dtype));
  return 1;
}

static int arr_totable(lua_State *L) {
  mbLArray *a = checkarray(L, 1);
  lua_createtable(L, a->n < (1 << 24) ? (int)a->n : 0, 0);
  for (int64_t i = 0; i < a->n; i++) {
    pushelem(L, a, i);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* equal dtype, shape and bits */
static int arr_eq(lua_State *L) {
  mbLArray *a = mbL_testarray(L, 1), *b = mbL_testarray(L, 2);
  int same = a && b && a->dtype == b->dtype && a->ndim == b->ndim && a->n == b->n &&
             !memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) &&
             !memcmp(a->data, b->data, sizeof(uint64_t) * (size_t)a->n);
  lua_pushboolean(L, same);
  return 1;
}

static int arr_tostring(lua_State *L) {
  mbLArray *a = checkarray(L, 1);
  char buf[160];
  lua_pushfstring(L, "mbpo.Array %s", mbu_shapeText(buf, sizeof buf, a->dtype, a->ndim, a->shape));
  return 1;
}

mbLArray *mbL_newarray(lua_State *L, int dtype, int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0 || (shape[d] > 0 && n > ((int64_t)1 << 40) / shape[d]))
      luaL_error(L, "mbpo.Array: bad shape");
    n *= shape[d];
  }
  static const luaL_Reg meth[] = {{"dtype", arr_dtype}, {"totable", arr_totable}, {NULL, NULL}};
  static const luaL_Reg metameth[] = {{"__len", arr_len}, {"__eq", arr_eq},
    {"__tostring", arr_tostring}, {NULL, NULL}};
  static const mbLClass ARRAY = {MBL_ARRAY, meth, metameth, arr_field, NULL, 0};
  /* the class is made on first use: any module may push an array */
  if (luaL_getmetatable(L, MBL_ARRAY) == LUA_TNIL) mbL_newclass(L, &ARRAY);
  lua_pop(L, 1);
  mbLArray *a = mbL_newobject(L, MBL_ARRAY, sizeof(mbLArray) + sizeof(uint64_t) * (size_t)n, 0);
  a->dtype = dtype;
  a->ndim = ndim;
  a->n = n;
  for (int d = 0; d < ndim; d++) a->shape[d] = shape[d];
  return a;
}

/* io.array(dtype, values): a 1-d array of a table of numbers (U64 and I64: integers); a
   number instead of the table gives an array of shape [] */
int mbL_arraynew(lua_State *L) {
  static const char *const names[] = {"F64", "U64", "I64", NULL};
  static const int dtypes[] = {MB_F64, MB_U64, MB_I64};
  int dtype = dtypes[luaL_checkoption(L, 1, NULL, names)];
  int scalar = lua_type(L, 2) == LUA_TNUMBER;
  if (!scalar) luaL_checktype(L, 2, LUA_TTABLE);
  int64_t n = scalar ? 1 : (int64_t)luaL_len(L, 2);
  mbLArray *a = mbL_newarray(L, dtype, !scalar, &n);
  for (int64_t i = 0; i < n; i++) {
    if (scalar) lua_pushvalue(L, 2);
    else lua_geti(L, 2, (lua_Integer)i + 1);
    int isint;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    double d = luaL_checknumber(L, -1);
    if (dtype != MB_F64 && !isint)
      return luaL_error(L, "io.array: value %d must be an integer", (int)i + 1);
    if (dtype == MB_F64) memcpy(&a->data[i], &d, sizeof d);
    else a->data[i] = (uint64_t)v;
    lua_pop(L, 1);
  }
  return 1;
}

/* state() ----------------------------------------------------------------------------------- */

/* pushes the Lua value of block b */
static void pushblock(lua_State *L, const mbStateBlock *b) {
  const void *p = b->data;
  if (b->ndim == 0) {
    switch (b->dtype) {
    case MB_F32: lua_pushnumber(L, *(const float *)p); return;
    case MB_F64: lua_pushnumber(L, *(const double *)p); return;
    case MB_I32: lua_pushinteger(L, *(const int *)p); return;
    case MB_BOOL: lua_pushboolean(L, *(const int *)p); return;
    case MB_STR: lua_pushstring(L, b->text); return;
    default: lua_pushinteger(L, (lua_Integer)*(const int64_t *)p); return;
    }
  }
  if (b->dtype == MB_F32 && b->slab) {  /* a view of the slab's first rows: no copy */
    mbTensor *t = mbL_pushview(L, b->slab);
    t->size[0] = b->shape[0];
  } else if (b->dtype == MB_F32) {
    mbL_newcopy(L, p, b->ndim, b->shape);
  } else {  /* F64, U64, I64; MB_I32 as I64 */
    int dtype = b->dtype == MB_I32 ? MB_I64 : b->dtype;
    mbu_blockWords(mbL_newarray(L, dtype, b->ndim, b->shape)->data, b);
  }
}

/* obj:state() -> the state table (obj at 1) */
static int state(lua_State *L, const mbLStateType *ty) {
  void *obj = ty->check(L, 1);
  mbStateBlock b[MB_STATE_MAXBLOCKS];
  int n = ty->blocks(b, obj);
  if (ty->bare) {
    pushblock(L, &b[0]);
    return 1;
  }
  lua_createtable(L, 0, n + 1);
  if (ty->config) {
    lua_pushcfunction(L, ty->config);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    lua_setfield(L, -2, "config");
  }
  for (int i = 0; i < n; i++) {
    pushblock(L, &b[i]);
    lua_setfield(L, -2, b[i].name);
  }
  return 1;
}

/* load_state() ------------------------------------------------------------------------------ */

/* what the value at idx is, for messages: "F32 [2 x 300]", "a string", ... */
static const char *describe(lua_State *L, int idx, char *buf, size_t n) {
  mbTensor *t = mbL_testtensor(L, idx);
  mbLArray *a = mbL_testarray(L, idx);
  if (t && t->storage) {
    mbu_shapeText(buf, n - 12, MB_F32, t->ndim, t->size);
    return mbt_isContiguous(t) ? buf : strcat(buf, " (strided)");
  }
  if (a) return mbu_shapeText(buf, n, a->dtype, a->ndim, a->shape);
  if (lua_isinteger(L, idx)) snprintf(buf, n, "the integer %lld", (long long)lua_tointeger(L, idx));
  else if (lua_type(L, idx) == LUA_TNUMBER) snprintf(buf, n, "the number %g", lua_tonumber(L, idx));
  else if (lua_type(L, idx) == LUA_TSTRING) snprintf(buf, n, "'%.150s'", lua_tostring(L, idx));
  else snprintf(buf, n, "a %s", luaL_typename(L, idx));
  return buf;
}

/* an older build's hex text where an F64 or U64 array belongs */
static int hextext(lua_State *L, int idx, const mbStateBlock *b) {
  if ((b->dtype != MB_F64 && b->dtype != MB_U64) || lua_type(L, idx) != LUA_TSTRING) return 0;
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  return len % 16 == 0 && strspn(s, "0123456789abcdef") == len;
}

/* takes the value at the top into staged s (mbu_blockTake); 0 when it does not fit */
static int stage(lua_State *L, mbStateBlock *s, unsigned char **scratch) {
  mbStateBlock v = {0};
  int64_t i64;
  double f64;
  int b;
  mbTensor *t = mbL_testtensor(L, -1);
  mbLArray *a = mbL_testarray(L, -1);
  if (t && t->storage && mbt_isContiguous(t)) {  /* arrays of 1 or 2 dimensions fit blocks */
    if (t->ndim < 1 || t->ndim > 2) return 0;
    v = (mbStateBlock){.dtype = MB_F32, .ndim = t->ndim, .data = mbt_data(t)};
    memcpy(v.shape, t->size, sizeof(int64_t) * (size_t)t->ndim);
  } else if (a) {
    if (a->ndim < 1 || a->ndim > 2) return 0;
    v = (mbStateBlock){.dtype = a->dtype, .ndim = a->ndim, .data = a->data};
    memcpy(v.shape, a->shape, sizeof(int64_t) * (size_t)a->ndim);
  } else if (lua_isinteger(L, -1)) {
    i64 = (int64_t)lua_tointeger(L, -1);
    v = (mbStateBlock){.dtype = MB_I64, .data = &i64};
  } else if (lua_type(L, -1) == LUA_TNUMBER) {
    f64 = lua_tonumber(L, -1);
    v = (mbStateBlock){.dtype = MB_F64, .data = &f64};
  } else if (lua_isboolean(L, -1)) {
    b = lua_toboolean(L, -1);
    v = (mbStateBlock){.dtype = MB_BOOL, .data = &b};
  } else if (lua_type(L, -1) == LUA_TSTRING) {
    v = (mbStateBlock){.dtype = MB_STR, .data = (void *)(uintptr_t)lua_tostring(L, -1)};
  } else {
    v.dtype = -1;
  }
  return mbu_blockTake(s, &v, scratch);
}

int mbL_loadstate(lua_State *L, const mbLStateType *ty) {
  void *obj = ty->check(L, 1);
  if (ty->bare) {  /* the value itself: wrap it as {[name] = value} */
    lua_settop(L, 2);
    lua_createtable(L, 0, 1);
    lua_insert(L, 2);
    mbStateBlock b[1];
    ty->blocks(b, obj);
    lua_setfield(L, 2, b[0].name);
  }
  luaL_checktype(L, 2, LUA_TTABLE);
  const char *F = ty->fname;
  mbStateBlock b[MB_STATE_MAXBLOCKS], s[MB_STATE_MAXBLOCKS];
  int n = ty->blocks(b, obj);
  memcpy(s, b, sizeof(mbStateBlock) * (size_t)n);
  unsigned char *scratch = lua_newuserdatauv(L, mbu_blockScratch(b, n), 0);
  int top = lua_gettop(L);
  char want[200], got[200];
  /* a state written before F64 and U64 existed: say so, before any other difference */
  for (int i = 0; i < n; i++) {
    lua_getfield(L, 2, b[i].name);
    if (hextext(L, -1, &b[i]))
      return luaL_error(L, "%s:load_state: %s is hex text: the state was written by an older "
                        "mbpo, which stored %s as hex strings (this one stores %s numbers)",
                        F, b[i].name, b[i].dtype == MB_F64 ? "doubles" : "generator words",
                        mbu_dtypeName(b[i].dtype));
    lua_settop(L, top);
  }
  /* every block checked and staged before anything is written */
  for (int i = 0; i < n; i++) {
    lua_getfield(L, 2, b[i].name);  /* stays referenced by the state table after the pop */
    if (lua_isnil(L, -1)) {
      if (b[i].flags & MB_ST_OPTIONAL) { s[i].data = b[i].data; lua_settop(L, top); continue; }
      return luaL_error(L, "%s:load_state: the state has no %s (%s in this %s)", F, b[i].name,
                        mbu_blockWant(want, sizeof want, &b[i]), ty->what);
    }
    if (!stage(L, &s[i], &scratch))
      return luaL_error(L, "%s:load_state: %s is %s in the state, %s in this %s", F, b[i].name,
                        describe(L, -1, got, sizeof got), mbu_blockWant(want, sizeof want, &b[i]),
                        ty->what);
    const char *bad = mbu_blockCheck(got, sizeof got, &s[i]);
    if (bad) return luaL_error(L, "%s:load_state: %s%s%s", F, b[i].name, *bad == '[' ? "" : " ",
                               bad);
    lua_settop(L, top);
  }
  if (!ty->set) mbu_blockCopy(b, s, n);
  else if (ty->set(obj, s) < 0) return luaL_error(L, "%s:load_state: %s", F, mbu_lasterror());
  lua_settop(L, 1);
  return 1;
}

/* Registration ------------------------------------------------------------------------------ */

static int statefn(lua_State *L) { return state(L, lua_touserdata(L, lua_upvalueindex(1))); }
static int loadfn(lua_State *L) { return mbL_loadstate(L, lua_touserdata(L, lua_upvalueindex(1))); }

void mbL_addstate(lua_State *L, mbLStateType *ty) {
  lua_pushlightuserdata(L, ty);
  lua_pushcclosure(L, statefn, 1);
  lua_setfield(L, -2, "state");
  lua_pushlightuserdata(L, ty);
  lua_pushcclosure(L, loadfn, 1);
  lua_setfield(L, -2, "load_state");
}
