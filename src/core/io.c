/* Safetensors read and write (see include/mbpo/io.h for the layout), JSON through cJSON.
   Writing streams each tensor from its own memory (contiguous tensors in one write call,
   strided ones through a small bounce buffer), so multi-GB replay buffers need no copy.
   Reading checks every header field against the file size before allocating or reading. */
#include "mbpo/io.h"
#include "mbpo/core.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "mbpo io writes the host's bytes as little-endian data: port the byte swaps first"
#endif

/* integers above 2^53 do not survive cJSON's doubles: reject them in headers */
#define MAXJSONINT 9007199254740992.0

static char *dupstr(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = mbu_malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static size_t dtypeSize(int dtype) { return dtype == MB_F32 ? 4 : 8; }

/* Writing ------------------------------------------------------------------------------ */

/* write(2) until all n bytes are out (EINTR and partial writes retried) */
static int writeAll(int fd, const void *p, size_t n, const char *path) {
  const char *c = p;
  while (n > 0) {
    size_t chunk = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
    ssize_t w = write(fd, c, chunk);
    if (w < 0) {
      if (errno == EINTR) continue;
      return mbu_error("%s: write failed: %s", path, strerror(errno));
    }
    c += w;
    n -= (size_t)w;
  }
  return MB_OK;
}

/* writes a non-contiguous tensor's elements in row-major order through buf[cap] */
static int writeStrided(int fd, const mbTensor *t, float *buf, size_t cap, const char *path) {
  int nd = t->ndim;
  int64_t inner = nd ? t->size[nd - 1] : 1, istride = nd ? t->stride[nd - 1] : 1;
  int64_t outer = 1;
  for (int d = 0; d + 1 < nd; d++) outer *= t->size[d];
  if (inner == 0 || outer == 0) return MB_OK;
  int64_t idx[MB_MAXDIM] = {0};   /* index over the outer dims 0..nd-2 */
  const float *base = mbt_data(t);
  size_t k = 0;
  for (int64_t o = 0; o < outer; o++) {
    int64_t off = 0;
    for (int d = 0; d + 1 < nd; d++) off += idx[d] * t->stride[d];
    const float *row = base + off;
    for (int64_t i = 0; i < inner; i++) {
      buf[k++] = row[i * istride];
      if (k == cap) {
        if (writeAll(fd, buf, k * sizeof(float), path) < 0) return MB_ERR;
        k = 0;
      }
    }
    for (int d = nd - 2; d >= 0; d--) {  /* odometer step over the outer dims */
      if (++idx[d] < t->size[d]) break;
      idx[d] = 0;
    }
  }
  return k ? writeAll(fd, buf, k * sizeof(float), path) : MB_OK;
}

/* a JSON integer written exactly (cJSON would go through a double) */
static cJSON *rawInt(uint64_t v) {
  char s[32];
  snprintf(s, sizeof s, "%llu", (unsigned long long)v);
  return cJSON_CreateRaw(s);
}

/* number of elements of an item, or -1 (error recorded) when its shape is invalid */
static int64_t itemNumel(const mbIoItem *it) {
  if (it->dtype == MB_F32) {
    if (!it->tensor || !it->tensor->storage)
      return mbu_error("io.save: tensor '%s' is empty (released)", it->name), -1;
    return mbt_numel(it->tensor);
  }
  if (it->ndim < 0 || it->ndim > MB_MAXDIM)
    return mbu_error("io.save: '%s' has %d dimensions", it->name, it->ndim), -1;
  int64_t n = 1;
  for (int d = 0; d < it->ndim; d++) {
    if (it->shape[d] < 0 || (it->shape[d] > 0 && n > INT64_MAX / 8 / it->shape[d]))
      return mbu_error("io.save: '%s' has a bad shape", it->name), -1;
    n *= it->shape[d];
  }
  if (n > 0 && !it->ints) return mbu_error("io.save: '%s' has no values", it->name), -1;
  return n;
}

/* builds the JSON header text (malloc'ed by cJSON: free with cJSON_free) */
static char *buildHeader(const mbIoItem *items, int n, const char *const *keys,
                         const char *const *values, int nmeta) {
  cJSON *root = cJSON_CreateObject();
  if (!root) return mbu_error("io.save: out of memory building the header"), NULL;
  int ok = 1;
  if (nmeta > 0) {  /* metadata first, as the reference writer does */
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    ok = meta != NULL;
    for (int i = 0; ok && i < nmeta; i++)
      ok = cJSON_AddStringToObject(meta, keys[i], values[i]) != NULL;
  }
  uint64_t offset = 0;
  for (int i = 0; ok && i < n; i++) {
    const mbIoItem *it = &items[i];
    int nd = it->dtype == MB_F32 ? it->tensor->ndim : it->ndim;
    const int64_t *shape = it->dtype == MB_F32 ? it->tensor->size : it->shape;
    uint64_t bytes = (uint64_t)itemNumel(it) * dtypeSize(it->dtype);
    cJSON *e = cJSON_AddObjectToObject(root, it->name);
    cJSON *sh = e ? cJSON_CreateArray() : NULL, *off = sh ? cJSON_CreateArray() : NULL;
    ok = off && cJSON_AddStringToObject(e, "dtype", mbu_dtypeName(it->dtype));
    for (int d = 0; ok && d < nd; d++) ok = cJSON_AddItemToArray(sh, rawInt((uint64_t)shape[d]));
    ok = ok && cJSON_AddItemToArray(off, rawInt(offset)) &&
         cJSON_AddItemToArray(off, rawInt(offset + bytes));
    if (sh && !cJSON_AddItemToObject(e, "shape", sh)) { cJSON_Delete(sh); ok = 0; }
    if (off && !cJSON_AddItemToObject(e, "data_offsets", off)) { cJSON_Delete(off); ok = 0; }
    offset += bytes;
  }
  char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  if (!text) mbu_error("io.save: out of memory building the header");
  return text;
}

/* fsync of the directory holding path, so the rename itself is durable (best effort) */
static void syncDir(const char *path) {
  char dir[4096];
  const char *slash = strrchr(path, '/');
  if (!slash) snprintf(dir, sizeof dir, ".");
  else if (slash == path) snprintf(dir, sizeof dir, "/");
  else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) { (void)fsync(fd); close(fd); }
}

