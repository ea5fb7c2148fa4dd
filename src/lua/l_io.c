/* mbpo.io: safetensors checkpoints for the Lua layer (src/core/io.c), and JSON.
     local io = require "mbpo.io"
     io.save(path, tensors [, metadata]) -> true | nil, message
         tensors: {name = mbpo.Tensor (F32, any strides) | mbpo.Array (F64, U64, I64 of its
                        shape) | integer (I64, shape []) | {integers...} (I64, shape [n])}
         metadata: {string = string|number}; names are written sorted, so files are
         reproducible. Writes PATH.tmp-<pid>, fsyncs, renames into place.
     io.load(path) -> tensors, metadata | nil, message
         F32 -> mbpo.Tensor of the stored shape; I64 of shape [] -> an integer; any other
         (F64, U64, I64) -> mbpo.Array of the stored shape; metadata values are strings.
     io.array(dtype, values) -> mbpo.Array ("F64", "U64" or "I64") of [#values]
     io.write_text(path, s) -> true | nil, message   (atomic, fsynced, like save)
     io.checksum(path) -> 16 hex digits | nil, message   (of the file's bytes; see io.h)
     io.json_encode(value) -> string      (raises on values JSON cannot hold)
     io.json_decode(string) -> value | nil, message
   The JSON pair is Lua (lua/mbpo/json.lua, which gives the mapping). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/l_mbpo.h"
#include "mbpo/io.h"

#define IOFILE "mbpo.IoFile"   /* internal: a loaded file owned by the Lua GC until unpacked */

/* pointers into Lua strings kept alive by an anchored table, sorted with strcmp */
static int cmpstr(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* a string key of the table being traversed, checked for embedded NULs */
static const char *checkkey(lua_State *L, int idx, const char *what) {
  if (lua_type(L, idx) != LUA_TSTRING)
    luaL_error(L, "io.save: %s must be strings, got %s", what, luaL_typename(L, idx));
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  if (strlen(s) != len) luaL_error(L, "io.save: %s '%s' contains a NUL byte", what, s);
  return s;
}

/* io.save ---------------------------------------------------------------------------- */

/* the string keys of the table at t (none when t is 0), sorted, in a new userdata of room for
   2n pointers (into the keys: alive while the table is unchanged); *n gets their count */
static const char **sortedkeys(lua_State *L, int t, const char *what, int *n) {
  *n = 0;
  if (t) for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1)) (*n)++;
  const char **keys = lua_newuserdatauv(L, (size_t)(*n ? *n : 1) * 2 * sizeof(char *), 0);
  int k = 0;
  if (t) for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1)) keys[k++] = checkkey(L, -2, what);
  qsort(keys, (size_t)*n, sizeof(char *), cmpstr);
  return keys;
}

/* fills it from the value at the top of the stack (F32 tensor, mbpo.Array, integer or list of
   integers); an integer or a list becomes a new I64 mbpo.Array left on the stack (it keeps
   the values alive; nil is pushed otherwise) */
static void checkitem(lua_State *L, mbIoItem *it) {
  mbTensor *t = mbL_testtensor(L, -1);
  if (t) {
    if (!t->storage) luaL_error(L, "io.save: tensor '%s' has been closed", it->name);
    it->dtype = MB_F32;
    it->tensor = t;
    lua_pushnil(L);  /* keep the stack shape the same as for integers */
    return;
  }
  mbLArray *a = mbL_testarray(L, -1);
  if (a) {
    lua_pushnil(L);
  } else if (lua_type(L, -1) == LUA_TNUMBER) {  /* an integer: a new I64 array of shape [] */
    int isint;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint) luaL_error(L, "io.save: '%s' must be an integer, got %f", it->name,
                           (double)lua_tonumber(L, -1));
    a = mbL_newarray(L, MB_I64, 0, NULL);
    a->data[0] = (uint64_t)v;
  } else {  /* a list of integers: a new I64 array of shape [n] */
    if (!lua_istable(L, -1))
      luaL_error(L, "io.save: '%s' must be a tensor, an integer or an array of integers, got %s",
                 it->name, luaL_typename(L, -1));
    int64_t n = (int64_t)lua_rawlen(L, -1);
    a = mbL_newarray(L, MB_I64, 1, &n);
    for (lua_Integer i = 1; i <= n; i++) {
      int isint;
      lua_rawgeti(L, -2, i);
      lua_Integer v = lua_tointegerx(L, -1, &isint);
      if (!isint) luaL_error(L, "io.save: '%s'[%d] must be an integer, got %s", it->name, (int)i,
                             luaL_typename(L, -1));
      lua_pop(L, 1);
      a->data[i - 1] = (uint64_t)v;
    }
  }
  it->dtype = a->dtype;
  it->data = a->data;
  it->ndim = a->ndim;
  memcpy(it->shape, a->shape, sizeof(int64_t) * (size_t)a->ndim);
}

