/* The fp32 products mbn_gemm sends to oneDNN (src/nn/gemm_f32.c, forced on here with
   MBPO_GEMM_F32=dnnl): B transposed or not, leading dimensions wider than the matrices, beta
   0 and 1, against a double reference; the shapes it leaves to sgemm still computed; and the
   same call twice (a cached primitive) gives the same bits. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

#include "mbpo/core.h"
#include "mbpo/nn.h"
#include "mbpo/rng.h"

static void fill(float *x, size_t n, uint64_t seed) {
  mbRng g;
  mbg_seed(&g, seed, 3);
  for (size_t i = 0; i < n; i++) x[i] = mbg_uniformf(&g) - 0.5f;
}

/* C = op(A) op(B) + beta C in double, then compared with mbn_gemm's result */
static void check_shape(int ta, int tb, int M, int N, int K, float beta, int pad, int expect) {
  int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
  size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
  float *A = malloc(na * 4), *B = malloc(nb * 4), *C = malloc(nc * 4), *C0 = malloc(nc * 4);
  float *C2 = malloc(nc * 4);
  if (!A || !B || !C || !C0 || !C2) { CHECK(0, "out of memory"); return; }
  fill(A, na, 1 + M);
  fill(B, nb, 2 + N);
  fill(C0, nc, 3 + K);
  memcpy(C, C0, nc * 4);
  memcpy(C2, C0, nc * 4);
  int r = mbn_gemmF32Dnnl(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
  CHECK(r == expect, "oneDNN took (%d) the shape %dx%dx%d t%d%d, expected %d", r, M, N, K, ta,
        tb, expect);
  if (r == 0) mbn_gemm(MB_FP32, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
  double worst = 0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = beta * (double)C0[(size_t)i * ldc + j];
      for (int k = 0; k < K; k++) {
        double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
        double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
        s += a * b;
      }
      double d = fabs(C[(size_t)i * ldc + j] - s);
      if (d > worst) worst = d;
    }
  /* |terms| <= 1/4: K terms of rounding 2^-24 each, far below this bound */
  CHECK(worst <= 1e-5 * K, "%dx%dx%d t%d%d beta %g pad %d: error %g", M, N, K, ta, tb, beta,
        pad, worst);
  int untouched = 1;
  for (int i = 0; i < M; i++)
    for (int j = N; j < ldc; j++) untouched &= C[(size_t)i * ldc + j] == C0[(size_t)i * ldc + j];
  CHECK(untouched, "columns past N written");
  /* through mbn_gemm, twice: the same bits as the direct call */
  for (int rep = 0; rep < 2; rep++) {
    memcpy(C2, C0, nc * 4);
    CHECK(mbn_gemm(MB_FP32, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C2, ldc) == MB_OK, "gemm");
    CHECK(memcmp(C, C2, nc * 4) == 0, "mbn_gemm differs from the direct call (rep %d)", rep);
  }
  free(A); free(B); free(C); free(C0); free(C2);
}

static void test_dnnl_shapes(void) {
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (int beta = 0; beta < 2; beta++) {
        /* A transposed (weight gradients) stays on sgemm */
        check_shape(ta, tb, 128, 200, 256, (float)beta, 0, !ta);
        check_shape(ta, tb, 64, 136, 128, (float)beta, 5, !ta);
        check_shape(ta, tb, 256, 256, 256, (float)beta, 3, !ta);
      }
}

static void test_left_to_sgemm(void) {
  check_shape(0, 0, 100, 200, 200, 0.0f, 0, 0);   /* rows not a multiple of 32 */
  check_shape(0, 0, 256, 256, 14, 1.0f, 0, 0);    /* narrow first layer */
  check_shape(0, 0, 256, 1, 256, 1.0f, 0, 0);     /* one-unit output */
  check_shape(0, 0, 32, 256, 256, 1.0f, 0, 0);    /* too few rows */
  check_shape(0, 0, 512, 200, 200, 0.0f, 0, 0);   /* too many rows (model-step items) */
  check_shape(0, 1, 128, 256, 256, 0.5f, 0, 0);   /* beta other than 0 and 1 */
}

int main(void) {
  setenv("MBPO_GEMM_F32", "dnnl", 1);
  RUN(test_dnnl_shapes);
  RUN(test_left_to_sgemm);
  return TEST_REPORT();
}
