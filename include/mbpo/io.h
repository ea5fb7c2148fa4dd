/* mbpo io: safetensors files of named float32 tensors and arrays of 64-bit numbers
   (int64 counters, float64 simulation state, uint64 generator words), plus string metadata.
   The layout is the published safetensors one:
     8 bytes   N, the header length, unsigned little-endian
     N bytes   JSON header {"__metadata__": {str: str}, name: {"dtype": "F32"|"I64"|"F64"|"U64",
               "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...}, padded with
               spaces to a multiple of 8
     the rest  raw little-endian data; offsets are relative to the start of this section,
               tensors are packed without gaps and cover it exactly
   Writes go to PATH.tmp-<pid>, are fsync'ed and renamed into place (atomic). Reads
   validate the whole header against the file size before reading a byte of data, so a
   damaged file gives MB_ERR with a message, never a crash or an out-of-bounds read. */
#ifndef MBPO_IO_H
#define MBPO_IO_H

#include <stddef.h>
#include <stdint.h>

#include "mbpo/state.h"
#include "mbpo/tensor.h"

/* element types we read and write: MB_F32, MB_I64, MB_F64, MB_U64 (mbpo/state.h) */

/* the largest header we accept when reading (the Rust safetensors crate uses the same) */
#define MB_IO_MAXHEADER 100000000

/* One named array to write: an F32 tensor (any strides; written in row-major order) or
   an array of prod(shape) 8-byte values (I64, F64, U64). */
typedef struct mbIoItem {
  const char *name;
  int dtype;                /* MB_F32, MB_I64, MB_F64 or MB_U64 */
  const mbTensor *tensor;   /* MB_F32: the source (its own shape is written) */
  union {
    const int64_t *ints;    /* the others: prod(shape) values */
    const void *data;
  };
  int ndim;                 /* the others: 0 (a scalar) .. MB_MAXDIM */
  int64_t shape[MB_MAXDIM]; /* the others: the shape */
} mbIoItem;

/* One named array read from a file. */
typedef struct mbIoEntry {
  char *name;
  int dtype;                /* MB_F32, MB_I64, MB_F64 or MB_U64 */
  int ndim;
  int64_t shape[MB_MAXDIM];
  uint64_t begin, end;      /* byte range in the data section */
  mbTensor tensor;          /* MB_F32: a new contiguous tensor owning one reference */
  union {                   /* the others: prod(shape) values (freed by mbu_ioFree) */
    int64_t *ints;
    void *data;
  };
} mbIoEntry;

/* Everything read from one file, in data-offset order. */
typedef struct mbIoFile {
  int n;                    /* entries */
  mbIoEntry *entries;
  int nmeta;                /* metadata pairs */
  char **keys, **values;    /* nmeta strings each */
} mbIoFile;

/* Writes items[0..n) and the metadata pairs keys/values[0..nmeta) to path, atomically.
   Names must be distinct and not "__metadata__". Returns MB_OK or MB_ERR. */
int mbu_ioSave(const char *path, const mbIoItem *items, int n,
               const char *const *keys, const char *const *values, int nmeta);

/* Writes len bytes of text to path atomically (PATH.tmp-<pid>, fsync, rename, fsync of the
   directory). Returns MB_OK or MB_ERR; on MB_ERR path is as it was. */
int mbu_ioWriteText(const char *path, const char *text, size_t len);

/* The checksum of a file's bytes (see io.c; catches damage, not attacks). MB_OK or MB_ERR. */
int mbu_ioChecksum(uint64_t *out, const char *path);

/* Streaming step of the checksum: lanes start as io.c's seeds, total at 0; every chunk but
   the last must be a multiple of 32 bytes. Returns the checksum of the bytes so far. */
uint64_t mbu_checksumBytes(const void *data, size_t n, uint64_t lanes[4], uint64_t *total);

/* Reads a whole safetensors file into f (zeroed first). On MB_ERR f holds nothing. */
int mbu_ioLoad(mbIoFile *f, const char *path);

/* Releases everything mbu_ioLoad put in f (tensors drop their references) and zeroes f. */
void mbu_ioFree(mbIoFile *f);

/* Parses and checks a safetensors header (the N JSON bytes) against a data section of
   data_bytes bytes, filling f's names, dtypes, shapes and offsets but no data (tensor
   storage NULL, ints NULL). Exposed for the tests; mbu_ioLoad calls it, then reads. */
int mbu_ioParseHeader(mbIoFile *f, const char *json, size_t len, uint64_t data_bytes);

#endif
