/* Run-time choice between the AVX2 and AVX-512 paths of the elementwise kernels.
   The choice is one int read by every kernel on entry (relaxed atomics: it changes only
   between runs of kernels, by mbn_setIsa in tests and at startup). */
#include "mbpo/nn.h"
#include "mbpo/core.h"

#include <stdlib.h>
#include <string.h>

#include "nn/ens_simd.h"

static int isa_now = -1;   /* -1: not chosen yet */

int mbn_isaSupported(mbIsa isa) {
  if (isa == MB_ISA_AVX2) return 1;
#ifdef MB_SIMD16
  if (isa == MB_ISA_AVX512) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  }
#endif
  return 0;
}

const char *mbn_isaName(mbIsa isa) {
  if (isa == MB_ISA_AVX512) return "avx512";
#ifdef MB_SIMD8
  return "avx2";
#else
  return "scalar";
#endif
}

int mbn_setIsa(mbIsa isa) {
  if (isa != MB_ISA_AVX2 && isa != MB_ISA_AVX512)
    return mbu_error("isa: unknown instruction-set path %d", (int)isa);
  if (!mbn_isaSupported(isa))
    return mbu_error("isa: this CPU (or build) has no %s path", mbn_isaName(isa));
  __atomic_store_n(&isa_now, (int)isa, __ATOMIC_RELAXED);
  return MB_OK;
}

int mbn_isaFromEnv(void) {
  const char *v = getenv("MBPO_ISA");
  mbIsa best = mbn_isaSupported(MB_ISA_AVX512) ? MB_ISA_AVX512 : MB_ISA_AVX2;
  if (!v || !*v || strcmp(v, "auto") == 0) return mbn_setIsa(best);
  if (strcmp(v, "avx2") == 0) return mbn_setIsa(MB_ISA_AVX2);
  if (strcmp(v, "avx512") == 0) {
    if (!mbn_isaSupported(MB_ISA_AVX512))
      return mbu_error("MBPO_ISA=avx512, but this CPU has no AVX-512 (F, BW, DQ and VL): "
                       "unset it or use MBPO_ISA=avx2");
    return mbn_setIsa(MB_ISA_AVX512);
  }
  return mbu_error("MBPO_ISA='%s' is not a path: use avx2, avx512 or auto", v);
}

mbIsa mbn_isa(void) {
  int v = __atomic_load_n(&isa_now, __ATOMIC_RELAXED);
  if (v >= 0) return (mbIsa)v;
  /* first use without mbn_isaFromEnv: MBPO_ISA when valid, else the best path */
  if (mbn_isaFromEnv() < 0) mbn_setIsa(MB_ISA_AVX2);
  return (mbIsa)__atomic_load_n(&isa_now, __ATOMIC_RELAXED);
}
