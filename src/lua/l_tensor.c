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
#include <stdio.h>
#include <string.h>

#include "lua/l_mbpo.h"

/* registry key of the module's default generator (an mbpo.Rng userdata) */
#define DEFAULT_RNG "mbpo.tensor.rng"

/* Making tensor userdata (mbL_newtensor, mbL_pushview: l_mbpo.h) ----------------------------- */

/* a userdata in a safe (empty) state before it acquires memory */
#define newud(L) ((mbTensor *)mbL_newobject(L, MBL_TENSOR, sizeof(mbTensor), 0))

/* tells the collector about storage it cannot see (as if that many bytes were allocated
   by Lua), so loops that make large temporaries do not pile them up */
static void gchint(lua_State *L, const mbTensor *t) {
  mbL_extmem(L, (size_t)mbt_numel(t) * sizeof(float));
}

/* a new tensor of the given shape on the stack: zero-filled, or with the values left
   uninitialised (outputs written in full) */
static mbTensor *newtensor(lua_State *L, int ndim, const int64_t *size, int zero) {
  mbTensor *t = newud(L);
  MBL_CHECK(L, zero ? mbt_init(t, ndim, size) : mbt_empty(t, ndim, size));
  gchint(L, t);
  return t;
}
#define newempty(L, ndim, size) newtensor(L, ndim, size, 0)

mbTensor *mbL_newtensor(lua_State *L, int ndim, const int64_t *size) {
  return newtensor(L, ndim, size, 1);
}

mbTensor *mbL_newcopy(lua_State *L, const float *src, int ndim, const int64_t *size) {
  mbTensor *t = newempty(L, ndim, size);
  int64_t n = mbt_numel(t);
  if (n) memcpy(mbt_data(t), src, sizeof(float) * (size_t)n);
  return t;
}

mbTensor *mbL_pushview(lua_State *L, const mbTensor *src) {
  mbTensor *t = newud(L);
  mbt_view(t, src);
  return t;
}

/* Local helpers -------------------------------------------------------------------------- */

/* Every function is registered as a closure (setpair): upvalue 1 the core operation or the
   variant, upvalue 2 true for the `_` (in place) form. */
#define OPCODE(L) ((int)lua_tointeger(L, lua_upvalueindex(1)))
#define INPLACE(L) lua_toboolean(L, lua_upvalueindex(2))

/* t's shape as "[2 x 3]" for a message, in a buffer that lives to the end of the block */
#define SHAPE(t) mbt_shapeStr((t), (char[160]){0}, 160)

/* the output of an operation on t that has a `_` form: t itself (pushed again) in place,
   else a new tensor of t's shape; either way the result is on top of the stack */
static mbTensor *output(lua_State *L, mbTensor *t) {
  if (!INPLACE(L)) return newempty(L, t->ndim, t->size);
  lua_pushvalue(L, 1);
  return t;
}

/* a 1-based (or negative, from the end) dimension at arg -> 0-based; `extra` admits ndim + 1
   (unsqueeze, stack) */
static int checkdim(lua_State *L, const mbTensor *t, int arg, const char *fname, int extra) {
  int d;
  MBL_CHECK(L, mbt_argDim(&d, t, luaL_checkinteger(L, arg), 1, extra, fname));
  return d;
}

/* a 1-based index at arg into dimension d of t -> 0-based */
static int64_t checkindex(lua_State *L, const mbTensor *t, int d, int arg, const char *fname) {
  int64_t i;
  MBL_CHECK(L, mbt_argIndex(&i, t, d, luaL_checkinteger(L, arg), 1, fname));
  return i;
}

/* sizes at arguments first..last: integers, or one table of integers at first; -1 passes
   only when allowneg (view, reshape) */
