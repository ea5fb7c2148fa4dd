/* Soft Actor-Critic: agent construction, the fused update, batched acting.
   The update runs in four parallel sections of two tasks each (mbu_parallelFor), so the two
   cores of the target machine share the work with a split that does not depend on the
   thread count (one thread runs task 0 then task 1: the same arithmetic, the same bits):
     1. task 0: policy forward on s' (a' for the targets), both target critics on (s', a')
        task 1: policy forward on s (the actor step's a~), both critics on the batch's (s, a)
     2. task k: targets y, critic k loss gradient and backward, Adam and Polyak of critic k,
                critic k forward on (s, a~) with its updated parameters
     3. task k: rows of half k: min(Q1, Q2), d(-min Q)/da~ through the chosen critic only
                (input gradient, no critic parameter gradient, only the rows it won),
                the tanh-Gaussian chain rule, policy backward into its own gradient slab
     4. task k: half k of the policy parameters: sum of the two gradient slabs, Adam
   then, serially, the temperature loss and its Adam step. Each task does about the same
   number of large products (3, 3, 1.5 and none of 256x256x256 for batch 256). */
#include "mbpo/sac.h"
#include "mbpo/core.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define LOG_SQRT_2PI 0.91893853320467274f
#define ACT_CHUNK 512   /* rows per task of a batched act */

const mbField mbr_sacFields[] = {MB_SAC_FIELDS(mbSacConfig) MB_F_END};
const char *const mbr_sacStatNames[MB_SAC_NSTATS] = {"q1_loss", "q2_loss", "critic_loss",
  "actor_loss", "alpha_loss", "alpha", "q_mean", "q_pi", "target_mean", "entropy"};

void mbr_sacDefaults(mbSacConfig *c, int obs, int act) {
  memset(c, 0, sizeof *c);
  mbu_fieldDefaults(c, mbr_sacFields);
  c->obs = obs;
  c->act = act;
}

/* softplus(x) = log(1 + e^x) without overflow */
static inline float softplusf(float x) { return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))); }

float mbr_logOneMinusTanh2(float u) {
  return 2.0f * (0.69314718055994531f - u - softplusf(-2.0f * u));
}

/* Construction ---------------------------------------------------------------------- */

/* the ranges of MB_SAC_FIELDS, then whether bf16 runs here */
static int check_config(const mbSacConfig *c) {
  if (mbu_fieldCheck(c, mbr_sacFields, "sac") < 0) return MB_ERR;
  if (c->prec == MB_BF16 && mbn_bf16Check(NULL, 0) < 0) return MB_ERR;
  return MB_OK;
}

/* floats rounded up to a 64-byte line, so every array of a slab starts aligned */
static size_t line(size_t n) { return (n + 15) & ~(size_t)15; }

static int grow_update_ws(mbSac *s, int B);

int mbr_sacInit(mbSac *s, const mbSacConfig *c) {
  memset(s, 0, sizeof *s);
  if (check_config(c) < 0) return MB_ERR;
  s->cfg = *c;
  int sizes[MB_MLP_MAXLAYERS + 1], L = c->nhidden + 1;
  sizes[0] = c->obs;
  for (int l = 0; l < c->nhidden; l++) sizes[l + 1] = c->hidden[l];
  sizes[L] = 2 * c->act;
  if (mbn_mlpInit(&s->pi, L, sizes, MB_ACT_RELU) < 0) return MB_ERR;
  sizes[0] = c->obs + c->act;
  sizes[L] = 1;
  if (mbn_mlpInit(&s->q, L, sizes, MB_ACT_RELU) < 0) return MB_ERR;
  /* bf16: the products of every layer wide enough (mbn_gemm); the first layers (11..35
     input columns) and the critics' one-unit output stay fp32 by size */
  s->pi.prec = s->q.prec = c->prec;
  s->npi = s->pi.nparams;
  s->nq = s->q.nparams;
  /* one slab: pi p, m, v, g; then q p, targ, m, v, g (each critic pair [2 nq]) */
  size_t np = line(s->npi), nq2 = line(2 * s->nq);
  s->slab = mbu_alignedAlloc(sizeof(float) * (4 * np + 5 * nq2));
  if (!s->slab) return MB_ERR;
  memset(s->slab, 0, sizeof(float) * (4 * np + 5 * nq2));
  float *p = s->slab;
  s->pi_p = p; p += np;
  s->pi_m = p; p += np;
  s->pi_v = p; p += np;
  s->pi_g = p; p += np;
  s->q_p = p; p += nq2;
  s->q_targ = p; p += nq2;
  s->q_m = p; p += nq2;
  s->q_v = p; p += nq2;
  s->q_g = p;
  /* weights: policy, critic 1, critic 2 from one generator; it then drives the updates */
  mbg_seed(&s->rng, c->seed, 0);
  mbn_mlpInitUniform(s->pi_p, &s->pi, &s->rng);
  mbn_mlpInitUniform(s->q_p, &s->q, &s->rng);
  mbn_mlpInitUniform(s->q_p + s->nq, &s->q, &s->rng);
  memcpy(s->q_targ, s->q_p, sizeof(float) * 2 * s->nq);
  mbn_adamDefaults(&s->pi_opt, c->actor_lr);
  mbn_adamDefaults(&s->q_opt, c->critic_lr);
  mbn_adamDefaults(&s->alpha_opt, c->alpha_lr);
  s->log_alpha = logf(c->init_alpha);
  if (grow_update_ws(s, c->batch) < 0) {
    mbr_sacFree(s);
    return MB_ERR;
  }
  if (c->prec == MB_BF16) {
    s->img = mbu_alignedAlloc(sizeof(uint16_t) * (line(s->npi) + 2 * s->nq));
    if (!s->img) {
      mbr_sacFree(s);
      return MB_ERR;
    }
  }
  return MB_OK;
}

