/* Tests of src/core/io.c: safetensors round trips (contiguous, strided, empty, scalar,
   int64), the byte layout checked by hand, atomic replacement, and damaged files: each
   kind must give MB_ERR with a message naming the damage, and never read out of bounds
   (run under `make asan`). Truncating a good file at every length and flipping header
   bytes must never crash either. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mbpo/core.h"
#include "mbpo/io.h"
#include "mbpo/rng.h"
#include "test.h"

static char dir[256];

/* a path in this test's temporary directory */
static const char *tmppath(const char *name) {
  static char p[512];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return p;
}

static void writeFile(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) { perror(path); exit(2); }
  if (n) fwrite(data, 1, n, f);
  fclose(f);
}

/* reads a whole file (malloc'ed) */
static unsigned char *readFile(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) { *n = 0; return NULL; }
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *buf = malloc((size_t)len + 1);
  *n = fread(buf, 1, (size_t)len, f);
  fclose(f);
  return buf;
}

/* a file made of: 8-byte length of header, header, then `data` bytes of data */
static void writeST(const char *path, const char *header, size_t data) {
  size_t h = strlen(header), n = 8 + h + data;
  unsigned char *buf = calloc(n, 1);
  for (int b = 0; b < 8; b++) buf[b] = (unsigned char)((uint64_t)h >> (8 * b));
  memcpy(buf + 8, header, h);
  for (size_t i = 0; i < data; i++) buf[8 + h + i] = (unsigned char)(i * 7);
  writeFile(path, buf, n);
  free(buf);
}

/* fills a tensor with distinct values (i * 0.5 - 3 in storage order) */
static void fillTensor(mbTensor *t) {
  float *d = t->storage->data;
  for (int64_t i = 0; i < t->storage->size; i++) d[i] = (float)i * 0.5f - 3.0f;
}

/* element at a row-major flat index of any strided tensor (the reference for writes) */
static float elemAt(const mbTensor *t, int64_t flat) {
  int64_t off = t->offset;
  for (int d = t->ndim - 1; d >= 0; d--) {
    off += (flat % t->size[d]) * t->stride[d];
    flat /= t->size[d];
  }
  return t->storage->data[off];
}

static const mbIoEntry *findEntry(const mbIoFile *f, const char *name) {
  for (int i = 0; i < f->n; i++) if (!strcmp(f->entries[i].name, name)) return &f->entries[i];
  return NULL;
}

/* loaded F32 entry equals src element by element (row-major), same shape */
static int sameTensor(const mbIoEntry *e, const mbTensor *src) {
  if (!e || e->dtype != MB_F32 || e->ndim != src->ndim) return 0;
  for (int d = 0; d < src->ndim; d++) if (e->shape[d] != src->size[d]) return 0;
  if (!mbt_isContiguous(&e->tensor) || mbt_numel(&e->tensor) != mbt_numel(src)) return 0;
  const float *x = mbt_data(&e->tensor);
  for (int64_t i = 0; i < mbt_numel(src); i++) if (x[i] != elemAt(src, i)) return 0;
  return 1;
}

