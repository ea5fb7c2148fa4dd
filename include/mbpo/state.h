/* mbpo state descriptors: one home for each piece of state a resumed run needs.
   An object describes its state once, as a list of named, typed blocks that point into its
   own memory (weights, optimiser moments, counters, generator words, simulation arrays).
   One generic pair in the bindings (src/lua/l_state.c) turns any object's blocks into a Lua
   state table and back, and mbpo.io writes every dtype below as a safetensors dtype
   (MB_I32 and MB_BOOL as I64), so no object marshals its state by hand.
   Shapes are those of this object: a state of another shape does not load (the message names
   the block and both shapes). Per object: mbr_sacStateBlocks, mbn_ensStateBlocks,
   mbr_bufferStateBlocks, mbs_stateBlocks (env), mbg_stateBlocks and mbn_adamBlocks below. */
#ifndef MBPO_STATE_H
#define MBPO_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "mbpo/nn.h"
#include "mbpo/rng.h"
#include "mbpo/tensor.h"

/* element types of blocks and of mbpo.io files (safetensors names F32, I64, F64, U64) */
#define MB_F32  1   /* float */
#define MB_I64  2   /* int64_t */
#define MB_F64  3   /* double */
#define MB_U64  4   /* uint64_t (generator words) */
#define MB_I32  5   /* int; stored as I64 */
#define MB_BOOL 6   /* int 0/1; a Lua boolean (scalars only) */
#define MB_STR  7   /* text (scalars only; always MB_ST_CHECK): the block's text field */

/* flags of a block */
#define MB_ST_CHECK    1   /* identity (a layout, a task name): saved; a state whose value
                              differs does not load; never written back */
#define MB_ST_OPTIONAL 2   /* a state without it loads and keeps this object's value */
#define MB_ST_ROWS     4   /* the first dimension may differ (the object's own load takes it) */
#define MB_ST_NONZERO  8   /* not all zero (generator words) */
#define MB_ST_INDEX   16   /* 0-based indices in C, 1-based in Lua, each in [0, bound) */
#define MB_ST_POSITIVE 32  /* every value finite and > 0 */
#define MB_ST_FINITE  64   /* every value finite */

#define MB_STATE_MAXBLOCKS 24
#define MB_STATE_TEXT 136

typedef struct mbStateBlock {
  const char *name;       /* its key in the state table */
  int dtype;              /* MB_F32 .. MB_STR */
  int flags;              /* MB_ST_* */
  int ndim;               /* 0 (a scalar), 1 or 2 */
  int64_t shape[2];
  void *data;             /* the object's memory (NULL for MB_STR) */
  const mbTensor *slab;   /* optional, MB_F32: state() hands out a view of the first shape[0]
                             rows of this tensor instead of a copy (replay buffers) */
  int64_t bound;          /* MB_ST_INDEX: values in [0, bound) */
  char text[MB_STATE_TEXT]; /* MB_STR: the value */
} mbStateBlock;

/* Fills block b (ndim 0: a scalar; 1: [d0]; 2: [d0 x d1]) and returns b + 1, the next slot. */
mbStateBlock *mbu_block(mbStateBlock *b, const char *name, int dtype, int flags, void *data,
                        int ndim, int64_t d0, int64_t d1);

/* Elements of a block (1 for a scalar) and bytes of one element in C memory. */
int64_t mbu_blockNumel(const mbStateBlock *b);
int mbu_dtypeSize(int dtype);
/* "F32", "I64", "F64", "U64" (the file's name of a dtype; MB_I32 and MB_BOOL are I64),
   "bool", "string". */
const char *mbu_dtypeName(int dtype);
/* "[2 x 385]" or "[]" into buf. */
const char *mbu_blockShape(char *buf, int n, const mbStateBlock *b);
/* "F64 [3 x N]" into buf: the dtype's name (none for dtype 0), then the sizes, a size < 0
   as N. */
const char *mbu_shapeText(char *buf, size_t n, int dtype, int ndim, const int64_t *shape);
/* What block b takes, for messages, into buf: "F32 [N x 29]" (an array; the first dimension
   N for MB_ST_ROWS; MB_I32 as I64), "a number", "a boolean", "'hopper'" (text), "11" (an
   integer check), "an integer". */
const char *mbu_blockWant(char *buf, size_t n, const mbStateBlock *b);
/* The value rules of b's data: NULL when they hold, else what is wrong, into buf, as the
   message goes on after the block's name: "is all zero" (MB_ST_NONZERO), "[3] = nan is not a
   finite number" (MB_ST_FINITE, MB_ST_POSITIVE; 1-based), "is -1: a count must be >= 0" (an
   I64 scalar that is not a check), "[2] = 9 is not in 1..7" (MB_ST_INDEX; shown 1-based). */
const char *mbu_blockCheck(char *buf, size_t n, const mbStateBlock *b);

/* Loading a state: a value given for block s (from a state table) is described as a block v:
   dtype, ndim, shape and data (an F32 tensor, an F64, U64 or I64 array; a scalar MB_I64,
   MB_F64 or MB_BOOL (int) at data; MB_STR with data the NUL-terminated text). Takes v into
   s: s->data points at v's data, or at a converted copy in *scratch (scalars; MB_I32 arrays,
   1-based indices made 0-based), and s->shape[0] becomes v's (MB_ST_ROWS). Returns 1, or 0
   when v does not fit: another type or shape, an MB_I32 out of int range, an MB_ST_CHECK
   block of another value than the one s held. *scratch advances by what it used: at most
   mbu_blockScratch(blocks, n) for all. */
int mbu_blockTake(mbStateBlock *s, const mbStateBlock *v, unsigned char **scratch);
size_t mbu_blockScratch(const mbStateBlock *b, int n);
/* The values of an array block b of 8-byte elements or MB_I32 as n 64-bit words into out:
   MB_I32 as int64 (MB_ST_INDEX: 1-based), the others as they are; mbu_blockTake's inverse. */
void mbu_blockWords(uint64_t *out, const mbStateBlock *b);
/* Writes the values of the taken blocks s into the object's blocks b (n each; not the
   MB_ST_CHECK ones): the default restore of a state. */
void mbu_blockCopy(mbStateBlock *b, const mbStateBlock *s, int n);

/* The state of a generator: one block "rng", U64 [4], not all zero. */
mbStateBlock *mbg_stateBlocks(mbStateBlock *b, mbRng *g);

/* The state of an Adam optimiser over a slab of n floats: adam_m, adam_v [n], adam_t, and
   lr, beta1, beta2, eps (a state without them keeps this optimiser's). */
mbStateBlock *mbn_adamBlocks(mbStateBlock *b, mbAdam *a, float *m, float *v, int64_t n);

/* The state of a trainable MLP (mbMlpNet): sizes and activation (checks: the state of another
   network does not fit), params, and its Adam's blocks (mbn_adamBlocks). Returns the count. */
int mbn_netStateBlocks(mbStateBlock *b, mbMlpNet *n);
/* The state of Adam over a tensor: its Adam's blocks and weight_decay (optional). */
int mbn_adamTensorStateBlocks(mbStateBlock *b, mbAdamTensor *a);

#endif
