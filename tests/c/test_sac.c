/* Tests of src/rl/sac.c and the MLP it trains (src/nn/mlp.c): the losses and gradients of
   one update against an independent double-precision reference (naive loops, central
   differences: the whole critic and actor gradients through the shared MLP), the
   order of the update's steps, acting, determinism across thread counts, configuration
   errors, non-finite batches. */
#include <stdlib.h>
#include <string.h>

#include "mbpo/core.h"
#include "mbpo/sac.h"
#include "test.h"

static mbRng rng;

static void randfill(float *x, size_t n, float a) { mbg_uniformFill(x, &rng, n, -a, a); }

/* Double-precision reference ---------------------------------------------------------- */

/* A batch and the noise of one update, with the agent's shapes. */
typedef struct Batch {
  int B, O, A;
  float *obs, *act, *rew, *obs2, *done, *eps2, *eps;
} Batch;

static void batch_make(Batch *b, int B, int O, int A) {
  b->B = B; b->O = O; b->A = A;
  b->obs = malloc(sizeof(float) * B * O);
  b->obs2 = malloc(sizeof(float) * B * O);
  b->act = malloc(sizeof(float) * B * A);
  b->rew = malloc(sizeof(float) * B);
  b->done = malloc(sizeof(float) * B);
  b->eps2 = malloc(sizeof(float) * B * A);
  b->eps = malloc(sizeof(float) * B * A);
  randfill(b->obs, (size_t)B * O, 1.5f);
  randfill(b->obs2, (size_t)B * O, 1.5f);
  randfill(b->act, (size_t)B * A, 0.99f);
  randfill(b->rew, (size_t)B, 2.0f);
  for (int i = 0; i < B; i++) b->done[i] = (i % 3 == 1) ? 1.0f : 0.0f;
  mbg_normalFill(b->eps2, &rng, (size_t)B * A);
  mbg_normalFill(b->eps, &rng, (size_t)B * A);
}

static void batch_free(Batch *b) {
  free(b->obs); free(b->obs2); free(b->act); free(b->rew); free(b->done);
  free(b->eps2); free(b->eps);
}

/* naive ReLU MLP in double: out [B x sizes[L]] */
static void ref_mlp(double *out, const mbMlp *m, const double *p, const double *x, int B) {
  int w = 0;
  for (int l = 0; l <= m->nlayers; l++) if (m->sizes[l] > w) w = m->sizes[l];
  double *a = malloc(sizeof(double) * B * w), *b = malloc(sizeof(double) * B * w);
  memcpy(a, x, sizeof(double) * B * m->sizes[0]);
  for (int l = 0; l < m->nlayers; l++) {
    int ni = m->sizes[l], no = m->sizes[l + 1];
    const double *W = p + m->woff[l], *bias = p + m->boff[l];
    for (int i = 0; i < B; i++)
      for (int j = 0; j < no; j++) {
        double s = bias[j];
        for (int k = 0; k < ni; k++) s += a[i * ni + k] * W[k * no + j];
        b[i * no + j] = (l < m->nlayers - 1 && s < 0) ? 0 : s;
      }
    double *t = a; a = b; b = t;
  }
  memcpy(out, a, sizeof(double) * B * m->sizes[m->nlayers]);
  free(a); free(b);
}

/* naive policy: actions a [B x A] and log-probabilities logp [B] for noise eps; the tanh
   correction through log cosh (the code under test uses the softplus form) */
static void ref_policy(double *a, double *logp, const mbSac *s, const double *pp,
                       const double *x, const float *eps, int B) {
  int A = s->cfg.act;
  double *o = malloc(sizeof(double) * B * 2 * A);
  ref_mlp(o, &s->pi, pp, x, B);
  for (int i = 0; i < B; i++) {
    double lp = 0;
    for (int j = 0; j < A; j++) {
      double ls = o[i * 2 * A + A + j];
      if (ls < MB_SAC_LOGSTD_MIN) ls = MB_SAC_LOGSTD_MIN;
      if (ls > MB_SAC_LOGSTD_MAX) ls = MB_SAC_LOGSTD_MAX;
      double e = eps[i * A + j], u = o[i * 2 * A + j] + exp(ls) * e;
      a[i * A + j] = tanh(u);
      /* log(1 - tanh^2 u) = -2 log cosh u, cosh written out so large |u| stays exact */
      double lc = fabs(u) + log1p(exp(-2 * fabs(u))) - log(2.0);
      lp += -0.5 * e * e - ls - 0.5 * log(2 * M_PI) + 2 * lc;
    }
    logp[i] = lp;
  }
  free(o);
}

/* Everything the losses depend on, in double. */
typedef struct Ref {
  const mbSac *s;
  const Batch *b;
  double *pp, *qp, *qt, log_alpha;  /* policy, critics, targets [2 nq], temperature */
} Ref;

