/* mbpo probabilistic dynamics ensemble: a bootstrap ensemble of Gaussian MLPs as the MBPO
   reference trains it (specs/mbpo-algorithm.md section 2), with the variants of section 6 as
   options. Inputs are [obs, act] rows; targets are [reward, next_obs - obs] rows (reward
   first); each member outputs a mean and a log-variance per target dim, the log-variance
   softly bounded by the vectors max_logvar / min_logvar shared by the members.
   Parameters of all members and the two bound vectors live in one slab (and so do the
   gradients and both Adam moments); every tensor needed to continue bit for bit is a field. */
#ifndef MBPO_ENSEMBLE_H
#define MBPO_ENSEMBLE_H

#include <stddef.h>
#include <stdint.h>

#include "mbpo/fields.h"
#include "mbpo/nn.h"
#include "mbpo/rng.h"
#include "mbpo/state.h"

#define MB_ENS_MAXMEMBERS 64

typedef enum mbBoundsMode { MB_BOUNDS_LEARNED = 0, MB_BOUNDS_FIXED = 1 } mbBoundsMode;
typedef enum mbPredMode { MB_PRED_SAMPLE = 0, MB_PRED_MEAN = 1 } mbPredMode;
typedef enum mbBootMode { MB_BOOT_REPLACE = 0, MB_BOOT_PERMUTE = 1, MB_BOOT_NONE = 2 } mbBootMode;
typedef enum mbSnapMode { MB_SNAP_MEMBER = 0, MB_SNAP_ENSEMBLE = 1 } mbSnapMode;

/* What an ensemble is: the rows of MB_ENS_FIELDS are its settings' names, defaults (the
   reference, specs/mbpo-algorithm.md section 2), ranges and docs; mbn_ensDefaults fills them. */
typedef struct mbEnsembleConfig {
  int inputs, outputs;       /* input width (obs + act) and target width D (1 + obs) */
  int members, elites;
  int nhidden;               /* hidden layers */
  int hidden[MB_MLP_MAXLAYERS - 1];         /* their widths */
  union {
    mbActivation activation;
    mbActivation act;        /* the former name, kept while src/nn uses it */
  };
  float weight_decay[MB_MLP_MAXLAYERS];     /* per linear layer (nhidden + 1 values) */
  float lr;                  /* Adam learning rate */
  uint64_t seed;             /* seeds the ensemble's generator (init, splits, bootstrap) */
  mbBoundsMode bounds;       /* learned (reference) or fixed log-variance bounds */
  float max_logvar, min_logvar;  /* initial bounds */
  float bound_penalty;       /* bound_penalty * (sum(max) - sum(min)) in the loss when learned */
  mbPredMode prediction;     /* mbn_ensStep: sample from one elite (reference) or elite mean */
  mbBootMode bootstrap;      /* with replacement (reference), permutation, none */
  float holdout_ratio;
  int holdout_cap;           /* <= 0 means no cap */
  mbSnapMode snapshot;       /* per member (reference) or the whole ensemble */
  int batch;                 /* minibatch rows per member */
  int patience;              /* stop after more than this many epochs without improvement */
  float improvement;         /* relative holdout improvement that counts */
  union {                    /* of the members' matrix products (training and inference) */
    mbPrecision precision;
    mbPrecision prec;        /* the former name, kept while src/nn uses it */
  };
} mbEnsembleConfig;

/* The settings of mbEnsembleConfig (include/mbpo/fields.h). weight_decay's list is that of
   the reference's 4 hidden layers; for other depths mbn_ensDefaultDecay takes its first
   values for the hidden layers (the fourth for any deeper) and its last for the output. */