/* bf16 weight images ---------------------------------------------------------------------
   In bf16 every product on the policy's or a critic's weights would round them to bf16
   again (17 roundings of a 256 x 256 layer per update at two hidden layers). Instead, for
   the duration of one update call the images of the policy and the critics are attached
   (mbn_bf16Attach), and each Adam step refreshes the image of what it changed, in the same
   task: the policy's at the end of section 4, critic k's in section 2 before its forward on
   (s, a~). The target critics change once per update and are used once: no image. Detached
   before returning, so that anything a caller does to the weights between calls (load_state,
   a tensor view) is seen by the next call. */
static int images_attach(mbSac *s) {
  if (!s->img) return 0;
  uint16_t *ipi = s->img, *iq = s->img + line(s->npi);
  mbn_bf16Image(ipi, s->pi_p, s->npi);
  mbn_bf16Image(iq, s->q_p, 2 * s->nq);
  if (mbn_bf16Attach(s->pi_p, ipi, s->npi) < 0) return MB_ERR;
  if (mbn_bf16Attach(s->q_p, iq, 2 * s->nq) < 0) {
    mbn_bf16Detach(s->pi_p);
    return MB_ERR;
  }
  return 1;
}

static void images_detach(mbSac *s) {
  if (!s->img) return;
  mbn_bf16Detach(s->pi_p);
  mbn_bf16Detach(s->q_p);
}

void mbr_sacFree(mbSac *s) {
  mbu_free(s->slab);
  mbu_free(s->ws);
  mbu_free(s->act_ws);
  mbu_free(s->batch_ws);
  mbu_free(s->img);
  memset(s, 0, sizeof *s);
}

/* Update workspace -------------------------------------------------------------------- */

/* Pointers into s->ws for a batch of B <= s->cap rows (the layout depends on B). */
typedef struct Work {
  int B, r0[2], n[2];           /* rows; the two row halves: first row and count */
  float *xq, *x2, *xn;          /* [B x (obs+act)]: (s, a), (s', a'), (s, a~) */
  float *eps2, *eps;            /* [B x act] noise of a' and a~ */
  float *wsP2, *wsPa[2];        /* policy forward workspaces: s' [B], s halves [n_k] */
  float *wsQ[2], *wsT[2], *wsN[2]; /* critic k forward on xq, target k on x2, critic k on xn */
  float *logp2, *logp;          /* [B] log-probabilities of a' and a~ */
  float *se;                    /* [B x act] std * eps of a~ (du / dlogstd) */
  float *dq[2];                 /* [B] critic k output gradient */
  float *scr[2];                /* backward scratch of task k */
  float *dzA[2], *dzB[2];       /* task k: compacted hidden gradients [n_k x widest] */
  float *ga[2];                 /* task k: compacted action gradient [n_k x act] */
  float *dA[2];                 /* task k: d loss / d a~ of its rows [n_k x act] */
  float *dout[2];               /* task k: policy output gradient [n_k x 2 act] */
  float *gpi1;                  /* [npi] policy gradient of task 1 (task 0 uses s->pi_g) */
  int *idx[2];                  /* task k: row lists of its half, critic 1 rows then 2 */
} Work;

