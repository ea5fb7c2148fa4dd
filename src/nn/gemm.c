/* Matrix products in a chosen precision: fp32 on OpenBLAS sgemm, bf16 on oneDNN's matmul.
   In bf16 both operands are rounded to bfloat16 (round to nearest even) into per-thread
   scratch, multiplied with fp32 accumulation, and the fp32 result is combined with C as
   sgemm does (C = alpha op(A) op(B) + beta C). Products too small for the matrix units to
   pay (an inner or outer dimension under MB_BF16_MIN_DIM: the first layers on 11..27 input
   columns, the critics' one-unit output) stay on sgemm in fp32.
   Threads: every oneDNN call runs with one OpenMP thread (omp_set_num_threads(1) in each
   calling thread), so the parallelism is always our pool's, which follows MBPO_THREADS; no
   OpenMP team is ever started, nothing spins beside OpenBLAS and the pool, and a product
   computed by one thread gives the same bits whatever the thread count.
   Primitives are created once per shape and thread and reused (a small per-thread cache).
   The primitive, its cache and the per-thread set-up (src/nn/matmul.h) are defined here and
   serve the fp32 oneDNN path (src/nn/gemm_f32.c) too.
   Row counts that vary from call to call (the critic rows that gave the minimum, the rows
   of a model step routed to one elite) are padded with zero rows up to a multiple of
   ROWPAD, so that a handful of shapes serve them all instead of a new primitive (and a new
   JIT kernel) per count; the padded rows' results are discarded. A transposed A (a weight
   gradient's rows, x^T dy) has a fixed row count and is not padded (the ensemble's 100-row
   blocks computed 128).
   Weights multiplied many times between optimiser steps need not be rounded per call: their
   owner attaches a bf16 image (mbn_bf16Attach), and a B operand inside it is read from there
   (the same bits as packing it again). */
#include "mbpo/nn.h"
#include "mbpo/core.h"
#include "nn/ens_simd.h"
#include "nn/matmul.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#define CACHE_SLOTS 96
#define ROWPAD 32

/* one calling thread's state: reachable from the global list (no leak at exit) */
typedef struct ThreadState {
  mbnMatmulThread h;        /* stream, cache use, list link */
  mbnMatmul cache[CACHE_SLOTS];
  uint16_t *abuf, *bbuf;
  size_t acap, bcap;
  float *cbuf;              /* padded result rows */
  size_t ccap;
} ThreadState;

static struct {
  pthread_once_t once;
  dnnl_engine_t engine;
  int ok;                    /* engine created */
  pthread_mutex_t mu;
  mbnMatmulThread *threads;
} g = {PTHREAD_ONCE_INIT, NULL, 0, PTHREAD_MUTEX_INITIALIZER, NULL};

static _Thread_local ThreadState *tls;

/* attached bf16 images of weights (mbn_bf16Attach): edited only outside parallel sections,
   read by every thread */
#define NIMAGES 8
static struct Image { const float *src; const uint16_t *img; size_t n; } images[NIMAGES];
static int nimages;

static void init_engine(void) {
  g.ok = dnnl_engine_create(&g.engine, dnnl_cpu, 0) == dnnl_success;
}

static ThreadState *thread_state(void) {
  if (tls) return tls;
  pthread_once(&g.once, init_engine);
  if (!g.ok) return NULL;
  tls = mbn_matmulThreadNew(sizeof *tls, g.engine, &g.mu, &g.threads);
  return tls;
}

/* fp32 -> bf16, round to nearest even; a NaN stays a (quiet) NaN. Branch-free so that the
   packing loops vectorise. */
static inline uint16_t tobf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16, q = (u >> 16) | 0x40u;
  return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? q : r);
}