static int getsizes(lua_State *L, int first, int last, int64_t *size, const char *fname,
                    int allowneg) {
  int tab = first <= last && lua_istable(L, first);
  lua_Integer n = tab ? luaL_len(L, first) : last - first + 1;
  if (n < 0) n = 0;
  if (n > MB_MAXDIM)
    mbL_errorf(L, "%s: %lld dimensions (at most %d)", fname, (long long)n, MB_MAXDIM);
  for (int i = 0; i < (int)n; i++) {
    int isint = 1;
    if (tab) lua_geti(L, first, i + 1);
    size[i] = tab ? lua_tointegerx(L, -1, &isint) : luaL_checkinteger(L, first + i);
    if (!isint)
      mbL_errorf(L, "%s: size %d is not an integer (%s)", fname, i + 1, luaL_typename(L, -1));
    if (tab) lua_pop(L, 1);
  }
  for (int i = 0; i < (int)n; i++)
    if (size[i] < 0 && !(allowneg && size[i] == -1))
      mbL_errorf(L, "%s: negative size %lld", fname, (long long)size[i]);
  return (int)n;
}

/* operand at arg: a tensor, or a number placed in the caller's 0-d tensor tmp over the
   stack scalar v (no allocation) */
static const mbTensor *operand(lua_State *L, int arg, mbTensor *tmp, mbStorage *st, float *v) {
  if (mbL_testtensor(L, arg)) return mbL_checktensor(L, arg);
  if (lua_type(L, arg) != LUA_TNUMBER) luaL_typeerror(L, arg, "number or mbpo.Tensor");
  *v = (float)lua_tonumber(L, arg);
  memset(tmp, 0, sizeof *tmp);
  *st = (mbStorage){v, 1, 1};
  tmp->storage = st;
  return tmp;
}

/* an optional trailing generator: the one at *top (which is then dropped from the arguments)
   or the module's default one */
static mbRng *trailingrng(lua_State *L, int *top) {
  mbRng *g = *top >= 1 ? mbL_testrng(L, *top) : NULL;
  if (g) { (*top)--; return g; }
  lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_RNG);
  g = mbL_testrng(L, -1);
  lua_pop(L, 1); /* the registry keeps it alive */
  if (!g) luaL_error(L, "mbpo.tensor: the default generator is missing");
  return g;
}

/* integer indices (1-based in Lua, 0-based out) from a tensor or a table of integers at arg,
   each in [1, limit]; returns a temporary buffer kept alive on the stack, count in *n */
