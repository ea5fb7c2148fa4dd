/* Tests of src/nn/gemm.c: bf16 products (oneDNN) against double references, the rounding
   to bfloat16, determinism, and the fp32 path for small products. */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mbpo/core.h"
#include "mbpo/nn.h"
#include "nn/matmul.h"
#include "test.h"

static mbRng rng;
static int have_bf16;

/* C = alpha op(A) op(B) + beta C0 in double; with round = 1 the operands are first rounded
   to bf16. absab[i,j] = sum_k |a_ik b_kj| (for the bound). */
static void ref(double *C, double *absab, int ta, int tb, int M, int N, int K, float alpha,
                const float *A, int lda, const float *B, int ldb, float beta, const float *C0,
                int ldc, int round) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0, sa = 0;
      for (int k = 0; k < K; k++) {
        float a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
        float b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
        if (round) { a = mbn_bf16Round(a); b = mbn_bf16Round(b); }
        s += (double)a * b;
        sa += fabs((double)a * b);
      }
      C[(size_t)i * N + j] = alpha * s + beta * (double)C0[(size_t)i * ldc + j];
      if (absab) absab[(size_t)i * N + j] = fabs(alpha) * sa + fabs(beta * C0[(size_t)i * ldc + j]);
    }
}

static void test_round(void) {
  CHECK(mbn_bf16Round(1.0f) == 1.0f, "1");
  CHECK(mbn_bf16Round(1.0f + 0x1p-8f) == 1.0f, "tie to even (down)");
  CHECK(mbn_bf16Round(1.0f + 3 * 0x1p-8f) == 1.0f + 0x1p-6f, "tie to even (up)");
  CHECK(mbn_bf16Round(1.0f + 0x1p-8f + 0x1p-12f) == 1.0f + 0x1p-7f, "above the tie");
  CHECK(mbn_bf16Round(-3.0f) == -3.0f, "-3");
  float nan = NAN;
  CHECK(isnan(mbn_bf16Round(nan)), "NaN stays NaN");
  CHECK(isinf(mbn_bf16Round(INFINITY)), "inf");
  /* relative error at most 2^-8 over a range of values */
  double worst = 0;
  for (int i = 0; i < 100000; i++) {
    float x = (float)(mbg_uniform(&rng) * 200 - 100);
    double e = fabs((double)mbn_bf16Round(x) - x) / (fabs(x) + 1e-30);
    if (e > worst) worst = e;
  }
  CHECK(worst <= 0x1p-8, "worst relative rounding error %g", worst);
}

/* one product in bf16 against the double references, all four transposes, alpha, beta and
   a wider C. Bounds (stated): against the reference on bf16-rounded operands, only the fp32
   accumulation differs: |C - ref| <= K 2^-23 sum|ab|; against the exact reference the
   operand rounding adds 2 x 2^-8 relative per product: |C - exact| <= (2^-7 + K 2^-23) sum|ab|.
   And bf16 must really be used: the exact error exceeds 1e-4 sum|ab| somewhere. */
