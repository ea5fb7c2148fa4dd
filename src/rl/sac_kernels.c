/* The fused Adam + Polyak step of the SAC update (8 AVX lanes with the scalar loop's
   operations in the same order per element; moves into src/nn with the one Adam). */
#pragma GCC optimize("O3")

#include "mbpo/sac.h"

#include <math.h>
#include <string.h>
#ifdef __AVX__
#include <immintrin.h>
#endif


void mbn_adamPolyak(float *restrict p, float *restrict mom, float *restrict vel,
                    const float *restrict g, float *restrict targ, float tau, size_t n,
                    const mbAdam *opt) {
  const float b1 = opt->beta1, b2 = opt->beta2;
  /* as mbn_adamUpdate: bias corrections in double, then the same float arithmetic */
  const float c1 = (float)(1.0 - pow(b1, (double)opt->t));
  const float c2 = (float)(1.0 - pow(b2, (double)opt->t));
  const float step = opt->lr / c1, rc2 = 1.0f / sqrtf(c2), eps = opt->eps;
  const float keep = 1.0f - tau, omb1 = 1.0f - b1, omb2 = 1.0f - b2;
  size_t i = 0;
  /* one loop for both paths: a 16-lane version measured 0.8x of this one on Zen 4
     (tools/simd_kernels), so the AVX-512 path runs the 8-lane loop too */
#ifdef __AVX__
  /* 8 lanes with the scalar loop's operations in the same order (sqrt and div are correctly
     rounded, so every lane gives the scalar result) */
  const __m256 vb1 = _mm256_set1_ps(b1), vb2 = _mm256_set1_ps(b2), vo1 = _mm256_set1_ps(omb1),
               vo2 = _mm256_set1_ps(omb2), vstep = _mm256_set1_ps(step),
               vrc2 = _mm256_set1_ps(rc2), veps = _mm256_set1_ps(eps),
               vkeep = _mm256_set1_ps(keep), vtau = _mm256_set1_ps(tau);
  for (; i + 8 <= n; i += 8) {
    __m256 gi = _mm256_loadu_ps(g + i);
    __m256 mi = _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_loadu_ps(mom + i)), _mm256_mul_ps(vo1, gi));
    __m256 vi = _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_loadu_ps(vel + i)),
                              _mm256_mul_ps(_mm256_mul_ps(vo2, gi), gi));
    _mm256_storeu_ps(mom + i, mi);
    _mm256_storeu_ps(vel + i, vi);
    __m256 den = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vi), vrc2), veps);
    __m256 pi = _mm256_sub_ps(_mm256_loadu_ps(p + i), _mm256_div_ps(_mm256_mul_ps(vstep, mi), den));
    _mm256_storeu_ps(p + i, pi);
    if (targ)
      _mm256_storeu_ps(targ + i, _mm256_add_ps(_mm256_mul_ps(vkeep, _mm256_loadu_ps(targ + i)),
                                               _mm256_mul_ps(vtau, pi)));
  }
#endif
  for (; i < n; i++) {
    float gi = g[i];
    float mi = b1 * mom[i] + omb1 * gi;
    float vi = b2 * vel[i] + omb2 * gi * gi;
    mom[i] = mi;
    vel[i] = vi;
    float pi = p[i] - step * mi / (sqrtf(vi) * rc2 + eps);
    p[i] = pi;
    if (targ) targ[i] = keep * targ[i] + tau * pi;
  }
}