static void ref_init(Ref *r, const mbSac *s, const Batch *b) {
  r->s = s; r->b = b;
  r->pp = malloc(sizeof(double) * s->npi);
  r->qp = malloc(sizeof(double) * 2 * s->nq);
  r->qt = malloc(sizeof(double) * 2 * s->nq);
  for (size_t i = 0; i < s->npi; i++) r->pp[i] = s->pi_p[i];
  for (size_t i = 0; i < 2 * s->nq; i++) { r->qp[i] = s->q_p[i]; r->qt[i] = s->q_targ[i]; }
  r->log_alpha = s->log_alpha;
}

static void ref_free(Ref *r) { free(r->pp); free(r->qp); free(r->qt); }

/* x [B x (O + A)] = [obs, a] */
static double *ref_concat(const float *obs, const double *a, int B, int O, int A) {
  double *x = malloc(sizeof(double) * B * (O + A));
  for (int i = 0; i < B; i++) {
    for (int j = 0; j < O; j++) x[i * (O + A) + j] = obs[i * O + j];
    for (int j = 0; j < A; j++) x[i * (O + A) + O + j] = a[i * A + j];
  }
  return x;
}

static double *todouble(const float *x, int n) {
  double *d = malloc(sizeof(double) * n);
  for (int i = 0; i < n; i++) d[i] = x[i];
  return d;
}

/* critic targets y [B] (from the target critics and a' ~ pi(s') with eps2) */
static void ref_targets(double *y, const Ref *r) {
  const mbSac *s = r->s;
  const Batch *b = r->b;
  int B = b->B, O = b->O, A = b->A;
  double *a2 = malloc(sizeof(double) * B * A), *lp2 = malloc(sizeof(double) * B);
  double *o2 = todouble(b->obs2, B * O), q1[64], q2[64];
  ref_policy(a2, lp2, s, r->pp, o2, b->eps2, B);
  double *x2 = ref_concat(b->obs2, a2, B, O, A);
  ref_mlp(q1, &s->q, r->qt, x2, B);
  ref_mlp(q2, &s->q, r->qt + s->nq, x2, B);
  double alpha = exp(r->log_alpha);
  for (int i = 0; i < B; i++)
    y[i] = b->rew[i] + s->cfg.gamma * (1 - b->done[i]) * (fmin(q1[i], q2[i]) - alpha * lp2[i]);
  free(a2); free(lp2); free(o2); free(x2);
}

/* critic loss: mean((Q1 - y)^2) + mean((Q2 - y)^2) at the batch's (s, a) */
static double ref_critic_loss(const Ref *r, const double *y) {
  const mbSac *s = r->s;
  const Batch *b = r->b;
  int B = b->B;
  double *ad = todouble(b->act, B * b->A), q1[64], q2[64];
  double *x = ref_concat(b->obs, ad, B, b->O, b->A);
  ref_mlp(q1, &s->q, r->qp, x, B);
  ref_mlp(q2, &s->q, r->qp + s->nq, x, B);
  double l = 0;
  for (int i = 0; i < B; i++)
    l += (q1[i] - y[i]) * (q1[i] - y[i]) + (q2[i] - y[i]) * (q2[i] - y[i]);
  free(ad); free(x);
  return l / B;
}

/* actor loss mean(alpha logpi - min(Q1, Q2)(s, a~)) and the mean log-probability */
static double ref_actor_loss(const Ref *r, double *mean_logp) {
  const mbSac *s = r->s;
  const Batch *b = r->b;
  int B = b->B, O = b->O, A = b->A;
  double *a = malloc(sizeof(double) * B * A), *lp = malloc(sizeof(double) * B);
  double *o = todouble(b->obs, B * O), q1[64], q2[64];
  ref_policy(a, lp, s, r->pp, o, b->eps, B);
  double *x = ref_concat(b->obs, a, B, O, A);
  ref_mlp(q1, &s->q, r->qp, x, B);
  ref_mlp(q2, &s->q, r->qp + s->nq, x, B);
  double alpha = exp(r->log_alpha), l = 0, ml = 0;
  for (int i = 0; i < B; i++) {
    l += alpha * lp[i] - fmin(q1[i], q2[i]);
    ml += lp[i];
  }
  if (mean_logp) *mean_logp = ml / B;
  free(a); free(lp); free(o); free(x);
  return l / B;
}

static double ref_alpha_loss(const Ref *r, double mean_logp) {
  return -r->log_alpha * (mean_logp + r->s->cfg.target_entropy);
}