#define MB_ENS_FIELDS(S) \
  MB_F_NEED(S, inputs, 1, 65536, "input width (obs + act)") \
  MB_F_NEED(S, outputs, 1, 65536, "target width (1 + obs: reward, then next_obs - obs)") \
  MB_F_INT(S, members, 7, 1, MB_ENS_MAXMEMBERS, "networks in the ensemble") \
  MB_F_INT(S, elites, 5, 1, MB_ENS_MAXMEMBERS, "best members by holdout error, used in rollouts") \
  MB_F_LIST(S, hidden, MB_FIELD_INTS, MB_F_EMPTY, nhidden, MB_MLP_MAXLAYERS - 1, 1, 65536, \
            "hidden layer widths of each member", 200, 200, 200, 200) \
  MB_F_ENUM(S, activation, MB_ACT_SWISH, "relu|swish", "hidden activation") \
  MB_F_FLOATS(S, weight_decay, MB_F_LINKED, nhidden, MB_MLP_MAXLAYERS, 0, HUGE_VAL, \
              "L2 decay per linear layer, wd * sum(W^2) / 2", 2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4) \
  MB_F_FLOAT(S, lr, MB_F_OPEN_LO, 1e-3, 0, HUGE_VAL, "Adam learning rate") \
  MB_F_U64(S, seed, 0, "the ensemble's generator: initial weights, splits, bootstrap") \
  MB_F_ENUM(S, bounds, MB_BOUNDS_LEARNED, "learned|fixed", \
            "log-variance bounds: learned, or fixed at max_logvar / min_logvar") \
  MB_F_FLOAT(S, max_logvar, 0, 0.5, -HUGE_VAL, HUGE_VAL, "initial upper log-variance bound") \
  MB_F_FLOAT(S, min_logvar, 0, -10, -HUGE_VAL, HUGE_VAL, "initial lower log-variance bound") \
  MB_F_FLOAT(S, bound_penalty, 0, 0.01, 0, HUGE_VAL, \
             "weight of sum(max_logvar) - sum(min_logvar) in the loss") \
  MB_F_ENUM(S, prediction, MB_PRED_SAMPLE, "sample|mean", \
            "model step: a sample from one random elite, or the elites' mean") \
  MB_F_ENUM(S, bootstrap, MB_BOOT_REPLACE, "replace|permutation|none", \
            "each member's training rows: drawn with replacement, a permutation, or all") \
  MB_F_FLOAT(S, holdout_ratio, MB_F_OPEN_HI, 0.2, 0, 1, \
             "share of rows held out for early stopping") \
  MB_F_INT(S, holdout_cap, 5000, 0, 2147483647, "most holdout rows (0: no cap)") \
  MB_F_ENUM(S, snapshot, MB_SNAP_MEMBER, "member|ensemble", \
            "early-stopping snapshots per member, or of the whole ensemble") \
  MB_F_INT(S, batch, 256, 1, 1 << 20, "minibatch rows per member") \
  MB_F_INT(S, patience, 5, 1, 2147483647, "epochs without improvement before the fit stops") \
  MB_F_FLOAT(S, improvement, 0, 0.01, 0, HUGE_VAL, "relative holdout improvement that counts") \
  MB_F_ENUM(S, precision, MB_FP32, "fp32|bf16", \
            "matrix products: fp32, or bf16 operands with fp32 accumulation (AVX512-BF16/AMX)")

/* The table of MB_ENS_FIELDS (src/nn/ensemble.c). */
extern const mbField mbn_ensFields[];

/* Options of one fit call (mbn_fitDefaults copies them from the config). */
typedef struct mbFitOptions {
  int max_epochs;            /* <= 0: no cap (the reference) */
  double max_seconds;        /* <= 0: no wall-clock cap */
  int patience, batch, holdout_cap;
  float holdout_ratio, improvement;
} mbFitOptions;

/* The settings of mbFitOptions (ens:fit's options); NaN defaults: the ensemble's. */
#define MB_FIT_FIELDS(S) \
  MB_F_INT(S, max_epochs, 0, 0, 2147483647, "most training epochs per fit (0: no cap)") \
  MB_F_DOUBLE(S, max_seconds, 0, 0, 0, HUGE_VAL, "most seconds per fit (0: no cap)") \
  MB_F_INT(S, patience, NAN, 1, 2147483647, "the ensemble's patience for this fit") \
  MB_F_INT(S, batch, NAN, 1, 1 << 20, "the ensemble's batch for this fit") \
  MB_F_INT(S, holdout_cap, NAN, 0, 2147483647, "the ensemble's holdout_cap for this fit") \
  MB_F_FLOAT(S, holdout_ratio, MB_F_OPEN_HI, NAN, 0, 1, \
             "the ensemble's holdout_ratio for this fit") \
  MB_F_FLOAT(S, improvement, 0, NAN, 0, HUGE_VAL, "the ensemble's improvement for this fit")

/* The table of MB_FIT_FIELDS (src/nn/ensemble.c). */
extern const mbField mbn_fitFields[];

typedef enum mbFitStop {
  MB_STOP_PATIENCE = 0, MB_STOP_MAX_EPOCHS = 1, MB_STOP_MAX_SECONDS = 2
} mbFitStop;

/* What one fit call did. The arrays belong to the ensemble and stay valid until the next
   fit or mbn_ensFree. */
typedef struct mbFitResult {
  int epochs;                /* epochs run */
  mbFitStop stop;            /* why it stopped */
  double seconds;            /* wall clock of the call */
  int64_t train_rows, holdout_rows;
  const double *train_loss;  /* [epochs] mean minibatch loss per epoch */
  const double *holdout_curve; /* [epochs x members] holdout MSE after each epoch */
} mbFitResult;

typedef struct mbEnsWork mbEnsWork;  /* workspaces (private to src/nn/ensemble.c) */

