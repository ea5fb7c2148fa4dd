/* Benchmark-only code of `mbpo bench`, kept out of the public headers and of the bindings:
   the timed loops the core defines for the benchmarks (declared here, not in include/mbpo),
   and the native module mbpo.bench.native (l_bench.c) that the Lua benchmark modules
   (lua/mbpo/bench/NAME.lua) call. */
#ifndef MBPO_BENCH_H
#define MBPO_BENCH_H

#include <stdint.h>

/* Seconds per direct cblas_sgemm call C[m x n] = A @ B on fresh aligned operands, A [m x k]
   (stored [k x m] when transa), B [k x n] (stored [n x k] when transb), averaged over reps
   calls after one warm-up call; negative when out of memory (l_bench.c). */
double mbb_sgemm(int m, int n, int k, int transa, int transb, int reps);

/* Raw MuJoCo loop on a built-in task's model, no env layer: nsteps env steps of
   frame_skip mj_step calls (+ mj_rnePostConstraint where the task needs it) with the ctrl
   of the sine action u_t[i] = 0.5 sin(0.1 t + i), restarting from qpos0 (mj_resetData +
   mj_forward) every episode_len steps; process CPU seconds (as Lua's os.clock) in *seconds
   (src/sim/env.c, which knows the env's insides). */
int mbs_benchRaw(double *seconds, const char *name, int64_t nsteps, int episode_len);

/* Opens mbpo.bench.native (registered in package.preload by l_init.c):
     sgemm(m, n, k, transa, transb, reps [, rounds]) -> median seconds per direct cblas_sgemm
       call over rounds (mean over reps calls each), and the list of round times
     env_raw(name, nsteps, episode_len) -> seconds of mbs_benchRaw
     ens_train_step(ens, reps [, B = batch]) -> seconds per training step on one fixed
       random minibatch, timed inside C
     ens_step(ens, rows, reps) -> seconds per model step over rows random rows (sample mode)
     blas() -> OpenBLAS's kernel family and configuration (for the reports) */
struct lua_State;
int luaopen_mbpo_bench_native(struct lua_State *L);

#endif
