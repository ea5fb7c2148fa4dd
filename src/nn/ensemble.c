/* The probabilistic dynamics ensemble: creation, one training step, the reference's whole
   training call (fit), prediction and the batched model step of rollouts.

   Memory. The parameters of all members and the two bound vectors are one slab (so are the
   gradients and the Adam moments): member m's MLP at m * nparams in the mbMlp layout, then
   max_logvar [D] and min_logvar [D]. Workspaces live in mbEnsWork; they grow to the largest
   call seen and are reused, so the hot calls (a training step, a model step over 100 000
   rows) allocate nothing once warm.

   Threads. Work is cut into tasks whose definition does not depend on the thread count, and
   every task writes its own outputs; reductions run in task order after the parallel
   section. Results are therefore bit-identical for any thread count (mbu_parallelFor's
   threads run the tasks; OpenBLAS is single-threaded inside them).
   - A training step is two sections of 2 tasks per member (7 members: 14 tasks, 7 per core
     on 2 cores). Section A, task (m, half): half of member m's minibatch rows through gather
     and standardisation, the forward pass, the loss and its gradient, and the chain of input
     gradients down to the first hidden layer; all of this is row-local. Section B, task
     (m, half): the gradients of half of the rows of every weight matrix (a contiguous block)
     and half of every bias, over all minibatch rows, then weight decay and Adam on that
     block. The bound vectors are shared by the members: each task of section A leaves its
     part of their gradient, summed in task order afterwards. At one thread the tasks run
     member by member instead (A then B of each member, see member_sections), the same bits.
   - predict, evaluate and step cut their rows into items of at most CHUNK rows, each
     computed by one member in its worker's workspace. Per-item results are reduced in item
     order, and the noise of a step item comes from a generator seeded by (one draw of the
     caller's generator, item number).
   Tasks and items are handed out on demand (parallel() below), so a core that another
   process slows down takes fewer of them; which worker runs a task never changes its bits. */
#include "mbpo/ensemble.h"
#include "mbpo/core.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#define CHUNK 512     /* rows per forward item in predict / evaluate / step: two [CHUNK x 200]
                         float buffers stay in a 1 MB L2 */
#define ALIGNF 16     /* sub-buffers start on 64-byte boundaries */

/* n floats rounded up to a whole number of 64-byte lines */
static size_t roundf16(size_t n) { return (n + ALIGNF - 1) / ALIGNF * ALIGNF; }

/* One thread's forward workspace for up to CHUNK rows. A forward pass alternates between a
   and b (layer l writes bufs[l & 1]), so no copies are made between layers. */
typedef struct fwdws {
  float *x;          /* [CHUNK x inputs] standardised inputs */
  float *a, *b;      /* [CHUNK x wmax] layer outputs, ping-pong */
  float *y;          /* [CHUNK x D] sample or accumulated mean */
  float *eps;        /* [CHUNK x D] standard normal noise */
} fwdws;

/* A forward item: rows [begin, begin + n) of a row list (or of the input rows when there is
   no list), computed by member m (-1: every elite, the mean mode of a step). */
typedef struct fitem {
  int m, n;
  int64_t begin;
} fitem;

/* Everything an ensemble needs besides its state; grow-only, freed by mbn_ensFree. */
struct mbEnsWork {
  int wmax;                 /* widest layer */
  float *inv_std;           /* [inputs] 1 / in_std, refreshed per call */
  /* training step, for minibatches up to bcap rows per member */
  int bcap;
  float *trainbuf;
  float **X, **Y, **O;      /* [members] -> [bcap x inputs], [bcap x D], [bcap x 2D] */
  float **H, **S;           /* [members x nhidden] -> [bcap x width]: activations, then
                               sigmoids overwritten by the pre-activation gradients */
  float **scratch;          /* [2 members] -> [ceil(bcap / 2) x wmax] */
  float *bgrad;             /* [2 members x 2D (padded)] per-task bound gradient parts */
  double *tloss, *tdecay;   /* [2 members] per-task loss parts */
  int64_t *stepidx;         /* [members x bcap] row numbers for mbn_ensTrainStep */
  uint16_t *buf16;
  uint16_t **H16, **S16, **O16;  /* bf16 roundings of H, S (after the backward pass) and O
                                    (the output gradient), where a bf16 product reads them */
  /* the bf16 image of the members' parameters [members x nparams] (fast path, bf16) */
  uint16_t *img;
  int imglive;              /* attached and current (during a fit) */
  /* forward workspaces, one per thread */
  int nfwd;
  float *fwdbuf;
  fwdws *fwd;
  /* items (predict, evaluate, step) */
  int64_t itemcap;
  fitem *items;
  double *itemsse;          /* [itemcap] evaluate: squared error of each item */
  /* step: rows grouped by member */
  int64_t rowcap;
  int64_t *order;           /* [rowcap] row numbers grouped by member */
  int32_t *choice;          /* [rowcap] member of each row */
  /* fit */
  int64_t permcap, bootcap;
  int64_t *perm, *boot;     /* [N] split permutation; [members x Ntrain] bootstrap rows */
  float *snap;              /* [members x nparams] best weights */
  int histcap;
  double *train_loss, *curve;  /* [histcap], [histcap x members] */
};

/* Config and layout ------------------------------------------------------------------------ */

const mbField mbn_ensFields[] = {MB_ENS_FIELDS(mbEnsembleConfig) MB_F_END};
const mbField mbn_fitFields[] = {MB_FIT_FIELDS(mbFitOptions) MB_F_END};

void mbn_ensDefaults(mbEnsembleConfig *c, int inputs, int outputs) {
  memset(c, 0, sizeof *c);
  mbu_fieldDefaults(c, mbn_ensFields);
  c->inputs = inputs;
  c->outputs = outputs;
}

void mbn_ensDefaultDecay(mbEnsembleConfig *c) {
  const mbField *f = mbu_fieldFind(mbn_ensFields, "weight_decay");
  int last = f->ndefs - 1;
  for (int l = 0; l < c->nhidden; l++) c->weight_decay[l] = (float)f->defs[l < last ? l : last - 1];
  c->weight_decay[c->nhidden] = (float)f->defs[last];
}

/* MB_OK, or MB_ERR with a message naming the field and its value */
/* the ranges of MB_ENS_FIELDS, the two that depend on another field, whether bf16 runs */
static int check_config(const mbEnsembleConfig *c) {
  if (mbu_fieldCheck(c, mbn_ensFields, "ensemble") < 0) return MB_ERR;
  if (c->elites > c->members)
    return mbu_error("ensemble: elites must be an integer in [1, members = %d], got %d",
                     c->members, c->elites);
  if (!(c->max_logvar > c->min_logvar))
    return mbu_error("ensemble: max_logvar must be a number > min_logvar = %g, got %g",
                     (double)c->min_logvar, (double)c->max_logvar);
  if (c->prec == MB_BF16 && mbn_bf16Check(NULL, 0) < 0) return MB_ERR;
  return MB_OK;
}

void mbn_ensFree(mbEnsemble *e) {
  if (!e) return;
  mbEnsWork *w = e->work;
  if (w) {
    mbu_free(w->inv_std);
    mbu_free(w->trainbuf);
    mbu_free(w->X); mbu_free(w->Y); mbu_free(w->O); mbu_free(w->H); mbu_free(w->S);
    mbu_free(w->scratch); mbu_free(w->bgrad); mbu_free(w->tloss); mbu_free(w->tdecay);
    mbu_free(w->stepidx);
    mbu_free(w->buf16); mbu_free(w->H16); mbu_free(w->S16); mbu_free(w->O16);
    if (w->imglive) mbn_bf16Detach(e->params);
    mbu_free(w->img);
    mbu_free(w->fwdbuf); mbu_free(w->fwd);
    mbu_free(w->items); mbu_free(w->itemsse);
    mbu_free(w->order); mbu_free(w->choice);
    mbu_free(w->perm); mbu_free(w->boot); mbu_free(w->snap);
    mbu_free(w->train_loss); mbu_free(w->curve);
    mbu_free(w);
  }
  mbu_free(e->params); mbu_free(e->grads); mbu_free(e->adam_m); mbu_free(e->adam_v);
  mbu_free(e->in_mean); mbu_free(e->in_std); mbu_free(e->elite); mbu_free(e->holdout_mse);
  mbu_free(e);
}

/* n zeroed floats, 64-byte aligned (free with mbu_free) */
static float *zalloc(size_t n) {
  float *p = mbu_alignedAlloc(n * sizeof(float));
  if (p) memset(p, 0, n * sizeof(float));
  return p;
}