/* worst |g - fd| / max(max |fd|, floor) over n parameters p (perturbed in place) */
static double fd_check(double *p, const float *g, size_t n,
                       double (*loss)(const Ref *, const double *),
                       const Ref *r, const double *aux, double *gmax) {
  const double h = 1e-6;
  double worst = 0, big = 0;
  double *fd = malloc(sizeof(double) * n);
  for (size_t i = 0; i < n; i++) {
    double save = p[i];
    p[i] = save + h; double lp = loss(r, aux);
    p[i] = save - h; double lm = loss(r, aux);
    p[i] = save;
    fd[i] = (lp - lm) / (2 * h);
    if (fabs(fd[i]) > big) big = fabs(fd[i]);
  }
  double scale = big > 1e-3 ? big : 1e-3;
  for (size_t i = 0; i < n; i++) {
    double e = fabs(fd[i] - g[i]) / scale;
    if (e > worst) worst = e;
  }
  free(fd);
  if (gmax) *gmax = big;
  return worst;
}

static double critic_fn(const Ref *r, const double *y) { return ref_critic_loss(r, y); }
static double actor_fn(const Ref *r, const double *aux) {
  (void)aux;
  return ref_actor_loss(r, NULL);
}

/* Gradient checks ---------------------------------------------------------------------- */

/* builds a small agent (two different hidden widths) with nonzero temperature state */
static void small_agent(mbSac *s, int O, int A, int h1, int h2, uint64_t seed) {
  mbSacConfig c;
  mbr_sacDefaults(&c, O, A);
  c.hidden[0] = h1;
  c.hidden[1] = h2;
  c.batch = 8;
  c.init_alpha = 0.7f;
  c.seed = seed;
  CHECK(mbr_sacInit(s, &c) == MB_OK, "init: %s", mbu_lasterror());
  /* targets differ from the critics, as after some training */
  for (size_t i = 0; i < 2 * s->nq; i++) s->q_targ[i] += 0.05f * (mbg_uniformf(&rng) - 0.5f);
}

/* Tolerances: float gradients against double central differences, relative to the largest
   gradient entry: 1e-5 (measured: below 5e-7). */
#define GRAD_TOL 1e-5

static void check_gradients(mbSac *s, int B, const char *what) {
  Batch b;
  batch_make(&b, B, s->cfg.obs, s->cfg.act);
  mbSacStats st;
  CHECK(mbr_sacGradients(s, &st, b.obs, b.act, b.rew, b.obs2, b.done, b.eps2, b.eps, B) == MB_OK,
        "%s: gradients: %s", what, mbu_lasterror());
  Ref r;
  ref_init(&r, s, &b);
  double y[64];
  ref_targets(y, &r);
  /* losses agree with the reference */
  double qloss = ref_critic_loss(&r, y), mlogp, aloss = ref_actor_loss(&r, &mlogp);
  CHECK_NEAR(st.q1_loss + st.q2_loss, qloss, 1e-5);
  CHECK(st.critic_loss == st.q1_loss + st.q2_loss, "%s: critic_loss %g, q1 + q2 %g", what,
        st.critic_loss, st.q1_loss + st.q2_loss);
  CHECK_NEAR(st.actor_loss, aloss, 1e-5);
  CHECK_NEAR(st.entropy, -mlogp, 1e-5);
  CHECK_NEAR(st.alpha_loss, ref_alpha_loss(&r, mlogp), 1e-5);
  CHECK_NEAR(st.alpha, exp(r.log_alpha), 1e-6);
  /* critic loss w.r.t. both critics' parameters (targets y fixed, as they are constants) */
  double gmax, e = fd_check(r.qp, s->q_g, 2 * s->nq, critic_fn, &r, y, &gmax);
  CHECK(e < GRAD_TOL, "%s: critic gradient error %g (max |grad| %g)", what, e, gmax);
  if (getenv("MBPO_TEST_VERBOSE"))
    printf("  %s: critic gradient error %.3g (max %.3g)\n", what, e, gmax);
  CHECK(gmax > 1e-3, "%s: critic gradient vanishes (%g)", what, gmax);
  /* actor loss w.r.t. the policy parameters, through the critics and the reparameterisation */
  e = fd_check(r.pp, s->pi_g, s->npi, actor_fn, &r, NULL, &gmax);
  CHECK(e < GRAD_TOL, "%s: actor gradient error %g (max |grad| %g)", what, e, gmax);
  if (getenv("MBPO_TEST_VERBOSE"))
    printf("  %s: actor gradient error %.3g (max %.3g)\n", what, e, gmax);
  CHECK(gmax > 1e-3, "%s: actor gradient vanishes (%g)", what, gmax);
  /* temperature loss w.r.t. log_alpha */
  double h = 1e-6, la = r.log_alpha;
  r.log_alpha = la + h; double lp = ref_alpha_loss(&r, mlogp);
  r.log_alpha = la - h; double lm = ref_alpha_loss(&r, mlogp);
  r.log_alpha = la;
  CHECK_NEAR(s->alpha_g, (lp - lm) / (2 * h), 1e-5);
  ref_free(&r);
  batch_free(&b);
}

