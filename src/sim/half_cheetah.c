/* HalfCheetah (Gym v2; specs/gym-tasks.md section 5): run forward; never terminates.
   obs [17] = (qpos[1:9], qvel[0:9]) unclipped; reward = -0.1 |a|^2 + dx/dt. */
#include "sim/task.h"

static double position(const mjModel *m, const mjData *d) {
  (void)m;
  return d->qpos[0];
}

/* Gym's order: reward_ctrl + reward_run */
static double reward(const mjModel *m, const mjData *d, double before, double after, double dt) {
  double ctrl = -0.1 * mbs_ctrlSq(m, d);
  double run = (after - before) / dt;
  return ctrl + run;
}

static int terminated(const mjModel *m, const mjData *d) {
  (void)m; (void)d;
  return 0;
}

static void observe(float *obs, const mjModel *m, const mjData *d) {
  (void)m;
  for (int i = 0; i < 8; i++) obs[i] = (float)d->qpos[1 + i];
  for (int i = 0; i < 9; i++) obs[8 + i] = (float)d->qvel[i];
}

/* qpos0 + U(-0.1, 0.1), qvel 0.1 N(0, 1) */
static void noise(const mjModel *m, mjData *d, mbRng *g, double scale) {
  mbs_addUniform(d->qpos, m->nq, g, 0.1, scale);
  mbs_addNormal(d->qvel, m->nv, g, 0.1, scale);
}

/* MBPO: never done */
static void done(float *out, const float *obs, int64_t n, int flags) {
  (void)obs; (void)flags;
  for (int64_t r = 0; r < n; r++) out[r] = 0.0f;
}

const mbsTask mbs_half_cheetah = {
  .name = "HalfCheetah",
  .alias = {"HalfCheetah-v2", "half_cheetah", "halfcheetah", NULL},
  .xml = "half_cheetah.xml",
  .frame_skip = 5, .obs_dim = 17, .act_dim = 6, .rne = 0,
  .position = position, .reward = reward, .terminated = terminated, .observe = observe,
  .noise = noise, .done = done};