/* Order of work: validate every item, build the header, write PATH.tmp-<pid> (length,
   header, padding, then each array in item order), fsync, close, rename over PATH, fsync
   the directory. Any failure unlinks the temporary file and leaves PATH as it was. */
int mbu_ioSave(const char *path, const mbIoItem *items, int n,
               const char *const *keys, const char *const *values, int nmeta) {
  /* check everything before touching the disk */
  for (int i = 0; i < n; i++) {
    const mbIoItem *it = &items[i];
    if (!it->name) return mbu_error("io.save: item %d has no name", i + 1);
    if (!strcmp(it->name, "__metadata__"))
      return mbu_error("io.save: '__metadata__' is reserved for the metadata");
    if (it->dtype != MB_F32 && it->dtype != MB_I64 && it->dtype != MB_F64 && it->dtype != MB_U64)
      return mbu_error("io.save: '%s' has an unknown dtype %d", it->name, it->dtype);
    if (itemNumel(it) < 0) return MB_ERR;
    for (int j = 0; j < i; j++)
      if (!strcmp(items[j].name, it->name))
        return mbu_error("io.save: duplicate name '%s'", it->name);
  }
  for (int i = 0; i < nmeta; i++)
    if (!keys[i] || !values[i]) return mbu_error("io.save: metadata pair %d is incomplete", i + 1);

  char *json = buildHeader(items, n, keys, values, nmeta);
  if (!json) return MB_ERR;
  size_t len = strlen(json), padded = (len + 7) & ~(size_t)7;

  char tmp[4200];
  if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof tmp) {
    cJSON_free(json);
    return mbu_error("io.save: path too long: %s", path);
  }
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    cJSON_free(json);
    return mbu_error("%s: cannot create: %s", tmp, strerror(errno));
  }
  float *bounce = NULL;
  int rc = MB_OK;
  /* 8-byte little-endian header length, the header, spaces up to a multiple of 8 */
  unsigned char lenbytes[8];
  for (int b = 0; b < 8; b++) lenbytes[b] = (unsigned char)((uint64_t)padded >> (8 * b));
  const char spaces[8] = "        ";
  if (writeAll(fd, lenbytes, 8, tmp) < 0 || writeAll(fd, json, len, tmp) < 0 ||
      writeAll(fd, spaces, padded - len, tmp) < 0)
    rc = MB_ERR;
  cJSON_free(json);

  /* the data, in item order (the offsets in the header follow the same order) */
  const size_t cap = 1 << 16;
  for (int i = 0; rc == MB_OK && i < n; i++) {
    const mbIoItem *it = &items[i];
    if (it->dtype != MB_F32) {
      rc = writeAll(fd, it->data, (size_t)itemNumel(it) * 8, tmp);
    } else if (mbt_isContiguous(it->tensor)) {
      if (mbt_numel(it->tensor) > 0)
        rc = writeAll(fd, mbt_data(it->tensor), (size_t)mbt_numel(it->tensor) * 4, tmp);
    } else {
      if (!bounce && !(bounce = mbu_malloc(cap * sizeof(float)))) { rc = MB_ERR; break; }
      rc = writeStrided(fd, it->tensor, bounce, cap, tmp);
    }
  }
  mbu_free(bounce);
  if (rc == MB_OK && fsync(fd) != 0) rc = mbu_error("%s: fsync failed: %s", tmp, strerror(errno));
  if (close(fd) != 0 && rc == MB_OK) rc = mbu_error("%s: close failed: %s", tmp, strerror(errno));
  if (rc == MB_OK && rename(tmp, path) != 0)
    rc = mbu_error("%s: cannot rename into place: %s", path, strerror(errno));
  if (rc != MB_OK) {
    unlink(tmp);
    return MB_ERR;
  }
  syncDir(path);
  return MB_OK;
}