float mbn_bf16Round(float x) {
  uint32_t u = (uint32_t)tobf16(x) << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

#ifdef MB_SIMD16
/* one row of pack on the AVX-512 path: tobf16's integer steps in 16 lanes (the AVX2 loop's,
   so the same bits), the tail under a mask; the 32 -> 16 bit narrowing is exact (every
   value fits in 16 bits). Not VCVTNEPS2BF16: it flushes subnormal inputs to zero. */
MB_T512 static void pack_row16(uint16_t *restrict d, const float *restrict s, int cols) {
  const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7fff);
  const __m512i abs = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
  const __m512i quiet = _mm512_set1_epi32(0x40);
  for (int c = 0; c < cols; c += 16) {
    __mmask16 k = mb_mask16(cols - c);
    __m512i u = _mm512_castps_si512(mb_ld16(s + c, k));
    __m512i hi = _mm512_srli_epi32(u, 16);
    __m512i rn = _mm512_srli_epi32(
      _mm512_add_epi32(_mm512_add_epi32(u, bias), _mm512_and_si512(hi, one)), 16);
    __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, abs), inf);
    __m256i h = _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(rn, nan, _mm512_or_si512(hi, quiet)));
    if (k == (__mmask16)0xffff) _mm256_storeu_si256((__m256i *)(void *)(d + c), h);
    else _mm256_mask_storeu_epi16(d + c, k, h);
  }
}
#endif

/* packs rows x cols of src (leading dimension ld) into dst [rows x dcols] as bf16, the same
   rounding as tobf16, 16 values per step with AVX2 (a row per call on the AVX-512 path);
   columns cols..dcols-1 become zeros */
static void pack(uint16_t *restrict dst, const float *restrict src, int rows, int cols, int ld,
                 int dcols) {
#ifdef MB_SIMD16
  if (mb_use512()) {
    for (int r = 0; r < rows; r++) {
      uint16_t *d = dst + (size_t)r * dcols;
      pack_row16(d, src + (size_t)r * ld, cols);
      for (int c = cols; c < dcols; c++) d[c] = 0;
    }
    return;
  }
#endif
#ifdef __AVX2__
  const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff);
  const __m256i abs = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
  const __m256i quiet = _mm256_set1_epi32(0x40);
#endif
  for (int r = 0; r < rows; r++) {
    const float *s = src + (size_t)r * ld;
    uint16_t *d = dst + (size_t)r * dcols;
    int c = 0;
#ifdef __AVX2__
    for (; c + 16 <= cols; c += 16) {
      __m256i h[2];
      for (int k = 0; k < 2; k++) {
        __m256i u = _mm256_castps_si256(_mm256_loadu_ps(s + c + 8 * k));
        __m256i hi = _mm256_srli_epi32(u, 16);
        __m256i rn = _mm256_srli_epi32(
          _mm256_add_epi32(_mm256_add_epi32(u, bias), _mm256_and_si256(hi, one)), 16);
        __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs), inf);
        h[k] = _mm256_blendv_epi8(rn, _mm256_or_si256(hi, quiet), nan);
      }
      /* 32 -> 16 bits (values fit: no saturation), lanes back in order */
      __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(h[0], h[1]), 0xd8);
      _mm256_storeu_si256((__m256i *)(void *)(d + c), p);
    }
#endif
    for (; c < cols; c++) d[c] = tobf16(s[c]);
    for (; c < dcols; c++) d[c] = 0;
  }
}

static int grow(uint16_t **buf, size_t *cap, size_t n) {
  if (n <= *cap) return 0;
  uint16_t *p = mbu_alignedAlloc(n * sizeof(uint16_t));
  if (!p) return -1;
  mbu_free(*buf);
  *buf = p;
  *cap = n;
  return 0;
}

void mbn_matmulDestroy(mbnMatmul *p) {
  if (p->prim) dnnl_primitive_destroy(p->prim);
  if (p->a) dnnl_memory_destroy(p->a);
  if (p->b) dnnl_memory_destroy(p->b);
  if (p->c) dnnl_memory_destroy(p->c);
  memset(p, 0, sizeof *p);
}