static int64_t *checkindices(lua_State *L, int arg, int64_t limit, int64_t *n, const char *fname) {
  mbTensor *t = mbL_testtensor(L, arg) ? mbL_checktensor(L, arg) : NULL;
  if (!t && !lua_istable(L, arg)) luaL_typeerror(L, arg, "mbpo.Tensor or table of indices");
  *n = t ? mbt_numel(t) : luaL_len(L, arg);
  int64_t *idx = lua_newuserdatauv(L, (size_t)(*n ? *n : 1) * sizeof(int64_t), 0);
  if (t) MBL_CHECK(L, mbt_toIndex(idx, t, 1, limit, fname));
  for (int64_t i = 0; !t && i < *n; i++) {
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
  mbt_release(luaL_checkudata(L, 1, MBL_TENSOR));
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
  if (kind == C_FULL) v = (float)luaL_checknumber(L, top > 0 ? top-- : 1);
  int64_t size[MB_MAXDIM];
  int n = getsizes(L, kind == C_RANDINT ? 3 : 1, top, size, CREATORS[kind], 0);
  lua_Integer lo = kind == C_RANDINT ? luaL_checkinteger(L, 1) : 0;
  lua_Integer hi = kind == C_RANDINT ? luaL_checkinteger(L, 2) : 0;
  mbTensor *t = kind == C_ZEROS ? mbL_newtensor(L, n, size) : newempty(L, n, size);
  if (kind == C_RANDINT) MBL_CHECK(L, mbt_randint(t, g, lo, hi));
  else if (kind == C_RANDN) MBL_CHECK(L, mbt_normal(t, g, 0, 1));
  else if (kind == C_RAND) MBL_CHECK(L, mbt_uniform(t, g, 0, 1));
  else if (kind == C_ONES || kind == C_FULL) mbt_fill(t, v);
  return 1;
}

/* T.arange(stop) or T.arange(start, stop [, step]): start, start + step, ... before stop */
static int t_arange(lua_State *L) {
  int one = lua_isnoneornil(L, 2);
  double start = one ? 0 : luaL_checknumber(L, 1), stop = luaL_checknumber(L, one ? 1 : 2);
  double step = one ? 1 : luaL_optnumber(L, 3, 1);
  int64_t n;
  MBL_CHECK(L, mbt_arangeSize(&n, start, stop, step));
  MBL_CHECK(L, mbt_arange(newempty(L, 1, &n), start, step));
  return 1;
}

/* T.tensor(x) / T.new(x): x a nested table of numbers, a number (0-d) or a tensor (copy) */
static int t_tensor(lua_State *L) {
  if (lua_type(L, 1) == LUA_TNUMBER) {
    mbt_data(newempty(L, 0, NULL))[0] = (float)lua_tonumber(L, 1);
    return 1;
  }
  if (mbL_testtensor(L, 1)) {
    mbTensor *src = mbL_checktensor(L, 1);
    MBL_CHECK(L, mbt_copy(newempty(L, src->ndim, src->size), src));
    return 1;
  }
  if (!lua_istable(L, 1)) return luaL_typeerror(L, 1, "table, number or mbpo.Tensor");
  mbL_tabletensor(L, 1, "tensor");
  return 1;
}

/* the nested table is read by lua/mbpo/nested.lua (its values in row-major order and its
   shape); its message is raised here, at the position of this binding's caller */
mbTensor *mbL_tabletensor(lua_State *L, int idx, const char *who) {
  idx = lua_absindex(L, idx);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "mbpo.nested");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "flatten");
  lua_pushvalue(L, idx);
  lua_pushstring(L, who);
  lua_pushinteger(L, MB_MAXDIM);
  if (lua_pcall(L, 3, 2, 0) != LUA_OK) mbL_errorf(L, "%s", lua_tostring(L, -1));
  int64_t size[MB_MAXDIM];
  int top = lua_gettop(L), n = (int)lua_rawlen(L, top);
  for (int d = 0; d < n; d++) {
    lua_rawgeti(L, top, d + 1);
    size[d] = lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  mbTensor *t = newempty(L, n, size);
  float *data = mbt_data(t);
  for (int64_t i = 0; i < mbt_numel(t); i++) {
    lua_rawgeti(L, top - 1, (lua_Integer)i + 1);
    data[i] = (float)lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  lua_replace(L, top - 2);  /* the tensor where the module was; the two lists go */
  lua_settop(L, top - 2);
  return t;
}

/* T.manual_seed(n) reseeds the default generator; T.default_generator() -> the mbpo.Rng
   used when none is given (for checkpoints); T.is_tensor(x): one function over OPCODE */
static int t_module(lua_State *L) {
  int none = 0, op = OPCODE(L);
  if (op == 2) lua_pushboolean(L, mbL_testtensor(L, 1) != NULL);
  else if (op == 1) lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_RNG);
  else {
    lua_Integer seed = luaL_checkinteger(L, 1);
    mbg_seed(trailingrng(L, &none), (uint64_t)seed, 0);
  }
  return op != 0;
}

/* Geometry and elements -------------------------------------------------------------------- */

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

/* size, stride (in elements), dim, numel, is_contiguous, # (= size(1)), item, to_table, get,
   set, clone (a contiguous copy), copy_ (src broadcasts), fill_, zero_, uniform_ and normal_:
   one function over OPCODE; set and the `_` forms return x */
enum { I_SIZE, I_STRIDE, I_DIM, I_NUMEL, I_CONTIGUOUS, I_LEN, I_ITEM, I_TOTABLE, I_GET, I_SET,
       I_CLONE, I_COPY, I_FILL, I_ZERO, I_UNIFORM, I_NORMAL };
