/* The env layer over MuJoCo 2.2.2: model loading (embedded MJCF through a virtual file
   system, or a user's file), the MuJoCo error/warning routing, reset, step (Gym v2 order),
   state access, and the batched model-rollout termination functions of the tasks. */
#include "mbpo/env.h"
#include "mbpo/core.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bench/bench.h"
#include "sim/task.h"

/* generated from the src/sim XML files by tools/bin2c (build/gen/models.c) */
const char *mbs_embedded(const char *name);

static const mbsTask *const tasks[] = {
  &mbs_inverted_pendulum, &mbs_hopper, &mbs_walker2d, &mbs_half_cheetah, &mbs_ant,
  &mbs_humanoid};
#define NTASKS ((int)(sizeof tasks / sizeof tasks[0]))

struct mbEnv {
  const mbsTask *task;     /* NULL for a custom model */
  char name[128];
  mjModel *m;
  mjData *d;
  mbRng rng;               /* reset noise */
  int obs_dim, act_dim, frame_skip, max_steps, rne;
  double dt;
  double reset_noise;      /* custom envs without a reset rule: U(-w, w) on qpos and qvel */
  double *mid, *half;      /* [nu] action map: ctrl = mid + half * clip(u); half 0 = ctrl u */
  double *before;          /* custom envs: snapshot at the start of a step: qpos, qvel,
                              ctrl, xpos, xipos, cfrc_ext (nq + nv + nu + 12 nbody) */
  double before_time;
  int64_t steps;
  int started, done;
};

/* MuJoCo error and warning routing ------------------------------------------------------ */

/* the active guard of this thread: mju_user_error jumps there and never returns into
   MuJoCo; outside a guard the message is only recorded */
static _Thread_local jmp_buf *guard;
static _Thread_local char mjerror[512];

#define NWARN 8
static _Thread_local char warnings[NWARN][512];
static _Thread_local int warn_head, warn_count;
static _Thread_local char warn_out[512];

static void on_mj_error(const char *msg) {
  snprintf(mjerror, sizeof mjerror, "%s", msg);
  if (guard) longjmp(*guard, 1);
}

static void on_mj_warning(const char *msg) {
  int slot = (warn_head + warn_count) % NWARN;
  if (warn_count == NWARN) warn_head = (warn_head + 1) % NWARN; /* drop the oldest */
  else warn_count++;
  snprintf(warnings[slot], sizeof warnings[slot], "%s", msg);
}

const char *mbs_nextWarning(void) {
  if (!warn_count) return NULL;
  snprintf(warn_out, sizeof warn_out, "%s", warnings[warn_head]);
  warn_head = (warn_head + 1) % NWARN;
  warn_count--;
  return warn_out;
}

/* installs the handlers (idempotent; the pointers are process-wide) */
static void install_handlers(void) {
  mju_user_error = on_mj_error;
  mju_user_warning = on_mj_warning;
}

/* MuJoCo's messages can span lines: joined into one line, trailing blanks dropped */
static void one_line(char *msg) {
  for (char *p = msg; *p; p++)
    if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
  size_t n = strlen(msg);
  while (n > 0 && msg[n - 1] == ' ') msg[--n] = 0;
}

/* runs fn(env, arg) with MuJoCo errors caught; on an error the env's mjData is left in an
   unknown state: its stack is released and the episode must be reset */
static int guarded(mbEnv *env, void (*fn)(mbEnv *, void *), void *arg,
                   const char *what) {
  jmp_buf jb;
  jmp_buf *prev = guard;
  guard = &jb;
  if (setjmp(jb)) {
    /* arrived from on_mj_error: MuJoCo's text is in mjerror */
    guard = prev;
    one_line(mjerror);
    if (env) {
      if (env->d) env->d->pstack = 0;
      env->started = 0;
      env->done = 1;
    }
    return mbu_error("%s: %s: MuJoCo error: %s", env ? env->name : "mujoco", what, mjerror);
  }
  fn(env, arg);
  guard = prev;
  return MB_OK;
}