int mbn_ensCreate(mbEnsemble **out, const mbEnsembleConfig *c) {
  *out = NULL;
  if (check_config(c) < 0) return MB_ERR;
  mbEnsemble *e = mbu_calloc(1, sizeof *e);
  if (!e) return MB_ERR;
  e->cfg = *c;
  /* one member: inputs -> hidden... -> [mean | raw log-variance] */
  int sizes[MB_MLP_MAXLAYERS + 1];
  sizes[0] = c->inputs;
  for (int i = 0; i < c->nhidden; i++) sizes[i + 1] = c->hidden[i];
  sizes[c->nhidden + 1] = 2 * c->outputs;
  if (mbn_mlpInit(&e->net, c->nhidden + 1, sizes, c->act) < 0) { mbn_ensFree(e); return MB_ERR; }
  e->net.prec = c->prec;  /* bf16: the layers wide enough (mbn_gemm); first and last stay fp32 */
  e->nparams = e->net.nparams;
  e->ntotal = (size_t)c->members * e->nparams + 2 * (size_t)c->outputs;
  /* the state; every allocation checked at once (mbn_ensFree takes partial objects) */
  e->params = zalloc(e->ntotal);
  e->grads = zalloc(e->ntotal);
  e->adam_m = zalloc(e->ntotal);
  e->adam_v = zalloc(e->ntotal);
  e->in_mean = zalloc((size_t)c->inputs);
  e->in_std = zalloc((size_t)c->inputs);
  e->elite = mbu_calloc((size_t)c->elites, sizeof(int));
  e->holdout_mse = zalloc((size_t)c->members);
  e->work = mbu_calloc(1, sizeof(mbEnsWork));
  if (!e->params || !e->grads || !e->adam_m || !e->adam_v || !e->in_mean || !e->in_std ||
      !e->elite || !e->holdout_mse || !e->work) {
    mbn_ensFree(e);
    return MB_ERR;
  }
  e->work->inv_std = zalloc((size_t)c->inputs);
  if (!e->work->inv_std) { mbn_ensFree(e); return MB_ERR; }
  int wmax = 0;
  for (int l = 0; l <= e->net.nlayers; l++) if (sizes[l] > wmax) wmax = sizes[l];
  e->work->wmax = wmax;
  /* the reference initialisation, member by member from one generator */
  mbg_seed(&e->rng, c->seed, 0);
  for (int m = 0; m < c->members; m++)
    mbn_mlpInitTruncNormal(e->params + (size_t)m * e->nparams, &e->net, &e->rng);
  /* the bound vectors at the tail of the slab, then the neutral standardiser, the first
     members as elites, no holdout figures yet */
  e->max_logvar = e->params + (size_t)c->members * e->nparams;
  e->min_logvar = e->max_logvar + c->outputs;
  for (int j = 0; j < c->outputs; j++) {
    e->max_logvar[j] = c->max_logvar;
    e->min_logvar[j] = c->min_logvar;
  }
  for (int k = 0; k < c->inputs; k++) e->in_std[k] = 1.0f;
  for (int i = 0; i < c->elites; i++) e->elite[i] = i;
  for (int m = 0; m < c->members; m++) e->holdout_mse[m] = NAN;
  mbn_adamDefaults(&e->adam, c->lr);
  e->adam.contract = 1;  /* the FMA arithmetic of its recorded runs (mbn_adam) */
  *out = e;
  return MB_OK;
}

void mbn_fitDefaults(mbFitOptions *o, const mbEnsemble *e) {
  const mbEnsembleConfig *c = &e->cfg;
  o->max_epochs = 0;
  o->max_seconds = 0;
  o->patience = c->patience;
  o->batch = c->batch;
  o->holdout_cap = c->holdout_cap;
  o->holdout_ratio = c->holdout_ratio;
  o->improvement = c->improvement;
}

double mbn_ensForwardFlops(const mbEnsemble *e) {
  double f = 0;
  for (int l = 0; l < e->net.nlayers; l++) f += 2.0 * e->net.sizes[l] * e->net.sizes[l + 1];
  return f;
}

double mbn_ensTrainFlops(const mbEnsemble *e, int B) {
  /* forward, weight gradients (same count) and input gradients of every layer but the first */
  double fwd = mbn_ensForwardFlops(e), dx = 0;
  for (int l = 1; l < e->net.nlayers; l++) dx += 2.0 * e->net.sizes[l] * e->net.sizes[l + 1];
  return (2 * fwd + dx) * (double)B * e->cfg.members;
}

/* floats of one member's training buffers for B rows: X, Y, O, then H and S per hidden layer */
static size_t member_floats(const mbEnsembleConfig *c, size_t B) {
  size_t per = roundf16(B * c->inputs) + roundf16(B * c->outputs) + roundf16(B * 2 * c->outputs);
  for (int l = 0; l < c->nhidden; l++) per += 2 * roundf16(B * c->hidden[l]);
  return per;
}

/* 16-bit values of n rounded up to 64 bytes */
static size_t round16(size_t n) { return (n + 31) / 32 * 32; }

/* 16-bit values of one member's bf16 copies for B rows: O16, then H16 and S16 per layer
   (none in fp32) */
static size_t member16(const mbEnsembleConfig *c, size_t B) {
  if (c->prec != MB_BF16) return 0;
  size_t per = round16(B * 2 * c->outputs);
  for (int l = 0; l < c->nhidden; l++) per += 2 * round16(B * c->hidden[l]);
  return per;
}

/* floats of one thread's forward workspace */
static size_t fwd_floats(const mbEnsembleConfig *c, int wmax) {
  return roundf16((size_t)CHUNK * c->inputs) + 2 * roundf16((size_t)CHUNK * wmax) +
         2 * roundf16((size_t)CHUNK * c->outputs);
}

size_t mbn_ensWorkBytes(const mbEnsemble *e) {
  const mbEnsWork *w = e->work;
  const mbEnsembleConfig *c = &e->cfg;
  size_t n = 0;
  if (w->bcap) {
    size_t B = (size_t)w->bcap, half = (B + 1) / 2;
    n += sizeof(float) * (member_floats(c, B) * c->members +
                          2 * (size_t)c->members * roundf16(half * w->wmax));
    n += sizeof(int64_t) * c->members * B;
    n += sizeof(uint16_t) * c->members * member16(c, B);
  }
  if (w->img) n += sizeof(uint16_t) * c->members * e->nparams;
  n += sizeof(float) * (size_t)w->nfwd * fwd_floats(c, w->wmax);
  n += (size_t)w->itemcap * (sizeof(fitem) + sizeof(double));
  n += (size_t)w->rowcap * (sizeof(int64_t) + sizeof(int32_t));
  n += (size_t)(w->permcap + w->bootcap) * sizeof(int64_t);
  if (w->snap) n += (size_t)c->members * e->nparams * sizeof(float);
  n += (size_t)w->histcap * (1 + c->members) * sizeof(double);
  return n;
}

/* Tasks handed out on demand: each of min(n, threads) workers (mbu_parallelFor's threads)
   takes the next task number from a shared counter until none is left, so a core slowed by
   another process simply takes fewer tasks. fn(ctx, task, worker): a task's results must not
   depend on the worker (workers only pick per-worker scratch). With one worker OpenBLAS is
   pinned to one thread as inside mbu_parallelFor, so every sgemm of the ensemble runs
   single-threaded and its bits do not depend on the thread count. */
typedef void (*dyn_task)(void *ctx, int task, int worker);

typedef struct dynrun {
  atomic_int next;
  int n;
  dyn_task fn;
  void *ctx;
} dynrun;

static void dyn_worker(void *vctx, int worker) {
  dynrun *r = vctx;
  for (int i; (i = atomic_fetch_add_explicit(&r->next, 1, memory_order_relaxed)) < r->n;)
    r->fn(r->ctx, i, worker);
}

/* runs fn for tasks 0..n-1 on `workers` workers (at most mbu_threads()) */
static void parallel(int n, int workers, dyn_task fn, void *ctx) {
  if (workers > mbu_threads()) workers = mbu_threads();
  if (workers > n) workers = n;
  if (workers < 1) workers = 1;
  dynrun r = {0, n, fn, ctx};
  atomic_init(&r.next, 0);
  if (workers == 1) {
    if (mbu_threads() > 1) openblas_set_num_threads(1);
    dyn_worker(&r, 0);
    if (mbu_threads() > 1) openblas_set_num_threads(mbu_threads());
  } else {
    mbu_parallelFor(workers, dyn_worker, &r);
  }
}

/* Workspaces (grow only; allocated outside parallel sections) --------------------------- */

/* Training buffers for minibatches of up to B rows per member. One allocation holds, per
   member, X [B x in] (standardised inputs), Y [B x D] (targets), O [B x 2D] (outputs, then
   their gradient), H and S per hidden layer (activations; sigmoids, then pre-activation
   gradients), and one scratch buffer per task for the input gradient of a layer. Nothing is
   kept from one step to the next, so a smaller minibatch reuses the same buffers. */
