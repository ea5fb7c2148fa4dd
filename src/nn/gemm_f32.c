/* fp32 products on oneDNN's matmul (brgemm, AVX-512 here) for the shapes where it measured
   faster than OpenBLAS sgemm at one thread (tools/gemm_fp32: 256- and 200-wide layers, about
   +10%; the narrow first and last layers are slower or equal there and stay on sgemm).
   Operands are used in place (strides in the memory descriptors), beta = 1 is a sum post-op,
   and one primitive per shape and thread is created once and reused (src/nn/matmul.h, the
   same code as the bf16 path's). Like the bf16 path each call runs with one OpenMP thread,
   so the product of one call is computed by one thread whatever MBPO_THREADS is. Row counts
   that vary from call to call are left to sgemm (only multiples of 32 take this path), so the
   shapes stay few.
   MBPO_GEMM_F32=blas keeps every fp32 product on sgemm (the ensemble's weight gradients too,
   which otherwise take the unpacked kernel of ens_kernels.c), MBPO_GEMM_F32=dnnl sends these
   shapes to oneDNN (the bits may differ between the two: on Zen 4 they were found equal in
   every product checked, which nothing promises); F32_DNNL_DEFAULT is the default. */
#include "mbpo/nn.h"
#include "mbpo/core.h"
#include "nn/matmul.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#define F32_SLOTS 48

typedef struct F32State {
  mbnMatmulThread h;        /* stream, cache use, list link */
  mbnMatmul cache[F32_SLOTS];
} F32State;

static struct {
  pthread_once_t once;
  dnnl_engine_t engine;
  int on;                     /* engine created and not turned off by MBPO_GEMM_F32=blas */
  pthread_mutex_t mu;
  mbnMatmulThread *threads;
} f32 = {PTHREAD_ONCE_INIT, NULL, 0, PTHREAD_MUTEX_INITIALIZER, NULL};

static _Thread_local F32State *f32_tls;

/* 1: the shapes below go to oneDNN unless MBPO_GEMM_F32=blas; 0: only with MBPO_GEMM_F32=dnnl */
#define F32_DNNL_DEFAULT 1

static void f32_init(void) {
  const char *v = getenv("MBPO_GEMM_F32");
  /* measured on AVX-512 CPUs only (oneDNN's brg:avx512_core): elsewhere sgemm by default.
     The CPU decides, not MBPO_ISA, so that both ISA paths give the same bits. */
  __builtin_cpu_init();
  int want = F32_DNNL_DEFAULT && __builtin_cpu_supports("avx512f");
  if (v && strcmp(v, "blas") == 0) want = 0;
  if (v && strcmp(v, "dnnl") == 0) want = 1;
  if (want) f32.on = dnnl_engine_create(&f32.engine, dnnl_cpu, 0) == dnnl_success;
}

void mbn_gemmF32Use(int on) {
  pthread_once(&f32.once, f32_init);
  if (on && !f32.engine && dnnl_engine_create(&f32.engine, dnnl_cpu, 0) != dnnl_success)
    f32.engine = NULL;
  f32.on = on && f32.engine;
}

int mbn_gemmF32InUse(void) {
  pthread_once(&f32.once, f32_init);
  return f32.on;
}

static F32State *f32_state(void) {
  if (f32_tls) return f32_tls;
  f32_tls = mbn_matmulThreadNew(sizeof *f32_tls, f32.engine, &f32.mu, &f32.threads);
  return f32_tls;
}

int mbn_gemmF32Dnnl(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc) {
  /* the shapes measured more than 10% faster (tools/gemm_fp32, Zen 4): A not transposed
     (forward products and dx = dy W^T; the weight gradients x^T dy gained 7-9% and stay on
     sgemm), 64..256 rows in steps of 32 (512-row model-step items gained 9%), wide in N and
     K (the first and last layers are slower on oneDNN), plain alpha and beta */
  if (ta || M < 64 || M > 256 || M % 32 != 0 || N < 128 || K < 128 || alpha != 1.0f ||
      (beta != 0.0f && beta != 1.0f))
    return 0;
  pthread_once(&f32.once, f32_init);
  if (!f32.on) return 0;
  F32State *t = f32_state();
  if (!t) return 0;
  mbnMatmulShape sh = {dnnl_f32, ta, tb, M, N, K, lda, ldb, ldc, alpha, beta};
  mbnMatmul *p = mbn_matmulLookup(t->cache, F32_SLOTS, &t->h.n, &t->h.evict, f32.engine, &sh);
  if (!p) return 0;  /* no implementation: sgemm computes it */
  if (mbn_matmulRun(p, t->h.stream, A, B, C) < 0)
    return mbu_error("gemm: oneDNN fp32 matmul failed for [%d x %d] @ [%d x %d]", M, K, K, N);
  return 1;
}
