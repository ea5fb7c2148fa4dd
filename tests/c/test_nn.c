/* Tests of src/nn/kernels.c and src/nn/mlp.c (the MLP SAC trains and mbpo.nn runs) against
   naive double-precision references and finite differences. */
#include <stdlib.h>
#include <string.h>

#include "mbpo/core.h"
#include "mbpo/nn.h"
#include "mbpo/state.h"
#include "test.h"

static mbRng rng;

static void randfill(float *x, size_t n, float a) { mbg_uniformFill(x, &rng, n, -a, a); }

/* naive double MLP forward: returns sum(out * r) for a loss with weights r */
static double ref_loss(const mbMlp *m, const double *p, const double *x, const double *r, int B) {
  int w = 0;
  for (int l = 0; l <= m->nlayers; l++) if (m->sizes[l] > w) w = m->sizes[l];
  double *a = calloc((size_t)B * w, sizeof(double)), *b = calloc((size_t)B * w, sizeof(double));
  memcpy(a, x, sizeof(double) * (size_t)B * m->sizes[0]);
  for (int l = 0; l < m->nlayers; l++) {
    int ni = m->sizes[l], no = m->sizes[l + 1];
    const double *W = p + m->woff[l], *bias = p + m->boff[l];
    for (int i = 0; i < B; i++)
      for (int j = 0; j < no; j++) {
        double s = bias[j];
        for (int k = 0; k < ni; k++) s += a[(size_t)i * ni + k] * W[(size_t)k * no + j];
        if (l < m->nlayers - 1)
          s = m->act == MB_ACT_RELU ? (s > 0 ? s : 0) : s / (1 + exp(-s));
        b[(size_t)i * no + j] = s;
      }
    double *t = a; a = b; b = t;
  }
  double loss = 0;
  for (int i = 0; i < B * m->sizes[m->nlayers]; i++) loss += a[i] * r[i];
  free(a); free(b);
  return loss;
}

static void check_mlp(mbActivation act) {
  int sizes[4] = {5, 7, 6, 3}, B = 4;
  mbMlp m;
  CHECK(mbn_mlpInit(&m, 3, sizes, act) == 0, "init");
  size_t np = m.nparams;
  float *p = malloc(sizeof(float) * np), *g = calloc(np, sizeof(float));
  float *x = malloc(sizeof(float) * B * 5), *r = malloc(sizeof(float) * B * 3);
  float *ws = malloc(sizeof(float) * mbn_mlpWorkspace(&m, B));
  float *sc = malloc(sizeof(float) * mbn_mlpScratch(&m, B));
  float *dx = malloc(sizeof(float) * B * 5);
  randfill(p, np, 0.8f);
  randfill(x, (size_t)B * 5, 1.0f);
  randfill(r, (size_t)B * 3, 1.0f);
  float *y = mbn_mlpForward(ws, &m, p, x, B);
  double *pd = malloc(sizeof(double) * np), xd[20], rd[12];
  for (size_t i = 0; i < np; i++) pd[i] = p[i];
  for (int i = 0; i < B * 5; i++) xd[i] = x[i];
  for (int i = 0; i < B * 3; i++) rd[i] = r[i];
  /* forward agrees with the double reference */
  double lf = 0;
  for (int i = 0; i < B * 3; i++) lf += (double)y[i] * r[i];
  CHECK_NEAR(lf, ref_loss(&m, pd, xd, rd, B), 1e-5);
  mbn_mlpBackward(dx, g, sc, &m, p, x, ws, r, B);
  /* central differences in double on every parameter and input */
  double h = 1e-6, worst = 0;
  for (size_t i = 0; i < np; i++) {
    double save = pd[i];
    pd[i] = save + h; double lp = ref_loss(&m, pd, xd, rd, B);
    pd[i] = save - h; double lm = ref_loss(&m, pd, xd, rd, B);
    pd[i] = save;
    double fd = (lp - lm) / (2 * h), e = fabs(fd - g[i]) / fmax(1, fabs(fd));
    if (e > worst) worst = e;
  }
  for (int i = 0; i < B * 5; i++) {
    double save = xd[i];
    xd[i] = save + h; double lp = ref_loss(&m, pd, xd, rd, B);
    xd[i] = save - h; double lm = ref_loss(&m, pd, xd, rd, B);
    xd[i] = save;
    double fd = (lp - lm) / (2 * h), e = fabs(fd - dx[i]) / fmax(1, fabs(fd));
    if (e > worst) worst = e;
  }
  CHECK(worst < 1e-4, "%s mlp gradient error %g", act == MB_ACT_RELU ? "relu" : "swish", worst);
  free(p); free(g); free(x); free(r); free(ws); free(sc); free(dx); free(pd);
}

