/* Tests of src/nn/ensemble.c and the fused kernels of src/nn/ens_kernels.c: finite
   differences in double precision against naive references, thread-count independence,
   the model step's sampling, the reference training call (learning, patience, elites,
   bootstrap), state round trips and error paths. */
#include <stdlib.h>
#include <string.h>

#include "mbpo/core.h"
#include "mbpo/ensemble.h"
#include "nn/ens_simd.h"  /* the private vector math, tested directly */
#include "test.h"

static mbRng rng;  /* the data of every test; seeded in main */

/* x[n] ~ U(-a, a) */
static void randfill(float *x, size_t n, float a) { mbg_uniformFill(x, &rng, n, -a, a); }

/* softplus and sigmoid in double, the references of the float kernels */
static double sp(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static double sig(double x) { return 1 / (1 + exp(-x)); }

/* bounded log-variance in double */
static double bound_lv(double raw, double mx, double mn) {
  double l1 = mx - sp(mx - raw);
  return mn + sp(l1 - mn);
}

/* Fused kernels ------------------------------------------------------------------------ */

static void test_swish_sig(void) {
  /* forward against the closed form, backward against central differences of it */
  enum { N = 203 };  /* not a multiple of 8: vector body and scalar tail */
  float z[N], h[N], s[N], dh[N], dz[N];
  randfill(z, N, 12);
  z[0] = 95; z[1] = -95; z[2] = 0;
  randfill(dh, N, 1);
  mbn_swishForwardSig(h, s, z, N);
  double worst_f = 0, worst_b = 0;
  for (int i = 0; i < N; i++) {
    double zd = z[i], hd = zd * sig(zd);
    worst_f = fmax(worst_f, fabs(h[i] - hd) / fmax(1, fabs(hd)));
    worst_f = fmax(worst_f, fabs(s[i] - sig(zd)));
  }
  mbn_swishBackwardSig(dz, dh, h, s, N);
  for (int i = 0; i < N; i++) {
    double e = 1e-5, zd = z[i];
    double fd = ((zd + e) * sig(zd + e) - (zd - e) * sig(zd - e)) / (2 * e) * dh[i];
    worst_b = fmax(worst_b, fabs(dz[i] - fd) / fmax(1, fabs(fd)));
  }
  /* tolerances: float rounding of polynomial exp and sigmoid (about 1e-7 relative) for the
     forward; the backward against central differences of step 1e-5 carries O(h^2) and the
     float inputs' own rounding */
  CHECK(worst_f < 2e-6, "swish forward error %g", worst_f);
  CHECK(worst_b < 2e-5, "swish backward error %g", worst_b);
  /* in place, without s */
  float h2[N];
  memcpy(h2, z, sizeof z);
  mbn_swishForwardSig(h2, NULL, h2, N);
  CHECK(memcmp(h2, h, sizeof h) == 0, "in-place swish differs");
}

static void test_linear_rows(void) {
  /* the two row halves together equal x^T dy; bias halves the column sums (naive loops) */
  int B = 7, in = 5, out = 9;
  float x[35], dy[63], dW[45], db[9];
  randfill(x, 35, 1); randfill(dy, 63, 1);
  for (int i = 0; i < 45; i++) dW[i] = 99;
  for (int i = 0; i < 9; i++) db[i] = 99;
  mbn_linearBackwardRows(dW, dy, x, B, in, out, 0, in / 2);
  mbn_linearBackwardRows(dW, dy, x, B, in, out, in / 2, in);
  mbn_biasGrad(db, dy, B, out, 0, out / 2);
  mbn_biasGrad(db, dy, B, out, out / 2, out);
  for (int k = 0; k < in; k++)
    for (int j = 0; j < out; j++) {
      double s = 0;
      for (int r = 0; r < B; r++) s += (double)x[r * in + k] * dy[r * out + j];
      CHECK_NEAR(dW[k * out + j], s, 1e-6);
    }
  for (int j = 0; j < out; j++) {
    double s = 0;
    for (int r = 0; r < B; r++) s += dy[r * out + j];
    CHECK_NEAR(db[j], s, 1e-6);
  }
}

static void test_adam_decay(void) {
  /* two steps against the closed form with g + wd p, and the returned decay term */
  enum { N = 19 };
  float p[N], m[N] = {0}, v[N] = {0}, g[N], g0[N];
  double pd[N], md[N] = {0}, vd[N] = {0};
  randfill(p, N, 2); randfill(g0, N, 1);
  for (int i = 0; i < N; i++) pd[i] = p[i];
  mbAdam opt;
  mbn_adamDefaults(&opt, 0.01f);
  opt.contract = 1;  /* the ensemble's arithmetic */
  float wd = 0.3f;
  for (int t = 1; t <= 2; t++) {
    memcpy(g, g0, sizeof g);
    opt.t++;
    double want = 0;
    for (int i = 0; i < N; i++) want += 0.5 * wd * pd[i] * pd[i];
    double got = mbn_adam(p, m, v, g, N, &opt, wd, NULL, 0.0f);
    CHECK_NEAR(got, want, 1e-5);
    for (int i = 0; i < N; i++) {
      double gi = g0[i] + wd * pd[i];
      CHECK_NEAR(g[i], gi, 1e-6);
      md[i] = 0.9 * md[i] + 0.1 * gi;
      vd[i] = 0.999 * vd[i] + 0.001 * gi * gi;
      double mh = md[i] / (1 - pow(0.9, t)), vh = vd[i] / (1 - pow(0.999, t));
      pd[i] -= 0.01 * mh / (sqrt(vh) + 1e-8);
    }
  }
  for (int i = 0; i < N; i++) CHECK_NEAR(p[i], pd[i], 2e-6);
}

static void test_gauss_noise(void) {
  /* moments and tails of the noise against N(0, 1); n odd to cover the scalar tail; the
     sin/cos reduction against libm */
  enum { N = 400001 };
  float *z = malloc(sizeof(float) * N);
  mbRng g;
  mbg_seed(&g, 3, 0);
  mbn_gaussNoise(z, &g, N);
  double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
  int tail2 = 0, tail3 = 0;
  for (int i = 0; i < N; i++) {
    double v = z[i];
    s1 += v; s2 += v * v; s3 += v * v * v; s4 += v * v * v * v;
    tail2 += fabs(v) > 2;
    tail3 += fabs(v) > 3;
  }
  double mean = s1 / N, var = s2 / N - mean * mean;
  /* standard errors: mean 1/sqrt(N) = 0.0016, var sqrt(2/N) = 0.0022, skew sqrt(6/N),
     kurtosis sqrt(24/N); bounds at about 5 standard errors */
  CHECK(fabs(mean) < 0.008, "mean %g", mean);
  CHECK(fabs(var - 1) < 0.011, "variance %g", var);
  CHECK(fabs(s3 / N) < 0.02, "third moment %g", s3 / N);
  CHECK(fabs(s4 / N - 3) < 0.04, "fourth moment %g", s4 / N);
  CHECK(fabs(tail2 / (double)N - 0.0455) < 0.0017, "P(|z| > 2) = %g", tail2 / (double)N);
  CHECK(fabs(tail3 / (double)N - 0.0027) < 0.0004, "P(|z| > 3) = %g", tail3 / (double)N);
  /* the same generator state gives the same values */
  float *z2 = malloc(sizeof(float) * N);
  mbg_seed(&g, 3, 0);
  mbn_gaussNoise(z2, &g, N);
  CHECK(memcmp(z, z2, sizeof(float) * N) == 0, "noise not reproducible");
  free(z);
  free(z2);
}

static void test_simd_math(void) {
  /* the private polynomials (scalar, and 8-lane when built with AVX2) against libm */
  double we = 0, wl = 0, wsp = 0, wsc = 0;
  for (int i = 0; i <= 20000; i++) {
    float x = -87.0f + 175.0f * (float)i / 20000;     /* exp over its normal range */
    float y = expf(-20.0f + 40.0f * (float)i / 20000); /* log over many octaves */
    float t = (float)i / 20001;                        /* turns in [0, 1) */
    float ss, cc;
    mb_sincos2pif(t, &ss, &cc);
    we = fmax(we, fabs(mb_expf(x) - exp(x)) / exp(x));
    wl = fmax(wl, fabs(mb_logf(y) - log(y)) / fmax(1, fabs(log(y))));
    wsp = fmax(wsp, fabs(mb_softplusf(x / 4) - sp(x / 4)) / fmax(1e-30, sp(x / 4)));
    wsc = fmax(wsc, fmax(fabs(ss - sin(2 * M_PI * t)), fabs(cc - cos(2 * M_PI * t))));
#ifdef MB_SIMD8
    float v[8];
    _mm256_storeu_ps(v, mb_exp8(_mm256_set1_ps(x)));
    we = fmax(we, fabs(v[3] - exp(x)) / exp(x));
    _mm256_storeu_ps(v, mb_log8(_mm256_set1_ps(y)));
    wl = fmax(wl, fabs(v[5] - log(y)) / fmax(1, fabs(log(y))));
    _mm256_storeu_ps(v, mb_softplus8(_mm256_set1_ps(x / 4)));
    wsp = fmax(wsp, fabs(v[0] - sp(x / 4)) / fmax(1e-30, sp(x / 4)));
    __m256 vs, vc;
    mb_sincos2pi8(_mm256_set1_ps(t), &vs, &vc);
    _mm256_storeu_ps(v, vs);
    wsc = fmax(wsc, fabs(v[7] - sin(2 * M_PI * t)));
    _mm256_storeu_ps(v, vc);
    wsc = fmax(wsc, fabs(v[2] - cos(2 * M_PI * t)));
#endif
  }
  CHECK(we < 5e-7, "exp relative error %g", we);
  CHECK(wl < 5e-7, "log error %g", wl);
  CHECK(wsp < 2e-6, "softplus relative error %g", wsp);
  CHECK(wsc < 5e-7, "sin/cos error %g", wsc);
  /* NaN in, NaN out, and a defined path (UBSan aborts on converting NaN to int) */
  CHECK(isnan(mb_expf(NAN)) && isnan(mb_expf(-NAN)), "exp(NaN) = %g", mb_expf(NAN));
}

/* loss of the Gaussian head in double; out [B x 2D] */
static double ref_nll(const double *out, const double *y, const double *mx, const double *mn,
                      int B, int D, double scale) {
  double l = 0;
  for (int r = 0; r < B; r++)
    for (int j = 0; j < D; j++) {
      double lv = bound_lv(out[r * 2 * D + D + j], mx[j], mn[j]);
      double d = out[r * 2 * D + j] - y[r * D + j];
      l += d * d * exp(-lv) + lv;
    }
  return l * scale;
}

static void test_gauss_nll(void) {
  /* loss value, gradients w.r.t. the outputs and both bound vectors by central differences
     in double; raw log-variances spread past both bounds */
  enum { B = 6, D = 11 };
  float out[B * 2 * D], y[B * D], mx[D], mn[D], dout[B * 2 * D], dmx[D], dmn[D];
  randfill(out, B * 2 * D, 2);
  for (int r = 0; r < B; r++)
    for (int j = 0; j < D; j++) out[r * 2 * D + D + j] = (float)(-14 + 18 * mbg_uniform(&rng));
  randfill(y, B * D, 2);
  for (int j = 0; j < D; j++) {
    mx[j] = (float)(0.5 + 0.5 * mbg_uniform(&rng));
    mn[j] = (float)(-10 + 2 * mbg_uniform(&rng));
    dmx[j] = 1.0f;  /* accumulated into */
    dmn[j] = -1.0f;
  }
  double od[B * 2 * D], yd[B * D], mxd[D], mnd[D], scale = 1.0 / (B * D);
  for (int i = 0; i < B * 2 * D; i++) od[i] = out[i];
  for (int i = 0; i < B * D; i++) yd[i] = y[i];
  for (int j = 0; j < D; j++) { mxd[j] = mx[j]; mnd[j] = mn[j]; }
  /* the bound gradients accumulate into dmx = 1, dmn = -1 (checked by subtracting them) */
  double l = mbn_gaussNll(dout, dmx, dmn, out, y, mx, mn, B, D, (float)scale);
  CHECK_NEAR(l, ref_nll(od, yd, mxd, mnd, B, D, scale), 1e-5);
  CHECK_NEAR(mbn_gaussNll(NULL, NULL, NULL, out, y, mx, mn, B, D, (float)scale), l, 1e-12);
  /* errors relative to max(|fd|, 0.01): a float gradient has about 1e-7 absolute error,
     which would be large relative to tiny derivatives far past a bound */
  double worst = 0, h = 1e-5;
  for (int i = 0; i < B * 2 * D; i++) {
    double s = od[i];
    od[i] = s + h; double lp = ref_nll(od, yd, mxd, mnd, B, D, scale);
    od[i] = s - h; double lm = ref_nll(od, yd, mxd, mnd, B, D, scale);
    od[i] = s;
    double fd = (lp - lm) / (2 * h);
    worst = fmax(worst, fabs(fd - dout[i]) / fmax(1e-2, fabs(fd)));
  }
  for (int j = 0; j < D; j++) {
    double s = mxd[j];
    mxd[j] = s + h; double lp = ref_nll(od, yd, mxd, mnd, B, D, scale);
    mxd[j] = s - h; double lm = ref_nll(od, yd, mxd, mnd, B, D, scale);
    mxd[j] = s;
    double fd = (lp - lm) / (2 * h);
    worst = fmax(worst, fabs(fd - (dmx[j] - 1.0)) / fmax(1e-2, fabs(fd)));
    s = mnd[j];
    mnd[j] = s + h; lp = ref_nll(od, yd, mxd, mnd, B, D, scale);
    mnd[j] = s - h; lm = ref_nll(od, yd, mxd, mnd, B, D, scale);
    mnd[j] = s;
    fd = (lp - lm) / (2 * h);
    worst = fmax(worst, fabs(fd - (dmn[j] + 1.0)) / fmax(1e-2, fabs(fd)));
  }
  CHECK(worst < 1e-3, "gaussian nll gradient error %g", worst);
  /* in place (dout aliasing out) gives the same gradient */
  float dmx2[D] = {0}, dmn2[D] = {0};
  mbn_gaussNll(out, dmx2, dmn2, out, y, mx, mn, B, D, (float)scale);
  CHECK(memcmp(out, dout, sizeof dout) == 0, "in-place gradient differs");
}

static void test_gauss_logvar_sample(void) {
  enum { B = 5, D = 13 };
  float out[B * 2 * D], mx[D], mn[D], lv[B * D], eps[B * D], ys[B * D], ym[B * D];
  randfill(out, B * 2 * D, 12);
  randfill(eps, B * D, 2);
  for (int j = 0; j < D; j++) { mx[j] = 0.5f; mn[j] = -10.0f + 0.5f * j; }
  mbn_gaussLogvar(lv, out, mx, mn, B, D);
  mbn_gaussSample(ys, out, eps, mx, mn, B, D);
  mbn_gaussSample(ym, out, NULL, mx, mn, B, D);
  double worst = 0;
  for (int r = 0; r < B; r++)
    for (int j = 0; j < D; j++) {
      double l = bound_lv(out[r * 2 * D + D + j], mx[j], mn[j]);
      worst = fmax(worst, fabs(lv[r * D + j] - l) / fmax(1, fabs(l)));
      CHECK(lv[r * D + j] > mn[j], "below the lower bound");
      double s = out[r * 2 * D + j] + exp(0.5 * l) * eps[r * D + j];
      worst = fmax(worst, fabs(ys[r * D + j] - s) / fmax(1, fabs(s)));
      CHECK(ym[r * D + j] == out[r * 2 * D + j], "mean sample");
    }
  CHECK(worst < 2e-6, "logvar/sample error %g", worst);
}

/* A small ensemble and its loss in double ------------------------------------------------ */

static mbEnsemble *small_ensemble(int members, int act, uint64_t seed) {
  mbEnsembleConfig c;
  mbn_ensDefaults(&c, 4, 3);
  c.members = members;
  c.elites = members > 1 ? members - 1 : 1;
  c.nhidden = 2;
  c.hidden[0] = 6;
  c.hidden[1] = 5;
  c.act = act;
  c.weight_decay[0] = 0.05f; c.weight_decay[1] = 0.1f; c.weight_decay[2] = 0.2f;
  c.max_logvar = 0.3f;
  c.min_logvar = -0.8f;
  c.seed = seed;
  mbEnsemble *e;
  CHECK(mbn_ensCreate(&e, &c) == MB_OK, "create: %s", mbu_lasterror());
  return e;
}

/* The whole loss in double, written independently of src/nn: each member's MLP by naive
   loops, the standardiser as (x - mean) / std, the soft bounds, the NLL per member (mean over
   rows and dims), the bound penalty and the per-layer weight decay on weights only. */
static double ref_loss(const mbEnsemble *e, const double *p, const double *mean,
                       const double *sd, const float *x, const float *y, int B) {
  const mbMlp *net = &e->net;
  const int M = e->cfg.members, D = e->cfg.outputs, in = e->cfg.inputs;
  const double *mx = p + (size_t)M * e->nparams, *mn = mx + D;
  double total = 0, a[64], b[64];
  for (int m = 0; m < M; m++) {
    const double *P = p + (size_t)m * e->nparams;
    for (int r = 0; r < B; r++) {
      const float *xr = x + ((size_t)m * B + r) * in, *yr = y + ((size_t)m * B + r) * D;
      for (int k = 0; k < in; k++) a[k] = (xr[k] - mean[k]) / sd[k];
      for (int l = 0; l < net->nlayers; l++) {
        int ni = net->sizes[l], no = net->sizes[l + 1];
        for (int j = 0; j < no; j++) {
          double s = P[net->boff[l] + j];
          for (int k = 0; k < ni; k++) s += a[k] * P[net->woff[l] + (size_t)k * no + j];
          if (l < net->nlayers - 1) s = net->act == MB_ACT_SWISH ? s * sig(s) : (s > 0 ? s : 0);
          b[j] = s;
        }
        memcpy(a, b, sizeof(double) * no);
      }
      for (int j = 0; j < D; j++) {
        double lv = bound_lv(a[D + j], mx[j], mn[j]), d = a[j] - yr[j];
        total += (d * d * exp(-lv) + lv) / ((double)B * D);
      }
    }
    for (int l = 0; l < net->nlayers; l++) {
      double sq = 0;
      for (size_t i = 0; i < (size_t)net->sizes[l] * net->sizes[l + 1]; i++)
        sq += P[net->woff[l] + i] * P[net->woff[l] + i];
      total += 0.5 * e->cfg.weight_decay[l] * sq;
    }
  }
  if (e->cfg.bounds == MB_BOUNDS_LEARNED)
    for (int j = 0; j < D; j++) total += e->cfg.bound_penalty * (mx[j] - mn[j]);
  return total;
}

static void check_ensemble_grad(int act, int B) {
  mbEnsemble *e = small_ensemble(3, act, 5);
  if (!e) return;
  const int M = 3, in = 4, D = 3;
  /* weights scaled up so raw log-variances cross both bounds, biases away from 0 (ReLU
     units of a row whose inputs are all dead would sit on the kink), a non-trivial
     standardiser */
  for (size_t i = 0; i < (size_t)M * e->nparams; i++) e->params[i] *= 4.0f;
  for (int m = 0; m < M; m++)
    for (int l = 0; l < e->net.nlayers; l++)
      randfill(e->params + m * e->nparams + e->net.boff[l], (size_t)e->net.sizes[l + 1], 0.5f);
  for (int k = 0; k < in; k++) { e->in_mean[k] = 0.1f * k; e->in_std[k] = 0.5f + 0.25f * k; }
  float *x = malloc(sizeof(float) * M * B * in), *y = malloc(sizeof(float) * M * B * D);
  randfill(x, (size_t)M * B * in, 1.5f);
  randfill(y, (size_t)M * B * D, 1.5f);
  double loss;
  CHECK(mbn_ensLossGrad(&loss, e, x, y, B) == MB_OK, "loss grad: %s", mbu_lasterror());
  size_t n = e->ntotal;
  double *p = malloc(sizeof(double) * n), mean[4], sd[4];
  for (size_t i = 0; i < n; i++) p[i] = e->params[i];
  for (int k = 0; k < in; k++) { mean[k] = e->in_mean[k]; sd[k] = e->in_std[k]; }
  CHECK_NEAR(loss, ref_loss(e, p, mean, sd, x, y, B), 1e-5);
  /* central differences on every parameter of the slab (3 members' weights and biases, both
     bound vectors): covers linear, swish or ReLU, the soft bounds, the penalty and decay */
  double worst = 0, h = 1e-6;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    double s = p[i];
    p[i] = s + h; double lp = ref_loss(e, p, mean, sd, x, y, B);
    p[i] = s - h; double lm = ref_loss(e, p, mean, sd, x, y, B);
    p[i] = s;
    double fd = (lp - lm) / (2 * h), err = fabs(fd - e->grads[i]) / fmax(1e-2, fabs(fd));
    if (err > worst) { worst = err; at = i; }
  }
  CHECK(worst < 1e-3, "ensemble gradient (act %d, B %d): error %g at %zu of %zu", act, B,
        worst, at, n);
  free(p); free(x); free(y);
  mbn_ensFree(e);
}

