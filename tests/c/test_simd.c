/* The elementwise kernels on both instruction-set paths (AVX2, AVX-512 where the CPU has it):
   each against a naive double reference, and the two paths bit for bit against each other,
   from single kernels (sizes around every vector width, masked tails) up to whole ensemble
   training steps, model steps and SAC updates. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

#include "mbpo/core.h"
#include "mbpo/ensemble.h"
#include "mbpo/nn.h"
#include "mbpo/rng.h"
#include "mbpo/sac.h"

static int have512;

static void fill(float *x, size_t n, uint64_t seed, float lo, float hi) {
  mbRng g;
  mbg_seed(&g, seed, 7);
  for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * mbg_uniformf(&g);
}

static void use(mbIsa isa) { CHECK(mbn_setIsa(isa) == MB_OK, "setIsa: %s", mbu_lasterror()); }

/* the two paths' outputs, the same bits */
#define SAME(a, b, n, what, size)                                                          \
  CHECK(memcmp((a), (b), sizeof(float) * (size_t)(n)) == 0,                                 \
        "%s: AVX2 and AVX-512 results differ (size %d)", what, (int)(size))

static const int sizes[] = {1, 3, 7, 8, 9, 12, 15, 16, 17, 23, 24, 25, 31, 32, 33, 47, 200, 203};
#define NSIZES ((int)(sizeof sizes / sizeof sizes[0]))

static double sigm(double z) { return 1.0 / (1.0 + exp(-z)); }
static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

static void test_isa_api(void) {
  CHECK(mbn_isaSupported(MB_ISA_AVX2), "the AVX2 path is always there");
  CHECK(mbn_setIsa(MB_ISA_AVX2) == MB_OK && mbn_isa() == MB_ISA_AVX2, "force avx2");
  CHECK(strcmp(mbn_isaName(MB_ISA_AVX512), "avx512") == 0, "name");
  if (have512) CHECK(mbn_setIsa(MB_ISA_AVX512) == MB_OK && mbn_isa() == MB_ISA_AVX512, "avx512");
  else CHECK(mbn_setIsa(MB_ISA_AVX512) == MB_ERR, "avx512 refused where unsupported");
  CHECK(mbn_setIsa((mbIsa)7) == MB_ERR, "unknown path refused");
}

static void test_swish(void) {
  for (int si = 0; si < NSIZES; si++) {
    int n = sizes[si];
    float z[256], dh[256], h[2][256], s[2][256], dz[2][256];
    fill(z, n, 1 + n, -12.0f, 12.0f);
    fill(dh, n, 2 + n, -1.0f, 1.0f);
    for (int p = 0; p < 1 + have512; p++) {
      use(p ? MB_ISA_AVX512 : MB_ISA_AVX2);
      mbn_swishForwardSig(h[p], s[p], z, (size_t)n);
      mbn_swishBackwardSig(dz[p], dh, h[p], s[p], (size_t)n);
      for (int i = 0; i < n; i++) {
        double sr = sigm(z[i]);
        CHECK_NEAR(s[p][i], sr, 2e-6);
        CHECK_NEAR(h[p][i], z[i] * sr, 2e-6);
        CHECK_NEAR(dz[p][i], dh[i] * (sr + z[i] * sr * (1 - sr)), 1e-5);
      }
    }
    if (have512) {
      SAME(h[0], h[1], n, "swish", n);
      SAME(s[0], s[1], n, "swish sigmoid", n);
      SAME(dz[0], dz[1], n, "swish backward", n);
    }
  }
}