static int t_info(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1);
  int op = OPCODE(L), top = lua_gettop(L), count = top - 1 - (op == I_SET);
  const char *fname = op == I_SET ? "set" : "get";
  int64_t idx[MB_MAXDIM];
  float v = 0, a, b;
  mbRng *g;
  switch (op) {
  case I_SIZE: case I_STRIDE:
    if (!lua_isnoneornil(L, 2)) {
      int d = checkdim(L, t, 2, op == I_STRIDE ? "stride" : "size", 0);
      lua_pushinteger(L, op == I_STRIDE ? t->stride[d] : t->size[d]);
      return 1;
    }
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
      lua_pushinteger(L, op == I_STRIDE ? t->stride[i] : t->size[i]);
      lua_rawseti(L, -2, i + 1);
    }
    return 1;
  case I_DIM: lua_pushinteger(L, t->ndim); return 1;
  case I_NUMEL: lua_pushinteger(L, mbt_numel(t)); return 1;
  case I_CONTIGUOUS: lua_pushboolean(L, mbt_isContiguous(t)); return 1;
  case I_LEN:
    if (t->ndim == 0) return mbL_errorf(L, "#: a 0-d tensor has no length");
    lua_pushinteger(L, t->size[0]);
    return 1;
  case I_ITEM:
    if (mbt_numel(t) != 1)
      return mbL_errorf(L, "item: %s tensor does not have one element", SHAPE(t));
    lua_pushnumber(L, mbt_data(t)[0]);
    return 1;
  case I_TOTABLE:
    if (t->ndim == 0) lua_pushnumber(L, mbt_data(t)[0]);
    else totable(L, t, 0, t->offset);
    return 1;
  case I_GET: case I_SET:
    if (count < 0) return mbL_errorf(L, "set: expected indices and a value");
    if (op == I_SET) v = (float)luaL_checknumber(L, count + 2);
    if (count != t->ndim)
      return mbL_errorf(L, "%s: %d indices for a %d-d tensor %s", fname, count, t->ndim,
                        SHAPE(t));
    for (int d = 0; d < count; d++) idx[d] = checkindex(L, t, d, d + 2, fname);
    if (op == I_GET) {
      lua_pushnumber(L, *mbt_ptr(t, idx));
      return 1;
    }
    *mbt_ptr(t, idx) = v;
    break;
  case I_CLONE: MBL_CHECK(L, mbt_copy(newempty(L, t->ndim, t->size), t)); return 1;
  case I_COPY: MBL_CHECK(L, mbt_copy(t, mbL_checktensor(L, 2))); break;
  case I_FILL: mbt_fill(t, (float)luaL_checknumber(L, 2)); break;
  case I_ZERO: mbt_fill(t, 0.0f); break;
  case I_UNIFORM: case I_NORMAL: /* ([lo, hi] or [mean, std]) [, g] */
    g = trailingrng(L, &top);
    a = top >= 2 ? (float)luaL_checknumber(L, 2) : 0;
    b = top >= 3 ? (float)luaL_checknumber(L, 3) : 1;
    MBL_CHECK(L, op == I_NORMAL ? mbt_normal(t, g, a, b) : mbt_uniform(t, g, a, b));
  }
  lua_settop(L, 1);
  return 1;
}

/* Views ------------------------------------------------------------------------------------
   One function over OPCODE. narrow keeps elements start..start+len-1, select drops the
   dimension, view needs a contiguous x (one size may be -1); reshape and contiguous copy a
   non-contiguous x, the others always share its storage. */
enum { V_NARROW, V_SELECT, V_TRANSPOSE, V_T, V_VIEW, V_RESHAPE, V_CONTIGUOUS, V_SQUEEZE,
       V_UNSQUEEZE, V_COUNT };
static const char *const VIEWS[V_COUNT] = {"narrow", "select", "transpose", "t", "view",
                                           "reshape", "contiguous", "squeeze", "unsqueeze"};
