/* mbpo Soft Actor-Critic: a tanh-Gaussian policy, twin critics with Polyak-averaged
   targets and an automatically tuned temperature, updated by one coarse C call per batch.
   Networks are mbMlp descriptors (nn.h) over one parameter slab each; the two critics share
   one slab (critic 1 then critic 2) so Adam, Polyak and checkpoints are one call each.
   Layout conventions as in nn.h: row-major, batch first.
     obs [B x obs], act [B x act], reward [B], next_obs [B x obs], done [B] (1 = terminal)
   The policy network maps obs -> [mean (act) | log-std (act)]; log-std is clipped to
   [MB_SAC_LOGSTD_MIN, MB_SAC_LOGSTD_MAX]; the action is tanh(mean + exp(log-std) * eps).
   One update (mbr_sacUpdate) follows the reference order: critic targets and critic step,
   then the actor step through the updated critics, then the temperature step, then Polyak. */
#ifndef MBPO_SAC_H
#define MBPO_SAC_H

#include <stddef.h>
#include <stdint.h>

#include "mbpo/buffer.h"
#include "mbpo/fields.h"
#include "mbpo/nn.h"
#include "mbpo/rng.h"
#include "mbpo/state.h"

#define MB_SAC_LOGSTD_MIN (-20.0f)
#define MB_SAC_LOGSTD_MAX 2.0f
#define MB_SAC_MAXHIDDEN (MB_MLP_MAXLAYERS - 1)

/* Hyper-parameters: the rows of MB_SAC_FIELDS are their names, defaults, ranges and docs
   (mbr_sacDefaults fills the defaults; SAC.new reads the same keys). */
typedef struct mbSacConfig {
  int obs, act;                       /* observation and action widths */
  int nhidden;                        /* hidden layers of every network (1..MB_SAC_MAXHIDDEN) */
  int hidden[MB_SAC_MAXHIDDEN];       /* their widths */
  float actor_lr, critic_lr, alpha_lr;/* Adam learning rates (in this order: `lr` sets all) */
  float gamma;                        /* discount */
  float tau;                          /* Polyak rate of the target critics */
  float target_entropy;               /* temperature target */
  float init_alpha;                   /* initial temperature */
  int auto_alpha;                     /* 1: learn log_alpha; 0: alpha fixed at init_alpha */
  int batch;                          /* rows the update workspaces are sized for */
  uint64_t seed;                      /* initial weights and the agent's generator */
  union {                             /* of the networks' matrix products */
    mbPrecision precision;
    mbPrecision prec;                 /* the former name, kept while src/rl uses it */
  };
} mbSacConfig;

/* The settings of mbSacConfig (include/mbpo/fields.h): name, default, range, doc. */
#define MB_SAC_FIELDS(S) \
  MB_F_NEED(S, obs, 1, 1 << 20, "observation width") \
  MB_F_NEED(S, act, 1, 1 << 20, "action width") \
  MB_F_INTS(S, hidden, nhidden, MB_SAC_MAXHIDDEN, 1, 65536, \
            "hidden layer widths of the policy and of each critic", 256, 256) \
  MB_F_FLOATN(S, lr, actor_lr, 3, 3e-4, 0, HUGE_VAL, \
              "Adam learning rate of the actor, the critics and the temperature") \
  MB_F_FLOAT(S, actor_lr, MB_F_OPEN_LO, NAN, 0, HUGE_VAL, "the actor's learning rate (lr)") \
  MB_F_FLOAT(S, critic_lr, MB_F_OPEN_LO, NAN, 0, HUGE_VAL, "the critics' learning rate (lr)") \
  MB_F_FLOAT(S, alpha_lr, MB_F_OPEN_LO, NAN, 0, HUGE_VAL, \
             "the temperature's learning rate (lr)") \
  MB_F_FLOAT(S, gamma, 0, 0.99, 0, 1, "discount") \
  MB_F_FLOAT(S, tau, MB_F_OPEN_LO, 5e-3, 0, 1, "Polyak rate of the target critics") \
  MB_F_FLOAT(S, target_entropy, 0, -1, -HUGE_VAL, HUGE_VAL, \
             "entropy target of the temperature (the scripts set the paper's value per task)") \
  MB_F_FLOAT(S, init_alpha, MB_F_OPEN_LO, 1, 0, HUGE_VAL, "initial temperature") \
  MB_F_BOOL(S, auto_alpha, 1, "learn the temperature (false: keep init_alpha)") \
  MB_F_INT(S, batch, 256, 1, 1 << 24, "rows per SAC update") \
  MB_F_U64(S, seed, 0, "initial weights and the agent's own generator") \
  MB_F_ENUM(S, precision, 0, "fp32|bf16", \
            "matrix products: fp32, or bf16 operands with fp32 accumulation (AVX512-BF16/AMX)")