typedef struct Carve { char *base; size_t off; } Carve;

static void *carve(Carve *c, size_t bytes) {
  void *p = c->base ? c->base + c->off : NULL;
  c->off += (bytes + 63) & ~(size_t)63;
  return p;
}

static int widest(const mbMlp *m) {
  int w = 0;
  for (int l = 0; l <= m->nlayers; l++) if (m->sizes[l] > w) w = m->sizes[l];
  return w;
}

/* lays out a workspace for B rows over base (NULL: only measures); returns its bytes */
static size_t layout(Work *w, const mbSac *s, char *base, int B) {
  Carve c = {base, 0};
  const size_t F = sizeof(float);
  size_t A = (size_t)s->cfg.act, inq = (size_t)(s->cfg.obs + s->cfg.act);
  int h0 = (B + 1) / 2;
  w->B = B;
  w->r0[0] = 0; w->n[0] = h0;
  w->r0[1] = h0; w->n[1] = B - h0;
  size_t wq = mbn_mlpWorkspace(&s->q, B), wp = mbn_mlpWorkspace(&s->pi, B);
  size_t wph = mbn_mlpWorkspace(&s->pi, h0);
  size_t sq = mbn_mlpScratch(&s->q, B), sp = mbn_mlpScratch(&s->pi, h0);
  size_t wide = (size_t)(widest(&s->q) > widest(&s->pi) ? widest(&s->q) : widest(&s->pi));
  w->xq = carve(&c, F * B * inq);
  w->x2 = carve(&c, F * B * inq);
  w->xn = carve(&c, F * B * inq);
  w->eps2 = carve(&c, F * B * A);
  w->eps = carve(&c, F * B * A);
  w->wsP2 = carve(&c, F * wp);
  w->logp2 = carve(&c, F * B);
  w->logp = carve(&c, F * B);
  w->se = carve(&c, F * B * A);
  w->gpi1 = carve(&c, F * s->npi);
  for (int k = 0; k < 2; k++) {
    w->wsPa[k] = carve(&c, F * wph);
    w->wsQ[k] = carve(&c, F * wq);
    w->wsT[k] = carve(&c, F * wq);
    w->wsN[k] = carve(&c, F * wq);
    w->dq[k] = carve(&c, F * B);
    w->scr[k] = carve(&c, F * (sq > sp ? sq : sp));
    w->dzA[k] = carve(&c, F * h0 * wide);
    w->dzB[k] = carve(&c, F * h0 * wide);
    w->ga[k] = carve(&c, F * h0 * A);
    w->dA[k] = carve(&c, F * h0 * A);
    w->dout[k] = carve(&c, F * h0 * 2 * A);
    w->idx[k] = carve(&c, sizeof(int) * h0);
  }
  return c.off;
}

static int grow_update_ws(mbSac *s, int B) {
  if (B <= s->cap && s->ws) return MB_OK;
  Work w;
  size_t bytes = layout(&w, s, NULL, B);
  float *ws = mbu_alignedAlloc(bytes);
  if (!ws) return MB_ERR;
  mbu_free(s->ws);
  s->ws = ws;
  s->ws_floats = bytes / sizeof(float);
  s->cap = B;
  return MB_OK;
}

/* Policy head --------------------------------------------------------------------------- */

/* From the policy output o [n x 2A] and noise eps [n x A]: actions a (row stride lda),
   std * eps into se [n x A] (skipped when NULL) and log pi(a) into logp [n]:
     u = mean + std eps, a = tanh(u),
     log pi = sum_j (-eps_j^2 / 2 - logstd_j - log sqrt(2 pi) - log(1 - tanh(u_j)^2)) */
static void pi_head(float *a, int lda, float *se, float *logp, const float *o, const float *eps,
                    int n, int A) {
  for (int i = 0; i < n; i++) {
    const float *mean = o + (size_t)i * 2 * A, *raw = mean + A, *e = eps + (size_t)i * A;
    float *ai = a + (size_t)i * lda, lp = 0.0f;
    for (int j = 0; j < A; j++) {
      float ls = fminf(fmaxf(raw[j], MB_SAC_LOGSTD_MIN), MB_SAC_LOGSTD_MAX);
      float sde = expf(ls) * e[j], u = mean[j] + sde;
      ai[j] = tanhf(u);
      if (se) se[(size_t)i * A + j] = sde;
      lp += -0.5f * e[j] * e[j] - ls - LOG_SQRT_2PI - mbr_logOneMinusTanh2(u);
    }
    logp[i] = lp;
  }
}