/* Small files (a checkpoint's manifest): the same order of work as mbu_ioSave, so a full
   disk or a crash leaves PATH as it was. */
int mbu_ioWriteText(const char *path, const char *text, size_t len) {
  char tmp[4200];
  if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof tmp)
    return mbu_error("io.write_text: path too long: %s", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return mbu_error("%s: cannot create: %s", tmp, strerror(errno));
  int rc = writeAll(fd, text, len, tmp);
  if (rc == MB_OK && fsync(fd) != 0) rc = mbu_error("%s: fsync failed: %s", tmp, strerror(errno));
  if (close(fd) != 0 && rc == MB_OK) rc = mbu_error("%s: close failed: %s", tmp, strerror(errno));
  if (rc == MB_OK && rename(tmp, path) != 0)
    rc = mbu_error("%s: cannot rename into place: %s", path, strerror(errno));
  if (rc != MB_OK) {
    unlink(tmp);
    return MB_ERR;
  }
  syncDir(path);
  return MB_OK;
}

/* Checksum of a file's bytes: four interleaved FNV-1a-style lanes over little-endian 64-bit
   words (the tail zero-padded into one last word), mixed with the length at the end. Not
   cryptographic: it catches damage (flipped bits, truncation, swapped blocks), not attacks. */
#define CK_PRIME 0x100000001b3ULL
static uint64_t ckMix(uint64_t h) {
  h ^= h >> 33; h *= 0xff51afd7ed558ccdULL; h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53ULL;
  return h ^ (h >> 33);
}

uint64_t mbu_checksumBytes(const void *data, size_t n, uint64_t lanes[4], uint64_t *total) {
  const unsigned char *p = data;
  /* callers stream whole multiples of 32 bytes except for the last chunk */
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    size_t lane = ((*total + i) >> 3) & 3;
    lanes[lane] = (lanes[lane] ^ w) * CK_PRIME;
  }
  if (i < n) {
    uint64_t w = 0;
    memcpy(&w, p + i, n - i);
    size_t lane = ((*total + i) >> 3) & 3;
    lanes[lane] = (lanes[lane] ^ w) * CK_PRIME;
  }
  *total += n;
  uint64_t h = (uint64_t)*total;
  for (int l = 0; l < 4; l++) h = ckMix(h ^ lanes[l]) + (uint64_t)l;
  return h;
}

int mbu_ioChecksum(uint64_t *out, const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return mbu_error("%s: cannot open: %s", path, strerror(errno));
  enum { CHUNK = 1 << 20 };
  unsigned char *buf = mbu_malloc(CHUNK);
  if (!buf) { close(fd); return MB_ERR; }
  uint64_t lanes[4] = {0xcbf29ce484222325ULL, 0x84222325cbf29ce4ULL, 0x9ce484222325cbf2ULL,
                       0x2325cbf29ce48422ULL};
  uint64_t total = 0, h = mbu_checksumBytes(buf, 0, lanes, &total);
  int rc = MB_OK;
  for (;;) {
    size_t got = 0;
    while (got < CHUNK) {  /* fill whole chunks so only the file's end is a partial word */
      ssize_t r = read(fd, buf + got, CHUNK - got);
      if (r < 0) {
        if (errno == EINTR) continue;
        rc = mbu_error("%s: read failed: %s", path, strerror(errno));
        break;
      }
      if (r == 0) break;
      got += (size_t)r;
    }
    if (rc != MB_OK) break;
    if (got > 0) h = mbu_checksumBytes(buf, got, lanes, &total);
    if (got < CHUNK) break;
  }
  mbu_free(buf);
  close(fd);
  if (rc == MB_OK) *out = h;
  return rc;
}