int mbn_matmulCreate(mbnMatmul *p, dnnl_engine_t e, const mbnMatmulShape *s, char *impl,
                     size_t nimpl) {
  memset(p, 0, sizeof *p);
  int ta = s->ta, tb = s->tb;
  float alpha = s->alpha, beta = s->beta;
  dnnl_memory_desc_t amd, bmd, cmd;
  dnnl_dims_t ad = {s->M, s->K}, bd = {s->K, s->N}, cd = {s->M, s->N};
  dnnl_dims_t as = {ta ? 1 : s->lda, ta ? s->lda : 1}, bs = {tb ? 1 : s->ldb, tb ? s->ldb : 1};
  dnnl_dims_t cs = {s->ldc, 1};
  if (dnnl_memory_desc_init_by_strides(&amd, 2, ad, s->dt, as) != dnnl_success ||
      dnnl_memory_desc_init_by_strides(&bmd, 2, bd, s->dt, bs) != dnnl_success ||
      dnnl_memory_desc_init_by_strides(&cmd, 2, cd, dnnl_f32, cs) != dnnl_success)
    return -1;
  dnnl_matmul_desc_t md;
  if (dnnl_matmul_desc_init(&md, &amd, &bmd, NULL, &cmd) != dnnl_success) return -1;
  dnnl_primitive_attr_t attr;
  if (dnnl_primitive_attr_create(&attr) != dnnl_success) return -1;
  int bad = 0;
  if (alpha != 1.0f)
    bad |= dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha) != dnnl_success;
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
  if (!bad) bad = dnnl_primitive_desc_create(&pd, &md, attr, e, NULL) != dnnl_success;
  dnnl_primitive_attr_destroy(attr);
  if (bad) return -1;
  if (impl && nimpl) {
    const char *name = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name);
    snprintf(impl, nimpl, "%s", name ? name : "?");
  }
  bad = dnnl_primitive_create(&p->prim, pd) != dnnl_success;
  dnnl_primitive_desc_destroy(pd);
  if (!bad) bad |= dnnl_memory_create(&p->a, &amd, e, DNNL_MEMORY_NONE) != dnnl_success;
  if (!bad) bad |= dnnl_memory_create(&p->b, &bmd, e, DNNL_MEMORY_NONE) != dnnl_success;
  if (!bad) bad |= dnnl_memory_create(&p->c, &cmd, e, DNNL_MEMORY_NONE) != dnnl_success;
  if (bad) {
    mbn_matmulDestroy(p);
    return -1;
  }
  p->s = *s;
  return 0;
}

static int same_shape(const mbnMatmulShape *x, const mbnMatmulShape *y) {
  return x->dt == y->dt && x->ta == y->ta && x->tb == y->tb && x->M == y->M && x->N == y->N &&
         x->K == y->K && x->lda == y->lda && x->ldb == y->ldb && x->ldc == y->ldc &&
         x->alpha == y->alpha && x->beta == y->beta;
}

mbnMatmul *mbn_matmulLookup(mbnMatmul *cache, int cap, int *n, int *evict, dnnl_engine_t e,
                            const mbnMatmulShape *s) {
  for (int i = 0; i < *n; i++)
    if (same_shape(&cache[i].s, s)) return &cache[i];
  mbnMatmul *p;
  if (*n < cap) p = &cache[(*n)++];
  else {  /* round-robin eviction: shapes in use are far fewer than the slots */
    p = &cache[*evict];
    *evict = (*evict + 1) % cap;
    mbn_matmulDestroy(p);
  }
  if (mbn_matmulCreate(p, e, s, NULL, 0) < 0) {
    p->s.M = -1;  /* never matches: the slot is reused */
    return NULL;
  }
  return p;
}

void *mbn_matmulThreadNew(size_t size, dnnl_engine_t e, pthread_mutex_t *mu,
                          mbnMatmulThread **list) {
  mbnMatmulThread *t = calloc(1, size);
  if (!t) return NULL;
  if (dnnl_stream_create(&t->stream, e, dnnl_stream_default_flags) != dnnl_success) {
    free(t);
    return NULL;
  }
  omp_set_num_threads(1);   /* this thread's OpenMP ICV: oneDNN runs inside it */
  pthread_mutex_lock(mu);
  t->next = *list;
  *list = t;
  pthread_mutex_unlock(mu);
  return t;
}

int mbn_matmulRun(mbnMatmul *p, dnnl_stream_t st, const void *a, const void *b, float *c) {
  dnnl_memory_set_data_handle(p->a, (void *)(uintptr_t)a);  /* read only */
  dnnl_memory_set_data_handle(p->b, (void *)(uintptr_t)b);  /* read only */
  dnnl_memory_set_data_handle(p->c, c);
  dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, p->a}, {DNNL_ARG_WEIGHTS, p->b},
                             {DNNL_ARG_DST, p->c}};
  if (dnnl_primitive_execute(p->prim, st, 3, args) != dnnl_success ||
      dnnl_stream_wait(st) != dnnl_success)
    return -1;
  return 0;
}