/* a plain fn(arg) run by guarded() */
typedef struct callArgs {
  void (*fn)(void *);
  void *arg;
} callArgs;

static void do_call(mbEnv *env, void *arg) {
  (void)env;
  callArgs *c = arg;
  c->fn(c->arg);
}

int mbs_guardedCall(void (*fn)(void *), void *arg, const char *what) {
  install_handlers();
  callArgs c = {fn, arg};
  return guarded(NULL, do_call, &c, what);
}

mjModel *mbs_mjModel(const mbEnv *env) { return env->m; }
mjData *mbs_mjData(const mbEnv *env) { return env->d; }

/* Loading ------------------------------------------------------------------------------- */

static const mbsTask *find_task(const char *name) {
  if (!name) return NULL;
  for (int i = 0; i < NTASKS; i++) {
    if (strcmp(tasks[i]->name, name) == 0) return tasks[i];
    for (int k = 0; k < 4 && tasks[i]->alias[k]; k++)
      if (strcmp(tasks[i]->alias[k], name) == 0) return tasks[i];
  }
  return NULL;
}

/* Built-in task registry: count and canonical names in a fixed order. */
int mbs_taskCount(void) { return NTASKS; }
const char *mbs_taskName(int i) { return i >= 0 && i < NTASKS ? tasks[i]->name : NULL; }

/* Canonical name of any accepted spelling, NULL when unknown. */
const char *mbs_canonicalName(const char *name) {
  const mbsTask *t = find_task(name);
  return t ? t->name : NULL;
}

/* Observation size of a task by any accepted name. */
int mbs_taskObsDim(const char *name) {
  const mbsTask *t = find_task(name);
  return t ? t->obs_dim : -1;
}

/* Action size of a task by any accepted name. */
int mbs_taskActDim(const char *name) {
  const mbsTask *t = find_task(name);
  return t ? t->act_dim : -1;
}

/* arguments of the guarded loader */
typedef struct loadArgs {
  const char *file;        /* file name (in vfs when vfs != NULL) */
  const mjVFS *vfs;
  char *err;
  int errsz;
  mjModel *m;
} loadArgs;

static void do_load(mbEnv *env, void *arg) {
  (void)env;
  loadArgs *a = arg;
  a->m = mj_loadXML(a->file, a->vfs, a->err, a->errsz);
}

/* compiles an MJCF text held in memory under the given file name */
static mjModel *load_string(const char *fname, const char *xml, char *err, int errsz) {
  mjVFS *vfs = mbu_malloc(sizeof *vfs);  /* about 2 MB: never on the stack */
  if (!vfs) return NULL;
  mj_defaultVFS(vfs);
  /* one in-memory file holding the text; MuJoCo finds it by name before the disk */
  int len = (int)strlen(xml);
  if (mj_makeEmptyFileVFS(vfs, fname, len) != 0) {
    mbu_free(vfs);
    mbu_error("%s: cannot create the in-memory file", fname);
    return NULL;
  }
  int idx = mj_findFileVFS(vfs, fname);
  memcpy(vfs->filedata[idx], xml, (size_t)len);
  loadArgs a = {fname, vfs, err, errsz, NULL};
  int rc = guarded(NULL, do_load, &a, "loading the model");
  mj_deleteVFS(vfs);
  mbu_free(vfs);
  one_line(err);
  if (rc == MB_OK && !a.m) mbu_error("%s: %s", fname, err[0] ? err : "unknown MuJoCo error");
  return rc == MB_OK ? a.m : NULL;
}

static void do_makedata(mbEnv *env, void *arg) {
  (void)arg;
  env->d = mj_makeData(env->m);
}