static void check_shape(int M, int N, int K) {
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      int lda = ta ? M + 3 : K + 1, ldb = tb ? K + 2 : N, ldc = N + 5;
      size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb;
      float *A = malloc(sizeof(float) * na), *B = malloc(sizeof(float) * nb);
      float *C = malloc(sizeof(float) * (size_t)M * ldc),
            *C0 = malloc(sizeof(float) * (size_t)M * ldc);
      double *R = malloc(sizeof(double) * (size_t)M * N),
             *E = malloc(sizeof(double) * (size_t)M * N);
      double *S = malloc(sizeof(double) * (size_t)M * N);
      mbg_uniformFill(A, &rng, na, -1, 1);
      mbg_uniformFill(B, &rng, nb, -1, 1);
      mbg_uniformFill(C0, &rng, (size_t)M * ldc, -1, 1);
      float alpha = ta ? 0.5f : 1.0f, beta = tb ? 1.0f : 0.0f;
      memcpy(C, C0, sizeof(float) * (size_t)M * ldc);
      CHECK(mbn_gemm(MB_BF16, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == MB_OK,
            "gemm ran");
      ref(R, S, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, ldc, 1);
      ref(E, NULL, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, ldc, 0);
      double wr = 0, we = 0, used = 0;
      for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
          size_t o = (size_t)i * N + j;
          double c = C[(size_t)i * ldc + j], s = S[o] + 1e-30;
          double er = fabs(c - R[o]) / s, ee = fabs(c - E[o]) / s;
          if (er > wr) wr = er;
          if (ee > we) we = ee;
          if (ee > used) used = ee;
        }
      CHECK(wr <= K * 0x1p-23, "%dx%dx%d ta=%d tb=%d: vs bf16 operands %g > %g", M, N, K, ta,
            tb, wr, K * 0x1p-23);
      CHECK(we <= 0x1p-7 + K * 0x1p-23, "%dx%dx%d ta=%d tb=%d: vs exact %g", M, N, K, ta, tb, we);
      CHECK(used > 1e-4, "%dx%dx%d: bf16 really used (largest relative error %g)", M, N, K, used);
      /* the untouched columns past N keep C0 */
      int kept = 1;
      for (int i = 0; i < M; i++)
        for (int j = N; j < ldc; j++) kept &= C[(size_t)i * ldc + j] == C0[(size_t)i * ldc + j];
      CHECK(kept, "columns past N untouched");
      /* the same call again gives the same bits */
      float *C2 = malloc(sizeof(float) * (size_t)M * ldc);
      memcpy(C2, C0, sizeof(float) * (size_t)M * ldc);
      mbn_gemm(MB_BF16, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C2, ldc);
      CHECK(memcmp(C, C2, sizeof(float) * (size_t)M * ldc) == 0, "deterministic");
      free(A); free(B); free(C); free(C0); free(C2); free(R); free(E); free(S);
    }
}

static void test_bf16_products(void) {
  if (!have_bf16) return;
  check_shape(256, 256, 256);   /* SAC hidden layer */
  check_shape(96, 200, 64);
  check_shape(33, 40, 300);
}

/* products with a dimension under MB_BF16_MIN_DIM stay fp32: equal to the fp32 call */
static void test_small_stay_fp32(void) {
  int M = 256, N = 256, K = 11;
  float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
  float *C1 = calloc((size_t)M * N, sizeof(float)), *C2 = calloc((size_t)M * N, sizeof(float));
  mbg_uniformFill(A, &rng, (size_t)M * K, -1, 1);
  mbg_uniformFill(B, &rng, (size_t)K * N, -1, 1);
  mbn_gemm(MB_BF16, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C1, N);
  mbn_gemm(MB_FP32, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C2, N);
  CHECK(memcmp(C1, C2, sizeof(float) * M * N) == 0, "K = 11 runs in fp32");
  double *R = malloc(sizeof(double) * M * N), *S = malloc(sizeof(double) * M * N);
  ref(R, S, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C2, N, 0);
  double w = 0;
  for (int i = 0; i < M * N; i++) {
    double e = fabs(C2[i] - R[i]) / (S[i] + 1e-30);
    if (e > w) w = e;
  }
  CHECK(w <= K * 0x1p-23, "fp32 error %g", w);
  free(A); free(B); free(C1); free(C2); free(R); free(S);
}

/* bf16 products on pool threads: every task's result equals the same product on the caller
   (one OpenMP thread per call, so the thread that runs it does not matter) */
typedef struct PoolCtx { const float *A, *B; float *C; int M, N, K; } PoolCtx;
static void pool_task(void *vctx, int t) {
  PoolCtx *c = vctx;
  mbn_gemm(MB_BF16, 0, 0, c->M, c->N, c->K, 1.0f, c->A, c->K, c->B, c->N, 0.0f,
           c->C + (size_t)t * c->M * c->N, c->N);
}