static void test_gradients(void) {
  mbSac s;
  small_agent(&s, 3, 2, 16, 12, 11);
  check_gradients(&s, 7, "small");  /* odd batch: unequal row halves */
  mbr_sacFree(&s);
  small_agent(&s, 11, 3, 24, 20, 12);
  check_gradients(&s, 16, "hopper-like");
  mbr_sacFree(&s);
}

/* log-std outside [-20, 2]: the clip passes no gradient, and the reference agrees */
static void test_gradients_clipped(void) {
  mbSac s;
  small_agent(&s, 3, 2, 16, 12, 13);
  const mbMlp *m = &s.pi;
  float *bias = s.pi_p + m->boff[m->nlayers - 1];
  bias[2] = 30.0f;   /* log-std of action 1 far above 2 */
  bias[3] = -30.0f;  /* log-std of action 2 far below -20 */
  check_gradients(&s, 6, "clipped");
  /* the clipped outputs' biases get no gradient from the log-std path */
  CHECK(s.pi_g[m->boff[m->nlayers - 1] + 2] == 0.0f, "upper clip leaks gradient %g",
        (double)s.pi_g[m->boff[m->nlayers - 1] + 2]);
  CHECK(s.pi_g[m->boff[m->nlayers - 1] + 3] == 0.0f, "lower clip leaks gradient %g",
        (double)s.pi_g[m->boff[m->nlayers - 1] + 3]);
  mbr_sacFree(&s);
}

/* One update = critic step, then the actor step through the updated critics, then the
   temperature step with the actor step's log-probabilities; Polyak with the critic step:
   rebuilt from mbr_sacGradients and the shared Adam (mbn_adam) it must match bit for bit. */
static void test_update_order(void) {
  mbSac x, y;
  small_agent(&x, 4, 2, 16, 16, 21);
  small_agent(&y, 4, 2, 16, 16, 21);
  memcpy(y.q_targ, x.q_targ, sizeof(float) * 2 * x.nq);
  int B = 9;
  Batch b;
  batch_make(&b, B, 4, 2);
  for (int step = 0; step < 3; step++) {
    /* the noise x will draw: eps' first, then eps */
    mbRng g = x.rng;
    mbg_normalFill(b.eps2, &g, (size_t)B * 2);
    mbg_normalFill(b.eps, &g, (size_t)B * 2);
    mbSacStats sx, sy;
    CHECK(mbr_sacUpdate(&x, &sx, b.obs, b.act, b.rew, b.obs2, b.done, B) == MB_OK, "update");
    /* y: critic gradient, Adam on the critics and Polyak of their targets */
    mbr_sacGradients(&y, &sy, b.obs, b.act, b.rew, b.obs2, b.done, b.eps2, b.eps, B);
    y.q_opt.t++;
    mbn_adam(y.q_p, y.q_m, y.q_v, y.q_g, 2 * y.nq, &y.q_opt, 0.0f, y.q_targ, y.cfg.tau);
    /* actor gradient with the updated critics, Adam on the policy, temperature */
    float la = y.log_alpha;
    mbr_sacGradients(&y, &sy, b.obs, b.act, b.rew, b.obs2, b.done, b.eps2, b.eps, B);
    y.pi_opt.t++;
    mbn_adam(y.pi_p, y.pi_m, y.pi_v, y.pi_g, y.npi, &y.pi_opt, 0.0f, NULL, 0.0f);
    CHECK(y.log_alpha == la, "gradients changed log_alpha");
    y.alpha_opt.t++;
    mbn_adam(&y.log_alpha, &y.alpha_m, &y.alpha_v, &y.alpha_g, 1, &y.alpha_opt, 0.0f, NULL, 0.0f);
    CHECK(memcmp(x.q_p, y.q_p, sizeof(float) * 2 * x.nq) == 0, "critics differ at step %d", step);
    CHECK(memcmp(x.q_targ, y.q_targ, sizeof(float) * 2 * x.nq) == 0,
          "targets differ at step %d", step);
    CHECK(memcmp(x.pi_p, y.pi_p, sizeof(float) * x.npi) == 0, "policy differs at step %d", step);
    CHECK(x.log_alpha == y.log_alpha, "log_alpha %g vs %g",
          (double)x.log_alpha, (double)y.log_alpha);
    CHECK(sx.actor_loss == sy.actor_loss, "actor loss %g vs %g", sx.actor_loss, sy.actor_loss);
  }
  CHECK(x.updates == 3 && x.q_opt.t == 3 && x.pi_opt.t == 3 && x.alpha_opt.t == 3,
        "counters %lld %lld %lld %lld", (long long)x.updates, (long long)x.q_opt.t,
        (long long)x.pi_opt.t, (long long)x.alpha_opt.t);
  batch_free(&b);
  mbr_sacFree(&x);
  mbr_sacFree(&y);
}