/* allocates the env around a compiled model (takes ownership of m) */
static mbEnv *new_env(mjModel *m, const mbsTask *task, const char *name, int frame_skip,
                      uint64_t seed) {
  mbEnv *env = mbu_calloc(1, sizeof *env);
  if (!env) {
    mj_deleteModel(m);
    return NULL;
  }
  env->m = m;
  env->task = task;
  snprintf(env->name, sizeof env->name, "%s", name);
  if (guarded(env, do_makedata, NULL, "allocating mjData") < 0 || !env->d) {
    if (!env->d) mbu_error("%s: mj_makeData failed", env->name);
    mbs_free(env);
    return NULL;
  }
  /* action map and the custom envs' before-snapshot, one allocation each */
  int nu = m->nu, nb = m->nbody;
  env->mid = mbu_calloc((size_t)(2 * nu + 1), sizeof(double));
  env->before = mbu_calloc((size_t)(m->nq + m->nv + nu + 12 * nb), sizeof(double));
  if (!env->mid || !env->before) {
    mbs_free(env);
    return NULL;
  }
  env->half = env->mid + nu;
  /* ctrl-limited actuators: u in [-1, 1] spans ctrlrange; others take u unchanged (half 0) */
  for (int i = 0; i < nu; i++) {
    if (m->actuator_ctrllimited[i]) {
      double lo = m->actuator_ctrlrange[2 * i], hi = m->actuator_ctrlrange[2 * i + 1];
      env->mid[i] = 0.5 * (lo + hi);
      env->half[i] = 0.5 * (hi - lo);
    }
  }
  /* Gym: dt = timestep * frame_skip; TimeLimit 1000; the reward of Ant/Humanoid needs
     cfrc_ext, custom models always get it (their rules may read it) */
  env->act_dim = nu;
  env->frame_skip = frame_skip;
  env->dt = m->opt.timestep * frame_skip;
  env->max_steps = MBS_MAX_STEPS;
  env->reset_noise = 0.005;
  env->rne = task ? task->rne : 1;
  env->obs_dim = task ? task->obs_dim : 0;
  mbg_seed(&env->rng, seed, 0);
  return env;
}

/* A built-in task: compile its embedded MJCF, then wrap it in an env. */
const mbField mbs_envFields[] = {MB_ENV_FIELDS(mbEnvOptions) MB_F_END};
const mbField mbs_mjcfFields[] = {MB_MJCF_FIELDS(mbEnvOptions) MB_F_END};
const mbField mbs_resetFields[] = {
  MB_F_U64(mbsResetOptions, seed, NAN, "reseeds the env's generator first")
  MB_F_DOUBLE(mbsResetOptions, noise_scale, 0, 1, 0, HUGE_VAL, "scale of the reset noise")
  MB_F_END};

mbEnv *mbs_make(const char *name, uint64_t seed) {
  const mbsTask *task = find_task(name);
  if (!task) {
    char known[256] = "";
    for (int i = 0; i < NTASKS; i++) {
      strncat(known, tasks[i]->name, sizeof known - strlen(known) - 1);
      if (i + 1 < NTASKS) strncat(known, ", ", sizeof known - strlen(known) - 1);
    }
    mbu_error("unknown task '%s' (known: %s)", name ? name : "(null)", known);
    return NULL;
  }
  install_handlers();
  const char *xml = mbs_embedded(task->xml);
  if (!xml) {
    mbu_error("%s: embedded model %s missing from the binary", task->name, task->xml);
    return NULL;
  }
  char err[1024] = "";
  mjModel *m = load_string(task->xml, xml, err, sizeof err);
  if (!m) return NULL;
  if (m->nu != task->act_dim) {
    mbu_error("%s: model has %d actuators, the task expects %d", task->name, m->nu,
              task->act_dim);
    mj_deleteModel(m);
    return NULL;
  }
  return new_env(m, task, task->name, task->frame_skip, seed);
}