/* The update's sections --------------------------------------------------------------- */

typedef struct Ctx {
  mbSac *s;
  Work w;
  const float *obs, *act, *rew, *obs2, *done;
  float alpha;
  int apply;               /* 1: Adam and Polyak steps; 0: gradients only */
  int images;              /* 1: bf16 images attached, refreshed after each Adam step */
  const float *eps2_in, *eps_in;  /* given noise, or NULL: drawn from rng[0] / rng[1] */
  mbRng rng[2];            /* task 0: s->rng at the start; task 1: past the noise of a' */
  double part[2][8];       /* per-task partial sums (combined serially) */
} Ctx;

enum { P_QLOSS, P_QSUM, P_YSUM, P_MINQ, P_LOGP };

static void sec1(void *vctx, int k) {
  Ctx *c = vctx;
  mbSac *s = c->s;
  Work *w = &c->w;
  int B = w->B, O = s->cfg.obs, A = s->cfg.act, inq = O + A;
  size_t bA = (size_t)B * A;
  /* each task first draws its own noise (task 1 from a generator past the noise of task 0,
     so the values are those of drawing both in turn) and fills its own critic inputs */
  const float *given = k == 0 ? c->eps2_in : c->eps_in;
  float *noise = k == 0 ? w->eps2 : w->eps;
  if (given) memcpy(noise, given, sizeof(float) * bA);
  else mbg_normalFill(noise, &c->rng[k], bA);
  for (int i = 0; i < B; i++) {
    size_t r = (size_t)i * inq;
    if (k == 0) memcpy(w->x2 + r, c->obs2 + (size_t)i * O, sizeof(float) * O);
    else {
      memcpy(w->xq + r, c->obs + (size_t)i * O, sizeof(float) * O);
      memcpy(w->xq + r + O, c->act + (size_t)i * A, sizeof(float) * A);
      memcpy(w->xn + r, c->obs + (size_t)i * O, sizeof(float) * O);
    }
  }
  if (k == 0) { /* a' ~ pi(s') into x2's action columns, then both target critics */
    const float *o = mbn_mlpForward(w->wsP2, &s->pi, s->pi_p, c->obs2, B);
    pi_head(w->x2 + O, inq, NULL, w->logp2, o, w->eps2, B, A);
    for (int j = 0; j < 2; j++)
      mbn_mlpForward(w->wsT[j], &s->q, s->q_targ + (size_t)j * s->nq, w->x2, B);
  } else { /* a~ ~ pi(s) into xn, one forward per row half (the halves of section 3), then
              both critics on the batch's (s, a) */
    for (int h = 0; h < 2; h++) {
      int r0 = w->r0[h], n = w->n[h];
      if (n == 0) continue;
      const float *o = mbn_mlpForward(w->wsPa[h], &s->pi, s->pi_p, c->obs + (size_t)r0 * O, n);
      pi_head(w->xn + (size_t)r0 * inq + O, inq, w->se + (size_t)r0 * A, w->logp + r0, o,
              w->eps + (size_t)r0 * A, n, A);
    }
    for (int j = 0; j < 2; j++)
      mbn_mlpForward(w->wsQ[j], &s->q, s->q_p + (size_t)j * s->nq, w->xq, B);
  }
}

static void sec2(void *vctx, int k) {
  Ctx *c = vctx;
  mbSac *s = c->s;
  Work *w = &c->w;
  int B = w->B;
  size_t nq = s->nq;
  const float *t1 = mbn_mlpOutput(w->wsT[0], &s->q, B), *t2 = mbn_mlpOutput(w->wsT[1], &s->q, B);
  const float *qk = mbn_mlpOutput(w->wsQ[k], &s->q, B);
  const float gamma = s->cfg.gamma, alpha = c->alpha, scale = 2.0f / (float)B;
  double loss = 0, qsum = 0, ysum = 0;
  for (int i = 0; i < B; i++) {
    float y = c->rew[i] + gamma * (1.0f - c->done[i]) * (fminf(t1[i], t2[i]) - alpha * w->logp2[i]);
    float d = qk[i] - y;
    w->dq[k][i] = scale * d;
    loss += (double)d * d;
    qsum += qk[i];
    ysum += y;
  }
  c->part[k][P_QLOSS] = loss / B;
  c->part[k][P_QSUM] = qsum;
  c->part[k][P_YSUM] = ysum;
  float *p = s->q_p + k * nq, *g = s->q_g + k * nq;
  memset(g, 0, sizeof(float) * nq);
  mbn_mlpBackward(NULL, g, w->scr[k], &s->q, p, w->xq, w->wsQ[k], w->dq[k], B);
  if (c->apply) {
    mbn_adam(p, s->q_m + k * nq, s->q_v + k * nq, g, nq, &s->q_opt, 0.0f, s->q_targ + k * nq,
             s->cfg.tau);
    if (c->images) mbn_bf16Image(s->img + line(s->npi) + k * nq, p, nq);
  }
  mbn_mlpForward(w->wsN[k], &s->q, p, w->xn, B);
}

