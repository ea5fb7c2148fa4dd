/* Tests of src/rl/buffer.c against a reference model (the list of every row ever added):
   wrap-around, add_batch = repeated add, resize keeping the newest rows in order, uniform
   sampling (chi-square), exact mixed-batch composition, state round trip through the
   safetensors io with identical later samples, a capacity of millions of rows, errors. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mbpo/buffer.h"
#include "mbpo/core.h"
#include "mbpo/io.h"
#include "test.h"

/* transition number id, for widths obs and act: every field derives from id so a row's
   fields can be checked for coming from one transition */
static void makeRow(float *obs, float *act, float *rew, float *nobs, float *done, int64_t id,
                    int64_t no, int64_t na) {
  for (int64_t j = 0; j < no; j++) obs[j] = (float)id + 0.001f * (float)j;
  for (int64_t j = 0; j < na; j++) act[j] = -(float)id - 0.01f * (float)j;
  *rew = (float)id;
  for (int64_t j = 0; j < no; j++) nobs[j] = (float)id + 0.5f + 0.001f * (float)j;
  *done = (float)(id % 2);
}

/* a batch of n rows for widths no, na (malloc'ed) */
static mbBatch newBatch(int64_t n, int64_t no, int64_t na) {
  size_t k = (size_t)(n ? n : 1);
  mbBatch b = {malloc(k * (size_t)no * 4), malloc(k * (size_t)(na ? na : 1) * 4), malloc(k * 4),
               malloc(k * (size_t)no * 4), malloc(k * 4)};
  return b;
}

static void freeBatch(mbBatch *b) {
  free(b->obs); free(b->act); free(b->reward); free(b->next_obs); free(b->done);
}

/* row i of a batch is transition id exactly */
static int rowIs(const mbBatch *b, int64_t i, int64_t id, int64_t no, int64_t na) {
  float o[64], a[64], r, no2[64], d;
  makeRow(o, a, &r, no2, &d, id, no, na);
  return !memcmp(b->obs + i * no, o, (size_t)no * 4) &&
         !memcmp(b->act + i * na, a, (size_t)na * 4) && b->reward[i] == r &&
         !memcmp(b->next_obs + i * no, no2, (size_t)no * 4) && b->done[i] == d;
}

/* the buffer holds exactly transitions first..last (logical order), checked via rows */
static int holds(const mbBuffer *b, int64_t first, int64_t last) {
  int64_t n = last - first + 1;
  if (b->size != n) return 0;
  mbBatch out = newBatch(n, b->obs, b->act);
  int ok = mbr_bufferRows(&out, b, 0, n) == MB_OK;
  for (int64_t i = 0; ok && i < n; i++) ok = rowIs(&out, i, first + i, b->obs, b->act);
  freeBatch(&out);
  return ok;
}

static void addIds(mbBuffer *b, int64_t from, int64_t to) {
  for (int64_t id = from; id <= to; id++) {
    float o[64], a[64], r, no[64], d;
    makeRow(o, a, &r, no, &d, id, b->obs, b->act);
    mbr_bufferAdd(b, o, a, r, no, d);
  }
}

/* add_batch of transitions from..to */
static void addBatchIds(mbBuffer *b, int64_t from, int64_t to) {
  int64_t n = to - from + 1;
  mbBatch in = newBatch(n, b->obs, b->act);
  for (int64_t i = 0; i < n; i++)
    makeRow(in.obs + i * b->obs, in.act + i * b->act, in.reward + i, in.next_obs + i * b->obs,
            in.done + i, from + i, b->obs, b->act);
  mbr_bufferAddBatch(b, in.obs, in.act, in.reward, in.next_obs, in.done, n);
  freeBatch(&in);
}

static void test_wraparound(void) {
  mbBuffer b;
  CHECK(mbr_bufferInit(&b, 3, 2, 5) == MB_OK, "init: %s", mbu_lasterror());
  CHECK(b.width == 2 * 3 + 2 + 2 && b.size == 0 && b.capacity == 5, "geometry");
  addIds(&b, 0, 2);
  CHECK(holds(&b, 0, 2) && b.next == 3, "partial fill");
  addIds(&b, 3, 11);  /* 12 rows into 5: wraps twice */
  CHECK(holds(&b, 7, 11), "after wrap the newest 5 rows, oldest first");
  CHECK(b.next == 12 % 5, "next %lld", (long long)b.next);
  /* the oldest row is the one the next add overwrites */
  CHECK(mbr_bufferRow(&b, 0) == mbt_data(&b.slab) + b.next * b.width, "oldest row position");
  mbr_bufferFree(&b);
  CHECK(b.slab.storage == NULL, "free");
  mbr_bufferFree(&b);  /* twice is harmless */
}