/* A user model from a file; MuJoCo resolves includes relative to the file. */
mbEnv *mbs_fromFile(const char *path, int frame_skip, uint64_t seed) {
  if (!path) {
    mbu_error("from_mjcf: no path given");
    return NULL;
  }
  if (frame_skip < 1) {
    mbu_error("from_mjcf: frame_skip must be >= 1, got %d", frame_skip);
    return NULL;
  }
  install_handlers();
  /* a missing file gets the OS's reason; everything else MuJoCo's own message */
  FILE *f = fopen(path, "rb");
  if (!f) {
    mbu_error("from_mjcf: cannot open '%s': %s", path, strerror(errno));
    return NULL;
  }
  fclose(f);
  char err[1024] = "";
  loadArgs a = {path, NULL, err, sizeof err, NULL};
  if (guarded(NULL, do_load, &a, "loading the model") < 0) return NULL;
  if (!a.m) {
    one_line(err);
    mbu_error("from_mjcf: '%s' does not load: %s", path, err[0] ? err : "unknown error");
    return NULL;
  }
  if (a.m->nu < 1) {
    mbu_error("from_mjcf: '%s' has no actuators (an env needs at least one)", path);
    mj_deleteModel(a.m);
    return NULL;
  }
  /* name: the file's base name without extension */
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  char name[128];
  snprintf(name, sizeof name, "%s", base);
  char *dot = strrchr(name, '.');
  if (dot && dot != name) *dot = 0;
  mbEnv *env = new_env(a.m, NULL, name, frame_skip, seed);
  if (!env) return NULL;
  /* the state of qpos0 with its forward pass (a task's first observation reads it, to size
     obs_dim): a reset without noise that leaves the generator and the counters as made */
  mbRng rng = env->rng;
  if (mbs_resetData(env) < 0 || mbs_resetTo(env, NULL, NULL, 0.0) < 0) {
    mbs_free(env);
    return NULL;
  }
  env->rng = rng;
  mbs_setProgress(env, 0, 0, 0);
  return env;
}

/* Frees the env and its MuJoCo model and data. */
void mbs_free(mbEnv *env) {
  if (!env) return;
  if (env->d) mj_deleteData(env->d);
  if (env->m) mj_deleteModel(env->m);
  mbu_free(env->mid);
  mbu_free(env->before);
  mbu_free(env);
}

/* Sizes and settings ---------------------------------------------------------------------- */

/* Plain accessors; see env.h for what each returns. */
const char *mbs_name(const mbEnv *env) { return env->name; }
int mbs_isCustom(const mbEnv *env) { return env->task == NULL; }
int mbs_obsDim(const mbEnv *env) { return env->obs_dim; }
void mbs_setObsDim(mbEnv *env, int obs_dim) { if (!env->task) env->obs_dim = obs_dim; }
int mbs_actDim(const mbEnv *env) { return env->act_dim; }
int mbs_nq(const mbEnv *env) { return env->m->nq; }
int mbs_nv(const mbEnv *env) { return env->m->nv; }
int mbs_nbody(const mbEnv *env) { return env->m->nbody; }
int mbs_frameSkip(const mbEnv *env) { return env->frame_skip; }
double mbs_dt(const mbEnv *env) { return env->dt; }
double mbs_timestep(const mbEnv *env) { return env->m->opt.timestep; }
int mbs_maxSteps(const mbEnv *env) { return env->max_steps; }
void mbs_setMaxSteps(mbEnv *env, int max_steps) { env->max_steps = max_steps; }
void mbs_setResetNoise(mbEnv *env, double noise) { env->reset_noise = noise; }
mbRng *mbs_rng(mbEnv *env) { return &env->rng; }
int64_t mbs_steps(const mbEnv *env) { return env->steps; }
int mbs_started(const mbEnv *env) { return env->started; }
int mbs_done(const mbEnv *env) { return env->done; }

/* Restores the episode counters (checkpoint load). */
void mbs_setProgress(mbEnv *env, int64_t steps, int started, int done) {
  env->steps = steps;
  env->started = started;
  env->done = done;
}