static void test_roundtrip(void) {
  mbTensor a, s, z, base, tr, nar;
  int64_t sa[3] = {2, 3, 4}, sz[2] = {0, 5}, sb[2] = {5, 7};
  CHECK(mbt_init(&a, 3, sa) == MB_OK, "init");
  CHECK(mbt_init(&s, 0, NULL) == MB_OK, "init scalar");
  CHECK(mbt_init(&z, 2, sz) == MB_OK, "init empty");
  CHECK(mbt_init(&base, 2, sb) == MB_OK, "init base");
  fillTensor(&a); fillTensor(&s); fillTensor(&base);
  s.storage->data[0] = 42.25f;
  /* a transposed view [7 x 5] and a narrowed view rows 1..3, columns 2..6 of base */
  mbt_view(&tr, &base);
  tr.size[0] = 7; tr.size[1] = 5; tr.stride[0] = 1; tr.stride[1] = 7;
  mbt_view(&nar, &base);
  nar.offset = 1 * 7 + 2; nar.size[0] = 3; nar.size[1] = 5;
  CHECK(!mbt_isContiguous(&tr) && !mbt_isContiguous(&nar), "views should be strided");

  int64_t counters[3] = {-5, 0, (int64_t)1 << 40}, step = 123456789012345;
  double dbl[3] = {0.1, -0.0, 1e-310};
  uint64_t words[4] = {0, ~(uint64_t)0, (uint64_t)1 << 63, 0x5d9189e203382fccULL};
  mbIoItem items[9] = {
    {.name = "a", .dtype = MB_F32, .tensor = &a},
    {.name = "scalar", .dtype = MB_F32, .tensor = &s},
    {.name = "empty", .dtype = MB_F32, .tensor = &z},
    {.name = "layer.0 \"quoted\"/name", .dtype = MB_F32, .tensor = &tr},
    {.name = "narrow", .dtype = MB_F32, .tensor = &nar},
    {.name = "counters", .dtype = MB_I64, .ints = counters, .ndim = 1, .shape = {3}},
    {.name = "step", .dtype = MB_I64, .ints = &step, .ndim = 0},
    {.name = "doubles", .dtype = MB_F64, .data = dbl, .ndim = 2, .shape = {3, 1}},
    {.name = "words", .dtype = MB_U64, .data = words, .ndim = 1, .shape = {4}},
  };
  const char *keys[2] = {"format", "note"}, *values[2] = {"pt", "line\nbreak \"q\" \xc3\xa9"};
  const char *path = tmppath("rt.safetensors");
  CHECK(mbu_ioSave(path, items, 9, keys, values, 2) == MB_OK, "save: %s", mbu_lasterror());

  mbIoFile f;
  CHECK(mbu_ioLoad(&f, path) == MB_OK, "load: %s", mbu_lasterror());
  CHECK(f.n == 9, "entries %d", f.n);
  const mbIoEntry *d = findEntry(&f, "doubles"), *w = findEntry(&f, "words");
  CHECK(d && d->dtype == MB_F64 && d->ndim == 2 && d->shape[0] == 3 && d->shape[1] == 1 &&
        !memcmp(d->data, dbl, sizeof dbl), "F64 doubles differ");
  CHECK(w && w->dtype == MB_U64 && w->ndim == 1 && w->shape[0] == 4 &&
        !memcmp(w->data, words, sizeof words), "U64 words differ");
  CHECK(sameTensor(findEntry(&f, "a"), &a), "a differs");
  CHECK(sameTensor(findEntry(&f, "scalar"), &s), "scalar differs");
  CHECK(sameTensor(findEntry(&f, "empty"), &z), "empty differs");
  CHECK(sameTensor(findEntry(&f, "layer.0 \"quoted\"/name"), &tr), "transposed view differs");
  CHECK(sameTensor(findEntry(&f, "narrow"), &nar), "narrowed view differs");
  const mbIoEntry *c = findEntry(&f, "counters"), *st = findEntry(&f, "step");
  CHECK(c && c->dtype == MB_I64 && c->ndim == 1 && c->shape[0] == 3 &&
        !memcmp(c->ints, counters, sizeof counters), "counters differ");
  CHECK(st && st->dtype == MB_I64 && st->ndim == 0 && st->ints[0] == step, "step differs");
  CHECK(f.nmeta == 2, "nmeta %d", f.nmeta);
  for (int i = 0; i < f.nmeta; i++) {
    int k = !strcmp(f.keys[i], "format") ? 0 : !strcmp(f.keys[i], "note") ? 1 : -1;
    CHECK(k >= 0 && !strcmp(f.values[i], values[k]), "metadata %s", f.keys[i]);
  }
  /* entries come back in data order, which is the order they were written */
  CHECK(!strcmp(f.entries[0].name, "a") && !strcmp(f.entries[8].name, "words"), "order");
  mbu_ioFree(&f);
  CHECK(f.n == 0 && f.entries == NULL, "free must zero the file");
  /* no temporary file is left behind */
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
  CHECK(access(tmp, F_OK) != 0, "temporary file left: %s", tmp);
  mbt_release(&tr); mbt_release(&nar);
  mbt_release(&a); mbt_release(&s); mbt_release(&z); mbt_release(&base);
}