static int t_view(lua_State *L) {
  int op = OPCODE(L), d = 0, n;
  const char *fname = VIEWS[op];
  mbTensor *t = mbL_checktensor(L, 1), *r;
  if (op <= V_TRANSPOSE || op == V_UNSQUEEZE || (op == V_SQUEEZE && !lua_isnoneornil(L, 2)))
    d = checkdim(L, t, 2, fname, op == V_UNSQUEEZE);
  int64_t size[MB_MAXDIM], first;
  switch (op) {
  case V_NARROW: {
    lua_Integer start = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
    MBL_CHECK(L, mbt_argRange(&first, t, d, start, len, 1, fname));
    MBL_CHECK(L, mbt_narrow(newud(L), t, d, first, len));
    break;
  }
  case V_SELECT: MBL_CHECK(L, mbt_select(newud(L), t, d, checkindex(L, t, d, 3, fname))); break;
  case V_TRANSPOSE: MBL_CHECK(L, mbt_transpose(newud(L), t, d, checkdim(L, t, 3, fname, 0)));
    break;
  case V_T:
    if (t->ndim != 2) return mbL_errorf(L, "t: expected a 2-d tensor, got %s", SHAPE(t));
    MBL_CHECK(L, mbt_transpose(newud(L), t, 0, 1));
    break;
  case V_VIEW: case V_RESHAPE:
    n = getsizes(L, 2, lua_gettop(L), size, fname, 1);
    r = newud(L);
    MBL_CHECK(L, op == V_VIEW ? mbt_viewShape(r, t, n, size) : mbt_reshape(r, t, n, size));
    if (op == V_RESHAPE) gchint(L, r);
    break;
  case V_CONTIGUOUS:
    if (mbt_isContiguous(t)) lua_settop(L, 1);
    else { MBL_CHECK(L, mbt_contiguous(r = newud(L), t)); gchint(L, r); }
    break;
  case V_SQUEEZE: MBL_CHECK(L, mbt_squeeze(newud(L), t, lua_isnoneornil(L, 2) ? -1 : d)); break;
  case V_UNSQUEEZE: MBL_CHECK(L, mbt_unsqueeze(newud(L), t, d));
  }
  return 1;
}

/* Elementwise ------------------------------------------------------------------------------ */

/* x:exp() / x:exp_() and the other operations of one tensor */
static int t_unary(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1);
  MBL_CHECK(L, mbt_unary(output(L, t), t, (mbUnaryOp)OPCODE(L)));
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
  if (!INPLACE(L)) return binarynew(L, t, b, op);
  MBL_CHECK(L, mbt_binary(t, t, b, op));
  lua_settop(L, 1);
  return 1;
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
  MBL_CHECK(L, mbt_clamp(output(L, t), t, lo, hi));
  return 1;
}

/* T.where(cond, a, b): cond ~= 0 ? a : b, a and b tensors or numbers, all broadcast */
static int t_where(lua_State *L) {
  mbTensor *c = mbL_checktensor(L, 1), ta, tb;
  mbStorage sa, sb;
  float va, vb;
  const mbTensor *a = operand(L, 2, &ta, &sa, &va), *b = operand(L, 3, &tb, &sb, &vb);
  int nd;
  int64_t size[MB_MAXDIM];
  MBL_CHECK(L, mbt_whereShape(&nd, size, c, a, b));
  MBL_CHECK(L, mbt_where(newempty(L, nd, size), c, a, b));
  return 1;
}

/* x:masked_fill_(mask, v) / x:masked_fill(mask, v): v where mask ~= 0 (mask broadcasts) */
static int t_maskedfill(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1), *m = mbL_checktensor(L, 2);
  float v = (float)luaL_checknumber(L, 3);
  MBL_CHECK(L, mbt_maskedFill(output(L, t), t, m, v));
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
  int d = checkdim(L, t, 2, mbt_reduceName(op), 0), keep = lua_toboolean(L, 3);
  int two = op == MB_MAX || op == MB_MIN;  /* max and min return the indices too */
  reducedim(L, t, d, op, keep);
  if (two) reducedim(L, t, d, op == MB_MAX ? MB_ARGMAX : MB_ARGMIN, keep);
  return 1 + two;
}