/* odd B: halves of 3 and 2 rows; B = 1: the second half of section A is empty */
static void test_ensemble_grad_swish(void) { check_ensemble_grad(MB_ACT_SWISH, 5); }
static void test_ensemble_grad_relu(void) { check_ensemble_grad(MB_ACT_RELU, 4); }
static void test_ensemble_grad_one_row(void) { check_ensemble_grad(MB_ACT_SWISH, 1); }

static void test_fixed_bounds_grad(void) {
  /* fixed bounds: no gradient and no change of the bound vectors, no penalty in the loss */
  mbEnsembleConfig c;
  mbn_ensDefaults(&c, 3, 2);
  c.members = 2; c.elites = 1; c.nhidden = 1; c.hidden[0] = 8;
  c.bounds = MB_BOUNDS_FIXED;
  mbEnsemble *e;
  CHECK(mbn_ensCreate(&e, &c) == MB_OK, "create");
  float x[2 * 4 * 3], y[2 * 4 * 2];
  randfill(x, 24, 1); randfill(y, 16, 1);
  for (int s = 0; s < 5; s++) CHECK(mbn_ensTrainStep(NULL, e, x, y, 4) == MB_OK, "step");
  for (int j = 0; j < 2; j++) {
    CHECK(e->max_logvar[j] == 0.5f && e->min_logvar[j] == -10.0f, "bounds moved");
    CHECK(e->grads[e->ntotal - 1 - j] == 0 && e->grads[e->ntotal - 3 - j] == 0, "bound grad");
  }
  mbn_ensFree(e);
}

