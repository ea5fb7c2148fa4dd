/* Walker2d (Gym v2; specs/gym-tasks.md section 4): walk forward on two legs.
   obs [17] = (qpos[1:9], clip(qvel, -10, 10)); reward = dx/dt + 1 - 1e-3 |a|^2 with the
   alive bonus on the terminal step too; terminated unless 0.8 < height < 2 and
   -1 < pitch < 1 (no finiteness check, as in v2). */
#include "sim/task.h"

static double position(const mjModel *m, const mjData *d) {
  (void)m;
  return d->qpos[0];
}

static double reward(const mjModel *m, const mjData *d, double before, double after, double dt) {
  double r = (after - before) / dt;
  r += 1.0;
  r -= 1e-3 * mbs_ctrlSq(m, d);
  return r;
}

static int terminated(const mjModel *m, const mjData *d) {
  (void)m;
  double h = d->qpos[1], ang = d->qpos[2];
  return !(h > 0.8 && h < 2.0 && ang > -1.0 && ang < 1.0);
}

static void observe(float *obs, const mjModel *m, const mjData *d) {
  (void)m;
  for (int i = 0; i < 8; i++) obs[i] = (float)d->qpos[1 + i];
  for (int i = 0; i < 9; i++) obs[8 + i] = (float)mbs_clip(d->qvel[i], -10.0, 10.0);
}

/* qpos0 + U(-0.005, 0.005), qvel U(-0.005, 0.005) */
static void noise(const mjModel *m, mjData *d, mbRng *g, double scale) {
  mbs_addUniform(d->qpos, m->nq, g, 0.005, scale);
  mbs_addUniform(d->qvel, m->nv, g, 0.005, scale);
}

/* MBPO: done = not (0.8 < next_obs[0] < 2 and -1 < next_obs[1] < 1); NaN rows are done */
static void done(float *out, const float *obs, int64_t n, int flags) {
  (void)flags;
  for (int64_t r = 0; r < n; r++) {
    double h = obs[r * 17], ang = obs[r * 17 + 1];
    out[r] = (h > 0.8 && h < 2.0 && ang > -1.0 && ang < 1.0) ? 0.0f : 1.0f;
  }
}

const mbsTask mbs_walker2d = {
  .name = "Walker2d",
  .alias = {"Walker2d-v2", "walker2d", "walker", NULL},
  .xml = "walker2d.xml",
  .frame_skip = 4, .obs_dim = 17, .act_dim = 6, .rne = 0,
  .position = position, .reward = reward, .terminated = terminated, .observe = observe,
  .noise = noise, .done = done};