/* Linear algebra (the shapes are checked before anything is allocated) --------------------- */

/* a:matmul(b) -> new [M x N] = a @ b; T.mm(out, a, b) -> out = a @ b, out [M x N] (OPCODE 1) */
static int t_matmul(lua_State *L) {
  int mm = OPCODE(L);
  mbTensor *c = mm ? mbL_checktensor(L, 1) : NULL;
  mbTensor *a = mbL_checktensor(L, 1 + mm), *b = mbL_checktensor(L, 2 + mm);
  int64_t size[2];
  MBL_CHECK(L, mbt_mmShape(size, a, b, mm ? "mm" : "matmul"));
  MBL_CHECK(L, mbt_matmul(mm ? c : newempty(L, 2, size), a, b));
  if (mm) lua_settop(L, 1);
  return 1;
}

/* c:addmm_(a, b [, beta [, alpha]]) -> c = beta * c + alpha * a @ b (beta, alpha default 1);
   c:addmm(...) the same into a copy of c */
static int t_addmm(lua_State *L) {
  mbTensor *c = mbL_checktensor(L, 1), *a = mbL_checktensor(L, 2), *b = mbL_checktensor(L, 3);
  float beta = (float)luaL_optnumber(L, 4, 1), alpha = (float)luaL_optnumber(L, 5, 1);
  int64_t size[2];
  MBL_CHECK(L, mbt_mmShape(size, a, b, "addmm"));
  mbTensor *r = output(L, c);
  if (r != c) MBL_CHECK(L, mbt_copy(r, c));
  MBL_CHECK(L, mbt_addmm(r, a, b, beta, alpha));
  return 1;
}

/* Indexing --------------------------------------------------------------------------------- */

/* x:index_select(dim, idx), x:index_copy_(dim, idx, src), x:gather(dim, index) and
   x:scatter_(dim, index, src | v) (see the top of the file): one function over OPCODE */
enum { X_SELECT, X_COPY, X_GATHER, X_SCATTER };
static int t_index(lua_State *L) {
  static const char *const names[] = {"index_select", "index_copy_", "gather", "scatter_"};
  int op = OPCODE(L);
  const char *fname = names[op];
  mbTensor *t = mbL_checktensor(L, 1), tmp, *r;
  int d = checkdim(L, t, 2, fname, 0);
  mbTensor *index = op >= X_GATHER ? mbL_checktensor(L, 3) : t; /* t: not read */
  mbStorage st;
  float v;
  const mbTensor *src = op == X_COPY ? mbL_checktensor(L, 4)
                        : op == X_SCATTER ? operand(L, 4, &tmp, &st, &v) : NULL;
  if (src == &tmp) { /* a number: a tensor of index's shape holding it */
    mbt_fill(r = newempty(L, index->ndim, index->size), v);
    src = r;
  }
  if (op >= X_GATHER) MBL_CHECK(L, mbt_argGather(t, d, index, src, 1, fname));
  int64_t n, *idx = checkindices(L, 3, t->size[d], &n, fname);
  switch (op) {
  case X_SELECT:
    MBL_CHECK(L, mbt_indexSelect(r = newud(L), t, d, idx, n));
    gchint(L, r);
    return 1;
  case X_COPY:
    MBL_CHECK(L, mbt_argIndexCopy(t, d, n, src, 1, fname));
    MBL_CHECK(L, mbt_indexCopy(t, d, idx, n, src));
    break;
  case X_GATHER:
    MBL_CHECK(L, mbt_gather(newempty(L, index->ndim, index->size), t, d, idx));
    return 1;
  case X_SCATTER: MBL_CHECK(L, mbt_scatter(t, d, idx, src));
  }
  lua_settop(L, 1);
  return 1;
}