/* the bytes on disk, checked without our reader: length prefix, padding, offsets, data */
static void test_layout(void) {
  mbTensor t;
  int64_t shape[2] = {2, 3};
  mbt_init(&t, 2, shape);
  for (int i = 0; i < 6; i++) t.storage->data[i] = (float)i + 0.25f;
  int64_t n = 7;
  mbIoItem items[2] = {{.name = "w", .dtype = MB_F32, .tensor = &t},
                       {.name = "n", .dtype = MB_I64, .ints = &n, .ndim = 0}};
  const char *path = tmppath("layout.safetensors");
  CHECK(mbu_ioSave(path, items, 2, NULL, NULL, 0) == MB_OK, "save: %s", mbu_lasterror());
  size_t len;
  unsigned char *buf = readFile(path, &len);
  uint64_t h = 0;
  for (int b = 0; b < 8; b++) h |= (uint64_t)buf[b] << (8 * b);
  CHECK(h % 8 == 0, "header length %llu not a multiple of 8", (unsigned long long)h);
  CHECK(len == 8 + h + 24 + 8, "file size %zu for header %llu", len, (unsigned long long)h);
  char *json = malloc(h + 1);
  memcpy(json, buf + 8, h);
  json[h] = 0;
  CHECK(json[0] == '{', "header starts with %c", json[0]);
  size_t end = strlen(json);
  while (end > 0 && json[end - 1] == ' ') end--;
  CHECK(end > 0 && json[end - 1] == '}' && h - end < 8, "padding: %s", json);
  CHECK(strstr(json, "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}") != NULL,
        "w entry: %s", json);
  CHECK(strstr(json, "\"n\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[24,32]}") != NULL,
        "n entry: %s", json);
  CHECK(strstr(json, "__metadata__") == NULL, "no metadata expected");
  /* data: little-endian float32 then int64 */
  const unsigned char *d = buf + 8 + h;
  int ok = 1;
  for (int i = 0; i < 6; i++) {
    uint32_t u = 0;
    for (int b = 0; b < 4; b++) u |= (uint32_t)d[4 * i + b] << (8 * b);
    float x;
    memcpy(&x, &u, 4);
    ok &= x == (float)i + 0.25f;
  }
  CHECK(ok, "float data differs");
  uint64_t v = 0;
  for (int b = 0; b < 8; b++) v |= (uint64_t)d[24 + b] << (8 * b);
  CHECK(v == 7, "int64 data %llu", (unsigned long long)v);
  free(json);
  free(buf);
  mbt_release(&t);
}