static void test_threads(void) {
  if (!have_bf16) return;
  int M = 128, N = 256, K = 256, T = 4;
  float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
  float *C = malloc(sizeof(float) * (size_t)T * M * N), *C1 = malloc(sizeof(float) * M * N);
  mbg_uniformFill(A, &rng, (size_t)M * K, -1, 1);
  mbg_uniformFill(B, &rng, (size_t)K * N, -1, 1);
  mbn_gemm(MB_BF16, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C1, N);
  int saved = mbu_threads();
  mbu_setThreads(2);
  PoolCtx c = {A, B, C, M, N, K};
  mbu_parallelFor(T, pool_task, &c);
  mbu_setThreads(saved);
  for (int t = 0; t < T; t++)
    CHECK(memcmp(C + (size_t)t * M * N, C1, sizeof(float) * M * N) == 0, "task %d", t);
  free(A); free(B); free(C); free(C1);
}

/* attached bf16 images (mbn_bf16Attach): a product whose B lies in an image gives the bits
   of the product that rounds B itself, in both layouts (W as [K x N] and, transposed, as
   [N x K]) and for a block inside the image; the image is really read (a stale image gives
   the stale weights' product); a B with gaps (ldb > row length) or after mbn_bf16Detach is
   rounded again; a full table is refused */
static void test_images(void) {
  if (!have_bf16) return;
  int M = 64, K = 128, N = 96;
  size_t nw = 8 + (size_t)K * N + 40;   /* the weights sit at an offset inside the image */
  float *W = malloc(sizeof(float) * nw), *A = malloc(sizeof(float) * M * K);
  float *At = malloc(sizeof(float) * M * N);
  float *C0 = malloc(sizeof(float) * M * N), *C1 = malloc(sizeof(float) * M * N);
  float *D0 = malloc(sizeof(float) * M * K), *D1 = malloc(sizeof(float) * M * K);
  uint16_t *img = malloc(sizeof(uint16_t) * nw);
  mbg_uniformFill(W, &rng, nw, -1, 1);
  mbg_uniformFill(A, &rng, (size_t)M * K, -1, 1);
  mbg_uniformFill(At, &rng, (size_t)M * N, -1, 1);
  const float *B = W + 8;
  mbn_gemm(MB_BF16, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C0, N);     /* x W */
  mbn_gemm(MB_BF16, 0, 1, M, K, N, 1.0f, At, N, B, N, 0.0f, D0, K);    /* dy W^T */
  mbn_bf16Image(img, W, nw);
  for (size_t i = 0; i < nw; i += 997) {
    uint32_t u = (uint32_t)img[i] << 16;
    float f;
    memcpy(&f, &u, 4);
    CHECK(f == mbn_bf16Round(W[i]), "image value %zu", i);
  }
  CHECK(mbn_bf16Attach(W, img, nw) == MB_OK, "attach");
  mbn_gemm(MB_BF16, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C1, N);
  CHECK(memcmp(C0, C1, sizeof(float) * M * N) == 0, "x W from the image");
  mbn_gemm(MB_BF16, 0, 1, M, K, N, 1.0f, At, N, B, N, 0.0f, D1, K);
  CHECK(memcmp(D0, D1, sizeof(float) * M * K) == 0, "dy W^T from the image");
  /* stale image: the product is the image's (W doubled: every bf16 doubles exactly) */
  for (size_t i = 0; i < nw; i++) W[i] *= 2;
  mbn_gemm(MB_BF16, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C1, N);
  CHECK(memcmp(C0, C1, sizeof(float) * M * N) == 0, "an attached image is what is read");
  /* a B with gaps (the first N - 8 columns of each row) is rounded from W itself */
  mbn_gemm(MB_BF16, 0, 0, M, N - 8, K, 1.0f, A, K, B, N, 0.0f, C1, N - 8);
  int doubled = 1;
  for (int i = 0; i < M && doubled; i++)
    for (int j = 0; j < N - 8; j++)
      if (C1[(size_t)i * (N - 8) + j] != 2 * C0[(size_t)i * N + j]) { doubled = 0; break; }
  CHECK(doubled, "ldb > row length: B rounded again");
  mbn_bf16Detach(W);
  mbn_gemm(MB_BF16, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C1, N);
  doubled = 1;
  for (int i = 0; i < M * N; i++) if (C1[i] != 2 * C0[i]) { doubled = 0; break; }
  CHECK(doubled, "detached: B rounded again");
  /* re-attaching replaces; the table holds 8 */
  float dummy[9];
  int ok = 1;
  for (int i = 0; i < 8; i++) ok &= mbn_bf16Attach(dummy + i, img, 1) == MB_OK;
  CHECK(ok, "8 images");
  CHECK(mbn_bf16Attach(dummy, img, 1) == MB_OK, "re-attach replaces");
  CHECK(mbn_bf16Attach(dummy + 8, img, 1) == MB_ERR, "a 9th is refused");
  CHECK(strstr(mbu_lasterror(), "8 bf16 weight images") != NULL, "message: %s", mbu_lasterror());
  for (int i = 0; i < 8; i++) mbn_bf16Detach(dummy + i);
  CHECK(mbn_bf16Attach(dummy + 8, img, 1) == MB_OK, "room again after detaching");
  mbn_bf16Detach(dummy + 8);
  free(W); free(A); free(At); free(C0); free(C1); free(D0); free(D1); free(img);
}

