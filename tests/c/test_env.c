/* Tests of src/sim: the compiled models against the spec's tables, the golden traces of
   specs/gym-tasks.md section 8.3, observation/reward/termination rules recomputed here from
   the raw state, the batched MBPO termination functions on crafted rows and on real
   transitions, reset noise, the action map, exact resume, MuJoCo error/warning routing,
   custom models, and the uniform-random-policy statistics of section 8.2 for the three
   fast tasks (the other three: tests/env_random_check.lua, run by hand: about a minute). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mujoco/mujoco.h>

#include "mbpo/core.h"
#include "mbpo/env.h"
#include "mbpo/rng.h"
#include "test.h"

/* generated from src/sim's XML files (build/gen/models.c) */
const char *mbs_embedded(const char *name);

/* |a - b| <= tol * |b| (relative, for the golden traces) */
#define CHECK_REL(a, b, tol) do {                                          \
    double a_ = (double)(a), b_ = (double)(b);                             \
    CHECK(fabs(a_ - b_) <= (tol) * fabs(b_), "%s = %.9g, expected %.9g (rel tol %g)", #a, a_, \
          b_, (double)(tol));                                              \
  } while (0)

/* Helpers ------------------------------------------------------------------------------------ */

/* compiles an embedded model directly with MuJoCo (independent of the env layer) */
static mjModel *load_embedded(const char *file) {
  const char *xml = mbs_embedded(file);
  if (!xml) return NULL;
  mjVFS *vfs = malloc(sizeof *vfs);
  mj_defaultVFS(vfs);
  int len = (int)strlen(xml);
  mj_makeEmptyFileVFS(vfs, file, len);
  memcpy(vfs->filedata[mj_findFileVFS(vfs, file)], xml, (size_t)len);
  char err[1000] = "";
  mjModel *m = mj_loadXML(file, vfs, err, sizeof err);
  if (!m) fprintf(stderr, "  %s: %s\n", file, err);
  mj_deleteVFS(vfs);
  free(vfs);
  return m;
}

/* writes text to a fresh temporary file; returns its path (static buffer per slot) */
static const char *tmpfile_with(int slot, const char *text) {
  static char paths[4][64];
  snprintf(paths[slot], sizeof paths[slot], "/tmp/mbpo_test_env_%d_%d.xml", (int)getpid(), slot);
  FILE *f = fopen(paths[slot], "w");
  if (!f) return NULL;
  fputs(text, f);
  fclose(f);
  return paths[slot];
}

static void uniform_action(double *u, int n, mbRng *g) {
  for (int i = 0; i < n; i++) u[i] = -1.0 + 2.0 * mbg_uniform(g);
}

/* Dimensions and model facts ------------------------------------------------------------------ */

/* spec 8.1: obs (MBPO), act, dt; every accepted spelling resolves */
static void test_dims(void) {
  struct { const char *names[4]; int obs, act; double dt; } want[] = {
    {{"InvertedPendulum", "InvertedPendulum-v2", "inverted_pendulum", NULL}, 4, 1, 0.04},
    {{"Hopper", "Hopper-v2", "hopper", NULL}, 11, 3, 0.008},
    {{"Walker2d", "Walker2d-v2", "walker2d", NULL}, 17, 6, 0.008},
    {{"HalfCheetah", "HalfCheetah-v2", "half_cheetah", "halfcheetah"}, 17, 6, 0.05},
    {{"Ant", "Ant-v2", "ant", "AntTruncatedObs-v2"}, 27, 8, 0.05},
    {{"Humanoid", "Humanoid-v2", "humanoid", "HumanoidTruncatedObs-v2"}, 45, 17, 0.015},
  };
  CHECK(mbs_taskCount() == 6, "task count %d", mbs_taskCount());
  for (int k = 0; k < 6; k++) {
    for (int a = 0; a < 4 && want[k].names[a]; a++) {
      const char *c = mbs_canonicalName(want[k].names[a]);
      CHECK(c && strcmp(c, want[k].names[0]) == 0, "alias %s -> %s", want[k].names[a],
            c ? c : "NULL");
    }
    mbEnv *e = mbs_make(want[k].names[1], 0);
    CHECK(e != NULL, "make %s: %s", want[k].names[1], mbu_lasterror());
    if (!e) continue;
    CHECK(mbs_obsDim(e) == want[k].obs, "%s obs %d", want[k].names[0], mbs_obsDim(e));
    CHECK(mbs_actDim(e) == want[k].act, "%s act %d", want[k].names[0], mbs_actDim(e));
    CHECK_NEAR(mbs_dt(e), want[k].dt, 1e-12);
    CHECK(mbs_maxSteps(e) == 1000, "max steps %d", mbs_maxSteps(e));
    CHECK(strcmp(mbs_name(e), want[k].names[0]) == 0, "name %s", mbs_name(e));
    CHECK(mbs_taskObsDim(want[k].names[2]) == want[k].obs, "taskObsDim");
    mbs_free(e);
  }
  CHECK(mbs_canonicalName("hopper-v3") == NULL, "unknown alias accepted");
  CHECK(mbs_make("Pong", 0) == NULL && strstr(mbu_lasterror(), "unknown task 'Pong'"),
        "unknown task message: %s", mbu_lasterror());
}

/* spec 1.8 and the per-task tables: sizes, options, total and body masses, inertias,
   ranges, gears, contact settings of the compiled models */
