/* mbpo.buffer: replay buffers (src/rl/buffer.c) as "mbpo.Buffer" userdata.
     local B = require "mbpo.buffer"
     local buf = B.new{obs = 11, act = 3, capacity = 1000000}
     buf:add(obs, act, reward, next_obs, done)      tensors or tables; done number|boolean
     buf:add_batch(obs, act, reward, next_obs, done) tensors [N x obs] [N x act] [N] [N x obs] [N]
     buf:sample(n, rng [, batch]) -> batch          {obs=, act=, reward=, next_obs=, done=}
     buf:sample_obs(n, rng [, out]) -> [n x obs]    start states for model rollouts
     buf:rows([i [, n]]) -> batch                   logical rows i .. i+n-1 (1 = oldest)
     buf:batch(n) -> batch                          a zeroed batch to reuse with sample
     buf:resize(capacity)                           keeps the newest rows, in order
     buf:size() / #buf, buf:capacity(), buf:dims() -> obs, act, buf:clear()
     buf:state() -> {data=, size=, next=, capacity=, obs=, act=}   data is a view of the
                    slab (no copy): save it before the buffer changes; resize detaches it
     buf:load_state(t)
     B.sample_mixed(real, model, n, real_ratio, rng [, batch]) -> batch, nreal
   A batch's reward and done are [n] tensors. A batch passed in is filled in place (its
   tensors must be contiguous with exactly n rows), so a reused batch allocates nothing. */
#include <stddef.h>
#include <string.h>

#include "lua/l_mbpo.h"
#include "mbpo/buffer.h"

#define MBL_BUFFER "mbpo.Buffer"

/* the userdata: the buffer plus a row of scratch for add() with Lua tables */
typedef struct LBuffer {
  mbBuffer b;
  float *scratch;   /* width floats */
} LBuffer;


/* the buffer at idx, or a Lua error (wrong type, or closed: its slab has no storage) */
mbBuffer *mbL_checkbuffer(lua_State *L, int idx) {
  return &((LBuffer *)mbL_checkopen(L, idx, MBL_BUFFER, "buffer"))->b;
}

/* B.new{obs=, act=, capacity=}: the keys of MB_BUFFER_FIELDS (include/mbpo/buffer.h) */
static int b_new(lua_State *L) {
  mbBuffer v = {0};
  mbL_readfields(L, 1, "Buffer.new", mbr_bufferFields, &v, NULL);
  LBuffer *u = mbL_newobject(L, MBL_BUFFER, sizeof(LBuffer), 0);
  MBL_CHECK(L, mbr_bufferInit(&u->b, v.obs, v.act, v.capacity));
  u->scratch = mbu_malloc((size_t)u->b.width * sizeof(float));
  if (!u->scratch) return mbL_coreerror(L);
  mbL_extmem(L, (size_t)mbt_numel(&u->b.slab) * sizeof(float));
  return 1;
}

/* __gc and __close */
static int b_gc(lua_State *L) {
  LBuffer *u = luaL_checkudata(L, 1, MBL_BUFFER);
  mbr_bufferFree(&u->b);
  mbu_free(u->scratch);
  u->scratch = NULL;
  return 0;
}