static int grow_train(mbEnsemble *e, int B) {
  mbEnsWork *w = e->work;
  if (B <= w->bcap) return MB_OK;
  const mbEnsembleConfig *c = &e->cfg;
  int M = c->members, nh = c->nhidden, D = c->outputs, half = (B + 1) / 2;
  size_t per = member_floats(c, (size_t)B);
  size_t total = per * M + 2 * (size_t)M * roundf16((size_t)half * w->wmax);
  float *buf = mbu_alignedAlloc(total * sizeof(float));
  float **X = mbu_calloc((size_t)M, sizeof *X), **Y = mbu_calloc((size_t)M, sizeof *Y);
  float **O = mbu_calloc((size_t)M, sizeof *O);
  float **H = mbu_calloc((size_t)M * (nh ? nh : 1), sizeof *H);
  float **S = mbu_calloc((size_t)M * (nh ? nh : 1), sizeof *S);
  float **scr = mbu_calloc(2 * (size_t)M, sizeof *scr);
  float *bgrad = mbu_alignedAlloc(2 * (size_t)M * roundf16(2 * (size_t)D) * sizeof(float));
  double *tl = mbu_calloc(2 * (size_t)M, sizeof(double));
  double *td = mbu_calloc(2 * (size_t)M, sizeof(double));
  int64_t *idx = mbu_malloc((size_t)M * B * sizeof(int64_t));
  /* the bf16 copies: per member 2D + 2 x hidden values per row (rounded to 32 values) */
  size_t per16 = member16(c, (size_t)B);
  uint16_t *buf16 = mbu_alignedAlloc((per16 ? per16 : 1) * M * sizeof(uint16_t));
  uint16_t **H16 = mbu_calloc((size_t)M * (nh ? nh : 1), sizeof *H16);
  uint16_t **S16 = mbu_calloc((size_t)M * (nh ? nh : 1), sizeof *S16);
  uint16_t **O16 = mbu_calloc((size_t)M, sizeof *O16);
  if (!buf || !X || !Y || !O || !H || !S || !scr || !bgrad || !tl || !td || !idx || !buf16 ||
      !H16 || !S16 || !O16) {
    mbu_free(buf); mbu_free(X); mbu_free(Y); mbu_free(O); mbu_free(H); mbu_free(S);
    mbu_free(scr); mbu_free(bgrad); mbu_free(tl); mbu_free(td); mbu_free(idx);
    mbu_free(buf16); mbu_free(H16); mbu_free(S16); mbu_free(O16);
    return MB_ERR;
  }
  uint16_t *q = buf16;
  for (int m = 0; m < M && per16; m++) {
    O16[m] = q; q += round16((size_t)B * 2 * D);
    for (int l = 0; l < nh; l++) {
      size_t n16 = round16((size_t)B * c->hidden[l]);
      H16[m * nh + l] = q; q += n16;
      S16[m * nh + l] = q; q += n16;
    }
  }
  memset(buf, 0, total * sizeof(float));
  /* carve the block: members first, then the per-task scratch */
  float *p = buf;
  for (int m = 0; m < M; m++) {
    X[m] = p; p += roundf16((size_t)B * c->inputs);
    Y[m] = p; p += roundf16((size_t)B * D);
    O[m] = p; p += roundf16((size_t)B * 2 * D);
    for (int l = 0; l < nh; l++) {
      H[m * nh + l] = p; p += roundf16((size_t)B * c->hidden[l]);
      S[m * nh + l] = p; p += roundf16((size_t)B * c->hidden[l]);
    }
  }
  for (int t = 0; t < 2 * M; t++) { scr[t] = p; p += roundf16((size_t)half * w->wmax); }
  /* the old buffers go only once the new ones exist */
  mbu_free(w->trainbuf); mbu_free(w->X); mbu_free(w->Y); mbu_free(w->O); mbu_free(w->H);
  mbu_free(w->S); mbu_free(w->scratch); mbu_free(w->bgrad); mbu_free(w->tloss);
  mbu_free(w->tdecay); mbu_free(w->stepidx);
  mbu_free(w->buf16); mbu_free(w->H16); mbu_free(w->S16); mbu_free(w->O16);
  w->buf16 = buf16; w->H16 = H16; w->S16 = S16; w->O16 = O16;
  w->trainbuf = buf; w->X = X; w->Y = Y; w->O = O; w->H = H; w->S = S; w->scratch = scr;
  w->bgrad = bgrad; w->tloss = tl; w->tdecay = td; w->stepidx = idx;
  w->bcap = B;
  return MB_OK;
}

/* forward workspaces for n tasks (the thread count of the call) */
static int grow_fwd(mbEnsemble *e, int n) {
  mbEnsWork *w = e->work;
  if (n <= w->nfwd) return MB_OK;
  const mbEnsembleConfig *c = &e->cfg;
  size_t per = fwd_floats(c, w->wmax);
  float *buf = mbu_alignedAlloc(per * n * sizeof(float));
  fwdws *ws = mbu_calloc((size_t)n, sizeof *ws);
  if (!buf || !ws) { mbu_free(buf); mbu_free(ws); return MB_ERR; }
  memset(buf, 0, per * n * sizeof(float));
  for (int t = 0; t < n; t++) {
    float *p = buf + per * t;
    ws[t].x = p; p += roundf16((size_t)CHUNK * c->inputs);
    ws[t].a = p; p += roundf16((size_t)CHUNK * w->wmax);
    ws[t].b = p; p += roundf16((size_t)CHUNK * w->wmax);
    ws[t].y = p; p += roundf16((size_t)CHUNK * c->outputs);
    ws[t].eps = p;
  }
  mbu_free(w->fwdbuf); mbu_free(w->fwd);
  w->fwdbuf = buf; w->fwd = ws; w->nfwd = n;
  return MB_OK;
}

/* room for n items and their per-item results */
static int grow_items(mbEnsemble *e, int64_t n) {
  mbEnsWork *w = e->work;
  if (n <= w->itemcap) return MB_OK;
  fitem *it = mbu_malloc((size_t)n * sizeof *it);
  double *sse = mbu_malloc((size_t)n * sizeof *sse);
  if (!it || !sse) { mbu_free(it); mbu_free(sse); return MB_ERR; }
  mbu_free(w->items); mbu_free(w->itemsse);
  w->items = it; w->itemsse = sse; w->itemcap = n;
  return MB_OK;
}

/* room for the member choice and the grouped order of n step rows */
static int grow_rows(mbEnsemble *e, int64_t n) {
  mbEnsWork *w = e->work;
  if (n <= w->rowcap) return MB_OK;
  int64_t *order = mbu_malloc((size_t)n * sizeof *order);
  int32_t *choice = mbu_malloc((size_t)n * sizeof *choice);
  if (!order || !choice) { mbu_free(order); mbu_free(choice); return MB_ERR; }
  mbu_free(w->order); mbu_free(w->choice);
  w->order = order; w->choice = choice; w->rowcap = n;
  return MB_OK;
}

/* 1 / std of the standardiser (it changes in fit and load_state); read by every task */
static void refresh_inv_std(mbEnsemble *e) {
  for (int k = 0; k < e->cfg.inputs; k++) e->work->inv_std[k] = 1.0f / e->in_std[k];
}

/* A training step --------------------------------------------------------------------------
   The loss of one step, for minibatches of B rows per member:
     sum_m [ mean_{rows, dims} ((mu - y)^2 exp(-lv) + lv) ]            (mbn_gaussNll)
     + penalty * (sum(max_logvar) - sum(min_logvar))                    (learned bounds)
     + sum_m sum_l wd_l * sum(W_l^2) / 2                                (weights only)
   Its gradient flows back through the soft bounds into both the outputs and the bound
   vectors; Adam then updates the whole slab with one step count. */

/* what the tasks of one step share */
typedef struct trainctx {
  mbEnsemble *e;
  const float *x, *y;       /* source rows [* x inputs], [* x D] */
  const int64_t *idx;       /* member m's row numbers at idx + m * istride */
  int64_t istride;
  int B, update;
  int fast;                 /* bf16 copies of activations and gradients (fast path, bf16) */
  uint16_t *img;            /* the attached weight image to refresh after Adam, or NULL */
} trainctx;

/* The switch of the fast path (mbn_ensFastUse; MBPO_ENS_FAST=0 turns it off) */
static atomic_int ens_fast = -2;   /* -2: not read yet */

void mbn_ensFastUse(int on) { atomic_store(&ens_fast, on ? 1 : 0); }

int mbn_ensFastInUse(void) {
  int f = atomic_load(&ens_fast);
  if (f == -2) {
    const char *v = getenv("MBPO_ENS_FAST");
    f = !(v && strcmp(v, "0") == 0);
    atomic_store(&ens_fast, f);
  }
  return f;
}

/* whether a product of these dimensions runs in bf16 (mbn_gemm's rule): where the fast path
   writes the bf16 copy of an operand that product reads */
static int bf16_product(int M, int N, int K) {
  return M >= MB_BF16_MIN_DIM && N >= MB_BF16_MIN_DIM && K >= MB_BF16_MIN_DIM;
}

/* whether either half of the weight gradient of a layer ni -> no over B rows runs in bf16
   (the larger half decides): then its input and pre-activation gradient have bf16 copies
   over all B rows, written by both tasks of section A */
static int wgrad_bf16(int ni, int no, int B) { return bf16_product(ni - ni / 2, no, B); }

/* member m's part of a slab (params, grads, adam_m or adam_v) */
static float *member_params(const mbEnsemble *e, float *slab, int m) {
  return slab + (size_t)m * e->nparams;
}

/* Products over a member's rows: A [rows x K] (its bf16 copy A16 or NULL) times W [K x N]
   (tb = 0) or W^T (W [N x K], tb = 1) into C [rows x N], for the rows of one half (n1 = 0)
   or of both (n0 + n1 rows, whole-member tasks). Both halves in one product only where each
   half's product runs in bf16 (one oneDNN call instead of two; every row's result is the
   same); else one product per half, as the half tasks compute them. */
static void rows_gemm(mbPrecision prec, int tb, int n0, int n1, int N, int K, const float *A,
                      const uint16_t *A16, const float *W, float *C) {
  if (n1 > 0 && prec == MB_BF16 && bf16_product(n0, N, K) && bf16_product(n1, N, K)) {
    mbn_gemm16(prec, 0, tb, n0 + n1, N, K, 1.0f, A, K, A16, W, tb ? K : N, NULL, 0.0f, C, N);
    return;
  }
  mbn_gemm16(prec, 0, tb, n0, N, K, 1.0f, A, K, A16, W, tb ? K : N, NULL, 0.0f, C, N);
  if (n1 > 0)
    mbn_gemm16(prec, 0, tb, n1, N, K, 1.0f, A + (size_t)n0 * K, K,
               A16 ? A16 + (size_t)n0 * K : NULL, W, tb ? K : N, NULL, 0.0f,
               C + (size_t)n0 * N, N);
}