static void test_model_facts(void) {
  struct { const char *file; int nq, nv, nu, nbody; double ts, mass; int integ, solver, iters; }
  want[] = {
    {"inverted_pendulum.xml", 2, 2, 1, 3, 0.02, 15.4906, mjINT_RK4, mjSOL_NEWTON, 100},
    {"hopper.xml", 6, 6, 3, 5, 0.002, 15.8200, mjINT_RK4, mjSOL_NEWTON, 100},
    {"walker2d.xml", 9, 9, 6, 8, 0.002, 23.6771, mjINT_RK4, mjSOL_NEWTON, 100},
    {"half_cheetah.xml", 9, 9, 6, 8, 0.01, 14.0000, mjINT_EULER, mjSOL_NEWTON, 100},
    {"ant.xml", 15, 14, 8, 14, 0.01, 0.91088, mjINT_RK4, mjSOL_NEWTON, 100},
    {"humanoid.xml", 24, 23, 17, 14, 0.003, 42.1160, mjINT_RK4, mjSOL_PGS, 50},
  };
  for (int k = 0; k < 6; k++) {
    mjModel *m = load_embedded(want[k].file);
    CHECK(m != NULL, "%s does not load", want[k].file);
    if (!m) continue;
    CHECK(m->nq == want[k].nq && m->nv == want[k].nv && m->nu == want[k].nu &&
          m->nbody == want[k].nbody, "%s sizes %d %d %d %d", want[k].file, m->nq, m->nv, m->nu,
          m->nbody);
    CHECK_NEAR(m->opt.timestep, want[k].ts, 1e-15);
    CHECK(m->opt.integrator == want[k].integ, "%s integrator %d", want[k].file, m->opt.integrator);
    CHECK(m->opt.solver == want[k].solver && m->opt.iterations == want[k].iters,
          "%s solver %d/%d", want[k].file, m->opt.solver, m->opt.iterations);
    CHECK_NEAR(m->opt.tolerance, 1e-8, 1e-20);
    CHECK(m->opt.cone == mjCONE_PYRAMIDAL, "%s cone", want[k].file);
    CHECK_NEAR(m->opt.gravity[2], -9.81, 1e-12);
    double mass = 0;
    for (int b = 0; b < m->nbody; b++) mass += m->body_mass[b];
    CHECK(fabs(mass - want[k].mass) < 1e-4 * want[k].mass, "%s total mass %.6f, spec %.6f",
          want[k].file, mass, want[k].mass);
    for (int u = 0; u < m->nu; u++)
      CHECK(m->actuator_ctrllimited[u], "%s actuator %d not ctrl-limited", want[k].file, u);
    mj_deleteModel(m);
  }

  /* Hopper: per-body masses and inertias (3.2), foot friction 2, condim 1 except the floor */
  mjModel *m = load_embedded("hopper.xml");
  if (m) {
    const double mass[] = {0, 3.6652, 4.0579, 2.7814, 5.3156};
    const double inert[][3] = {{0, 0, 0}, {0.06925, 0.06925, 0.004451},
      {0.09330, 0.09330, 0.004941}, {0.07230, 0.07230, 0.002182}, {0.10352, 0.10352, 0.009242}};
    for (int b = 1; b < 5; b++) {
      CHECK(fabs(m->body_mass[b] - mass[b]) < 1e-4, "hopper body %d mass %.5f", b, m->body_mass[b]);
      for (int i = 0; i < 3; i++)
        CHECK(fabs(m->body_inertia[3 * b + i] - inert[b][i]) < 6e-6 + 1e-4 * inert[b][i],
              "hopper body %d inertia %d: %.6f", b, i, m->body_inertia[3 * b + i]);
    }
    CHECK(m->geom_condim[0] == 3 && m->geom_condim[1] == 1, "hopper condim");
    CHECK_NEAR(m->geom_friction[3 * 4], 2.0, 1e-12);
    CHECK_NEAR(m->geom_margin[1], 0.001, 1e-12);
    CHECK_NEAR(m->qpos0[1], 1.25, 1e-12);
    CHECK_NEAR(m->actuator_gear[0], 200, 1e-12);
    CHECK_NEAR(m->dof_armature[3], 1, 1e-12);
    CHECK_NEAR(m->jnt_range[2 * 3], -150 * M_PI / 180, 1e-12);
    mj_deleteModel(m);
  }
  /* Walker2d: left foot friction 1.9, right 0.9; no self-collision; foot inertia */
  m = load_embedded("walker2d.xml");
  if (m) {
    int rf = mj_name2id(m, mjOBJ_BODY, "foot"), lf = mj_name2id(m, mjOBJ_BODY, "foot_left");
    CHECK_NEAR(m->geom_friction[3 * m->body_geomadr[rf]], 0.9, 1e-12);
    CHECK_NEAR(m->geom_friction[3 * m->body_geomadr[lf]], 1.9, 1e-12);
    CHECK(m->geom_conaffinity[1] == 0 && m->geom_conaffinity[0] == 1, "walker conaffinity");
    CHECK(fabs(m->body_inertia[3 * rf] - 0.023998) < 2e-6, "walker foot inertia");
    CHECK_NEAR(m->dof_damping[3], 0.1, 1e-12);
    mj_deleteModel(m);
  }
  /* HalfCheetah: torso inertia and COM, gears, limit solver settings */
  m = load_embedded("half_cheetah.xml");
  if (m) {
    const double in[3] = {0.8971, 0.8857, 0.01796};
    for (int i = 0; i < 3; i++) CHECK(fabs(m->body_inertia[3 + i] - in[i]) < 1e-4 * in[i] + 1e-5,
                                      "cheetah torso inertia %d: %.6f", i, m->body_inertia[3 + i]);
    CHECK(fabs(m->body_ipos[3] - 0.1524) < 1e-4, "cheetah COM x %.5f", m->body_ipos[3]);
    const double gear[6] = {120, 90, 60, 120, 60, 30};
    for (int u = 0; u < 6; u++) CHECK_NEAR(m->actuator_gear[6 * u], gear[u], 1e-12);
    CHECK_NEAR(m->jnt_solimp[5 * 3 + 2], 0.03, 1e-12);
    CHECK_NEAR(m->jnt_stiffness[3], 240, 1e-12);
    mj_deleteModel(m);
  }
  /* Ant: actuator order hip_4, ankle_4, hip_1, ...; ankle_2 range [-70, -30] */
  m = load_embedded("ant.xml");
  if (m) {
    int j = m->actuator_trnid[0];
    CHECK(strcmp(mj_id2name(m, mjOBJ_JOINT, j), "hip_4") == 0, "ant actuator 0 -> %s",
          mj_id2name(m, mjOBJ_JOINT, j));
    int a2 = mj_name2id(m, mjOBJ_JOINT, "ankle_2");
    CHECK_NEAR(m->jnt_range[2 * a2], -70 * M_PI / 180, 1e-12);
    CHECK_NEAR(m->geom_margin[0], 0.01, 1e-12);
    CHECK_NEAR(m->body_mass[1], 0.32725, 1e-5);
    mj_deleteModel(m);
  }
  /* Humanoid: left_hip_y range -120..20 (MBPO's gym 0.12.0), gears, ctrl range 0.4 */
  m = load_embedded("humanoid.xml");
  if (m) {
    int j = mj_name2id(m, mjOBJ_JOINT, "left_hip_y");
    CHECK_NEAR(m->jnt_range[2 * j], -120 * M_PI / 180, 1e-12);
    CHECK_NEAR(m->jnt_range[2 * j + 1], 20 * M_PI / 180, 1e-12);
    int r = mj_name2id(m, mjOBJ_JOINT, "right_hip_y");
    CHECK_NEAR(m->jnt_range[2 * r], -110 * M_PI / 180, 1e-12);
    CHECK_NEAR(m->dof_armature[m->jnt_dofadr[r]], 0.008, 1e-12);
    CHECK_NEAR(m->actuator_gear[6 * 5], 300, 1e-12);
    CHECK_NEAR(m->actuator_gear[6 * 6], 200, 1e-12);
    CHECK_NEAR(m->actuator_ctrlrange[1], 0.4, 1e-12);
    CHECK(m->geom_condim[1] == 1 && m->geom_condim[0] == 3, "humanoid condim");
    mj_deleteModel(m);
  }
}

/* Golden traces (spec 8.3) ---------------------------------------------------------------- */

/* reset without noise, u_t[i] = 0.5 sin(0.1 t + i), until termination or 100 steps:
   steps, return and final qpos[0..2] within 1e-4 relative of the spec */