/* The table of MB_SAC_FIELDS (src/rl/sac.c). */
extern const mbField mbr_sacFields[];

/* What one update measured (all means over the batch). NaN or Inf here means the batch or
   the networks held non-finite values: the update still ran; the caller decides. The fields
   are also the array v, in the order of mbr_sacStatNames (their names in Lua). */
#define MB_SAC_NSTATS 10
typedef union mbSacStats {
  struct {
    double q1_loss, q2_loss;  /* mean((Qk(s, a) - y)^2) before the critic step */
    double critic_loss;       /* q1_loss + q2_loss */
    double actor_loss;        /* mean(alpha * logpi(a~|s) - min(Q1, Q2)(s, a~)), updated critics */
    double alpha_loss;        /* -mean(log_alpha * (logpi + target_entropy)), before its step */
    double alpha;             /* exp(log_alpha) used by this update's losses */
    double q_mean;            /* mean of (Q1 + Q2) / 2 at the batch's (s, a), before the step */
    double q_pi;              /* mean of min(Q1, Q2) at the policy's actions (actor step) */
    double target_mean;       /* mean of the critic targets y */
    double entropy;           /* -mean(logpi) of the actor step's samples */
  };
  double v[MB_SAC_NSTATS];
} mbSacStats;

/* The names of the statistics, in the order of mbSacStats.v. */
extern const char *const mbr_sacStatNames[MB_SAC_NSTATS];

/* The agent. Every field below "state" is needed to continue a run bit for bit. */
typedef struct mbSac {
  mbSacConfig cfg;
  mbMlp pi;                 /* policy: obs -> hidden... -> 2 act */
  mbMlp q;                  /* one critic: obs + act -> hidden... -> 1 */
  size_t npi, nq;           /* pi.nparams, q.nparams */
  float *slab;              /* one allocation holding every [npi] and [2 nq] array below */
  /* state */
  float *pi_p, *pi_m, *pi_v;        /* policy parameters and Adam moments [npi] */
  float *q_p, *q_targ, *q_m, *q_v;  /* critics, target critics, Adam moments [2 nq] */
  mbAdam pi_opt, q_opt, alpha_opt;  /* learning rates and step counts */
  float log_alpha, alpha_m, alpha_v;/* temperature and its Adam moments */
  mbRng rng;                        /* noise of the updates (and of act when given none) */
  int64_t updates;                  /* updates done */
  /* gradients of the last update (or of mbr_sacGradients) */
  float *pi_g;                      /* [npi] */
  float *q_g;                       /* [2 nq] */
  float alpha_g;                    /* d alpha_loss / d log_alpha */
  /* workspaces (not state): update buffers for up to cap rows, act buffers per thread */
  int cap;
  float *ws;
  size_t ws_floats;
  int act_nthreads;
  float *act_ws;
  size_t act_ws_floats;
  int batch_cap;                    /* rows of batch_ws (mbr_sacUpdatesMixed's sampled batch) */
  float *batch_ws;                  /* obs, act, reward, next_obs, done of batch_cap rows */
  uint16_t *img;                    /* bf16: images of pi_p [npi] then q_p [2 nq], attached
                                       (mbn_bf16Attach) only during an update call */
} mbSac;