/* Thread-count independence and the state ----------------------------------------------- */

static mbEnsemble *hopperish(uint64_t seed, int hidden) {
  mbEnsembleConfig c;
  mbn_ensDefaults(&c, 6, 4);
  c.nhidden = 2;
  c.hidden[0] = hidden;
  c.hidden[1] = hidden;
  c.seed = seed;
  mbEnsemble *e = NULL;
  CHECK(mbn_ensCreate(&e, &c) == MB_OK, "create: %s", mbu_lasterror());
  return e;
}

static void test_threads_bit_identical(void) {
  /* the same steps with 1, 2 and 3 threads give the same bits */
  enum { M = 7, B = 37, IN = 6, D = 4 };
  static float x[M * B * IN], y[M * B * D];
  randfill(x, sizeof x / sizeof x[0], 2);
  randfill(y, sizeof y / sizeof y[0], 2);
  float *ref = NULL, refstep[50 * 3];
  for (int th = 1; th <= 3; th++) {
    mbu_setThreads(th);
    mbEnsemble *e = hopperish(3, 24);
    if (!e) break;
    double l[3];
    for (int s = 0; s < 3; s++) CHECK(mbn_ensTrainStep(&l[s], e, x, y, B) == MB_OK, "step");
    CHECK(l[2] < l[0], "loss did not decrease: %g -> %g", l[0], l[2]);
    /* a mean-mode step of 50 rows is a single item: one task, run inline */
    float nx[50 * 3], rw[50];
    mbRng g;
    mbg_seed(&g, 1, 0);
    CHECK(mbn_ensStep(nx, rw, NULL, e, x, x + 150, 50, &g, MB_PRED_MEAN) == MB_OK, "step");
    if (!ref) {
      ref = malloc(e->ntotal * sizeof(float));
      memcpy(ref, e->params, e->ntotal * sizeof(float));
      memcpy(refstep, nx, sizeof nx);
    } else {
      CHECK(memcmp(ref, e->params, e->ntotal * sizeof(float)) == 0,
            "parameters differ with %d threads", th);
      CHECK(memcmp(refstep, nx, sizeof nx) == 0, "single-item step differs with %d threads", th);
    }
    mbn_ensFree(e);
  }
  mbu_setThreads(1);
  free(ref);
}