static void test_golden_traces(void) {
  struct { const char *name; int steps; double ret, q[3]; int nq3; } want[] = {
    {"InvertedPendulum", 7, 7.000000, {0.087932, -0.200061, 0}, 2},
    {"Hopper", 42, 40.900213, {-0.008671, 1.308251, -0.213507}, 3},
    {"Walker2d", 26, 0.994942, {-0.199884, 1.124965, -1.004760}, 3},
    {"HalfCheetah", 100, -10.783370, {-0.163387, -0.076190, 0.020554}, 3},
    {"Ant", 100, 40.751813, {-0.455604, -0.492644, 0.481114}, 3},
    {"Humanoid", 21, 102.317113, {-0.051069, 0.025667, 0.997638}, 3},
  };
  printf("  golden traces (ours | spec 8.3):\n");
  for (int k = 0; k < 6; k++) {
    mbEnv *e = mbs_make(want[k].name, 0);
    if (!e) { CHECK(0, "make %s", want[k].name); continue; }
    float obs[64];
    double u[32], ret = 0, r;
    int term = 0, trunc = 0, t = 0;
    CHECK(mbs_reset(obs, e, 0.0) == MB_OK, "reset %s", mbu_lasterror());
    while (t < 100 && !term) {
      for (int i = 0; i < mbs_actDim(e); i++) u[i] = 0.5 * sin(0.1 * t + i);
      CHECK(mbs_step(obs, &r, &term, &trunc, e, u) == MB_OK, "step %s", mbu_lasterror());
      ret += r;
      t++;
    }
    mbsView v;
    mbs_view(&v, e, 0);
    printf("    %-16s steps %3d | %3d  return %11.6f | %11.6f  qpos %9.6f %9.6f %9.6f | "
           "%9.6f %9.6f %9.6f\n", want[k].name, t, want[k].steps, ret, want[k].ret, v.qpos[0],
           v.qpos[1], want[k].nq3 > 2 ? v.qpos[2] : 0.0, want[k].q[0], want[k].q[1], want[k].q[2]);
    CHECK(t == want[k].steps, "%s: %d steps, spec %d", want[k].name, t, want[k].steps);
    CHECK_REL(ret, want[k].ret, 1e-4);
    /* the spec prints 6 decimals: relative 1e-4, but never tighter than its rounding */
    for (int i = 0; i < want[k].nq3; i++)
      CHECK(fabs(v.qpos[i] - want[k].q[i]) <= fmax(1e-4 * fabs(want[k].q[i]), 5e-7),
            "%s qpos[%d] = %.7f, spec %.6f", want[k].name, i, v.qpos[i], want[k].q[i]);
    mbs_free(e);
  }
}

/* Observation, reward and termination recomputed from the state -------------------------- */

/* expected obs from qpos/qvel, per task */
static void expected_obs(float *o, const char *name, const mbsView *v) {
  int n = 0;
  if (!strcmp(name, "InvertedPendulum")) {
    o[n++] = (float)v->qpos[0]; o[n++] = (float)v->qpos[1];
    o[n++] = (float)v->qvel[0]; o[n++] = (float)v->qvel[1];
    return;
  }
  int skip = (!strcmp(name, "Ant") || !strcmp(name, "Humanoid")) ? 2 : 1;
  int clip = !strcmp(name, "Hopper") || !strcmp(name, "Walker2d");
  for (int i = skip; i < v->nq; i++) o[n++] = (float)v->qpos[i];
  for (int i = 0; i < v->nv; i++)
    o[n++] = (float)(clip ? fmin(10.0, fmax(-10.0, v->qvel[i])) : v->qvel[i]);
}

/* the quantity each forward reward differentiates, from the view */
static double forward_pos(const char *name, const mbsView *v) {
  if (!strcmp(name, "Ant")) return v->xpos[3];           /* torso frame x (body 1) */
  if (!strcmp(name, "Humanoid")) {
    double mx = 0, mass = 0;
    for (int b = 0; b < v->nbody; b++) {
      mx += v->body_mass[b] * v->xipos[3 * b];
      mass += v->body_mass[b];
    }
    return mx / mass;
  }
  return v->qpos[0];
}

/* reward and termination restated from the spec (sections 2.4 ... 7.5) */
static double expected_reward(const char *name, const mbsView *v, double before, double dt,
                              double timestep) {
  double after = forward_pos(name, v), c2 = 0;
  for (int i = 0; i < v->nu; i++) c2 += v->ctrl[i] * v->ctrl[i];
  if (!strcmp(name, "InvertedPendulum")) return 1.0;
  if (!strcmp(name, "Hopper") || !strcmp(name, "Walker2d"))
    return (after - before) / dt + 1.0 - 1e-3 * c2;
  if (!strcmp(name, "HalfCheetah")) return (after - before) / dt - 0.1 * c2;
  if (!strcmp(name, "Ant")) {
    double cc = 0;
    for (int i = 0; i < 6 * v->nbody; i++) {
      double c = fmin(1, fmax(-1, v->cfrc_ext[i]));
      cc += c * c;
    }
    return (after - before) / dt - 0.5 * c2 - 0.5e-3 * cc + 1.0;
  }
  double imp = 0;
  for (int i = 0; i < 6 * v->nbody; i++) imp += v->cfrc_ext[i] * v->cfrc_ext[i];
  return 0.25 * (after - before) / timestep - 0.1 * c2 - fmin(0.5e-6 * imp, 10) + 5.0;
}

static int expected_term(const char *name, const mbsView *v) {
  int fin = 1;
  for (int i = 0; i < v->nq; i++) fin &= isfinite(v->qpos[i]) != 0;
  for (int i = 0; i < v->nv; i++) fin &= isfinite(v->qvel[i]) != 0;
  const double *q = v->qpos;
  if (!strcmp(name, "InvertedPendulum")) return !(fin && fabs(q[1]) <= 0.2);
  if (!strcmp(name, "Hopper")) {
    int ok = fin && q[1] > 0.7 && fabs(q[2]) < 0.2;
    for (int i = 2; i < v->nq; i++) ok &= fabs(q[i]) < 100;
    for (int i = 0; i < v->nv; i++) ok &= fabs(v->qvel[i]) < 100;
    return !ok;
  }
  if (!strcmp(name, "Walker2d")) return !(q[1] > 0.8 && q[1] < 2.0 && q[2] > -1 && q[2] < 1);
  if (!strcmp(name, "HalfCheetah")) return 0;
  if (!strcmp(name, "Ant")) return !(fin && q[2] >= 0.2 && q[2] <= 1.0);
  return q[2] < 1.0 || q[2] > 2.0;
}

/* random episodes: obs layout, reward and termination of every step, and the batched MBPO
   termination function of the task agrees with the env's own termination on every
   transition (both outcomes seen where the task terminates) */