static void test_bias_kernels(void) {
  enum { B = 3 };
  for (int si = 0; si < NSIZES; si++) {
    int n = sizes[si];
    float x[B * 256], b[256], h[2][B * 256], s[2][B * 256], r[2][B * 256], a[2][B * 256];
    float db[2][256];
    fill(x, (size_t)B * n, 3 + n, -6.0f, 6.0f);
    fill(b, n, 4 + n, -1.0f, 1.0f);
    for (int p = 0; p < 1 + have512; p++) {
      use(p ? MB_ISA_AVX512 : MB_ISA_AVX2);
      memcpy(h[p], x, sizeof(float) * B * n);
      memcpy(r[p], x, sizeof(float) * B * n);
      memcpy(a[p], x, sizeof(float) * B * n);
      mbn_biasSwishSig(h[p], s[p], b, B, n);
      mbn_biasRelu(r[p], b, B, n);
      mbn_addBias(a[p], b, B, n);
      for (int i = 0; i < 256; i++) db[p][i] = -1.0f;
      mbn_biasGrad(db[p], x, B, n, n / 3, n);
      for (int row = 0; row < B; row++)
        for (int j = 0; j < n; j++) {
          double z = (double)x[row * n + j] + b[j];
          CHECK_NEAR(h[p][row * n + j], z * sigm(z), 2e-6);
          CHECK_NEAR(r[p][row * n + j], z > 0 ? z : 0, 1e-6);
          CHECK_NEAR(a[p][row * n + j], z, 1e-6);
        }
      for (int j = n / 3; j < n; j++) {
        double sum = 0;
        for (int row = 0; row < B; row++) sum += x[row * n + j];
        CHECK_NEAR(db[p][j], sum, 1e-5);
      }
      CHECK(n / 3 == 0 || db[p][0] == -1.0f, "biasGrad wrote outside its columns");
    }
    if (have512) {
      SAME(h[0], h[1], B * n, "biasSwishSig", n);
      SAME(s[0], s[1], B * n, "biasSwishSig sigmoid", n);
      SAME(r[0], r[1], B * n, "biasRelu", n);
      SAME(a[0], a[1], B * n, "addBias", n);
      SAME(db[0], db[1], n, "biasGrad", n);
    }
  }
}

static void test_adam_kernels(void) {
  mbAdam opt;
  mbn_adamDefaults(&opt, 1e-3f);
  opt.t = 5;
  for (int si = 0; si < NSIZES; si++) {
    int n = sizes[si];
    float p0[256], m0[256], v0[256], g0[256], t0[256];
    fill(p0, n, 5 + n, -1.0f, 1.0f);
    fill(m0, n, 6 + n, -0.1f, 0.1f);
    fill(v0, n, 7 + n, 0.0f, 0.01f);
    fill(g0, n, 8 + n, -1.0f, 1.0f);
    fill(t0, n, 9 + n, -1.0f, 1.0f);
    /* mbn_adam in four shapes, each on its own copy: FMA arithmetic with decay (the
       ensemble's), separate operations (mbpo.nn, the temperature), with a Polyak target (the
       critics), FMA arithmetic with a Polyak target */
    float out[2][4][5][256];
    double decay[2];
    mbAdam fused = opt;
    fused.contract = 1;
    for (int p = 0; p < 1 + have512; p++) {
      use(p ? MB_ISA_AVX512 : MB_ISA_AVX2);
      for (int k = 0; k < 4; k++) {
        memcpy(out[p][k][0], p0, sizeof p0);
        memcpy(out[p][k][1], m0, sizeof m0);
        memcpy(out[p][k][2], v0, sizeof v0);
        memcpy(out[p][k][3], g0, sizeof g0);
        memcpy(out[p][k][4], t0, sizeof t0);
      }
      float (*o)[5][256] = out[p];
      decay[p] = mbn_adam(o[0][0], o[0][1], o[0][2], o[0][3], (size_t)n, &fused, 0.1f, NULL, 0);
      mbn_adam(o[1][0], o[1][1], o[1][2], o[1][3], (size_t)n, &opt, 0.0f, NULL, 0);
      mbn_adam(o[2][0], o[2][1], o[2][2], o[2][3], (size_t)n, &opt, 0.0f, o[2][4], 0.005f);
      mbn_adam(o[3][0], o[3][1], o[3][2], o[3][3], (size_t)n, &fused, 0.0f, o[3][4], 0.005f);
      double c1 = 1 - pow(0.9, 5), c2 = 1 - pow(0.999, 5), sq = 0;
      for (int i = 0; i < n; i++) {
        for (int k = 0; k < 4; k++) {
          double gi = g0[i] + (k == 0 ? 0.1 * p0[i] : 0.0);
          double mi = 0.9 * m0[i] + 0.1 * gi, vi = 0.999 * v0[i] + 0.001 * gi * gi;
          double pi = p0[i] - 1e-3 / c1 * mi / (sqrt(vi / c2) + 1e-8);
          CHECK_NEAR(o[k][1][i], mi, 1e-6);
          CHECK_NEAR(o[k][2][i], vi, 1e-6);
          CHECK_NEAR(o[k][0][i], pi, 1e-6);
          if (k == 0) CHECK_NEAR(o[k][3][i], gi, 1e-6);
          if (k >= 2) CHECK_NEAR(o[k][4][i], 0.995 * t0[i] + 0.005 * pi, 1e-6);
        }
        sq += (double)p0[i] * p0[i];
      }
      CHECK_NEAR(decay[p], 0.05 * sq, 1e-6);
    }
    if (have512) {
      CHECK(memcmp(out[0], out[1], sizeof out[0]) == 0, "Adam kernels differ (size %d)", n);
      CHECK(decay[0] == decay[1], "adam's decay term differs (size %d): %.17g %.17g", n,
            decay[0], decay[1]);
    }
  }
}