/* the packing of fp32 to bf16 (mbn_bf16Image, the same code as every bf16 product's operands)
   on each instruction-set path gives mbn_bf16Round's bits for every value class: ties, NaNs
   (quiet, of either sign, with payloads), infinities, subnormals (kept, not flushed), zeros,
   the largest finite values (rounding up to infinity), at every length 0..40 (the vector
   tails) */
static void test_pack_paths(void) {
  enum { N = 4096 };
  float *x = malloc(sizeof(float) * N);
  uint16_t *img = malloc(sizeof(uint16_t) * (N + 1));
  uint32_t special[] = {0x00000000u, 0x80000000u, 0x00000001u, 0x807fffffu, 0x00008000u,
                        0x00018000u, 0x3f808000u, 0x3f818000u, 0x7f7fffffu, 0xff7fffffu,
                        0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00001u, 0x7f800001u,
                        0x7fbfffffu, 0x3f80ffffu, 0x4049ffffu};
  int ns = (int)(sizeof special / sizeof special[0]);
  for (int i = 0; i < N; i++) {
    uint32_t u = i < ns ? special[i] : (uint32_t)(mbg_next(&rng) >> 32);
    memcpy(&x[i], &u, 4);
  }
  mbIsa paths[2] = {MB_ISA_AVX2, MB_ISA_AVX512};
  mbIsa before = mbn_isa();
  for (int p = 0; p < 2; p++) {
    if (!mbn_isaSupported(paths[p])) continue;
    CHECK(mbn_setIsa(paths[p]) == MB_OK, "setIsa");
    long bad = 0;
    for (int len = 0; len <= 40; len++) {   /* every tail length, the sentinel kept */
      img[len] = 0xabcd;
      mbn_bf16Image(img, x + 3 * len, (size_t)len);
      for (int i = 0; i < len; i++) {
        float r = mbn_bf16Round(x[3 * len + i]);
        uint32_t u;
        memcpy(&u, &r, 4);
        bad += img[i] != (uint16_t)(u >> 16);
      }
      bad += img[len] != 0xabcd;
    }
    mbn_bf16Image(img, x, N);
    for (int i = 0; i < N; i++) {
      float r = mbn_bf16Round(x[i]);
      uint32_t u;
      memcpy(&u, &r, 4);
      bad += img[i] != (uint16_t)(u >> 16);
    }
    CHECK(bad == 0, "%s path: %ld values packed unlike mbn_bf16Round", mbn_isaName(paths[p]),
          bad);
  }
  mbn_setIsa(before);
  /* and mbn_bf16Round itself on the classes: subnormals kept, NaN quiet, overflow to inf */
  CHECK(mbn_bf16Round(0x1p-130f) == 0x1p-130f, "subnormal kept");
  CHECK(mbn_bf16Round(FLT_MAX) == INFINITY, "largest finite rounds up to infinity");
  free(x); free(img);
}

