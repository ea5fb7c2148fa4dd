/* mbpo.render: the Lua face of src/sim/render.c (headless frames of an env, mp4 encoding).
     local R = require "mbpo.render"
     local r = assert(R.new(env, {width = 480, height = 480, camera = "track"}))
     r:render([labels [, values]])     -- draws env's current state; overlay text top-left
     r:pixels() -> string of height*width*3 RGB bytes, top row first
     r.width  r.height                 r:close()
     local v = assert(R.open("out.mp4", width, height, fps))
     v:write(r)                        -- the renderer's last frame (or a string of RGB bytes)
     v.frames                          v:close() -> true | nil, message
   R.new and R.open return nil, message for what a user can meet (no OpenGL, an unknown
   camera, ffmpeg not installed); wrong argument types and sizes raise. A renderer keeps its
   env alive (user value) and refuses to draw once the env is closed. */
#include <string.h>

#include "lua/l_mbpo.h"
#include "mbpo/render.h"

#define MBL_RENDERER "mbpo.Renderer"
#define MBL_VIDEO    "mbpo.Video"

typedef struct LRenderer { mbRenderer *r; } LRenderer;
typedef struct LVideo {
  mbVideo *v;              /* NULL once closed */
  int width, height;
} LVideo;

static LRenderer *checklr(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, MBL_RENDERER);
}

static mbRenderer *checkrenderer(lua_State *L, int idx) {
  LRenderer *lr = checklr(L, idx);
  if (!lr->r) luaL_error(L, "mbpo.Renderer: the renderer has been closed");
  return lr->r;
}

static LVideo *checklv(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, MBL_VIDEO);
}

static mbVideo *checkvideo(lua_State *L, int idx) {
  LVideo *lv = checklv(L, idx);
  if (!lv->v) luaL_error(L, "mbpo.Video: the video has been closed");
  return lv->v;
}

/* an integer field of the options table at idx in [lo, hi], or def when absent */
static int optsize(lua_State *L, int idx, const char *field, int def, int lo, int hi) {
  if (lua_isnoneornil(L, idx)) return def;
  lua_getfield(L, idx, field);
  int isint = 0;
  lua_Integer v = lua_tointegerx(L, -1, &isint);
  int absent = lua_isnil(L, -1);
  lua_pop(L, 1);
  if (absent) return def;
  if (!isint || v < lo || v > hi)
    return luaL_error(L, "render.new: %s must be an integer in [%d, %d]", field, lo, hi);
  return (int)v;
}

/* R.new(env [, {width =, height =, camera =}]) -> renderer | nil, message */
static int r_new(lua_State *L) {
  mbEnv *env = mbL_checkenv(L, 1);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  int w = optsize(L, 2, "width", 480, MBV_MIN_SIZE, MBV_MAX_SIZE);
  int h = optsize(L, 2, "height", 480, MBV_MIN_SIZE, MBV_MAX_SIZE);
  const char *camera = NULL;
  if (!lua_isnoneornil(L, 2)) {
    lua_getfield(L, 2, "camera");
    if (!lua_isnil(L, -1) && !lua_isstring(L, -1))
      return luaL_error(L, "render.new: camera must be a string, got %s", luaL_typename(L, -1));
    camera = lua_tostring(L, -1);  /* kept alive by the options table */
    lua_pop(L, 1);
  }
  /* the userdata exists in a safe state before the renderer is made */
  LRenderer *lr = lua_newuserdatauv(L, sizeof *lr, 1);
  lr->r = NULL;
  luaL_setmetatable(L, MBL_RENDERER);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  lr->r = mbv_newRenderer(env, w, h, camera);
  if (!lr->r) {
    luaL_pushfail(L);
    lua_pushstring(L, mbu_lasterror());
    return 2;
  }
  mbL_extmem(L, (size_t)w * (size_t)h * 6);
  return 1;
}

/* r:render([labels [, values]]) -> r */
static int m_render(lua_State *L) {
  mbRenderer *r = checkrenderer(L, 1);
  const char *labels = luaL_optstring(L, 2, NULL);
  const char *values = luaL_optstring(L, 3, NULL);
  lua_getiuservalue(L, 1, 1);
  mbL_checkenv(L, -1);  /* raises once the env is closed */
  lua_pop(L, 1);
  MBL_CHECK(L, mbv_render(r, labels, values));
  lua_settop(L, 1);
  return 1;
}

/* r:pixels() -> string of height*width*3 RGB bytes, top row first */
static int m_pixels(lua_State *L) {
  mbRenderer *r = checkrenderer(L, 1);
  lua_pushlstring(L, (const char *)mbv_pixels(r),
                  (size_t)mbv_width(r) * (size_t)mbv_height(r) * 3);
  return 1;
}

static int m_rclose(lua_State *L) {
  LRenderer *lr = checklr(L, 1);
  mbv_freeRenderer(lr->r);
  lr->r = NULL;
  return 0;
}

static int m_rtostring(lua_State *L) {
  LRenderer *lr = checklr(L, 1);
  if (!lr->r) lua_pushliteral(L, "mbpo.Renderer (closed)");
  else lua_pushfstring(L, "mbpo.Renderer %dx%d", mbv_width(lr->r), mbv_height(lr->r));
  return 1;
}

/* fields width, height; methods from the upvalue table */
static int m_rindex(lua_State *L) {
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  const char *k = luaL_checkstring(L, 2);
  mbRenderer *r = checkrenderer(L, 1);
  if (strcmp(k, "width") == 0) lua_pushinteger(L, mbv_width(r));
  else if (strcmp(k, "height") == 0) lua_pushinteger(L, mbv_height(r));
  else lua_pushnil(L);
  return 1;
}