/* Reading ------------------------------------------------------------------------------ */

void mbu_ioFree(mbIoFile *f) {
  for (int i = 0; i < f->n; i++) {
    mbu_free(f->entries[i].name);
    if (f->entries[i].tensor.storage) mbt_release(&f->entries[i].tensor);
    mbu_free(f->entries[i].ints);
  }
  for (int i = 0; i < f->nmeta; i++) {
    mbu_free(f->keys[i]);
    mbu_free(f->values[i]);
  }
  mbu_free(f->entries);
  mbu_free(f->keys);
  mbu_free(f->values);
  memset(f, 0, sizeof *f);
}

/* a JSON number that is an exact integer in [0, 2^53], into *v; 0 when it is not */
static int jsonUint(const cJSON *j, uint64_t *v) {
  if (!cJSON_IsNumber(j)) return 0;
  double d = j->valuedouble;
  if (!(d >= 0 && d <= MAXJSONINT) || d != floor(d)) return 0;
  *v = (uint64_t)d;
  return 1;
}

/* the child named key of object o, required exactly once */
static const cJSON *field(const cJSON *o, const char *key, const char *name) {
  const cJSON *found = NULL;
  for (const cJSON *c = o->child; c; c = c->next) {
    if (!c->string || strcmp(c->string, key)) continue;
    if (found) return mbu_error("tensor '%s': '%s' appears twice", name, key), NULL;
    found = c;
  }
  if (!found) mbu_error("tensor '%s': missing '%s'", name, key);
  return found;
}

/* fills e from the header object j of the tensor called name */
static int parseEntry(mbIoEntry *e, const cJSON *j, const char *name, uint64_t data_bytes) {
  if (!cJSON_IsObject(j)) return mbu_error("tensor '%s': entry is not a JSON object", name);
  const cJSON *dt = field(j, "dtype", name), *sh, *off;
  if (!dt || !(sh = field(j, "shape", name)) || !(off = field(j, "data_offsets", name)))
    return MB_ERR;
  if (!cJSON_IsString(dt)) return mbu_error("tensor '%s': dtype is not a string", name);
  if (!strcmp(dt->valuestring, "F32")) e->dtype = MB_F32;
  else if (!strcmp(dt->valuestring, "I64")) e->dtype = MB_I64;
  else if (!strcmp(dt->valuestring, "F64")) e->dtype = MB_F64;
  else if (!strcmp(dt->valuestring, "U64")) e->dtype = MB_U64;
  else return mbu_error("tensor '%s': unsupported dtype '%.20s' (only F32, I64, F64 and U64)",
                        name, dt->valuestring);

  if (!cJSON_IsArray(sh)) return mbu_error("tensor '%s': shape is not an array", name);
  int nd = cJSON_GetArraySize(sh);
  if (nd > MB_MAXDIM)
    return mbu_error("tensor '%s': %d dimensions (at most %d)", name, nd, MB_MAXDIM);
  e->ndim = nd;
  /* bytes = prod(shape) * element size, with overflow detected along the way */
  uint64_t bytes = dtypeSize(e->dtype);
  int overflow = 0, d = 0;
  for (const cJSON *c = sh->child; c; c = c->next, d++) {
    uint64_t v;
    if (!jsonUint(c, &v))
      return mbu_error("tensor '%s': dimension %d is not a non-negative integer", name, d + 1);
    e->shape[d] = (int64_t)v;
    if (!overflow && __builtin_mul_overflow(bytes, v, &bytes)) overflow = 1;
  }
  /* a zero dimension makes the product 0 even after an earlier overflow */
  for (d = 0; d < nd; d++) if (e->shape[d] == 0) { overflow = 0; bytes = 0; }
  if (overflow) return mbu_error("tensor '%s': the shape's size overflows 64 bits", name);

  if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
    return mbu_error("tensor '%s': data_offsets is not an array of two integers", name);
  if (!jsonUint(off->child, &e->begin) || !jsonUint(off->child->next, &e->end))
    return mbu_error("tensor '%s': data_offsets are not non-negative integers", name);
  if (e->end < e->begin)
    return mbu_error("tensor '%s': data_offsets [%llu, %llu] end before they begin", name,
                     (unsigned long long)e->begin, (unsigned long long)e->end);
  if (e->end > data_bytes)
    return mbu_error("tensor '%s': data_offsets [%llu, %llu] run past the data (%llu bytes)",
                     name, (unsigned long long)e->begin, (unsigned long long)e->end,
                     (unsigned long long)data_bytes);
  if (e->end - e->begin != bytes)
    return mbu_error("tensor '%s': shape needs %llu bytes but data_offsets [%llu, %llu] hold %llu",
                     name, (unsigned long long)bytes, (unsigned long long)e->begin,
                     (unsigned long long)e->end, (unsigned long long)(e->end - e->begin));
  return MB_OK;
}