typedef struct mbEnsemble {
  mbEnsembleConfig cfg;
  mbMlp net;                 /* layout of one member: inputs -> hidden... -> 2 * outputs */
  size_t nparams;            /* floats of one member */
  size_t ntotal;             /* members * nparams + 2 * outputs */
  /* [ntotal] slabs: member m's parameters at m * nparams (mbMlp layout), then max_logvar
     [outputs] and min_logvar [outputs] */
  float *params, *grads, *adam_m, *adam_v;
  float *max_logvar, *min_logvar;  /* views into params */
  mbAdam adam;               /* one step count for the whole slab */
  float *in_mean, *in_std;   /* [inputs] standardiser (0 and 1 until the first fit) */
  int *elite;                /* [elites] member indices, lowest holdout MSE first */
  float *holdout_mse;        /* [members] after the last fit (NaN before) */
  int64_t fits;              /* completed fit calls */
  mbRng rng;                 /* init, holdout split, bootstrap, shuffles */
  mbEnsWork *work;
} mbEnsemble;

/* Fills c with the reference values for the given widths. */
void mbn_ensDefaults(mbEnsembleConfig *c, int inputs, int outputs);

/* Sets c->weight_decay for c->nhidden hidden layers from the default list of MB_ENS_FIELDS. */
void mbn_ensDefaultDecay(mbEnsembleConfig *c);

/* Checks c and builds *out (parameters initialised from c->seed). MB_ERR on a bad config. */
int mbn_ensCreate(mbEnsemble **out, const mbEnsembleConfig *c);

/* Frees everything (NULL allowed). */
void mbn_ensFree(mbEnsemble *e);

/* Copies the fit defaults of e's config into o. */
void mbn_fitDefaults(mbFitOptions *o, const mbEnsemble *e);

/* A whole training call as the reference: holdout split, standardiser, bootstrap, epochs of
   minibatches until the patience rule (or a cap), best snapshots restored, elites chosen.
   x [N x inputs], y [N x outputs]. Polls mbu_interrupted between epochs (MB_ERR
   "interrupted", best snapshots restored). */
int mbn_ensFit(mbFitResult *res, mbEnsemble *e, const float *x, const float *y, int64_t N,
               const mbFitOptions *o);

/* One optimisation step on given minibatches: x [members x B x inputs] (raw: the current
   standardiser is applied), y [members x B x outputs]. Writes the loss (NLL summed over
   members + bound penalty + weight decay) before the update into *loss when not NULL. */
int mbn_ensTrainStep(double *loss, mbEnsemble *e, const float *x, const float *y, int B);

/* The bf16 operand reuse of training and fit (on by default; MBPO_ENS_FAST=0 turns it off):
   each member's weights are rounded to bf16 once per step (an image refreshed after each Adam
   update, attached with mbn_bf16Attach for the whole fit), and each activation and
   pre-activation gradient once where it is computed, instead of once per product that reads
   it. The same bits either way (tests compare both); the switch is for A/B timing and those
   tests. mbn_ensFastUse turns it on or off for the process (call it between calls). */
void mbn_ensFastUse(int on);
int mbn_ensFastInUse(void);

/* As mbn_ensTrainStep without the update: e->grads gets the gradient of the loss. */
int mbn_ensLossGrad(double *loss, mbEnsemble *e, const float *x, const float *y, int B);

/* Every member on x [N x inputs]: mean, logvar [members x N x outputs]. */
int mbn_ensPredict(float *mean, float *logvar, mbEnsemble *e, const float *x, int64_t N);

/* Holdout MSE of every member on (x, y) [N rows]: mse [members]. */
int mbn_ensEvaluate(float *mse, mbEnsemble *e, const float *x, const float *y, int64_t N);

/* A model step for N rows: obs [N x (outputs - 1)], act [N x (inputs - outputs + 1)].
   Sample mode: each row picks an elite uniformly with g and is computed by that member only,
   next = obs + delta and reward from N(mean, exp(logvar)). Mean mode: the mean of the elites'
   means, no noise. member [N] (may be NULL) gets the chosen member index (-1 in mean mode).
   Uses workspaces inside e: no allocation once they have grown to N rows. */
int mbn_ensStep(float *next_obs, float *reward, int32_t *member, mbEnsemble *e,
                const float *obs, const float *act, int64_t N, mbRng *g, mbPredMode mode);

/* Floating-point operations of one training step on B rows per member, and of a forward of
   one row through one member (for GFLOP/s figures). */
double mbn_ensTrainFlops(const mbEnsemble *e, int B);
double mbn_ensForwardFlops(const mbEnsemble *e);

/* Bytes held in workspaces (they grow to the largest call seen and are then reused). */
size_t mbn_ensWorkBytes(const mbEnsemble *e);

/* State descriptor (include/mbpo/state.h): format and layout (identity checks), params,
   adam_m, adam_v [ntotal], adam_t, input_mean, input_std [inputs], elites (member indices,
   1-based in Lua), holdout_mse [members], fits and the generator. Returns the count. */
int mbn_ensStateBlocks(mbStateBlock *b, mbEnsemble *e);

#endif