static void test_fit_threads(void) {
  /* a whole fit (split, bootstrap, epochs, holdout, snapshots, elites) is the same with 1 and
     2 threads */
  enum { N = 700 };
  static float x[N * 6], y[N * 4];
  randfill(x, N * 6, 1);
  for (int i = 0; i < N * 4; i++) y[i] = sinf(3 * x[i + (i % 3)]);
  mbEnsemble *e[2];
  mbFitResult r[2];
  for (int k = 0; k < 2; k++) {
    mbu_setThreads(k + 1);
    e[k] = hopperish(21, 12);
    if (!e[k]) return;
    mbFitOptions o;
    mbn_fitDefaults(&o, e[k]);
    o.max_epochs = 6;
    CHECK(mbn_ensFit(&r[k], e[k], x, y, N, &o) == MB_OK, "fit");
  }
  mbu_setThreads(1);
  CHECK(r[0].epochs == r[1].epochs, "epochs %d vs %d", r[0].epochs, r[1].epochs);
  CHECK(memcmp(e[0]->params, e[1]->params, e[0]->ntotal * sizeof(float)) == 0, "weights");
  CHECK(memcmp(e[0]->holdout_mse, e[1]->holdout_mse, 7 * sizeof(float)) == 0, "holdout");
  CHECK(memcmp(e[0]->elite, e[1]->elite, 5 * sizeof(int)) == 0, "elites");
  mbn_ensFree(e[0]);
  mbn_ensFree(e[1]);
}

/* copies everything state() exposes from a into b (as a checkpoint would) */
static void copy_state(mbEnsemble *b, const mbEnsemble *a) {
  memcpy(b->params, a->params, a->ntotal * sizeof(float));
  memcpy(b->adam_m, a->adam_m, a->ntotal * sizeof(float));
  memcpy(b->adam_v, a->adam_v, a->ntotal * sizeof(float));
  b->adam.t = a->adam.t;
  memcpy(b->in_mean, a->in_mean, a->cfg.inputs * sizeof(float));
  memcpy(b->in_std, a->in_std, a->cfg.inputs * sizeof(float));
  memcpy(b->elite, a->elite, a->cfg.elites * sizeof(int));
  memcpy(b->holdout_mse, a->holdout_mse, a->cfg.members * sizeof(float));
  b->fits = a->fits;
  b->rng = a->rng;
}

static void test_state_round_trip(void) {
  /* a fresh ensemble (other seed) given the state continues bit for bit: predictions, one
     more fit of one epoch, the step's samples */
  enum { N = 600, IN = 6, D = 4 };
  static float x[N * IN], y[N * D];
  randfill(x, N * IN, 1);
  for (int i = 0; i < N; i++)
    for (int j = 0; j < D; j++) y[i * D + j] = sinf(x[i * IN + j]) + 0.1f * x[i * IN + 5];
  mbEnsemble *a = hopperish(1, 16), *b = hopperish(99, 16);
  if (!a || !b) return;
  mbFitOptions o;
  mbn_fitDefaults(&o, a);
  o.max_epochs = 3;
  mbFitResult r;
  CHECK(mbn_ensFit(&r, a, x, y, N, &o) == MB_OK, "fit: %s", mbu_lasterror());
  copy_state(b, a);
  static float ma[7 * N * D], la[7 * N * D], mb[7 * N * D], lb[7 * N * D];
  mbn_ensPredict(ma, la, a, x, N);
  mbn_ensPredict(mb, lb, b, x, N);
  CHECK(memcmp(ma, mb, sizeof ma) == 0 && memcmp(la, lb, sizeof la) == 0, "predictions differ");
  o.max_epochs = 1;
  mbFitResult ra, rb;
  CHECK(mbn_ensFit(&ra, a, x, y, N, &o) == MB_OK, "fit a");
  double la0 = ra.train_loss[0];
  CHECK(mbn_ensFit(&rb, b, x, y, N, &o) == MB_OK, "fit b");
  CHECK(la0 == rb.train_loss[0], "next epoch loss %.17g vs %.17g", la0, rb.train_loss[0]);
  CHECK(memcmp(a->params, b->params, a->ntotal * sizeof(float)) == 0, "weights after an epoch");
  CHECK(memcmp(a->adam_v, b->adam_v, a->ntotal * sizeof(float)) == 0, "Adam moments");
  float obs[50 * 3], act[50 * 3], na[50 * 3], nb[50 * 3], ra_[50], rb_[50];
  randfill(obs, 150, 1); randfill(act, 150, 1);
  mbRng ga, gb;
  mbg_seed(&ga, 5, 1);
  gb = ga;
  mbn_ensStep(na, ra_, NULL, a, obs, act, 50, &ga, MB_PRED_SAMPLE);
  mbn_ensStep(nb, rb_, NULL, b, obs, act, 50, &gb, MB_PRED_SAMPLE);
  CHECK(memcmp(na, nb, sizeof na) == 0 && memcmp(ra_, rb_, sizeof ra_) == 0, "step samples");
  mbn_ensFree(a);
  mbn_ensFree(b);
}

/* The model step ------------------------------------------------------------------------------ */