/* Section A for member m, halves [h0, h1) of its minibatch (the first half ceil(B / 2) rows,
   the second the rest, empty for B = 1): task t = (m, half) computes one half, a
   whole-member task (one worker, fast path) both. Writes only those rows of the member's
   buffers, and the halves' own parts tloss[2m + half] and bgrad[2m + half]. */
static void train_rows(trainctx *c, int m, int h0, int h1) {
  mbEnsemble *e = c->e;
  mbEnsWork *w = e->work;
  const mbMlp *net = &e->net;
  const int B = c->B, B0 = (B + 1) / 2;
  const int in = e->cfg.inputs, D = e->cfg.outputs, nh = e->cfg.nhidden, L = net->nlayers;
  /* rows [r0, r0 + n): n0 of the first half in range, n1 of the second (whole member) */
  const int r0 = h0 ? B0 : 0, n0 = h0 ? B - B0 : B0, n1 = h1 - h0 == 2 ? B - B0 : 0;
  const int n = n0 + n1;
  for (int hf = h0; hf < h1; hf++) {
    /* the half's part of the bound-vector gradient: [d max | d min] */
    float *bg = w->bgrad + (size_t)(2 * m + hf) * roundf16(2 * (size_t)D);
    memset(bg, 0, 2 * (size_t)D * sizeof(float));
    w->tloss[2 * m + hf] = 0.0;
  }
  if (n <= 0) return;
  /* gather and standardise the rows */
  const int64_t *idx = c->idx + (int64_t)m * c->istride + r0;
  float *X = w->X[m] + (size_t)r0 * in, *Y = w->Y[m] + (size_t)r0 * D;
  for (int i = 0; i < n; i++) {
    const float *src = c->x + (size_t)idx[i] * in;
    float *dst = X + (size_t)i * in;
    mbn_standardize(dst, src, e->in_mean, w->inv_std, in);
    memcpy(Y + (size_t)i * D, c->y + (size_t)idx[i] * D, sizeof(float) * (size_t)D);
  }
  /* forward: y = x @ W without bias into the layer's buffer, then bias and activation in
     one pass; hidden layers keep their activations H (the next layer's input, and the x of
     its weight gradient) and the sigmoids S (for the swish derivative).
     Fast path: a hidden layer's activations are rounded to bf16 once, here, when a bf16
     product reads them (the next layer's forward on these rows, its weight gradient over
     all rows); hin16 is the copy of hin, or NULL */
  const float *P = member_params(e, e->params, m);
  const float *hin = X;
  const uint16_t *hin16 = NULL;
  for (int l = 0; l < L; l++) {
    int ni = net->sizes[l], no = net->sizes[l + 1];
    const float *W = P + net->woff[l], *b = P + net->boff[l];
    if (l == L - 1) {
      float *o = w->O[m] + (size_t)r0 * no;
      rows_gemm(net->prec, 0, n0, n1, no, ni, hin, hin16, W, o);
      mbn_addBias(o, b, n, no);
      break;
    }
    float *h = w->H[m * nh + l] + (size_t)r0 * no, *s = w->S[m * nh + l] + (size_t)r0 * no;
    rows_gemm(net->prec, 0, n0, n1, no, ni, hin, hin16, W, h);
    int nnext = net->sizes[l + 2];
    uint16_t *h16 = c->fast && (bf16_product(n0, nnext, no) || wgrad_bf16(no, nnext, B))
                    ? w->H16[m * nh + l] + (size_t)r0 * no : NULL;
    if (net->act == MB_ACT_SWISH) mbn_biasSwishSig16(h, s, h16, b, n, no);
    else {
      mbn_biasRelu(h, b, n, no);
      if (h16) mbn_bf16Image(h16, h, (size_t)n * no);
    }
    hin = h;
    hin16 = h16;
  }
  /* the member's loss is a mean over all B rows and D dims, so each half scales its sum by
     1 / (B D); the gradient overwrites O in place (mean and raw log-variance parts) */
  float *O = w->O[m] + (size_t)r0 * 2 * D;
  for (int hf = h0; hf < h1; hf++) {
    int t = 2 * m + hf, q0 = hf == h0 ? 0 : n0, q = hf == h0 ? n0 : n1;
    float *bg = w->bgrad + (size_t)t * roundf16(2 * (size_t)D);
    if (q > 0)
      w->tloss[t] = mbn_gaussNll(O + (size_t)q0 * 2 * D, bg, bg + D, O + (size_t)q0 * 2 * D,
                                 Y + (size_t)q0 * D, e->max_logvar, e->min_logvar, q, D,
                                 1.0f / ((float)B * (float)D));
  }
  /* fast path: the output gradient's bf16 copy where its products run in bf16 (the input
     gradient of the last hidden layer, the last layer's weight gradient) */
  const uint16_t *grad16 = NULL;
  {
    int ni = net->sizes[L - 1], no = 2 * D;
    if (c->fast && (bf16_product(n0, ni, no) || wgrad_bf16(ni, no, B))) {
      uint16_t *o16 = w->O16[m] + (size_t)r0 * no;
      mbn_bf16Image(o16, O, (size_t)n * no);
      grad16 = o16;
    }
  }
  /* input gradients down to the first hidden layer: dh = grad @ W^T (scratch), then the
     activation's derivative turns it into the pre-activation gradient, written over S (the
     sigmoids are read before they are overwritten). The first layer's input gradient is not
     needed. The scratch of half 0 runs on into that of half 1 (grow_train carves them
     adjacent), room for a whole member's rows. */
  const float *grad = O;
  float *dh = w->scratch[2 * m + h0];
  for (int l = L - 1; l >= 1; l--) {
    int ni = net->sizes[l], no = net->sizes[l + 1];
    /* dh = grad @ W^T (mbn_linearBackwardP's product) */
    rows_gemm(net->prec, 1, n0, n1, ni, no, grad, grad16, P + net->woff[l], dh);
    float *h = w->H[m * nh + l - 1] + (size_t)r0 * ni, *s = w->S[m * nh + l - 1] + (size_t)r0 * ni;
    /* fast path: S of layer l - 1 in bf16 where its products run in bf16 (the input
       gradient of layer l - 1 on these rows unless it is the first, the weight gradient
       of layer l - 1 over all rows) */
    int nprev = net->sizes[l - 1];
    uint16_t *s16 =
      c->fast && ((l >= 2 && bf16_product(n0, nprev, ni)) || wgrad_bf16(nprev, ni, B))
      ? w->S16[m * nh + l - 1] + (size_t)r0 * ni : NULL;
    /* per half, as a half task runs it: where a flat pass's vector body ends and its scalar
       tail begins decides the last bit */
    for (int hf = h0; hf < h1; hf++) {
      size_t q0 = hf == h0 ? 0 : (size_t)n0 * ni, q = (size_t)(hf == h0 ? n0 : n1) * ni;
      if (net->act == MB_ACT_SWISH)
        mbn_swishBackwardSig16(s + q0, s16 ? s16 + q0 : NULL, dh + q0, h + q0, s + q0, q);
      else {
        mbn_reluBackward(s + q0, dh + q0, h + q0, q);
        if (s16) mbn_bf16Image(s16 + q0, s + q0, q);
      }
    }
    grad = s;
    grad16 = s16;
  }
}

static void train_rows_task(void *vctx, int t, int worker) {
  (void)worker;
  train_rows(vctx, t >> 1, t & 1, (t & 1) + 1);
}

/* Section B for member m, halves [h0, h1): for every layer l, half 0 takes rows [0, ni / 2)
   of dW_l (= x[:, k0:k1]^T @ dz over all B rows; a contiguous block of the slab) and
   columns [0, no / 2) of db_l, half 1 the rest; then decay and Adam on exactly those
   parameters, while they are in cache. A whole-member task computes both halves' blocks of
   dW_l in one product where both run in bf16 (each row's result is the same). Without
   update the decay is added to the gradient, so grads holds the full gradient. */
