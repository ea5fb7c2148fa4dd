/* Humanoid, MBPO's HumanoidTruncatedObs-v2 (Gym v2 rules; specs/gym-tasks.md section 7).
   obs [45] = (qpos[2:24], qvel[0:23]). reward = 0.25 dc/timestep - 0.1 |ctrl|^2
   - min(0.5e-6 |cfrc_ext|^2, 10) + 5, with c the whole-body centre of mass x computed from
   xipos as read straight after mj_step (the last forward pass's values, as Gym reads them),
   the divisor the physics timestep 0.003 (not dt), and cfrc_ext from mj_rnePostConstraint
   after the substeps; the alive bonus is paid on the terminal step too.
   terminated <=> z < 1 or z > 2 (no finiteness check).
   The model (humanoid.xml) keeps gym 0.12.0's left_hip_y range of -120..20 degrees, the one
   MBPO ran; later gym versions use -110 (the spec's golden trace is the same for both). */
#include "sim/task.h"

/* x of sum_b m_b xipos_b / sum_b m_b */
static double position(const mjModel *m, const mjData *d) {
  double mx = 0, mass = 0;
  for (int b = 0; b < m->nbody; b++) {
    mx += m->body_mass[b] * d->xipos[3 * b];
    mass += m->body_mass[b];
  }
  return mx / mass;
}

/* Gym's order: lin_vel_cost - quad_ctrl_cost - quad_impact_cost + alive_bonus */
static double reward(const mjModel *m, const mjData *d, double before, double after, double dt) {
  (void)dt;
  double lin = 0.25 * (after - before) / m->opt.timestep;
  double ctrl = 0.1 * mbs_ctrlSq(m, d);
  double impact = 0;
  for (int i = 0; i < 6 * m->nbody; i++) impact += d->cfrc_ext[i] * d->cfrc_ext[i];
  impact = 0.5e-6 * impact;
  if (impact > 10) impact = 10;
  return lin - ctrl - impact + 5.0;
}

static int terminated(const mjModel *m, const mjData *d) {
  (void)m;
  return d->qpos[2] < 1.0 || d->qpos[2] > 2.0;
}

static void observe(float *obs, const mjModel *m, const mjData *d) {
  (void)m;
  for (int i = 0; i < 22; i++) obs[i] = (float)d->qpos[2 + i];
  for (int i = 0; i < 23; i++) obs[22 + i] = (float)d->qvel[i];
}

/* qpos0 + U(-0.01, 0.01) on all 24 entries (the root quaternion comes out normalised by
   the reset's mj_forward, as for Ant), qvel U(-0.01, 0.01) */
static void noise(const mjModel *m, mjData *d, mbRng *g, double scale) {
  mbs_addUniform(d->qpos, m->nq, g, 0.01, scale);
  mbs_addUniform(d->qvel, m->nv, g, 0.01, scale);
}

/* MBPO: done = next_obs[0] < 1.0 or next_obs[0] > 2.0 (a NaN height is not done) */
static void done(float *out, const float *obs, int64_t n, int flags) {
  (void)flags;
  for (int64_t r = 0; r < n; r++) {
    double z = obs[r * 45];
    out[r] = (z < 1.0 || z > 2.0) ? 1.0f : 0.0f;
  }
}

const mbsTask mbs_humanoid = {
  .name = "Humanoid",
  .alias = {"Humanoid-v2", "humanoid", "HumanoidTruncatedObs-v2", "humanoid_truncated_obs"},
  .xml = "humanoid.xml",
  .frame_skip = 5, .obs_dim = 45, .act_dim = 17, .rne = 1,
  .position = position, .reward = reward, .terminated = terminated, .observe = observe,
  .noise = noise, .done = done};