static void test_mlp_relu(void) { check_mlp(MB_ACT_RELU); }
static void test_mlp_swish(void) { check_mlp(MB_ACT_SWISH); }

static void test_linear_shapes(void) {
  /* y = x W + b vs a naive loop on a non-square shape, and backward accumulation */
  int B = 3, in = 4, out = 2;
  float x[12], W[8], b[2], y[6], dy[6], dW[8] = {0}, db[2] = {0}, dx[12];
  randfill(x, 12, 1); randfill(W, 8, 1); randfill(b, 2, 1); randfill(dy, 6, 1);
  mbn_linearForward(y, x, W, b, B, in, out);
  for (int i = 0; i < B; i++)
    for (int j = 0; j < out; j++) {
      double s = b[j];
      for (int k = 0; k < in; k++) s += (double)x[i * in + k] * W[k * out + j];
      CHECK_NEAR(y[i * out + j], s, 1e-6);
    }
  mbn_linearBackward(dx, dW, db, dy, x, W, B, in, out);
  mbn_linearBackward(NULL, dW, db, dy, x, W, B, in, out); /* accumulates twice */
  for (int k = 0; k < in; k++)
    for (int j = 0; j < out; j++) {
      double s = 0;
      for (int i = 0; i < B; i++) s += (double)x[i * in + k] * dy[i * out + j];
      CHECK_NEAR(dW[k * out + j], 2 * s, 1e-6);
    }
  for (int j = 0; j < out; j++) CHECK_NEAR(db[j], 2 * (dy[j] + dy[2 + j] + dy[4 + j]), 1e-6);
  for (int i = 0; i < B; i++)
    for (int k = 0; k < in; k++) {
      double s = 0;
      for (int j = 0; j < out; j++) s += (double)dy[i * out + j] * W[k * out + j];
      CHECK_NEAR(dx[i * in + k], s, 1e-6);
    }
}

static void test_adam(void) {
  /* two steps against the closed form */
  float p[2] = {1.0f, -2.0f}, m[2] = {0}, v[2] = {0}, g[2] = {0.5f, -0.25f};
  mbAdam opt;
  mbn_adamDefaults(&opt, 0.1f);
  double pd[2] = {1, -2}, md[2] = {0}, vd[2] = {0};
  for (int t = 1; t <= 2; t++) {
    opt.t++;
    CHECK(mbn_adam(p, m, v, g, 2, &opt, 0.0f, NULL, 0.0f) == 0.0, "decay term without decay");
    for (int i = 0; i < 2; i++) {
      md[i] = 0.9 * md[i] + 0.1 * g[i];
      vd[i] = 0.999 * vd[i] + 0.001 * g[i] * g[i];
      double mh = md[i] / (1 - pow(0.9, t)), vh = vd[i] / (1 - pow(0.999, t));
      pd[i] -= 0.1 * mh / (sqrt(vh) + 1e-8);
    }
  }
  CHECK(opt.t == 2, "step count %lld", (long long)opt.t);
  CHECK_NEAR(p[0], pd[0], 1e-6);
  CHECK_NEAR(p[1], pd[1], 1e-6);
}