/* The ctrl range per actuator as the action map uses it (unlimited: -inf, inf). */
void mbs_ctrlRange(double *lo, double *hi, const mbEnv *env) {
  for (int i = 0; i < env->act_dim; i++) {
    if (env->m->actuator_ctrllimited[i]) {
      lo[i] = env->m->actuator_ctrlrange[2 * i];
      hi[i] = env->m->actuator_ctrlrange[2 * i + 1];
    } else {
      lo[i] = -INFINITY;
      hi[i] = INFINITY;
    }
  }
}

/* Body id by name (0 = world), -1 when there is none. */
int mbs_bodyId(const mbEnv *env, const char *name) {
  return mj_name2id(env->m, mjOBJ_BODY, name);
}

/* Physics --------------------------------------------------------------------------------- */

static void do_forward(mbEnv *env, void *arg) {
  (void)arg;
  mj_forward(env->m, env->d);
  if (env->rne) mj_rnePostConstraint(env->m, env->d);
}

static void do_resetdata(mbEnv *env, void *arg) {
  (void)arg;
  mj_resetData(env->m, env->d);
}

/* frame_skip substeps, then cfrc_ext where needed; positions are read straight after */
static void do_substeps(mbEnv *env, void *arg) {
  (void)arg;
  for (int k = 0; k < env->frame_skip; k++) mj_step(env->m, env->d);
  if (env->rne) mj_rnePostConstraint(env->m, env->d);
}

/* checks the action and writes ctrl */
static int set_ctrl(mbEnv *env, const double *u) {
  for (int i = 0; i < env->act_dim; i++)
    if (!isfinite(u[i]))
      return mbu_error("%s: action element %d of %d is %s", env->name, i + 1, env->act_dim,
                       isnan(u[i]) ? "NaN" : "infinite");
  double *ctrl = env->d->ctrl;
  for (int i = 0; i < env->act_dim; i++) {
    if (env->half[i] > 0) ctrl[i] = env->mid[i] + env->half[i] * mbs_clip(u[i], -1.0, 1.0);
    else ctrl[i] = u[i];
  }
  return MB_OK;
}

static int check_live(const mbEnv *env) {
  if (!env->started)
    return mbu_error("%s: step before reset (call reset first)", env->name);
  if (env->done)
    return mbu_error("%s: step after the episode ended (terminated or truncated at step %lld); "
                     "call reset", env->name, (long long)env->steps);
  return MB_OK;
}

/* Built-in reset: mj_resetData, the task's noise (scaled), mj_forward (+ cfrc_ext). */
int mbs_reset(float *obs, mbEnv *env, double noise_scale) {
  if (!env->task) return mbu_error("%s: custom env: reset through mbs_resetTo", env->name);
  if (!isfinite(noise_scale) || noise_scale < 0)
    return mbu_error("%s: reset: noise_scale must be finite and >= 0, got %g", env->name,
                     noise_scale);
  /* mj_resetData leaves qpos = qpos0, qvel = 0, qacc_warmstart = 0, time = 0 */
  if (guarded(env, do_resetdata, NULL, "reset") < 0) return MB_ERR;
  env->task->noise(env->m, env->d, &env->rng, noise_scale);
  if (guarded(env, do_forward, NULL, "reset") < 0) return MB_ERR;
  env->steps = 0;
  env->started = 1;
  env->done = 0;
  if (obs) env->task->observe(obs, env->m, env->d);
  return MB_OK;
}

/* One env step of a built-in task in Gym v2 order: position before, ctrl, substeps,
   position after, reward, termination, truncation, observation. */
int mbs_step(float *obs, double *reward, int *terminated, int *truncated, mbEnv *env,
             const double *action) {
  const mbsTask *t = env->task;
  if (!t) return mbu_error("%s: custom env: step through mbs_simulate", env->name);
  if (check_live(env) < 0) return MB_ERR;
  /* "before" read from mjData as it stands: for Ant/Humanoid the previous step's last
     forward pass (lagged xpos/xipos), exactly what Gym reads */
  double before = t->position(env->m, env->d);
  if (set_ctrl(env, action) < 0) return MB_ERR;
  if (guarded(env, do_substeps, NULL, "step") < 0) return MB_ERR;
  env->steps++;
  /* positions straight after mj_step, no extra mj_forward (Gym v2) */
  double after = t->position(env->m, env->d);
  *reward = t->reward(env->m, env->d, before, after, env->dt);
  *terminated = t->terminated(env->m, env->d);
  /* the time limit is reported apart from termination (MBPO does not store it as terminal) */
  *truncated = env->steps >= env->max_steps;
  env->done = *terminated || *truncated;
  if (obs) t->observe(obs, env->m, env->d);
  return MB_OK;
}