/* add_batch gives the same slab, size and position as repeated add, for batches shorter
   than, equal to and longer than the capacity, starting at every offset */
static void test_addbatch_equals_add(void) {
  int ok = 1;
  for (int64_t start = 0; start < 7; start++)
    for (int64_t n = 0; n <= 16; n++) {
      mbBuffer x, y;
      mbr_bufferInit(&x, 2, 1, 7);
      mbr_bufferInit(&y, 2, 1, 7);
      addIds(&x, 100, 100 + start - 1);
      addIds(&y, 100, 100 + start - 1);
      addIds(&x, 0, n - 1);
      addBatchIds(&y, 0, n - 1);
      ok &= x.size == y.size && x.next == y.next &&
            !memcmp(mbt_data(&x.slab), mbt_data(&y.slab), (size_t)(7 * x.width) * 4);
      mbr_bufferFree(&x);
      mbr_bufferFree(&y);
    }
  CHECK(ok, "add_batch differs from repeated add");
}

/* random adds, batches and resizes against the reference: the buffer always holds the
   newest min(added, capacity) transitions in order */
static void test_resize_random(void) {
  mbBuffer b;
  mbr_bufferInit(&b, 4, 3, 10);
  mbRng g;
  mbg_seed(&g, 9, 0);
  int64_t next_id = 0, first = 0;   /* the buffer should hold first .. next_id - 1 */
  int bad = 0;
  for (int step = 0; step < 400 && !bad; step++) {
    int op = (int)mbg_below(&g, 4);
    if (op == 0) {
      int64_t n = (int64_t)mbg_below(&g, 3) + 1;
      addIds(&b, next_id, next_id + n - 1);
      next_id += n;
    } else if (op == 1) {
      int64_t n = (int64_t)mbg_below(&g, 2 * (uint64_t)b.capacity + 2);
      addBatchIds(&b, next_id, next_id + n - 1);
      next_id += n;
    } else if (op == 2) {
      int64_t cap = (int64_t)mbg_below(&g, 25) + 1;
      if (mbr_bufferResize(&b, cap) != MB_OK) { bad = 1; break; }
      if (b.capacity != cap) bad = 1;
    } else {
      continue;
    }
    if (next_id - first > b.capacity) first = next_id - b.capacity;
    if (!holds(&b, first, next_id - 1)) {
      bad = 1;
      fprintf(stderr, "  step %d op %d: expected %lld..%lld, size %lld cap %lld next %lld\n",
              step, op, (long long)first, (long long)next_id - 1, (long long)b.size,
              (long long)b.capacity, (long long)b.next);
    }
  }
  CHECK(!bad, "buffer diverged from the reference");
  /* shrinking a full, wrapped buffer keeps the newest rows in order */
  mbr_bufferResize(&b, 6);
  addIds(&b, 1000, 1008);
  CHECK(holds(&b, 1003, 1008) && b.next == 3, "before shrink");
  CHECK(mbr_bufferResize(&b, 4) == MB_OK && holds(&b, 1005, 1008) && b.next == 0,
        "shrink keeps the newest 4");
  CHECK(mbr_bufferResize(&b, 9) == MB_OK && holds(&b, 1005, 1008) && b.next == 4, "grow");
  addIds(&b, 1009, 1013);
  CHECK(holds(&b, 1005, 1013) && b.size == 9, "fill after grow");
  CHECK(mbr_bufferResize(&b, 0) == MB_ERR && strstr(mbu_lasterror(), "at least 1"),
        "resize 0: %s", mbu_lasterror());
  CHECK(holds(&b, 1005, 1013), "failed resize must leave the buffer unchanged");
  mbr_bufferFree(&b);
}