static void test_decay_polyak(void) {
  float g[3] = {1, 2, 3}, p[3] = {10, -10, 0};
  mbn_addDecay(g, p, 0.5f, 3);
  CHECK(g[0] == 6 && g[1] == -3 && g[2] == 3, "decay %g %g %g", g[0], g[1], g[2]);
  /* Adam with decay and a Polyak target, both arithmetics, 21 elements (vector lanes and a
     tail), three steps against a double reference; decay term of the loss returned */
  enum { N = 21 };
  for (int contract = 0; contract < 2; contract++) {
    float pf[N], mf[N] = {0}, vf[N] = {0}, gf[N], g0[N], tf[N];
    double pd[N], md[N] = {0}, vd[N] = {0}, td[N];
    randfill(pf, N, 1.5f); randfill(g0, N, 1.0f); randfill(tf, N, 1.0f);
    for (int i = 0; i < N; i++) { pd[i] = pf[i]; td[i] = tf[i]; }
    mbAdam opt;
    mbn_adamDefaults(&opt, 0.02f);
    opt.contract = contract;
    const double wd = 0.25, tau = 0.1;
    for (int t = 1; t <= 3; t++) {
      memcpy(gf, g0, sizeof gf);
      double want = 0;
      for (int i = 0; i < N; i++) want += 0.5 * wd * pd[i] * pd[i];
      opt.t++;
      double got = mbn_adam(pf, mf, vf, gf, N, &opt, (float)wd, tf, (float)tau);
      CHECK(fabs(got - want) <= 1e-5 * fmax(1, want), "decay term %g, want %g", got, want);
      for (int i = 0; i < N; i++) {
        double gi = g0[i] + wd * pd[i];
        CHECK_NEAR(gf[i], gi, 1e-6);
        md[i] = 0.9 * md[i] + 0.1 * gi;
        vd[i] = 0.999 * vd[i] + 0.001 * gi * gi;
        double mh = md[i] / (1 - pow(0.9, t)), vh = vd[i] / (1 - pow(0.999, t));
        pd[i] -= 0.02 * mh / (sqrt(vh) + 1e-8);
        td[i] = (1 - tau) * td[i] + tau * pd[i];
      }
    }
    double e = 0;
    for (int i = 0; i < N; i++) e = fmax(e, fmax(fabs(pf[i] - pd[i]), fabs(tf[i] - td[i])));
    CHECK(e < 2e-6, "Adam (contract %d) off the reference by %g", contract, e);
  }
}

static void test_truncnormal(void) {
  size_t n = 100000;
  float *w = malloc(sizeof(float) * n);
  mbn_initTruncNormal(w, &rng, n, 0.5f);
  double s = 0, s2 = 0, mx = 0;
  for (size_t i = 0; i < n; i++) {
    s += w[i]; s2 += (double)w[i] * w[i]; mx = fmax(mx, fabs(w[i]));
  }
  /* N(0,1) truncated at +-2 has std 0.8796 */
  CHECK(mx <= 1.0, "sample beyond 2 std: %g", mx);
  CHECK_NEAR(sqrt(s2 / n - (s / n) * (s / n)), 0.5 * 0.8796, 0.005);
  free(w);
}

/* mbMlpNet (src/nn/net.c): the object mbpo.nn runs. Its weights are those of the
   initialiser with its seed, its forward is the double reference, backward works from its own
   copy of the input (the caller's x changed after the forward) and agrees with central
   differences; the failures leave it safe to free. */
