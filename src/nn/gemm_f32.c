/* fp32 products on oneDNN's matmul (brgemm, AVX-512 here) for the shapes where it measured
   faster than OpenBLAS sgemm at one thread (tools/gemm_fp32: 256- and 200-wide layers, about
   +10%; the narrow first and last layers are slower or equal there and stay on sgemm).
   Operands are used in place (strides in the memory descriptors), beta = 1 is a sum post-op,
   and one primitive per shape and thread is created once and reused. Like the bf16 path each
   call runs with one OpenMP thread, so the product of one call is computed by one thread
   whatever MBPO_THREADS is. Rows counts that vary from call to call are left to sgemm (only
   multiples of 32 take this path), so the shapes stay few.
   MBPO_GEMM_F32=blas keeps every fp32 product on sgemm, MBPO_GEMM_F32=dnnl sends these
   shapes to oneDNN (the bits differ between the two); F32_DNNL_DEFAULT is the default. */
#include "mbpo/nn.h"
#include "mbpo/core.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#define F32_SLOTS 48

typedef struct F32Prim {
  int ta, tb, M, N, K, lda, ldb, ldc;
  float beta;
  dnnl_primitive_t prim;
  dnnl_memory_t a, b, c;
} F32Prim;

typedef struct F32State {
  struct F32State *next;
  dnnl_stream_t stream;
  F32Prim cache[F32_SLOTS];
  int n, evict;
} F32State;

static struct {
  pthread_once_t once;
  dnnl_engine_t engine;
  int on;                     /* engine created and not turned off by MBPO_GEMM_F32=blas */
  pthread_mutex_t mu;
  F32State *threads;
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
  F32State *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  if (dnnl_stream_create(&t->stream, f32.engine, dnnl_stream_default_flags) != dnnl_success) {
    free(t);
    return NULL;
  }
  omp_set_num_threads(1);
  pthread_mutex_lock(&f32.mu);
  t->next = f32.threads;
  f32.threads = t;
  pthread_mutex_unlock(&f32.mu);
  f32_tls = t;
  return t;
}

static void f32_destroy(F32Prim *p) {
  if (p->prim) dnnl_primitive_destroy(p->prim);
  if (p->a) dnnl_memory_destroy(p->a);
  if (p->b) dnnl_memory_destroy(p->b);
  if (p->c) dnnl_memory_destroy(p->c);
  memset(p, 0, sizeof *p);
}

static int f32_create(F32Prim *p, int ta, int tb, int M, int N, int K, int lda, int ldb,
                      int ldc, float beta) {
  memset(p, 0, sizeof *p);
  dnnl_memory_desc_t amd, bmd, cmd;
  dnnl_dims_t ad = {M, K}, bd = {K, N}, cd = {M, N};
  dnnl_dims_t as = {ta ? 1 : lda, ta ? lda : 1}, bs = {tb ? 1 : ldb, tb ? ldb : 1};
  dnnl_dims_t cs = {ldc, 1};
  if (dnnl_memory_desc_init_by_strides(&amd, 2, ad, dnnl_f32, as) != dnnl_success ||
      dnnl_memory_desc_init_by_strides(&bmd, 2, bd, dnnl_f32, bs) != dnnl_success ||
      dnnl_memory_desc_init_by_strides(&cmd, 2, cd, dnnl_f32, cs) != dnnl_success)
    return -1;
  dnnl_matmul_desc_t md;
  if (dnnl_matmul_desc_init(&md, &amd, &bmd, NULL, &cmd) != dnnl_success) return -1;
  dnnl_primitive_attr_t attr;
  if (dnnl_primitive_attr_create(&attr) != dnnl_success) return -1;
  int bad = 0;
  if (beta != 0.0f) {
    dnnl_post_ops_t po;
    bad |= dnnl_post_ops_create(&po) != dnnl_success;
    if (!bad) {
      bad |= dnnl_post_ops_append_sum(po, beta) != dnnl_success;
      bad |= dnnl_primitive_attr_set_post_ops(attr, po) != dnnl_success;
      dnnl_post_ops_destroy(po);
    }
  }
  dnnl_primitive_desc_t pd = NULL;
  if (!bad) bad = dnnl_primitive_desc_create(&pd, &md, attr, f32.engine, NULL) != dnnl_success;
  dnnl_primitive_attr_destroy(attr);
  if (bad) return -1;
  bad = dnnl_primitive_create(&p->prim, pd) != dnnl_success;
  dnnl_primitive_desc_destroy(pd);
  if (!bad) bad |= dnnl_memory_create(&p->a, &amd, f32.engine, DNNL_MEMORY_NONE) != dnnl_success;
  if (!bad) bad |= dnnl_memory_create(&p->b, &bmd, f32.engine, DNNL_MEMORY_NONE) != dnnl_success;
  if (!bad) bad |= dnnl_memory_create(&p->c, &cmd, f32.engine, DNNL_MEMORY_NONE) != dnnl_success;
  if (bad) {
    f32_destroy(p);
    return -1;
  }
  p->ta = ta; p->tb = tb; p->M = M; p->N = N; p->K = K;
  p->lda = lda; p->ldb = ldb; p->ldc = ldc; p->beta = beta;
  return 0;
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
  F32Prim *p = NULL;
  for (int i = 0; i < t->n && !p; i++) {
    F32Prim *q = &t->cache[i];
    if (q->ta == ta && q->tb == tb && q->M == M && q->N == N && q->K == K && q->lda == lda &&
        q->ldb == ldb && q->ldc == ldc && q->beta == beta)
      p = q;
  }
  if (!p) {
    if (t->n < F32_SLOTS) p = &t->cache[t->n++];
    else {
      p = &t->cache[t->evict];
      t->evict = (t->evict + 1) % F32_SLOTS;
      f32_destroy(p);
    }
    if (f32_create(p, ta, tb, M, N, K, lda, ldb, ldc, beta) < 0) {
      memset(p, 0, sizeof *p);
      p->M = -1;   /* never matches: the slot is reused */
      return 0;    /* no implementation: sgemm computes it */
    }
  }
  dnnl_memory_set_data_handle(p->a, (void *)(uintptr_t)A);
  dnnl_memory_set_data_handle(p->b, (void *)(uintptr_t)B);
  dnnl_memory_set_data_handle(p->c, C);
  dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, p->a}, {DNNL_ARG_WEIGHTS, p->b}, {DNNL_ARG_DST, p->c}};
  if (dnnl_primitive_execute(p->prim, t->stream, 3, args) != dnnl_success ||
      dnnl_stream_wait(t->stream) != dnnl_success)
    return mbu_error("gemm: oneDNN fp32 matmul failed for [%d x %d] @ [%d x %d]", M, K, K, N);
  return 1;
}
