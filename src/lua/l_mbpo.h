/* Shared helpers of the Lua bindings (src/lua/l_*.c): the only C that includes lua.h (with
   src/bench/l_bench.c, the benchmarks' module). Tensors and generators cross the boundary as
   userdata; these functions check them and build them, and turn core errors into Lua
   errors. The generic ones live in l_aux.c (lauxlib's twin): a binding uses them rather than
   writing its own check, list or error helper. */
#ifndef MBPO_L_MBPO_H
#define MBPO_L_MBPO_H

#include <lua.h>
#include <lauxlib.h>

#include "mbpo/core.h"
#include "mbpo/fields.h"
#include "mbpo/rng.h"
#include "mbpo/state.h"
#include "mbpo/tensor.h"

#define MBL_TENSOR "mbpo.Tensor"
#define MBL_RNG    "mbpo.Rng"

/* The binding helpers (l_aux.c, lauxlib's twin) ========================================== */

/* Raises the core's last error message as a Lua error (never returns). */
int mbL_coreerror(lua_State *L);

/* call a core function returning MB_OK / MB_ERR; raise its message on failure */
#define MBL_CHECK(L, call) do { if ((call) < 0) mbL_coreerror(L); } while (0)

/* Raises a printf-formatted message (%lld, %g: lua_pushfstring knows neither) with the
   caller's position (never returns). */