static void test_net(void) {
  int B = 3;
  mbNetOptions o;
  memset(&o, 0xff, sizeof o);
  mbu_fieldDefaults(&o, mbn_netFields);
  CHECK(o.activation == MB_ACT_RELU && o.init == 0 && o.seed == 0 && o.lr == 1e-3f, "defaults");
  o = (mbNetOptions){.sizes = {4, 6, 2}, .nsizes = 3, .activation = MB_ACT_SWISH, .init = 1,
                     .seed = 3, .lr = 1e-3f};
  mbMlpNet n;
  memset(&n, 0, sizeof n);
  CHECK(mbn_netInit(&n, &o) == MB_OK, "init");
  size_t np = n.net.nparams;
  float *ref = malloc(sizeof(float) * np), *dx = malloc(sizeof(float) * B * 4);
  mbRng g;
  mbg_seed(&g, 3, 0);
  mbn_mlpInitTruncNormal(ref, &n.net, &g);
  CHECK(memcmp(ref, mbt_data(&n.p), sizeof(float) * np) == 0, "weights of the seed");
  CHECK(n.adam.lr == 1e-3f && n.adam.t == 0, "Adam's defaults");
  CHECK(mbn_netBackward(&n, dx, dx) == MB_ERR, "backward before a forward");
  float x[12], r[6];
  double xd[12], rd[6], *pd = malloc(sizeof(double) * np);
  randfill(x, 12, 1.0f);
  randfill(r, 6, 1.0f);
  for (int i = 0; i < 12; i++) xd[i] = x[i];
  for (int i = 0; i < 6; i++) rd[i] = r[i];
  for (size_t i = 0; i < np; i++) pd[i] = mbt_data(&n.p)[i];
  const float *y = mbn_netForward(&n, x, B);
  double lf = 0;
  for (int i = 0; i < 6; i++) lf += (double)y[i] * r[i];
  CHECK_NEAR(lf, ref_loss(&n.net, pd, xd, rd, B), 1e-5);
  for (int i = 0; i < 12; i++) x[i] += 1.0f;  /* backward must use the forward's own copy */
  CHECK(mbn_netBackward(&n, dx, r) == MB_OK, "backward");
  double h = 1e-6, worst = 0;
  for (size_t i = 0; i < np; i++) {
    double save = pd[i];
    pd[i] = save + h; double lp = ref_loss(&n.net, pd, xd, rd, B);
    pd[i] = save - h; double lm = ref_loss(&n.net, pd, xd, rd, B);
    pd[i] = save;
    double fd = (lp - lm) / (2 * h), e = fabs(fd - mbt_data(&n.g)[i]) / fmax(1, fabs(fd));
    if (e > worst) worst = e;
  }
  CHECK(worst < 1e-4, "net gradient error %g", worst);
  mbStateBlock b[MB_STATE_MAXBLOCKS];
  int nb = mbn_netStateBlocks(b, &n);
  CHECK(nb == 10 && strcmp(b[0].name, "sizes") == 0 && strcmp(b[1].text, "swish") == 0 &&
        b[2].data == mbt_data(&n.p) && b[2].shape[0] == (int64_t)np, "state blocks (%d)", nb);
  mbn_netFree(&n);
  mbn_netFree(&n);
  CHECK(n.p.storage == NULL && n.ws == NULL, "freed and empty");
  o.nsizes = 1;
  CHECK(mbn_netInit(&n, &o) == MB_ERR, "one size is no network");
  mbn_netFree(&n);
  free(ref); free(dx); free(pd);
}

/* mbAdamTensor (src/nn/net.c): Adam over a tensor keeps a view of its parameters (their
   storage outlives the caller's tensor), zero moments of the same size, the settings given;
   a strided tensor is refused */
static void test_adam_tensor(void) {
  int64_t size[2] = {2, 3};
  mbTensor p, t;
  CHECK(mbt_init(&p, 2, size) == MB_OK, "params");
  mbt_fill(&p, 1.5f);
  mbAdamOptions o = {{0}, 0.25f};
  mbn_adamDefaults(&o.adam, 0.01f);
  mbAdamTensor a;
  memset(&a, 0, sizeof a);
  CHECK(mbt_transpose(&t, &p, 0, 1) == MB_OK, "a strided view");
  CHECK(mbn_adamTensorInit(&a, &t, &o) == MB_ERR, "a strided tensor is refused");
  mbn_adamTensorFree(&a);
  mbt_release(&t);
  CHECK(mbn_adamTensorInit(&a, &p, &o) == MB_OK, "init");
  float *data = mbt_data(&p);
  mbt_release(&p);  /* the view keeps the storage */
  CHECK(mbt_data(&a.p) == data && data[5] == 1.5f, "a view of the parameters");
  CHECK(mbt_numel(&a.m) == 6 && mbt_numel(&a.v) == 6 && mbt_data(&a.m)[5] == 0 &&
        mbt_data(&a.v)[0] == 0, "zero moments of the parameters' size");
  CHECK(a.o.adam.lr == 0.01f && a.o.weight_decay == 0.25f && a.o.adam.t == 0, "the settings");
  mbStateBlock b[MB_STATE_MAXBLOCKS];
  int nb = mbn_adamTensorStateBlocks(b, &a);
  CHECK(nb == 8 && !strcmp(b[0].name, "adam_m") && b[0].shape[0] == 6 &&
        !strcmp(b[7].name, "weight_decay") && b[7].data == &a.o.weight_decay, "state blocks");
  mbn_adamTensorFree(&a);
  mbn_adamTensorFree(&a);
  CHECK(a.p.storage == NULL && a.m.storage == NULL, "freed and empty");
}

int main(void) {
  mbg_seed(&rng, 123, 0);
  RUN(test_linear_shapes);
  RUN(test_mlp_relu);
  RUN(test_mlp_swish);
  RUN(test_adam);
  RUN(test_decay_polyak);
  RUN(test_truncnormal);
  RUN(test_net);
  RUN(test_adam_tensor);
  return TEST_REPORT();
}