/* fixed temperature: log_alpha never moves */
/* the statistics as an array: v[i] is the field named mbr_sacStatNames[i] (the bindings push
   and read them by these names) */
static void test_stat_names(void) {
  mbSacStats st;
  const double *field[] = {&st.q1_loss, &st.q2_loss, &st.critic_loss, &st.actor_loss,
    &st.alpha_loss, &st.alpha, &st.q_mean, &st.q_pi, &st.target_mean, &st.entropy};
  const char *name[] = {"q1_loss", "q2_loss", "critic_loss", "actor_loss", "alpha_loss",
    "alpha", "q_mean", "q_pi", "target_mean", "entropy"};
  CHECK(sizeof field / sizeof *field == MB_SAC_NSTATS, "%d statistics", MB_SAC_NSTATS);
  for (int i = 0; i < MB_SAC_NSTATS; i++)
    CHECK(field[i] == &st.v[i] && strcmp(mbr_sacStatNames[i], name[i]) == 0,
          "statistic %d: name %s, expected %s", i, mbr_sacStatNames[i], name[i]);
}

static void test_fixed_alpha(void) {
  mbSacConfig c;
  mbr_sacDefaults(&c, 3, 1);
  c.hidden[0] = c.hidden[1] = 8;
  c.auto_alpha = 0;
  c.init_alpha = 0.2f;
  mbSac s;
  CHECK(mbr_sacInit(&s, &c) == MB_OK, "init");
  Batch b;
  batch_make(&b, 5, 3, 1);
  for (int i = 0; i < 4; i++) mbr_sacUpdate(&s, NULL, b.obs, b.act, b.rew, b.obs2, b.done, 5);
  CHECK(s.log_alpha == logf(0.2f), "alpha moved to %g", exp(s.log_alpha));
  batch_free(&b);
  mbr_sacFree(&s);
}

/* Stable tanh correction ------------------------------------------------------------------- */

static void test_logtanh(void) {
  double worst = 0;
  for (int i = -400; i <= 400; i++) {
    float u = 0.0125f * i;  /* |u| <= 5: the naive double formula is accurate */
    double t = tanh((double)u), ref = log(1 - t * t);
    double e = fabs(mbr_logOneMinusTanh2(u) - ref);
    if (e > worst) worst = e;
  }
  CHECK(worst < 1e-5, "log(1 - tanh^2) error %g", worst);
  /* far out: finite and on the asymptote 2 log 2 - 2|u| (relative 1e-6) */
  const float big[] = {20.0f, 50.0f, 1e3f, 1e6f, -20.0f, -50.0f, -1e3f, -1e6f};
  for (int i = 0; i < 8; i++) {
    float v = mbr_logOneMinusTanh2(big[i]);
    CHECK(isfinite(v), "u = %g gives %g", (double)big[i], (double)v);
    CHECK_NEAR(v, 2 * log(2.0) - 2 * fabs((double)big[i]), 1e-6);
  }
}

/* saturated tanh: policy means of +-200 give finite log-probabilities, losses and gradients */
static void test_saturated(void) {
  mbSac s;
  small_agent(&s, 3, 2, 8, 8, 41);
  float *bias = s.pi_p + s.pi.boff[s.pi.nlayers - 1];
  bias[0] = 200.0f;
  bias[1] = -200.0f;
  Batch b;
  batch_make(&b, 6, 3, 2);
  mbSacStats st;
  mbr_sacGradients(&s, &st, b.obs, b.act, b.rew, b.obs2, b.done, b.eps2, b.eps, 6);
  CHECK(isfinite(st.entropy) && isfinite(st.actor_loss) && isfinite(st.q1_loss),
        "entropy %g actor %g critic %g", st.entropy, st.actor_loss, st.q1_loss);
  CHECK(st.entropy < -500, "entropy %g: the correction 2|u| is missing", st.entropy);
  int bad = 0;
  for (size_t i = 0; i < s.npi; i++) bad += !isfinite(s.pi_g[i]);
  CHECK(bad == 0, "%d non-finite policy gradients", bad);
  batch_free(&b);
  mbr_sacFree(&s);
}

/* Acting ---------------------------------------------------------------------------------- */

