/* The one option reader of the bindings: an options table read into a core struct through
   the struct's field table (include/mbpo/fields.h), and the table exported to Lua.
   Every mistake is one line in one style, naming the function, the key and the value:
     SAC.new: unknown option 'gama' (nearest: gamma, tau, lr)
     SAC.new: gamma must be a number in [0, 1], got 1.5
     SAC.new: hidden[2] must be an integer in [1, 65536], got -1
     SAC.new: obs is required (an integer in [1, 1048576]) */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lua/l_mbpo.h"

static const char *const TYPES[] = {"integer", "integer", "integer", "number", "number",
  "boolean", "string", "list of integers", "list of numbers"};

/* the value at idx as the message shows it: 1.5, 'abc', true, a table */
static const char *shown(lua_State *L, int idx) {
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER: case LUA_TBOOLEAN: return luaL_tolstring(L, idx, NULL);
    case LUA_TSTRING: return lua_pushfstring(L, "'%s'", lua_tostring(L, idx));
    default: return lua_pushfstring(L, "a %s", luaL_typename(L, idx));
  }
}

/* raises "F: key must be WHAT, got VALUE" (key with [i] for list elements, i > 0) */
static int bad(lua_State *L, const char *F, const mbField *f, int i, int idx) {
  char what[160], key[80];
  idx = lua_absindex(L, idx);
  if (i > 0) snprintf(key, sizeof key, "%s[%d]", f->name, i);
  else snprintf(key, sizeof key, "%s", f->name);
  return luaL_error(L, "%s: %s must be %s, got %s", F, key, mbu_fieldRange(f, what, sizeof what),
                    shown(L, idx));
}

/* the number at idx checked against f's range (integers: integral, within int64) */
static double checknum(lua_State *L, const char *F, const mbField *f, int i, int idx) {
  if (lua_type(L, idx) != LUA_TNUMBER) bad(L, F, f, i, idx);
  double v = lua_tonumber(L, idx);
  if ((mbu_fieldIsInt(f) && !lua_isinteger(L, idx) && (v != floor(v) || fabs(v) >= 9.2e18)) ||
      !mbu_fieldInRange(f, v))
    bad(L, F, f, i, idx);
  return v;
}

/* writes the value at idx (already checked, as v) into element i of f in obj (integers
   exactly) */
static void store(lua_State *L, const mbField *f, void *obj, int i, int idx, double v) {
  if ((f->type == MB_FIELD_I64 || f->type == MB_FIELD_U64) && lua_isinteger(L, idx))
    *(int64_t *)(void *)((char *)obj + f->offset) = (int64_t)lua_tointeger(L, idx);
  else
    mbu_fieldSet(obj, f, i, v);
}

/* nil, or raises "F: unknown option 'k' (nearest: a, b, c)" for the key at -2 */
static void checkkey(lua_State *L, const char *F, const mbField *fields,
                     const char *const *extra) {
  const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
  if (k[0] && mbu_fieldFind(fields, k)) return;
  for (int i = 0; extra && extra[i]; i++) if (strcmp(k, extra[i]) == 0) return;
  const char *near[3];
  mbu_fieldNearest(near, k, fields, extra);
  luaL_error(L, "%s: unknown option %s (nearest: %s%s%s%s%s)", F, shown(L, -2), near[0],
             near[1] ? ", " : "", near[1] ? near[1] : "", near[2] ? ", " : "",
             near[2] ? near[2] : "");
}

const char *const mbL_anykey[] = {NULL};

uint64_t mbL_readfields(lua_State *L, int idx, const char *F, const mbField *fields, void *obj,
                        const char *const *extra) {
  uint64_t given = 0;
  idx = lua_absindex(L, idx);
  luaL_checktype(L, idx, LUA_TTABLE);
  if (extra != mbL_anykey)
    for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) checkkey(L, F, fields, extra);
  for (int r = 0; fields[r].name[0]; r++) {
    const mbField *f = &fields[r];
    char what[160];
    if (lua_getfield(L, idx, f->name) == LUA_TNIL) {
      if (f->flags & MB_F_REQUIRED)
        luaL_error(L, "%s: %s is required (%s)", F, f->name, mbu_fieldRange(f, what, sizeof what));
      lua_pop(L, 1);
      continue;
    }
    given |= (uint64_t)1 << (r < 63 ? r : 63);
    if (f->type == MB_FIELD_INTS || f->type == MB_FIELD_FLOATS) {
      int *count = (int *)((char *)obj + f->count);
      lua_Integer n = lua_istable(L, -1) ? luaL_len(L, -1) : -1;
      int lo = f->flags & MB_F_LINKED ? *count + 1 : f->flags & MB_F_EMPTY ? 0 : 1;
      int hi = f->flags & MB_F_LINKED ? *count + 1 : f->n;
      if (n < lo || n > hi) {
        const char *got = n < 0 ? shown(L, -1) : lua_pushfstring(L, "%d values", (int)n);
        if (lo == hi)
          luaL_error(L, "%s: %s must be a list of %d %s, got %s", F, f->name, lo,
                     TYPES[f->type] + 8, got);
        luaL_error(L, "%s: %s must be a list of %d to %d %s, got %s", F, f->name, lo, hi,
                   TYPES[f->type] + 8, got);
      }
      for (int i = 0; i < n; i++) {
        lua_geti(L, -1, i + 1);
        store(L, f, obj, i, -1, checknum(L, F, f, i + 1, -1));
        lua_pop(L, 1);
      }
      if (!(f->flags & MB_F_LINKED)) *count = (int)n;
    } else if (f->type == MB_FIELD_BOOL) {
      if (!lua_isboolean(L, -1)) bad(L, F, f, 0, -1);
      store(L, f, obj, 0, -1, lua_toboolean(L, -1));
    } else if (f->type == MB_FIELD_ENUM) {
      int v = lua_type(L, -1) == LUA_TSTRING ? mbu_fieldEnumValue(f, lua_tostring(L, -1)) : -1;
      if (v < 0) bad(L, F, f, 0, -1);
      store(L, f, obj, 0, -1, v);
    } else {
      store(L, f, obj, 0, -1, checknum(L, F, f, 0, -1));
    }
    lua_pop(L, 1);
  }
  return given;
}