/* chi-square of the counts of each stored row over many draws */
static void test_sample_uniform(void) {
  mbBuffer b;
  mbr_bufferInit(&b, 2, 1, 50);
  addIds(&b, 0, 119);   /* wrapped: holds 70..119 */
  mbRng g;
  mbg_seed(&g, 21, 0);
  int64_t n = 100000;
  mbBatch out = newBatch(n, 2, 1);
  CHECK(mbr_bufferSample(&out, &b, &g, n) == MB_OK, "sample");
  int64_t counts[50] = {0};
  int intact = 1;
  for (int64_t i = 0; i < n; i++) {
    int64_t id = (int64_t)out.reward[i];
    if (id < 70 || id > 119) { intact = 0; break; }
    counts[id - 70]++;
    intact &= rowIs(&out, i, id, 2, 1);
  }
  CHECK(intact, "a sampled row is not one stored transition");
  /* 49 degrees of freedom: the 99.9% quantile of chi-square is 85.35 */
  double e = (double)n / 50, chi = 0;
  for (int i = 0; i < 50; i++) chi += ((double)counts[i] - e) * ((double)counts[i] - e) / e;
  CHECK(chi < 85.35, "chi-square %.2f over 49 dof (threshold 85.35)", chi);
  freeBatch(&out);

  /* a buffer that is not full only yields its filled rows */
  mbBuffer c;
  mbr_bufferInit(&c, 2, 1, 1000);
  addIds(&c, 0, 9);
  out = newBatch(2000, 2, 1);
  mbr_bufferSample(&out, &c, &g, 2000);
  int64_t seen = 0, outside = 0;
  for (int i = 0; i < 2000; i++) {
    if (out.reward[i] < 0 || out.reward[i] > 9) outside++;
    else seen |= (int64_t)1 << (int)out.reward[i];
  }
  CHECK(outside == 0 && seen == 1023, "partial buffer: %lld outside, seen mask %llx",
        (long long)outside, (long long)seen);
  freeBatch(&out);
  /* the same generator state gives the same draws */
  mbRng g1, g2;
  mbg_seed(&g1, 3, 1);
  g2 = g1;
  mbBatch o1 = newBatch(64, 2, 1), o2 = newBatch(64, 2, 1);
  mbr_bufferSample(&o1, &b, &g1, 64);
  mbr_bufferSample(&o2, &b, &g2, 64);
  CHECK(!memcmp(o1.obs, o2.obs, 64 * 2 * 4) && !memcmp(o1.reward, o2.reward, 64 * 4),
        "same generator, different samples");
  freeBatch(&o1);
  freeBatch(&o2);
  /* NULL fields are skipped (sample_obs) */
  mbBatch only = {0};
  only.obs = malloc(5 * 2 * 4);
  CHECK(mbr_bufferSample(&only, &b, &g, 5) == MB_OK && only.obs[0] >= 70, "obs only");
  free(only.obs);
  /* empty buffer */
  mbBuffer e0;
  mbr_bufferInit(&e0, 2, 1, 3);
  out = newBatch(1, 2, 1);
  CHECK(mbr_bufferSample(&out, &e0, &g, 1) == MB_ERR && strstr(mbu_lasterror(), "empty"),
        "empty: %s", mbu_lasterror());
  CHECK(mbr_bufferSample(&out, &e0, &g, 0) == MB_OK, "0 rows from empty");
  freeBatch(&out);
  mbr_bufferFree(&e0);
  mbr_bufferFree(&c);
  mbr_bufferFree(&b);
}