static void test_act(void) {
  mbSac s;
  small_agent(&s, 5, 3, 16, 16, 31);
  int N = 1300; /* three chunks of the batched path */
  float *obs = malloc(sizeof(float) * N * 5), *out = malloc(sizeof(float) * N * 3);
  float *one = malloc(sizeof(float) * 3), *eps = malloc(sizeof(float) * N * 3);
  randfill(obs, (size_t)N * 5, 2.0f);
  double *pd = todouble(s.pi_p, (int)s.npi), *od = todouble(obs, N * 5);
  double *o = malloc(sizeof(double) * N * 6);
  ref_mlp(o, &s.pi, pd, od, N);
  for (int threads = 1; threads <= 2; threads++) {
    mbu_setThreads(threads);
    /* deterministic: tanh(mean), batched = row by row = reference */
    CHECK(mbr_sacAct(&s, out, obs, N, 1, NULL) == MB_OK, "act");
    double worst = 0;
    double rowdiff = 0;
    for (int i = 0; i < N; i++) {
      for (int j = 0; j < 3; j++) worst = fmax(worst, fabs(out[i * 3 + j] - tanh(o[i * 6 + j])));
      if (i % 97 == 0) { /* one row alone (BLAS may take another path: not bit-equal) */
        mbr_sacAct(&s, one, obs + i * 5, 1, 1, NULL);
        for (int j = 0; j < 3; j++) rowdiff = fmax(rowdiff, fabs(one[j] - out[i * 3 + j]));
      }
    }
    CHECK(worst < 1e-5, "deterministic act error %g", worst);
    CHECK(rowdiff < 1e-6, "batched and single-row act differ by %g", rowdiff);
    /* stochastic with a given generator: tanh(mean + std * eps), eps from that generator */
    mbRng g, g2;
    mbg_seed(&g, 99, 3);
    g2 = g;
    mbRng own = s.rng;
    CHECK(mbr_sacAct(&s, out, obs, N, 0, &g) == MB_OK, "act");
    CHECK(memcmp(&own, &s.rng, sizeof own) == 0, "act with a generator used the agent's");
    mbg_normalFill(eps, &g2, (size_t)N * 3);
    CHECK(memcmp(&g, &g2, sizeof g) == 0, "act drew a different number of normals");
    worst = 0;
    for (int i = 0; i < N; i++)
      for (int j = 0; j < 3; j++) {
        double ls = fmin(fmax(o[i * 6 + 3 + j], -20), 2);
        worst = fmax(worst, fabs(out[i * 3 + j] - tanh(o[i * 6 + j] + exp(ls) * eps[i * 3 + j])));
      }
    CHECK(worst < 1e-5, "stochastic act error %g", worst);
    /* no generator: the agent's own advances */
    mbr_sacAct(&s, out, obs, 2, 0, NULL);
    CHECK(memcmp(&own, &s.rng, sizeof own) != 0, "act without a generator left the agent's");
  }
  /* the same actions bit for bit at 1 and 2 threads, for one chunk and for several */
  for (int rows = 300; rows <= N; rows += N - 300) {
    float *o1 = malloc(sizeof(float) * rows * 3), *o2 = malloc(sizeof(float) * rows * 3);
    mbRng g1, g2;
    mbg_seed(&g1, 5, 0);
    g2 = g1;
    mbu_setThreads(1);
    mbr_sacAct(&s, o1, obs, rows, 0, &g1);
    mbu_setThreads(2);
    mbr_sacAct(&s, o2, obs, rows, 0, &g2);
    CHECK(memcmp(o1, o2, sizeof(float) * rows * 3) == 0, "%d rows: 1 and 2 threads differ", rows);
    free(o1);
    free(o2);
  }
  mbu_setThreads(1);
  CHECK(mbr_sacAct(&s, out, obs, 0, 1, NULL) == MB_ERR, "0 rows accepted");
  free(obs); free(out); free(one); free(eps); free(pd); free(od); free(o);
  mbr_sacFree(&s);
}

/* Determinism ------------------------------------------------------------------------------- */

/* runs n updates of a fresh agent on fixed random batches with the given thread count;
   returns the agent (caller frees) */
static void run_updates(mbSac *s, int threads, int n) {
  mbu_setThreads(threads);
  mbSacConfig c;
  mbr_sacDefaults(&c, 6, 2);
  c.hidden[0] = 32;
  c.hidden[1] = 24;
  c.batch = 33;
  c.seed = 5;
  mbr_sacInit(s, &c);
  mbRng save = rng;
  mbg_seed(&rng, 1234, 0);
  Batch b;
  batch_make(&b, 33, 6, 2);
  for (int i = 0; i < n; i++) mbr_sacUpdate(s, NULL, b.obs, b.act, b.rew, b.obs2, b.done, 33);
  batch_free(&b);
  rng = save;
  mbu_setThreads(1);
}

static void test_determinism(void) {
  mbSac a, b, c;
  run_updates(&a, 1, 6);
  run_updates(&b, 1, 6);
  run_updates(&c, 2, 6);
  CHECK(memcmp(a.pi_p, b.pi_p, sizeof(float) * a.npi) == 0, "same seed, different policy");
  CHECK(memcmp(a.q_p, b.q_p, sizeof(float) * 2 * a.nq) == 0, "same seed, different critics");
  CHECK(memcmp(a.pi_p, c.pi_p, sizeof(float) * a.npi) == 0, "1 vs 2 threads: policy differs");
  CHECK(memcmp(a.q_targ, c.q_targ, sizeof(float) * 2 * a.nq) == 0,
        "1 vs 2 threads: targets differ");
  CHECK(a.log_alpha == c.log_alpha, "1 vs 2 threads: temperature differs");
  CHECK(memcmp(&a.rng, &c.rng, sizeof a.rng) == 0, "1 vs 2 threads: generator differs");
  mbr_sacFree(&a);
  mbr_sacFree(&b);
  mbr_sacFree(&c);
}

