/* Replay buffers: rings of float32 transitions in one [capacity x width] slab
   (layout in include/mbpo/buffer.h). No per-row allocation; sampling draws physical rows
   with mbg_below so a restored buffer with a restored generator samples identically.
   Invariants: 0 <= size <= capacity; next == size while the ring is not full (rows fill
   from physical 0), and once full the oldest row sits at physical `next`. Every row index
   is int64_t and every float offset size_t, so 12.5M rows x 109 floats (5.4 GB) and more
   need no care from the caller. */
#include "mbpo/buffer.h"
#include "mbpo/core.h"

#include <string.h>

/* the largest slab we allocate, in floats (64 GiB): guards the size arithmetic */
#define MAXFLOATS ((int64_t)1 << 34)

/* physical row p of the slab */
static inline float *physRow(const mbBuffer *b, int64_t p) {
  return mbt_data(&b->slab) + (size_t)p * (size_t)b->width;
}

/* copies one stored row into row i of a batch (fields that are NULL are skipped) */
static inline void rowToBatch(const mbBatch *out, int64_t i, const float *row, int64_t obs,
                              int64_t act) {
  size_t o = (size_t)obs, a = (size_t)act, k = (size_t)i;
  if (out->obs) memcpy(out->obs + k * o, row, o * sizeof(float));
  if (out->act && a) memcpy(out->act + k * a, row + o, a * sizeof(float));
  if (out->reward) out->reward[k] = row[o + a];
  if (out->next_obs) memcpy(out->next_obs + k * o, row + o + a + 1, o * sizeof(float));
  if (out->done) out->done[k] = row[2 * o + a + 1];
}


/* checks capacity against the widths; returns the floats of a slab or -1 */
static int64_t slabFloats(int64_t width, int64_t capacity) {
  if (capacity < 1) return mbu_error("buffer: capacity must be at least 1, got %lld",
                                     (long long)capacity), -1;
  if (capacity > MAXFLOATS / width)
    return mbu_error("buffer: capacity %lld x %lld floats is too large",
                     (long long)capacity, (long long)width), -1;
  return capacity * width;
}

const mbField mbr_bufferFields[] = {MB_BUFFER_FIELDS(mbBuffer) MB_F_END};

int mbr_bufferInit(mbBuffer *b, int64_t obs, int64_t act, int64_t capacity) {
  memset(b, 0, sizeof *b);
  if (obs < 1 || act < 0 || obs > (1 << 20) || act > (1 << 20))
    return mbu_error("buffer: bad widths obs=%lld act=%lld (need obs >= 1, act >= 0)",
                     (long long)obs, (long long)act);
  int64_t width = 2 * obs + act + 2;
  if (slabFloats(width, capacity) < 0) return MB_ERR;
  int64_t shape[2] = {capacity, width};
  if (mbt_init(&b->slab, 2, shape) < 0) return MB_ERR;
  b->obs = obs;
  b->act = act;
  b->width = width;
  b->capacity = capacity;
  return MB_OK;
}

void mbr_bufferFree(mbBuffer *b) {
  if (b->slab.storage) mbt_release(&b->slab);
  memset(b, 0, sizeof *b);
}

float *mbr_bufferRow(const mbBuffer *b, int64_t i) {
  /* when full the oldest row is at next; before that at 0 (and next == size) */
  int64_t start = b->size == b->capacity ? b->next : 0;
  int64_t p = start + i;
  if (p >= b->capacity) p -= b->capacity;
  return physRow(b, p);
}

void mbr_bufferAdd(mbBuffer *b, const float *obs, const float *act, float reward,
                   const float *next_obs, float done) {
  mbr_bufferAddBatch(b, obs, act, &reward, next_obs, &done, 1);
}

void mbr_bufferAddBatch(mbBuffer *b, const float *obs, const float *act, const float *reward,
                        const float *next_obs, const float *done, int64_t n) {
  if (n <= 0) return;
  /* rows that would be overwritten within this call are skipped, but the write position
     advances as if they had been written, so the result equals n single adds */
  int64_t skip = n > b->capacity ? n - b->capacity : 0;
  int64_t p = (b->next + skip % b->capacity) % b->capacity;
  size_t o = (size_t)b->obs, a = (size_t)b->act;
  for (int64_t i = skip; i < n; i++) {
    float *row = physRow(b, p);
    size_t k = (size_t)i;
    /* memmove: a caller may pass views of this very slab */
    memmove(row, obs + k * o, o * sizeof(float));
    if (a) memmove(row + o, act + k * a, a * sizeof(float));
    row[o + a] = reward[k];
    memmove(row + o + a + 1, next_obs + k * o, o * sizeof(float));
    row[2 * o + a + 1] = done[k];
    if (++p == b->capacity) p = 0;
  }
  b->next = p;
  b->size = b->size + n >= b->capacity ? b->capacity : b->size + n;
}

