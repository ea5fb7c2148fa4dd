/* mbpo tensors: float32 n-d strided views over reference-counted storage.
   A tensor is a plain struct (geometry + a counted pointer to its storage); views share the
   storage and own one reference each. Indices are 0-based in C (1-based only in Lua). */
#ifndef MBPO_TENSOR_H
#define MBPO_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define MB_MAXDIM 8

typedef struct mbStorage {
  float  *data;       /* 64-byte aligned, size floats */
  int64_t size;
  int     refcount;
} mbStorage;

typedef struct mbTensor {
  mbStorage *storage; /* NULL only in a tensor that was never initialised or was released */
  int64_t offset;     /* in floats from storage->data */
  int     ndim;       /* 0 (scalar) .. MB_MAXDIM */
  int64_t size[MB_MAXDIM];
  int64_t stride[MB_MAXDIM];
} mbTensor;

/* Pointer to element [0, 0, ...] of t. */
static inline float *mbt_data(const mbTensor *t) { return t->storage->data + t->offset; }

/* Allocates a new contiguous zero-filled tensor of the given shape into t (t's previous
   contents are not released). Returns MB_OK or MB_ERR (bad shape, out of memory). */
int mbt_init(mbTensor *t, int ndim, const int64_t *size);

/* Makes dst a view of src (same storage, same geometry) and takes a reference. */
void mbt_view(mbTensor *dst, const mbTensor *src);

/* Drops t's reference to its storage (freeing it at zero) and marks t empty. */
void mbt_release(mbTensor *t);

/* Number of elements. */
int64_t mbt_numel(const mbTensor *t);

/* 1 when t's elements are laid out row-major without gaps. */
int mbt_isContiguous(const mbTensor *t);

/* Writes t's shape as "[256 x 14]" into buf (returns buf). */
const char *mbt_shapeStr(const mbTensor *t, char *buf, size_t n);

#endif