/* n floats from a tensor (contiguous, n elements, any shape) or a table at idx into dst */
static void checkvec(lua_State *L, int idx, float *dst, int64_t n, const char *fname,
                     const char *arg) {
  mbTensor *t = mbL_testtensor(L, idx);
  if (t && t->storage) {
    if (mbt_numel(t) != n || !mbt_isContiguous(t)) {
      char shape[160];
      luaL_error(L, "%s: %s must have %d contiguous elements, got %s%s", fname, arg, (int)n,
                 mbt_shapeStr(t, shape, sizeof shape),
                 mbt_isContiguous(t) ? "" : " (not contiguous)");
    }
    if (n) memcpy(dst, mbt_data(t), (size_t)n * sizeof(float));
    return;
  }
  if (n == 0 && lua_isnoneornil(L, idx)) return;
  if (!lua_istable(L, idx))
    luaL_error(L, "%s: %s must be a tensor or a table, got %s", fname, arg, luaL_typename(L, idx));
  if ((int64_t)lua_rawlen(L, idx) != n)
    luaL_error(L, "%s: %s must have %d numbers, got %d", fname, arg, (int)n,
               (int)lua_rawlen(L, idx));
  for (int64_t i = 0; i < n; i++) {
    int isnum;
    lua_rawgeti(L, idx, (lua_Integer)i + 1);
    lua_Number x = lua_tonumberx(L, -1, &isnum);
    if (!isnum) luaL_error(L, "%s: %s[%d] must be a number, got %s", fname, arg, (int)i + 1,
                           luaL_typename(L, -1));
    dst[i] = (float)x;
    lua_pop(L, 1);
  }
}

/* buf:add(obs, act, reward, next_obs, done) */
static int b_add(lua_State *L) {
  mbBuffer *b = mbL_checkbuffer(L, 1);
  float *row = ((LBuffer *)lua_touserdata(L, 1))->scratch;
  int64_t o = b->obs, a = b->act;
  checkvec(L, 2, row, o, "buf:add", "obs");
  checkvec(L, 3, row + o, a, "buf:add", "act");
  float reward = (float)luaL_checknumber(L, 4);
  checkvec(L, 5, row + o + a, o, "buf:add", "next_obs");
  float done = lua_isboolean(L, 6) ? (float)lua_toboolean(L, 6) : (float)luaL_checknumber(L, 6);
  mbr_bufferAdd(b, row, row + o, reward, row + o + a, done);
  lua_settop(L, 1);
  return 1;
}

/* data of a contiguous [n] or [n x 1] tensor at idx */
static float *checkcolumn(lua_State *L, int idx, const char *fname, const char *arg,
                          int64_t n) {
  mbTensor *t = mbL_testtensor(L, idx);
  if (t && t->storage && t->ndim == 2 && t->size[1] == 1 && (n < 0 || t->size[0] == n) &&
      mbt_isContiguous(t))
    return mbt_data(t);
  int64_t size[1] = {n};
  return mbL_checkshape(L, idx, fname, arg, 1, size);
}

/* buf:add_batch(obs, act, reward, next_obs, done) */
static int b_addbatch(lua_State *L) {
  mbBuffer *b = mbL_checkbuffer(L, 1);
  const char *f = "buf:add_batch";
  const float *obs = mbL_checkmatrix(L, 2, f, "obs", -1, b->obs);
  int64_t n = mbL_checktensor(L, 2)->size[0];
  const float *act = mbL_checkmatrix(L, 3, f, "act", n, b->act);
  const float *rew = checkcolumn(L, 4, f, "reward", n);
  const float *nobs = mbL_checkmatrix(L, 5, f, "next_obs", n, b->obs);
  const float *done = checkcolumn(L, 6, f, "done", n);
  mbr_bufferAddBatch(b, obs, act, rew, nobs, done, n);
  lua_settop(L, 1);
  return 1;
}

/* the tensors of a batch: key, message name, its data in mbBatch, and its shape: [n x obs]
   (1), [n x act] (2) or [n] (0; [n x 1] is accepted too) */
static const struct { const char *key, *arg; size_t off; int kind; } BATCH[5] = {
  {"obs", "batch.obs", offsetof(mbBatch, obs), 1},
  {"act", "batch.act", offsetof(mbBatch, act), 2},
  {"reward", "batch.reward", offsetof(mbBatch, reward), 0},
  {"next_obs", "batch.next_obs", offsetof(mbBatch, next_obs), 1},
  {"done", "batch.done", offsetof(mbBatch, done), 0}};