static void test_relu_standardize(void) {
  for (int si = 0; si < NSIZES; si++) {
    int n = sizes[si];
    float x[256], dy[256], mean[256], istd[256], y[2][256], dx[2][256], st[2][256];
    fill(x, n, 10 + n, -2.0f, 2.0f);
    fill(dy, n, 11 + n, -1.0f, 1.0f);
    fill(mean, n, 12 + n, -1.0f, 1.0f);
    fill(istd, n, 13 + n, 0.5f, 3.0f);
    if (n > 2) x[1] = 0.0f, x[2] = -0.0f;
    for (int p = 0; p < 1 + have512; p++) {
      use(p ? MB_ISA_AVX512 : MB_ISA_AVX2);
      mbn_reluForward(y[p], x, (size_t)n);
      mbn_reluBackward(dx[p], dy, y[p], (size_t)n);
      mbn_standardize(st[p], x, mean, istd, n);
      for (int i = 0; i < n; i++) {
        CHECK(y[p][i] == (x[i] > 0 ? x[i] : 0.0f), "relu %d", i);
        CHECK(dx[p][i] == (x[i] > 0 ? dy[i] : 0.0f), "relu backward %d", i);
        CHECK_NEAR(st[p][i], ((double)x[i] - mean[i]) * istd[i], 1e-6);
      }
    }
    if (have512) {
      SAME(y[0], y[1], n, "relu", n);
      SAME(dx[0], dx[1], n, "relu backward", n);
      SAME(st[0], st[1], n, "standardize", n);
    }
  }
}

static void test_gauss_noise(void) {
  const int ns[] = {1, 2, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65, 1000};
  for (size_t si = 0; si < sizeof ns / sizeof ns[0]; si++) {
    int n = ns[si];
    float z[2][1000];
    for (int p = 0; p < 1 + have512; p++) {
      use(p ? MB_ISA_AVX512 : MB_ISA_AVX2);
      mbRng g;
      mbg_seed(&g, 42, (uint64_t)n);
      mbn_gaussNoise(z[p], &g, (size_t)n);
      /* the same draws in double: one 64-bit draw per pair; rounds of 16 values put 8
         cosines then the 8 sines, the tail cos, sin per pair */
      mbg_seed(&g, 42, (uint64_t)n);
      int i = 0;
      while (i < n) {
        int round = i + 16 <= n, np = round ? 8 : 1;
        for (int k = 0; k < np; k++) {
          uint64_t d = mbg_next(&g);
          double u = (double)((d >> 40) + 1) * 0x1.0p-24;
          double t = (double)((d >> 16) & 0xffffff) * 0x1.0p-24;
          double r = sqrt(-2.0 * log(u)), c = r * cos(6.283185307179586 * t);
          double sn = r * sin(6.283185307179586 * t);
          int ic = round ? i + k : i, is = round ? i + 8 + k : i + 1;
          CHECK_NEAR(z[p][ic], c, 3e-6);
          if (is < n) CHECK_NEAR(z[p][is], sn, 3e-6);
        }
        i += round ? 16 : 2;
      }
    }
    if (have512) SAME(z[0], z[1], n, "gaussNoise", n);
  }
}

