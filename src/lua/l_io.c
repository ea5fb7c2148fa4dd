/* mbpo.io: safetensors checkpoints and JSON for the Lua layer (src/core/io.c, cJSON).
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
   JSON mapping: tables with keys 1..n (n >= 1) are arrays, other tables objects with
   string keys written in sorted order, an empty table is {}; integral numbers within
   +-2^53 decode as Lua integers, others as floats; null decodes as nil. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "lua/l_mbpo.h"
#include "mbpo/io.h"

#define IOFILE "mbpo.IoFile"   /* internal: a loaded file owned by the Lua GC until unpacked */
#define JSONTREE "mbpo.IoJson"  /* internal: a parsed cJSON tree, freed by __gc */
#define MAXDEPTH 200           /* nesting limit of json_encode (also catches cycles) */

/* pointers into Lua strings kept alive by an anchored table, sorted with strcmp */
static int cmpstr(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* a string key of the table being traversed, checked for embedded NULs */
static const char *checkkey(lua_State *L, int idx, const char *fname, const char *what) {
  if (lua_type(L, idx) != LUA_TSTRING)
    luaL_error(L, "%s: %s must be strings, got %s", fname, what, luaL_typename(L, idx));
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  if (strlen(s) != len) luaL_error(L, "%s: %s '%s' contains a NUL byte", fname, what, s);
  return s;
}

/* io.save ---------------------------------------------------------------------------- */

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

  /* names, sorted: pointers into the keys of table 2 (alive while it is unchanged) */
  int n = 0;
  for (lua_pushnil(L); lua_next(L, 2); lua_pop(L, 1)) n++;
  const char **names = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof(char *), 0);  /* 4 */
  int k = 0;
  for (lua_pushnil(L); lua_next(L, 2); lua_pop(L, 1)) {
    names[k] = checkkey(L, -2, "io.save", "tensor names");
    if (!strcmp(names[k++], "__metadata__"))
      luaL_error(L, "io.save: the name '__metadata__' is reserved (pass metadata as argument 3)");
  }
  qsort(names, (size_t)n, sizeof(char *), cmpstr);

  /* items; I64 values live in userdata anchored in the table at 6 */
  mbIoItem *items = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof(mbIoItem), 0);  /* 5 */
  memset(items, 0, (size_t)(n ? n : 1) * sizeof(mbIoItem));
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
  int nmeta = 0;
  if (hasmeta) for (lua_pushnil(L); lua_next(L, 3); lua_pop(L, 1)) nmeta++;
  const char **keys = lua_newuserdatauv(L, (size_t)(nmeta ? nmeta : 1) * 2 * sizeof(char *), 0);
  const char **values = keys + nmeta;   /* 7: both arrays in one block */
  lua_createtable(L, nmeta, 0);         /* 8: string values */
  k = 0;
  if (hasmeta) {
    for (lua_pushnil(L); lua_next(L, 3); lua_pop(L, 1))
      keys[k++] = checkkey(L, -2, "io.save", "metadata keys");
    qsort(keys, (size_t)nmeta, sizeof(char *), cmpstr);
    for (int i = 0; i < nmeta; i++) {
      lua_pushstring(L, keys[i]);
      lua_rawget(L, 3);
      int t = lua_type(L, -1);
      if (t != LUA_TSTRING && t != LUA_TNUMBER)
        luaL_error(L, "io.save: metadata '%s' must be a string or a number, got %s", keys[i],
                   luaL_typename(L, -1));
      size_t len;
      values[i] = luaL_tolstring(L, -1, &len);  /* the new string stays alive in table 8 */
      if (strlen(values[i]) != len)
        luaL_error(L, "io.save: metadata '%s' contains a NUL byte", keys[i]);
      lua_rawseti(L, 8, i + 1);
      lua_pop(L, 1);
    }
  }
  if (mbu_ioSave(path, items, n, keys, values, nmeta) < 0) return mbL_pushfail(L);
  lua_pushboolean(L, 1);
  return 1;
}