/* rows drawn ahead of their copy: their cache lines are requested while the rows before
   them are copied, instead of one memory latency per row (a model buffer of 400 000 rows is
   larger than the last-level cache) */
#define SAMPLE_AHEAD 32

/* Physical rows are drawn, not logical ones: both are uniform over the stored rows, and the
   physical index needs no wrap arithmetic. One mbg_below per row, in batch order (drawing a
   chunk of indices before copying their rows consumes the generator in the same order). */
int mbr_bufferSample(const mbBatch *out, const mbBuffer *b, mbRng *g, int64_t n) {
  if (n <= 0) return MB_OK;
  if (b->size == 0) return mbu_error("buffer: cannot sample %lld rows from an empty buffer",
                                     (long long)n);
  size_t bytes = (size_t)b->width * sizeof(float);
  for (int64_t i0 = 0; i0 < n; i0 += SAMPLE_AHEAD) {
    int64_t m = n - i0 < SAMPLE_AHEAD ? n - i0 : SAMPLE_AHEAD;
    const float *rows[SAMPLE_AHEAD];
    for (int64_t j = 0; j < m; j++) {
      rows[j] = physRow(b, (int64_t)mbg_below(g, (uint64_t)b->size));
      const char *r = (const char *)rows[j];
      for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(r + o);
      __builtin_prefetch(r + bytes - 1);
    }
    for (int64_t j = 0; j < m; j++) rowToBatch(out, i0 + j, rows[j], b->obs, b->act);
  }
  return MB_OK;
}

/* out shifted down by `rows` rows */
static mbBatch offsetBatch(const mbBatch *out, int64_t rows, int64_t obs, int64_t act) {
  size_t k = (size_t)rows;
  mbBatch o = {out->obs ? out->obs + k * (size_t)obs : NULL,
               out->act ? out->act + k * (size_t)act : NULL,
               out->reward ? out->reward + k : NULL,
               out->next_obs ? out->next_obs + k * (size_t)obs : NULL,
               out->done ? out->done + k : NULL};
  return o;
}

int mbr_bufferSampleMixed(const mbBatch *out, int64_t *nreal, const mbBuffer *real,
                          const mbBuffer *model, mbRng *g, int64_t n, double real_ratio) {
  if (real->obs != model->obs || real->act != model->act)
    return mbu_error("buffer.sample_mixed: widths differ, real obs=%lld act=%lld, "
                     "model obs=%lld act=%lld", (long long)real->obs, (long long)real->act,
                     (long long)model->obs, (long long)model->act);
  if (!(real_ratio >= 0 && real_ratio <= 1))
    return mbu_error("buffer.sample_mixed: real_ratio %g is outside [0, 1]", real_ratio);
  /* int(n * real_ratio) as the reference computes it; everything from real when the
     model buffer is empty (the first epoch, before any rollout) */
  int64_t nr = model->size == 0 ? n : (int64_t)((double)n * real_ratio);
  if (nr > n) nr = n;
  if (nr > 0 && real->size == 0)
    return mbu_error("buffer.sample_mixed: the real buffer is empty");
  if (mbr_bufferSample(out, real, g, nr) < 0) return MB_ERR;
  mbBatch rest = offsetBatch(out, nr, model->obs, model->act);
  if (mbr_bufferSample(&rest, model, g, n - nr) < 0) return MB_ERR;
  if (nreal) *nreal = nr;
  return MB_OK;
}

int mbr_bufferRows(const mbBatch *out, const mbBuffer *b, int64_t first, int64_t n) {
  if (first < 0 || n < 0 || first > b->size - n)
    return mbu_error("buffer: rows [%lld, %lld) outside the %lld stored rows",
                     (long long)first, (long long)(first + n), (long long)b->size);
  for (int64_t i = 0; i < n; i++)
    rowToBatch(out, i, mbr_bufferRow(b, first + i), b->obs, b->act);
  return MB_OK;
}

/* copies logical rows [first, first + n) to consecutive physical rows of dst, in at most
   two block copies (the ring wraps at most once) */