static void sec3(void *vctx, int k) {
  Ctx *c = vctx;
  mbSac *s = c->s;
  Work *w = &c->w;
  int B = w->B, r0 = w->r0[k], n = w->n[k], O = s->cfg.obs, A = s->cfg.act, inq = O + A;
  float *g = k == 0 ? s->pi_g : w->gpi1;
  memset(g, 0, sizeof(float) * s->npi);
  if (n == 0) return;
  const float *qa = mbn_mlpOutput(w->wsN[0], &s->q, B), *qb = mbn_mlpOutput(w->wsN[1], &s->q, B);
  /* min(Q1, Q2) per row: critic 1 rows from the front of idx, critic 2 rows from the back */
  int *idx = w->idx[k], n1 = 0, n2 = 0;
  double minq = 0, lps = 0;
  for (int i = r0; i < r0 + n; i++) {
    if (qa[i] <= qb[i]) { idx[n1++] = i; minq += qa[i]; }
    else { idx[n - 1 - n2++] = i; minq += qb[i]; }
    lps += w->logp[i];
  }
  c->part[k][P_MINQ] = minq;
  c->part[k][P_LOGP] = lps;
  /* d actor_loss / d a~ = -(1/B) dQ/da through the critic that gave the minimum */
  const float dy = -1.0f / (float)B;
  for (int pass = 0; pass < 2; pass++) {
    int m = pass == 0 ? n1 : n2;
    const int *rows = pass == 0 ? idx : idx + n1;
    if (m == 0) continue;
    mbn_mlpInputGradRows(w->ga[k], w->dzA[k], w->dzB[k], &s->q, s->q_p + (size_t)pass * s->nq,
                             w->wsN[pass], B, rows, m, dy, O, A);
    for (int i = 0; i < m; i++)
      memcpy(w->dA[k] + (size_t)(rows[i] - r0) * A, w->ga[k] + (size_t)i * A, sizeof(float) * A);
  }
  /* through tanh and the reparameterisation: d/du = (1 - a^2) dA + (alpha/B) 2a;
     d/dmean = d/du; d/dlogstd = d/du * std eps - alpha/B (0 where the clip is active) */
  const float ab = c->alpha / (float)B;
  const float *o = mbn_mlpOutput(w->wsPa[k], &s->pi, n);
  for (int i = 0; i < n; i++) {
    const float *a = w->xn + (size_t)(r0 + i) * inq + O, *se = w->se + (size_t)(r0 + i) * A;
    const float *raw = o + (size_t)i * 2 * A + A, *dA = w->dA[k] + (size_t)i * A;
    float *dm = w->dout[k] + (size_t)i * 2 * A, *dl = dm + A;
    for (int j = 0; j < A; j++) {
      float du = (1.0f - a[j] * a[j]) * dA[j] + 2.0f * ab * a[j];
      dm[j] = du;
      dl[j] = raw[j] >= MB_SAC_LOGSTD_MIN && raw[j] <= MB_SAC_LOGSTD_MAX ? du * se[j] - ab : 0.0f;
    }
  }
  mbn_mlpBackward(NULL, g, w->scr[k], &s->pi, s->pi_p, c->obs + (size_t)r0 * O, w->wsPa[k],
                  w->dout[k], n);
}

static void sec4(void *vctx, int k) {
  Ctx *c = vctx;
  mbSac *s = c->s;
  size_t half = line(s->npi / 2), lo = k == 0 ? 0 : half, hi = k == 0 ? half : s->npi;
  if (hi > s->npi) hi = s->npi;
  if (lo >= hi) return;
  float *g = s->pi_g;
  const float *g1 = c->w.gpi1;
  for (size_t i = lo; i < hi; i++) g[i] += g1[i];
  if (c->apply) {
    mbn_adam(s->pi_p + lo, s->pi_m + lo, s->pi_v + lo, g + lo, hi - lo, &s->pi_opt, 0.0f, NULL,
             0.0f);
    if (c->images) mbn_bf16Image(s->img + lo, s->pi_p + lo, hi - lo);
  }
}