static void train_weights(trainctx *c, int m, int h0, int h1) {
  mbEnsemble *e = c->e;
  mbEnsWork *w = e->work;
  const mbMlp *net = &e->net;
  const int L = net->nlayers, nh = e->cfg.nhidden;
  float *P = member_params(e, e->params, m), *G = member_params(e, e->grads, m);
  float *Mm = member_params(e, e->adam_m, m), *V = member_params(e, e->adam_v, m);
  double decay[2] = {0.0, 0.0};
  for (int l = 0; l < L; l++) {
    int ni = net->sizes[l], no = net->sizes[l + 1];
    /* the layer's input (X or the previous activations) and its pre-activation gradient
       (O for the output layer, else S as section A left it) */
    const float *xin = l == 0 ? w->X[m] : w->H[m * nh + l - 1];
    const float *dy = l == L - 1 ? w->O[m] : w->S[m * nh + l];
    /* fast path: the bf16 copies section A wrote, where this product reads them */
    const uint16_t *x16 = NULL, *dy16 = NULL;
    if (c->fast && wgrad_bf16(ni, no, c->B)) {
      x16 = l == 0 ? NULL : w->H16[m * nh + l - 1];
      dy16 = l == L - 1 ? w->O16[m] : w->S16[m * nh + l];
    }
    int whole = h1 - h0 == 2 && net->prec == MB_BF16 && bf16_product(ni / 2, no, c->B) &&
                bf16_product(ni - ni / 2, no, c->B);
    if (whole)
      mbn_linearBackwardRows16(net->prec, G + net->woff[l], dy, dy16, xin, x16, c->B, ni, no,
                               0, ni);
    for (int half = h0; half < h1; half++) {
      int k0 = half ? ni / 2 : 0, k1 = half ? ni : ni / 2;
      int c0 = half ? no / 2 : 0, c1 = half ? no : no / 2;
      size_t wo = net->woff[l] + (size_t)k0 * no, nw = (size_t)(k1 - k0) * no;
      size_t bo = net->boff[l] + (size_t)c0, nb = (size_t)(c1 - c0);
      if (!whole)
        mbn_linearBackwardRows16(net->prec, G + net->woff[l], dy, dy16, xin, x16, c->B, ni, no,
                                 k0, k1);
      mbn_biasGrad(G + net->boff[l], dy, c->B, no, c0, c1);
      /* decay on weights only (wd * W, the gradient of wd * sum(W^2) / 2), none on biases */
      float wd = e->cfg.weight_decay[l];
      if (c->update) {
        if (nw) decay[half] += mbn_adam(P + wo, Mm + wo, V + wo, G + wo, nw, &e->adam, wd, NULL, 0);
        /* the attached image follows the weights it changed (biases are never B operands) */
        if (nw && c->img) mbn_bf16Image(c->img + (size_t)m * e->nparams + wo, P + wo, nw);
        if (nb) mbn_adam(P + bo, Mm + bo, V + bo, G + bo, nb, &e->adam, 0.0f, NULL, 0);
      } else {
        double sq = 0;
        for (size_t j = 0; j < nw; j++) sq += (double)P[wo + j] * P[wo + j];
        decay[half] += 0.5 * wd * sq;
        mbn_addDecay(G + wo, P + wo, wd, nw);
      }
    }
  }
  for (int half = h0; half < h1; half++) w->tdecay[2 * m + half] = decay[half];
}

static void train_weights_task(void *vctx, int t, int worker) {
  (void)worker;
  train_weights(vctx, t >> 1, t & 1, (t & 1) + 1);
}

/* section B of the two-section order, the last member first: its buffers, written last in
   section A, are the likeliest still in cache (1 thread, two sections forced: -1.8%) */
static void train_weights_last_first(void *vctx, int t, int worker) {
  const trainctx *c = vctx;
  train_weights_task(vctx, 2 * c->e->cfg.members - 1 - t, worker);
}

/* The order of the two sections' tasks. Any order in which member m's section-A tasks
   finish before its section-B tasks start gives the same bits (a task reads only its own
   member's buffers and parameters; the shared loss and bound-gradient parts are reduced
   after all of them). Member by member (two tasks per section, 2 x members sections) keeps
   each member's buffers in cache between A and B: at one thread, where the sections cost
   nothing, a Hopper step measured 4.5% faster in fp32 and bf16. With more threads the
   default stays two sections of 2 x members tasks (a barrier per member, and a pair of tasks
   per section for the load balance, were not measured on a quiet machine);
   MBPO_ENS_MEMBER_SECTIONS=1 or 0 forces either order at any thread count. */
typedef struct memberctx {
  trainctx *c;
  int base;                 /* the member's first task number */
} memberctx;

static void member_rows_task(void *vctx, int t, int worker) {
  memberctx *mc = vctx;
  train_rows_task(mc->c, mc->base + t, worker);
}

static void member_weights_task(void *vctx, int t, int worker) {
  memberctx *mc = vctx;
  train_weights_task(mc->c, mc->base + t, worker);
}

static int member_sections(void) {
  static atomic_int forced = -2;   /* -2: not read yet; -1: not set */
  int f = atomic_load_explicit(&forced, memory_order_relaxed);
  if (f == -2) {
    const char *v = getenv("MBPO_ENS_MEMBER_SECTIONS");
    f = v && (strcmp(v, "0") == 0 || strcmp(v, "1") == 0) ? v[0] - '0' : -1;
    atomic_store_explicit(&forced, f, memory_order_relaxed);
  }
  return f >= 0 ? f : mbu_threads() == 1;
}

/* The members' weights rounded into the image (allocated on first use) and attached, so that
   every bf16 product with them as B operand reads it (mbn_bf16Attach) */
static int attach_image(mbEnsemble *e) {
  mbEnsWork *w = e->work;
  size_t n = (size_t)e->cfg.members * e->nparams;
  if (!w->img) {
    w->img = mbu_alignedAlloc(n * sizeof(uint16_t));
    if (!w->img) return MB_ERR;
  }
  mbn_bf16Image(w->img, e->params, n);
  if (mbn_bf16Attach(e->params, w->img, n) < 0) return MB_ERR;
  w->imglive = 1;
  return MB_OK;
}

static void detach_image(mbEnsemble *e) {
  mbn_bf16Detach(e->params);
  e->work->imglive = 0;
}

/* One step over minibatch rows given by index lists: member m's rows are x[idx[m * istride +
   i]], i < B. update = 0 leaves the gradient in e->grads and changes nothing else. */
static int train_step(double *loss, mbEnsemble *e, const float *x, const float *y,
                      const int64_t *idx, int64_t istride, int B, int update) {
  const mbEnsembleConfig *cfg = &e->cfg;
  if (B < 1) return mbu_error("ensemble: empty minibatch");
  if (grow_train(e, B) < 0) return MB_ERR;
  refresh_inv_std(e);
  mbEnsWork *w = e->work;
  const int M = cfg->members, D = cfg->outputs, ntask = 2 * M;
  trainctx ctx = {e, x, y, idx, istride, B, update, 0, NULL};
  /* fast path (bf16): the weights' image attached for this step unless a fit keeps it */
  int attached = 0;
  if (e->net.prec == MB_BF16 && mbn_ensFastInUse()) {
    ctx.fast = 1;
    if (!w->imglive) {
      if (attach_image(e) < 0) return MB_ERR;
      attached = 1;
    }
    if (update && !attached) ctx.img = w->img;  /* a fit's image follows the updates */
  }
  if (member_sections()) {
    /* member by member, section B right after section A: the member's activations and
       gradients (1.6 MB for 256 rows of 4 x 200) are still in cache when its weight
       gradients read them. Section A reads no Adam state, so the count goes first. */
    if (update) e->adam.t++;
    for (int m = 0; m < M; m++) {
      if (ctx.fast && mbu_threads() == 1) {
        /* fast path, one thread: both halves in one task each, so that the bf16 products
           run once over the member's rows instead of once per half */
        train_rows(&ctx, m, 0, 2);
        train_weights(&ctx, m, 0, 2);
        continue;
      }
      memberctx mc = {&ctx, 2 * m};
      parallel(2, 2, member_rows_task, &mc);
      parallel(2, 2, member_weights_task, &mc);
    }
  } else {
    parallel(ntask, ntask, train_rows_task, &ctx);
    /* one Adam step count for the slab: incremented once, before any part is updated */
    if (update) e->adam.t++;
    parallel(ntask, ntask, train_weights_last_first, &ctx);
  }
  /* the loss parts and the shared bound vectors' gradient parts, summed in task order (the
     same order for any thread count); the penalty adds +-bound_penalty; the bounds are
     updated last, after every task used their old values */
  double nll = 0, decay = 0;
  for (int t = 0; t < ntask; t++) { nll += w->tloss[t]; decay += w->tdecay[t]; }
  float *gmax = e->grads + (size_t)M * e->nparams, *gmin = gmax + D;
  double penalty = 0;
  if (cfg->bounds == MB_BOUNDS_LEARNED) {
    for (int j = 0; j < D; j++) {
      float smax = 0, smin = 0;
      for (int t = 0; t < ntask; t++) {
        const float *bg = w->bgrad + (size_t)t * roundf16(2 * (size_t)D);
        smax += bg[j];
        smin += bg[D + j];
      }
      gmax[j] = smax + cfg->bound_penalty;
      gmin[j] = smin - cfg->bound_penalty;
      penalty += (double)cfg->bound_penalty * ((double)e->max_logvar[j] - e->min_logvar[j]);
    }
    if (update)
      mbn_adam(e->max_logvar, e->adam_m + (size_t)M * e->nparams,
               e->adam_v + (size_t)M * e->nparams, gmax, 2 * (size_t)D, &e->adam, 0.0f, NULL, 0);
  } else {
    memset(gmax, 0, 2 * (size_t)D * sizeof(float));
  }
  if (attached) detach_image(e);
  if (loss) *loss = nll + penalty + decay;
  return MB_OK;
}

/* a step on contiguous minibatches x [members x B x in], y [members x B x D]: the index list
   is the identity */
static int step_api(double *loss, mbEnsemble *e, const float *x, const float *y, int B,
                    int update) {
  if (B < 1 || B > (1 << 20))
    return mbu_error("ensemble: minibatch of %d rows (expected 1..1048576)", B);
  if (grow_train(e, B) < 0) return MB_ERR;
  int64_t *idx = e->work->stepidx;
  for (int64_t i = 0; i < (int64_t)e->cfg.members * B; i++) idx[i] = i;
  return train_step(loss, e, x, y, idx, B, B, update);
}