/* io.save(path, tensors [, metadata]) -> true | nil, message */
static int io_save(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int hasmeta = !lua_isnoneornil(L, 3);
  if (hasmeta) luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);

  int n, nmeta;
  const char **names = sortedkeys(L, 2, "tensor names", &n);  /* 4 */
  for (int i = 0; i < n; i++)
    if (!strcmp(names[i], "__metadata__"))
      luaL_error(L, "io.save: the name '__metadata__' is reserved (pass metadata as argument 3)");

  /* items; I64 values live in userdata anchored in the table at 6 */
  size_t bytes = (n > 0 ? (size_t)n : 1) * sizeof(mbIoItem);
  mbIoItem *items = memset(lua_newuserdatauv(L, bytes, 0), 0, bytes);  /* 5 */
  lua_createtable(L, n, 0);  /* 6: anchors */
  for (int i = 0; i < n; i++) {
    items[i].name = names[i];
    lua_pushstring(L, names[i]);
    lua_rawget(L, 2);
    checkitem(L, &items[i]);
    lua_rawseti(L, 6, i + 1);   /* anchor the value userdata (or nil) */
    lua_pop(L, 1);
  }

  /* metadata: keys sorted, values converted to strings anchored in table 8 */
  const char **keys = sortedkeys(L, hasmeta ? 3 : 0, "metadata keys", &nmeta);  /* 7 */
  const char **values = keys + nmeta;
  lua_createtable(L, nmeta, 0);  /* 8 */
  for (int i = 0; i < nmeta; i++) {
    lua_pushstring(L, keys[i]);
    if (lua_rawget(L, 3) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "io.save: metadata '%s' must be a string or a number, got %s", keys[i],
                 luaL_typename(L, -1));
    size_t len;
    values[i] = luaL_tolstring(L, -1, &len);
    if (strlen(values[i]) != len)
      luaL_error(L, "io.save: metadata '%s' contains a NUL byte", keys[i]);
    lua_rawseti(L, 8, i + 1);
    lua_pop(L, 1);
  }
  if (mbu_ioSave(path, items, n, keys, values, nmeta) < 0) return mbL_pushfail(L);
  lua_pushboolean(L, 1);
  return 1;
}

/* io.load ---------------------------------------------------------------------------- */

static int iofile_gc(lua_State *L) {
  mbIoFile *f = luaL_checkudata(L, 1, IOFILE);
  mbu_ioFree(f);
  return 0;
}

/* io.load(path) -> tensors, metadata | nil, message */
static int io_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  mbIoFile *f = lua_newuserdatauv(L, sizeof(mbIoFile), 0);  /* safe empty state first */
  memset(f, 0, sizeof *f);
  luaL_setmetatable(L, IOFILE);
  if (mbu_ioLoad(f, path) < 0) return mbL_pushfail(L);
  lua_createtable(L, 0, f->n);
  for (int i = 0; i < f->n; i++) {
    mbIoEntry *e = &f->entries[i];
    if (e->dtype == MB_F32) {
      mbL_pushview(L, &e->tensor);  /* the file's reference is dropped when f is freed */
    } else if (e->dtype == MB_I64 && e->ndim == 0) {
      lua_pushinteger(L, (lua_Integer)e->ints[0]);
    } else {
      mbLArray *a = mbL_newarray(L, e->dtype, e->ndim, e->shape);
      if (a->n) memcpy(a->data, e->data, sizeof(uint64_t) * (size_t)a->n);
    }
    lua_setfield(L, -2, e->name);
  }
  lua_createtable(L, 0, f->nmeta);
  for (int i = 0; i < f->nmeta; i++) {
    lua_pushstring(L, f->values[i]);
    lua_setfield(L, -2, f->keys[i]);
  }
  mbu_ioFree(f);
  return 2;
}

/* io.write_text(path, s) -> true | nil, message: atomic and fsynced */
static int io_writetext(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  if (mbu_ioWriteText(path, s, len) < 0) return mbL_pushfail(L);
  lua_pushboolean(L, 1);
  return 1;
}

/* io.checksum(path) -> 16 hex digits | nil, message */
static int io_checksum(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  uint64_t h;
  if (mbu_ioChecksum(&h, path) < 0) return mbL_pushfail(L);
  char hex[17];
  snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
  lua_pushstring(L, hex);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"save", io_save}, {"load", io_load}, {"write_text", io_writetext},
  {"checksum", io_checksum}, {"array", mbL_arraynew}, {NULL, NULL}};
static const luaL_Reg filemeth[] = {{NULL, NULL}};
static const luaL_Reg filemetameth[] = {{"__gc", iofile_gc}, {NULL, NULL}};

int luaopen_mbpo_io(lua_State *L) {
  /* tensors we push need their metatable even when the script never required mbpo.tensor */
  luaL_requiref(L, "mbpo.tensor", luaopen_mbpo_tensor, 0);
  lua_pop(L, 1);
  mbL_newmodule(L, IOFILE, filemeth, filemetameth, funcs);
  lua_getglobal(L, "require");  /* json_encode and json_decode from lua/mbpo/json.lua */
  lua_pushliteral(L, "mbpo.json");
  lua_call(L, 1, 1);
  for (int i = 0; i < 2; i++) {
    const char *name = i ? "json_decode" : "json_encode";
    lua_getfield(L, -1, name);
    lua_setfield(L, -3, name);
  }
  lua_pop(L, 1);
  return 1;
}