/* x:masked_select(mask) -> rows of x where mask ~= 0 (mask [N]), or elements (mask x's shape) */
static int t_maskedselect(lua_State *L) {
  mbTensor *t = mbL_checktensor(L, 1), *m = mbL_checktensor(L, 2), *r = newud(L);
  MBL_CHECK(L, mbt_maskedSelect(r, t, m));
  gchint(L, r);
  return 1;
}

/* T.cat(list [, dim]) and T.stack(list [, dim]) (OPCODE 1; dim up to ndim + 1), dim
   default 1. The list's tensors go into a temporary array kept on the stack (a userdata, so
   an error while filling it leaks nothing); the list table keeps the tensors alive. */
static int t_join(lua_State *L) {
  int stack = OPCODE(L);
  const char *fname = stack ? "stack" : "cat";
  lua_settop(L, 2); /* the array goes above the arguments */
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = luaL_len(L, 1);
  if (n < 1 || n > (1 << 24)) mbL_errorf(L, "%s: expected a nonempty list of tensors", fname);
  const mbTensor **list = lua_newuserdatauv(L, (size_t)n * sizeof *list, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, 1, i);
    mbTensor *t = mbL_testtensor(L, -1);
    if (!t || !t->storage)
      mbL_errorf(L, "%s: element %lld of the list is a %s, not a tensor", fname, (long long)i,
                 t ? "closed tensor" : luaL_typename(L, -1));
    list[i - 1] = t;
    lua_pop(L, 1);
  }
  int d = lua_isnoneornil(L, 2) ? 0 : checkdim(L, list[0], 2, fname, stack);
  mbTensor *r = newud(L);
  MBL_CHECK(L, stack ? mbt_stack(r, list, (int)n, d) : mbt_cat(r, list, (int)n, d));
  gchint(L, r);
  return 1;
}

/* tostring(x): mbt_format's text */
static int t_tostring(lua_State *L) {
  mbTensor *t = luaL_checkudata(L, 1, MBL_TENSOR);
  char *s = t->storage ? mbt_format(t) : NULL;
  if (t->storage && !s) return mbL_coreerror(L);
  lua_pushstring(L, s ? s : "mbpo.Tensor (closed)");
  mbu_free(s);
  return 1;
}

/* Registration -----------------------------------------------------------------------------
   Each entry is a closure over an OPCODE (setpair) that goes to the methods (M; the module
   gets every method too, as the same closure: T.exp(x) = x:exp()), to the methods with its
   `_` form (P), to the module only (F) or to the metatable (X). The elementwise operations,
   reductions, views and creators are added by loops over their names. */
enum { M, P, F, X };
static const struct { const char *name; lua_CFunction f; int op, to; } reg[] = {
  {"size", t_info, I_SIZE, M}, {"stride", t_info, I_STRIDE, M}, {"dim", t_info, I_DIM, M},
  {"numel", t_info, I_NUMEL, M}, {"is_contiguous", t_info, I_CONTIGUOUS, M},
  {"item", t_info, I_ITEM, M}, {"to_table", t_info, I_TOTABLE, M}, {"__len", t_info, I_LEN, X},
  {"get", t_info, I_GET, M}, {"set", t_info, I_SET, M}, {"clone", t_info, I_CLONE, M},
  {"copy_", t_info, I_COPY, M}, {"fill_", t_info, I_FILL, M}, {"zero_", t_info, I_ZERO, M},
  {"uniform_", t_info, I_UNIFORM, M}, {"normal_", t_info, I_NORMAL, M}, {"clamp", t_clamp, 0, P},
  {"masked_fill", t_maskedfill, 0, P}, {"matmul", t_matmul, 0, M}, {"mm", t_matmul, 1, F},
  {"addmm", t_addmm, 0, P}, {"index_select", t_index, X_SELECT, M},
  {"index_copy_", t_index, X_COPY, M}, {"gather", t_index, X_GATHER, M},
  {"scatter_", t_index, X_SCATTER, M}, {"masked_select", t_maskedselect, 0, M},
  {"close", t_gc, 0, M}, {"__tostring", t_tostring, 0, X}, {"__unm", t_unary, MB_NEG, X},
  {"arange", t_arange, 0, F}, {"tensor", t_tensor, 0, F}, {"new", t_tensor, 0, F},
  {"manual_seed", t_module, 0, F}, {"default_generator", t_module, 1, F},
  {"where", t_where, 0, F}, {"cat", t_join, 0, F}, {"stack", t_join, 1, F},
  {"is_tensor", t_module, 2, F}, {"__add", t_arith, MB_ADD, X}, {"__sub", t_arith, MB_SUB, X},
  {"__mul", t_arith, MB_MUL, X}, {"__div", t_arith, MB_DIV, X}};

