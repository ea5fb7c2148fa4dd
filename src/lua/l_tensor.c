/* mbpo.tensor: the Lua face of src/core/tensor*.c.
   Userdata of type "mbpo.Tensor" hold an mbTensor by value; views share storage. Indices
   and dimensions are 1-based here (a negative dimension counts from the end) and are
   converted once, in this file; the core is 0-based. Methods ending in `_` modify self and
   return it; the plain name returns a new tensor; both call the same core kernel. Every
   method is also a module function (T.exp(x) is x:exp()). SIZES below is integers or one
   table of integers; g an optional trailing mbpo.Rng (default: T.default_generator()).

     creation   T.zeros(SIZES) T.ones T.empty T.full(SIZES, v) T.arange([start,] stop [, step])
                T.tensor(nested table | number | tensor) (= T.new) T.rand(SIZES [, g])
                T.randn(SIZES [, g]) T.randint(lo, hi, SIZES [, g]) (lo..hi inclusive)
                T.manual_seed(n) T.default_generator() T.is_tensor(x)
                x:clone() x:copy_(src) x:fill_(v) x:zero_() x:uniform_([lo, hi] [, g])
                x:normal_([mean, std] [, g]) x:to_table() x:item() tostring(x)
     geometry   x:size([d]) x:stride([d]) x:dim() x:numel() x:is_contiguous() #x
                x:get(i, ...) x:set(i, ..., v) x:close() (also <close>)
     views      x:narrow(d, start, len) x:select(d, i) x:transpose(d1, d2) x:t()
                x:view(SIZES) x:reshape(SIZES) x:contiguous() x:squeeze([d]) x:unsqueeze(d)
     elementwise (each also as name_ in place; y a tensor, a row to broadcast, or a number)
                add sub mul div pow minimum maximum lt le gt ge eq ne (x:op(y));
                neg exp log sqrt abs tanh sigmoid relu softplus isfinite square (x:op());
                x:clamp(lo, hi) x:masked_fill(mask, v) T.where(cond, a, b)
                x + y, x - y, x * y (elementwise), x / y, -x (numbers on either side)
     reductions x:sum() -> number; x:sum(d [, keepdim]) -> tensor: sum mean max min argmax
                argmin std var (unbiased) all any; x:max(d) / x:min(d) also return indices
     linalg     x:matmul(y) T.mm(out, a, b) c:addmm_(a, b [, beta [, alpha]]) c:addmm(...)
     indexing   x:index_select(d, idx) x:index_copy_(d, idx, src) x:gather(d, index)
                x:scatter_(d, index, src | v) x:masked_select(mask) T.cat(list [, d])
                T.stack(list [, d])   (idx: tensor or table of 1-based integers)

   mbL_newtensor and mbL_pushview (l_mbpo.h) are the other bindings' way to make tensors; the
   argument checks of tensors are with the other binding helpers, in l_aux.c. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lua/l_mbpo.h"

/* registry key of the module's default generator (an mbpo.Rng userdata) */
#define DEFAULT_RNG "mbpo.tensor.rng"

/* Making tensor userdata (mbL_newtensor, mbL_pushview: l_mbpo.h) ----------------------------- */

/* a userdata in a safe (empty) state before it acquires memory, as liolib's newprefile */
static mbTensor *newud(lua_State *L) {
  mbTensor *t = lua_newuserdatauv(L, sizeof(mbTensor), 0);
  memset(t, 0, sizeof *t);
  luaL_setmetatable(L, MBL_TENSOR);
  return t;
}

/* tells the collector about storage it cannot see (as if that many bytes were allocated
   by Lua), so loops that make large temporaries do not pile them up */
static void gchint(lua_State *L, const mbTensor *t) {
  mbL_extmem(L, (size_t)mbt_numel(t) * sizeof(float));
}

mbTensor *mbL_newtensor(lua_State *L, int ndim, const int64_t *size) {
  mbTensor *t = newud(L);
  MBL_CHECK(L, mbt_init(t, ndim, size));
  gchint(L, t);
  return t;
}

mbTensor *mbL_newcopy(lua_State *L, const float *src, int ndim, const int64_t *size) {
  mbTensor *t = mbL_newtensor(L, ndim, size);
  int64_t n = mbt_numel(t);
  if (n) memcpy(mbt_data(t), src, sizeof(float) * (size_t)n);
  return t;
}

/* as mbL_newtensor with the values left uninitialised (outputs written in full) */
static mbTensor *newempty(lua_State *L, int ndim, const int64_t *size) {
  mbTensor *t = newud(L);
  MBL_CHECK(L, mbt_empty(t, ndim, size));
  gchint(L, t);
  return t;
}

mbTensor *mbL_pushview(lua_State *L, const mbTensor *src) {
  mbTensor *t = newud(L);
  mbt_view(t, src);
  return t;
}

/* Local helpers -------------------------------------------------------------------------- */

/* Functions registered as closures (setpair): upvalue 1 the core operation or the variant,
   upvalue 2 true for the `_` (in place) form. */
#define OPCODE(L) ((int)lua_tointeger(L, lua_upvalueindex(1)))
#define INPLACE(L) lua_toboolean(L, lua_upvalueindex(2))

/* shape strings for messages; two per call site at most */
#define SHAPE(t, buf) mbt_shapeStr((t), (buf), sizeof (buf))

/* a 1-based (or negative, from the end) dimension at arg -> 0-based; `extra` admits ndim + 1
   (unsqueeze, stack) */
static int checkdim(lua_State *L, const mbTensor *t, int arg, const char *fname, int extra) {
  char s[160];
  lua_Integer d = luaL_checkinteger(L, arg);
  int n = t->ndim + extra;
  lua_Integer d0 = d < 0 ? d + n : d - 1;
  if (d0 < 0 || d0 >= n)
    mbL_errorf(L, "%s: dimension %lld out of range [1, %d] for %s", fname, (long long)d, n,
               SHAPE(t, s));
  return (int)d0;
}

/* sizes at arguments first..last: integers, or one table of integers at first; -1 passes
   only when allowneg (view, reshape) */