static void test_rules_on_transitions(void) {
  for (int k = 0; k < 6; k++) {
    const char *name = mbs_taskName(k);
    mbEnv *e = mbs_make(name, 11);
    mbRng g;
    mbg_seed(&g, 12, 0);
    float obs[64], want[64], done;
    double u[32], r;
    int term, trunc, seen[2] = {0, 0}, bad_obs = 0, bad_r = 0, bad_t = 0, bad_fn = 0;
    int episodes = !strcmp(name, "HalfCheetah") ? 1 : 25;
    for (int ep = 0; ep < episodes; ep++) {
      mbs_reset(obs, e, 1.0);
      term = trunc = 0;
      /* long episodes are cut at 300 steps to keep the test fast */
      for (int t = 0; t < 300 && !term && !trunc; t++) {
        mbsView v;
        mbs_view(&v, e, 0);
        double before = forward_pos(name, &v);
        uniform_action(u, mbs_actDim(e), &g);
        CHECK(mbs_step(obs, &r, &term, &trunc, e, u) == MB_OK, "%s step: %s", name,
              mbu_lasterror());
        mbs_view(&v, e, 0);
        expected_obs(want, name, &v);
        bad_obs += memcmp(want, obs, sizeof(float) * (size_t)mbs_obsDim(e)) != 0;
        double er = expected_reward(name, &v, before, mbs_dt(e), mbs_timestep(e));
        bad_r += !(fabs(er - r) <= 1e-9 * fmax(1, fabs(er)));
        bad_t += expected_term(name, &v) != term;
        mbs_termination(&done, name, obs, 1, mbs_obsDim(e), 0);
        bad_fn += (done != 0) != (term != 0);
        seen[term != 0]++;
      }
    }
    CHECK(bad_obs == 0, "%s: %d observations differ from the layout", name, bad_obs);
    CHECK(bad_r == 0, "%s: %d rewards differ from the formula", name, bad_r);
    CHECK(bad_t == 0, "%s: %d terminations differ from the rule", name, bad_t);
    CHECK(bad_fn == 0, "%s: termination function disagrees with the env %d times", name, bad_fn);
    if (strcmp(name, "HalfCheetah") != 0)
      CHECK(seen[0] > 0 && seen[1] > 0, "%s: outcomes seen %d / %d", name, seen[0], seen[1]);
    mbs_free(e);
  }
}

/* Termination functions on crafted rows --------------------------------------------------- */

/* evaluates one crafted row: base row with column c set to x */
static float done_at(const char *name, const float *base, int d, int c, float x, int flags) {
  float row[64], out = -1;
  memcpy(row, base, sizeof(float) * (size_t)d);
  if (c >= 0) row[c] = x;
  if (mbs_termination(&out, name, row, 1, d, flags) < 0) return -1;
  return out;
}

static void test_termination_crafted(void) {
  float base[64];
  const float nan = NAN, inf = INFINITY;

  /* InvertedPendulum: done <=> not finite or |obs[1]| > 0.2 (0.2 itself is alive) */
  float ip[4] = {0.5f, 0.0f, -1.0f, 2.0f};
  CHECK(done_at("InvertedPendulum", ip, 4, -1, 0, 0) == 0, "ip healthy");
  CHECK(done_at("InvertedPendulum", ip, 4, 1, 0.19f, 0) == 0, "ip 0.19");
  CHECK(done_at("InvertedPendulum", ip, 4, 1, -0.19f, 0) == 0, "ip -0.19");
  CHECK(done_at("InvertedPendulum", ip, 4, 1, 0.21f, 0) == 1, "ip 0.21");
  CHECK(done_at("InvertedPendulum", ip, 4, 1, -0.21f, 0) == 1, "ip -0.21");
  CHECK(done_at("InvertedPendulum", ip, 4, 1, nextafterf(0.2f, 0) , 0) == 0, "ip just below 0.2");
  CHECK(done_at("InvertedPendulum", ip, 4, 0, 50.0f, 0) == 0, "ip cart far (no bound)");
  for (int c = 0; c < 4; c++) {
    CHECK(done_at("InvertedPendulum", ip, 4, c, nan, 0) == 1, "ip nan col %d", c);
    CHECK(done_at("InvertedPendulum", ip, 4, c, inf, 0) == 1, "ip inf col %d", c);
  }

  /* Hopper: height > 0.7, |angle| < 0.2, finite, obs[1:] < 100 (one-sided by default) */
  for (int i = 0; i < 11; i++) base[i] = 0.1f * (float)(i % 3) - 0.05f;
  base[0] = 1.2f; base[1] = 0.05f;
  CHECK(done_at("Hopper", base, 11, -1, 0, 0) == 0, "hopper healthy");
  CHECK(done_at("Hopper", base, 11, 0, 0.71f, 0) == 0, "hopper h 0.71");
  CHECK(done_at("Hopper", base, 11, 0, 0.69f, 0) == 1, "hopper h 0.69");
  CHECK(done_at("Hopper", base, 11, 0, 0.7f, 0) == 1, "hopper h = 0.7f (float below 0.7)");
  CHECK(done_at("Hopper", base, 11, 0, 150.0f, 0) == 0, "hopper height has no upper bound");
  CHECK(done_at("Hopper", base, 11, 1, 0.19f, 0) == 0, "hopper ang 0.19");
  CHECK(done_at("Hopper", base, 11, 1, -0.19f, 0) == 0, "hopper ang -0.19");
  CHECK(done_at("Hopper", base, 11, 1, 0.21f, 0) == 1, "hopper ang 0.21");
  CHECK(done_at("Hopper", base, 11, 1, -0.21f, 0) == 1, "hopper ang -0.21");
  for (int c = 2; c < 11; c++) {
    CHECK(done_at("Hopper", base, 11, c, 99.0f, 0) == 0, "hopper col %d 99", c);
    CHECK(done_at("Hopper", base, 11, c, 100.0f, 0) == 1, "hopper col %d 100", c);
    CHECK(done_at("Hopper", base, 11, c, -1000.0f, 0) == 0, "hopper col %d -1000 one-sided", c);
    CHECK(done_at("Hopper", base, 11, c, -1e3f, MBS_TWO_SIDED) == 1, "two-sided col %d -1000", c);
    CHECK(done_at("Hopper", base, 11, c, -99.0f, MBS_TWO_SIDED) == 0, "two-sided col %d -99", c);
    CHECK(done_at("Hopper", base, 11, c, 100.0f, MBS_TWO_SIDED) == 1, "two-sided col %d 100", c);
  }
  for (int c = 0; c < 11; c++) {
    CHECK(done_at("Hopper", base, 11, c, nan, 0) == 1, "hopper nan col %d", c);
    CHECK(done_at("Hopper", base, 11, c, -inf, 0) == 1, "hopper -inf col %d", c);
  }

  /* Walker2d: 0.8 < h < 2, -1 < ang < 1; no finiteness check beyond those two */
  for (int i = 0; i < 17; i++) base[i] = 0.3f;
  base[0] = 1.2f; base[1] = 0.0f;
  CHECK(done_at("Walker2d", base, 17, -1, 0, 0) == 0, "walker healthy");
  CHECK(done_at("Walker2d", base, 17, 0, 0.81f, 0) == 0, "walker 0.81");
  CHECK(done_at("Walker2d", base, 17, 0, 0.79f, 0) == 1, "walker 0.79");
  CHECK(done_at("Walker2d", base, 17, 0, 1.99f, 0) == 0, "walker 1.99");
  CHECK(done_at("Walker2d", base, 17, 0, 2.0f, 0) == 1, "walker 2.0");
  CHECK(done_at("Walker2d", base, 17, 1, 0.99f, 0) == 0, "walker ang 0.99");
  CHECK(done_at("Walker2d", base, 17, 1, 1.0f, 0) == 1, "walker ang 1");
  CHECK(done_at("Walker2d", base, 17, 1, -0.99f, 0) == 0, "walker ang -0.99");
  CHECK(done_at("Walker2d", base, 17, 1, -1.0f, 0) == 1, "walker ang -1");
  CHECK(done_at("Walker2d", base, 17, 0, nan, 0) == 1, "walker nan height");
  CHECK(done_at("Walker2d", base, 17, 5, nan, 0) == 0, "walker nan elsewhere is not checked");
  CHECK(done_at("Walker2d", base, 17, 5, 1e6f, 0) == 0, "walker no state bound");

  /* HalfCheetah: never */
  for (int i = 0; i < 17; i++) base[i] = 0;
  CHECK(done_at("HalfCheetah", base, 17, 0, nan, 0) == 0, "cheetah nan");
  CHECK(done_at("HalfCheetah", base, 17, 0, -1e9f, 0) == 0, "cheetah huge");

  /* Ant: finite and 0.2 <= z <= 1.0 (inclusive) */
  for (int i = 0; i < 27; i++) base[i] = 0.01f * (float)i;
  base[0] = 0.55f;
  CHECK(done_at("Ant", base, 27, -1, 0, 0) == 0, "ant healthy");
  CHECK(done_at("Ant", base, 27, 0, 1.0f, 0) == 0, "ant z = 1 inclusive");
  CHECK(done_at("Ant", base, 27, 0, nextafterf(1.0f, 2), 0) == 1, "ant z just above 1");
  CHECK(done_at("Ant", base, 27, 0, 0.21f, 0) == 0, "ant z 0.21");
  CHECK(done_at("Ant", base, 27, 0, 0.19f, 0) == 1, "ant z 0.19");
  CHECK(done_at("Ant", base, 27, 0, 0.2f, 0) == 0, "ant z = 0.2f inclusive");
  for (int c = 0; c < 27; c++) CHECK(done_at("Ant", base, 27, c, nan, 0) == 1, "ant nan col %d", c);
  CHECK(done_at("Ant", base, 27, 20, 1e6f, 0) == 0, "ant no bound on velocities");

  /* Humanoid: done <=> z < 1 or z > 2 (a NaN z is not done) */
  for (int i = 0; i < 45; i++) base[i] = 0.02f;
  base[0] = 1.4f;
  CHECK(done_at("Humanoid", base, 45, -1, 0, 0) == 0, "humanoid healthy");
  CHECK(done_at("Humanoid", base, 45, 0, 1.0f, 0) == 0, "humanoid z = 1");
  CHECK(done_at("Humanoid", base, 45, 0, 0.99f, 0) == 1, "humanoid z 0.99");
  CHECK(done_at("Humanoid", base, 45, 0, 2.0f, 0) == 0, "humanoid z = 2");
  CHECK(done_at("Humanoid", base, 45, 0, 2.01f, 0) == 1, "humanoid z 2.01");
  CHECK(done_at("Humanoid", base, 45, 0, nan, 0) == 0, "humanoid nan z");
  CHECK(done_at("Humanoid", base, 45, 7, nan, 0) == 0, "humanoid nan elsewhere");

  /* batches: many rows at once agree with row-by-row; wrong width is an error */
  mbRng g;
  mbg_seed(&g, 5, 0);
  enum { N = 257 };
  static float rows[N * 11], out[N];
  for (int i = 0; i < N * 11; i++) rows[i] = (float)(mbg_uniform(&g) * 2.0 - 0.5);
  CHECK(mbs_termination(out, "hopper", rows, N, 11, 0) == MB_OK, "batch");
  int agree = 1;
  for (int r = 0; r < N; r++) agree &= out[r] == done_at("Hopper", rows + r * 11, 11, -1, 0, 0);
  CHECK(agree, "batch and single rows disagree");
  CHECK(mbs_termination(out, "Hopper", rows, N, 12, 0) == MB_ERR &&
        strstr(mbu_lasterror(), "12 columns"), "width error: %s", mbu_lasterror());
  CHECK(mbs_termination(out, "Nope", rows, N, 11, 0) == MB_ERR, "unknown task accepted");
}