static void test_mixed(void) {
  mbBuffer real, model, other;
  mbr_bufferInit(&real, 3, 2, 100);
  mbr_bufferInit(&model, 3, 2, 1000);
  mbr_bufferInit(&other, 4, 2, 10);
  addIds(&real, 0, 99);          /* real transitions: ids 0..99 */
  mbRng g;
  mbg_seed(&g, 8, 0);
  int64_t n = 256, nreal = -1;
  mbBatch out = newBatch(n, 3, 2);
  /* model empty: everything from real */
  CHECK(mbr_bufferSampleMixed(&out, &nreal, &real, &model, &g, n, 0.05) == MB_OK && nreal == n,
        "empty model buffer: nreal %lld", (long long)nreal);
  addIds(&model, 10000, 10999); /* model transitions: ids 10000.. */
  const double ratios[] = {0.05, 0.0, 1.0, 0.5, 0.1, 0.999, 1.0 / 3};
  for (size_t r = 0; r < sizeof ratios / sizeof ratios[0]; r++) {
    CHECK(mbr_bufferSampleMixed(&out, &nreal, &real, &model, &g, n, ratios[r]) == MB_OK,
          "mixed: %s", mbu_lasterror());
    int64_t want = (int64_t)(n * ratios[r]);   /* int() of the reference */
    CHECK(nreal == want, "ratio %g: nreal %lld, want %lld", ratios[r], (long long)nreal,
          (long long)want);
    int ok = 1;
    for (int64_t i = 0; i < n; i++) {
      int64_t id = (int64_t)out.reward[i];
      int fromreal = id >= 0 && id < 100, frommodel = id >= 10000 && id < 11000;
      ok &= (i < want ? fromreal : frommodel) && rowIs(&out, i, id, 3, 2);
    }
    CHECK(ok, "ratio %g: rows not from the right buffer or not intact", ratios[r]);
  }
  /* the draws are exactly those of two plain samples into the two parts */
  mbRng g1 = g, g2 = g;
  mbBatch ref = newBatch(n, 3, 2);
  mbr_bufferSampleMixed(&out, &nreal, &real, &model, &g1, n, 0.25);
  mbr_bufferSample(&ref, &real, &g2, 64);
  mbBatch tail = {ref.obs + 64 * 3, ref.act + 64 * 2, ref.reward + 64, ref.next_obs + 64 * 3,
                  ref.done + 64};
  mbr_bufferSample(&tail, &model, &g2, n - 64);
  CHECK(nreal == 64 && !memcmp(out.obs, ref.obs, (size_t)n * 3 * 4) &&
        !memcmp(out.reward, ref.reward, (size_t)n * 4), "mixed differs from two samples");
  /* errors */
  CHECK(mbr_bufferSampleMixed(&out, NULL, &real, &model, &g, n, 1.5) == MB_ERR &&
        strstr(mbu_lasterror(), "outside [0, 1]"), "ratio 1.5: %s", mbu_lasterror());
  CHECK(mbr_bufferSampleMixed(&out, NULL, &real, &other, &g, n, 0.5) == MB_ERR &&
        strstr(mbu_lasterror(), "widths differ"), "widths: %s", mbu_lasterror());
  mbBuffer empty;
  mbr_bufferInit(&empty, 3, 2, 10);
  CHECK(mbr_bufferSampleMixed(&out, NULL, &empty, &model, &g, n, 0.5) == MB_ERR &&
        strstr(mbu_lasterror(), "real buffer is empty"), "empty real: %s", mbu_lasterror());
  CHECK(mbr_bufferSampleMixed(&out, &nreal, &empty, &model, &g, n, 0.0) == MB_OK && nreal == 0,
        "ratio 0 with an empty real buffer takes all from model");
  freeBatch(&ref);
  freeBatch(&out);
  mbr_bufferFree(&empty);
  mbr_bufferFree(&other);
  mbr_bufferFree(&model);
  mbr_bufferFree(&real);
}

/* state through the buffer's descriptor (as the Lua layer saves it): every block to a file,
   read back, and restored into a buffer of another capacity through mbr_bufferSetState */