static int getsizes(lua_State *L, int first, int last, int64_t *size, const char *fname,
                    int allowneg) {
  int n = 0;
  if (first <= last && lua_istable(L, first)) {
    lua_Integer len = luaL_len(L, first);
    if (len > MB_MAXDIM)
      mbL_errorf(L, "%s: %lld dimensions (at most %d)", fname, (long long)len, MB_MAXDIM);
    for (int i = 0; i < (int)len; i++) {
      lua_geti(L, first, i + 1);
      int isint;
      lua_Integer v = lua_tointegerx(L, -1, &isint);
      if (!isint)
        mbL_errorf(L, "%s: size %d is not an integer (%s)", fname, i + 1, luaL_typename(L, -1));
      size[n++] = v;
      lua_pop(L, 1);
    }
  } else {
    if (last - first + 1 > MB_MAXDIM)
      mbL_errorf(L, "%s: %d dimensions (at most %d)", fname, last - first + 1, MB_MAXDIM);
    for (int i = first; i <= last; i++) size[n++] = luaL_checkinteger(L, i);
  }
  for (int i = 0; i < n; i++)
    if (size[i] < 0 && !(allowneg && size[i] == -1))
      mbL_errorf(L, "%s: negative size %lld", fname, (long long)size[i]);
  return n;
}

/* a 0-d tensor over one float on the C stack (scalar operands; no allocation) */
static void scalar(mbTensor *t, mbStorage *s, float *v) {
  memset(t, 0, sizeof *t);
  s->data = v;
  s->size = 1;
  s->refcount = 1;
  t->storage = s;
}

/* operand at arg: a tensor, or a number placed in the caller's stack scalar */
static const mbTensor *operand(lua_State *L, int arg, mbTensor *tmp, mbStorage *st, float *v) {
  mbTensor *t = mbL_testtensor(L, arg);
  if (t) return mbL_checktensor(L, arg);
  if (lua_type(L, arg) != LUA_TNUMBER) {
    luaL_typeerror(L, arg, "number or mbpo.Tensor");
    return NULL;
  }
  *v = (float)lua_tonumber(L, arg);
  scalar(tmp, st, v);
  return tmp;
}

/* the generator at arg, or the module's default one */
static mbRng *optrng(lua_State *L, int arg) {
  mbRng *g = arg >= 1 ? mbL_testrng(L, arg) : NULL;
  if (g) return g;
  lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_RNG);
  g = mbL_testrng(L, -1);
  lua_pop(L, 1); /* the registry keeps it alive */
  if (!g) luaL_error(L, "mbpo.tensor: the default generator is missing");
  return g;
}

/* an optional trailing generator: the one at *top (which is then dropped from the arguments)
   or the default one */
static mbRng *trailingrng(lua_State *L, int *top) {
  mbRng *g = optrng(L, *top);
  if (*top >= 1 && mbL_testrng(L, *top)) (*top)--;
  return g;
}

/* integer indices (1-based in Lua, 0-based out) from a tensor or a table of integers at arg,
   each in [1, limit]; returns a temporary buffer kept alive on the stack, count in *n */
static int64_t *checkindices(lua_State *L, int arg, int64_t limit, int64_t *n, const char *fname) {
  mbTensor *t = mbL_testtensor(L, arg);
  if (t) {
    mbL_checktensor(L, arg);
    *n = mbt_numel(t);
    int64_t *idx = lua_newuserdatauv(L, (size_t)(*n ? *n : 1) * sizeof(int64_t), 0);
    MBL_CHECK(L, mbt_toIndex(idx, t, 1, limit, fname));
    return idx;
  }
  if (!lua_istable(L, arg)) luaL_typeerror(L, arg, "mbpo.Tensor or table of indices");
  *n = luaL_len(L, arg);
  int64_t *idx = lua_newuserdatauv(L, (size_t)(*n ? *n : 1) * sizeof(int64_t), 0);
  for (int64_t i = 0; i < *n; i++) {
    lua_geti(L, arg, i + 1);
    int isint;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint)
      mbL_errorf(L, "%s: index %lld of the table is not an integer (%s)", fname, (long long)(i + 1),
                 lua_type(L, -1) == LUA_TNUMBER ? "fractional" : luaL_typename(L, -1));
    if (v < 1 || v > limit)
      mbL_errorf(L, "%s: index %lld out of range [1, %lld]", fname, (long long)v, (long long)limit);
    idx[i] = v - 1;
    lua_pop(L, 1);
  }
  return idx;
}

/* __gc and __close share one function */
static int t_gc(lua_State *L) {
  mbTensor *t = luaL_checkudata(L, 1, MBL_TENSOR);
  mbt_release(t);
  return 0;
}

/* Creation ------------------------------------------------------------------------------- */

/* T.zeros(SIZES), T.ones, T.empty, T.full(SIZES, v), T.rand(SIZES [, g]) uniform [0, 1),
   T.randn normal, T.randint(lo, hi, SIZES [, g]) with both ends included: one function, the
   kind (CREATORS) in upvalue 1 */
enum { C_ZEROS, C_ONES, C_EMPTY, C_FULL, C_RAND, C_RANDN, C_RANDINT, C_COUNT };
static const char *const CREATORS[C_COUNT] = {"zeros", "ones", "empty", "full", "rand", "randn",
                                              "randint"};
static int t_create(lua_State *L) {
  int kind = OPCODE(L), top = lua_gettop(L);
  mbRng *g = kind >= C_RAND ? trailingrng(L, &top) : NULL;
  float v = kind == C_ONES ? 1.0f : 0.0f;
  if (kind == C_FULL) {
    v = (float)luaL_checknumber(L, top > 0 ? top : 1);
    top--;
  }
  int64_t size[MB_MAXDIM];
  int n = getsizes(L, kind == C_RANDINT ? 3 : 1, top, size, CREATORS[kind], 0);
  if (kind == C_ZEROS) {
    mbL_newtensor(L, n, size);
    return 1;
  }
  if (kind == C_RANDINT) {
    lua_Integer lo = luaL_checkinteger(L, 1), hi = luaL_checkinteger(L, 2);
    MBL_CHECK(L, mbt_randint(newempty(L, n, size), g, lo, hi));
  } else if (kind == C_RANDN) {
    MBL_CHECK(L, mbt_normal(newempty(L, n, size), g, 0, 1));
  } else if (kind == C_RAND) {
    MBL_CHECK(L, mbt_uniform(newempty(L, n, size), g, 0, 1));
  } else {
    mbTensor *t = newempty(L, n, size);
    if (kind != C_EMPTY) mbt_fill(t, v);
  }
  return 1;
}