/* Gym's set_state: writes qpos/qvel, runs the forward pass; counters kept. */
int mbs_setState(float *obs, mbEnv *env, const double *qpos, const double *qvel) {
  for (int i = 0; i < env->m->nq; i++)
    if (!isfinite(qpos[i]))
      return mbu_error("%s: set_state: qpos[%d] is not finite", env->name, i + 1);
  for (int i = 0; i < env->m->nv; i++)
    if (!isfinite(qvel[i]))
      return mbu_error("%s: set_state: qvel[%d] is not finite", env->name, i + 1);
  memcpy(env->d->qpos, qpos, sizeof(double) * (size_t)env->m->nq);
  memcpy(env->d->qvel, qvel, sizeof(double) * (size_t)env->m->nv);
  if (guarded(env, do_forward, NULL, "set_state") < 0) return MB_ERR;
  env->started = 1;
  env->done = 0;
  if (obs && env->task) env->task->observe(obs, env->m, env->d);
  return MB_OK;
}

/* Observation of the current state (built-in tasks only). */
int mbs_observe(float *obs, const mbEnv *env) {
  if (!env->task) return mbu_error("%s: custom env: no built-in observation", env->name);
  env->task->observe(obs, env->m, env->d);
  return MB_OK;
}

/* The task's own termination rule on the current state. */
int mbs_terminated(const mbEnv *env) {
  return env->task ? env->task->terminated(env->m, env->d) : 0;
}

/* Custom envs ------------------------------------------------------------------------------ */

/* Custom envs, first half of a reset: mjData back to qpos0 and zero velocity. */
int mbs_resetData(mbEnv *env) { return guarded(env, do_resetdata, NULL, "reset"); }

/* Custom envs, second half of a reset: the given (or noisy default) state, forward. */
int mbs_resetTo(mbEnv *env, const double *qpos, const double *qvel, double noise_scale) {
  const mjModel *m = env->m;
  mjData *d = env->d;
  if (!isfinite(noise_scale) || noise_scale < 0)
    return mbu_error("%s: reset: noise_scale must be finite and >= 0, got %g", env->name,
                     noise_scale);
  /* the draws happen in a fixed order (qpos, then qvel) whatever is given */
  if (qpos) {
    for (int i = 0; i < m->nq; i++)
      if (!isfinite(qpos[i]))
        return mbu_error("%s: reset: qpos[%d] is not finite", env->name, i + 1);
    memcpy(d->qpos, qpos, sizeof(double) * (size_t)m->nq);
  } else {
    memcpy(d->qpos, m->qpos0, sizeof(double) * (size_t)m->nq);
    mbs_addUniform(d->qpos, m->nq, &env->rng, env->reset_noise, noise_scale);
  }
  if (qvel) {
    for (int i = 0; i < m->nv; i++)
      if (!isfinite(qvel[i]))
        return mbu_error("%s: reset: qvel[%d] is not finite", env->name, i + 1);
    memcpy(d->qvel, qvel, sizeof(double) * (size_t)m->nv);
  } else {
    memset(d->qvel, 0, sizeof(double) * (size_t)m->nv);
    mbs_addUniform(d->qvel, m->nv, &env->rng, env->reset_noise, noise_scale);
  }
  if (guarded(env, do_forward, NULL, "reset") < 0) return MB_ERR;
  env->steps = 0;
  env->started = 1;
  env->done = 0;
  return MB_OK;
}