/* Reset, action map, episode rules ------------------------------------------------------- */

static void test_reset_noise(void) {
  /* no noise: exactly qpos0 / 0; same seed: same draws; noise within the spec's widths */
  struct { const char *name; double wq, wv; int normal_v; } want[] = {
    {"InvertedPendulum", 0.01, 0.01, 0}, {"Hopper", 0.005, 0.005, 0},
    {"Walker2d", 0.005, 0.005, 0}, {"HalfCheetah", 0.1, 0.1, 1}, {"Ant", 0.1, 0.1, 1},
    {"Humanoid", 0.01, 0.01, 0}};
  for (int k = 0; k < 6; k++) {
    mbEnv *e = mbs_make(want[k].name, 3);
    mjModel *m = NULL;
    const char *files[] = {"inverted_pendulum.xml", "hopper.xml", "walker2d.xml",
                           "half_cheetah.xml", "ant.xml", "humanoid.xml"};
    m = load_embedded(files[k]);
    if (!e || !m) { CHECK(0, "load %s", want[k].name); continue; }
    mbsView v;
    mbs_reset(NULL, e, 0.0);
    mbs_view(&v, e, 0);
    int exact = 1;
    for (int i = 0; i < v.nq; i++) exact &= v.qpos[i] == m->qpos0[i];
    for (int i = 0; i < v.nv; i++) exact &= v.qvel[i] == 0;
    CHECK(exact, "%s: noise_scale 0 is not qpos0", want[k].name);
    /* statistics of qpos - qpos0 and qvel over resets */
    int n = 400;
    double sq = 0, sv = 0, maxq = 0, maxv = 0, sumq = 0;
    int cnt_q = 0, cnt_v = 0;
    /* free joints (Ant, Humanoid): qpos[3..6] is the root quaternion, which MuJoCo 2.2.2's
       mj_kinematics normalises in place during the reset's mj_forward */
    int quat = m->jnt_type[0] == mjJNT_FREE;
    for (int rep = 0; rep < n; rep++) {
      mbs_reset(NULL, e, 1.0);
      mbs_view(&v, e, 0);
      if (quat) {
        double nrm = 0;
        for (int i = 3; i < 7; i++) nrm += v.qpos[i] * v.qpos[i];
        CHECK(fabs(nrm - 1) < 1e-12 && v.qpos[3] != 1.0, "%s: root quaternion norm^2 %.15f",
              want[k].name, nrm);
      }
      for (int i = 0; i < v.nq; i++) {
        if (quat && i >= 3 && i < 7) continue;
        double dq = v.qpos[i] - m->qpos0[i];
        sq += dq * dq; sumq += dq; cnt_q++;
        maxq = fmax(maxq, fabs(dq));
      }
      for (int i = 0; i < v.nv; i++) {
        sv += v.qvel[i] * v.qvel[i];
        cnt_v++;
        maxv = fmax(maxv, fabs(v.qvel[i]));
      }
    }
    double wq = want[k].wq, wv = want[k].wv;
    CHECK(maxq <= wq && maxq > 0.9 * wq, "%s: max |qpos noise| %g, width %g", want[k].name, maxq,
          wq);
    CHECK(fabs(sq / cnt_q / (wq * wq / 3) - 1) < 0.1, "%s: qpos noise variance %g, uniform %g",
          want[k].name, sq / cnt_q, wq * wq / 3);
    CHECK(fabs(sumq / cnt_q) < 4 * wq / sqrt(3.0 * cnt_q), "%s: qpos noise mean %g",
          want[k].name, sumq / cnt_q);
    double var_v = want[k].normal_v ? wv * wv : wv * wv / 3;
    CHECK(fabs(sv / cnt_v / var_v - 1) < 0.1, "%s: qvel noise variance %g, expected %g",
          want[k].name, sv / cnt_v, var_v);
    if (!want[k].normal_v) CHECK(maxv <= wv, "%s: qvel noise beyond %g", want[k].name, wv);
    else CHECK(maxv > 2 * wv, "%s: qvel noise looks bounded (max %g), expected a normal",
               want[k].name, maxv);
    /* reseeding reproduces the draws */
    double first[32];
    mbg_seed(mbs_rng(e), 77, 0);
    mbs_reset(NULL, e, 0.5);
    mbs_view(&v, e, 0);
    memcpy(first, v.qpos, sizeof(double) * (size_t)v.nq);
    mbg_seed(mbs_rng(e), 77, 0);
    mbs_reset(NULL, e, 0.5);
    mbs_view(&v, e, 0);
    CHECK(memcmp(first, v.qpos, sizeof(double) * (size_t)v.nq) == 0, "%s: reseed differs",
          want[k].name);
    CHECK(mbs_reset(NULL, e, -1.0) == MB_ERR, "negative noise_scale accepted");
    mj_deleteModel(m);
    mbs_free(e);
  }
}

