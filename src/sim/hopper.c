/* Hopper (Gym v2; specs/gym-tasks.md section 3): hop forward without falling.
   obs [11] = (qpos[1:6], clip(qvel, -10, 10)); reward = dx/dt + 1 - 1e-3 |a|^2 with the
   alive bonus on the terminal step too; terminated unless the state is finite,
   |s[2:]| < 100, height > 0.7 and |pitch| < 0.2. */
#include "sim/task.h"

static double position(const mjModel *m, const mjData *d) {
  (void)m;
  return d->qpos[0];
}

/* Gym's order: (x_after - x_before) / dt, + alive bonus, - control cost */
static double reward(const mjModel *m, const mjData *d, double before, double after, double dt) {
  double r = (after - before) / dt;
  r += 1.0;
  r -= 1e-3 * mbs_ctrlSq(m, d);
  return r;
}

/* s = [qpos, qvel]: healthy <=> finite, |s[2:]| < 100 (unclipped qvel), z > 0.7, |pitch| < 0.2 */
static int terminated(const mjModel *m, const mjData *d) {
  if (!mbs_allFinite(d->qpos, m->nq) || !mbs_allFinite(d->qvel, m->nv)) return 1;
  for (int i = 2; i < m->nq; i++)
    if (!(fabs(d->qpos[i]) < 100)) return 1;
  for (int i = 0; i < m->nv; i++)
    if (!(fabs(d->qvel[i]) < 100)) return 1;
  return !(d->qpos[1] > 0.7 && fabs(d->qpos[2]) < 0.2);
}

static void observe(float *obs, const mjModel *m, const mjData *d) {
  (void)m;
  for (int i = 0; i < 5; i++) obs[i] = (float)d->qpos[1 + i];
  for (int i = 0; i < 6; i++) obs[5 + i] = (float)mbs_clip(d->qvel[i], -10.0, 10.0);
}

/* qpos0 + U(-0.005, 0.005), qvel U(-0.005, 0.005) */
static void noise(const mjModel *m, mjData *d, mbRng *g, double scale) {
  mbs_addUniform(d->qpos, m->nq, g, 0.005, scale);
  mbs_addUniform(d->qvel, m->nv, g, 0.005, scale);
}

/* MBPO: done = not (finite and next_obs[1:] < 100 and height > 0.7 and |angle| < 0.2).
   The reference applies abs to the boolean "next_obs[1:] < 100", so its bound is one-sided;
   MBS_TWO_SIDED gives |next_obs[1:]| < 100 instead. */
static void done(float *out, const float *obs, int64_t n, int flags) {
  int two = flags & MBS_TWO_SIDED;
  for (int64_t r = 0; r < n; r++) {
    const float *o = obs + r * 11;
    int ok = mbs_allFinitef(o, 11);
    for (int i = 1; ok && i < 11; i++) ok = two ? fabs((double)o[i]) < 100 : o[i] < 100;
    ok = ok && o[0] > 0.7 && fabs((double)o[1]) < 0.2;
    out[r] = ok ? 0.0f : 1.0f;
  }
}

const mbsTask mbs_hopper = {
  .name = "Hopper",
  .alias = {"Hopper-v2", "hopper", NULL},
  .xml = "hopper.xml",
  .frame_skip = 4, .obs_dim = 11, .act_dim = 3, .rne = 0,
  .position = position, .reward = reward, .terminated = terminated, .observe = observe,
  .noise = noise, .done = done};