/* the update with given noise; apply = 0 computes losses and gradients only */
static int run_update(mbSac *s, mbSacStats *st, const float *obs, const float *act,
                      const float *rew, const float *obs2, const float *done, int B,
                      const float *eps2, const float *eps, int apply, int images) {
  if (B < 1) return mbu_error("sac:update: batch of %d rows", B);
  if (grow_update_ws(s, B) < 0) return MB_ERR;
  Ctx c;
  memset(&c, 0, sizeof c);
  c.s = s;
  layout(&c.w, s, (char *)s->ws, B);
  c.obs = obs; c.act = act; c.rew = rew; c.obs2 = obs2; c.done = done;
  c.apply = apply;
  c.images = images;
  c.alpha = expf(s->log_alpha);
  /* the noise of a' then of a~ from s->rng (or as given), drawn in section 1 */
  c.eps2_in = eps2;
  c.eps_in = eps;
  c.rng[0] = c.rng[1] = s->rng;
  if (!eps2) mbg_skipNormals(&c.rng[1], (size_t)B * s->cfg.act);
  mbu_parallelFor(2, sec1, &c);
  if (!eps) s->rng = c.rng[1];
  else if (!eps2) s->rng = c.rng[0];
  if (apply) s->q_opt.t++;
  mbu_parallelFor(2, sec2, &c);
  mbu_parallelFor(2, sec3, &c);
  if (apply) s->pi_opt.t++;
  mbu_parallelFor(2, sec4, &c);
  /* temperature: d/dlog_alpha of -mean(log_alpha (logpi + target)) */
  double mlogp = (c.part[0][P_LOGP] + c.part[1][P_LOGP]) / B;
  float te = s->cfg.target_entropy, la = s->log_alpha;
  s->alpha_g = -(float)(mlogp + te);
  if (apply && s->cfg.auto_alpha) {
    s->alpha_opt.t++;
    mbn_adam(&s->log_alpha, &s->alpha_m, &s->alpha_v, &s->alpha_g, 1, &s->alpha_opt, 0.0f, NULL,
             0.0f);
  }
  if (apply) s->updates++;
  if (st) {
    double minq = (c.part[0][P_MINQ] + c.part[1][P_MINQ]) / B;
    st->q1_loss = c.part[0][P_QLOSS];
    st->q2_loss = c.part[1][P_QLOSS];
    st->critic_loss = st->q1_loss + st->q2_loss;
    st->actor_loss = c.alpha * mlogp - minq;
    st->alpha_loss = -(double)la * (mlogp + te);
    st->alpha = c.alpha;
    st->q_mean = (c.part[0][P_QSUM] + c.part[1][P_QSUM]) / (2.0 * B);
    st->q_pi = minq;
    st->target_mean = c.part[0][P_YSUM] / B;
    st->entropy = -mlogp;
  }
  return MB_OK;
}

/* run_update between attaching and detaching the bf16 weight images (none in fp32) */
static int run_update_once(mbSac *s, mbSacStats *st, const float *obs, const float *act,
                           const float *rew, const float *obs2, const float *done, int B,
                           const float *eps2, const float *eps, int apply) {
  int images = images_attach(s);
  if (images < 0) return MB_ERR;
  int r = run_update(s, st, obs, act, rew, obs2, done, B, eps2, eps, apply, images);
  images_detach(s);
  return r;
}

int mbr_sacUpdate(mbSac *s, mbSacStats *st, const float *obs, const float *act,
                  const float *reward, const float *next_obs, const float *done, int B) {
  return run_update_once(s, st, obs, act, reward, next_obs, done, B, NULL, NULL, 1);
}

int mbr_sacGradients(mbSac *s, mbSacStats *st, const float *obs, const float *act,
                     const float *reward, const float *next_obs, const float *done,
                     const float *eps_next, const float *eps, int B) {
  if (!eps_next || !eps) return mbu_error("sac:gradients: noise arrays required");
  return run_update_once(s, st, obs, act, reward, next_obs, done, B, eps_next, eps, 0);
}

/* Many updates on sampled batches ------------------------------------------------------- */