/* the reference of the Gaussian head */
static void head_ref(double *lv, double maxlv, double minlv, double raw) {
  double l1 = maxlv - softplus(maxlv - raw);
  *lv = minlv + softplus(l1 - minlv);
}

static void test_gauss_head(void) {
  const int Ds[] = {1, 3, 8, 12, 16, 17, 24, 28, 33};
  enum { B = 5 };
  for (size_t di = 0; di < sizeof Ds / sizeof Ds[0]; di++) {
    int D = Ds[di];
    float out[B * 66], y[B * 33], eps[B * 33], maxlv[33], minlv[33];
    fill(out, (size_t)B * 2 * D, 20 + D, -3.0f, 3.0f);
    fill(y, (size_t)B * D, 21 + D, -3.0f, 3.0f);
    fill(eps, (size_t)B * D, 22 + D, -2.0f, 2.0f);
    fill(maxlv, D, 23 + D, 0.0f, 1.0f);
    fill(minlv, D, 24 + D, -10.0f, -8.0f);
    float lv[2][B * 33], smp[2][B * 33], dout[2][B * 66], dmx[2][33], dmn[2][33];
    double loss[2], loss0[2];
    for (int p = 0; p < 1 + have512; p++) {
      use(p ? MB_ISA_AVX512 : MB_ISA_AVX2);
      mbn_gaussLogvar(lv[p], out, maxlv, minlv, B, D);
      mbn_gaussSample(smp[p], out, eps, maxlv, minlv, B, D);
      for (int j = 0; j < D; j++) dmx[p][j] = 0.5f, dmn[p][j] = -0.5f;
      loss0[p] = mbn_gaussNll(NULL, NULL, NULL, out, y, maxlv, minlv, B, D, 0.25f);
      memcpy(dout[p], out, sizeof(float) * B * 2 * D);
      loss[p] = mbn_gaussNll(dout[p], dmx[p], dmn[p], dout[p], y, maxlv, minlv, B, D, 0.25f);
      double lref = 0, dmxr[33] = {0}, dmnr[33] = {0};
      for (int r = 0; r < B; r++)
        for (int j = 0; j < D; j++) {
          double raw = out[r * 2 * D + D + j], mu = out[r * 2 * D + j], l;
          head_ref(&l, maxlv[j], minlv[j], raw);
          CHECK_NEAR(lv[p][r * D + j], l, 2e-6);
          CHECK_NEAR(smp[p][r * D + j], mu + exp(0.5 * l) * eps[r * D + j], 2e-6);
          double d = mu - y[r * D + j], q = d * d * exp(-l);
          lref += q + l;
          /* gradients by central differences of the reference in raw, max and min */
          double h = 1e-5, lp, lm;
          head_ref(&lp, maxlv[j], minlv[j], raw + h);
          head_ref(&lm, maxlv[j], minlv[j], raw - h);
          double dl = 0.25 * (1 - q);
          CHECK_NEAR(dout[p][r * 2 * D + j], 0.25 * 2 * d * exp(-l), 1e-5);
          CHECK_NEAR(dout[p][r * 2 * D + D + j], dl * (lp - lm) / (2 * h), 1e-4);
          head_ref(&lp, maxlv[j] + h, minlv[j], raw);
          head_ref(&lm, maxlv[j] - h, minlv[j], raw);
          dmxr[j] += dl * (lp - lm) / (2 * h);
          head_ref(&lp, maxlv[j], minlv[j] + h, raw);
          head_ref(&lm, maxlv[j], minlv[j] - h, raw);
          dmnr[j] += dl * (lp - lm) / (2 * h);
        }
      CHECK_NEAR(loss[p], 0.25 * lref, 1e-5);
      CHECK(loss[p] == loss0[p], "loss with and without gradients: %.17g %.17g", loss[p], loss0[p]);
      for (int j = 0; j < D; j++) {
        CHECK_NEAR(dmx[p][j], 0.5 + dmxr[j], 1e-4);
        CHECK_NEAR(dmn[p][j], -0.5 + dmnr[j], 1e-4);
      }
    }
    if (have512) {
      SAME(lv[0], lv[1], B * D, "gaussLogvar", D);
      SAME(smp[0], smp[1], B * D, "gaussSample", D);
      SAME(dout[0], dout[1], B * 2 * D, "gaussNll gradient", D);
      SAME(dmx[0], dmx[1], D, "gaussNll d max", D);
      SAME(dmn[0], dmn[1], D, "gaussNll d min", D);
      CHECK(loss[0] == loss[1], "gaussNll loss differs (D %d): %.17g %.17g", D, loss[0], loss[1]);
    }
  }
}