/* bf16 ----------------------------------------------------------------------------------- */

/* relative distance |a - b| / |b| of two vectors (2-norms) */
static double reldist(const float *a, const float *b, size_t n) {
  double d = 0, nb = 0;
  for (size_t i = 0; i < n; i++) {
    d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    nb += (double)b[i] * b[i];
  }
  return sqrt(d / (nb + 1e-300));
}

/* the bf16 update's gradients and losses against fp32 on the same agent, batch and noise, at
   the reference sizes (hidden 256: the products that run in bf16). Bound (stated): each
   gradient slab within 3e-2 of fp32 in relative 2-norm and the losses within 1e-2 relative
   (bf16 operands carry 2^-8 relative error; measured about 4e-3 for the slabs) */
static void test_bf16_gradients(void) {
  if (mbn_bf16Check(NULL, 0) < 0) {
    printf("  (no native bf16 here: %s)\n", mbu_lasterror());
    return;
  }
  int B = 256, O = 11, A = 3;
  mbSacConfig c;
  mbr_sacDefaults(&c, O, A);
  c.seed = 9;
  mbSac f, h;
  CHECK(mbr_sacInit(&f, &c) == MB_OK, "fp32 init");
  c.prec = MB_BF16;
  CHECK(mbr_sacInit(&h, &c) == MB_OK, "bf16 init: %s", mbu_lasterror());
  Batch b;
  batch_make(&b, B, O, A);
  mbSacStats sf, sh;
  mbr_sacGradients(&f, &sf, b.obs, b.act, b.rew, b.obs2, b.done, b.eps2, b.eps, B);
  mbr_sacGradients(&h, &sh, b.obs, b.act, b.rew, b.obs2, b.done, b.eps2, b.eps, B);
  double dq = reldist(h.q_g, f.q_g, 2 * f.nq), dp = reldist(h.pi_g, f.pi_g, f.npi);
  CHECK(dq <= 3e-2, "critic gradients differ by %g", dq);
  CHECK(dp <= 3e-2, "policy gradients differ by %g", dp);
  CHECK(dq > 0 && dp > 0, "bf16 really used (%g, %g)", dq, dp);
  CHECK_NEAR(sh.q1_loss, sf.q1_loss, 1e-2);
  CHECK_NEAR(sh.actor_loss, sf.actor_loss, 1e-2);
  CHECK_NEAR(h.alpha_g, f.alpha_g, 1e-2);
  /* deterministic, and the same bits at 1 and 2 threads */
  mbSac h2;
  mbr_sacInit(&h2, &c);
  mbu_setThreads(2);
  for (int i = 0; i < 3; i++) {
    mbr_sacUpdate(&h2, NULL, b.obs, b.act, b.rew, b.obs2, b.done, B);
  }
  mbu_setThreads(1);
  for (int i = 0; i < 3; i++) mbr_sacUpdate(&h, NULL, b.obs, b.act, b.rew, b.obs2, b.done, B);
  /* h had one mbr_sacGradients call (no parameter change, no noise draw): same state */
  CHECK(memcmp(h.pi_p, h2.pi_p, sizeof(float) * h.npi) == 0, "bf16: 1 vs 2 threads, policy");
  CHECK(memcmp(h.q_p, h2.q_p, sizeof(float) * 2 * h.nq) == 0, "bf16: 1 vs 2 threads, critics");
  CHECK(h.log_alpha == h2.log_alpha, "bf16: 1 vs 2 threads, temperature");
  printf("  bf16 vs fp32 gradients: critics %.2e, policy %.2e\n", dq, dp);
  batch_free(&b);
  mbr_sacFree(&f);
  mbr_sacFree(&h);
  mbr_sacFree(&h2);
}

/* Bad input -------------------------------------------------------------------------------- */