static void test_atomic_and_errors(void) {
  int64_t one = 1, two = 2;
  mbIoItem a = {.name = "x", .dtype = MB_I64, .ints = &one};
  mbIoItem b = {.name = "x", .dtype = MB_I64, .ints = &two};
  const char *path = tmppath("atomic.safetensors");
  CHECK(mbu_ioSave(path, &a, 1, NULL, NULL, 0) == MB_OK, "save 1");
  CHECK(mbu_ioSave(path, &b, 1, NULL, NULL, 0) == MB_OK, "save 2 over 1");
  mbIoFile f;
  CHECK(mbu_ioLoad(&f, path) == MB_OK && f.n == 1 && f.entries[0].ints[0] == 2,
        "the second save must replace the first");
  mbu_ioFree(&f);
  /* a missing directory: error, nothing created */
  CHECK(mbu_ioSave(tmppath("no/such/dir/x.safetensors"), &a, 1, NULL, NULL, 0) == MB_ERR &&
        strstr(mbu_lasterror(), "cannot create"), "missing dir: %s", mbu_lasterror());
  /* bad items are refused before anything is written */
  mbIoItem dup[2] = {a, b};
  CHECK(mbu_ioSave(tmppath("dup.safetensors"), dup, 2, NULL, NULL, 0) == MB_ERR &&
        strstr(mbu_lasterror(), "duplicate name 'x'"), "dup: %s", mbu_lasterror());
  CHECK(access(tmppath("dup.safetensors"), F_OK) != 0, "nothing may be written");
  mbIoItem meta = {.name = "__metadata__", .dtype = MB_I64, .ints = &one};
  CHECK(mbu_ioSave(tmppath("m.safetensors"), &meta, 1, NULL, NULL, 0) == MB_ERR &&
        strstr(mbu_lasterror(), "reserved"), "reserved: %s", mbu_lasterror());
  mbIoItem neg = {.name = "neg", .dtype = MB_I64, .ints = &one, .ndim = 1, .shape = {-2}};
  CHECK(mbu_ioSave(tmppath("neg.safetensors"), &neg, 1, NULL, NULL, 0) == MB_ERR,
        "negative shape accepted");
  mbTensor dead = {0};
  mbIoItem d = {.name = "dead", .dtype = MB_F32, .tensor = &dead};
  CHECK(mbu_ioSave(tmppath("dead.safetensors"), &d, 1, NULL, NULL, 0) == MB_ERR,
        "released tensor accepted");
  /* loading: missing file, a directory */
  CHECK(mbu_ioLoad(&f, tmppath("missing.safetensors")) == MB_ERR &&
        strstr(mbu_lasterror(), "cannot open"), "missing: %s", mbu_lasterror());
  CHECK(mbu_ioLoad(&f, dir) == MB_ERR && strstr(mbu_lasterror(), "not a regular file"),
        "directory: %s", mbu_lasterror());
  CHECK(f.n == 0 && f.entries == NULL, "failed load must leave f empty");
}

/* one damaged file: load must fail with a message containing want */
static void damaged(const char *header, size_t data, const char *want) {
  const char *path = tmppath("bad.safetensors");
  writeST(path, header, data);
  mbIoFile f;
  int rc = mbu_ioLoad(&f, path);
  CHECK(rc == MB_ERR, "accepted: %s", header);
  CHECK(rc == MB_OK || strstr(mbu_lasterror(), want), "for %s: message '%s' lacks '%s'",
        header, mbu_lasterror(), want);
  CHECK(f.n == 0 && f.entries == NULL && f.keys == NULL, "f not empty after failure");
  if (rc == MB_OK) mbu_ioFree(&f);
}

/* a file with one tensor "t" of the given header fields (JSON text) */
static void bad1(const char *dtype, const char *shape, const char *offsets, size_t data,
                 const char *want) {
  char h[512];
  snprintf(h, sizeof h, "{\"t\":{\"dtype\":%s,\"shape\":%s,\"data_offsets\":%s}}", dtype,
           shape, offsets);
  damaged(h, data, want);
}

#define T1 "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