/* whole ensemble: training steps and sampled model steps, bit for bit on both paths */
static void test_ensemble_paths(void) {
  if (!have512) return;
  enum { IN = 14, D = 12, B = 40, N = 300 };
  static float x[7 * B * IN], y[7 * B * D], obs[N * 11], act[N * 3];
  fill(x, sizeof x / sizeof x[0], 30, -2.0f, 2.0f);
  fill(y, sizeof y / sizeof y[0], 31, -2.0f, 2.0f);
  fill(obs, sizeof obs / sizeof obs[0], 32, -2.0f, 2.0f);
  fill(act, sizeof act / sizeof act[0], 33, -1.0f, 1.0f);
  float *params[2] = {NULL, NULL}, nx[2][N * 11], rw[2][N];
  double loss[2][3];
  size_t np = 0;
  for (int p = 0; p < 2; p++) {
    use(p ? MB_ISA_AVX512 : MB_ISA_AVX2);
    mbEnsembleConfig c;
    mbn_ensDefaults(&c, IN, D);
    c.nhidden = 2;
    c.hidden[0] = c.hidden[1] = 40;   /* 40: an 8-lane piece after 16-lane ones */
    c.seed = 5;
    mbEnsemble *e = NULL;
    CHECK(mbn_ensCreate(&e, &c) == MB_OK, "create: %s", mbu_lasterror());
    if (!e) return;
    for (int s = 0; s < 3; s++) CHECK(mbn_ensTrainStep(&loss[p][s], e, x, y, B) == MB_OK, "step");
    mbRng g;
    mbg_seed(&g, 9, 0);
    CHECK(mbn_ensStep(nx[p], rw[p], NULL, e, obs, act, N, &g, MB_PRED_SAMPLE) == MB_OK,
          "model step");
    np = e->ntotal;
    params[p] = malloc(np * sizeof(float));
    if (params[p]) memcpy(params[p], e->params, np * sizeof(float));
    mbn_ensFree(e);
  }
  CHECK(loss[0][2] < loss[0][0], "training did not lower the loss: %g -> %g", loss[0][0],
        loss[0][2]);
  CHECK(memcmp(loss[0], loss[1], sizeof loss[0]) == 0, "ensemble losses differ between paths");
  CHECK(params[0] && params[1] && memcmp(params[0], params[1], np * sizeof(float)) == 0,
        "ensemble parameters differ between paths");
  CHECK(memcmp(nx[0], nx[1], sizeof nx[0]) == 0 && memcmp(rw[0], rw[1], sizeof rw[0]) == 0,
        "model steps differ between paths");
  free(params[0]);
  free(params[1]);
}