int mbn_ensTrainStep(double *loss, mbEnsemble *e, const float *x, const float *y, int B) {
  return step_api(loss, e, x, y, B, 1);
}

int mbn_ensLossGrad(double *loss, mbEnsemble *e, const float *x, const float *y, int B) {
  return step_api(loss, e, x, y, B, 0);
}

/* Forward items ----------------------------------------------------------------------------
   predict, evaluate and step share one inference path: an item's rows are gathered and
   standardised into its thread's workspace, go through one member, and the item function
   turns the outputs into its results. */

/* forward of n standardised rows in ws->x through member m; returns out [n x 2D] (inside the
   workspace). Same kernels as training, without keeping the sigmoids. */
static float *forward_rows(mbEnsemble *e, fwdws *ws, int m, int n) {
  const mbMlp *net = &e->net;
  const float *P = member_params(e, e->params, m), *in = ws->x;
  float *bufs[2] = {ws->a, ws->b}, *o = ws->a;
  for (int l = 0; l < net->nlayers; l++) {
    int ni = net->sizes[l], no = net->sizes[l + 1];
    o = bufs[l & 1];
    mbn_linearForwardP(net->prec, o, in, P + net->woff[l], NULL, n, ni, no);
    if (l == net->nlayers - 1) mbn_addBias(o, P + net->boff[l], n, no);
    else if (net->act == MB_ACT_SWISH) mbn_biasSwishSig(o, NULL, P + net->boff[l], n, no);
    else mbn_biasRelu(o, P + net->boff[l], n, no);
    in = o;
  }
  return o;
}

/* standardised rows into ws->x: row i is src[rows[i]] (or src[begin + i] when rows is NULL) */
static void gather_inputs(mbEnsemble *e, float *dst, const float *src, const int64_t *rows,
                          int64_t begin, int n) {
  const int in = e->cfg.inputs;
  const float *mean = e->in_mean, *istd = e->work->inv_std;
  for (int i = 0; i < n; i++) {
    int64_t r = rows ? rows[begin + i] : begin + i;
    const float *s = src + (size_t)r * in;
    float *d = dst + (size_t)i * in;
    mbn_standardize(d, s, mean, istd, in);
  }
}

/* computes one item with a workspace no other task uses */
typedef void (*item_fn)(mbEnsemble *e, fwdws *ws, int64_t item, void *ctx);

/* one run over items: worker w computes the items it takes in workspace w */
typedef struct itemrun {
  mbEnsemble *e;
  item_fn fn;
  void *ctx;
} itemrun;

static void item_task(void *vctx, int item, int worker) {
  itemrun *r = vctx;
  r->fn(r->e, &r->e->work->fwd[worker], item, r->ctx);
}

/* Runs fn on every item with one workspace per worker. Items write disjoint outputs (or their
   own slot of a per-item array), so results do not depend on how items fall on workers. */
static int run_items(mbEnsemble *e, int64_t nitems, item_fn fn, void *ctx) {
  if (nitems <= 0) return MB_OK;
  if (nitems > INT32_MAX) return mbu_error("ensemble: %lld chunks of rows", (long long)nitems);
  int workers = mbu_threads();
  if (workers > nitems) workers = (int)nitems;
  if (workers < 1) workers = 1;
  if (grow_fwd(e, workers) < 0) return MB_ERR;
  itemrun r = {e, fn, ctx};
  parallel((int)nitems, workers, item_task, &r);
  return MB_OK;
}

/* items (m, chunk) covering rows [0, N) for every member; returns the count */
static int64_t member_chunks(mbEnsemble *e, int64_t N) {
  int64_t per = (N + CHUNK - 1) / CHUNK, k = 0;
  for (int m = 0; m < e->cfg.members; m++)
    for (int64_t c = 0; c < per; c++) {
      fitem *it = &e->work->items[k++];
      it->m = m;
      it->begin = c * CHUNK;
      it->n = (int)(N - it->begin < CHUNK ? N - it->begin : CHUNK);
    }
  return k;
}

/* Predict and evaluate --------------------------------------------------------------------- */

/* what the items of predict and evaluate share */
typedef struct predctx {
  const float *x, *y;
  const int64_t *rows;      /* row list (NULL: rows 0..N-1) */
  int64_t N;
  float *mean, *logvar;     /* predict outputs [members x N x D] */
} predctx;

/* rows of one member: the means and bounded log-variances go straight to the caller's
   [members x N x D] outputs */
static void predict_item(mbEnsemble *e, fwdws *ws, int64_t item, void *vctx) {
  predctx *c = vctx;
  const fitem *it = &e->work->items[item];
  const int D = e->cfg.outputs;
  gather_inputs(e, ws->x, c->x, NULL, it->begin, it->n);
  const float *out = forward_rows(e, ws, it->m, it->n);
  size_t base = ((size_t)it->m * c->N + it->begin) * D;
  for (int i = 0; i < it->n; i++)
    memcpy(c->mean + base + (size_t)i * D, out + (size_t)i * 2 * D, sizeof(float) * (size_t)D);
  mbn_gaussLogvar(c->logvar + base, out, e->max_logvar, e->min_logvar, it->n, D);
}

int mbn_ensPredict(float *mean, float *logvar, mbEnsemble *e, const float *x, int64_t N) {
  if (N < 0) return mbu_error("predict: negative row count %lld", (long long)N);
  int64_t n = e->cfg.members * ((N + CHUNK - 1) / CHUNK);
  if (grow_items(e, n) < 0) return MB_ERR;
  refresh_inv_std(e);
  member_chunks(e, N);
  predctx c = {x, NULL, NULL, N, mean, logvar};
  return run_items(e, n, predict_item, &c);
}

/* the squared error of one member's means on an item's rows, in double, into its own slot */
static void sse_item(mbEnsemble *e, fwdws *ws, int64_t item, void *vctx) {
  predctx *c = vctx;
  const fitem *it = &e->work->items[item];
  const int D = e->cfg.outputs;
  gather_inputs(e, ws->x, c->x, c->rows, it->begin, it->n);
  const float *out = forward_rows(e, ws, it->m, it->n);
  double sse = 0;
  for (int i = 0; i < it->n; i++) {
    int64_t r = c->rows ? c->rows[it->begin + i] : it->begin + i;
    const float *y = c->y + (size_t)r * D, *mu = out + (size_t)i * 2 * D;
    for (int j = 0; j < D; j++) {
      double d = (double)mu[j] - y[j];
      sse += d * d;
    }
  }
  e->work->itemsse[item] = sse;
}

/* Mean squared error of each member's mean on rows (a list, or 0..N-1 when NULL) over rows
   and dims: the reference's holdout metric. NaN for no rows. Items are summed per member in
   item order. */
static int evaluate_rows(float *mse, mbEnsemble *e, const float *x, const float *y,
                         const int64_t *rows, int64_t N) {
  const int M = e->cfg.members;
  if (N <= 0) {
    for (int m = 0; m < M; m++) mse[m] = NAN;
    return MB_OK;
  }
  int64_t per = (N + CHUNK - 1) / CHUNK, n = M * per;
  if (grow_items(e, n) < 0) return MB_ERR;
  refresh_inv_std(e);
  member_chunks(e, N);
  predctx c = {x, y, rows, N, NULL, NULL};
  if (run_items(e, n, sse_item, &c) < 0) return MB_ERR;
  for (int m = 0; m < M; m++) {
    double s = 0;
    for (int64_t k = 0; k < per; k++) s += e->work->itemsse[m * per + k];
    mse[m] = (float)(s / ((double)N * e->cfg.outputs));
  }
  return MB_OK;
}

int mbn_ensEvaluate(float *mse, mbEnsemble *e, const float *x, const float *y, int64_t N) {
  if (N < 0) return mbu_error("evaluate: negative row count %lld", (long long)N);
  return evaluate_rows(mse, e, x, y, NULL, N);
}

/* Model step -------------------------------------------------------------------------------
   One step of a branched rollout for N rows: the model input is [obs, act], the target
   layout [reward, next_obs - obs]. In sample mode every row draws one elite uniformly; rows
   are grouped by member with a counting sort, so each member runs its own rows in chunks
   and no row goes through a member it did not draw. */

/* what the items of one step share */
typedef struct stepctx {
  const float *obs, *act;
  float *next, *reward;
  int od, ad;
  uint64_t base;            /* noise seed of this call */
  int mean_mode;
} stepctx;

/* [obs, act] rows (listed in order[], or contiguous from begin) standardised into dst */
static void gather_obs_act(mbEnsemble *e, float *dst, const stepctx *c, const int64_t *rows,
                           int64_t begin, int n) {
  const int in = e->cfg.inputs, od = c->od, ad = c->ad;
  const float *mean = e->in_mean, *istd = e->work->inv_std;
  for (int i = 0; i < n; i++) {
    int64_t r = rows ? rows[begin + i] : begin + i;
    const float *o = c->obs + (size_t)r * od, *a = c->act + (size_t)r * ad;
    float *d = dst + (size_t)i * in;
    mbn_standardize(d, o, mean, istd, od);
    mbn_standardize(d + od, a, mean + od, istd + od, ad);
  }
}