static void test_action_map_and_episode(void) {
  /* ctrl = mid + half * clip(u): InvertedPendulum 3u, Humanoid 0.4u, Hopper u */
  struct { const char *name; double scale; } want[] = {
    {"InvertedPendulum", 3.0}, {"Humanoid", 0.4}, {"Hopper", 1.0}};
  for (int k = 0; k < 3; k++) {
    mbEnv *e = mbs_make(want[k].name, 0);
    double u[32], r;
    int term, trunc;
    int n = mbs_actDim(e);
    for (int i = 0; i < n; i++) u[i] = (i % 3 == 0) ? 0.3 : (i % 3 == 1) ? -1.7 : 2.5;
    mbs_reset(NULL, e, 0.0);
    mbs_step(NULL, &r, &term, &trunc, e, u);
    mbsView v;
    mbs_view(&v, e, 0);
    int ok = 1;
    for (int i = 0; i < n; i++)
      ok &= fabs(v.ctrl[i] - want[k].scale * fmin(1, fmax(-1, u[i]))) < 1e-15;
    CHECK(ok, "%s: ctrl is not %g * clip(u)", want[k].name, want[k].scale);
    double lo[32], hi[32];
    mbs_ctrlRange(lo, hi, e);
    CHECK(lo[0] == -want[k].scale && hi[0] == want[k].scale, "%s ctrl range", want[k].name);
    mbs_free(e);
  }

  mbEnv *e = mbs_make("Hopper", 0);
  double u[3] = {0, 0, 0}, r;
  int term, trunc;
  CHECK(mbs_step(NULL, &r, &term, &trunc, e, u) == MB_ERR &&
        strstr(mbu_lasterror(), "before reset"), "step before reset: %s", mbu_lasterror());
  mbs_reset(NULL, e, 0.0);
  u[1] = NAN;
  CHECK(mbs_step(NULL, &r, &term, &trunc, e, u) == MB_ERR && strstr(mbu_lasterror(), "NaN"),
        "NaN action: %s", mbu_lasterror());
  u[1] = INFINITY;
  CHECK(mbs_step(NULL, &r, &term, &trunc, e, u) == MB_ERR && strstr(mbu_lasterror(), "infinite"),
        "inf action: %s", mbu_lasterror());
  CHECK(mbs_steps(e) == 0, "a rejected action counted as a step");
  /* zero action: the hopper stands ~150 steps then falls; terminal step pays the bonus */
  u[1] = 0;
  int t = 0;
  double last = 0;
  term = trunc = 0;
  while (!term && !trunc) { mbs_step(NULL, &last, &term, &trunc, e, u); t++; }
  CHECK(term && !trunc && t > 50 && t < 1000, "zero-action hopper: %d steps", t);
  CHECK(last > 0.0, "terminal step reward %g lacks the alive bonus", last);
  CHECK(mbs_step(NULL, &r, &term, &trunc, e, u) == MB_ERR &&
        strstr(mbu_lasterror(), "episode ended"), "step after end: %s", mbu_lasterror());
  /* truncation: separate from termination */
  mbs_setMaxSteps(e, 5);
  mbs_reset(NULL, e, 0.0);
  for (t = 0; t < 5; t++) mbs_step(NULL, &r, &term, &trunc, e, u);
  CHECK(trunc && !term && mbs_steps(e) == 5, "truncation at 5: trunc %d term %d", trunc, term);
  mbs_free(e);

  /* HalfCheetah never terminates: truncated at exactly 1000 */
  e = mbs_make("HalfCheetah", 0);
  mbs_reset(NULL, e, 1.0);
  double z[6] = {0};
  for (t = 0, trunc = 0; !trunc && t < 2000; t++) mbs_step(NULL, &r, &term, &trunc, e, z);
  CHECK(t == 1000 && !term, "cheetah truncated after %d steps", t);
  mbs_free(e);
}

/* set_state like Gym's, and exact resume from the state blocks ---------------------------- */