/* whole SAC updates and a stochastic act, bit for bit on both paths and at 1 and 2 threads;
   256-wide networks and 128 rows, so the products oneDNN takes in fp32 (src/nn/gemm_f32.c)
   are among them where the CPU has AVX-512 */
static void test_sac_paths(void) {
  enum { O = 11, A = 3, B = 128, RUNS = 3 };
  static float obs[B * O], act[B * A], rew[B], obs2[B * O], done[B];
  fill(obs, sizeof obs / sizeof obs[0], 40, -2.0f, 2.0f);
  fill(act, sizeof act / sizeof act[0], 41, -1.0f, 1.0f);
  fill(rew, B, 42, -1.0f, 1.0f);
  fill(obs2, sizeof obs2 / sizeof obs2[0], 43, -2.0f, 2.0f);
  for (int i = 0; i < B; i++) done[i] = i % 9 == 0;
  float *state[RUNS] = {NULL, NULL, NULL}, a[RUNS][B * A];
  size_t n = 0;
  int threads = mbu_threads();
  for (int p = 0; p < RUNS; p++) {
    /* avx2 at 1 thread, then the best path at 1 and 2 threads */
    use(p && have512 ? MB_ISA_AVX512 : MB_ISA_AVX2);
    mbu_setThreads(p == 2 ? 2 : 1);
    mbSacConfig c;
    mbr_sacDefaults(&c, O, A);
    c.seed = 3;
    mbSac s;
    CHECK(mbr_sacInit(&s, &c) == MB_OK, "init: %s", mbu_lasterror());
    for (int k = 0; k < 3; k++)
      CHECK(mbr_sacUpdate(&s, NULL, obs, act, rew, obs2, done, B) == MB_OK, "update");
    mbRng g;
    mbg_seed(&g, 4, 0);
    CHECK(mbr_sacAct(&s, a[p], obs, B, 0, &g) == MB_OK, "act");
    n = 2 * s.npi + 4 * s.nq + 1;
    state[p] = malloc(n * sizeof(float));
    if (state[p]) {
      memcpy(state[p], s.pi_p, s.npi * sizeof(float));
      memcpy(state[p] + s.npi, s.pi_m, s.npi * sizeof(float));
      memcpy(state[p] + 2 * s.npi, s.q_p, 2 * s.nq * sizeof(float));
      memcpy(state[p] + 2 * s.npi + 2 * s.nq, s.q_targ, 2 * s.nq * sizeof(float));
      state[p][n - 1] = s.log_alpha;
    }
    mbr_sacFree(&s);
  }
  mbu_setThreads(threads);
  for (int p = 1; p < RUNS; p++) {
    CHECK(state[0] && state[p] && memcmp(state[0], state[p], n * sizeof(float)) == 0,
          "SAC parameters differ (run %d: %s, %d threads)", p, have512 ? "avx512" : "avx2",
          p == 2 ? 2 : 1);
    CHECK(memcmp(a[0], a[p], sizeof a[0]) == 0, "SAC actions differ (run %d)", p);
  }
  for (int p = 0; p < RUNS; p++) free(state[p]);
}

int main(void) {
  have512 = mbn_isaSupported(MB_ISA_AVX512);
  mbIsa start = mbn_isa();
  printf("# paths: %s%s (started on %s)\n", mbn_isaName(MB_ISA_AVX2),
         have512 ? " and avx512" : " only: this CPU has no AVX-512, the comparison is skipped",
         mbn_isaName(start));
  RUN(test_isa_api);
  RUN(test_swish);
  RUN(test_bias_kernels);
  RUN(test_adam_kernels);
  RUN(test_relu_standardize);
  RUN(test_gauss_noise);
  RUN(test_gauss_head);
  RUN(test_ensemble_paths);
  RUN(test_sac_paths);
  return TEST_REPORT();
}