int mbL_errorf(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Pushes nil and the core's last error message (an expected failure); returns 2. */
int mbL_pushfail(lua_State *L);

/* Pushes a new userdata of size bytes (nuv user values) with the metatable tname, zeroed: an
   object in a safe empty state before it acquires memory (liolib's newprefile), which its
   __gc copes with whatever fails next. */
void *mbL_newobject(lua_State *L, const char *tname, size_t size, int nuv);

/* The userdata tname at idx, whose first member is a pointer that is NULL once closed (an
   object pointer, or a tensor whose storage is the pointer); raises "bad argument #idx to
   'f' (WHAT has been closed)" when it is. */
void *mbL_checkopen(lua_State *L, int idx, const char *tname, const char *what);

/* Lua lists of n values: numbers, floats, ints (plus base: 1 for 0-based indices). */
void mbL_pushnumbers(lua_State *L, const double *v, int n);
void mbL_pushfloats(lua_State *L, const float *v, int n);
void mbL_pushints(lua_State *L, const int *v, int n, int base);

/* Tensor userdata -------------------------------------------------------------------- */

/* The tensor at idx, or a Lua error "mbpo.Tensor expected, got X". */
mbTensor *mbL_checktensor(lua_State *L, int idx);
/* The tensor at idx, or NULL. */
mbTensor *mbL_testtensor(lua_State *L, int idx);
/* Pushes a new contiguous zero tensor of the given shape and returns it. */
mbTensor *mbL_newtensor(lua_State *L, int ndim, const int64_t *size);
/* Pushes a new contiguous tensor of the given shape holding a copy of src's values. */
mbTensor *mbL_newcopy(lua_State *L, const float *src, int ndim, const int64_t *size);
/* Pushes a new contiguous tensor holding the numbers of the nested table at idx (T.tensor's
   reading, lua/mbpo/nested.lua: rows of equal length, numbers only) and returns it; a
   mistake raises one line beginning "who: ", e.g. "sac:update: obs: ragged nested table,
   [2] has 2 elements, expected 3". */
mbTensor *mbL_tabletensor(lua_State *L, int idx, const char *who);
/* Pushes a new userdata that views src (shares its storage) and returns it. */
mbTensor *mbL_pushview(lua_State *L, const mbTensor *src);

/* Checks that the tensor at idx is contiguous with ndim dims and the given sizes (a size
   < 0 matches anything) and returns its data. On mismatch raises, e.g.
   "ens:step: obs must be a contiguous [N x 11] tensor, got [256 x 14]". */
float *mbL_checkshape(lua_State *L, int idx, const char *fname, const char *argname,
                      int ndim, const int64_t *size);
/* 2-d shorthand of mbL_checkshape. */
float *mbL_checkmatrix(lua_State *L, int idx, const char *fname, const char *argname,
                       int64_t rows, int64_t cols);

/* Generator userdata ----------------------------------------------------------------- */
mbRng *mbL_checkrng(lua_State *L, int idx);
mbRng *mbL_testrng(lua_State *L, int idx);

/* Env userdata (l_env.c) ------------------------------------------------------------ */
/* The open env at idx, or a Lua error ("mbpo.Env expected", "the env has been closed"). */
struct mbEnv *mbL_checkenv(lua_State *L, int idx);
/* Buffer userdata (l_buffer.c) ------------------------------------------------------ */
struct mbBuffer;
/* The mbpo.Buffer at idx (raises when it is not one or has been closed). */
struct mbBuffer *mbL_checkbuffer(lua_State *L, int idx);

/* Option tables (l_fields.c) ---------------------------------------------------------
   The one reader of constructor options: the struct's field table (include/mbpo/fields.h)
   gives every key, type, range and default. */

/* Reads the options table at idx into obj (holding its defaults: the caller fills them) and
   returns the rows given as a bit mask (row r -> bit r). Raises one line "F: ..." on an unknown key
   (naming the nearest keys), a wrong type, a value out of range or a missing required key.
   extra: NULL, or more keys the caller reads itself (NULL-terminated), or mbL_anykey (a
   task table holds other keys too). */
uint64_t mbL_readfields(lua_State *L, int idx, const char *F, const mbField *fields, void *obj,
                        const char *const *extra);
extern const char *const mbL_anykey[];
/* Sets the fields of the table at the top from obj (lists as Lua lists, enums by name). */
void mbL_pushstruct(lua_State *L, const mbField *fields, const void *obj);
/* Sets t[name], t the table at the top, to the field table as a Lua list of {name, type,
   default, range, min, max, values, required, doc}, each entry also under its name
   (module.fields). */
void mbL_setfields(lua_State *L, const char *name, const mbField *fields);

/* State of native objects (l_state.c) ============================================== */
/* One generic state / load_state pair for every object, driven by the core's descriptor of
   the object (include/mbpo/state.h). A block becomes, in the state table under its name:
   a scalar -> a number, integer, boolean or string; an F32 array -> an mbpo.Tensor (a copy,
   or a view of the slab for a block with one); an F64, U64 or I64 array -> an mbpo.Array.
   load_state checks every block first (type, shape, identity, values) and only then writes,
   so a state that does not fit leaves the object as it was; it raises one line naming the
   block and both shapes, e.g. "sac:load_state: pi is F32 [1234] in the state, F32 [386] in
   this agent". mbpo.checkpoint turns that into nil, message at the file boundary. */
typedef struct mbLStateType {
  const char *fname;                          /* "sac": messages begin "sac:load_state: " */
  const char *what;                           /* "agent": "... in this agent" */
  void *(*check)(lua_State *L, int idx);      /* the object at idx, or a Lua error */
  int (*blocks)(mbStateBlock *b, void *obj);  /* the core's descriptor: fills b, returns n */
  int (*set)(void *obj, const mbStateBlock *staged);  /* optional: restores the checked
                                                 blocks (default: copy each non-check one) */
  lua_CFunction config;                       /* optional: its result is state.config */
  int bare;                                   /* 1: one block, its value is the state */
} mbLStateType;

/* obj:load_state(t) -> obj (obj at 1, t at 2); raises when t does not fit. */
int mbL_loadstate(lua_State *L, const mbLStateType *ty);
/* Adds the methods state and load_state of ty to the table at the top. */
void mbL_addstate(lua_State *L, mbLStateType *ty);

/* 8-byte arrays (F64, U64, I64) as Lua values: userdata "mbpo.Array", 1-based a[i], #a,
   a:dtype(), a:totable(), == by value. mbpo.io reads and writes them. */
#define MBL_ARRAY "mbpo.Array"
typedef struct mbLArray {
  int dtype, ndim;
  int64_t shape[MB_MAXDIM];
  int64_t n;
  uint64_t data[];    /* n values (double, uint64_t or int64_t bits) */
} mbLArray;
/* Pushes a new zeroed array of the shape. */
mbLArray *mbL_newarray(lua_State *L, int dtype, int ndim, const int64_t *shape);
/* The array at idx, or NULL. */
mbLArray *mbL_testarray(lua_State *L, int idx);
/* io.array(dtype, values) -> a new 1-d array ("F64", "U64" or "I64"). */
int mbL_arraynew(lua_State *L);

/* Module openers (one per l_*.c) --------------------------------------------------- */

/* A class of a native module: the metatable tname holds metameth and, as __index, its
   methods meth (with state and load_state when state is set); with getfield, __index looks
   a key up in the methods first (raw; they are also the metatable's field `methods`), then
   calls getfield(L) with the object at 1 and the key at 2. */
typedef struct mbLClass {
  const char *tname;
  const luaL_Reg *meth, *metameth;
  lua_CFunction getfield;   /* NULL: no fields */
  mbLStateType *state;      /* NULL: no state */
  int show;                 /* 1: __tostring is "TNAME (closed)" for a closed object, else the
                               text of the class's function in lua/mbpo/show.lua */
} mbLClass;

/* Creates the metatable of class c (mbL_newlib's part for each class). */
void mbL_newclass(lua_State *L, const mbLClass *c);
/* The common shape of an opener: requires the modules of needs (a NULL-terminated list of
   names, or NULL: "mbpo.tensor" for a module that pushes tensors), creates the classes (a
   list ended by {NULL}, or NULL) and pushes the module table of funcs with _VERSION.
   Returns 1. */
int mbL_newlib(lua_State *L, const char *const *needs, const mbLClass *classes,
               const luaL_Reg *funcs);

int luaopen_mbpo_core(lua_State *L);
int luaopen_mbpo_tensor(lua_State *L);
int luaopen_mbpo_rng(lua_State *L);
int luaopen_mbpo_nn(lua_State *L);
int luaopen_mbpo_ensemble(lua_State *L);
int luaopen_mbpo_sac(lua_State *L);
int luaopen_mbpo_buffer(lua_State *L);
int luaopen_mbpo_env(lua_State *L);
int luaopen_mbpo_io(lua_State *L);
int luaopen_mbpo_render(lua_State *L);

/* Reports bytes of C memory a new native object holds (tensor storage, ensemble, buffer,
   env) to the collector, which cannot see them: a step of the collector proportional to
   them, and a full collection once 128 MiB were reported since the last one, so a loop that
   creates objects does not grow without bound. */
void mbL_extmem(lua_State *L, size_t bytes);

/* Registers every native module in package.preload (l_init.c). */
void mbL_preload(lua_State *L);

/* Set by the host when a signal arrives; mbpo.core.interrupted() reports it. */
extern volatile sig_atomic_t mbL_signal;
/* When set (mbpo.core.defer_interrupts(true)), a signal only sets mbL_signal: no Lua error
   is raised and long C calls are not cut short; the Lua code polls core.interrupted() at
   its safe points (the training loop saves a checkpoint there). */
extern volatile sig_atomic_t mbL_deferInterrupts;

#endif