/* the before-snapshot layout: qpos, qvel, ctrl, xpos, xipos, cfrc_ext */
static void snapshot(mbEnv *env) {
  const mjModel *m = env->m;
  const mjData *d = env->d;
  double *p = env->before;
  size_t nb = (size_t)m->nbody;
  memcpy(p, d->qpos, sizeof(double) * (size_t)m->nq);        p += m->nq;
  memcpy(p, d->qvel, sizeof(double) * (size_t)m->nv);        p += m->nv;
  memcpy(p, d->ctrl, sizeof(double) * (size_t)m->nu);        p += m->nu;
  memcpy(p, d->xpos, sizeof(double) * 3 * nb);               p += 3 * nb;
  memcpy(p, d->xipos, sizeof(double) * 3 * nb);              p += 3 * nb;
  memcpy(p, d->cfrc_ext, sizeof(double) * 6 * nb);
  env->before_time = d->time;
}

/* Custom envs: the physics of one env step, with a snapshot of the state before. */
int mbs_simulate(mbEnv *env, const double *action) {
  if (check_live(env) < 0) return MB_ERR;
  snapshot(env);
  if (set_ctrl(env, action) < 0) return MB_ERR;
  if (guarded(env, do_substeps, NULL, "step") < 0) return MB_ERR;
  env->steps++;
  return MB_OK;
}

/* Custom envs: records the caller's termination and applies the step limit. */
int mbs_endStep(mbEnv *env, int terminated) {
  int truncated = env->steps >= env->max_steps;
  env->done = terminated || truncated;
  return truncated;
}

/* Pointers to the current state (before = 0) or to the pre-step snapshot (before = 1). */
void mbs_view(mbsView *v, const mbEnv *env, int before) {
  const mjModel *m = env->m;
  const mjData *d = env->d;
  v->nq = m->nq;
  v->nv = m->nv;
  v->nu = m->nu;
  v->nbody = m->nbody;
  v->body_mass = m->body_mass;
  if (before) {
    const double *p = env->before;
    size_t nb = (size_t)m->nbody;
    v->qpos = p;            p += m->nq;
    v->qvel = p;            p += m->nv;
    v->ctrl = p;            p += m->nu;
    v->xpos = p;            p += 3 * nb;
    v->xipos = p;           p += 3 * nb;
    v->cfrc_ext = p;
    v->time = env->before_time;
  } else {
    v->qpos = d->qpos;
    v->qvel = d->qvel;
    v->ctrl = d->ctrl;
    v->xpos = d->xpos;
    v->xipos = d->xipos;
    v->cfrc_ext = d->cfrc_ext;
    v->time = d->time;
  }
}

/* The state blocks, in a fixed order; the arrays point straight into mjData. */
int mbs_stateBlocks(mbStateBlock *b, mbEnv *env) {
  const mjModel *m = env->m;
  mjData *d = env->d;
  mbStateBlock *p = b, *name = p;
  p = mbu_block(p, "name", MB_STR, MB_ST_CHECK, NULL, 0, 0, 0);
  snprintf(name->text, MB_STATE_TEXT, "%s", mbs_name(env));
  p = mbu_block(p, "steps", MB_I64, 0, &env->steps, 0, 0, 0);
  p = mbu_block(p, "started", MB_BOOL, 0, &env->started, 0, 0, 0);
  p = mbu_block(p, "done", MB_BOOL, 0, &env->done, 0, 0, 0);
  p = mbg_stateBlocks(p, &env->rng);
  p[-1].flags = 0;  /* as saved by every build so far: not checked for zero */
  p = mbu_block(p, "time", MB_F64, 0, &d->time, 1, 1, 0);
  p = mbu_block(p, "qpos", MB_F64, 0, d->qpos, 1, m->nq, 0);
  p = mbu_block(p, "qvel", MB_F64, 0, d->qvel, 1, m->nv, 0);
  p = mbu_block(p, "act", MB_F64, 0, d->act, 1, m->na, 0);
  p = mbu_block(p, "ctrl", MB_F64, 0, d->ctrl, 1, m->nu, 0);
  p = mbu_block(p, "qacc_warmstart", MB_F64, 0, d->qacc_warmstart, 1, m->nv, 0);
  p = mbu_block(p, "xpos", MB_F64, 0, d->xpos, 1, 3 * m->nbody, 0);
  p = mbu_block(p, "xipos", MB_F64, 0, d->xipos, 1, 3 * m->nbody, 0);
  p = mbu_block(p, "cfrc_ext", MB_F64, 0, d->cfrc_ext, 1, 6 * m->nbody, 0);
  return (int)(p - b);
}