/* Fills c with the defaults of MB_SAC_FIELDS for obs and act widths. */
void mbr_sacDefaults(mbSacConfig *c, int obs, int act);

/* Builds an agent: checks c, allocates, initialises the networks as PyTorch's nn.Linear
   (uniform +-1/sqrt(fan_in)) from c->seed, copies the critics into the targets. On error
   (bad config, out of memory) returns MB_ERR and leaves s safe to mbr_sacFree. */
int mbr_sacInit(mbSac *s, const mbSacConfig *c);

/* Releases everything s holds (safe on a zeroed or failed agent). */
void mbr_sacFree(mbSac *s);

/* One whole SAC update on a batch of B rows (noise from s->rng): critic step, actor step,
   temperature step (when auto_alpha), Polyak. st may be NULL. MB_ERR only on B < 1 or out of
   memory (workspaces grow when B exceeds the configured batch). */
int mbr_sacUpdate(mbSac *s, mbSacStats *st, const float *obs, const float *act,
                  const float *reward, const float *next_obs, const float *done, int B);

/* Running sums of the statistics of successive updates (each field the sum of that field
   over the updates, added one update at a time in update order). */
typedef mbSacStats mbSacSums;

/* n updates, each on a batch of B rows drawn by mbr_bufferSampleMixed(real, model, g, B,
   real_ratio) into a workspace of s: the same draws from g in the same order and the same
   arithmetic as n rounds of mbr_bufferSampleMixed + mbr_sacUpdate, so results are bit for bit
   those of that loop. Each update's statistics are added to sums (critic_loss = q1_loss +
   q2_loss) unless its critic or actor loss is not finite: then it stops there, leaves that
   update's statistics in bad and returns the number of finite updates before it (< n). Returns
   n when all were finite, MB_ERR on an error (empty buffers, widths that differ, memory). */
int mbr_sacUpdatesMixed(mbSac *s, mbSacSums *sums, mbSacStats *bad, const mbBuffer *real,
                        const mbBuffer *model, mbRng *g, int B, double real_ratio, int n);

/* The update's losses and gradients with given noise, without any parameter change:
   eps_next [B x act] samples a' ~ pi(s') for the targets, eps [B x act] samples the actor
   step's actions. Leaves the critic-loss gradient (q1_loss + q2_loss) in s->q_g, the
   actor-loss gradient (current critics) in s->pi_g and the temperature gradient in
   s->alpha_g. For tests. */
int mbr_sacGradients(mbSac *s, mbSacStats *st, const float *obs, const float *act,
                     const float *reward, const float *next_obs, const float *done,
                     const float *eps_next, const float *eps, int B);

/* Actions for N rows: out[N x act] = tanh(mean) when deterministic, else
   tanh(mean + std * eps) with eps drawn from g (s->rng when g is NULL). Rows are processed in
   chunks over mbu_threads() threads with per-thread workspaces kept in s. MB_ERR on N < 1
   or out of memory. */
int mbr_sacAct(mbSac *s, float *out, const float *obs, int N, int deterministic, mbRng *g);

/* Multiply-add FLOPs (2 per multiply-add) of the matrix products one update of B rows does. */
double mbr_sacUpdateFlops(const mbSac *s, int B);

/* Numerically stable log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), finite for all u. */
float mbr_logOneMinusTanh2(float u);

/* State descriptor (include/mbpo/state.h): layout (obs, act, hidden: an identity check),
   pi, pi_m, pi_v [npi], q, q_target, q_m, q_v [2 x nq], pi_t, q_t, alpha_t, updates,
   log_alpha, alpha_m, alpha_v and the generator: everything a continuation needs.
   Fills b[0..n) (n <= MB_STATE_MAXBLOCKS) and returns n. */
int mbr_sacStateBlocks(mbStateBlock *b, mbSac *s);

#endif