/* T.arange(stop) or T.arange(start, stop [, step]): start, start + step, ... before stop */
static int t_arange(lua_State *L) {
  double start = 0, stop, step = 1;
  if (lua_isnoneornil(L, 2)) stop = luaL_checknumber(L, 1);
  else {
    start = luaL_checknumber(L, 1);
    stop = luaL_checknumber(L, 2);
    step = luaL_optnumber(L, 3, 1);
  }
  if (step == 0 || step != step) return mbL_errorf(L, "arange: step must be nonzero, got %g", step);
  double count = ceil((stop - start) / step);
  if (!(count < 1e12))
    return mbL_errorf(L, "arange: [%g, %g) by %g is too long", start, stop, step);
  int64_t n = count > 0 ? (int64_t)count : 0;
  MBL_CHECK(L, mbt_arange(newempty(L, 1, &n), start, step));
  return 1;
}

/* shape of a nested table: descends through first elements */
static int tableshape(lua_State *L, int arg, int64_t *size) {
  int n = 0;
  lua_pushvalue(L, arg);
  while (lua_istable(L, -1)) {
    if (n == MB_MAXDIM) mbL_errorf(L, "tensor: nested table deeper than %d", MB_MAXDIM);
    size[n++] = (int64_t)lua_rawlen(L, -1);
    if (size[n - 1] == 0) break;
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
  }
  lua_pop(L, 1);
  return n;
}

/* fills data (row-major) from the nested table on top of the stack at depth dim; path holds
   the 1-based position for messages, which begin with who */
static void fillfrom(lua_State *L, const mbTensor *t, int dim, float **data, int64_t *path,
                     const char *who) {
  luaL_checkstack(L, 4, "tensor: nested table too deep");
  int64_t len = (int64_t)lua_rawlen(L, -1);
  if (len != t->size[dim]) {
    char pos[160] = "";
    size_t k = 0;
    for (int d = 0; d < dim && k < sizeof pos; d++)
      k += (size_t)snprintf(pos + k, sizeof pos - k, "[%lld]", (long long)path[d]);
    mbL_errorf(L, "%s: ragged nested table, %s has %lld elements, expected %lld", who,
               dim ? pos : "the outer table", (long long)len, (long long)t->size[dim]);
  }
  for (int64_t i = 1; i <= len; i++) {
    path[dim] = i;
    lua_rawgeti(L, -1, i);
    if (dim + 1 < t->ndim) {
      if (!lua_istable(L, -1)) goto bad;
      fillfrom(L, t, dim + 1, data, path, who);
    } else {
      int isnum;
      lua_Number v = lua_tonumberx(L, -1, &isnum);
      if (!isnum || lua_type(L, -1) != LUA_TNUMBER) goto bad;
      *(*data)++ = (float)v;
    }
    lua_pop(L, 1);
    continue;
  bad: {
      char pos[160] = "";
      size_t k = 0;
      for (int d = 0; d <= dim && k < sizeof pos; d++)
        k += (size_t)snprintf(pos + k, sizeof pos - k, "[%lld]", (long long)path[d]);
      mbL_errorf(L, "%s: expected a %s at %s, got %s", who,
                 dim + 1 < t->ndim ? "table" : "number", pos, luaL_typename(L, -1));
    }
  }
}

/* T.tensor(x) / T.new(x): x a nested table of numbers, a number (0-d) or a tensor (copy) */
static int t_tensor(lua_State *L) {
  if (lua_type(L, 1) == LUA_TNUMBER) {
    mbTensor *t = newempty(L, 0, NULL);
    mbt_data(t)[0] = (float)lua_tonumber(L, 1);
    return 1;
  }
  mbTensor *src = mbL_testtensor(L, 1);
  if (src) {
    mbL_checktensor(L, 1);
    MBL_CHECK(L, mbt_copy(newempty(L, src->ndim, src->size), src));
    return 1;
  }
  if (!lua_istable(L, 1)) return luaL_typeerror(L, 1, "table, number or mbpo.Tensor");
  mbL_tabletensor(L, 1, "tensor");
  return 1;
}

mbTensor *mbL_tabletensor(lua_State *L, int idx, const char *who) {
  int64_t size[MB_MAXDIM], path[MB_MAXDIM] = {0};
  idx = lua_absindex(L, idx);
  int n = tableshape(L, idx, size);
  mbTensor *t = newempty(L, n, size);
  float *data = mbt_data(t);
  lua_pushvalue(L, idx);
  fillfrom(L, t, 0, &data, path, who);
  lua_pop(L, 1);
  return t;
}

/* T.manual_seed(n): reseeds the default generator */
static int t_manualseed(lua_State *L) {
  lua_Integer seed = luaL_checkinteger(L, 1);
  mbr_seed(optrng(L, 0), (uint64_t)seed, 0);
  return 0;
}

/* T.default_generator() -> the mbpo.Rng used when none is given (for checkpoints) */
static int t_defaultrng(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_RNG);
  return 1;
}

/* x:uniform_([lo, hi] [, g]) and x:normal_([mean, std] [, g]) (OPCODE 1) */
static int t_random_(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1);
  int top = lua_gettop(L);
  mbRng *g = trailingrng(L, &top);
  float a = top >= 2 ? (float)luaL_checknumber(L, 2) : 0;
  float b = top >= 3 ? (float)luaL_checknumber(L, 3) : 1;
  MBL_CHECK(L, OPCODE(L) ? mbt_normal(t, g, a, b) : mbt_uniform(t, g, a, b));
  lua_settop(L, 1);
  return 1;
}

static int t_istensor(lua_State *L) {
  lua_pushboolean(L, mbL_testtensor(L, 1) != NULL);
  return 1;
}

/* Geometry and elements -------------------------------------------------------------------- */