static void test_step_sampling(void) {
  /* many copies of 3 input rows: each row's samples follow N(mean, var) of its chosen
     member (that member's prediction), only elites are chosen, uniformly; mean mode gives
     the elites' average; equal generator states give equal bits, for 1 and 2 threads */
  enum { N = 21000, OD = 3, AD = 3, D = 4 };
  mbEnsemble *e = hopperish(8, 16);
  if (!e) return;
  for (int k = 0; k < 5; k++) e->elite[k] = 6 - k;  /* elites 6..2: members 0, 1 never used */
  /* predictions of the three distinct rows through every member */
  float base[3 * (OD + AD)], pm[7 * 3 * D], pl[7 * 3 * D];
  randfill(base, sizeof base / sizeof base[0], 1);
  mbn_ensPredict(pm, pl, e, base, 3);
  float *obs = malloc(sizeof(float) * N * OD), *act = malloc(sizeof(float) * N * AD);
  float *nx = malloc(sizeof(float) * N * OD), *rw = malloc(sizeof(float) * N);
  float *nx2 = malloc(sizeof(float) * N * OD), *rw2 = malloc(sizeof(float) * N);
  int32_t *mem = malloc(sizeof(int32_t) * N);
  for (int r = 0; r < N; r++) {
    memcpy(obs + r * OD, base + (r % 3) * (OD + AD), sizeof(float) * OD);
    memcpy(act + r * AD, base + (r % 3) * (OD + AD) + OD, sizeof(float) * AD);
  }
  mbRng g, g2;
  mbg_seed(&g, 77, 0);
  g2 = g;
  CHECK(mbn_ensStep(nx, rw, mem, e, obs, act, N, &g, MB_PRED_SAMPLE) == MB_OK, "step");
  /* moments per (row kind, member) against the member's mean and variance */
  double s1[3][7][D] = {{{0}}}, s2[3][7][D] = {{{0}}};
  int cnt[3][7] = {{0}}, bad = 0;
  for (int r = 0; r < N; r++) {
    int m = mem[r], k = r % 3;
    if (m < 2 || m > 6) { bad++; continue; }
    cnt[k][m]++;
    for (int j = 0; j < D; j++) {
      double v = j == 0 ? rw[r] : nx[r * OD + j - 1] - obs[r * OD + j - 1];
      s1[k][m][j] += v;
      s2[k][m][j] += v * v;
    }
  }
  CHECK(bad == 0, "%d rows used a non-elite", bad);
  double worst_mean = 0, worst_var = 0;
  for (int k = 0; k < 3; k++)
    for (int m = 2; m < 7; m++) {
      /* about N / 15 = 1400 rows each: 5 binomial standard deviations */
      CHECK(abs(cnt[k][m] - N / 15) < 5 * 36, "member %d chosen %d times", m, cnt[k][m]);
      for (int j = 0; j < D; j++) {
        double n = cnt[k][m], mu = s1[k][m][j] / n, var = s2[k][m][j] / n - mu * mu;
        double pmu = pm[(m * 3 + k) * D + j], pvar = exp(pl[(m * 3 + k) * D + j]);
        worst_mean = fmax(worst_mean, fabs(mu - pmu) / sqrt(pvar / n));
        worst_var = fmax(worst_var, fabs(var / pvar - 1));
      }
    }
  CHECK(worst_mean < 5, "sample means off by %g standard errors", worst_mean);
  CHECK(worst_var < 0.15, "sample variances off by %g (relative)", worst_var);
  /* workspaces: grown by the first call, reused by later calls of the same or fewer rows */
  size_t bytes = mbn_ensWorkBytes(e);
  CHECK(bytes > 0, "no workspace");
  mbRng g3 = g;
  CHECK(mbn_ensStep(nx2, rw2, NULL, e, obs, act, N, &g3, MB_PRED_SAMPLE) == MB_OK, "step");
  CHECK(mbn_ensStep(nx2, rw2, NULL, e, obs, act, N / 3, &g3, MB_PRED_SAMPLE) == MB_OK, "step");
  CHECK(mbn_ensWorkBytes(e) == bytes, "workspace grew from %zu to %zu", bytes, mbn_ensWorkBytes(e));
  /* same generator state, 2 threads: same bits */
  mbu_setThreads(2);
  CHECK(mbn_ensStep(nx2, rw2, NULL, e, obs, act, N, &g2, MB_PRED_SAMPLE) == MB_OK, "step 2");
  mbu_setThreads(1);
  CHECK(memcmp(nx, nx2, sizeof(float) * N * OD) == 0 && memcmp(rw, rw2, sizeof(float) * N) == 0,
        "step differs across thread counts");
  CHECK(g.s[0] == g2.s[0] && g.s[3] == g2.s[3], "generators advanced differently");
  /* mean mode: average of the elites' means, no noise */
  CHECK(mbn_ensStep(nx, rw, mem, e, obs, act, 30, &g, MB_PRED_MEAN) == MB_OK, "mean step");
  double worst = 0;
  for (int r = 0; r < 30; r++) {
    CHECK(mem[r] == -1, "member in mean mode");
    for (int j = 0; j < D; j++) {
      double want = 0;
      for (int q = 0; q < 5; q++) want += pm[(e->elite[q] * 3 + r % 3) * D + j] / 5;
      double got = j == 0 ? rw[r] : nx[r * OD + j - 1] - obs[r * OD + j - 1];
      worst = fmax(worst, fabs(got - want));
    }
  }
  CHECK(worst < 1e-5, "mean mode off by %g", worst);
  free(obs); free(act); free(nx); free(rw); free(nx2); free(rw2); free(mem);
  mbn_ensFree(e);
}

/* The reference training call ---------------------------------------------------------------- */

static double true_sd(double x) { return 0.05 + 0.2 * fabs(x); }