static void roundtrip(mbBuffer *b, const char *path) {
  mbStateBlock blk[MB_STATE_MAXBLOCKS], got[MB_STATE_MAXBLOCKS];
  int n = mbr_bufferStateBlocks(blk, b);
  CHECK(n == 6 && !strcmp(blk[5].name, "data") && blk[5].slab == &b->slab, "%d blocks", n);
  mbTensor data;
  mbt_view(&data, &b->slab);
  data.size[0] = b->size;
  mbIoItem items[MB_STATE_MAXBLOCKS];
  for (int i = 0; i < n; i++) {
    mbIoItem it = {.name = blk[i].name, .dtype = blk[i].dtype, .data = blk[i].data};
    if (blk[i].dtype == MB_F32) it.tensor = &data;
    items[i] = it;
  }
  CHECK(mbu_ioSave(path, items, n, NULL, NULL, 0) == MB_OK, "save: %s", mbu_lasterror());
  mbt_release(&data);
  mbIoFile f;
  CHECK(mbu_ioLoad(&f, path) == MB_OK, "load: %s", mbu_lasterror());
  mbBuffer c;
  mbr_bufferInit(&c, b->obs, b->act, 3);   /* another capacity: load reallocates */
  CHECK(mbr_bufferStateBlocks(got, &c) == n, "block count");
  for (int i = 0; i < f.n; i++) {
    mbIoEntry *e = &f.entries[i];
    for (int k = 0; k < n; k++) {
      if (strcmp(e->name, got[k].name)) continue;
      got[k].data = e->dtype == MB_F32 ? (void *)mbt_data(&e->tensor) : e->data;
      got[k].shape[0] = e->ndim ? e->shape[0] : 0;
    }
  }
  CHECK(mbr_bufferSetState(&c, got) == MB_OK, "set state: %s", mbu_lasterror());
  mbu_ioFree(&f);
  CHECK(c.size == b->size && c.next == b->next && c.capacity == b->capacity &&
        !memcmp(mbt_data(&c.slab), mbt_data(&b->slab), (size_t)(b->size * b->width) * 4),
        "restored buffer differs");
  /* later samples with equal generators are identical, and so is the state after adds */
  mbRng g1, g2;
  mbg_seed(&g1, 4, 4);
  g2 = g1;
  mbBatch o1 = newBatch(300, b->obs, b->act), o2 = newBatch(300, b->obs, b->act);
  int r1 = mbr_bufferSample(&o1, b, &g1, 300), r2 = mbr_bufferSample(&o2, &c, &g2, 300);
  CHECK(r1 == r2 && (b->size == 0) == (r1 == MB_ERR), "sample results %d %d", r1, r2);
  CHECK(r1 == MB_ERR || (!memcmp(o1.obs, o2.obs, 300 * (size_t)b->obs * 4) &&
        !memcmp(o1.reward, o2.reward, 300 * 4) && !memcmp(o1.done, o2.done, 300 * 4)),
        "samples after restore differ");
  addIds(b, 5000, 5006);
  addIds(&c, 5000, 5006);
  CHECK(b->next == c.next && !memcmp(mbt_data(&c.slab), mbt_data(&b->slab),
                                     (size_t)(b->size * b->width) * 4), "adds after restore");
  freeBatch(&o1);
  freeBatch(&o2);
  mbr_bufferFree(&c);
}

static void test_state_roundtrip(void) {
  char path[64];
  snprintf(path, sizeof path, "/tmp/mbpo-test-buffer-%ld.safetensors", (long)getpid());
  mbBuffer b;
  mbr_bufferInit(&b, 5, 2, 40);
  roundtrip(&b, path);        /* empty: a [0 x width] tensor */
  addIds(&b, 0, 16);
  roundtrip(&b, path);        /* partly full */
  addIds(&b, 17, 100);
  roundtrip(&b, path);        /* full and wrapped */
  /* inconsistent states are refused */
  const float *d = mbt_data(&b.slab);
  CHECK(mbr_bufferLoad(&b, d, 41, 0, 40) == MB_ERR, "size > capacity accepted");
  CHECK(mbr_bufferLoad(&b, d, 10, 3, 40) == MB_ERR && strstr(mbu_lasterror(), "inconsistent"),
        "next != size while not full accepted");
  CHECK(mbr_bufferLoad(&b, d, 40, 40, 40) == MB_ERR, "next == capacity accepted");
  CHECK(mbr_bufferLoad(&b, d, 0, 0, 0) == MB_ERR, "capacity 0 accepted");
  /* loading a buffer's own rows into itself works (data aliases the slab) */
  CHECK(mbr_bufferLoad(&b, d, 40, 21, 40) == MB_OK && b.next == 21, "self load");
  unlink(path);
  mbr_bufferFree(&b);
}

/* millions of rows: index arithmetic past 2^24 rows (where float row counts would break),
   wrap-around at the far end, resize of a big buffer; obs=1, act=0 keeps it to 4 floats */