int mbr_sacUpdatesMixed(mbSac *s, mbSacSums *sums, mbSacStats *bad, const mbBuffer *real,
                        const mbBuffer *model, mbRng *g, int B, double real_ratio, int n) {
  if (B < 1) return mbu_error("sac:update_mixed: batch of %d rows", B);
  if (n < 0) return mbu_error("sac:update_mixed: %d updates", n);
  int O = s->cfg.obs, A = s->cfg.act;
  if (real->obs != O || real->act != A)
    return mbu_error("sac:update_mixed: buffer rows have obs=%lld act=%lld, the agent obs=%d "
                     "act=%d", (long long)real->obs, (long long)real->act, O, A);
  size_t bo = line((size_t)B * O), ba = line((size_t)B * A), b1 = line((size_t)B);
  if (B > s->batch_cap || !s->batch_ws) {
    float *ws = mbu_alignedAlloc(sizeof(float) * (2 * bo + ba + 2 * b1));
    if (!ws) return MB_ERR;
    mbu_free(s->batch_ws);
    s->batch_ws = ws;
    s->batch_cap = B;
  }
  float *base = s->batch_ws;
  mbBatch batch = {base, base + 2 * bo, base + 2 * bo + ba, base + bo, base + 2 * bo + ba + b1};
  int images = n > 0 ? images_attach(s) : 0;
  if (images < 0) return MB_ERR;
  for (int u = 0; u < n; u++) {
    mbSacStats st;
    if (mbr_bufferSampleMixed(&batch, NULL, real, model, g, B, real_ratio) < 0 ||
        run_update(s, &st, batch.obs, batch.act, batch.reward, batch.next_obs, batch.done, B,
                   NULL, NULL, 1, images) < 0) {
      images_detach(s);
      return MB_ERR;
    }
    if (!isfinite(st.critic_loss) || !isfinite(st.actor_loss)) {
      if (bad) *bad = st;
      images_detach(s);
      return u;
    }
    /* one field at a time, as a Lua loop adding each update's table into its sums */
    for (int i = 0; i < MB_SAC_NSTATS; i++) sums->v[i] += st.v[i];
  }
  images_detach(s);
  return n;
}

/* Acting -------------------------------------------------------------------------------- */

typedef struct ActCtx {
  mbSac *s;
  float *out;
  const float *obs;
  int N, det, ntasks, nchunks;
  size_t wsf;
} ActCtx;

static void act_task(void *vctx, int t) {
  ActCtx *c = vctx;
  mbSac *s = c->s;
  int O = s->cfg.obs, A = s->cfg.act;
  float *ws = s->act_ws + (size_t)t * c->wsf;
  for (int ch = t; ch < c->nchunks; ch += c->ntasks) {
    int r0 = ch * ACT_CHUNK, n = c->N - r0 < ACT_CHUNK ? c->N - r0 : ACT_CHUNK;
    const float *o = mbn_mlpForward(ws, &s->pi, s->pi_p, c->obs + (size_t)r0 * O, n);
    float *a = c->out + (size_t)r0 * A;
    for (int i = 0; i < n; i++) {
      const float *mean = o + (size_t)i * 2 * A, *raw = mean + A;
      float *ai = a + (size_t)i * A;
      if (c->det)
        for (int j = 0; j < A; j++) ai[j] = tanhf(mean[j]);
      else /* ai holds the noise */
        for (int j = 0; j < A; j++) {
          float ls = fminf(fmaxf(raw[j], MB_SAC_LOGSTD_MIN), MB_SAC_LOGSTD_MAX);
          ai[j] = tanhf(mean[j] + expf(ls) * ai[j]);
        }
    }
  }
}

int mbr_sacAct(mbSac *s, float *out, const float *obs, int N, int deterministic, mbRng *g) {
  if (N < 1) return mbu_error("sac:act: %d rows", N);
  int nchunks = (N + ACT_CHUNK - 1) / ACT_CHUNK, T = mbu_threads();
  if (T > nchunks) T = nchunks;
  if (T < 1) T = 1;
  size_t wsf = line(mbn_mlpWorkspace(&s->pi, N < ACT_CHUNK ? N : ACT_CHUNK));
  if (!s->act_ws || T > s->act_nthreads || wsf > s->act_ws_floats) {
    /* grow to at least one full chunk per thread, so later calls do not reallocate */
    size_t full = line(mbn_mlpWorkspace(&s->pi, ACT_CHUNK));
    int nt = T > s->act_nthreads ? T : s->act_nthreads;
    float *ws = mbu_alignedAlloc(sizeof(float) * full * (size_t)nt);
    if (!ws) return MB_ERR;
    mbu_free(s->act_ws);
    s->act_ws = ws;
    s->act_ws_floats = full;
    s->act_nthreads = nt;
  }
  if (!deterministic) mbg_normalFill(out, g ? g : &s->rng, (size_t)N * s->cfg.act);
  ActCtx c = {s, out, obs, N, deterministic, T, nchunks, s->act_ws_floats};
  mbu_parallelFor(T, act_task, &c);
  return MB_OK;
}