/* y [n x D] = [reward, delta] -> reward, next = obs + delta */
static void scatter_step(const stepctx *c, const float *y, const int64_t *rows, int64_t begin,
                         int n, int D) {
  for (int i = 0; i < n; i++) {
    int64_t r = rows ? rows[begin + i] : begin + i;
    const float *yi = y + (size_t)i * D, *o = c->obs + (size_t)r * c->od;
    float *nx = c->next + (size_t)r * c->od;
    c->reward[r] = yi[0];
    for (int k = 0; k < c->od; k++) nx[k] = o[k] + yi[1 + k];
  }
}

/* rows order[begin .. begin + n) through member m, sampled from N(mean, exp(logvar)) with
   noise from the item's own generator */
static void step_sample_item(mbEnsemble *e, fwdws *ws, int64_t item, void *vctx) {
  stepctx *c = vctx;
  const fitem *it = &e->work->items[item];
  const int D = e->cfg.outputs;
  gather_obs_act(e, ws->x, c, e->work->order, it->begin, it->n);
  const float *out = forward_rows(e, ws, it->m, it->n);
  mbRng g;
  mbg_seed(&g, c->base, (uint64_t)item);
  mbn_gaussNoise(ws->eps, &g, (size_t)it->n * D);
  mbn_gaussSample(ws->y, out, ws->eps, e->max_logvar, e->min_logvar, it->n, D);
  scatter_step(c, ws->y, e->work->order, it->begin, it->n, D);
}

/* contiguous rows through every elite: the mean of their means, no noise (the "ensemble
   mean" variant of the spec's section 6) */
static void step_mean_item(mbEnsemble *e, fwdws *ws, int64_t item, void *vctx) {
  stepctx *c = vctx;
  const fitem *it = &e->work->items[item];
  const int D = e->cfg.outputs, E = e->cfg.elites;
  gather_obs_act(e, ws->x, c, NULL, it->begin, it->n);
  /* elites in their order, summed row by row; the input rows stay in ws->x */
  for (int k = 0; k < E; k++) {
    const float *out = forward_rows(e, ws, e->elite[k], it->n);
    for (int i = 0; i < it->n; i++) {
      float *y = ws->y + (size_t)i * D;
      const float *mu = out + (size_t)i * 2 * D;
      if (k == 0) memcpy(y, mu, sizeof(float) * (size_t)D);
      else for (int j = 0; j < D; j++) y[j] += mu[j];
    }
  }
  const float inv = 1.0f / (float)E;
  for (size_t i = 0; i < (size_t)it->n * D; i++) ws->y[i] *= inv;
  scatter_step(c, ws->y, NULL, it->begin, it->n, D);
}

int mbn_ensStep(float *next_obs, float *reward, int32_t *member, mbEnsemble *e,
                const float *obs, const float *act, int64_t N, mbRng *g, mbPredMode mode) {
  const mbEnsembleConfig *cfg = &e->cfg;
  const int D = cfg->outputs, od = D - 1, ad = cfg->inputs - od, M = cfg->members;
  if (od < 1 || ad < 0)
    return mbu_error("step: the ensemble maps %d inputs to %d outputs; a model step needs "
                     "outputs = 1 + obs and inputs = obs + act", cfg->inputs, D);
  if (N < 0) return mbu_error("step: negative row count %lld", (long long)N);
  if (N == 0) return MB_OK;
  refresh_inv_std(e);
  stepctx c = {obs, act, next_obs, reward, od, ad, 0, mode == MB_PRED_MEAN};
  /* mean mode: items are plain chunks of rows; no draws from g */
  if (mode == MB_PRED_MEAN) {
    int64_t n = (N + CHUNK - 1) / CHUNK;
    if (grow_items(e, n) < 0) return MB_ERR;
    for (int64_t k = 0; k < n; k++) {
      fitem *it = &e->work->items[k];
      it->m = -1;
      it->begin = k * CHUNK;
      it->n = (int)(N - it->begin < CHUNK ? N - it->begin : CHUNK);
    }
    if (member) for (int64_t r = 0; r < N; r++) member[r] = -1;
    return run_items(e, n, step_mean_item, &c);
  }
  /* one elite per row (serial draws from g, so g advances the same for any thread count),
     then rows grouped by member: a stable counting sort into order[], and the items as
     chunks of each member's run */
  if (grow_rows(e, N) < 0 || grow_items(e, N / CHUNK + M + 1) < 0) return MB_ERR;
  mbEnsWork *w = e->work;
  int64_t count[MB_ENS_MAXMEMBERS] = {0}, start[MB_ENS_MAXMEMBERS];
  for (int64_t r = 0; r < N; r++) {
    int m = e->elite[mbg_below(g, (uint64_t)cfg->elites)];
    w->choice[r] = m;
    count[m]++;
  }
  int64_t nitems = 0, pos = 0;
  for (int m = 0; m < M; m++) {
    start[m] = pos;
    for (int64_t b = 0; b < count[m]; b += CHUNK) {
      fitem *it = &w->items[nitems++];
      it->m = m;
      it->begin = pos + b;
      it->n = (int)(count[m] - b < CHUNK ? count[m] - b : CHUNK);
    }
    pos += count[m];
  }
  for (int64_t r = 0; r < N; r++) w->order[start[w->choice[r]]++] = r;
  if (member) memcpy(member, w->choice, (size_t)N * sizeof(int32_t));
  /* one more draw seeds the items' noise generators (item k: stream k of this seed) */
  c.base = mbg_next(g);
  return run_items(e, nitems, step_sample_item, &c);
}

/* Fit --------------------------------------------------------------------------------------
   The reference's training call (specs/mbpo-algorithm.md section 2), drawing in this order
   from the ensemble's generator: the holdout permutation, the bootstrap rows of each member,
   then per epoch one shuffle per member. Its state therefore continues exactly after a
   load_state. */

/* room for the split permutation of N rows, the bootstrap rows and the snapshots */
static int grow_fit(mbEnsemble *e, int64_t N, int64_t ntrain) {
  mbEnsWork *w = e->work;
  if (N > w->permcap) {
    int64_t *p = mbu_malloc((size_t)N * sizeof *p);
    if (!p) return MB_ERR;
    mbu_free(w->perm);
    w->perm = p;
    w->permcap = N;
  }
  int64_t nb = ntrain * e->cfg.members;
  if (nb > w->bootcap) {
    int64_t *b = mbu_malloc((size_t)nb * sizeof *b);
    if (!b) return MB_ERR;
    mbu_free(w->boot);
    w->boot = b;
    w->bootcap = nb;
  }
  if (!w->snap) {
    w->snap = mbu_alignedAlloc((size_t)e->cfg.members * e->nparams * sizeof(float));
    if (!w->snap) return MB_ERR;
  }
  return MB_OK;
}

/* room for epoch k's history */
static int grow_history(mbEnsemble *e, int k) {
  mbEnsWork *w = e->work;
  if (k < w->histcap) return MB_OK;
  int cap = w->histcap ? 2 * w->histcap : 64;
  double *tl = realloc(w->train_loss, (size_t)cap * sizeof(double));
  if (!tl) return mbu_error("out of memory (fit history)");
  w->train_loss = tl;
  double *cu = realloc(w->curve, (size_t)cap * e->cfg.members * sizeof(double));
  if (!cu) return mbu_error("out of memory (fit history)");
  w->curve = cu;
  w->histcap = cap;
  return MB_OK;
}

/* the elites: members sorted by holdout MSE (NaN last, ties by index), first E */
static void choose_elites(mbEnsemble *e) {
  int M = e->cfg.members, order[MB_ENS_MAXMEMBERS];
  for (int m = 0; m < M; m++) order[m] = m;
  for (int i = 1; i < M; i++) {  /* insertion sort: stable */
    int v = order[i], j = i;
    float fv = e->holdout_mse[v];
    if (isnan(fv)) fv = INFINITY;
    while (j > 0) {
      float fu = e->holdout_mse[order[j - 1]];
      if (isnan(fu)) fu = INFINITY;
      if (fu <= fv) break;
      order[j] = order[j - 1];
      j--;
    }
    order[j] = v;
  }
  for (int k = 0; k < e->cfg.elites; k++) e->elite[k] = order[k];
}

/* each member's best weights back (members that never took a snapshot keep theirs); Adam's
   moments and the bound vectors continue as they are, as in the reference */
static void restore_snapshots(mbEnsemble *e, const int *has) {
  for (int m = 0; m < e->cfg.members; m++)
    if (has[m])
      memcpy(member_params(e, e->params, m), e->work->snap + (size_t)m * e->nparams,
             e->nparams * sizeof(float));
}

