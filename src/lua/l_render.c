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

/* both userdata: the object (NULL until made and once closed) and the frame size */
typedef struct LRenderer { mbRenderer *r; int width, height; } LRenderer;
typedef struct LVideo { mbVideo *v; int width, height; } LVideo;

static mbRenderer *checkrenderer(lua_State *L, int idx) {
  return ((LRenderer *)mbL_checkopen(L, idx, MBL_RENDERER, "renderer"))->r;
}

/* R.new's options: mbv_renderFields (include/mbpo/render.h) and the camera */
static const char *const RENDER_EXTRA[] = {"camera", NULL};

/* R.new(env [, {width =, height =, camera =}]) -> renderer | nil, message */
static int r_new(lua_State *L) {
  mbEnv *env = mbL_checkenv(L, 1);
  mbvRenderOptions o;
  mbu_fieldDefaults(&o, mbv_renderFields);
  const char *camera = NULL;
  if (!lua_isnoneornil(L, 2)) {
    mbL_readfields(L, 2, "render.new", mbv_renderFields, &o, RENDER_EXTRA);
    lua_getfield(L, 2, "camera");
    if (!lua_isnil(L, -1) && !lua_isstring(L, -1))
      return luaL_error(L, "render.new: camera must be a string, got %s", luaL_typename(L, -1));
    camera = lua_tostring(L, -1);  /* kept alive by the options table */
    lua_pop(L, 1);
  }
  LRenderer *lr = mbL_newobject(L, MBL_RENDERER, sizeof *lr, 1);
  *lr = (LRenderer){NULL, o.width, o.height};
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  lr->r = mbv_newRenderer(env, o.width, o.height, camera);
  if (!lr->r) return mbL_pushfail(L);
  mbL_extmem(L, (size_t)o.width * (size_t)o.height * 6);
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
  LRenderer *lr = luaL_checkudata(L, 1, MBL_RENDERER);
  mbv_freeRenderer(lr->r);
  lr->r = NULL;
  return 0;
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
  LVideo *lv = mbL_newobject(L, MBL_VIDEO, sizeof *lv, 0);
  *lv = (LVideo){NULL, (int)w, (int)h};
  lv->v = mbv_open(path, (int)w, (int)h, (int)fps);
  if (!lv->v) return mbL_pushfail(L);
  return 1;
}

/* v:write(renderer | rgb string) -> v; the frame must have the video's size */
static int m_write(lua_State *L) {
  LVideo *lv = mbL_checkopen(L, 1, MBL_VIDEO, "video");
  const uint8_t *rgb;
  if (luaL_testudata(L, 2, MBL_RENDERER)) {
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
  MBL_CHECK(L, mbv_write(lv->v, rgb));
  lua_settop(L, 1);
  return 1;
}

/* v:close() -> true | nil, message (the encoder's own last line); also __gc and __close, which
   end an unfinished video (Lua drops their results) */
static int m_vclose(lua_State *L) {
  LVideo *lv = luaL_checkudata(L, 1, MBL_VIDEO);
  int rc = lv->v ? mbv_close(lv->v) : MB_OK;
  lv->v = NULL;
  if (rc < 0) return mbL_pushfail(L);
  lua_pushboolean(L, 1);
  return 1;
}

/* fields width, height, and a video's frames (the methods are found first); a closed
   renderer raises */
static int m_field(lua_State *L) {
  const char *k = luaL_checkstring(L, 2);
  int video = luaL_testudata(L, 1, MBL_VIDEO) != NULL;
  LVideo *o = video ? lua_touserdata(L, 1) : mbL_checkopen(L, 1, MBL_RENDERER, "renderer");
  if (strcmp(k, "width") == 0) lua_pushinteger(L, o->width);
  else if (strcmp(k, "height") == 0) lua_pushinteger(L, o->height);
  else if (video && strcmp(k, "frames") == 0)
    lua_pushinteger(L, o->v ? (lua_Integer)mbv_frames(o->v) : 0);
  else lua_pushnil(L);
  return 1;
}

static const luaL_Reg funcs[] = {{"new", r_new}, {"open", r_open}, {NULL, NULL}};
static const luaL_Reg rmeth[] = {
  {"render", m_render}, {"pixels", m_pixels}, {"close", m_rclose}, {NULL, NULL}};
static const luaL_Reg rmetameth[] = {{"__gc", m_rclose}, {"__close", m_rclose}, {NULL, NULL}};
static const luaL_Reg vmeth[] = {{"write", m_write}, {"close", m_vclose}, {NULL, NULL}};
static const luaL_Reg vmetameth[] = {{"__gc", m_vclose}, {"__close", m_vclose}, {NULL, NULL}};

int luaopen_mbpo_render(lua_State *L) {
  static const mbLClass classes[] = {{MBL_RENDERER, rmeth, rmetameth, m_field, NULL, 1},
                                     {MBL_VIDEO, vmeth, vmetameth, m_field, NULL, 1}, {NULL}};
  return mbL_newlib(L, (const char *[]){"mbpo.env.native", NULL}, classes, funcs);
}