static void test_large_capacity(void) {
  const int64_t cap = ((int64_t)1 << 24) + 3;   /* 16.8M rows x 4 floats = 268 MB */
  mbBuffer b;
  CHECK(mbr_bufferInit(&b, 1, 0, cap) == MB_OK, "init: %s", mbu_lasterror());
  if (!b.slab.storage) return;
  int64_t chunk = 1 << 20;
  float *o = malloc((size_t)chunk * 4), *r = malloc((size_t)chunk * 4),
        *d = calloc((size_t)chunk, 4);
  int64_t id = 0;
  while (id < cap + 5) {  /* ids as floats are exact below 2^24; mark rows with obs = id % 2^20 */
    int64_t n = cap + 5 - id < chunk ? cap + 5 - id : chunk;
    for (int64_t i = 0; i < n; i++) {
      o[i] = (float)((id + i) % chunk);
      r[i] = (float)((id + i) / chunk);
    }
    mbr_bufferAddBatch(&b, o, NULL, r, o, d, n);
    id += n;
  }
  CHECK(b.size == cap && b.next == 5, "size %lld next %lld", (long long)b.size, (long long)b.next);
  /* the oldest row is id 5, the newest id cap + 4 */
  const float *first = mbr_bufferRow(&b, 0), *last = mbr_bufferRow(&b, cap - 1);
  CHECK(first[0] == 5 && first[1] == 0, "oldest row %g %g", first[0], first[1]);
  int64_t lastid = cap + 4;
  CHECK(last[0] == (float)(lastid % chunk) && last[1] == (float)(lastid / chunk),
        "newest row %g %g", last[0], last[1]);
  /* rows straddling the physical end of the slab */
  mbBatch out = {malloc(10 * 4), NULL, malloc(10 * 4), NULL, NULL};
  CHECK(mbr_bufferRows(&out, &b, cap - 8, 8) == MB_OK, "rows");
  int ok = 1;
  for (int i = 0; i < 8; i++) {
    int64_t want = cap - 8 + 5 + i;
    ok &= out.obs[i] == (float)(want % chunk) && out.reward[i] == (float)(want / chunk);
  }
  CHECK(ok, "rows across the wrap point");
  /* shrink to 1000 rows: the newest 1000 */
  CHECK(mbr_bufferResize(&b, 1000) == MB_OK, "resize: %s", mbu_lasterror());
  const float *o0 = mbr_bufferRow(&b, 0);
  int64_t want0 = cap + 4 - 999;
  CHECK(b.size == 1000 && o0[0] == (float)(want0 % chunk) && o0[1] == (float)(want0 / chunk),
        "after resize: oldest %g %g", o0[0], o0[1]);
  mbBuffer huge;
  CHECK(mbr_bufferInit(&huge, 1, 0, (int64_t)1 << 40) == MB_ERR &&
        strstr(mbu_lasterror(), "too large"), "absurd capacity: %s", mbu_lasterror());
  free(out.obs); free(out.reward);
  free(o); free(r); free(d);
  mbr_bufferFree(&b);
}

static void test_errors(void) {
  mbBuffer b;
  CHECK(mbr_bufferInit(&b, 0, 1, 10) == MB_ERR && strstr(mbu_lasterror(), "obs=0"), "obs 0");
  CHECK(b.slab.storage == NULL, "failed init leaves the buffer empty");
  CHECK(mbr_bufferInit(&b, 2, -1, 10) == MB_ERR, "act -1");
  CHECK(mbr_bufferInit(&b, 2, 1, 0) == MB_ERR && strstr(mbu_lasterror(), "at least 1"), "cap 0");
  CHECK(mbr_bufferInit(&b, 2, 1, 3) == MB_OK, "init");
  addIds(&b, 0, 1);
  mbBatch out = newBatch(3, 2, 1);
  CHECK(mbr_bufferRows(&out, &b, 1, 2) == MB_ERR && strstr(mbu_lasterror(), "outside"),
        "rows past the end: %s", mbu_lasterror());
  CHECK(mbr_bufferRows(&out, &b, -1, 1) == MB_ERR, "negative first");
  CHECK(mbr_bufferRows(&out, &b, 2, 0) == MB_OK, "0 rows at the end");
  freeBatch(&out);
  mbBuffer z = {0};
  CHECK(mbr_bufferResize(&z, 3) == MB_ERR, "resize of an uninitialised buffer");
  mbr_bufferFree(&b);
}

int main(void) {
  RUN(test_wraparound);
  RUN(test_addbatch_equals_add);
  RUN(test_resize_random);
  RUN(test_sample_uniform);
  RUN(test_mixed);
  RUN(test_state_roundtrip);
  RUN(test_large_capacity);
  RUN(test_errors);
  return TEST_REPORT();
}