/* x:size() -> {sizes}; x:size(d) -> integer; x:stride likewise (OPCODE 1), in elements */
static int t_geometry(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1);
  const int64_t *v = OPCODE(L) ? t->stride : t->size;
  if (!lua_isnoneornil(L, 2)) {
    lua_pushinteger(L, v[checkdim(L, t, 2, OPCODE(L) ? "stride" : "size", 0)]);
    return 1;
  }
  lua_createtable(L, t->ndim, 0);
  for (int i = 0; i < t->ndim; i++) {
    lua_pushinteger(L, v[i]);
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

static int t_iscontiguous(lua_State *L) {
  lua_pushboolean(L, mbt_isContiguous(mbL_checktensor(L, 1)));
  return 1;
}

/* #x = x:size(1) */
static int t_len(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1);
  if (t->ndim == 0) return mbL_errorf(L, "#: a 0-d tensor has no length");
  lua_pushinteger(L, t->size[0]);
  return 1;
}

/* pointer to the element at the 1-based indices at args first.. (exactly ndim of them) */
static float *element(lua_State *L, mbTensor *t, int first, int count, const char *fname) {
  char s[160];
  if (count != t->ndim)
    mbL_errorf(L, "%s: %d indices for a %d-d tensor %s", fname, count, t->ndim, SHAPE(t, s));
  int64_t idx[MB_MAXDIM];
  for (int d = 0; d < count; d++) {
    lua_Integer i = luaL_checkinteger(L, first + d);
    if (i < 1 || i > t->size[d])
      mbL_errorf(L, "%s: index %lld out of range [1, %lld] in dimension %d of %s", fname,
                 (long long)i, (long long)t->size[d], d + 1, SHAPE(t, s));
    idx[d] = i - 1;
  }
  return mbt_ptr(t, idx);
}

/* x:get(i, j, ...) -> number */
static int t_get(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1);
  lua_pushnumber(L, *element(L, t, 2, lua_gettop(L) - 1, "get"));
  return 1;
}

/* x:set(i, j, ..., v) -> x */
static int t_set(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1);
  int top = lua_gettop(L);
  if (top < 2) return mbL_errorf(L, "set: expected indices and a value");
  float v = (float)luaL_checknumber(L, top);
  *element(L, t, 2, top - 2, "set") = v;
  lua_settop(L, 1);
  return 1;
}

/* x:item() -> the value of a one-element tensor */
static int t_item(lua_State *L) {
  char s[160];
  mbTensor *t = mbL_checktensor(L, 1);
  if (mbt_numel(t) != 1)
    return mbL_errorf(L, "item: %s tensor does not have one element", SHAPE(t, s));
  int64_t idx[MB_MAXDIM] = {0};
  lua_pushnumber(L, *mbt_ptr(t, idx));
  return 1;
}

/* nested Lua tables of t's values from dimension dim at the given offset */
static void totable(lua_State *L, const mbTensor *t, int dim, int64_t off) {
  luaL_checkstack(L, 3, "to_table: too deep");
  int64_t n = t->size[dim];
  lua_createtable(L, n < INT32_MAX ? (int)n : 0, 0);
  for (int64_t i = 0; i < n; i++) {
    int64_t o = off + i * t->stride[dim];
    if (dim + 1 < t->ndim) totable(L, t, dim + 1, o);
    else lua_pushnumber(L, t->storage->data[o]);
    lua_rawseti(L, -2, i + 1);
  }
}

/* x:to_table() -> nested tables (a number for a 0-d tensor) */
static int t_totable(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1);
  if (t->ndim == 0) lua_pushnumber(L, mbt_data(t)[0]);
  else totable(L, t, 0, t->offset);
  return 1;
}

/* Views ---------------------------------------------------------------------------------- */

/* x:narrow(dim, start, len): elements start..start+len-1 of dim, sharing storage */
static int t_narrow(lua_State *L) {
  char s[160];
  mbTensor *t = mbL_checktensor(L, 1);
  int d = checkdim(L, t, 2, "narrow", 0);
  lua_Integer start = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
  if (len < 0 || start < 1 || start > t->size[d] + 1 || len > t->size[d] - (start - 1))
    return mbL_errorf(L, "narrow: elements %lld to %lld out of range [1, %lld] in dimension %d "
                      "of %s", (long long)start, (long long)(start + len - 1),
                      (long long)t->size[d], d + 1, SHAPE(t, s));
  MBL_CHECK(L, mbt_narrow(newud(L), t, d, start - 1, len));
  return 1;
}

/* x:select(dim, i): slice i of dim, one dimension fewer, sharing storage */
static int t_select(lua_State *L) {
  char s[160];
  mbTensor *t = mbL_checktensor(L, 1);
  int d = checkdim(L, t, 2, "select", 0);
  lua_Integer i = luaL_checkinteger(L, 3);
  if (i < 1 || i > t->size[d])
    return mbL_errorf(L, "select: index %lld out of range [1, %lld] in dimension %d of %s",
                      (long long)i, (long long)t->size[d], d + 1, SHAPE(t, s));
  MBL_CHECK(L, mbt_select(newud(L), t, d, i - 1));
  return 1;
}

/* x:transpose(d1, d2) */
static int t_transpose(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1);
  int d1 = checkdim(L, t, 2, "transpose", 0), d2 = checkdim(L, t, 3, "transpose", 0);
  MBL_CHECK(L, mbt_transpose(newud(L), t, d1, d2));
  return 1;
}

/* x:t(): the transpose of a 2-d tensor */
static int t_t(lua_State *L) {
  char s[160];
  mbTensor *t = mbL_checktensor(L, 1);
  if (t->ndim != 2) return mbL_errorf(L, "t: expected a 2-d tensor, got %s", SHAPE(t, s));
  MBL_CHECK(L, mbt_transpose(newud(L), t, 0, 1));
  return 1;
}

/* x:view(sizes) (contiguous x only; one size may be -1) */
static int t_view(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1);
  int64_t size[MB_MAXDIM];
  int n = getsizes(L, 2, lua_gettop(L), size, "view", 1);
  MBL_CHECK(L, mbt_viewShape(newud(L), t, n, size));
  return 1;
}

