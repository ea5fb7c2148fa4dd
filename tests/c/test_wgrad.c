/* The ensemble's fp32 weight-gradient rows (mbn_linearBackwardRows): on an AVX-512 CPU the
   unpacked kernel of ens_kernels.c computes each element as one chain of FMAs over the rows in
   order, which this test recomputes with fmaf and requires bit for bit; on every CPU (and on
   sgemm, with the kernel turned off) the rows agree with a double reference, the rows outside
   [k0, k1) are left alone, and the two halves of a split give the whole product. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

#include "mbpo/core.h"
#include "mbpo/nn.h"
#include "mbpo/rng.h"
#include "nn/matmul.h"

static void fill(float *x, size_t n, uint64_t seed) {
  mbRng g;
  mbg_seed(&g, seed, 5);
  for (size_t i = 0; i < n; i++) x[i] = mbg_uniformf(&g) - 0.5f;
}

/* dW rows [k0, k1) of x^T dy for x [B x in], dy [B x out]; checks as said above */
static void check_rows(int B, int in, int out, int k0, int k1) {
  size_t nx = (size_t)B * in, ny = (size_t)B * out, nw = (size_t)in * out;
  float *x = malloc(nx * 4), *dy = malloc(ny * 4), *dW = malloc(nw * 4), *dW2 = malloc(nw * 4);
  if (!x || !dy || !dW || !dW2) { CHECK(0, "out of memory"); return; }
  fill(x, nx, (uint64_t)(1 + B + in));
  fill(dy, ny, (uint64_t)(2 + out));
  for (size_t i = 0; i < nw; i++) dW[i] = dW2[i] = 7.0f;   /* a mark outside the rows */
  mbn_linearBackwardRows(dW, dy, x, B, in, out, k0, k1);
  int direct = mbn_wgradDirectInUse();
  double worst = 0;
  long chain_diff = 0, marks = 0;
  for (int k = 0; k < in; k++)
    for (int j = 0; j < out; j++) {
      float got = dW[(size_t)k * out + j];
      if (k < k0 || k >= k1) { marks += got != 7.0f; continue; }
      double s = 0;
      float acc = 0.0f;
      for (int r = 0; r < B; r++) {
        s += (double)x[(size_t)r * in + k] * dy[(size_t)r * out + j];
        acc = fmaf(x[(size_t)r * in + k], dy[(size_t)r * out + j], acc);
      }
      if (fabs(got - s) > worst) worst = fabs(got - s);
      chain_diff += memcmp(&got, &acc, sizeof got) != 0;
    }
  /* |terms| <= 1/4: B roundings of at most 2^-24 * |partial sum| (<= B / 4) each */
  CHECK(worst <= 0x1p-23 * B * (B / 4.0 + 1), "B %d, %dx%d rows %d..%d: error %g", B, in, out, k0,
        k1, worst);
  CHECK(marks == 0, "%ld elements outside rows %d..%d written", marks, k0, k1);
  if (direct)
    CHECK(chain_diff == 0, "B %d, %dx%d rows %d..%d: %ld elements differ from the FMA chain", B,
          in, out, k0, k1, chain_diff);
  /* the rows in two calls split at the middle: the same bits as one call */
  int mid = (k0 + k1) / 2;
  mbn_linearBackwardRows(dW2, dy, x, B, in, out, k0, mid);
  mbn_linearBackwardRows(dW2, dy, x, B, in, out, mid, k1);
  CHECK(memcmp(dW, dW2, nw * 4) == 0, "B %d, %dx%d: split at %d differs", B, in, out, mid);
  free(x); free(dy); free(dW); free(dW2);
}

static void shapes(void) {
  /* the ensemble's (Hopper: 14 -> 200 x 4 -> 24, halves of the rows) */
  check_rows(256, 200, 200, 0, 100);
  check_rows(256, 200, 200, 100, 200);
  check_rows(256, 14, 200, 0, 7);
  check_rows(256, 14, 200, 7, 14);
  check_rows(256, 200, 24, 100, 200);
  /* every tile: 1..9 rows, column tails of 1..17, 47..49 and 200 columns, odd batches */
  for (int nk = 1; nk <= 9; nk++) check_rows(37, 23, 49, 3, 3 + nk);
  int outs[] = {1, 15, 16, 17, 33, 47, 48, 49, 97, 203};
  for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) check_rows(5, 11, outs[i], 0, 11);
  check_rows(1, 8, 24, 0, 8);
  check_rows(1000, 20, 64, 4, 16);
}

/* in bf16 the weight gradients with a dimension under MB_BF16_MIN_DIM stay fp32: the same
   bits as the fp32 call, on the kernel and on sgemm */
static void test_bf16_small_stay_fp32(void) {
  int shapes[][5] = {{256, 14, 200, 0, 7}, {256, 14, 200, 7, 14}, {256, 200, 24, 100, 200},
                     {20, 40, 64, 0, 40}};
  for (int direct = 0; direct < 2; direct++) {
    mbn_wgradDirectUse(direct);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
      int B = shapes[s][0], in = shapes[s][1], out = shapes[s][2], k0 = shapes[s][3];
      int k1 = shapes[s][4];
      size_t nx = (size_t)B * in, ny = (size_t)B * out, nw = (size_t)in * out;
      float *x = malloc(nx * 4), *dy = malloc(ny * 4), *a = calloc(nw, 4), *b = calloc(nw, 4);
      if (!x || !dy || !a || !b) { CHECK(0, "out of memory"); return; }
      fill(x, nx, 11 + s);
      fill(dy, ny, 12 + s);
      mbn_linearBackwardRowsP(MB_FP32, a, dy, x, B, in, out, k0, k1);
      mbn_linearBackwardRowsP(MB_BF16, b, dy, x, B, in, out, k0, k1);
      CHECK(memcmp(a, b, nw * 4) == 0, "direct %d, B %d, %dx%d rows %d..%d: bf16 differs from "
            "fp32", direct, B, in, out, k0, k1);
      free(x); free(dy); free(a); free(b);
    }
  }
  mbn_wgradDirectUse(1);
}

static void test_direct(void) {
  mbn_wgradDirectUse(1);
  shapes();
}

static void test_sgemm(void) {
  mbn_wgradDirectUse(0);
  CHECK(!mbn_wgradDirectInUse(), "the kernel is still in use when turned off");
  shapes();
  mbn_wgradDirectUse(1);
}

/* on an AVX-512 CPU the kernel is the default; an empty batch still gives zero rows */
static void test_default_and_empty(void) {
  if (mbn_isaSupported(MB_ISA_AVX512) && mbn_gemmF32InUse())
    CHECK(mbn_wgradDirectInUse(), "AVX-512 CPU, but the kernel is not the default");
  float dW[6] = {1, 1, 1, 1, 1, 1}, x[1] = {0}, dy[1] = {0};
  mbn_linearBackwardRows(dW, dy, x, 0, 3, 2, 1, 3);
  CHECK(dW[0] == 1 && dW[1] == 1 && dW[2] == 0 && dW[5] == 0, "empty batch: %g %g %g %g",
        dW[0], dW[1], dW[2], dW[5]);
}

int main(void) {
  mbu_setThreads(1);
  RUN(test_default_and_empty);
  RUN(test_direct);
  RUN(test_sgemm);
  RUN(test_bf16_small_stay_fp32);
  return TEST_REPORT();
}