void mbn_bf16Image(uint16_t *img, const float *src, size_t n) {
  /* in rows of at most 2^20 values, so the int arguments of pack never overflow */
  const size_t R = (size_t)1 << 20;
  for (size_t i = 0; i < n; i += R) {
    int len = (int)(n - i < R ? n - i : R);
    pack(img + i, src + i, 1, len, len, len);
  }
}

int mbn_bf16Attach(const float *src, const uint16_t *img, size_t n) {
  for (int i = 0; i < nimages; i++)
    if (images[i].src == src) {
      images[i].img = img;
      images[i].n = n;
      return MB_OK;
    }
  if (nimages == NIMAGES)
    return mbu_error("gemm: %d bf16 weight images attached already", NIMAGES);
  images[nimages++] = (struct Image){src, img, n};
  return MB_OK;
}

void mbn_bf16Detach(const float *src) {
  for (int i = 0; i < nimages; i++)
    if (images[i].src == src) {
      images[i] = images[--nimages];
      return;
    }
}

/* the attached image of rows x cols floats at B (leading dimension ld), or NULL */
static const uint16_t *image_of(const float *B, int rows, int cols, int ld) {
  if (ld != cols) return NULL;
  size_t len = (size_t)rows * (size_t)cols;
  for (int i = 0; i < nimages; i++) {
    const struct Image *m = &images[i];
    if (B >= m->src && B < m->src + m->n && len <= (size_t)(m->src + m->n - B))
      return m->img + (B - m->src);
  }
  return NULL;
}

static int use_bf16(int M, int N, int K) {
  return M >= MB_BF16_MIN_DIM && N >= MB_BF16_MIN_DIM && K >= MB_BF16_MIN_DIM;
}

/* rows x cols bf16 values of src (leading dimension ld) into dst [rows x dcols], columns
   cols..dcols-1 zero: pack's layout from values rounded already */
static void copy16(uint16_t *restrict dst, const uint16_t *restrict src, int rows, int cols,
                   int ld, int dcols) {
  for (int r = 0; r < rows; r++) {
    uint16_t *d = dst + (size_t)r * dcols;
    memcpy(d, src + (size_t)r * ld, sizeof(uint16_t) * (size_t)cols);
    for (int c = cols; c < dcols; c++) d[c] = 0;
  }
}