/* x:reshape(sizes): a view when x is contiguous, else a copy */
static int t_reshape(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1);
  int64_t size[MB_MAXDIM];
  int n = getsizes(L, 2, lua_gettop(L), size, "reshape", 1);
  mbTensor *r = newud(L);
  MBL_CHECK(L, mbt_reshape(r, t, n, size));
  gchint(L, r);
  return 1;
}

/* x:contiguous(): x itself when contiguous, else a contiguous copy */
static int t_contiguous(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1);
  if (mbt_isContiguous(t)) {
    lua_settop(L, 1);
    return 1;
  }
  mbTensor *r = newud(L);
  MBL_CHECK(L, mbt_contiguous(r, t));
  gchint(L, r);
  return 1;
}

/* x:squeeze([dim]) and x:unsqueeze(dim) views */
static int t_squeeze(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1);
  int d = lua_isnoneornil(L, 2) ? -1 : checkdim(L, t, 2, "squeeze", 0);
  MBL_CHECK(L, mbt_squeeze(newud(L), t, d));
  return 1;
}

static int t_unsqueeze(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1);
  MBL_CHECK(L, mbt_unsqueeze(newud(L), t, checkdim(L, t, 2, "unsqueeze", 1)));
  return 1;
}

/* x:clone(): a contiguous copy */
static int t_clone(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1);
  MBL_CHECK(L, mbt_copy(newempty(L, t->ndim, t->size), t));
  return 1;
}

/* x:copy_(src): src broadcasts to x's shape */
static int t_copy_(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1), *src = mbL_checktensor(L, 2);
  MBL_CHECK(L, mbt_copy(t, src));
  lua_settop(L, 1);
  return 1;
}

static int t_fill_(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1);
  mbt_fill(t, (float)luaL_checknumber(L, 2));
  lua_settop(L, 1);
  return 1;
}

static int t_zero_(lua_State *L) {
  mbt_fill(mbL_checktensor(L, 1), 0.0f);
  lua_settop(L, 1);
  return 1;
}

/* Elementwise ------------------------------------------------------------------------------
   Registered as closures: upvalue 1 the core operation, upvalue 2 true for the `_` variant. */


/* x:exp() / x:exp_() and the other operations of one tensor */
static int t_unary(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1);
  mbUnaryOp op = (mbUnaryOp)OPCODE(L);
  if (INPLACE(L)) {
    MBL_CHECK(L, mbt_unary(t, t, op));
    lua_settop(L, 1);
  } else {
    MBL_CHECK(L, mbt_unary(newempty(L, t->ndim, t->size), t, op));
  }
  return 1;
}

/* t op b into a new tensor of their broadcast shape */
static int binarynew(lua_State *L, const mbTensor *t, const mbTensor *b, mbBinaryOp op) {
  int nd;
  int64_t size[MB_MAXDIM];
  MBL_CHECK(L, mbt_broadcastShape(&nd, size, t, b, mbt_binaryName(op)));
  MBL_CHECK(L, mbt_binary(newempty(L, nd, size), t, b, op));
  return 1;
}

/* x:add(y) / x:add_(y), y a tensor (broadcast) or a number */
static int t_binary(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1), tmp;
  mbStorage st;
  float v;
  const mbTensor *b = operand(L, 2, &tmp, &st, &v);
  mbBinaryOp op = (mbBinaryOp)OPCODE(L);
  if (INPLACE(L)) {
    MBL_CHECK(L, mbt_binary(t, t, b, op));
    lua_settop(L, 1);
    return 1;
  }
  return binarynew(L, t, b, op);
}

/* the arithmetic metamethods: either side may be a number */
static int t_arith(lua_State *L) {
  /* Lua calls the metamethod with the operands in their written order; when the number is
     on the left, the commutative ops swap and sub/div become their reversed forms */
  mbBinaryOp op = (mbBinaryOp)OPCODE(L);
  int ta = 1, tb = 2;
  if (!mbL_testtensor(L, 1)) { /* number op tensor */
    ta = 2, tb = 1;
    if (op == MB_SUB) op = MB_RSUB;
    else if (op == MB_DIV) op = MB_RDIV;
  }
  mbTensor *t = mbL_checktensor(L, ta), tmp;
  mbStorage st;
  float v;
  return binarynew(L, t, operand(L, tb, &tmp, &st, &v), op);
}

/* x:clamp(lo, hi) / x:clamp_(lo, hi); a nil bound is open */
static int t_clamp(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1);
  float lo = lua_isnoneornil(L, 2) ? -INFINITY : (float)luaL_checknumber(L, 2);
  float hi = lua_isnoneornil(L, 3) ? INFINITY : (float)luaL_checknumber(L, 3);
  if (INPLACE(L)) {
    MBL_CHECK(L, mbt_clamp(t, t, lo, hi));
    lua_settop(L, 1);
  } else {
    MBL_CHECK(L, mbt_clamp(newempty(L, t->ndim, t->size), t, lo, hi));
  }
  return 1;
}

/* T.where(cond, a, b): cond ~= 0 ? a : b, a and b tensors or numbers, all broadcast */
/* the output shape is the broadcast of all three: cond with a, then that with b */
static int t_where(lua_State *L) {
  mbTensor *c = mbL_checktensor(L, 1), ta, tb;
  mbStorage sa, sb;
  float va, vb;
  const mbTensor *a = operand(L, 2, &ta, &sa, &va), *b = operand(L, 3, &tb, &sb, &vb);
  int nd, nd2;
  int64_t size[MB_MAXDIM], size2[MB_MAXDIM];
  MBL_CHECK(L, mbt_broadcastShape(&nd, size, c, a, "where"));
  mbTensor shape = {0};
  shape.ndim = nd;
  memcpy(shape.size, size, sizeof size);
  MBL_CHECK(L, mbt_broadcastShape(&nd2, size2, &shape, b, "where"));
  MBL_CHECK(L, mbt_where(newempty(L, nd2, size2), c, a, b));
  return 1;
}