static void test_learning(void) {
  /* y = sin(3x) + noise of std 0.05 + 0.2|x|, x ~ U(-1, 1), 2000 points; a 7-member
     ensemble of 2 hidden layers of 64 swish units (smaller than the reference's 4 x 200 to
     keep the test fast), the reference fit otherwise */
  enum { N = 2000, G = 37 };
  mbEnsembleConfig c;
  mbn_ensDefaults(&c, 1, 1);
  c.nhidden = 2;
  c.hidden[0] = c.hidden[1] = 64;
  c.seed = 7;
  mbEnsemble *e;
  if (mbn_ensCreate(&e, &c) < 0) { CHECK(0, "create: %s", mbu_lasterror()); return; }
  static float x[N], y[N];
  mbRng g;
  mbg_seed(&g, 11, 0);
  for (int i = 0; i < N; i++) {
    double xi = -1 + 2 * mbg_uniform(&g);
    x[i] = (float)xi;
    y[i] = (float)(sin(3 * xi) + true_sd(xi) * mbg_normal(&g));
  }
  mbRng before = e->rng;
  mbFitOptions o;
  mbn_fitDefaults(&o, e);
  mbFitResult r;
  /* the reference fit: 20% holdout, batch 256, patience 5, no epoch cap */
  CHECK(mbn_ensFit(&r, e, x, y, N, &o) == MB_OK, "fit: %s", mbu_lasterror());
  CHECK(r.train_rows == 1600 && r.holdout_rows == 400, "split %lld / %lld",
        (long long)r.train_rows, (long long)r.holdout_rows);
  CHECK(r.train_loss[r.epochs - 1] < r.train_loss[0] - 5, "loss %g -> %g", r.train_loss[0],
        r.train_loss[r.epochs - 1]);

  /* the mean of the elites within 0.1 of sin(3x) on a grid inside the data, RMS within 0.05;
     the predicted std (elites' average variance) within 0.05 of the true std everywhere, and
     tracking it: correlation over the grid >= 0.9 */
  float gx[G], pm[7 * G], pl[7 * G];
  for (int i = 0; i < G; i++) gx[i] = (float)(-0.9 + 1.8 * i / (G - 1));
  CHECK(mbn_ensPredict(pm, pl, e, gx, G) == MB_OK, "predict");
  double emax = 0, rms = 0, sdmax = 0, a[G], b[G];
  for (int i = 0; i < G; i++) {
    double mu = 0, var = 0;
    for (int k = 0; k < 5; k++) {
      mu += pm[e->elite[k] * G + i] / 5;
      var += exp(pl[e->elite[k] * G + i]) / 5;
    }
    double err = fabs(mu - sin(3 * gx[i]));
    emax = fmax(emax, err);
    rms += err * err / G;
    a[i] = sqrt(var);
    b[i] = true_sd(gx[i]);
    sdmax = fmax(sdmax, fabs(a[i] - b[i]));
  }
  double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
  for (int i = 0; i < G; i++) { ma += a[i] / G; mb += b[i] / G; }
  for (int i = 0; i < G; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  double corr = sab / sqrt(saa * sbb);
  CHECK(emax < 0.1 && sqrt(rms) < 0.05, "mean error max %g rms %g", emax, sqrt(rms));
  CHECK(sdmax < 0.05, "std error %g", sdmax);
  CHECK(corr > 0.9, "std correlation %g", corr);

  /* the patience rule, replayed on the holdout curve: the run stopped at the first epoch with
     more than 5 epochs since any member improved its best MSE by more than 1% */
  double best[7];
  int since = 0, stop_at = -1;
  for (int m = 0; m < 7; m++) best[m] = INFINITY;
  for (int ep = 0; ep < r.epochs && stop_at < 0; ep++) {
    int upd = 0;
    for (int m = 0; m < 7; m++) {
      double cur = r.holdout_curve[ep * 7 + m];
      if (isinf(best[m]) || (best[m] - cur) / best[m] > 0.01) { best[m] = cur; upd = 1; }
    }
    since = upd ? 0 : since + 1;
    if (since > 5) stop_at = ep + 1;
  }
  CHECK(r.stop == MB_STOP_PATIENCE && stop_at == r.epochs, "stopped after %d epochs (%d), "
        "the rule says %d", r.epochs, (int)r.stop, stop_at);
  /* best snapshots restored: each member's holdout MSE is its best of the curve */
  for (int m = 0; m < 7; m++) CHECK_NEAR(e->holdout_mse[m], best[m], 1e-6);

  /* the holdout rows as the fit drew them: the first 400 of a permutation from the
     ensemble's generator; the elites are the 5 members with the lowest MSE there */
  int64_t perm[N];
  mbRng rr = before;
  mbg_permutation(perm, &rr, N);
  static float hx[400], hy[400];
  for (int i = 0; i < 400; i++) { hx[i] = x[perm[i]]; hy[i] = y[perm[i]]; }
  float mse[7];
  CHECK(mbn_ensEvaluate(mse, e, hx, hy, 400) == MB_OK, "evaluate");
  for (int m = 0; m < 7; m++) CHECK_NEAR(mse[m], e->holdout_mse[m], 1e-6);
  int is_elite[7] = {0};
  for (int k = 0; k < 5; k++) is_elite[e->elite[k]] = 1;
  for (int k = 0; k < 5; k++)
    for (int m = 0; m < 7; m++)
      if (!is_elite[m]) CHECK(mse[e->elite[k]] <= mse[m], "elite %d worse than %d", e->elite[k], m);
  for (int k = 1; k < 5; k++) CHECK(mse[e->elite[k - 1]] <= mse[e->elite[k]], "elite order");

  /* members differ: their bootstrap sets (drawn after the split, with replacement) are not
     identical and hold about 1 - 1/e of the training rows; their predictions differ */
  static int64_t boot[7][1600];
  static unsigned char seen[N];
  for (int m = 0; m < 7; m++) {
    memset(seen, 0, sizeof seen);
    int uniq = 0;
    for (int i = 0; i < 1600; i++) {
      boot[m][i] = perm[400 + mbg_below(&rr, 1600)];
      if (!seen[boot[m][i]]++) uniq++;
    }
    CHECK(uniq > 0.58 * 1600 && uniq < 0.68 * 1600, "member %d: %d distinct rows", m, uniq);
  }
  for (int m = 1; m < 7; m++)
    CHECK(memcmp(boot[0], boot[m], sizeof boot[0]) != 0, "bootstrap sets 1 and %d equal", m + 1);
  for (int m = 1; m < 7; m++) CHECK(pm[m * G + 5] != pm[5], "members 1 and %d agree", m + 1);

  /* weights persist: a second call starts where the first ended (the history arrays are
     reused by the next fit, so keep the first loss) */
  double first = r.train_loss[0];
  mbFitResult r2;
  o.max_epochs = 1;
  CHECK(mbn_ensFit(&r2, e, x, y, N, &o) == MB_OK, "second fit");
  CHECK(r2.train_loss[0] < first - 5, "second call restarted: %g vs %g", r2.train_loss[0], first);
  CHECK(e->fits == 2, "fit count %lld", (long long)e->fits);
  mbn_ensFree(e);
}

static void test_fit_options(void) {
  enum { N = 1000 };
  static float x[N * 6], y[N * 4];
  randfill(x, N * 6, 1);
  for (int i = 0; i < N * 4; i++) y[i] = x[i] * x[i + 1];
  mbEnsemble *e = hopperish(4, 8);
  if (!e) return;
  mbFitOptions o;
  mbn_fitDefaults(&o, e);
  mbFitResult r;
  o.max_epochs = 2;
  CHECK(mbn_ensFit(&r, e, x, y, N, &o) == MB_OK && r.epochs == 2 && r.stop == MB_STOP_MAX_EPOCHS,
        "max_epochs: %d epochs, stop %d", r.epochs, (int)r.stop);
  CHECK(r.holdout_rows == 200 && r.train_rows == 800, "ratio 0.2");
  o.holdout_ratio = 0.1f;
  CHECK(mbn_ensFit(&r, e, x, y, N, &o) == MB_OK && r.holdout_rows == 100, "ratio 0.1");
  o.holdout_ratio = 0.5f;
  o.holdout_cap = 150;
  CHECK(mbn_ensFit(&r, e, x, y, N, &o) == MB_OK && r.holdout_rows == 150, "cap");
  o.holdout_cap = 0;
  CHECK(mbn_ensFit(&r, e, x, y, N, &o) == MB_OK && r.holdout_rows == 500, "no cap");
  /* the standardiser: mean and population std of the training split's inputs */
  CHECK(fabsf(e->in_mean[0]) < 0.1f && fabsf(e->in_std[0] - 0.577f) < 0.05f,
        "standardiser %g %g", e->in_mean[0], e->in_std[0]);
  /* a constant input column gets std 1 */
  for (int i = 0; i < N; i++) x[i * 6 + 2] = 3.0f;
  CHECK(mbn_ensFit(&r, e, x, y, N, &o) == MB_OK, "constant column");
  CHECK(e->in_std[2] == 1.0f && e->in_mean[2] == 3.0f, "constant column std %g", e->in_std[2]);
  /* a wall-clock cap */
  o.max_epochs = 0;
  o.max_seconds = 1e-9;
  CHECK(mbn_ensFit(&r, e, x, y, N, &o) == MB_OK && r.epochs == 1 && r.stop == MB_STOP_MAX_SECONDS,
        "max_seconds: %d epochs", r.epochs);
  /* interrupted between epochs */
  o.max_seconds = 0;
  o.max_epochs = 3;
  mbu_interrupted = 2;
  CHECK(mbn_ensFit(&r, e, x, y, N, &o) == MB_ERR, "interrupted fit succeeded");
  CHECK(strcmp(mbu_lasterror(), "interrupted") == 0, "message '%s'", mbu_lasterror());
  mbu_interrupted = 0;
  mbn_ensFree(e);
}

static void test_fit_variants(void) {
  /* no bootstrap, fixed bounds, whole-ensemble snapshots, permutation bootstrap: all train;
     without bootstrap and with one seed per member the same rows are seen in the same order */
  enum { N = 500 };
  static float x[N * 6], y[N * 4];
  randfill(x, N * 6, 1);
  for (int i = 0; i < N * 4; i++) y[i] = sinf(2 * x[i]);
  for (int v = 0; v < 3; v++) {
    mbEnsembleConfig c;
    mbn_ensDefaults(&c, 6, 4);
    c.nhidden = 1;
    c.hidden[0] = 16;
    c.bootstrap = v == 0 ? MB_BOOT_NONE : v == 1 ? MB_BOOT_PERMUTE : MB_BOOT_REPLACE;
    c.bounds = v == 1 ? MB_BOUNDS_FIXED : MB_BOUNDS_LEARNED;
    c.snapshot = v == 2 ? MB_SNAP_ENSEMBLE : MB_SNAP_MEMBER;
    mbEnsemble *e;
    if (mbn_ensCreate(&e, &c) < 0) { CHECK(0, "create"); return; }
    if (v == 0) /* identical members: without bootstrap they stay identical */
      for (int m = 1; m < 7; m++) memcpy(e->params + m * e->nparams, e->params, e->nparams * 4);
    mbFitOptions o;
    mbn_fitDefaults(&o, e);
    o.max_epochs = 4;
    mbFitResult r;
    CHECK(mbn_ensFit(&r, e, x, y, N, &o) == MB_OK, "fit variant %d: %s", v, mbu_lasterror());
    CHECK(r.train_loss[3] < r.train_loss[0], "variant %d did not learn", v);
    if (v == 0)
      for (int m = 1; m < 7; m++)
        CHECK(memcmp(e->params + m * e->nparams, e->params, e->nparams * 4) == 0,
              "member %d differs without bootstrap", m + 1);
    if (v == 1) CHECK(e->max_logvar[0] == 0.5f && e->min_logvar[3] == -10.0f, "fixed bounds");
    if (v == 2) CHECK(e->max_logvar[0] != 0.5f, "learned bounds did not move");
    mbn_ensFree(e);
  }
}

static void test_errors(void) {
  mbEnsembleConfig c;
  mbEnsemble *e = NULL;
  /* the message of the bindings' option reader, from the same field table */
  struct { const char *want; int field; double v; } cases[] = {
    {"ensemble: elites must be an integer in [1, members = 7], got 8", 0, 8},
    {"ensemble: members must be an integer in [1, 64], got 0", 1, 0},
    {"ensemble: lr must be a number > 0, got 0", 2, 0},
    {"ensemble: holdout_ratio must be a number in [0, 1), got 1", 3, 1},
    {"ensemble: hidden[2] must be an integer in [1, 65536], got 0", 4, 0},
    {"ensemble: inputs must be an integer in [1, 65536], got 0", 5, 0},
    {"ensemble: max_logvar must be a number > min_logvar = 1, got 0.5", 6, 1},
    {"ensemble: batch must be an integer in [1, 1048576], got 0", 7, 0},
    {"ensemble: hidden must be a list of 0 to 7 integers, got 9 values", 8, 9},
    {"ensemble: weight_decay[3] must be a number >= 0, got -1", 9, -1},
    {"ensemble: bootstrap must be one of replace, permutation, none, got 3", 10, 3},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mbn_ensDefaults(&c, 14, 12);
    switch (cases[i].field) {
      case 0: c.elites = (int)cases[i].v; break;
      case 1: c.members = (int)cases[i].v; break;
      case 2: c.lr = (float)cases[i].v; break;
      case 3: c.holdout_ratio = (float)cases[i].v; break;
      case 4: c.hidden[1] = (int)cases[i].v; break;
      case 5: c.inputs = (int)cases[i].v; break;
      case 6: c.min_logvar = (float)cases[i].v; break;
      case 7: c.batch = (int)cases[i].v; break;
      case 8: c.nhidden = (int)cases[i].v; break;
      case 9: c.weight_decay[2] = (float)cases[i].v; break;
      case 10: c.bootstrap = (mbBootMode)cases[i].v; break;
    }
    CHECK(mbn_ensCreate(&e, &c) == MB_ERR && e == NULL, "case %zu created", i);
    CHECK(strcmp(mbu_lasterror(), cases[i].want) == 0, "case %zu: '%s'", i, mbu_lasterror());
  }
  e = hopperish(1, 8);
  if (!e) return;
  float x[10 * 6] = {0}, y[10 * 4] = {0};
  mbFitOptions o;
  mbn_fitDefaults(&o, e);
  mbFitResult r;
  CHECK(mbn_ensFit(&r, e, x, y, 0, &o) == MB_ERR && strstr(mbu_lasterror(), "no rows"), "N = 0");
  x[13] = NAN;
  CHECK(mbn_ensFit(&r, e, x, y, 10, &o) == MB_ERR &&
        strstr(mbu_lasterror(), "inputs[3][2] is not finite"), "NaN: %s", mbu_lasterror());
  x[13] = 0;
  y[5] = INFINITY;
  CHECK(mbn_ensFit(&r, e, x, y, 10, &o) == MB_ERR &&
        strstr(mbu_lasterror(), "targets[2][2] is not finite"), "inf: %s", mbu_lasterror());
  y[5] = 0;
  /* 4 rows: 0.2 * 4 rounds down to no holdout rows, and nothing else would stop it */
  CHECK(mbn_ensFit(&r, e, x, y, 4, &o) == MB_ERR && strstr(mbu_lasterror(), "never stop"),
        "no holdout: %s", mbu_lasterror());
  o.max_epochs = 2;
  CHECK(mbn_ensFit(&r, e, x, y, 4, &o) == MB_OK && r.epochs == 2, "no holdout, 2 epochs");
  o.batch = 0;
  CHECK(mbn_ensFit(&r, e, x, y, 10, &o) == MB_ERR && 
        strcmp(mbu_lasterror(), "fit: batch must be an integer in [1, 1048576], got 0") == 0,
        "batch: %s", mbu_lasterror());
  CHECK(mbn_ensTrainStep(NULL, e, x, y, 0) == MB_ERR, "empty minibatch");
  mbn_ensFree(e);
  /* a model step needs outputs = 1 + obs */
  mbn_ensDefaults(&c, 3, 1);
  c.nhidden = 1;
  c.hidden[0] = 4;
  CHECK(mbn_ensCreate(&e, &c) == MB_OK, "create 3 -> 1");
  mbRng g;
  mbg_seed(&g, 1, 0);
  float o1[4], rw[4];
  CHECK(mbn_ensStep(o1, rw, NULL, e, x, x, 4, &g, MB_PRED_SAMPLE) == MB_ERR &&
        strstr(mbu_lasterror(), "outputs = 1 + obs"), "step: %s", mbu_lasterror());
  mbn_ensFree(e);
  mbn_ensFree(NULL);
}


/* the swish kernels' bf16 copies (mbn_biasSwishSig16, mbn_swishBackwardSig16) are
   mbn_bf16Image of the fp32 results they write, which are unchanged: every row length 1..40
   (vector bodies and tails), rows of 203, NaN, infinite and subnormal values, huge values
   (rounding up to infinity) */
static void test_swish_bf16_copies(void) {
  enum { R = 3, N = 203 };
  float z[R * N], b[N], h0[R * N], s0[R * N], h1[R * N], s1[R * N], dh[R * N], d0[R * N];
  float d1[R * N], ref16f[R * N];
  uint16_t h16[R * N], d16[R * N], ref16[R * N];
  int ok = 1, unchanged = 1;
  for (int n = 1; n <= N; n = n < 40 ? n + 1 : N) {
    randfill(z, R * N, 8);
    randfill(b, N, 1);
    randfill(dh, R * N, 1);
    /* NaNs go through the backward's copies (mb_expf of NaN: test_simd_math) */
    z[0] = 1e-40f; z[1] = INFINITY; z[2] = -INFINITY; z[3] = 3.3e38f; dh[5] = 3.4e38f;
    dh[6] = -NAN;
    memcpy(h0, z, sizeof z); memcpy(h1, z, sizeof z);
    mbn_biasSwishSig(h0, s0, b, R, n);
    mbn_biasSwishSig16(h1, s1, h16, b, R, n);
    unchanged &= memcmp(h0, h1, sizeof(float) * R * n) == 0 &&
                 memcmp(s0, s1, sizeof(float) * R * n) == 0;
    mbn_bf16Image(ref16, h0, (size_t)R * n);
    ok &= memcmp(h16, ref16, sizeof(uint16_t) * R * n) == 0;
    mbn_swishBackwardSig(d0, dh, h0, s0, (size_t)R * n);
    mbn_swishBackwardSig16(d1, d16, dh, h0, s0, (size_t)R * n);
    unchanged &= memcmp(d0, d1, sizeof(float) * R * n) == 0;
    mbn_bf16Image(ref16, d0, (size_t)R * n);
    ok &= memcmp(d16, ref16, sizeof(uint16_t) * R * n) == 0;
    /* and the rounding is mbn_bf16Round's (NaN aside: its payload is kept) */
    for (int i = 0; i < R * n; i++) {
      uint32_t u = (uint32_t)d16[i] << 16;
      memcpy(&ref16f[i], &u, 4);
      if (!isnan(d0[i]) && ref16f[i] != mbn_bf16Round(d0[i])) ok = 0;
    }
    if (n == N) break;
  }
  CHECK(unchanged, "the fp32 results are those of the kernels without copies");
  CHECK(ok, "bf16 copies equal mbn_bf16Image of the results (isa %d)", (int)mbn_isa());
}

/* The fast path of bf16 training (mbn_ensFastUse: weight images, bf16 copies of activations
   and gradients written once) against the path that rounds every operand per product: the
   same fits, steps and loss gradients bit for bit, in fp32 and bf16, at 1 and 2 threads.
   Three shapes: the Hopper model (14 -> 4 x 200 -> 24), and one with odd widths, a wide first
   layer and output (their products in bf16 too), odd minibatch halves and a short last
   minibatch, with swish and with ReLU. */
typedef struct fastrun {
  float *params, *adam_m, *adam_v, *grads, mse[MB_ENS_MAXMEMBERS];
  double loss[4], train_loss[8], curve[8 * MB_ENS_MAXMEMBERS];
  int elite[MB_ENS_MAXMEMBERS], epochs;
  int64_t t;
} fastrun;

static void fast_run(fastrun *r, const mbEnsembleConfig *c, const float *x, const float *y,
                     int64_t N, int batch, int fast) {
  mbn_ensFastUse(fast);
  mbEnsemble *e = NULL;
  CHECK(mbn_ensCreate(&e, c) == MB_OK, "create: %s", mbu_lasterror());
  if (!e) return;
  mbFitOptions o;
  mbn_fitDefaults(&o, e);
  o.max_epochs = 3;
  o.batch = batch;
  mbFitResult res;
  CHECK(mbn_ensFit(&res, e, x, y, N, &o) == MB_OK, "fit: %s", mbu_lasterror());
  r->epochs = res.epochs;
  for (int k = 0; k < res.epochs && k < 8; k++) {
    r->train_loss[k] = res.train_loss[k];
    for (int m = 0; m < c->members; m++)
      r->curve[k * c->members + m] = res.holdout_curve[(size_t)k * c->members + m];
  }
  /* a second fit continues from the first (its image is made afresh) */
  o.max_epochs = 1;
  CHECK(mbn_ensFit(&res, e, x, y, N, &o) == MB_OK, "fit 2: %s", mbu_lasterror());
  /* steps and a loss gradient outside a fit (the image attached per step) */
  /* minibatches of 40 (halves of 20: their products in fp32, the weight gradients' over 40
     rows in bf16), 1 (an empty second half) and 65 (halves of 33 and 32) */
  static const int Bs[3] = {40, 1, 65};
  for (int k = 0; k < 3; k++)
    CHECK(mbn_ensTrainStep(&r->loss[k], e, x, y, Bs[k]) == MB_OK, "step: %s", mbu_lasterror());
  CHECK(mbn_ensLossGrad(&r->loss[3], e, x, y, 40) == MB_OK, "loss grad");
  size_t n = e->ntotal * sizeof(float);
  r->params = malloc(n); r->adam_m = malloc(n); r->adam_v = malloc(n); r->grads = malloc(n);
  memcpy(r->params, e->params, n);
  memcpy(r->adam_m, e->adam_m, n);
  memcpy(r->adam_v, e->adam_v, n);
  memcpy(r->grads, e->grads, n);
  memcpy(r->mse, e->holdout_mse, sizeof(float) * c->members);
  memcpy(r->elite, e->elite, sizeof(int) * c->elites);
  r->t = e->adam.t;
  mbn_ensFree(e);
}

static void test_fast_path_bits(void) {
  enum { N = 1800, IN = 66, D = 20 };
  static float x[N * IN], y[N * D];
  randfill(x, sizeof x / sizeof x[0], 1);
  for (int i = 0; i < N * D; i++) y[i] = sinf(2 * x[i % (N * IN)]) + 0.1f * x[(7 * i) % (N * IN)];
  int bf16 = mbn_bf16Check(NULL, 0) == MB_OK;
  if (!bf16) printf("  (no native bf16 here: the fast path is checked in fp32 only)\n");
  int checked = 0;
  for (int shape = 0; shape < 3; shape++)
    for (int prec = 0; prec <= bf16; prec++)
      for (int th = 1; th <= 2; th++) {
        mbEnsembleConfig c;
        int batch;
        int64_t rows;
        if (shape == 0) {
          mbn_ensDefaults(&c, 14, 12);   /* Hopper: 4 x 200, 7 members */
          batch = 256;
          rows = 1500;                   /* 1200 training rows: a last minibatch of 176 */
        } else {
          mbn_ensDefaults(&c, IN, D);
          c.members = 3;
          c.elites = 2;
          c.nhidden = 2;
          c.hidden[0] = 65;
          c.hidden[1] = 96;
          mbn_ensDefaultDecay(&c);
          batch = 101;
          rows = N;
          if (shape == 2) c.act = MB_ACT_RELU;
        }
        c.seed = 5;
        c.prec = c.precision = prec ? MB_BF16 : MB_FP32;
        mbu_setThreads(th);
        /* the Hopper shape reads its 14 inputs and 12 targets as rows of the wide data */
        fastrun r[2];
        memset(r, 0, sizeof r);
        for (int f = 0; f < 2; f++) fast_run(&r[f], &c, x, y, rows, batch, f);
        mbn_ensFastUse(1);
        mbu_setThreads(1);
        if (!r[0].params || !r[1].params) break;
        mbEnsemble *tmp = NULL;
        CHECK(mbn_ensCreate(&tmp, &c) == MB_OK, "create");
        size_t n = tmp->ntotal * sizeof(float);
        mbn_ensFree(tmp);
        const char *what = prec ? "bf16" : "fp32";
        CHECK(r[0].epochs == r[1].epochs && r[0].epochs == 3, "%s: epochs", what);
        CHECK(memcmp(r[0].train_loss, r[1].train_loss, sizeof r[0].train_loss) == 0,
              "%s shape %d th %d: train loss %.17g vs %.17g", what, shape, th,
              r[0].train_loss[0], r[1].train_loss[0]);
        CHECK(memcmp(r[0].curve, r[1].curve, sizeof r[0].curve) == 0, "%s: holdout curve", what);
        CHECK(memcmp(r[0].loss, r[1].loss, sizeof r[0].loss) == 0, "%s: step losses", what);
        CHECK(memcmp(r[0].params, r[1].params, n) == 0, "%s shape %d th %d: weights", what,
              shape, th);
        CHECK(memcmp(r[0].adam_m, r[1].adam_m, n) == 0 &&
              memcmp(r[0].adam_v, r[1].adam_v, n) == 0 && r[0].t == r[1].t, "%s: Adam", what);
        CHECK(memcmp(r[0].grads, r[1].grads, n) == 0, "%s: loss gradient", what);
        CHECK(memcmp(r[0].mse, r[1].mse, sizeof r[0].mse) == 0 &&
              memcmp(r[0].elite, r[1].elite, sizeof r[0].elite) == 0, "%s: holdout, elites",
              what);
        /* the runs did train: the loss moved */
        CHECK(r[0].train_loss[2] != r[0].train_loss[0], "%s: training moved", what);
        for (int f = 0; f < 2; f++) {
          free(r[f].params); free(r[f].adam_m); free(r[f].adam_v); free(r[f].grads);
        }
        checked++;
      }
  CHECK(checked == 6 * (1 + bf16), "cases checked: %d", checked);
}

int main(void) {
  mbu_setThreads(1);
  mbg_seed(&rng, 2024, 0);
  RUN(test_swish_sig);
  RUN(test_linear_rows);
  RUN(test_adam_decay);
  RUN(test_gauss_nll);
  RUN(test_gauss_logvar_sample);
  RUN(test_gauss_noise);
  RUN(test_simd_math);
  RUN(test_ensemble_grad_swish);
  RUN(test_ensemble_grad_relu);
  RUN(test_ensemble_grad_one_row);
  RUN(test_fixed_bounds_grad);
  RUN(test_threads_bit_identical);
  RUN(test_fit_threads);
  RUN(test_state_round_trip);
  RUN(test_step_sampling);
  RUN(test_learning);
  RUN(test_fit_options);
  RUN(test_fit_variants);
  RUN(test_errors);
  RUN(test_swish_bf16_copies);
  RUN(test_fast_path_bits);
  return TEST_REPORT();
}