/* R.open(path, width, height, fps) -> video | nil, message */
static int r_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer w = luaL_checkinteger(L, 2), h = luaL_checkinteger(L, 3);
  lua_Integer fps = luaL_checkinteger(L, 4);
  if (w < MBV_MIN_SIZE || w > MBV_MAX_SIZE || h < MBV_MIN_SIZE || h > MBV_MAX_SIZE ||
      w % 2 || h % 2)
    return luaL_error(L, "render.open: frame size %dx%d must be even and within [%d, %d]",
                      (int)w, (int)h, MBV_MIN_SIZE, MBV_MAX_SIZE);
  luaL_argcheck(L, fps >= 1 && fps <= 1000, 4, "fps must be in [1, 1000]");
  LVideo *lv = lua_newuserdatauv(L, sizeof *lv, 0);
  lv->v = NULL;
  lv->width = (int)w;
  lv->height = (int)h;
  luaL_setmetatable(L, MBL_VIDEO);
  lv->v = mbv_open(path, (int)w, (int)h, (int)fps);
  if (!lv->v) {
    luaL_pushfail(L);
    lua_pushstring(L, mbu_lasterror());
    return 2;
  }
  return 1;
}

/* v:write(renderer | rgb string) -> v; the frame must have the video's size */
static int m_write(lua_State *L) {
  LVideo *lv = checklv(L, 1);
  mbVideo *v = checkvideo(L, 1);
  const uint8_t *rgb;
  LRenderer *lr = luaL_testudata(L, 2, MBL_RENDERER);
  if (lr) {
    mbRenderer *r = checkrenderer(L, 2);
    if (mbv_width(r) != lv->width || mbv_height(r) != lv->height)
      return luaL_error(L, "video:write: frame %dx%d, video %dx%d", mbv_width(r),
                        mbv_height(r), lv->width, lv->height);
    rgb = mbv_pixels(r);
  } else {
    size_t n;
    rgb = (const uint8_t *)luaL_checklstring(L, 2, &n);
    size_t want = (size_t)lv->width * (size_t)lv->height * 3;
    if (n != want)
      return luaL_error(L, "video:write: a %dx%d frame has %d bytes, got %d", lv->width,
                        lv->height, (int)want, (int)n);
  }
  MBL_CHECK(L, mbv_write(v, rgb));
  lua_settop(L, 1);
  return 1;
}

/* v:close() -> true | nil, message (the encoder's own last line) */
static int m_vclose(lua_State *L) {
  LVideo *lv = checklv(L, 1);
  if (!lv->v) { lua_pushboolean(L, 1); return 1; }
  int rc = mbv_close(lv->v);
  lv->v = NULL;
  if (rc < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, mbu_lasterror());
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* __gc / __close: an unfinished video is ended (its result is not reported) */
static int m_vgc(lua_State *L) {
  LVideo *lv = checklv(L, 1);
  if (lv->v) mbv_close(lv->v);
  lv->v = NULL;
  return 0;
}

static int m_vtostring(lua_State *L) {
  LVideo *lv = checklv(L, 1);
  if (!lv->v) lua_pushliteral(L, "mbpo.Video (closed)");
  else lua_pushfstring(L, "mbpo.Video %dx%d, %d frames", lv->width, lv->height,
                       (int)mbv_frames(lv->v));
  return 1;
}

/* fields frames, width, height; methods from the upvalue table */
static int m_vindex(lua_State *L) {
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  const char *k = luaL_checkstring(L, 2);
  LVideo *lv = checklv(L, 1);
  if (strcmp(k, "frames") == 0) lua_pushinteger(L, lv->v ? (lua_Integer)mbv_frames(lv->v) : 0);
  else if (strcmp(k, "width") == 0) lua_pushinteger(L, lv->width);
  else if (strcmp(k, "height") == 0) lua_pushinteger(L, lv->height);
  else lua_pushnil(L);
  return 1;
}

static const luaL_Reg funcs[] = {{"new", r_new}, {"open", r_open}, {NULL, NULL}};
static const luaL_Reg rmeth[] = {
  {"render", m_render}, {"pixels", m_pixels}, {"close", m_rclose}, {NULL, NULL}};
static const luaL_Reg rmetameth[] = {
  {"__index", NULL}, {"__gc", m_rclose}, {"__close", m_rclose}, {"__tostring", m_rtostring},
  {NULL, NULL}};
static const luaL_Reg vmeth[] = {{"write", m_write}, {"close", m_vclose}, {NULL, NULL}};
static const luaL_Reg vmetameth[] = {
  {"__index", NULL}, {"__gc", m_vgc}, {"__close", m_vgc}, {"__tostring", m_vtostring},
  {NULL, NULL}};

/* a metatable whose __index is a closure over its method table (fields read in C) */
static void newclass(lua_State *L, const char *tname, const luaL_Reg *metameth,
                     const luaL_Reg *meth, lua_CFunction index) {
  luaL_newmetatable(L, tname);
  luaL_setfuncs(L, metameth, 0);
  lua_newtable(L);
  luaL_setfuncs(L, meth, 0);
  lua_pushcclosure(L, index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

int luaopen_mbpo_render(lua_State *L) {
  luaL_requiref(L, "mbpo.env", luaopen_mbpo_env, 0);
  lua_pop(L, 1);
  newclass(L, MBL_RENDERER, rmetameth, rmeth, m_rindex);
  newclass(L, MBL_VIDEO, vmetameth, vmeth, m_vindex);
  luaL_newlib(L, funcs);
  lua_pushliteral(L, MB_VERSION);
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