/* pushes a new batch table of n zero rows for widths obs, act */
static void newbatch(lua_State *L, int64_t n, int64_t obs, int64_t act) {
  lua_createtable(L, 0, 5);
  for (int k = 0; k < 5; k++) {
    int64_t size[2] = {n, BATCH[k].kind == 1 ? obs : act};
    mbL_newtensor(L, BATCH[k].kind ? 2 : 1, size);
    lua_setfield(L, -2, BATCH[k].key);
  }
}

/* the batch table at idx, or a new one when idx is none or nil, left at the top: checks its
   tensors and returns their data in out */
static void getbatch(lua_State *L, int idx, mbBatch *out, int64_t n, int64_t obs, int64_t act,
                     const char *fname) {
  if (lua_isnoneornil(L, idx)) newbatch(L, n, obs, act);
  else {
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushvalue(L, idx);
  }
  idx = lua_gettop(L);
  for (int k = 0; k < 5; k++) {
    lua_getfield(L, idx, BATCH[k].key);
    *(float **)((char *)out + BATCH[k].off) = BATCH[k].kind ?
      mbL_checkmatrix(L, -1, fname, BATCH[k].arg, n, BATCH[k].kind == 1 ? obs : act) :
      checkcolumn(L, -1, fname, BATCH[k].arg, n);
  }
  lua_pop(L, 5);  /* the tensors stay alive in the batch table, left on top */
}

static int64_t checkcount(lua_State *L, int idx, const char *fname) {
  lua_Integer n = luaL_checkinteger(L, idx);
  if (n < 0) luaL_error(L, "%s: row count must be >= 0, got %d", fname, (int)n);
  return (int64_t)n;
}

/* buf:sample(n, rng [, batch]) -> batch */
static int b_sample(lua_State *L) {
  mbBuffer *b = mbL_checkbuffer(L, 1);
  int64_t n = checkcount(L, 2, "buf:sample");
  mbRng *g = mbL_checkrng(L, 3);
  mbBatch out;
  getbatch(L, 4, &out, n, b->obs, b->act, "buf:sample");
  MBL_CHECK(L, mbr_bufferSample(&out, b, g, n));
  return 1;
}

/* buf:sample_obs(n, rng [, out]) -> [n x obs] observations of uniformly drawn rows */
static int b_sampleobs(lua_State *L) {
  mbBuffer *b = mbL_checkbuffer(L, 1);
  int64_t n = checkcount(L, 2, "buf:sample_obs");
  mbRng *g = mbL_checkrng(L, 3);
  mbBatch out = {0};
  if (lua_isnoneornil(L, 4)) {
    int64_t size[2] = {n, b->obs};
    out.obs = mbt_data(mbL_newtensor(L, 2, size));
  } else {
    out.obs = mbL_checkmatrix(L, 4, "buf:sample_obs", "out", n, b->obs);
    lua_pushvalue(L, 4);
  }
  MBL_CHECK(L, mbr_bufferSample(&out, b, g, n));
  return 1;
}

/* B.sample_mixed(real, model, n, real_ratio, rng [, batch]) -> batch, nreal
   The first int(n * real_ratio) rows come from real, the rest from model; when the model
   buffer is empty all n rows come from real. Rows are copied straight into the batch. */
static int b_samplemixed(lua_State *L) {
  mbBuffer *real = mbL_checkbuffer(L, 1), *model = mbL_checkbuffer(L, 2);
  int64_t n = checkcount(L, 3, "buffer.sample_mixed");
  double ratio = luaL_checknumber(L, 4);
  mbRng *g = mbL_checkrng(L, 5);
  mbBatch out;
  int64_t nreal = 0;
  getbatch(L, 6, &out, n, real->obs, real->act, "buffer.sample_mixed");
  MBL_CHECK(L, mbr_bufferSampleMixed(&out, &nreal, real, model, g, n, ratio));
  lua_pushinteger(L, (lua_Integer)nreal);
  return 2;
}