/* x:masked_fill_(mask, v) / x:masked_fill(mask, v): v where mask ~= 0 (mask broadcasts) */
static int t_maskedfill(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1), *m = mbL_checktensor(L, 2), tv;
  mbStorage sv;
  float v = (float)luaL_checknumber(L, 3);
  scalar(&tv, &sv, &v);
  int inplace = INPLACE(L);
  mbTensor *out = inplace ? t : newempty(L, t->ndim, t->size);
  MBL_CHECK(L, mbt_where(out, m, &tv, t));
  if (inplace) lua_settop(L, 1);
  return 1;
}

/* Reductions -------------------------------------------------------------------------------
   x:sum() -> number; x:sum(dim [, keepdim]) -> tensor. max/min along a dimension also return
   the 1-based indices; argmax/argmin over everything give the 1-based row-major position. */

/* op along dimension d of t into a new tensor (size 1 at d, or without d) */
static mbTensor *reducedim(lua_State *L, mbTensor *t, int d, mbReduceOp op, int keepdim) {
  int64_t size[MB_MAXDIM];
  memcpy(size, t->size, sizeof size);
  size[d] = 1;
  mbTensor *r = newempty(L, t->ndim, size);
  MBL_CHECK(L, mbt_reduceDim(r, t, d, op));
  if (op == MB_ARGMAX || op == MB_ARGMIN) mbt_binaryScalar(r, r, 1.0f, MB_ADD);
  if (!keepdim) mbt_squeeze(r, r, d);
  return r;
}

/* the all-elements form returns Lua values: integers for arg positions, booleans for
   all/any, numbers (double accumulations) otherwise */
static int t_reduce(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1);
  mbReduceOp op = (mbReduceOp)OPCODE(L);
  if (lua_isnoneornil(L, 2)) {
    double r;
    MBL_CHECK(L, mbt_reduceAll(&r, t, op));
    if (op == MB_ARGMAX || op == MB_ARGMIN) lua_pushinteger(L, (lua_Integer)r + 1);
    else if (op == MB_ALL || op == MB_ANY) lua_pushboolean(L, r != 0);
    else lua_pushnumber(L, r);
    return 1;
  }
  const char *name = mbt_reduceName(op);
  int d = checkdim(L, t, 2, name, 0), keep = lua_toboolean(L, 3);
  reducedim(L, t, d, op, keep);
  if (op == MB_MAX || op == MB_MIN) {
    reducedim(L, t, d, op == MB_MAX ? MB_ARGMAX : MB_ARGMIN, keep);
    return 2;
  }
  return 1;
}

/* Linear algebra --------------------------------------------------------------------------- */

/* the message of a shape mistake in a @ b, as the core words it */
static void checkmm(lua_State *L, const mbTensor *a, const mbTensor *b, const char *fname) {
  char s1[160], s2[160];
  if (a->ndim != 2 || b->ndim != 2)
    mbL_errorf(L, "%s: expected 2-d tensors, got %s @ %s", fname, SHAPE(a, s1), SHAPE(b, s2));
  if (a->size[1] != b->size[0])
    mbL_errorf(L, "%s: size mismatch, %s @ %s", fname, SHAPE(a, s1), SHAPE(b, s2));
}

/* a:matmul(b) -> new [M x N] = a @ b */
/* the output is allocated only after the shapes are checked, so a mistake allocates
   nothing */
static int t_matmul(lua_State *L) {
  mbTensor *a = mbL_checktensor(L, 1), *b = mbL_checktensor(L, 2);
  checkmm(L, a, b, "matmul");
  int64_t size[2] = {a->size[0], b->size[1]};
  MBL_CHECK(L, mbt_matmul(newempty(L, 2, size), a, b));
  return 1;
}

/* T.mm(out, a, b) -> out = a @ b (out preallocated [M x N]) */
static int t_mm(lua_State *L) {
  mbTensor *c = mbL_checktensor(L, 1), *a = mbL_checktensor(L, 2), *b = mbL_checktensor(L, 3);
  checkmm(L, a, b, "mm");
  MBL_CHECK(L, mbt_matmul(c, a, b));
  lua_settop(L, 1);
  return 1;
}

/* c:addmm_(a, b [, beta [, alpha]]) -> c = beta * c + alpha * a @ b (beta, alpha default 1);
   c:addmm(...) the same into a copy of c */
static int t_addmm(lua_State *L) {
  mbTensor *c = mbL_checktensor(L, 1), *a = mbL_checktensor(L, 2), *b = mbL_checktensor(L, 3);
  float beta = (float)luaL_optnumber(L, 4, 1), alpha = (float)luaL_optnumber(L, 5, 1);
  checkmm(L, a, b, "addmm");
  int inplace = INPLACE(L);
  if (!inplace) {
    mbTensor *r = newempty(L, c->ndim, c->size);
    MBL_CHECK(L, mbt_copy(r, c));
    c = r;
  }
  MBL_CHECK(L, mbt_addmm(c, a, b, beta, alpha));
  if (inplace) lua_settop(L, 1);
  return 1;
}

/* Indexing --------------------------------------------------------------------------------- */

/* x:index_select(dim, idx) -> the slices idx (tensor or table of 1-based indices) of dim */
static int t_indexselect(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1);
  int d = checkdim(L, t, 2, "index_select", 0);
  int64_t n;
  int64_t *idx = checkindices(L, 3, t->size[d], &n, "index_select");
  MBL_CHECK(L, mbt_indexSelect(newud(L), t, d, idx, n));
  gchint(L, mbL_checktensor(L, -1));
  return 1;
}

/* x:index_copy_(dim, idx, src): slices idx of x along dim = the slices of src */
static int t_indexcopy(lua_State *L) {
  char s1[160], s2[160];
  mbTensor *t = mbL_checktensor(L, 1);
  int d = checkdim(L, t, 2, "index_copy_", 0);
  mbTensor *src = mbL_checktensor(L, 4);
  int64_t n;
  int64_t *idx = checkindices(L, 3, t->size[d], &n, "index_copy_");
  int ok = src->ndim == t->ndim && src->size[d] == n;
  for (int k = 0; ok && k < t->ndim; k++) ok = k == d || src->size[k] == t->size[k];
  if (!ok)
    return mbL_errorf(L, "index_copy_: source %s does not fit %lld slices of %s along dimension %d",
                      SHAPE(src, s1), (long long)n, SHAPE(t, s2), d + 1);
  MBL_CHECK(L, mbt_indexCopy(t, d, idx, n, src));
  lua_settop(L, 1);
  return 1;
}

