/* The elementwise kernels on the AVX2 and the AVX-512 path at the sizes the ensemble and SAC
   use them: microseconds per call, the best of alternating rounds in one process (so a
   loaded machine slows both alike), one thread.
   Build and run: make build/tools/simd_kernels && build/tools/simd_kernels [ROUNDS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mbpo/core.h"
#include "mbpo/nn.h"
#include "mbpo/rng.h"
#include "mbpo/sac.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

enum { BIG = 1 << 20 };
static float *a, *b, *c, *d, *e, *f;
static mbAdam opt, fused;

static void k_bias_swish(void) { mbn_biasSwishSig(a, b, c, 128, 200); }
static void k_swish_bwd(void) { mbn_swishBackwardSig(b, a, c, b, 128 * 200); }
static void k_bias_grad(void) { mbn_biasGrad(a, b, 256, 200, 0, 100); }
static void k_add_bias(void) { mbn_addBias(a, c, 512, 24); }
static void k_nll12(void) { mbn_gaussNll(a, d, e, a, b, c, f, 128, 12, 1e-3f); }
static void k_nll28(void) { mbn_gaussNll(a, d, e, a, b, c, f, 128, 28, 1e-3f); }
static void k_sample12(void) { mbn_gaussSample(a, b, c, d, e, 512, 12); }
static void k_noise(void) {
  mbRng g;
  mbg_seed(&g, 1, 2);
  mbn_gaussNoise(a, &g, 512 * 12);
}
static void k_adam_decay(void) { mbn_adam(a, b, c, d, 100 * 200, &fused, 1e-4f, NULL, 0); }
static void k_adam_polyak(void) { mbn_adam(a, b, c, d, 70000, &opt, 0, e, 5e-3f); }
static void k_adam(void) { mbn_adam(a, b, c, d, 70000, &opt, 0, NULL, 0); }
static void k_relu(void) { mbn_reluForward(a, b, 256 * 256); }
static void k_standardize(void) {
  for (int r = 0; r < 512; r++) mbn_standardize(a + r * 14, b + r * 14, c, d, 14);
}

static const struct { const char *name; void (*fn)(void); } kernels[] = {
  {"biasSwishSig 128 x 200", k_bias_swish},
  {"swishBackwardSig 128 x 200", k_swish_bwd},
  {"biasGrad 256 rows x 100 cols", k_bias_grad},
  {"addBias 512 x 24", k_add_bias},
  {"gaussNll + grad 128 x 12", k_nll12},
  {"gaussNll + grad 128 x 28", k_nll28},
  {"gaussSample 512 x 12", k_sample12},
  {"gaussNoise 512 x 12", k_noise},
  {"adam, FMA + decay 20000", k_adam_decay},
  {"adam + Polyak 70000 (critic)", k_adam_polyak},
  {"adam 70000", k_adam},
  {"reluForward 256 x 256", k_relu},
  {"standardize 512 rows x 14", k_standardize},
};

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 15;
  if (!mbn_isaSupported(MB_ISA_AVX512)) {
    printf("this CPU has no AVX-512: only the AVX2 path\n");
    return 0;
  }
  float **bufs[] = {&a, &b, &c, &d, &e, &f};
  mbRng g;
  mbg_seed(&g, 5, 0);
  for (int i = 0; i < 6; i++) {
    *bufs[i] = mbu_alignedAlloc(sizeof(float) * BIG);
    for (int k = 0; k < BIG; k++) (*bufs[i])[k] = 0.5f * mbg_uniformf(&g);
  }
  mbn_adamDefaults(&opt, 1e-4f);
  opt.t = 10;
  fused = opt;
  fused.contract = 1;
  printf("elementwise kernels, us per call, best of %d alternating rounds\n", rounds);
  printf("%-32s %9s %9s %8s\n", "kernel", "avx2", "avx512", "speed-up");
  for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
    double best[2] = {1e30, 1e30};
    int reps = 50;
    for (int r = 0; r < rounds; r++)
      for (int p = 0; p < 2; p++) {
        int isa = (r & 1) ? 1 - p : p;
        mbn_setIsa(isa ? MB_ISA_AVX512 : MB_ISA_AVX2);
        /* fresh inputs each round: the kernels write in place */
        for (int i = 0; i < 6; i++) memcpy(*bufs[i], *bufs[(i + 1) % 6], 4 * 65536);
        double t0 = now();
        for (int i = 0; i < reps; i++) kernels[k].fn();
        double t = (now() - t0) / reps;
        if (t < best[isa]) best[isa] = t;
      }
    printf("%-32s %9.2f %9.2f %8.2f\n", kernels[k].name, best[0] * 1e6, best[1] * 1e6,
           best[0] / best[1]);
  }
  return 0;
}