static void test_state_and_resume(void) {
  for (int k = 0; k < 6; k++) {
    const char *name = mbs_taskName(k);
    mbEnv *a = mbs_make(name, 21), *b = mbs_make(name, 99);
    mbRng g;
    mbg_seed(&g, 4, 0);
    double u[32], r;
    float obs[64];
    int term, trunc, n = mbs_actDim(a);
    mbs_reset(obs, a, 1.0);
    for (int t = 0; t < 15; t++) {
      uniform_action(u, n, &g);
      mbs_step(obs, &r, &term, &trunc, a, u);
      if (term || trunc) mbs_reset(obs, a, 1.0);
    }
    /* copy the exact state into b (a different env instance) */
    mbStateBlock ba[MB_STATE_MAXBLOCKS], bb[MB_STATE_MAXBLOCKS];
    int nba = mbs_stateBlocks(ba, a), nbb = mbs_stateBlocks(bb, b);
    CHECK(nba == nbb && nba >= 14, "%s: %d state blocks", name, nba);
    for (int i = 0; i < nba; i++)
      if (!(ba[i].flags & MB_ST_CHECK))
        memcpy(bb[i].data, ba[i].data,
               (size_t)(mbu_blockNumel(&ba[i]) * mbu_dtypeSize(ba[i].dtype)));
    mbRng g2 = g;
    int same = 1;
    for (int t = 0; t < 80; t++) {
      double ra, rb;
      int ta, tb, ua, ub;
      float oa[64], ob[64];
      uniform_action(u, n, &g);
      mbs_step(oa, &ra, &ta, &ua, a, u);
      uniform_action(u, n, &g2);
      mbs_step(ob, &rb, &tb, &ub, b, u);
      size_t bytes = sizeof(float) * (size_t)mbs_obsDim(a);
      same &= ra == rb && ta == tb && ua == ub && !memcmp(oa, ob, bytes);
      if (ta || ua) {
        mbs_reset(oa, a, 1.0);
        mbs_reset(ob, b, 1.0);
        same &= !memcmp(oa, ob, bytes);
      }
    }
    CHECK(same, "%s: resumed env diverges", name);

    /* set_state: qpos/qvel written, forward pass done, obs consistent, counter kept */
    mbsView v;
    mbs_view(&v, a, 0);
    double qpos[32], qvel[32];
    for (int i = 0; i < v.nq; i++) qpos[i] = v.qpos[i] + 0.001 * i;
    for (int i = 0; i < v.nv; i++) qvel[i] = 0.01 * i;
    int64_t steps = mbs_steps(a);
    CHECK(mbs_setState(obs, a, qpos, qvel) == MB_OK, "set_state %s", mbu_lasterror());
    mbs_view(&v, a, 0);
    float want[64];
    expected_obs(want, name, &v);
    CHECK(!memcmp(want, obs, sizeof(float) * (size_t)mbs_obsDim(a)), "%s: set_state obs", name);
    CHECK(v.qpos[v.nq - 1] == qpos[v.nq - 1] && mbs_steps(a) == steps && !mbs_done(a),
          "%s: set_state bookkeeping", name);
    qvel[0] = NAN;
    CHECK(mbs_setState(obs, a, qpos, qvel) == MB_ERR, "%s: NaN qvel accepted", name);
    mbs_free(a);
    mbs_free(b);
  }
}

/* MuJoCo errors and warnings; custom models --------------------------------------------------- */

static const char *custom_xml =
  "<mujoco model='slider'>\n"
  "  <option timestep='0.01'/>\n"
  "  <worldbody>\n"
  "    <geom type='plane' size='5 5 0.1'/>\n"
  "    <body name='box' pos='0 0 0.1'>\n"
  "      <joint name='x' type='slide' axis='1 0 0'/>\n"
  "      <geom type='box' size='0.1 0.1 0.1' mass='1'/>\n"
  "    </body>\n"
  "  </worldbody>\n"
  "  <actuator><motor joint='x' gear='2' ctrllimited='true' ctrlrange='-5 5'/></actuator>\n"
  "</mujoco>\n";

static void test_custom_and_errors(void) {
  /* a bad path: our message and errno text */
  CHECK(mbs_fromFile("/nonexistent/robot.xml", 1, 0) == NULL &&
        strstr(mbu_lasterror(), "cannot open '/nonexistent/robot.xml'"), "bad path: %s",
        mbu_lasterror());
  /* malformed XML: MuJoCo's own parser message */
  const char *bad = tmpfile_with(0, "<mujoco><worldbody><body></worldbody></mujoco>");
  CHECK(bad && mbs_fromFile(bad, 1, 0) == NULL && strstr(mbu_lasterror(), "does not load") &&
        strstr(mbu_lasterror(), "XML"), "malformed: %s", mbu_lasterror());
  /* a model MuJoCo rejects semantically */
  const char *bad2 = tmpfile_with(1,
    "<mujoco><worldbody><geom type='box' size='1'/></worldbody></mujoco>");
  CHECK(bad2 && mbs_fromFile(bad2, 1, 0) == NULL && strlen(mbu_lasterror()) > 20, "bad size: %s",
        mbu_lasterror());
  /* no actuators */
  const char *noact = tmpfile_with(2,
    "<mujoco><worldbody><body><joint type='slide'/><geom size='0.1'/></body></worldbody>"
    "</mujoco>");
  CHECK(noact && mbs_fromFile(noact, 1, 0) == NULL && strstr(mbu_lasterror(), "no actuators"),
        "no actuators: %s", mbu_lasterror());

  /* a custom model steps: ctrl = 5u (ctrlrange -5..5), frame_skip 3 */
  const char *good = tmpfile_with(3, custom_xml);
  mbEnv *e = good ? mbs_fromFile(good, 3, 0) : NULL;
  CHECK(e != NULL, "custom: %s", mbu_lasterror());
  if (e) {
    CHECK(mbs_isCustom(e) && mbs_actDim(e) == 1 && mbs_nq(e) == 1 && mbs_frameSkip(e) == 3,
          "custom sizes");
    char want[64];
    snprintf(want, sizeof want, "mbpo_test_env_%d_3", (int)getpid());
    CHECK(strcmp(mbs_name(e), want) == 0, "custom name %s", mbs_name(e));
    CHECK_NEAR(mbs_dt(e), 0.03, 1e-15);
    /* as loaded: qpos0 with the forward pass done (the box body's frame at its pos), the
       generator untouched and no episode started */
    mbsView v0;
    mbs_view(&v0, e, 0);
    mbRng fresh;
    mbg_seed(&fresh, 0, 0);
    CHECK(v0.xpos[3 * 1 + 2] == 0.1 && v0.qpos[0] == 0 && !mbs_started(e) && mbs_steps(e) == 0,
          "custom as loaded: box z %g, started %d", v0.xpos[5], mbs_started(e));
    CHECK(mbg_next(mbs_rng(e)) == mbg_next(&fresh), "loading draws nothing");
    double u = 0.5, r;
    int term, trunc;
    CHECK(mbs_step(NULL, &r, &term, &trunc, e, &u) == MB_ERR, "builtin step on a custom env");
    CHECK(mbs_resetData(e) == MB_OK && mbs_resetTo(e, NULL, NULL, 0.0) == MB_OK, "custom reset");
    CHECK(mbs_simulate(e, &u) == MB_OK, "simulate: %s", mbu_lasterror());
    mbsView now, before;
    mbs_view(&now, e, 0);
    mbs_view(&before, e, 1);
    CHECK(now.ctrl[0] == 2.5 && before.qpos[0] == 0 && now.qpos[0] > 0,
          "custom physics: ctrl %g x %g", now.ctrl[0], now.qpos[0]);
    CHECK_NEAR(now.time, 0.03, 1e-12);
    CHECK(mbs_endStep(e, 0) == 0 && mbs_steps(e) == 1, "custom counters");
    mbs_setMaxSteps(e, 2);
    mbs_simulate(e, &u);
    CHECK(mbs_endStep(e, 0) == 1 && mbs_done(e), "custom truncation");
    CHECK(mbs_simulate(e, &u) == MB_ERR, "custom step after the end");
    mbs_free(e);
  }

  /* MuJoCo's error callback: the stack fits the contact-free pose the compiler checks but
     not the contacts of the falling box; mju_error fires inside mj_step and we get MB_ERR
     with MuJoCo's text (2.2.2: "Stack overflow") instead of an exit */
  const char *tiny = tmpfile_with(1,
    "<mujoco><size nstack='200'/><worldbody><geom type='plane' size='5 5 .1'/>"
    "<body name='a' pos='0 0 0.102'><joint name='j' type='free'/>"
    "<geom type='box' size='.1 .1 .1'/></body>"
    "</worldbody><actuator><motor joint='j' gear='1'/></actuator></mujoco>");
  e = tiny ? mbs_fromFile(tiny, 1, 0) : NULL;
  CHECK(e != NULL, "tiny-stack model: %s", mbu_lasterror());
  if (e) {
    CHECK(mbs_resetData(e) == MB_OK && mbs_resetTo(e, NULL, NULL, 0.0) == MB_OK,
          "tiny-stack reset: %s", mbu_lasterror());
    int rc = MB_OK, t = 0;
    double z = 0;
    for (; t < 300 && rc == MB_OK; t++) {
      rc = mbs_simulate(e, &z);
      if (rc == MB_OK) mbs_endStep(e, 0);
    }
    CHECK(rc == MB_ERR && strstr(mbu_lasterror(), "MuJoCo error") &&
          strstr(mbu_lasterror(), "Stack overflow"), "tiny stack: rc %d after %d steps, %s", rc, t,
          mbu_lasterror());
    /* the env is usable again after a reset, and refuses to step before it */
    CHECK(mbs_simulate(e, &z) == MB_ERR && strstr(mbu_lasterror(), "before reset"),
          "step after a MuJoCo error: %s", mbu_lasterror());
    CHECK(mbs_resetData(e) == MB_OK && mbs_resetTo(e, NULL, NULL, 0.0) == MB_OK,
          "reset after a MuJoCo error: %s", mbu_lasterror());
    mbs_free(e);
  }

  /* warnings are queued, not printed and not fatal: a huge velocity trips mj_checkVel */
  while (mbs_nextWarning()) {}
  e = mbs_make("Hopper", 0);
  mbs_reset(NULL, e, 0.0);
  mbsView v;
  mbs_view(&v, e, 0);
  double qpos[6], qvel[6] = {0, 0, 0, 0, 0, 0};
  memcpy(qpos, v.qpos, sizeof qpos);
  qvel[3] = 1e12;
  mbs_setState(NULL, e, qpos, qvel);
  double u[3] = {0, 0, 0}, r;
  int term, trunc;
  CHECK(mbs_step(NULL, &r, &term, &trunc, e, u) == MB_OK, "step with huge qvel: %s",
        mbu_lasterror());
  const char *w = mbs_nextWarning();
  CHECK(w && strstr(w, "QVEL"), "warning: %s", w ? w : "(none)");
  mbs_free(e);

  for (int s = 0; s < 4; s++) {
    char p[64];
    snprintf(p, sizeof p, "/tmp/mbpo_test_env_%d_%d.xml", (int)getpid(), s);
    unlink(p);
  }
}