int mbn_ensFit(mbFitResult *res, mbEnsemble *e, const float *x, const float *y, int64_t N,
               const mbFitOptions *o) {
  const mbEnsembleConfig *cfg = &e->cfg;
  const int M = cfg->members, in = cfg->inputs, D = cfg->outputs;
  const double t0 = mbu_clock();
  memset(res, 0, sizeof *res);
  /* arguments and data checked before anything changes */
  if (mbu_fieldCheck(o, mbn_fitFields, "fit") < 0) return MB_ERR;
  if (N < 1) return mbu_error("fit: no rows");
  for (int64_t r = 0; r < N; r++) {
    for (int k = 0; k < in; k++)
      if (!isfinite(x[r * in + k]))
        return mbu_error("fit: inputs[%lld][%d] is not finite", (long long)r + 1, k + 1);
    for (int k = 0; k < D; k++)
      if (!isfinite(y[r * D + k]))
        return mbu_error("fit: targets[%lld][%d] is not finite", (long long)r + 1, k + 1);
  }
  /* holdout split: the first Nh = floor(N ratio) rows of a permutation, at most holdout_cap;
     the rest trains */
  int64_t nh = (int64_t)((double)N * o->holdout_ratio);
  if (o->holdout_cap > 0 && nh > o->holdout_cap) nh = o->holdout_cap;
  int64_t nt = N - nh;
  if (nt < 1) return mbu_error("fit: no training rows (N = %lld)", (long long)N);
  if (nh == 0 && o->max_epochs <= 0 && !(o->max_seconds > 0))
    return mbu_error("fit: no holdout rows (N = %lld, ratio %g) and neither max_epochs nor "
                     "max_seconds: training would never stop", (long long)N,
                     (double)o->holdout_ratio);
  if (grow_fit(e, N, nt) < 0 || grow_train(e, o->batch) < 0) return MB_ERR;
  mbEnsWork *w = e->work;
  mbg_permutation(w->perm, &e->rng, (size_t)N);
  const int64_t *hold = w->perm, *train = w->perm + nh;
  /* standardiser on the training split, in double: mean and population std per input,
     std < 1e-12 (a constant input) -> 1 */
  for (int k = 0; k < in; k++) {
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < nt; i++) s += x[train[i] * in + k];
    double mean = s / (double)nt;
    for (int64_t i = 0; i < nt; i++) {
      double d = x[train[i] * in + k] - mean;
      s2 += d * d;
    }
    double sd = sqrt(s2 / (double)nt);
    e->in_mean[k] = (float)mean;
    e->in_std[k] = sd < 1e-12 ? 1.0f : (float)sd;
  }
  /* bootstrap rows per member, fixed for the call: Ntrain draws with replacement (the
     reference), a permutation of the training rows, or the training rows themselves */
  for (int m = 0; m < M; m++) {
    int64_t *b = w->boot + (size_t)m * nt;
    if (cfg->bootstrap == MB_BOOT_REPLACE) {
      for (int64_t i = 0; i < nt; i++) b[i] = train[mbg_below(&e->rng, (uint64_t)nt)];
    } else {
      memcpy(b, train, (size_t)nt * sizeof *b);
      if (cfg->bootstrap == MB_BOOT_PERMUTE) mbg_shuffle(b, &e->rng, (size_t)nt);
    }
  }
  /* best holdout MSE and whether a snapshot was taken, per member (reset every call, as in
     the reference: the first epoch always snapshots) */
  double best[MB_ENS_MAXMEMBERS];
  int has[MB_ENS_MAXMEMBERS] = {0};
  float mse[MB_ENS_MAXMEMBERS];
  for (int m = 0; m < M; m++) best[m] = INFINITY;
  int epoch = 0, since = 0, status = MB_OK;
  mbFitStop stop = MB_STOP_PATIENCE;
  /* fast path (bf16): the weights' image for the whole call, refreshed after every update;
     the holdout evaluations read it too */
  if (e->net.prec == MB_BF16 && mbn_ensFastInUse() && attach_image(e) < 0) return MB_ERR;
  for (;;) {
    if (mbu_interrupted) { status = mbu_error("interrupted"); break; }
    if (grow_history(e, epoch) < 0) { status = MB_ERR; break; }
    /* reshuffle each member's rows (one shared order without bootstrap) */
    for (int m = 0; m < M; m++) {
      int64_t *b = w->boot + (size_t)m * nt;
      if (cfg->bootstrap == MB_BOOT_NONE && m > 0) memcpy(b, w->boot, (size_t)nt * sizeof *b);
      else mbg_shuffle(b, &e->rng, (size_t)nt);
    }
    /* minibatches of batch rows per member (the last one shorter), all members together */
    double lsum = 0;
    int64_t nbatch = (nt + o->batch - 1) / o->batch;
    for (int64_t k = 0; k < nbatch && status == MB_OK; k++) {
      int64_t s = k * o->batch;
      int B = (int)(nt - s < o->batch ? nt - s : o->batch);
      double l = 0;
      status = train_step(&l, e, x, y, w->boot + s, nt, B, 1);
      lsum += l;
    }
    if (status < 0) break;
    w->train_loss[epoch] = lsum / (double)nbatch;
    if (evaluate_rows(mse, e, x, y, hold, nh) < 0) { status = MB_ERR; break; }
    for (int m = 0; m < M; m++) w->curve[(size_t)epoch * M + m] = mse[m];
    epoch++;
    /* a member whose holdout MSE improved on its best by more than `improvement` (relative)
       takes a snapshot; in whole-ensemble mode any improvement snapshots every member */
    int updated = 0;
    if (nh > 0) {
      int any = 0, imp[MB_ENS_MAXMEMBERS];
      for (int m = 0; m < M; m++) {
        double cur = mse[m];
        imp[m] = isfinite(cur) && (isinf(best[m]) || (best[m] - cur) / best[m] > o->improvement);
        any |= imp[m];
      }
      for (int m = 0; m < M; m++) {
        int take = cfg->snapshot == MB_SNAP_MEMBER ? imp[m] : any;
        if (!take) continue;
        if (isfinite(mse[m]) && mse[m] < best[m]) best[m] = mse[m];
        memcpy(w->snap + (size_t)m * e->nparams, member_params(e, e->params, m),
               e->nparams * sizeof(float));
        has[m] = 1;
        updated = 1;
      }
    }
    /* patience: stop once more than `patience` epochs passed without a snapshot */
    since = updated ? 0 : since + 1;
    if (nh > 0 && since > o->patience) { stop = MB_STOP_PATIENCE; break; }
    if (o->max_epochs > 0 && epoch >= o->max_epochs) { stop = MB_STOP_MAX_EPOCHS; break; }
    if (o->max_seconds > 0 && mbu_clock() - t0 >= o->max_seconds) {
      stop = MB_STOP_MAX_SECONDS;
      break;
    }
  }
  /* best weights back, then the elites by holdout MSE */
  if (w->imglive) detach_image(e);
  restore_snapshots(e, has);
  if (status == MB_OK) {
    if (nh > 0 && evaluate_rows(e->holdout_mse, e, x, y, hold, nh) < 0) return MB_ERR;
    if (nh > 0) choose_elites(e);
    else for (int m = 0; m < M; m++) e->holdout_mse[m] = NAN;
    e->fits++;
  }
  res->epochs = epoch;
  res->stop = stop;
  res->seconds = mbu_clock() - t0;
  res->train_rows = nt;
  res->holdout_rows = nh;
  res->train_loss = w->train_loss;
  res->holdout_curve = w->curve;
  return status;
}

/* State descriptor ------------------------------------------------------------------------- */

int mbn_ensStateBlocks(mbStateBlock *b, mbEnsemble *e) {
  const mbEnsembleConfig *c = &e->cfg;
  mbStateBlock *p = b, *fmt = p;
  p = mbu_block(p, "format", MB_STR, MB_ST_CHECK, NULL, 0, 0, 0);
  snprintf(fmt->text, MB_STATE_TEXT, "mbpo.ensemble/1");
  /* "inputs=5 outputs=5 members=3 elites=2 hidden=16,16 activation=swish" */
  mbStateBlock *lay = p;
  p = mbu_block(p, "layout", MB_STR, MB_ST_CHECK, NULL, 0, 0, 0);
  int k = snprintf(lay->text, MB_STATE_TEXT, "inputs=%d outputs=%d members=%d elites=%d hidden=",
                   c->inputs, c->outputs, c->members, c->elites);
  for (int i = 0; i < c->nhidden && k > 0 && k < MB_STATE_TEXT; i++)
    k += snprintf(lay->text + k, (size_t)(MB_STATE_TEXT - k), i ? ",%d" : "%d", c->hidden[i]);
  if (k > 0 && k < MB_STATE_TEXT)
    snprintf(lay->text + k, (size_t)(MB_STATE_TEXT - k), " activation=%s",
             c->activation == MB_ACT_SWISH ? "swish" : "relu");
  int64_t n = (int64_t)e->ntotal;
  p = mbu_block(p, "params", MB_F32, 0, e->params, 1, n, 0);
  p = mbu_block(p, "adam_m", MB_F32, 0, e->adam_m, 1, n, 0);
  p = mbu_block(p, "adam_v", MB_F32, 0, e->adam_v, 1, n, 0);
  p = mbu_block(p, "adam_t", MB_I64, 0, &e->adam.t, 0, 0, 0);
  p = mbu_block(p, "input_mean", MB_F32, MB_ST_FINITE, e->in_mean, 1, c->inputs, 0);
  p = mbu_block(p, "input_std", MB_F32, MB_ST_POSITIVE, e->in_std, 1, c->inputs, 0);
  p = mbu_block(p, "elites", MB_I32, MB_ST_INDEX, e->elite, 1, c->elites, 0);
  p[-1].bound = c->members;
  p = mbu_block(p, "holdout_mse", MB_F32, 0, e->holdout_mse, 1, c->members, 0);
  p = mbu_block(p, "fits", MB_I64, 0, &e->fits, 0, 0, 0);
  p = mbg_stateBlocks(p, &e->rng);
  return (int)(p - b);
}