/* io.load ---------------------------------------------------------------------------- */

static int jsontree_gc(lua_State *L) {
  cJSON **holder = luaL_checkudata(L, 1, JSONTREE);
  cJSON_Delete(*holder);
  *holder = NULL;
  return 0;
}

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

/* JSON ------------------------------------------------------------------------------- */

/* appends " (in 'key')" or " (at [i])" to err, inner levels first */
static void addwhere(char *err, size_t errn, const char *fmt, ...) {
  char where[128];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(where, sizeof where, fmt, ap);
  va_end(ap);
  size_t k = strlen(err);
  if (k + strlen(where) + 4 < errn) snprintf(err + k, errn - k, " (%s)", where);
}

/* builds the cJSON value of the Lua value at idx; NULL with a message in err on failure
   (no Lua error is raised while a cJSON tree is half built, so nothing leaks) */
static cJSON *tojson(lua_State *L, int idx, int depth, char *err, size_t errn) {
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
  case LUA_TBOOLEAN: return cJSON_CreateBool(lua_toboolean(L, idx));
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (strlen(s) != len) { snprintf(err, errn, "string contains a NUL byte"); return NULL; }
    return cJSON_CreateString(s);
  }
  case LUA_TNUMBER: {
    if (lua_isinteger(L, idx)) {
      char s[32];
      snprintf(s, sizeof s, "%lld", (long long)lua_tointeger(L, idx));
      return cJSON_CreateRaw(s);
    }
    double d = lua_tonumber(L, idx);
    if (!isfinite(d)) { snprintf(err, errn, "%g cannot be written as JSON", d); return NULL; }
    return cJSON_CreateNumber(d);
  }
  case LUA_TTABLE: break;
  default:
    snprintf(err, errn, "cannot encode a %s", luaL_typename(L, idx));
    return NULL;
  }
  if (depth >= MAXDEPTH) {
    snprintf(err, errn, "tables nested more than %d deep (a cycle?)", MAXDEPTH);
    return NULL;
  }
  if (!lua_checkstack(L, 8)) { snprintf(err, errn, "Lua stack overflow"); return NULL; }
  /* array when the keys are exactly 1..n with n >= 1 */
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;
  int allstrings = 1;
  for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
    count++;
    if (lua_type(L, -2) != LUA_TSTRING) allstrings = 0;
  }
  if (n > 0 && count == n) {
    cJSON *a = cJSON_CreateArray();
    for (lua_Integer i = 1; a && i <= n; i++) {
      lua_rawgeti(L, idx, i);
      cJSON *v = tojson(L, -1, depth + 1, err, errn);
      lua_pop(L, 1);
      if (!v || !cJSON_AddItemToArray(a, v)) {
        if (v) snprintf(err, errn, "out of memory");
        else addwhere(err, errn, "at [%lld]", (long long)i);
        cJSON_Delete(v);
        cJSON_Delete(a);
        return NULL;
      }
    }
    if (!a) snprintf(err, errn, "out of memory");
    return a;
  }
  if (!allstrings) {
    snprintf(err, errn, "table keys must be all strings (an object) or 1..n (an array)");
    return NULL;
  }
  /* object with sorted keys: pointers into the table's own keys */
  const char **keys = malloc((size_t)(count ? count : 1) * sizeof(char *));
  cJSON *o = keys ? cJSON_CreateObject() : NULL;
  if (!o) { free(keys); snprintf(err, errn, "out of memory"); return NULL; }
  lua_Integer k = 0;
  for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
    size_t len;
    keys[k] = lua_tolstring(L, -2, &len);
    if (strlen(keys[k]) != len) {
      snprintf(err, errn, "key contains a NUL byte");
      lua_pop(L, 2);
      free(keys);
      cJSON_Delete(o);
      return NULL;
    }
    k++;
  }
  qsort(keys, (size_t)count, sizeof(char *), cmpstr);
  for (lua_Integer i = 0; i < count; i++) {
    lua_pushstring(L, keys[i]);
    lua_rawget(L, idx);
    cJSON *v = tojson(L, -1, depth + 1, err, errn);
    lua_pop(L, 1);
    if (!v || !cJSON_AddItemToObject(o, keys[i], v)) {
      if (v) snprintf(err, errn, "out of memory");
      else addwhere(err, errn, "in '%.100s'", keys[i]);
      cJSON_Delete(v);
      cJSON_Delete(o);
      free(keys);
      return NULL;
    }
  }
  free(keys);
  return o;
}

