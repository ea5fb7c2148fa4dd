/* mbpo.bench.native: the timed loops of `mbpo bench` (src/bench/bench.h), for the Lua
   benchmark modules lua/mbpo/bench/NAME.lua; not part of the library's API. */
#include <cblas.h>

#include "bench/bench.h"
#include "lua/l_mbpo.h"
#include "mbpo/ensemble.h"
#include "mbpo/env.h"

double mbb_sgemm(int m, int n, int k, int transa, int transb, int reps) {
  size_t na = (size_t)m * (size_t)k, nb = (size_t)k * (size_t)n, nc = (size_t)m * (size_t)n;
  float *a = mbu_alignedAlloc(na * sizeof(float)), *b = mbu_alignedAlloc(nb * sizeof(float));
  float *c = mbu_alignedAlloc(nc * sizeof(float));
  double sec = -1;
  if (reps < 1) reps = 1;
  if (a && b && c) {
    mbRng g;
    mbg_seed(&g, 1, 0);
    mbg_uniformFill(a, &g, na, -1, 1);
    mbg_uniformFill(b, &g, nb, -1, 1);
    int lda = transa ? m : k, ldb = transb ? k : n;
    lda = lda > 1 ? lda : 1;
    ldb = ldb > 1 ? ldb : 1;
    int ldc = n > 1 ? n : 1;
    for (int r = -1; r < reps; r++) {
      if (r == 0) sec = mbu_clock();
      cblas_sgemm(CblasRowMajor, transa ? CblasTrans : CblasNoTrans,
                  transb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c,
                  ldc);
    }
    sec = (mbu_clock() - sec) / reps;
  }
  mbu_free(a);
  mbu_free(b);
  mbu_free(c);
  return sec;
}

/* sgemm(m, n, k, transa, transb, reps [, rounds]) -> median seconds, {round times} */
static int b_sgemm(lua_State *L) {
  lua_Integer m = luaL_checkinteger(L, 1), n = luaL_checkinteger(L, 2), k = luaL_checkinteger(L, 3);
  int ta = lua_toboolean(L, 4), tb = lua_toboolean(L, 5);
  lua_Integer reps = luaL_checkinteger(L, 6), rounds = luaL_optinteger(L, 7, 5);
  luaL_argcheck(L, m >= 1 && n >= 1 && k >= 1 && m <= 1 << 20 && n <= 1 << 20 && k <= 1 << 20,
                1, "sizes out of range [1, 2^20]");
  luaL_argcheck(L, reps >= 1 && rounds >= 1 && rounds <= 99, 6, "reps and rounds must be >= 1");
  double sec[99];
  lua_createtable(L, (int)rounds, 0);
  for (int r = 0; r < rounds; r++) {
    sec[r] = mbb_sgemm((int)m, (int)n, (int)k, ta, tb, (int)reps);
    if (sec[r] < 0) return mbL_coreerror(L);
    lua_pushnumber(L, sec[r]);
    lua_rawseti(L, -2, r + 1);
  }
  /* median by insertion sort */
  for (int i = 1; i < rounds; i++)
    for (int j = i; j > 0 && sec[j - 1] > sec[j]; j--) {
      double x = sec[j]; sec[j] = sec[j - 1]; sec[j - 1] = x;
    }
  double med = rounds % 2 ? sec[rounds / 2] : 0.5 * (sec[rounds / 2 - 1] + sec[rounds / 2]);
  lua_pushnumber(L, med);
  lua_insert(L, -2);
  return 2;
}

/* env_raw(name, nsteps, episode_len) -> seconds of the raw MuJoCo loop */
static int b_envraw(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  lua_Integer nsteps = luaL_checkinteger(L, 2);
  lua_Integer len = luaL_checkinteger(L, 3);
  luaL_argcheck(L, len >= 1 && len <= INT32_MAX, 3, "episode_len must be >= 1");
  double s;
  int rc = mbs_benchRaw(&s, name, nsteps, (int)len);
  for (const char *w; (w = mbs_nextWarning()) != NULL;) {
    lua_warning(L, "mbpo.env: MuJoCo warning: ", 1);
    lua_warning(L, w, 0);
  }
  if (rc < 0) return mbL_coreerror(L);
  lua_pushnumber(L, s);
  return 1;
}