static void test_config_errors(void) {
  struct { const char *what, *msg; } cases[] = {
    /* the message of the bindings' option reader, from the same field table */
    {"obs", "sac: obs must be an integer in [1, 1048576], got 0"},
    {"act", "sac: act must be an integer in [1, 1048576], got -1"},
    {"nhidden", "sac: hidden must be a list of 1 to 7 integers, got 0 values"},
    {"width", "sac: hidden[2] must be an integer in [1, 65536], got 0"},
    {"lr", "sac: critic_lr must be a number > 0, got -0.001"},
    {"gamma", "sac: gamma must be a number in [0, 1], got 1.5"},
    {"tau", "sac: tau must be a number in (0, 1], got nan"},
    {"alpha", "sac: init_alpha must be a number > 0, got 0"},
    {"batch", "sac: batch must be an integer in [1, 16777216], got 0"},
    {"entropy", "sac: target_entropy must be a finite number, got inf"},
    {"precision", "sac: precision must be one of fp32, bf16, got 5"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mbSacConfig c;
    mbr_sacDefaults(&c, 4, 2);
    switch (i) {
      case 0: c.obs = 0; break;
      case 1: c.act = -1; break;
      case 2: c.nhidden = 0; break;
      case 3: c.hidden[1] = 0; break;
      case 4: c.critic_lr = -1e-3f; break;
      case 5: c.gamma = 1.5f; break;
      case 6: c.tau = NAN; break;
      case 7: c.init_alpha = 0; break;
      case 8: c.batch = 0; break;
      case 9: c.target_entropy = INFINITY; break;
      case 10: c.precision = (mbPrecision)5; break;
    }
    mbSac s;
    CHECK(mbr_sacInit(&s, &c) == MB_ERR, "bad %s accepted", cases[i].what);
    CHECK(strcmp(mbu_lasterror(), cases[i].msg) == 0, "bad %s: message '%s'", cases[i].what,
          mbu_lasterror());
    mbr_sacFree(&s); /* safe after a failed init */
  }
  mbSac s;
  small_agent(&s, 3, 1, 8, 8, 1);
  Batch b;
  batch_make(&b, 4, 3, 1);
  CHECK(mbr_sacUpdate(&s, NULL, b.obs, b.act, b.rew, b.obs2, b.done, 0) == MB_ERR, "B = 0");
  CHECK(strstr(mbu_lasterror(), "batch of 0 rows") != NULL, "message '%s'", mbu_lasterror());
  batch_free(&b);
  mbr_sacFree(&s);
}

/* non-finite data: the update runs and reports non-finite losses; larger batches than
   configured grow the workspaces */
static void test_nonfinite_and_growth(void) {
  mbSac s;
  small_agent(&s, 3, 2, 8, 8, 3);
  Batch b;
  batch_make(&b, 20, 3, 2); /* configured batch is 8: grows */
  mbSacStats st;
  CHECK(mbr_sacUpdate(&s, &st, b.obs, b.act, b.rew, b.obs2, b.done, 20) == MB_OK, "grow");
  CHECK(s.cap >= 20, "workspace rows %d", s.cap);
  CHECK(isfinite(st.q1_loss) && isfinite(st.actor_loss), "finite batch gave %g %g", st.q1_loss,
        st.actor_loss);
  b.rew[3] = NAN;
  CHECK(mbr_sacUpdate(&s, &st, b.obs, b.act, b.rew, b.obs2, b.done, 20) == MB_OK, "NaN batch");
  CHECK(isnan(st.q1_loss) && isnan(st.q2_loss), "NaN reward gave losses %g %g", st.q1_loss,
        st.q2_loss);
  b.rew[3] = 0;
  b.obs[0] = INFINITY;
  CHECK(mbr_sacUpdate(&s, &st, b.obs, b.act, b.rew, b.obs2, b.done, 20) == MB_OK, "inf batch");
  CHECK(!isfinite(st.q1_loss), "inf observation gave a finite loss %g", st.q1_loss);
  batch_free(&b);
  mbr_sacFree(&s);
}

/* FLOP count against the closed form for two hidden layers of width h */
static void test_flops(void) {
  mbSac s;
  mbSacConfig c;
  mbr_sacDefaults(&c, 11, 3);
  CHECK(mbr_sacInit(&s, &c) == MB_OK, "init");
  double h = 256, O = 11, A = 3, B = 256, I = O + A;
  double fq = I * h + h * h + h, fp = O * h + h * h + h * 2 * A;
  double want = 2 * B * (2 * fp + 6 * fq             /* forwards */
                         + 2 * (fq + h * h + h)      /* critic backward: dW all, dx above 0 */
                         + (h * h + h + A * h)       /* action gradient over B rows */
                         + (fp + h * h + h * 2 * A));/* policy backward */
  CHECK_NEAR(mbr_sacUpdateFlops(&s, 256), want, 1e-12);
  mbr_sacFree(&s);
}

int main(void) {
  mbg_seed(&rng, 2024, 7);
  RUN(test_logtanh);
  RUN(test_gradients);
  RUN(test_gradients_clipped);
  RUN(test_update_order);
  RUN(test_stat_names);
  RUN(test_fixed_alpha);
  RUN(test_saturated);
  RUN(test_act);
  RUN(test_determinism);
  RUN(test_bf16_gradients);
  RUN(test_config_errors);
  RUN(test_nonfinite_and_growth);
  RUN(test_flops);
  return TEST_REPORT();
}
