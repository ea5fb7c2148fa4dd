/* mbpo simulation core: the six MuJoCo tasks MBPO is measured on and user MJCF models.
   An mbEnv owns one mjModel/mjData pair, its own generator (reset noise) and the episode
   counters. Built-in tasks (Gym v2 semantics, specs/gym-tasks.md) compute observation,
   reward and termination in C; a custom model (mbs_fromFile) only steps the physics and
   leaves those rules to its caller (the Lua binding calls the user's task functions).
   Actions are the policy's u in [-1, 1]^act_dim: a ctrl-limited actuator gets
   ctrl = mid + half * clip(u, -1, 1) of its ctrlrange (Humanoid 0.4u, InvertedPendulum 3u,
   the others u), an unlimited one gets ctrl = u.
   MuJoCo errors inside every mj_* call are caught (setjmp/longjmp around the call) and
   become MB_ERR with MuJoCo's text; MuJoCo warnings are queued for mbs_nextWarning(). */
#ifndef MBPO_ENV_H
#define MBPO_ENV_H

#include <stddef.h>
#include <stdint.h>

#include "mbpo/fields.h"
#include "mbpo/rng.h"
#include "mbpo/state.h"

typedef struct mbEnv mbEnv;

#define MBS_MAX_STEPS 1000   /* Gym's TimeLimit / MBPO's max_path_length */
#define MBS_TWO_SIDED 1      /* mbs_termination flag: Hopper's |obs[1:]| < 100 bound */

/* Built-in tasks ------------------------------------------------------------------------ */

/* Number of built-in tasks and the canonical name of task i ("Hopper", ...). */
int mbs_taskCount(void);
const char *mbs_taskName(int i);
/* Canonical name for any accepted spelling ("Hopper", "Hopper-v2", "hopper",
   "AntTruncatedObs-v2", ...), or NULL when unknown. */
const char *mbs_canonicalName(const char *name);
/* Observation and action sizes of a built-in task by any accepted name (-1 when unknown). */
int mbs_taskObsDim(const char *name);
int mbs_taskActDim(const char *name);

/* Creation --------------------------------------------------------------------------------- */

/* Options of an env's creation: E.make(name, opts) reads MB_ENV_FIELDS, E.from_mjcf a custom
   task table's settings MB_MJCF_FIELDS (include/mbpo/fields.h). */
typedef struct mbEnvOptions {
  uint64_t seed;
  int max_steps;
  int frame_skip;
  double reset_noise;
} mbEnvOptions;

#define MB_ENV_FIELDS(S) \
  MB_F_U64(S, seed, 0, "the env's generator (reset noise)") \
  MB_F_INT(S, max_steps, MBS_MAX_STEPS, 1, 2147483647, "steps before an episode is truncated")
#define MB_MJCF_FIELDS(S) MB_ENV_FIELDS(S) \
  MB_F_INT(S, frame_skip, 1, 1, 100000, "physics steps per env step") \
  MB_F_DOUBLE(S, reset_noise, 0, 0.005, 0, HUGE_VAL, \
              "half-width of the uniform reset noise (without the task's own reset)")
/* The tables of MB_ENV_FIELDS and MB_MJCF_FIELDS (src/sim/env.c). */
extern const mbField mbs_envFields[], mbs_mjcfFields[];

/* Options of a reset (env:reset(opts)): the rows of mbs_resetFields. seed has no default
   (given, it reseeds the env's generator first); noise_scale multiplies the reset noise. */
typedef struct mbsResetOptions { uint64_t seed; double noise_scale; } mbsResetOptions;
extern const mbField mbs_resetFields[];

/* A built-in task by any accepted name, its model compiled from the embedded MJCF; the
   env's generator is seeded with (seed, 0). NULL + mbu_error on failure. */
mbEnv *mbs_make(const char *name, uint64_t seed);
/* A custom model from an MJCF (or URDF) file; frame_skip >= 1 physics steps per env step.
   Its state is qpos0 after a forward pass (positions computed, no draws from the generator,
   no episode started). NULL + mbu_error carrying MuJoCo's own message when the model does
   not load. */
mbEnv *mbs_fromFile(const char *path, int frame_skip, uint64_t seed);
/* Frees the env (NULL is fine). */
void mbs_free(mbEnv *env);

/* Sizes and settings ------------------------------------------------------------------------ */

const char *mbs_name(const mbEnv *env);     /* canonical task name or the custom model's */
int mbs_isCustom(const mbEnv *env);
int mbs_obsDim(const mbEnv *env);           /* 0 for a custom env until mbs_setObsDim */
void mbs_setObsDim(mbEnv *env, int obs_dim);
int mbs_actDim(const mbEnv *env);           /* = nu */
int mbs_nq(const mbEnv *env);
int mbs_nv(const mbEnv *env);
int mbs_nbody(const mbEnv *env);
int mbs_frameSkip(const mbEnv *env);
double mbs_dt(const mbEnv *env);            /* timestep * frame_skip */
double mbs_timestep(const mbEnv *env);
int mbs_maxSteps(const mbEnv *env);
void mbs_setMaxSteps(mbEnv *env, int max_steps);
/* Reset noise half-width of a custom env without its own reset rule (default 0.005). */
void mbs_setResetNoise(mbEnv *env, double noise);
/* ctrl range of actuator i as the action map uses it: lo[i], hi[i] (unlimited: -inf, inf). */
void mbs_ctrlRange(double *lo, double *hi, const mbEnv *env);
/* The env's generator (reset noise); its state is part of the checkpoint. */
mbRng *mbs_rng(mbEnv *env);