/* io.json_encode(value) -> string */
static int io_jsonencode(lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  char err[512] = "";
  cJSON *j = tojson(L, 1, 0, err, sizeof err);
  if (!j) return luaL_error(L, "io.json_encode: %s", err[0] ? err : "out of memory");
  char *s = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  if (!s) return luaL_error(L, "io.json_encode: out of memory");
  lua_pushstring(L, s);
  cJSON_free(s);
  return 1;
}

/* pushes the Lua value of a parsed cJSON node */
static void pushjson(lua_State *L, const cJSON *j) {
  luaL_checkstack(L, 4, "io.json_decode: nested too deep");
  if (cJSON_IsTrue(j)) lua_pushboolean(L, 1);
  else if (cJSON_IsFalse(j)) lua_pushboolean(L, 0);
  else if (cJSON_IsString(j)) lua_pushstring(L, j->valuestring);
  else if (cJSON_IsNumber(j)) {
    double d = j->valuedouble;
    if (d == floor(d) && fabs(d) <= 9007199254740992.0) lua_pushinteger(L, (lua_Integer)d);
    else lua_pushnumber(L, d);
  } else if (cJSON_IsArray(j)) {
    lua_createtable(L, cJSON_GetArraySize(j), 0);
    lua_Integer i = 1;
    for (const cJSON *c = j->child; c; c = c->next, i++) {
      pushjson(L, c);
      lua_rawseti(L, -2, i);
    }
  } else if (cJSON_IsObject(j)) {
    lua_createtable(L, 0, cJSON_GetArraySize(j));
    for (const cJSON *c = j->child; c; c = c->next) {
      pushjson(L, c);
      lua_setfield(L, -2, c->string ? c->string : "");
    }
  } else lua_pushnil(L);  /* null */
}

/* io.json_decode(text) -> value | nil, message */
static int io_jsondecode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  cJSON **holder = lua_newuserdatauv(L, sizeof(cJSON *), 0);
  *holder = NULL;
  luaL_setmetatable(L, JSONTREE);
  const char *end = NULL;
  cJSON *j = cJSON_ParseWithLengthOpts(s, len, &end, 0);
  size_t at = end && end >= s && end <= s + len ? (size_t)(end - s) : 0;
  if (j) {  /* only whitespace may follow the value */
    while (at < len && (s[at] == ' ' || s[at] == '\t' || s[at] == '\n' || s[at] == '\r')) at++;
    if (at < len) { cJSON_Delete(j); j = NULL; }
  }
  if (!j) {
    luaL_pushfail(L);
    lua_pushfstring(L, "io.json_decode: malformed JSON near byte %d of %d", (int)at, (int)len);
    return 2;
  }
  *holder = j;    /* pushjson may raise (memory, nesting): the holder's __gc frees j */
  pushjson(L, j);
  cJSON_Delete(j);
  *holder = NULL;
  return 1;
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
  {"checksum", io_checksum}, {"json_encode", io_jsonencode}, {"json_decode", io_jsondecode},
  {"array", mbL_arraynew}, {NULL, NULL}};

int luaopen_mbpo_io(lua_State *L) {
  /* tensors we push need their metatable even when the script never required mbpo.tensor */
  luaL_requiref(L, "mbpo.tensor", luaopen_mbpo_tensor, 0);
  lua_pop(L, 1);
  luaL_newmetatable(L, IOFILE);
  lua_pushcfunction(L, iofile_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, JSONTREE);
  lua_pushcfunction(L, jsontree_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  return mbL_newmodule(L, NULL, NULL, NULL, funcs);
}