static void test_damaged(void) {
  /* the good file these are variations of loads */
  writeST(tmppath("good.safetensors"), "{" T1 "}", 8);
  mbIoFile f;
  CHECK(mbu_ioLoad(&f, tmppath("good.safetensors")) == MB_OK, "good: %s", mbu_lasterror());
  mbu_ioFree(&f);

  damaged("{\"t\":", 8, "malformed JSON");                                  /* bad JSON */
  damaged("[1, 2]", 0, "not a JSON object");                                /* not an object */
  damaged("\"s\"", 0, "not a JSON object");
  damaged("{\"t\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "missing 'data_offsets'");
  damaged("{\"t\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "missing 'dtype'");
  damaged("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "missing 'shape'");
  bad1("\"F32\"", "[2]", "[0,8]", 4, "run past the data");
  bad1("\"F32\"", "[2]", "[8,0]", 8, "end before");
  damaged("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap");
  damaged("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "leave a gap");
  bad1("\"F16\"", "[4]", "[0,8]", 8, "unsupported dtype 'F16'");
  bad1("7", "[2]", "[0,8]", 8, "dtype is not a string");
  bad1("\"F32\"", "[3]", "[0,8]", 8, "shape needs 12 bytes");
  damaged("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
          "\"data_offsets\":[0,8]}}", 8, "overflows");
  bad1("\"F32\"", "[-2]", "[0,8]", 8, "not a non-negative integer");
  bad1("\"F32\"", "[2.5]", "[0,8]", 8, "not a non-negative integer");
  bad1("\"F32\"", "[1,1,1,1,1,1,1,1,2]", "[0,8]", 8, "9 dimensions");
  bad1("\"F32\"", "2", "[0,8]", 8, "shape is not an array");
  bad1("\"F32\"", "[2]", "[0,8,9]", 8, "array of two");
  bad1("\"F32\"", "[2]", "[0,1e300]", 8, "not non-negative");
  bad1("\"F32\"", "[2]", "[-8,0]", 8, "not non-negative");
  bad1("\"F32\"", "[2],\"shape\":[2]", "[0,8]", 8, "'shape' appears twice");
  damaged("{" T1 "," T1 "}", 8, "appears twice");                            /* duplicate name */
  damaged("{\"t\":[0,8]}", 8, "not a JSON object");
  damaged("{" T1 "}", 12, "cover 8 bytes but the data section has 12");      /* trailing data */
  damaged("{" T1 "} x", 8, "bytes after the JSON");                          /* trailing junk */
  damaged("{\"__metadata__\":{\"a\":1}," T1 "}", 8, "is not a string");
  damaged("{\"__metadata__\":[]," T1 "}", 8, "__metadata__ is not a JSON object");
  damaged("{\"__metadata__\":{}, \"__metadata__\":{}," T1 "}", 8, "__metadata__ appears 2 times");
  damaged("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}," T1 "}", 8, "key 'a' appears twice");
  damaged("", 0, "too small");

  /* header length fields that lie */
  unsigned char buf[64] = {0};
  writeFile(tmppath("b1"), buf, 0);
  CHECK(mbu_ioLoad(&f, tmppath("b1")) == MB_ERR && strstr(mbu_lasterror(), "too short"),
        "empty file: %s", mbu_lasterror());
  writeFile(tmppath("b2"), buf, 5);
  CHECK(mbu_ioLoad(&f, tmppath("b2")) == MB_ERR && strstr(mbu_lasterror(), "too short"),
        "5-byte file: %s", mbu_lasterror());
  buf[0] = 200;  /* header length 200, file of 64 bytes */
  writeFile(tmppath("b3"), buf, 64);
  CHECK(mbu_ioLoad(&f, tmppath("b3")) == MB_ERR && strstr(mbu_lasterror(), "past the end"),
        "header past the end: %s", mbu_lasterror());
  memset(buf, 0xff, 8);  /* header length 2^64 - 1 */
  writeFile(tmppath("b4"), buf, 64);
  CHECK(mbu_ioLoad(&f, tmppath("b4")) == MB_ERR && strstr(mbu_lasterror(), "too large"),
        "absurd header length: %s", mbu_lasterror());
  memset(buf, 0, 8);
  buf[3] = 0x10;  /* 256 MiB: above the cap */
  writeFile(tmppath("b5"), buf, 64);
  CHECK(mbu_ioLoad(&f, tmppath("b5")) == MB_ERR && strstr(mbu_lasterror(), "too large"),
        "large header length: %s", mbu_lasterror());
}

/* every truncation of a good file fails cleanly; random header corruption never crashes */
static void test_fuzz(void) {
  mbTensor t;
  int64_t shape[2] = {3, 5};
  mbt_init(&t, 2, shape);
  fillTensor(&t);
  int64_t k[2] = {1, 2};
  mbIoItem items[2] = {{.name = "weight", .dtype = MB_F32, .tensor = &t},
                       {.name = "k", .dtype = MB_I64, .ints = k, .ndim = 1, .shape = {2}}};
  const char *kk[1] = {"m"}, *vv[1] = {"v"};
  const char *path = tmppath("fuzz.safetensors");
  CHECK(mbu_ioSave(path, items, 2, kk, vv, 1) == MB_OK, "save");
  size_t len;
  unsigned char *good = readFile(path, &len);
  int accepted = 0;
  for (size_t cut = 0; cut < len; cut++) {
    writeFile(tmppath("cut"), good, cut);
    mbIoFile f;
    if (mbu_ioLoad(&f, tmppath("cut")) == MB_OK) { accepted++; mbu_ioFree(&f); }
  }
  CHECK(accepted == 0, "%d truncated files were accepted", accepted);
  /* flip random bytes of the header (length prefix included): load or fail, never crash */
  mbRng g;
  mbg_seed(&g, 77, 0);
  unsigned char *bad = malloc(len);
  uint64_t h = 0;
  for (int b = 0; b < 8; b++) h |= (uint64_t)good[b] << (8 * b);
  int loaded = 0, failed = 0;
  for (int trial = 0; trial < 400; trial++) {
    memcpy(bad, good, len);
    int flips = 1 + (int)mbg_below(&g, 3);
    for (int i = 0; i < flips; i++) bad[mbg_below(&g, 8 + h)] = (unsigned char)mbg_below(&g, 256);
    writeFile(tmppath("flip"), bad, len);
    mbIoFile f;
    if (mbu_ioLoad(&f, tmppath("flip")) == MB_OK) {
      loaded++;
      /* whatever loaded stays within the data it claims */
      for (int i = 0; i < f.n; i++) CHECK(f.entries[i].end <= len, "entry past the file");
      mbu_ioFree(&f);
    } else {
      failed++;
      CHECK(mbu_lasterror()[0] != 0, "failure without a message");
    }
  }
  CHECK(failed > 0, "no corruption detected in 400 trials");
  free(bad);
  free(good);
  mbt_release(&t);
}

/* a few MB tensor written straight from its memory and read back */
/* the checksum against a byte-at-a-time reading of its definition: little-endian words
   (tail zero-padded), word w into lane w % 4 as lane = (lane ^ w) * 0x100000001b3, then
   h = len; h = mix(h ^ lane_l) + l for l = 0..3 */
static uint64_t refMix(uint64_t h) {
  h ^= h >> 33; h *= 0xff51afd7ed558ccdULL; h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53ULL;
  return h ^ (h >> 33);
}
static uint64_t refChecksum(const unsigned char *p, size_t n) {
  uint64_t lane[4] = {0xcbf29ce484222325ULL, 0x84222325cbf29ce4ULL, 0x9ce484222325cbf2ULL,
                      0x2325cbf29ce48422ULL};
  for (size_t w = 0; w * 8 < n; w++) {
    uint64_t word = 0;
    for (size_t b = 0; b < 8 && w * 8 + b < n; b++) word |= (uint64_t)p[w * 8 + b] << (8 * b);
    lane[w % 4] = (lane[w % 4] ^ word) * 0x100000001b3ULL;
  }
  uint64_t h = (uint64_t)n;
  for (int l = 0; l < 4; l++) h = refMix(h ^ lane[l]) + (uint64_t)l;
  return h;
}

static void test_checksum(void) {
  char path[] = "/tmp/mbpo-test-ck-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0, "mkstemp");
  close(fd);
  /* sizes around the word, lane and 1 MiB chunk boundaries */
  size_t sizes[] = {0, 1, 7, 8, 9, 31, 32, 33, 1000, (1 << 20) - 3, 1 << 20, (1 << 20) + 13,
                    (3 << 20) + 5};
  size_t maxn = (3 << 20) + 5;
  unsigned char *buf = malloc(maxn);
  uint64_t x = 88172645463325252ULL;
  for (size_t i = 0; i < maxn; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17; buf[i] = (unsigned char)x;
  }
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    size_t n = sizes[k];
    FILE *f = fopen(path, "wb");
    if (n) fwrite(buf, 1, n, f);
    fclose(f);
    uint64_t h = 0;
    CHECK(mbu_ioChecksum(&h, path) == MB_OK, "checksum of %zu bytes: %s", n, mbu_lasterror());
    CHECK(h == refChecksum(buf, n), "%zu bytes: %016llx vs reference %016llx", n,
          (unsigned long long)h, (unsigned long long)refChecksum(buf, n));
  }
  /* every single-byte change of a 1000-byte file, and a truncation, change it */
  uint64_t base = refChecksum(buf, 1000);
  int same = 0;
  for (size_t i = 0; i < 1000; i++) {
    buf[i] ^= 0x10;
    same += refChecksum(buf, 1000) == base;
    buf[i] ^= 0x10;
  }
  CHECK(same == 0, "%d byte flips kept the checksum", same);
  CHECK(refChecksum(buf, 999) != base, "truncation kept the checksum");
  uint64_t h;
  CHECK(mbu_ioChecksum(&h, "/nonexistent/file") == MB_ERR, "missing file");
  /* atomic text writes */
  CHECK(mbu_ioWriteText(path, "abc\n", 4) == MB_OK, "write_text");
  FILE *f = fopen(path, "rb");
  char back[8] = {0};
  CHECK(f && fread(back, 1, 8, f) == 4 && !memcmp(back, "abc\n", 4), "write_text content");
  if (f) fclose(f);
  CHECK(mbu_ioWriteText("/nonexistent/dir/x", "a", 1) == MB_ERR, "write_text into a missing dir");
  free(buf);
  unlink(path);
}

static void test_large(void) {
  mbTensor t;
  int64_t shape[2] = {100000, 13};
  CHECK(mbt_init(&t, 2, shape) == MB_OK, "init");
  mbRng g;
  mbg_seed(&g, 5, 0);
  mbg_normalFill(t.storage->data, &g, (size_t)t.storage->size);
  mbIoItem it = {.name = "big", .dtype = MB_F32, .tensor = &t};
  const char *path = tmppath("big.safetensors");
  CHECK(mbu_ioSave(path, &it, 1, NULL, NULL, 0) == MB_OK, "save");
  mbIoFile f;
  CHECK(mbu_ioLoad(&f, path) == MB_OK, "load: %s", mbu_lasterror());
  CHECK(f.n == 1 && !memcmp(mbt_data(&f.entries[0].tensor), t.storage->data,
                            (size_t)t.storage->size * 4), "big tensor differs");
  mbu_ioFree(&f);
  mbt_release(&t);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/mbpo-test-io-XXXXXX");
  if (!mkdtemp(dir)) { perror("mkdtemp"); return 2; }
  RUN(test_roundtrip);
  RUN(test_checksum);
  RUN(test_layout);
  RUN(test_atomic_and_errors);
  RUN(test_damaged);
  RUN(test_fuzz);
  RUN(test_large);
  /* remove the files made above, then the directory */
  const char *names[] = {"rt.safetensors", "layout.safetensors", "atomic.safetensors",
                         "bad.safetensors", "good.safetensors", "fuzz.safetensors", "cut",
                         "flip", "big.safetensors", "b1", "b2", "b3", "b4", "b5"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) unlink(tmppath(names[i]));
  rmdir(dir);
  return TEST_REPORT();
}
