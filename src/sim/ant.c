/* Ant, MBPO's AntTruncatedObs-v2 (Gym v2 rules; specs/gym-tasks.md section 6).
   obs [27] = (qpos[2:15], qvel[0:14]): the contact forces are dropped from the observation
   but kept in the reward. reward = dx/dt - 0.5 |a|^2 - 0.5e-3 |clip(cfrc_ext, -1, 1)|^2 + 1
   with x the torso frame's x read straight after mj_step (the last forward pass's value, as
   Gym reads it) and cfrc_ext from mj_rnePostConstraint after the substeps; the survive
   reward is paid on the terminal step too. terminated unless the state is finite and
   0.2 <= z <= 1. */
#include "sim/task.h"

#define TORSO 1 /* body id of the torso */

static double position(const mjModel *m, const mjData *d) {
  (void)m;
  return d->xpos[3 * TORSO];
}

/* Gym's order: forward - ctrl_cost - contact_cost + survive */
static double reward(const mjModel *m, const mjData *d, double before, double after, double dt) {
  double forward = (after - before) / dt;
  double ctrl = 0.5 * mbs_ctrlSq(m, d);
  double contact = 0;
  for (int i = 0; i < 6 * m->nbody; i++) {
    double c = mbs_clip(d->cfrc_ext[i], -1.0, 1.0);
    contact += c * c;
  }
  contact *= 0.5 * 1e-3;
  return forward - ctrl - contact + 1.0;
}

/* inclusive bounds: healthy <=> finite and 0.2 <= z <= 1.0 */
static int terminated(const mjModel *m, const mjData *d) {
  int finite = mbs_allFinite(d->qpos, m->nq) && mbs_allFinite(d->qvel, m->nv);
  return !(finite && d->qpos[2] >= 0.2 && d->qpos[2] <= 1.0);
}

static void observe(float *obs, const mjModel *m, const mjData *d) {
  (void)m;
  for (int i = 0; i < 13; i++) obs[i] = (float)d->qpos[2 + i];
  for (int i = 0; i < 14; i++) obs[13 + i] = (float)d->qvel[i];
}

/* qpos0 + U(-0.1, 0.1) on all 15 entries (quaternion included; Gym does not renormalise
   it, but MuJoCo 2.2.2's mj_kinematics normalises free-joint quaternions in qpos in place,
   so after the reset's mj_forward the first observation carries a unit quaternion),
   qvel 0.1 N(0, 1) */
static void noise(const mjModel *m, mjData *d, mbRng *g, double scale) {
  mbs_addUniform(d->qpos, m->nq, g, 0.1, scale);
  mbs_addNormal(d->qvel, m->nv, g, 0.1, scale);
}

/* MBPO: done = not (finite and 0.2 <= next_obs[0] <= 1.0); next_obs[0] is the torso z */
static void done(float *out, const float *obs, int64_t n, int flags) {
  (void)flags;
  for (int64_t r = 0; r < n; r++) {
    const float *o = obs + r * 27;
    out[r] = (mbs_allFinitef(o, 27) && o[0] >= 0.2 && o[0] <= 1.0) ? 0.0f : 1.0f;
  }
}

const mbsTask mbs_ant = {
  .name = "Ant",
  .alias = {"Ant-v2", "ant", "AntTruncatedObs-v2", "ant_truncated_obs"},
  .xml = "ant.xml",
  .frame_skip = 5, .obs_dim = 27, .act_dim = 8, .rne = 1,
  .position = position, .reward = reward, .terminated = terminated, .observe = observe,
  .noise = noise, .done = done};