/* Model-rollout termination ------------------------------------------------------------------ */

/* MBPO's termination function of a task on a batch of next observations. */
int mbs_termination(float *done, const char *name, const float *next_obs, int64_t n,
                    int64_t obs_dim, int flags) {
  const mbsTask *t = find_task(name);
  if (!t) return mbu_error("termination: unknown task '%s'", name ? name : "(null)");
  if (obs_dim != t->obs_dim)
    return mbu_error("termination(%s): next_obs has %lld columns, the task's obs has %d",
                     t->name, (long long)obs_dim, t->obs_dim);
  if (n < 0) return mbu_error("termination(%s): negative row count", t->name);
  t->done(done, next_obs, n, flags);
  return MB_OK;
}

/* Benchmark ----------------------------------------------------------------------------------- */

/* CPU seconds of this process (what os.clock() reports in Lua): on a shared machine it
   does not count the time other processes take from us */
static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* arguments of the guarded raw loop */
typedef struct rawArgs {
  const double *ctrl;      /* [episode_len x nu] */
  int64_t nsteps;
  int episode_len;
  double seconds;
} rawArgs;

/* plain MuJoCo calls only: what a hand-written C loop over the same model does */
static void do_rawloop(mbEnv *env, void *arg) {
  rawArgs *a = arg;
  const mjModel *m = env->m;
  mjData *d = env->d;
  int nu = m->nu, fs = env->frame_skip, rne = env->rne;
  double t0 = cpu_seconds();
  for (int64_t s = 0; s < a->nsteps; s++) {
    int t = (int)(s % a->episode_len);
    if (t == 0) {
      mj_resetData(m, d);
      mj_forward(m, d);
      if (rne) mj_rnePostConstraint(m, d);
    }
    memcpy(d->ctrl, a->ctrl + (size_t)t * nu, sizeof(double) * (size_t)nu);
    for (int k = 0; k < fs; k++) mj_step(m, d);
    if (rne) mj_rnePostConstraint(m, d);
  }
  a->seconds = cpu_seconds() - t0;
}

/* The raw MuJoCo baseline of `mbpo bench env`. */
int mbs_benchRaw(double *seconds, const char *name, int64_t nsteps, int episode_len) {
  if (episode_len < 1 || nsteps < 0)
    return mbu_error("bench: episode_len must be >= 1 and nsteps >= 0");
  mbEnv *env = mbs_make(name, 0);
  if (!env) return MB_ERR;
  int nu = env->m->nu;
  double *ctrl = mbu_malloc(sizeof(double) * (size_t)episode_len * (size_t)nu);
  if (!ctrl) {
    mbs_free(env);
    return MB_ERR;
  }
  /* the ctrl of the sine actions, through the same action map as the env */
  for (int t = 0; t < episode_len; t++)
    for (int i = 0; i < nu; i++)
      ctrl[(size_t)t * nu + i] = env->mid[i] + env->half[i] * 0.5 * sin(0.1 * t + i);
  /* one guard around the whole loop: no per-step cost */
  rawArgs a = {ctrl, nsteps, episode_len, 0.0};
  int rc = guarded(env, do_rawloop, &a, "raw loop");
  *seconds = a.seconds;
  mbu_free(ctrl);
  mbs_free(env);
  return rc;
}