/* qsort orders: entries by (begin, end) so zero-size tensors sort before their neighbour;
   names by strcmp */
static int byOffset(const void *a, const void *b) {
  const mbIoEntry *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

static int byName(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* the __metadata__ object: string -> string */
static int parseMeta(mbIoFile *f, const cJSON *m) {
  if (!cJSON_IsObject(m)) return mbu_error("__metadata__ is not a JSON object");
  int n = cJSON_GetArraySize(m);
  f->keys = mbu_calloc((size_t)n, sizeof(char *));
  f->values = mbu_calloc((size_t)n, sizeof(char *));
  if (!f->keys || !f->values) return MB_ERR;
  for (const cJSON *c = m->child; c; c = c->next) {
    if (!c->string || !cJSON_IsString(c))
      return mbu_error("__metadata__ value '%.100s' is not a string", c->string ? c->string : "?");
    for (int i = 0; i < f->nmeta; i++)
      if (!strcmp(f->keys[i], c->string))
        return mbu_error("__metadata__ key '%.100s' appears twice", c->string);
    char *k = dupstr(c->string), *v = dupstr(c->valuestring);
    if (!k || !v) { mbu_free(k); mbu_free(v); return MB_ERR; }
    f->keys[f->nmeta] = k;
    f->values[f->nmeta++] = v;
  }
  return MB_OK;
}

/* the top-level object: at most one __metadata__, tensor entries with distinct names whose
   byte ranges tile [0, data_bytes) exactly (the rule of the Rust reference reader) */
static int parseRoot(mbIoFile *f, const cJSON *root, uint64_t data_bytes) {
  if (!cJSON_IsObject(root)) return mbu_error("header is not a JSON object");
  int count = 0, metas = 0;
  for (const cJSON *c = root->child; c; c = c->next) {
    if (!c->string) return mbu_error("header has an entry without a name");
    if (!strcmp(c->string, "__metadata__")) metas++;
    else count++;
  }
  if (metas > 1) return mbu_error("__metadata__ appears %d times", metas);
  f->entries = mbu_calloc((size_t)count, sizeof(mbIoEntry));
  if (!f->entries) return MB_ERR;
  for (const cJSON *c = root->child; c; c = c->next) {
    if (!strcmp(c->string, "__metadata__")) {
      if (parseMeta(f, c) < 0) return MB_ERR;
      continue;
    }
    mbIoEntry *e = &f->entries[f->n];
    if (!(e->name = dupstr(c->string))) return MB_ERR;
    f->n++;
    if (parseEntry(e, c, c->string, data_bytes) < 0) return MB_ERR;
  }
  /* names must be distinct: sort a copy of the name pointers and compare neighbours */
  if (count > 1) {
    char **names = mbu_malloc((size_t)count * sizeof(char *));
    if (!names) return MB_ERR;
    for (int i = 0; i < count; i++) names[i] = f->entries[i].name;
    qsort(names, (size_t)count, sizeof(char *), byName);
    for (int i = 1; i < count; i++)
      if (!strcmp(names[i - 1], names[i])) {
        mbu_error("tensor '%.100s' appears twice", names[i]);
        mbu_free(names);
        return MB_ERR;
      }
    mbu_free(names);
  }
  /* the tensors must tile the data section exactly: sorted, no gap, no overlap */
  qsort(f->entries, (size_t)f->n, sizeof(mbIoEntry), byOffset);
  uint64_t at = 0;
  for (int i = 0; i < f->n; i++) {
    const mbIoEntry *e = &f->entries[i];
    if (e->begin != at)
      return mbu_error("tensor '%.100s': data_offsets [%llu, %llu] %s (expected to begin at %llu)",
                       e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                       e->begin < at ? "overlap the previous tensor" : "leave a gap",
                       (unsigned long long)at);
    at = e->end;
  }
  if (at != data_bytes)
    return mbu_error("the tensors cover %llu bytes but the data section has %llu",
                     (unsigned long long)at, (unsigned long long)data_bytes);
  return MB_OK;
}

int mbu_ioParseHeader(mbIoFile *f, const char *json, size_t len, uint64_t data_bytes) {
  memset(f, 0, sizeof *f);
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
  if (!root) {
    size_t at = end && end >= json && end <= json + len ? (size_t)(end - json) : 0;
    return mbu_error("malformed JSON header near byte %zu of %zu", at, len);
  }
  /* only whitespace (the padding) may follow the JSON value */
  for (const char *p = end; p < json + len; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
      cJSON_Delete(root);
      return mbu_error("header has bytes after the JSON object (at byte %zu of %zu)",
                       (size_t)(p - json), len);
    }
  int rc = parseRoot(f, root, data_bytes);
  cJSON_Delete(root);
  if (rc < 0) {
    mbu_ioFree(f);  /* records no error: the parse message survives */
    return MB_ERR;
  }
  return MB_OK;
}

/* pread(2) until n bytes are in (EINTR retried; end of file is an error) */
static int readAt(int fd, void *p, size_t n, uint64_t at) {
  char *c = p;
  while (n > 0) {
    size_t chunk = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
    ssize_t r = pread(fd, c, chunk, (off_t)at);
    if (r < 0) {
      if (errno == EINTR) continue;
      return mbu_error("read failed: %s", strerror(errno));
    }
    if (r == 0) return mbu_error("unexpected end of file at byte %llu", (unsigned long long)at);
    c += r;
    n -= (size_t)r;
    at += (uint64_t)r;
  }
  return MB_OK;
}

/* the body of mbu_ioLoad: errors without the path. The checks run in the order that
   keeps every read in bounds: file size >= 8, header length <= cap and <= size - 8, then
   the header against the data size, and only then allocation and reads. */
static int loadFd(mbIoFile *f, int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return mbu_error("cannot stat: %s", strerror(errno));
  if (!S_ISREG(st.st_mode)) return mbu_error("not a regular file");
  uint64_t size = (uint64_t)st.st_size;
  if (size < 8)
    return mbu_error("truncated: %llu bytes, too short for the header length",
                     (unsigned long long)size);
  unsigned char lenbytes[8];
  if (readAt(fd, lenbytes, 8, 0) < 0) return MB_ERR;
  uint64_t hlen = 0;
  for (int b = 0; b < 8; b++) hlen |= (uint64_t)lenbytes[b] << (8 * b);
  if (hlen > MB_IO_MAXHEADER)
    return mbu_error("header length %llu is too large (at most %d)", (unsigned long long)hlen,
                     MB_IO_MAXHEADER);
  if (hlen > size - 8)
    return mbu_error("header length %llu runs past the end of the file (%llu bytes)",
                     (unsigned long long)hlen, (unsigned long long)size);
  if (hlen < 2) return mbu_error("header length %llu is too small", (unsigned long long)hlen);
  char *json = mbu_malloc((size_t)hlen);
  if (!json) return MB_ERR;
  int rc = readAt(fd, json, (size_t)hlen, 8);
  if (rc == MB_OK) rc = mbu_ioParseHeader(f, json, (size_t)hlen, size - 8 - hlen);
  mbu_free(json);
  if (rc < 0) return MB_ERR;

  /* allocate and read each array straight into its final memory */
  for (int i = 0; i < f->n; i++) {
    mbIoEntry *e = &f->entries[i];
    void *dst;
    if (e->dtype == MB_F32) {
      if (mbt_init(&e->tensor, e->ndim, e->shape) < 0) return MB_ERR;
      dst = mbt_data(&e->tensor);
    } else {
      if (!(e->ints = mbu_malloc((size_t)(e->end - e->begin)))) return MB_ERR;
      dst = e->ints;
    }
    if (e->end > e->begin && readAt(fd, dst, (size_t)(e->end - e->begin), 8 + hlen + e->begin) < 0)
      return MB_ERR;
  }
  return MB_OK;
}

int mbu_ioLoad(mbIoFile *f, const char *path) {
  memset(f, 0, sizeof *f);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);  /* a FIFO must not block us */
  if (fd < 0) return mbu_error("%s: cannot open: %s", path, strerror(errno));
  int rc = loadFd(f, fd);
  close(fd);
  if (rc < 0) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", mbu_lasterror());
    mbu_ioFree(f);
    return mbu_error("%s: %s", path, msg);
  }
  return MB_OK;
}