/* the per-thread primitive cache (mbn_matmulLookup) with 2 slots and 5 fp32 shapes in turn:
   every lookup after an eviction builds the right primitive again (each product checked
   against a double loop), hits return the same slot without rebuilding, and eviction goes
   round robin */
static void test_cache_eviction(void) {
  dnnl_engine_t e;
  dnnl_stream_t st;
  CHECK(dnnl_engine_create(&e, dnnl_cpu, 0) == dnnl_success, "engine");
  CHECK(dnnl_stream_create(&st, e, dnnl_stream_default_flags) == dnnl_success, "stream");
  enum { CAP = 2, NS = 5, K = 7, N = 5, MMAX = 9 };
  mbnMatmul cache[CAP];
  memset(cache, 0, sizeof cache);
  int n = 0, evict = 0;
  float A[MMAX * K], B[K * N], C[MMAX * N];
  double R[MMAX * N];
  for (int i = 0; i < MMAX * K; i++) A[i] = (float)mbg_uniform(&rng) - 0.5f;
  for (int i = 0; i < K * N; i++) B[i] = (float)mbg_uniform(&rng) - 0.5f;
  float zero[MMAX * N] = {0};
  int bad = 0;
  for (int round = 0; round < 3 * NS; round++) {
    int M = 3 + round % NS;  /* 3..7 rows: five shapes cycling through two slots */
    mbnMatmulShape sh = {.dt = dnnl_f32, .M = M, .N = N, .K = K, .lda = K, .ldb = N,
                         .ldc = N, .alpha = 1, .beta = 0};
    int before = evict;
    mbnMatmul *p = mbn_matmulLookup(cache, CAP, &n, &evict, e, &sh);
    CHECK(p != NULL, "round %d: a primitive for M = %d", round, M);
    if (!p) continue;
    CHECK(p->s.M == M, "round %d: the slot holds M = %d, not %d", round, p->s.M, M);
    if (round >= CAP) {
      CHECK(p == &cache[before], "round %d: evicted slot %d, got slot %d", round, before,
            (int)(p - cache));
      CHECK(evict == (before + 1) % CAP, "round %d: round robin", round);
    }
    int after = evict;
    CHECK(mbn_matmulLookup(cache, CAP, &n, &evict, e, &sh) == p && evict == after,
          "round %d: a hit reuses the slot and evicts nothing", round);
    memset(C, 0, sizeof C);
    CHECK(mbn_matmulRun(p, st, A, B, C) == 0, "round %d: run", round);
    ref(R, NULL, 0, 0, M, N, K, 1, A, K, B, N, 0, zero, N, 0);
    for (int i = 0; i < M * N; i++) bad += fabs(C[i] - R[i]) > 1e-5;
    for (int i = M * N; i < MMAX * N; i++) bad += C[i] != 0;
  }
  CHECK(n == CAP, "%d slots in use", n);
  CHECK(bad == 0, "%d products wrong after eviction", bad);
  for (int i = 0; i < CAP; i++) mbn_matmulDestroy(&cache[i]);
  dnnl_stream_destroy(st);
  dnnl_engine_destroy(e);
}


/* mbn_gemm16 (operands rounded by the caller) against mbn_gemm on the same operands: the same
   bits for every transpose, padded and unpadded row counts, dense and strided operands (the
   ensemble's products: x W, dy W^T, x[:, k0:k1]^T dy), and with only one copy given; a
   product under MB_BF16_MIN_DIM ignores the copies (fp32) */