/* buf:rows([i [, n]]) -> batch of logical rows i .. i+n-1 (1 = oldest; default all) */
static int b_rows(lua_State *L) {
  mbBuffer *b = mbL_checkbuffer(L, 1);
  lua_Integer i = luaL_optinteger(L, 2, 1);
  lua_Integer n = luaL_optinteger(L, 3, (lua_Integer)b->size - i + 1);
  if (i < 1 || n < 0 || i - 1 > (lua_Integer)b->size - n)
    return luaL_error(L, "buf:rows: rows %I..%I outside 1..%I", (LUAI_UACINT)i,
                      (LUAI_UACINT)(i + n - 1), (LUAI_UACINT)b->size);
  mbBatch out;
  getbatch(L, lua_gettop(L) + 1, &out, n, b->obs, b->act, "buf:rows");  /* a new batch */
  MBL_CHECK(L, mbr_bufferRows(&out, b, i - 1, n));
  return 1;
}

/* buf:batch(n) -> a zeroed batch table of n rows */
static int b_batch(lua_State *L) {
  mbBuffer *b = mbL_checkbuffer(L, 1);
  newbatch(L, checkcount(L, 2, "buf:batch"), b->obs, b->act);
  return 1;
}

/* buf:resize(capacity) */
static int b_resize(lua_State *L) {
  mbBuffer *b = mbL_checkbuffer(L, 1);
  MBL_CHECK(L, mbr_bufferResize(b, luaL_checkinteger(L, 2)));
  lua_settop(L, 1);
  return 1;
}

/* buf:clear(): size 0, the capacity unchanged */
static int b_clear(lua_State *L) {
  mbBuffer *b = mbL_checkbuffer(L, 1);
  b->size = 0;
  b->next = 0;
  lua_settop(L, 1);
  return 1;
}

static int b_size(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)mbL_checkbuffer(L, 1)->size);
  return 1;
}

static int b_capacity(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)mbL_checkbuffer(L, 1)->capacity);
  return 1;
}

/* buf:dims() -> obs, act */
static int b_dims(lua_State *L) {
  mbBuffer *b = mbL_checkbuffer(L, 1);
  lua_pushinteger(L, (lua_Integer)b->obs);
  lua_pushinteger(L, (lua_Integer)b->act);
  return 2;
}

/* buf:state() -> {data = [size x width] view of slab rows 0..size-1 (physical order),
   size, next (0-based write row), capacity, obs, act}: io.save writes it as is;
   buf:load_state(t) restores it (the capacity too) */
static void *checkbufobj(lua_State *L, int idx) { return mbL_checkbuffer(L, idx); }
static int bufblocks(mbStateBlock *b, void *buf) { return mbr_bufferStateBlocks(b, buf); }
static int bufset(void *buf, const mbStateBlock *s) { return mbr_bufferSetState(buf, s); }
static mbLStateType STATE = {"buf", "buffer", checkbufobj, bufblocks, bufset, NULL, 0};

static const luaL_Reg funcs[] = {{"new", b_new}, {"sample_mixed", b_samplemixed}, {NULL, NULL}};
static const luaL_Reg meth[] = {
  {"add", b_add}, {"add_batch", b_addbatch}, {"sample", b_sample},
  {"sample_obs", b_sampleobs}, {"rows", b_rows}, {"batch", b_batch}, {"resize", b_resize},
  {"clear", b_clear}, {"size", b_size}, {"capacity", b_capacity}, {"dims", b_dims}, {NULL, NULL}};
static const luaL_Reg metameth[] = {
  {"__index", NULL}, {"__gc", b_gc}, {"__close", b_gc}, {"__len", b_size}, {NULL, NULL}};

int luaopen_mbpo_buffer(lua_State *L) {
  static const mbLClass classes[] = {{MBL_BUFFER, meth, metameth, NULL, &STATE, 1}, {NULL}};
  mbL_newlib(L, (const char *[]){"mbpo.tensor", NULL}, classes, funcs);
  mbL_setfields(L, "fields", mbr_bufferFields);
  return 1;
}
