/* mbpo.io.native: the C half of mbpo.io (lua/mbpo/io.lua, the module scripts require,
   documents the API), over src/core/io.c: the safetensors writer and reader, atomic text
   writes, checksums and mbpo.Array. io.lua checks and sorts the names and metadata of
   io.save and turns its integers into I64 arrays; this file writes what it is given.
     N.save(path, names, items, keys, values) -> true | nil, message
         names: sorted tensor names; items[i]: the mbpo.Tensor (F32, any strides) or
         mbpo.Array of names[i]; keys, values: sorted metadata keys and their strings
     N.load, N.array, N.write_text, N.checksum: io.load, io.array, ... as io.lua gives them */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/l_mbpo.h"
#include "mbpo/io.h"

#define IOFILE "mbpo.IoFile"   /* internal: a loaded file owned by the Lua GC until unpacked */

/* io.save ---------------------------------------------------------------------------- */

/* N.save(path, names, items, keys, values) -> true | nil, message (the strings stay alive in
   the lists, the items' data in their userdata) */
static int io_save(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  for (int i = 2; i <= 5; i++) luaL_checktype(L, i, LUA_TTABLE);
  int n = (int)lua_rawlen(L, 2), nmeta = (int)lua_rawlen(L, 4);
  size_t bytes = (n > 0 ? (size_t)n : 1) * sizeof(mbIoItem);
  mbIoItem *items = memset(lua_newuserdatauv(L, bytes, 0), 0, bytes);
  const char **keys = lua_newuserdatauv(L, (size_t)(nmeta > 0 ? nmeta : 1) * 2 * sizeof(char *), 0);
  for (int i = 0; i < n; i++) {
    mbIoItem *it = &items[i];
    lua_rawgeti(L, 2, i + 1);
    it->name = lua_tostring(L, -1);
    lua_rawgeti(L, 3, i + 1);
    mbTensor *t = mbL_testtensor(L, -1);
    mbLArray *a = mbL_testarray(L, -1);
    if (!it->name || (!t && !a)) return luaL_error(L, "io.save: item %d is not a tensor", i + 1);
    if (t && !t->storage) {  /* placed at the caller of io.save (level 1 is io.lua) */
      luaL_where(L, 2);
      lua_pushfstring(L, "io.save: tensor '%s' has been closed", it->name);
      lua_concat(L, 2);
      return lua_error(L);
    }
    if (t) *it = (mbIoItem){.name = it->name, .dtype = MB_F32, .tensor = t};
    else *it = (mbIoItem){.name = it->name, .dtype = a->dtype, .data = a->data, .ndim = a->ndim};
    if (a) memcpy(it->shape, a->shape, sizeof(int64_t) * (size_t)a->ndim);
    lua_pop(L, 2);
  }
  for (int i = 0; i < 2 * nmeta; i++) {
    lua_rawgeti(L, i < nmeta ? 4 : 5, i % nmeta + 1);
    keys[i] = lua_tostring(L, -1);
    lua_pop(L, 1);
    if (!keys[i]) return luaL_error(L, "io.save: metadata %d is not a string", i % nmeta + 1);
  }
  if (mbu_ioSave(path, items, n, keys, keys + nmeta, nmeta) < 0) return mbL_pushfail(L);
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
  mbIoFile *f = mbL_newobject(L, IOFILE, sizeof(mbIoFile), 0);
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
  static const mbLClass classes[] = {{IOFILE, filemeth, filemetameth, NULL, NULL, 0}, {NULL}};
  return mbL_newlib(L, (const char *[]){"mbpo.tensor", NULL}, classes, funcs);
}