static void test_rounded_operands(void) {
  if (!have_bf16) return;
  enum { LD = 90 };
  static const int shapes[][5] = {  /* ta, tb, M, N, K */
    {0, 0, 64, 48, 40}, {0, 0, 50, 48, 40}, {0, 1, 64, 40, 48}, {0, 1, 37, 40, 48},
    {1, 0, 40, 48, 64}, {1, 0, 33, 48, 70}, {1, 1, 40, 36, 64}, {0, 0, 64, 20, 40}};
  size_t n = (size_t)LD * LD;
  float *A = malloc(sizeof(float) * n), *B = malloc(sizeof(float) * n);
  float *C0 = malloc(sizeof(float) * n), *C1 = malloc(sizeof(float) * n);
  uint16_t *A16 = malloc(sizeof(uint16_t) * n), *B16 = malloc(sizeof(uint16_t) * n);
  mbg_uniformFill(A, &rng, n, -2, 2);
  mbg_uniformFill(B, &rng, n, -2, 2);
  mbn_bf16Image(A16, A, n);
  mbn_bf16Image(B16, B, n);
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    int ta = shapes[s][0], tb = shapes[s][1], M = shapes[s][2], N = shapes[s][3];
    int K = shapes[s][4];
    for (int strided = 0; strided < 2; strided++)
      for (int which = 1; which <= 3; which++) {   /* A16, B16, both */
        int lda = strided ? LD : (ta ? M : K), ldb = strided ? LD : (tb ? K : N);
        int off = strided ? 3 : 0;   /* a column block: the weight gradient's x[:, k0:k1] */
        const float *a = A + off, *b = B + off;
        const uint16_t *a16 = which & 1 ? A16 + off : NULL, *b16 = which & 2 ? B16 + off : NULL;
        for (size_t i = 0; i < n; i++) C0[i] = C1[i] = (float)i;
        CHECK(mbn_gemm(MB_BF16, ta, tb, M, N, K, 1.0f, a, lda, b, ldb, 0.5f, C0, LD) == MB_OK,
              "gemm");
        CHECK(mbn_gemm16(MB_BF16, ta, tb, M, N, K, 1.0f, a, lda, a16, b, ldb, b16, 0.5f, C1,
                         LD) == MB_OK, "gemm16");
        CHECK(memcmp(C0, C1, sizeof(float) * n) == 0,
              "ta %d tb %d %dx%dx%d strided %d copies %d: same bits", ta, tb, M, N, K, strided,
              which);
      }
  }
  /* the copies are what is read (stale copies show), and ignored by an fp32 product */
  for (size_t i = 0; i < n; i++) A16[i] = 0;
  for (size_t i = 0; i < n; i++) C0[i] = 1;
  mbn_gemm16(MB_BF16, 0, 0, 64, 48, 40, 1.0f, A, 40, A16, B, 48, NULL, 0.0f, C0, 48);
  int zero = 1;
  for (int i = 0; i < 64 * 48; i++) zero &= C0[i] == 0;
  CHECK(zero, "A16 is read in bf16");
  mbn_gemm16(MB_BF16, 0, 0, 64, 20, 40, 1.0f, A, 40, A16, B, 20, NULL, 0.0f, C0, 20);
  zero = 1;
  for (int i = 0; i < 64 * 20; i++) zero &= C0[i] == 0;
  CHECK(!zero, "N under MB_BF16_MIN_DIM: fp32 from A");
  free(A); free(B); free(C0); free(C1); free(A16); free(B16);
}

int main(void) {
  mbg_seed(&rng, 77, 0);
  char impl[128] = "";
  have_bf16 = mbn_bf16Check(impl, sizeof impl) == MB_OK;
  if (have_bf16) printf("bf16 matmul: %s\n", impl);
  else printf("no native bf16 here (%s): bf16 product tests skipped\n", mbu_lasterror());
  RUN(test_round);
  RUN(test_bf16_products);
  RUN(test_small_stay_fp32);
  RUN(test_threads);
  RUN(test_images);
  RUN(test_pack_paths);
  RUN(test_cache_eviction);
  RUN(test_rounded_operands);
  return TEST_REPORT();
}
