/* mbpo replay buffers: fixed-capacity rings of float32 transitions (obs, act, reward,
   next_obs, done) in one contiguous slab.
   Row layout (width = 2 * obs + act + 2 floats):
     [ obs (obs) | act (act) | reward (1) | next_obs (obs) | done (1) ]
   The slab is an mbTensor [capacity x width] so the Lua layer can hand out views of it
   for checkpoints without copying. Rows are written at `next` and wrap around; physical
   rows [0, size) hold data. Logical row 0 is the oldest, size - 1 the newest. All index
   arithmetic is in int64_t / size_t: tens of millions of rows of ~100 floats are fine. */
#ifndef MBPO_BUFFER_H
#define MBPO_BUFFER_H

#include <stddef.h>
#include <stdint.h>

#include "mbpo/fields.h"
#include "mbpo/rng.h"
#include "mbpo/state.h"
#include "mbpo/tensor.h"

typedef struct mbBuffer {
  mbTensor slab;       /* [capacity x width] rows as above; storage NULL when empty */
  int64_t obs, act;    /* observation and action widths (obs >= 1, act >= 0) */
  int64_t width;       /* 2 * obs + act + 2 */
  int64_t capacity;    /* rows the slab holds (>= 1) */
  int64_t size;        /* rows filled, <= capacity */
  int64_t next;        /* physical row the next add writes, in [0, capacity) */
} mbBuffer;

/* A batch of n transitions in caller-owned arrays: obs [n x obs], act [n x act], reward [n],
   next_obs [n x obs], done [n]. Any pointer may be NULL to skip that field. */
typedef struct mbBatch {
  float *obs, *act, *reward, *next_obs, *done;
} mbBatch;

/* The settings of Buffer.new (include/mbpo/fields.h), fields of mbBuffer (src/rl/buffer.c). */
#define MB_BUFFER_FIELDS(S) \
  MB_F_NEED64(S, obs, 1, 1 << 20, "observation width") \
  MB_F_NEED64(S, act, 0, 1 << 20, "action width") \
  MB_F_NEED64(S, capacity, 1, 2147483647, "rows held (the oldest are dropped when full)")
extern const mbField mbr_bufferFields[];

/* Allocates an empty buffer (zeroed slab). Returns MB_OK or MB_ERR (bad sizes, memory). */
int mbr_bufferInit(mbBuffer *b, int64_t obs, int64_t act, int64_t capacity);

/* Drops the slab reference and zeroes b (safe on a zeroed or already freed buffer). */
void mbr_bufferFree(mbBuffer *b);

/* Pointer to logical row i (0 = oldest) of a buffer with size > i. */
float *mbr_bufferRow(const mbBuffer *b, int64_t i);

/* Appends one transition (overwriting the oldest row when full). */
void mbr_bufferAdd(mbBuffer *b, const float *obs, const float *act, float reward,
                   const float *next_obs, float done);

/* Appends n transitions from row arrays obs [n x obs], act [n x act], reward [n],
   next_obs [n x obs], done [n]; the same result as n calls of mbr_bufferAdd, but when
   n > capacity only the last capacity rows are copied. */
void mbr_bufferAddBatch(mbBuffer *b, const float *obs, const float *act, const float *reward,
                        const float *next_obs, const float *done, int64_t n);

/* Draws n rows uniformly with replacement (one mbg_below(g, size) per row, in order) into
   out rows [0, n). MB_ERR when the buffer is empty and n > 0. */
int mbr_bufferSample(const mbBatch *out, const mbBuffer *b, mbRng *g, int64_t n);

/* Fills a batch of n rows: the first int(n * real_ratio) from real, the rest from model,
   each drawn as by mbr_bufferSample in that order. When model is empty all n come from real.
   Both buffers must have the same obs/act widths; real_ratio in [0, 1]. *nreal (if not NULL)
   receives the number of rows taken from real. */
int mbr_bufferSampleMixed(const mbBatch *out, int64_t *nreal, const mbBuffer *real,
                          const mbBuffer *model, mbRng *g, int64_t n, double real_ratio);

/* Copies logical rows [first, first + n) (0 = oldest) into out rows [0, n). */
int mbr_bufferRows(const mbBatch *out, const mbBuffer *b, int64_t first, int64_t n);

/* Changes the capacity, keeping the newest min(size, capacity) rows in order (the oldest
   kept row becomes physical row 0). Allocates a new slab; the old one is released. */
int mbr_bufferResize(mbBuffer *b, int64_t capacity);

/* Restores a saved state: data holds `size` rows of width floats in physical order
   (slab rows [0, size)), next and capacity as saved; reallocates when the capacity
   differs. Checks that size <= capacity and next == size unless full. */
int mbr_bufferLoad(mbBuffer *b, const float *data, int64_t size, int64_t next, int64_t capacity);

/* State descriptor (include/mbpo/state.h): obs, act (identity checks), capacity, size,
   next and data, a view of the slab's first size rows [size x width] (no copy). Returns the
   count. mbr_bufferSetState restores blocks laid out as these (data of any row count)
   through mbr_bufferLoad. */
int mbr_bufferStateBlocks(mbStateBlock *b, mbBuffer *buf);
int mbr_bufferSetState(mbBuffer *buf, const mbStateBlock *b);

#endif