static int gemm(mbPrecision prec, int ta, int tb, int M, int N, int K, float alpha,
                const float *A, int lda, const uint16_t *A16, const float *B, int ldb,
                const uint16_t *B16, float beta, float *C, int ldc) {
  if (prec == MB_BF16 && use_bf16(M, N, K)) {
    ThreadState *t = thread_state();
    if (!t) return mbu_error("gemm: oneDNN is not available (engine or stream)");
    /* padded rows for A as it is (activations: row counts that vary); a transposed A is
       a weight gradient's block of weight rows, a count fixed by the layer sizes */
    int Mp = ta ? M : (M + ROWPAD - 1) / ROWPAD * ROWPAD;
    size_t na = (size_t)Mp * K, nb = (size_t)K * N;
    const uint16_t *asrc = t->abuf;
    /* a dense A16 is read in place (the layout packing gives); any other (a column block
       of activations, transposed) is copied dense first: oneDNN picks another
       implementation (gemm:jit, slower here) for a strided A */
    if (A16 && (ta ? lda == M : Mp == M && lda == K)) asrc = A16;
    else {
      if (grow(&t->abuf, &t->acap, na) < 0) return MB_ERR;
      asrc = t->abuf;
      if (ta) {
        if (A16) copy16(t->abuf, A16, K, M, lda, Mp);
        else pack(t->abuf, A, K, M, lda, Mp);
      } else {
        if (A16) copy16(t->abuf, A16, M, K, lda, K);
        else pack(t->abuf, A, M, K, lda, K);
        memset(t->abuf + (size_t)M * K, 0, sizeof(uint16_t) * (size_t)(Mp - M) * K);
      }
    }
    /* B as packed: from the caller's rounded copy, or an attached image when it has one
       (stored as packing lays it out) */
    const uint16_t *bsrc = NULL;
    if (B16 && ldb == (tb ? K : N)) bsrc = B16;
    else if (B16) {
      if (grow(&t->bbuf, &t->bcap, nb) < 0) return MB_ERR;
      if (tb) copy16(t->bbuf, B16, N, K, ldb, K);
      else copy16(t->bbuf, B16, K, N, ldb, N);
      bsrc = t->bbuf;
    } else bsrc = tb ? image_of(B, N, K, ldb) : image_of(B, K, N, ldb);
    if (!bsrc) {
      if (grow(&t->bbuf, &t->bcap, nb) < 0) return MB_ERR;
      if (tb) pack(t->bbuf, B, N, K, ldb, K);
      else pack(t->bbuf, B, K, N, ldb, N);
      bsrc = t->bbuf;
    }
    /* padded: the result goes to scratch rows (holding C's rows first when beta needs them) */
    float *out = C;
    int ldo = ldc;
    if (Mp != M) {
      if (t->ccap < (size_t)Mp * N) {
        float *c = mbu_alignedAlloc(sizeof(float) * (size_t)Mp * N);
        if (!c) return MB_ERR;
        mbu_free(t->cbuf);
        t->cbuf = c;
        t->ccap = (size_t)Mp * N;
      }
      out = t->cbuf;
      ldo = N;
      if (beta != 0.0f)
        for (int i = 0; i < M; i++)
          memcpy(out + (size_t)i * N, C + (size_t)i * ldc, sizeof(float) * (size_t)N);
    }
    /* the packed operands: A [Mp x K] or [K x Mp], B [K x N] or [N x K], dense */
    mbnMatmulShape sh = {dnnl_bf16, ta, tb, Mp, N, K, ta ? Mp : K, tb ? K : N, ldo, alpha, beta};
    mbnMatmul *p = mbn_matmulLookup(t->cache, CACHE_SLOTS, &t->h.n, &t->h.evict, g.engine, &sh);
    if (!p)
      return mbu_error("gemm: oneDNN has no bf16 matmul for [%d x %d] @ [%d x %d] on this CPU",
                       M, K, K, N);
    if (mbn_matmulRun(p, t->h.stream, asrc, bsrc, out) < 0)
      return mbu_error("gemm: oneDNN matmul failed for [%d x %d] @ [%d x %d]", M, K, K, N);
    if (out != C)
      for (int i = 0; i < M; i++)
        memcpy(C + (size_t)i * ldc, out + (size_t)i * N, sizeof(float) * (size_t)N);
    return MB_OK;
  }
  if (prec == MB_FP32) {  /* oneDNN fp32 where it is the faster (src/nn/gemm_f32.c) */
    int r = mbn_gemmF32Dnnl(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (r != 0) return r < 0 ? MB_ERR : MB_OK;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M,
              N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  return MB_OK;
}

int mbn_gemm(mbPrecision prec, int ta, int tb, int M, int N, int K, float alpha, const float *A,
             int lda, const float *B, int ldb, float beta, float *C, int ldc) {
  return gemm(prec, ta, tb, M, N, K, alpha, A, lda, NULL, B, ldb, NULL, beta, C, ldc);
}

int mbn_gemm16(mbPrecision prec, int ta, int tb, int M, int N, int K, float alpha,
               const float *A, int lda, const uint16_t *A16, const float *B, int ldb,
               const uint16_t *B16, float beta, float *C, int ldc) {
  return gemm(prec, ta, tb, M, N, K, alpha, A, lda, A16, B, ldb, B16, beta, C, ldc);
}

int mbn_bf16Check(char *impl, size_t n) {
  pthread_once(&g.once, init_engine);
  omp_set_num_threads(1);   /* creating the probe starts no OpenMP team either */
  if (!g.ok) return mbu_error("precision bf16: oneDNN found no CPU engine");
  mbnMatmul p;
  char name[128] = "?";
  mbnMatmulShape sh = {dnnl_bf16, 0, 0, 256, 256, 256, 256, 256, 256, 1.0f, 0.0f};
  if (mbn_matmulCreate(&p, g.engine, &sh, name, sizeof name) < 0)
    return mbu_error("precision bf16: oneDNN has no bf16 matmul on this CPU; use precision=fp32");
  mbn_matmulDestroy(&p);
  if (impl && n) snprintf(impl, n, "%s", name);
  if (!strstr(name, "bf16"))
    return mbu_error("precision bf16 needs a CPU with AVX512-BF16 or AMX (oneDNN would use "
                     "'%s'); use precision=fp32", name);
  return MB_OK;
}