/* FLOPs ----------------------------------------------------------------------------------- */

double mbr_sacUpdateFlops(const mbSac *s, int B) {
  const mbMlp *p = &s->pi, *q = &s->q;
  int L = q->nlayers;
  double fq = 0, fp = 0, bq = 0, bp = 0, dq = 0;
  for (int l = 0; l < L; l++) {
    double mq = (double)q->sizes[l] * q->sizes[l + 1], mp = (double)p->sizes[l] * p->sizes[l + 1];
    fq += mq;               /* forward */
    fp += mp;
    bq += mq;               /* dW */
    bp += mp;
    if (l > 0) {            /* dx of the layers above the input */
      bq += mq;
      bp += mp;
      dq += mq;
    }
  }
  dq += (double)s->cfg.act * q->sizes[1]; /* the action columns of the first layer */
  /* 2 policy forwards, 6 critic forwards (2 on (s,a), 2 targets, 2 on (s,a~)),
     2 critic backwards with parameter gradients, B rows of critic input gradient in all,
     1 policy backward */
  return 2.0 * B * (2 * fp + 6 * fq + 2 * bq + dq + bp);
}

/* State descriptor ------------------------------------------------------------------------- */

int mbr_sacStateBlocks(mbStateBlock *b, mbSac *s) {
  mbStateBlock *p = b;
  int64_t npi = (int64_t)s->npi, nq = (int64_t)s->nq;
  /* the sizes a state must share with this agent, as one line: "obs 4, act 1, hidden {16,16}" */
  mbStateBlock *lay = p;
  p = mbu_block(p, "layout", MB_STR, MB_ST_CHECK, NULL, 0, 0, 0);
  int k = snprintf(lay->text, MB_STATE_TEXT, "obs %d, act %d, hidden {", s->cfg.obs, s->cfg.act);
  for (int i = 0; i < s->cfg.nhidden && k > 0 && k < MB_STATE_TEXT; i++)
    k += snprintf(lay->text + k, (size_t)(MB_STATE_TEXT - k), i ? ",%d" : "%d", s->cfg.hidden[i]);
  if (k > 0 && k < MB_STATE_TEXT - 1) strcat(lay->text, "}");
  p = mbu_block(p, "pi", MB_F32, 0, s->pi_p, 1, npi, 0);
  p = mbu_block(p, "pi_m", MB_F32, 0, s->pi_m, 1, npi, 0);
  p = mbu_block(p, "pi_v", MB_F32, 0, s->pi_v, 1, npi, 0);
  p = mbu_block(p, "q", MB_F32, 0, s->q_p, 2, 2, nq);
  p = mbu_block(p, "q_target", MB_F32, 0, s->q_targ, 2, 2, nq);
  p = mbu_block(p, "q_m", MB_F32, 0, s->q_m, 2, 2, nq);
  p = mbu_block(p, "q_v", MB_F32, 0, s->q_v, 2, 2, nq);
  p = mbu_block(p, "pi_t", MB_I64, 0, &s->pi_opt.t, 0, 0, 0);
  p = mbu_block(p, "q_t", MB_I64, 0, &s->q_opt.t, 0, 0, 0);
  p = mbu_block(p, "alpha_t", MB_I64, 0, &s->alpha_opt.t, 0, 0, 0);
  p = mbu_block(p, "updates", MB_I64, 0, &s->updates, 0, 0, 0);
  p = mbu_block(p, "log_alpha", MB_F32, 0, &s->log_alpha, 0, 0, 0);
  p = mbu_block(p, "alpha_m", MB_F32, 0, &s->alpha_m, 0, 0, 0);
  p = mbu_block(p, "alpha_v", MB_F32, 0, &s->alpha_v, 0, 0, 0);
  p = mbg_stateBlocks(p, &s->rng);
  return (int)(p - b);
}