/* Uniform-random policy statistics (spec 8.2) for the fast tasks -------------------------- */

static void test_random_policy_stats(void) {
  /* spec 8.2: mean return (sd), mean length over 1000 episodes */
  struct { const char *name; double ret, sd, len; } want[] = {
    {"InvertedPendulum", 6.1, 3.4, 6.1}, {"Hopper", 18.9, 19.4, 22.4},
    {"Walker2d", 2.7, 6.6, 21.2}};
  printf("  uniform-random policy, 1000 episodes (ours | spec 8.2):\n");
  for (int k = 0; k < 3; k++) {
    mbEnv *e = mbs_make(want[k].name, 2024);
    mbRng g;
    mbg_seed(&g, 2025, 0);
    int n = 1000;
    double s = 0, s2 = 0, l = 0, l2 = 0, u[32], r;
    for (int ep = 0; ep < n; ep++) {
      mbs_reset(NULL, e, 1.0);
      double ret = 0;
      int term = 0, trunc = 0, len = 0;
      while (!term && !trunc) {
        uniform_action(u, mbs_actDim(e), &g);
        mbs_step(NULL, &r, &term, &trunc, e, u);
        ret += r;
        len++;
      }
      s += ret; s2 += ret * ret; l += len; l2 += (double)len * len;
    }
    double m = s / n, sd = sqrt((s2 - s * m) / (n - 1));
    double ml = l / n, sdl = sqrt((l2 - l * ml) / (n - 1));
    /* both means are 1000-episode estimates: the difference has sqrt(se1^2 + se2^2) */
    double se = sqrt(sd * sd / n + want[k].sd * want[k].sd / n);
    double sel = sqrt(2.0) * sdl / sqrt(n); /* the spec gives no sd for lengths */
    printf("    %-16s return %7.2f (%5.2f) | %5.1f (%4.1f)  %+.1f se   "
           "length %5.1f | %5.1f  %+.1f se\n",
           want[k].name, m, sd, want[k].ret, want[k].sd, (m - want[k].ret) / se, ml, want[k].len,
           (ml - want[k].len) / sel);
    CHECK(fabs(m - want[k].ret) <= 3 * se, "%s: mean return %.3f vs %.1f (se %.3f)", want[k].name,
          m, want[k].ret, se);
    CHECK(fabs(ml - want[k].len) <= 3 * sel, "%s: mean length %.3f vs %.1f (se %.3f)", want[k].name,
          ml, want[k].len, sel);
    mbs_free(e);
  }
}

/* the options of a reset (mbs_resetFields): noise_scale defaults to 1, >= 0; seed has none */
static void test_reset_fields(void) {
  mbsResetOptions o = {42, -1};
  mbu_fieldDefaults(&o, mbs_resetFields);
  CHECK(o.seed == 42 && o.noise_scale == 1.0, "defaults: seed %llu, noise_scale %g",
        (unsigned long long)o.seed, o.noise_scale);
  const mbField *f = mbu_fieldFind(mbs_resetFields, "noise_scale");
  char b[160];
  CHECK(f && !strcmp(mbu_fieldRange(f, b, sizeof b), "a number >= 0"), "range %s", b);
  CHECK(f && !mbu_fieldInRange(f, -0.5) && mbu_fieldInRange(f, 0), "in range");
}

int main(void) {
  RUN(test_reset_fields);
  RUN(test_dims);
  RUN(test_model_facts);
  RUN(test_golden_traces);
  RUN(test_rules_on_transitions);
  RUN(test_termination_crafted);
  RUN(test_reset_noise);
  RUN(test_action_map_and_episode);
  RUN(test_state_and_resume);
  RUN(test_custom_and_errors);
  RUN(test_random_policy_stats);
  return TEST_REPORT();
}