/* pushes element i of f's value in obj (or its default when obj is NULL) */
static void pushvalue(lua_State *L, const mbField *f, const void *obj, int i) {
  const char *p = obj ? (const char *)obj + f->offset : NULL;
  /* a list's value in obj may be longer than its default list: read defaults only without obj */
  double d = p ? 0 : f->type >= MB_FIELD_INTS ? (i < f->ndefs ? f->defs[i] : 0) : f->def;
  char name[64];
  switch (f->type) {
    case MB_FIELD_INT: case MB_FIELD_INTS:
      lua_pushinteger(L, p ? ((const int *)p)[i] : (lua_Integer)d); break;
    case MB_FIELD_I64: lua_pushinteger(L, p ? *(const int64_t *)p : (lua_Integer)d); break;
    case MB_FIELD_U64: lua_pushinteger(L, p ? (lua_Integer) * (const uint64_t *)p : (lua_Integer)d);
      break;
    case MB_FIELD_FLOAT: case MB_FIELD_FLOATS: lua_pushnumber(L, p ? ((const float *)p)[i] : d);
      break;
    case MB_FIELD_DOUBLE: lua_pushnumber(L, p ? *(const double *)p : d); break;
    case MB_FIELD_BOOL: lua_pushboolean(L, p ? *(const int *)p : d != 0); break;
    case MB_FIELD_ENUM:
      lua_pushstring(L, mbu_fieldEnumName(f, p ? *(const int *)p : (int)d, name, sizeof name));
      break;
  }
}

void mbL_setfields(lua_State *L, const char *name, const mbField *fields) {
  lua_newtable(L);
  for (int r = 0; fields[r].name[0]; r++) {
    const mbField *f = &fields[r];
    char what[160];
    lua_createtable(L, 0, 9);
    lua_pushstring(L, f->name); lua_setfield(L, -2, "name");
    lua_pushstring(L, TYPES[f->type]); lua_setfield(L, -2, "type");
    lua_pushstring(L, f->doc); lua_setfield(L, -2, "doc");
    lua_pushstring(L, mbu_fieldRange(f, what, sizeof what)); lua_setfield(L, -2, "range");
    if (f->type == MB_FIELD_INTS || f->type == MB_FIELD_FLOATS) {
      lua_createtable(L, f->ndefs, 0);
      for (int i = 0; i < f->ndefs; i++) {
        pushvalue(L, f, NULL, i);
        lua_rawseti(L, -2, i + 1);
      }
      lua_setfield(L, -2, "default");
      lua_pushinteger(L, f->n); lua_setfield(L, -2, "max_count");
      lua_pushboolean(L, (f->flags & MB_F_LINKED) != 0); lua_setfield(L, -2, "linked");
    } else if (!isnan(f->def) && !(f->flags & MB_F_REQUIRED)) {
      pushvalue(L, f, NULL, 0);
      lua_setfield(L, -2, "default");
    }
    if (f->flags & MB_F_REQUIRED) { lua_pushboolean(L, 1); lua_setfield(L, -2, "required"); }
    if (f->type == MB_FIELD_ENUM) {
      lua_newtable(L);
      for (int i = 0; mbu_fieldEnumName(f, i, what, sizeof what)[0]; i++) {
        lua_pushstring(L, what);
        lua_rawseti(L, -2, i + 1);
      }
      lua_setfield(L, -2, "values");
    } else if (f->type != MB_FIELD_BOOL && f->type != MB_FIELD_U64) {
      lua_pushnumber(L, f->lo); lua_setfield(L, -2, "min");
      lua_pushnumber(L, f->hi); lua_setfield(L, -2, "max");
      lua_pushboolean(L, (f->flags & MB_F_OPEN_LO) != 0); lua_setfield(L, -2, "open_min");
      lua_pushboolean(L, (f->flags & MB_F_OPEN_HI) != 0); lua_setfield(L, -2, "open_max");
    }
    lua_pushvalue(L, -1);               /* by name too: fields.gamma */
    lua_setfield(L, -3, f->name);
    lua_rawseti(L, -2, r + 1);
  }
  lua_setfield(L, -2, name);
}

void mbL_pushstruct(lua_State *L, const mbField *fields, const void *obj) {
  for (const mbField *f = fields; f->name[0]; f++) {
    if (f->type == MB_FIELD_INTS || f->type == MB_FIELD_FLOATS) {
      const int *count = (const int *)((const char *)obj + f->count);
      int n = *count + (f->flags & MB_F_LINKED ? 1 : 0);
      lua_createtable(L, n, 0);
      for (int i = 0; i < n; i++) {
        pushvalue(L, f, obj, i);
        lua_rawseti(L, -2, i + 1);
      }
    } else pushvalue(L, f, obj, 0);
    lua_setfield(L, -2, f->name);
  }
}
