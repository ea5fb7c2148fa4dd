/* Private: one oneDNN matmul primitive per shape, as the bf16 path (src/nn/gemm.c) and the
   fp32 path (src/nn/gemm_f32.c) both create, cache per thread and run them. A is [M x K]
   (stored [K x M] when ta), B is [K x N] ([N x K] when tb), both of the operand type dt with
   leading dimensions lda and ldb; C is fp32 [M x N] with leading dimension ldc. alpha is an
   output scale (none when 1) and beta a sum post-op (none when 0). Defined in gemm.c. */
#ifndef MBPO_NN_MATMUL_H
#define MBPO_NN_MATMUL_H

#include <pthread.h>
#include <stddef.h>

#include <oneapi/dnnl/dnnl.h>

typedef struct mbnMatmulShape {
  dnnl_data_type_t dt;      /* A's and B's type; C is fp32 */
  int ta, tb, M, N, K, lda, ldb, ldc;
  float alpha, beta;
} mbnMatmulShape;

typedef struct mbnMatmul {
  mbnMatmulShape s;
  dnnl_primitive_t prim;
  dnnl_memory_t a, b, c;
} mbnMatmul;

/* creates p for shape s on engine e: 0, or -1 (p zeroed) when oneDNN has no implementation;
   impl [nimpl] receives the implementation's name when not NULL */
int mbn_matmulCreate(mbnMatmul *p, dnnl_engine_t e, const mbnMatmulShape *s, char *impl,
                     size_t nimpl);

/* releases what p holds and zeroes it */
void mbn_matmulDestroy(mbnMatmul *p);

/* the primitive of shape s in cache [cap] (n slots in use, evict the next to reuse when full,
   round robin), created there when absent; NULL when oneDNN has no implementation (the slot
   is left matching no shape) */
mbnMatmul *mbn_matmulLookup(mbnMatmul *cache, int cap, int *n, int *evict, dnnl_engine_t e,
                            const mbnMatmulShape *s);

/* what every calling thread's state starts with */
typedef struct mbnMatmulThread {
  struct mbnMatmulThread *next;   /* the owner's list of states (reachable: no leak at exit) */
  dnnl_stream_t stream;
  int n, evict;                   /* the owner's cache: slots in use, the next to reuse */
} mbnMatmulThread;

/* a zeroed state of size bytes (a struct that starts with an mbnMatmulThread) for the calling
   thread: its stream on engine e, its OpenMP thread count set to 1 (oneDNN runs inside it, so
   no OpenMP team is started), linked into *list under mu; NULL when out of memory or no
   stream */
void *mbn_matmulThreadNew(size_t size, dnnl_engine_t e, pthread_mutex_t *mu,
                          mbnMatmulThread **list);

/* runs p on stream st with the given operands (A and B are only read): 0, or -1 */
int mbn_matmulRun(mbnMatmul *p, dnnl_stream_t st, const void *a, const void *b, float *c);

/* The fp32 weight gradients of the ensemble (mbn_linearBackwardRowsP) on the unpacked AVX-512
   kernel of ens_kernels.c (1, the default on AVX-512 CPUs unless MBPO_GEMM_F32=blas) or on
   sgemm (0): for A/B measurements and tests (tools/ab_kernels, tests/c/test_wgrad.c); the
   bits are the same either way on the CPUs checked. InUse: whether it is taken now. */
void mbn_wgradDirectUse(int on);
int mbn_wgradDirectInUse(void);

#endif