/* sets t[name] (and t[name .. "_"], in place, when pair) of the table at tab, and of the one
   at also unless that is 0, to closures of f over op */
static void setpair(lua_State *L, int tab, int also, const char *name, lua_CFunction f, int op,
                    int pair) {
  char buf[40];
  for (int inplace = 0; inplace <= pair; inplace++) {
    lua_pushinteger(L, op);
    lua_pushboolean(L, inplace);
    lua_pushcclosure(L, f, 2);
    snprintf(buf, sizeof buf, inplace ? "%s_" : "%s", name);
    if (also) { lua_pushvalue(L, -1); lua_setfield(L, also, buf); }
    lua_setfield(L, tab, buf);
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

/* Builds the metatable (its __index the methods table), the methods and the module table
   (its functions plus every method), and creates the default generator once per Lua state. */
int luaopen_mbpo_tensor(lua_State *L) {
  /* the default generator needs the mbpo.Rng metatable */
  luaL_requiref(L, "mbpo.rng", luaopen_mbpo_rng, 0);
  lua_pop(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_RNG);
  if (!mbL_testrng(L, -1)) {
    mbg_seed(mbL_newobject(L, MBL_RNG, sizeof(mbRng), 0), 0, 0);
    lua_setfield(L, LUA_REGISTRYINDEX, DEFAULT_RNG);
  }
  lua_pop(L, 1);
  luaL_checkversion(L);
  luaL_newmetatable(L, MBL_TENSOR);
  int mt = lua_gettop(L), meth = mt + 1, mod = mt + 2, tab[] = {meth, meth, mod, mt};
  lua_newtable(L);
  lua_newtable(L);
  for (size_t i = 0; i < sizeof reg / sizeof reg[0]; i++)
    setpair(L, tab[reg[i].to], reg[i].to <= P ? mod : 0, reg[i].name, reg[i].f, reg[i].op,
            reg[i].to == P);
  for (int op = 0; op < MB_NUNARY; op++) setpair(L, meth, mod, mbt_unaryName(op), t_unary, op, 1);
  for (int op = 0; op <= MB_NE; op++) setpair(L, meth, mod, mbt_binaryName(op), t_binary, op, 1);
  for (int op = 0; op < MB_NREDUCE; op++)
    setpair(L, meth, mod, mbt_reduceName(op), t_reduce, op, 0);
  for (int k = 0; k < V_COUNT; k++) setpair(L, meth, mod, VIEWS[k], t_view, k, 0);
  for (int k = 0; k < C_COUNT; k++) setpair(L, mod, 0, CREATORS[k], t_create, k, 0);
  /* the methods table reads t[1] as an error */
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, t_badindex);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, meth);
  lua_pushvalue(L, meth);
  lua_setfield(L, mt, "__index");
  lua_getfield(L, meth, "close"); /* __gc and __close share one function: close */
  lua_pushvalue(L, -1);
  lua_setfield(L, mt, "__gc");
  lua_setfield(L, mt, "__close");
  lua_pushliteral(L, MB_VERSION);
  lua_setfield(L, mod, "_VERSION");
  return 1;
}