static void copyLogical(float *dst, const mbBuffer *b, int64_t first, int64_t n) {
  int64_t start = b->size == b->capacity ? b->next : 0;
  int64_t p = (start + first) % b->capacity;
  int64_t run = n < b->capacity - p ? n : b->capacity - p;
  size_t w = (size_t)b->width * sizeof(float);
  if (run > 0) memmove(dst, physRow(b, p), (size_t)run * w);
  if (n > run) memmove(dst + (size_t)run * (size_t)b->width, physRow(b, 0), (size_t)(n - run) * w);
}

/* A new slab receives the kept rows oldest first at physical 0.. so the resized ring is
   linear again; peak memory is old + new slab (the reference rebuilds its buffer the same
   way). */
int mbr_bufferResize(mbBuffer *b, int64_t capacity) {
  if (!b->slab.storage) return mbu_error("buffer: not initialised");
  if (capacity == b->capacity) return MB_OK;
  if (slabFloats(b->width, capacity) < 0) return MB_ERR;
  mbTensor slab;
  int64_t shape[2] = {capacity, b->width};
  if (mbt_init(&slab, 2, shape) < 0) return MB_ERR;
  int64_t keep = b->size < capacity ? b->size : capacity;
  copyLogical(mbt_data(&slab), b, b->size - keep, keep);
  mbt_release(&b->slab);
  b->slab = slab;
  b->capacity = capacity;
  b->size = keep;
  b->next = keep == capacity ? 0 : keep;
  return MB_OK;
}

/* Restoring copies the saved physical rows to the same physical rows, so next, the oldest
   row and the rows mbg_below picks are all the same as in the saved buffer. */
int mbr_bufferLoad(mbBuffer *b, const float *data, int64_t size, int64_t next, int64_t capacity) {
  if (!b->slab.storage) return mbu_error("buffer: not initialised");
  if (slabFloats(b->width, capacity) < 0) return MB_ERR;
  if (size < 0 || size > capacity)
    return mbu_error("buffer.load_state: size %lld outside [0, capacity %lld]",
                     (long long)size, (long long)capacity);
  if (next < 0 || next >= capacity || (size < capacity && next != size))
    return mbu_error("buffer.load_state: write position %lld inconsistent with size %lld "
                     "and capacity %lld", (long long)next, (long long)size, (long long)capacity);
  size_t bytes = (size_t)size * (size_t)b->width * sizeof(float);
  if (capacity != b->capacity) {
    mbTensor slab;
    int64_t shape[2] = {capacity, b->width};
    if (mbt_init(&slab, 2, shape) < 0) return MB_ERR;
    if (bytes) memcpy(mbt_data(&slab), data, bytes);  /* data may be the old slab */
    mbt_release(&b->slab);
    b->slab = slab;
    b->capacity = capacity;
  } else {
    if (bytes) memmove(mbt_data(&b->slab), data, bytes);
    /* rows past size are not data: clear them so the state is exactly the saved one */
    memset(physRow(b, size), 0, (size_t)(capacity - size) * (size_t)b->width * sizeof(float));
  }
  b->size = size;
  b->next = next;
  return MB_OK;
}

/* State descriptor ------------------------------------------------------------------------- */

int mbr_bufferStateBlocks(mbStateBlock *b, mbBuffer *buf) {
  mbStateBlock *p = b;
  p = mbu_block(p, "obs", MB_I64, MB_ST_CHECK, &buf->obs, 0, 0, 0);
  p = mbu_block(p, "act", MB_I64, MB_ST_CHECK, &buf->act, 0, 0, 0);
  p = mbu_block(p, "capacity", MB_I64, 0, &buf->capacity, 0, 0, 0);
  p = mbu_block(p, "size", MB_I64, 0, &buf->size, 0, 0, 0);
  p = mbu_block(p, "next", MB_I64, 0, &buf->next, 0, 0, 0);
  p = mbu_block(p, "data", MB_F32, MB_ST_ROWS, mbt_data(&buf->slab), 2, buf->size, buf->width);
  p[-1].slab = &buf->slab;
  return (int)(p - b);
}

int mbr_bufferSetState(mbBuffer *buf, const mbStateBlock *b) {
  int64_t capacity = *(const int64_t *)b[2].data, size = *(const int64_t *)b[3].data;
  int64_t next = *(const int64_t *)b[4].data;
  if (b[5].shape[0] != size)
    return mbu_error("data has %lld rows, size is %lld", (long long)b[5].shape[0],
                     (long long)size);
  return mbr_bufferLoad(buf, b[5].data, size, next, capacity);
}