/* x:gather(dim, index) -> out[i][j] = x[i][index[i][j]] (dim 2), Torch's gather */
static int t_gather(lua_State *L) {
  char s1[160], s2[160];
  mbTensor *t = mbL_checktensor(L, 1);
  int d = checkdim(L, t, 2, "gather", 0);
  mbTensor *index = mbL_checktensor(L, 3);
  int ok = index->ndim == t->ndim;
  for (int k = 0; ok && k < t->ndim; k++) ok = k == d || index->size[k] <= t->size[k];
  if (!ok)
    return mbL_errorf(L, "gather: index %s does not fit %s along dimension %d", SHAPE(index, s1),
                      SHAPE(t, s2), d + 1);
  int64_t n;
  int64_t *idx = checkindices(L, 3, t->size[d], &n, "gather");
  MBL_CHECK(L, mbt_gather(newempty(L, index->ndim, index->size), t, d, idx));
  return 1;
}

/* x:scatter_(dim, index, src) -> x[i][index[i][j]] = src[i][j] (dim 2); src may be a number */
static int t_scatter(lua_State *L) {
  char s1[160], s2[160], s3[160];
  mbTensor *t = mbL_checktensor(L, 1);
  int d = checkdim(L, t, 2, "scatter_", 0);
  mbTensor *index = mbL_checktensor(L, 3), tmp;
  mbStorage st;
  float v;
  const mbTensor *src = operand(L, 4, &tmp, &st, &v);
  if (src == &tmp) { /* a number: a tensor of index's shape holding it */
    mbTensor *f = newempty(L, index->ndim, index->size);
    mbt_fill(f, v);
    src = f;
  }
  int ok = mbt_sameShape(index, src) && index->ndim == t->ndim;
  for (int k = 0; ok && k < t->ndim; k++) ok = k == d || index->size[k] <= t->size[k];
  if (!ok)
    return mbL_errorf(L, "scatter_: index %s and source %s must have one shape that fits %s",
                      SHAPE(index, s1), SHAPE(src, s2), SHAPE(t, s3));
  int64_t n;
  int64_t *idx = checkindices(L, 3, t->size[d], &n, "scatter_");
  MBL_CHECK(L, mbt_scatter(t, d, idx, src));
  lua_settop(L, 1);
  return 1;
}

/* x:masked_select(mask) -> rows of x where mask ~= 0 (mask [N]), or elements (mask x's shape) */
static int t_maskedselect(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1), *m = mbL_checktensor(L, 2);
  mbTensor *r = newud(L);
  MBL_CHECK(L, mbt_maskedSelect(r, t, m));
  gchint(L, r);
  return 1;
}

/* the tensors of the list at arg into a temporary array kept on the stack (a userdata, so
   an error while filling it leaks nothing); the list table keeps the tensors alive */
static const mbTensor **checklist(lua_State *L, int arg, int *n, const char *fname) {
  luaL_checktype(L, arg, LUA_TTABLE);
  lua_Integer len = luaL_len(L, arg);
  if (len < 1 || len > (1 << 24)) mbL_errorf(L, "%s: expected a nonempty list of tensors", fname);
  const mbTensor **list = lua_newuserdatauv(L, (size_t)len * sizeof *list, 0);
  for (lua_Integer i = 1; i <= len; i++) {
    lua_geti(L, arg, i);
    mbTensor *t = mbL_testtensor(L, -1);
    if (!t || !t->storage)
      mbL_errorf(L, "%s: element %lld of the list is a %s, not a tensor", fname, (long long)i,
                 t ? "closed tensor" : luaL_typename(L, -1));
    list[i - 1] = t;
    lua_pop(L, 1); /* the list table keeps it alive */
  }
  *n = (int)len;
  return list;
}

/* T.cat(list [, dim]) and T.stack(list [, dim]) (OPCODE 1; dim up to ndim + 1), dim
   default 1 */
static int t_join(lua_State *L) {
  int n, stack = OPCODE(L);
  const char *fname = stack ? "stack" : "cat";
  lua_settop(L, 2); /* the list buffer goes above the arguments */
  const mbTensor **list = checklist(L, 1, &n, fname);
  int d = lua_isnoneornil(L, 2) ? 0 : checkdim(L, list[0], 2, fname, stack);
  mbTensor *r = newud(L);
  MBL_CHECK(L, stack ? mbt_stack(r, list, n, d) : mbt_cat(r, list, n, d));
  gchint(L, r);
  return 1;
}

/* tostring(x): mbt_format's text */
static int t_tostring(lua_State *L) {
  mbTensor *t = luaL_checkudata(L, 1, MBL_TENSOR);
  if (!t->storage) {
    lua_pushliteral(L, "mbpo.Tensor (closed)");
    return 1;
  }
  char *s = mbt_format(t);
  if (!s) return mbL_coreerror(L);
  lua_pushstring(L, s);
  mbu_free(s);
  return 1;
}

/* Registration ----------------------------------------------------------------------------- */

static const luaL_Reg funcs[] = {
  {"arange", t_arange}, {"tensor", t_tensor}, {"new", t_tensor},
  {"manual_seed", t_manualseed}, {"default_generator", t_defaultrng},
  {"is_tensor", t_istensor}, {"where", t_where}, {"mm", t_mm}, {NULL, NULL}};

static const luaL_Reg meth[] = {
  {"dim", t_dim}, {"numel", t_numel},
  {"is_contiguous", t_iscontiguous}, {"get", t_get}, {"set", t_set}, {"item", t_item},
  {"to_table", t_totable}, {"narrow", t_narrow}, {"select", t_select},
  {"transpose", t_transpose}, {"t", t_t}, {"view", t_view}, {"reshape", t_reshape},
  {"contiguous", t_contiguous}, {"squeeze", t_squeeze}, {"unsqueeze", t_unsqueeze},
  {"clone", t_clone}, {"copy_", t_copy_}, {"fill_", t_fill_}, {"zero_", t_zero_},
  {"matmul", t_matmul},
  {"index_select", t_indexselect}, {"index_copy_", t_indexcopy}, {"gather", t_gather},
  {"scatter_", t_scatter}, {"masked_select", t_maskedselect}, {"close", t_gc},
  {NULL, NULL}};