static mbEnsemble *checkens(lua_State *L) {
  return *(mbEnsemble **)mbL_checkopen(L, 1, "mbpo.Ensemble", "ensemble");
}

/* ens_train_step(ens, reps [, B = batch]) -> seconds per step on one fixed random minibatch */
static int b_enstrain(lua_State *L) {
  mbEnsemble *e = checkens(L);
  lua_Integer reps = luaL_checkinteger(L, 2), B = luaL_optinteger(L, 3, e->cfg.batch);
  luaL_argcheck(L, reps >= 1 && reps <= 1000000, 2, "reps out of range");
  luaL_argcheck(L, B >= 1 && B <= 65536, 3, "B out of range");
  size_t nx = (size_t)e->cfg.members * B * e->cfg.inputs;
  size_t ny = (size_t)e->cfg.members * B * e->cfg.outputs;
  float *x = lua_newuserdatauv(L, (nx + ny) * sizeof(float), 0), *y = x + nx;
  mbRng g;
  mbg_seed(&g, 12345, 0);
  mbg_normalFill(x, &g, nx + ny);
  double t0 = mbu_clock();
  for (lua_Integer i = 0; i < reps; i++) {
    if (mbu_interrupted) return luaL_error(L, "interrupted");
    MBL_CHECK(L, mbn_ensTrainStep(NULL, e, x, y, (int)B));
  }
  lua_pushnumber(L, (mbu_clock() - t0) / (double)reps);
  return 1;
}

/* ens_step(ens, rows, reps) -> seconds per model step over rows random rows (sample mode);
   the inputs are drawn once */
static int b_ensstep(lua_State *L) {
  mbEnsemble *e = checkens(L);
  lua_Integer N = luaL_checkinteger(L, 2), reps = luaL_checkinteger(L, 3);
  luaL_argcheck(L, N >= 1 && N <= (1 << 24), 2, "rows out of range");
  luaL_argcheck(L, reps >= 1 && reps <= 100000, 3, "reps out of range");
  int od = e->cfg.outputs - 1, ad = e->cfg.inputs - od;
  if (od < 1 || ad < 0) return luaL_error(L, "bench ens_step: not a dynamics model");
  size_t n = (size_t)N * (2 * od + ad + 1);
  float *obs = lua_newuserdatauv(L, n * sizeof(float), 0);
  float *act = obs + (size_t)N * od, *next = act + (size_t)N * ad, *rew = next + (size_t)N * od;
  mbRng g;
  mbg_seed(&g, 12345, 0);
  mbg_normalFill(obs, &g, (size_t)N * (od + ad));
  double t0 = mbu_clock();
  for (lua_Integer i = 0; i < reps; i++) {
    if (mbu_interrupted) return luaL_error(L, "interrupted");
    MBL_CHECK(L, mbn_ensStep(next, rew, NULL, e, obs, act, N, &g, MB_PRED_SAMPLE));
  }
  lua_pushnumber(L, (mbu_clock() - t0) / (double)reps);
  return 1;
}

/* blas() -> OpenBLAS's kernel family and build configuration, e.g. "Haswell: OpenBLAS
   0.3.21 ..." */
static int b_blas(lua_State *L) {
  lua_pushfstring(L, "%s: %s", openblas_get_corename(), openblas_get_config());
  return 1;
}

/* ens_fast([on]) -> whether the ensemble's bf16 fast path was on; sets it when on is given
   (mbn_ensFastUse: A/B rounds in one process) */
static int b_ensfast(lua_State *L) {
  lua_pushboolean(L, mbn_ensFastInUse());
  if (!lua_isnoneornil(L, 1)) mbn_ensFastUse(lua_toboolean(L, 1));
  return 1;
}

static const luaL_Reg funcs[] = {
  {"sgemm", b_sgemm}, {"env_raw", b_envraw}, {"ens_train_step", b_enstrain},
  {"ens_step", b_ensstep}, {"blas", b_blas}, {"ens_fast", b_ensfast}, {NULL, NULL}};

int luaopen_mbpo_bench_native(lua_State *L) {
  return mbL_newlib(L, NULL, NULL, funcs);
}
