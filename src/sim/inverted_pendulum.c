/* InvertedPendulum (Gym v2; specs/gym-tasks.md section 2): keep the pole within 0.2 rad.
   obs [4] = (cart x, pole angle, cart velocity, pole angular velocity); reward 1 per step,
   the terminal step included; terminated when the obs is not finite or |angle| > 0.2. */
#include "sim/task.h"

/* the reward does not depend on a position */
static double position(const mjModel *m, const mjData *d) {
  (void)m; (void)d;
  return 0.0;
}

static double reward(const mjModel *m, const mjData *d, double before, double after, double dt) {
  (void)m; (void)d; (void)before; (void)after; (void)dt;
  return 1.0;
}

/* not done <=> obs finite and |qpos[1]| <= 0.2 (the obs is qpos, qvel unclipped) */
static int terminated(const mjModel *m, const mjData *d) {
  int finite = mbs_allFinite(d->qpos, m->nq) && mbs_allFinite(d->qvel, m->nv);
  return !(finite && fabs(d->qpos[1]) <= 0.2);
}

static void observe(float *obs, const mjModel *m, const mjData *d) {
  (void)m;
  obs[0] = (float)d->qpos[0];
  obs[1] = (float)d->qpos[1];
  obs[2] = (float)d->qvel[0];
  obs[3] = (float)d->qvel[1];
}

/* qpos0 + U(-0.01, 0.01), qvel U(-0.01, 0.01) */
static void noise(const mjModel *m, mjData *d, mbRng *g, double scale) {
  mbs_addUniform(d->qpos, m->nq, g, 0.01, scale);
  mbs_addUniform(d->qvel, m->nv, g, 0.01, scale);
}

/* MBPO: done = not (all finite and |next_obs[1]| <= 0.2) */
static void done(float *out, const float *obs, int64_t n, int flags) {
  (void)flags;
  for (int64_t r = 0; r < n; r++) {
    const float *o = obs + r * 4;
    out[r] = (mbs_allFinitef(o, 4) && fabs((double)o[1]) <= 0.2) ? 0.0f : 1.0f;
  }
}

const mbsTask mbs_inverted_pendulum = {
  .name = "InvertedPendulum",
  .alias = {"InvertedPendulum-v2", "inverted_pendulum", "invertedpendulum", NULL},
  .xml = "inverted_pendulum.xml",
  .frame_skip = 2, .obs_dim = 4, .act_dim = 1, .rne = 0,
  .position = position, .reward = reward, .terminated = terminated, .observe = observe,
  .noise = noise, .done = done};
