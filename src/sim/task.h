/* Internal to src/sim: the description of a built-in task (one per <task>.c) and the parts
   of the env that task code needs. Not a public header. */
#ifndef MBPO_SIM_TASK_H
#define MBPO_SIM_TASK_H

#include <math.h>
#include <stdint.h>

#include <mujoco/mujoco.h>

#include "mbpo/env.h"
#include "mbpo/rng.h"

/* A built-in task: the rules of specs/gym-tasks.md for one model. */
typedef struct mbsTask {
  const char *name;          /* canonical name, "Hopper" */
  const char *alias[4];      /* other accepted names, NULL-terminated when shorter */
  const char *xml;           /* embedded MJCF file name, "hopper.xml" */
  int frame_skip;
  int obs_dim;
  int act_dim;
  int rne;                   /* 1: the reward reads cfrc_ext (mj_rnePostConstraint) */
  /* the coordinate the forward reward differentiates, read from mjData as it is */
  double (*position)(const mjModel *m, const mjData *d);
  /* reward of the step that moved position from before to after (ctrl in d->ctrl) */
  double (*reward)(const mjModel *m, const mjData *d, double before, double after, double dt);
  /* the env's termination rule on the current state: 1 = terminated */
  int (*terminated)(const mjModel *m, const mjData *d);
  /* obs [obs_dim] of the current state */
  void (*observe)(float *obs, const mjModel *m, const mjData *d);
  /* adds the reset noise (times scale) to d->qpos / d->qvel, which hold qpos0 / 0 */
  void (*noise)(const mjModel *m, mjData *d, mbRng *g, double scale);
  /* MBPO's termination function: done [n] from next_obs [n x obs_dim] */
  void (*done)(float *done, const float *obs, int64_t n, int flags);
} mbsTask;

extern const mbsTask mbs_inverted_pendulum, mbs_hopper, mbs_walker2d, mbs_half_cheetah,
                     mbs_ant, mbs_humanoid;

/* The env's compiled model and its data (for the renderer, src/sim/render.c). */
mjModel *mbs_mjModel(const mbEnv *env);
mjData *mbs_mjData(const mbEnv *env);
/* Runs fn(arg) with MuJoCo errors caught (as every mj_* call of env.c is): MB_OK, or MB_ERR
   with "what: MuJoCo error: <MuJoCo's text>". */
int mbs_guardedCall(void (*fn)(void *), void *arg, const char *what);

/* Helpers shared by the task files -------------------------------------------------------- */

/* x += scale * U(-w, w) for n entries, drawn in order */
static inline void mbs_addUniform(double *x, int n, mbRng *g, double w, double scale) {
  for (int i = 0; i < n; i++) x[i] += scale * (-w + 2.0 * w * mbg_uniform(g));
}

/* x += scale * sigma * N(0, 1) for n entries, drawn in order */
static inline void mbs_addNormal(double *x, int n, mbRng *g, double sigma, double scale) {
  for (int i = 0; i < n; i++) x[i] += scale * sigma * mbg_normal(g);
}

/* 1 when all n entries are finite */
static inline int mbs_allFinite(const double *x, int n) {
  for (int i = 0; i < n; i++)
    if (!isfinite(x[i])) return 0;
  return 1;
}

/* 1 when all n float entries are finite */
static inline int mbs_allFinitef(const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return 0;
  return 1;
}

/* sum of squares of d->ctrl */
static inline double mbs_ctrlSq(const mjModel *m, const mjData *d) {
  double s = 0;
  for (int i = 0; i < m->nu; i++) s += d->ctrl[i] * d->ctrl[i];
  return s;
}

static inline double mbs_clip(double x, double lo, double hi) {
  return x < lo ? lo : x > hi ? hi : x;
}

#endif
