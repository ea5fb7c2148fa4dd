/* In-process A/B of the whole kernels (SAC update, ensemble training step, 100k-row model
   step) over the two switches of issue 10's fp32 work: the elementwise kernels' path (AVX2 /
   AVX-512) and the fp32 products' library (OpenBLAS / oneDNN for the wide shapes, and the
   ensemble's weight gradients on the unpacked kernel of ens_kernels.c). The four settings
   alternate round by round in one process and each keeps its best round, so a loaded
   machine slows all of them alike. Then the ensemble training step alone with that
   weight-gradient kernel off and on (the rest as the default), alternating, medians and
   quartiles of the rounds. Hopper shapes, MBPO_THREADS threads (default 2;
   at 1 the time is the thread's CPU time, which a loaded machine disturbs far less).
   Build and run: make build/tools/ab_kernels && build/tools/ab_kernels [ROUNDS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mbpo/core.h"
#include "mbpo/ensemble.h"
#include "mbpo/nn.h"
#include "mbpo/rng.h"
#include "mbpo/sac.h"
#include "nn/matmul.h"

/* at one thread all the work runs on this thread: its CPU time leaves out the time the
   loaded machine takes it off the core; with more threads, wall time */
static clockid_t clock_id = CLOCK_MONOTONIC;

static double now(void) {
  struct timespec t;
  clock_gettime(clock_id, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void fill(float *x, size_t n, uint64_t seed, float lo, float hi) {
  mbRng g;
  mbg_seed(&g, seed, 1);
  for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * mbg_uniformf(&g);
}

enum { O = 11, A = 3, B = 256, IN = O + A, D = O + 1, ROWS = 100000 };

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 7;
  const char *th = getenv("MBPO_THREADS");
  mbu_setThreads(th && atoi(th) > 0 ? atoi(th) : 2);
  if (mbu_threads() == 1) clock_id = CLOCK_THREAD_CPUTIME_ID;
  int have512 = mbn_isaSupported(MB_ISA_AVX512);
  /* SAC and its batch */
  mbSacConfig sc;
  mbr_sacDefaults(&sc, O, A);
  mbSac s;
  if (mbr_sacInit(&s, &sc) < 0) { fprintf(stderr, "%s\n", mbu_lasterror()); return 1; }
  float *obs = malloc(sizeof(float) * ROWS * O), *act = malloc(sizeof(float) * ROWS * A);
  float *rew = malloc(sizeof(float) * B), *done = calloc(B, sizeof(float));
  float *x = malloc(sizeof(float) * 7 * B * IN), *y = malloc(sizeof(float) * 7 * B * D);
  float *nx = malloc(sizeof(float) * ROWS * O), *rw = malloc(sizeof(float) * ROWS);
  if (!obs || !act || !rew || !done || !x || !y || !nx || !rw) return 1;
  fill(obs, (size_t)ROWS * O, 1, -1, 1);
  fill(act, (size_t)ROWS * A, 2, -1, 1);
  fill(rew, B, 3, -1, 1);
  fill(x, (size_t)7 * B * IN, 4, -1, 1);
  fill(y, (size_t)7 * B * D, 5, -1, 1);
  /* the MBPO ensemble: 7 members, 4 x 200 swish (the defaults) */
  mbEnsembleConfig ec;
  mbn_ensDefaults(&ec, IN, D);
  mbEnsemble *e = NULL;
  if (mbn_ensCreate(&e, &ec) < 0) { fprintf(stderr, "%s\n", mbu_lasterror()); return 1; }
  const char *names[4] = {"avx2 + OpenBLAS (before)", "avx512 + OpenBLAS", "avx2 + oneDNN/wgrad",
                          "avx512 + oneDNN/wgrad"};
  double best[3][4];
  for (int k = 0; k < 3; k++)
    for (int c = 0; c < 4; c++) best[k][c] = 1e30;
  for (int r = 0; r < rounds; r++)
    for (int i = 0; i < 4; i++) {
      int c = (i + r) % 4;   /* rotate the order */
      if ((c & 1) && !have512) continue;
      mbn_setIsa((c & 1) ? MB_ISA_AVX512 : MB_ISA_AVX2);
      mbn_gemmF32Use(c >= 2);
      double t0 = now();
      for (int u = 0; u < 20; u++)
        mbr_sacUpdate(&s, NULL, obs, act, rew, obs + O, done, B);
      double t1 = now();
      for (int u = 0; u < 10; u++) mbn_ensTrainStep(NULL, e, x, y, B);
      double t2 = now();
      mbRng g;
      mbg_seed(&g, 7, (uint64_t)r);
      mbn_ensStep(nx, rw, NULL, e, obs, act, ROWS, &g, MB_PRED_SAMPLE);
      double t3 = now();
      double t[3] = {(t1 - t0) / 20, (t2 - t1) / 10, t3 - t2};
      for (int k = 0; k < 3; k++)
        if (r > 0 && t[k] < best[k][c]) best[k][c] = t[k];   /* round 0 warms up */
    }
  printf("Hopper shapes, %d threads, best of %d alternating rounds (%s ms)\n", mbu_threads(),
         rounds - 1, mbu_threads() == 1 ? "thread CPU" : "wall");
  printf("%-26s %12s %12s %12s\n", "setting", "sac_update", "ens_train", "ens_step100k");
  for (int c = 0; c < 4; c++) {
    if ((c & 1) && !have512) continue;
    printf("%-26s %12.3f %12.3f %12.1f\n", names[c], best[0][c] * 1e3, best[1][c] * 1e3,
           best[2][c] * 1e3);
  }
  printf("%-26s %11.2fx %11.2fx %11.2fx\n", "speed-up avx512 (blas)", best[0][0] / best[0][1],
         best[1][0] / best[1][1], best[2][0] / best[2][1]);
  printf("%-26s %11.2fx %11.2fx %11.2fx\n", "speed-up oneDNN (avx512)", best[0][1] / best[0][3],
         best[1][1] / best[1][3], best[2][1] / best[2][3]);
  /* the weight-gradient kernel alone: sgemm (0) against the unpacked kernel (1) */
  mbn_setIsa(have512 ? MB_ISA_AVX512 : MB_ISA_AVX2);
  mbn_gemmF32Use(1);
  enum { WR = 40 };
  double wt[2][WR];
  int nw[2] = {0, 0};
  for (int r = 0; r < 2 * WR + 2; r++) {
    int on = (r ^ (r >> 1)) & 1;   /* 0 1 1 0 0 1 1 0 ...: each goes first as often */
    mbn_wgradDirectUse(on);
    double t0 = now();
    for (int u = 0; u < 10; u++) mbn_ensTrainStep(NULL, e, x, y, B);
    double t = (now() - t0) / 10;
    if (r >= 2 && nw[on] < WR) wt[on][nw[on]++] = t;   /* the first two warm up */
  }
  mbn_wgradDirectUse(1);
  for (int on = 0; on < 2; on++) {
    double *v = wt[on];
    int n = nw[on];
    for (int i = 1; i < n; i++)   /* insertion sort */
      for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
        double q = v[j];
        v[j] = v[j - 1];
        v[j - 1] = q;
      }
    printf("ens_train, weight gradients on %-20s median %.3f ms (q1 %.3f, q3 %.3f; %d rounds)\n",
           on ? "the unpacked kernel:" : "sgemm:", v[n / 2] * 1e3, v[n / 4] * 1e3,
           v[3 * n / 4] * 1e3, n);
  }
  mbn_ensFree(e);
  mbr_sacFree(&s);
  return 0;
}