/* Episode -------------------------------------------------------------------------------- */

/* Built-in task reset: mj_resetData, qpos = qpos0 + noise_scale * noise_q,
   qvel = noise_scale * noise_v (the task's distributions, drawn from the env's generator),
   mj_forward (+ mj_rnePostConstraint where the task reads cfrc_ext). obs [obs_dim] may be
   NULL. */
int mbs_reset(float *obs, mbEnv *env, double noise_scale);

/* One env step of a built-in task: ctrl from action [act_dim], frame_skip mj_step calls,
   mj_rnePostConstraint where needed, then reward, termination (the task's rule),
   truncation (steps >= max_steps) and obs [obs_dim] (may be NULL). Errors on a non-finite
   action, before the first reset, and after the episode ended. */
int mbs_step(float *obs, double *reward, int *terminated, int *truncated, mbEnv *env,
             const double *action);

/* Overwrites qpos [nq] and qvel [nv], then mj_forward (+ mj_rnePostConstraint), like Gym's
   set_state; the step counter is kept and the episode is live again. obs may be NULL
   (always NULL for custom envs). */
int mbs_setState(float *obs, mbEnv *env, const double *qpos, const double *qvel);

/* Observation of the current state (built-in tasks). */
int mbs_observe(float *obs, const mbEnv *env);
/* The task's own termination rule on the current state (built-in tasks): 1 = terminated. */
int mbs_terminated(const mbEnv *env);

/* Custom envs: the steps of reset and step around the caller's own rules.
   mbs_resetData: mj_resetData (qpos = qpos0, qvel = 0) so a reset rule can read qpos0.
   mbs_resetTo: qpos/qvel given (either may be NULL: qpos0 / 0 plus the default uniform
   noise times noise_scale), then mj_forward + mj_rnePostConstraint; the episode starts.
   mbs_simulate: snapshot of the state "before", ctrl from action, frame_skip mj_step calls,
   mj_rnePostConstraint, step counter + 1.
   mbs_endStep: records the caller's termination; returns truncated (0/1). */
int mbs_resetData(mbEnv *env);
int mbs_resetTo(mbEnv *env, const double *qpos, const double *qvel, double noise_scale);
int mbs_simulate(mbEnv *env, const double *action);
int mbs_endStep(mbEnv *env, int terminated);

/* Read access to the simulation (for custom task rules): pointers into mjData, or into the
   snapshot taken at the start of the last step (before = 1). xpos/xipos are [nbody x 3]
   (body frames / centres of mass; as Gym reads them: straight after mj_step, so the last
   forward pass's values), cfrc_ext [nbody x 6] (torque, force), ctrl [nu], body_mass
   [nbody]. Valid until the next call that changes the env. */
typedef struct mbsView {
  int nq, nv, nu, nbody;
  const double *qpos, *qvel, *ctrl, *xpos, *xipos, *cfrc_ext, *body_mass;
  double time;
} mbsView;
void mbs_view(mbsView *view, const mbEnv *env, int before);

/* Body id (0 = world) by name, or -1. */
int mbs_bodyId(const mbEnv *env, const char *name);

/* Episode counters: steps taken, whether reset was called, whether the episode ended. */
int64_t mbs_steps(const mbEnv *env);
int mbs_started(const mbEnv *env);
int mbs_done(const mbEnv *env);
/* Restores the counters (checkpoint load). */
void mbs_setProgress(mbEnv *env, int64_t steps, int started, int done);

/* State descriptor (include/mbpo/state.h): name (an identity check), steps, started, done,
   the generator, and the mjData arrays a bit-for-bit continuation needs as F64 blocks (time,
   qpos, qvel, act, ctrl, qacc_warmstart for the solver warm start, and the lagged xpos,
   xipos, cfrc_ext the rewards read), pointing straight into mjData. Returns the count. */
int mbs_stateBlocks(mbStateBlock *b, mbEnv *env);

/* Model-rollout termination ------------------------------------------------------------------ */

/* done[n] = 1.0 where MBPO's termination function of the task (by any accepted name) says
   the row of next_obs [n x obs_dim] is terminal, else 0.0 (gym-tasks.md "MBPO termination
   function"; Hopper's bound one-sided unless flags has MBS_TWO_SIDED). */
int mbs_termination(float *done, const char *name, const float *next_obs, int64_t n,
                    int64_t obs_dim, int flags);

/* MuJoCo warnings --------------------------------------------------------------------------- */

/* Pops the oldest queued MuJoCo warning of this thread (NULL when none); the text stays
   valid until the next call. */
const char *mbs_nextWarning(void);

#endif