static const luaL_Reg metameth[] = {
  {"__index", NULL}, {"__gc", t_gc}, {"__close", t_gc}, {"__tostring", t_tostring},
  {"__len", t_len}, {NULL, NULL}};

/* operations registered as closures over their core code (see t_unary, t_binary) */
static const struct { const char *name; int op; } unops[] = {
  {"neg", MB_NEG}, {"exp", MB_EXP}, {"log", MB_LOG}, {"sqrt", MB_SQRT}, {"abs", MB_ABS},
  {"tanh", MB_TANH}, {"sigmoid", MB_SIGMOID}, {"relu", MB_RELU}, {"softplus", MB_SOFTPLUS},
  {"isfinite", MB_ISFINITE}, {"square", MB_SQUARE}};
static const struct { const char *name; int op; } binops[] = {
  {"add", MB_ADD}, {"sub", MB_SUB}, {"mul", MB_MUL}, {"div", MB_DIV}, {"pow", MB_POW},
  {"minimum", MB_MINIMUM}, {"maximum", MB_MAXIMUM}, {"lt", MB_LT}, {"le", MB_LE},
  {"gt", MB_GT}, {"ge", MB_GE}, {"eq", MB_EQ}, {"ne", MB_NE}};
static const struct { const char *name; int op; } redops[] = {
  {"sum", MB_SUM}, {"mean", MB_MEAN}, {"max", MB_MAX}, {"min", MB_MIN}, {"argmax", MB_ARGMAX},
  {"argmin", MB_ARGMIN}, {"std", MB_STD}, {"var", MB_VAR}, {"all", MB_ALL}, {"any", MB_ANY}};
static const struct { const char *name; int op; } arith[] = {
  {"__add", MB_ADD}, {"__sub", MB_SUB}, {"__mul", MB_MUL}, {"__div", MB_DIV}};

/* sets t[name] and t[name .. "_"] (in place) to closures of f over op, on the table on top */
static void setpair(lua_State *L, const char *name, lua_CFunction f, int op, int inplace_too) {
  for (int inplace = 0; inplace <= inplace_too; inplace++) {
    lua_pushinteger(L, op);
    lua_pushboolean(L, inplace);
    lua_pushcclosure(L, f, 2);
    if (inplace) {
      lua_pushstring(L, name);
      lua_pushliteral(L, "_");
      lua_concat(L, 2);
      lua_insert(L, -2);
      lua_settable(L, -3);
    } else {
      lua_setfield(L, -2, name);
    }
  }
}

/* A tensor indexed by a number (t[1]) would read nil from the methods table and go on silently:
   the methods table's own __index turns that into an error naming the accessors. */
static int t_badindex(lua_State *L) {
  if (lua_type(L, 2) == LUA_TNUMBER)
    return luaL_error(L, "tensor[%s]: a tensor is not indexed with []; use t:get(i [, j]), "
                      "t:set(i, [j,] v) or t:to_table()", lua_tostring(L, 2));
  return 0;
}

/* Builds the metatable (metamethods, __index = the methods table), the methods (the arrays
   above plus the closures of each operation, plain and `_`), and the module table (funcs
   plus every method), and creates the default generator once per Lua state. */
int luaopen_mbpo_tensor(lua_State *L) {
  /* the default generator needs the mbpo.Rng metatable */
  luaL_requiref(L, "mbpo.rng", luaopen_mbpo_rng, 0);
  lua_pop(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_RNG);
  if (!mbL_testrng(L, -1)) {
    mbRng *g = lua_newuserdatauv(L, sizeof(mbRng), 0);
    mbr_seed(g, 0, 0);
    luaL_setmetatable(L, MBL_RNG);
    lua_setfield(L, LUA_REGISTRYINDEX, DEFAULT_RNG);
  }
  lua_pop(L, 1);

  luaL_newmetatable(L, MBL_TENSOR);
  luaL_setfuncs(L, metameth, 0);
  for (size_t i = 0; i < sizeof arith / sizeof arith[0]; i++)
    setpair(L, arith[i].name, t_arith, arith[i].op, 0);
  setpair(L, "__unm", t_unary, MB_NEG, 0);
  /* methods */
  luaL_newlibtable(L, meth);
  luaL_setfuncs(L, meth, 0);
  for (size_t i = 0; i < sizeof unops / sizeof unops[0]; i++)
    setpair(L, unops[i].name, t_unary, unops[i].op, 1);
  for (size_t i = 0; i < sizeof binops / sizeof binops[0]; i++)
    setpair(L, binops[i].name, t_binary, binops[i].op, 1);
  for (size_t i = 0; i < sizeof redops / sizeof redops[0]; i++)
    setpair(L, redops[i].name, t_reduce, redops[i].op, 0);
  setpair(L, "clamp", t_clamp, 0, 1);
  setpair(L, "masked_fill", t_maskedfill, 0, 1);
  setpair(L, "addmm", t_addmm, 0, 1);
  for (int k = 0; k < 2; k++) {
    setpair(L, k ? "stride" : "size", t_geometry, k, 0);
    setpair(L, k ? "normal_" : "uniform_", t_random_, k, 0);
  }
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, t_badindex);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__index");
  /* the module: its functions plus every method as a function (T.exp(x) = x:exp()) */
  luaL_newlib(L, funcs);
  for (int k = 0; k < C_COUNT; k++) setpair(L, CREATORS[k], t_create, k, 0);
  for (int k = 0; k < 2; k++) setpair(L, k ? "stack" : "cat", t_join, k, 0);
  lua_pushnil(L);
  while (lua_next(L, -3)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
  lua_pushliteral(L, MB_VERSION);
  lua_setfield(L, -2, "_VERSION");
  lua_remove(L, -2); /* methods */
  lua_remove(L, -2); /* metatable */
  return 1;
}
