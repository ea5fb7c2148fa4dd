/* Private vector math for the fused network kernels (src/nn/ens_kernels.c): exp and log as
   Cephes-style polynomials, in AVX2+FMA lanes of 8 floats when the compiler targets them
   (the default build, -march=x86-64-v3) and as scalar code with the same polynomials
   otherwise (a build without AVX2). Relative error about 2 ulp over the float range.
   With AVX2, 16-lane AVX-512 versions for the run-time AVX-512 path (MB_SIMD16, functions
   with the target attribute MB_T512): the same operations per lane, so the same bits as the
   8-lane ones (the sigmoid's reciprocal estimate is taken per 8-lane half with the AVX
   instruction, whose result the AVX-512 rcp14 would not reproduce). */
#ifndef MBPO_ENS_SIMD_H
#define MBPO_ENS_SIMD_H

#include <stdint.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__)
#define MB_SIMD8 1
#include <immintrin.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MB_SIMD16 1
#define MB_T512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#endif
#endif

/* exp: x = n ln2 + r with |r| <= ln2/2, exp(r) by a degree-6 polynomial, 2^n by exponent bits */
#define MB_EXP_HI   88.3762626647949f
#define MB_EXP_LO  -87.3365447504f      /* ln(FLT_MIN): results stay normal */
#define MB_LOG2E    1.44269504088896341f
#define MB_LN2_HI   0.693359375f
#define MB_LN2_LO  -2.12194440e-4f
#define MB_EXP_P0   1.9875691500e-4f
#define MB_EXP_P1   1.3981999507e-3f
#define MB_EXP_P2   8.3334519073e-3f
#define MB_EXP_P3   4.1665795894e-2f
#define MB_EXP_P4   1.6666665459e-1f
#define MB_EXP_P5   5.0000001201e-1f

/* log: x = m 2^e with m in [sqrt(1/2), sqrt(2)), log(m) by a degree-9 polynomial in m - 1 */
#define MB_SQRTHF   0.707106781186547524f
#define MB_LOG_P0   7.0376836292e-2f
#define MB_LOG_P1  -1.1514610310e-1f
#define MB_LOG_P2   1.1676998740e-1f
#define MB_LOG_P3  -1.2420140846e-1f
#define MB_LOG_P4   1.4249322787e-1f
#define MB_LOG_P5  -1.6668057665e-1f
#define MB_LOG_P6   2.0000714765e-1f
#define MB_LOG_P7  -2.4999993993e-1f
#define MB_LOG_P8   3.3333331174e-1f

/* Scalar exp (clamped to the normal float range): n = round(x / ln2), r = x - n ln2 in two
   parts (ln2 = LN2_HI + LN2_LO, LN2_HI exact in few bits so n LN2_HI is exact), exp(r) =
   1 + r + r^2 P(r), then the exponent field of 2^n is built directly. */
static inline float mb_expf(float x) {
  x = x > MB_EXP_HI ? MB_EXP_HI : (x < MB_EXP_LO ? MB_EXP_LO : x);
  float fn = __builtin_roundf(x * MB_LOG2E);
  float r = x - fn * MB_LN2_HI - fn * MB_LN2_LO;
  float p = MB_EXP_P0;
  p = p * r + MB_EXP_P1; p = p * r + MB_EXP_P2; p = p * r + MB_EXP_P3;
  p = p * r + MB_EXP_P4; p = p * r + MB_EXP_P5;
  p = p * r * r + r + 1.0f;
  /* a NaN x gives a NaN p; its exponent is taken as 0 (converting NaN to int is undefined) */
  int32_t bits = ((fn == fn ? (int32_t)fn : 0) + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

/* Scalar natural log of a normal float x > 0: x = m 2^e from the bit fields with m in
   [0.5, 1), moved to [sqrt(1/2), sqrt(2)) so that f = m - 1 is small; log(1 + f) =
   f - f^2 / 2 + f^3 P(f); e ln2 added in two parts as in exp. */
static inline float mb_logf(float x) {
  int32_t bits;
  memcpy(&bits, &x, sizeof bits);
  float e = (float)(((bits >> 23) & 0xff) - 126);
  bits = (bits & 0x807fffff) | 0x3f000000; /* mantissa in [0.5, 1) */
  float m;
  memcpy(&m, &bits, sizeof m);
  if (m < MB_SQRTHF) { e -= 1.0f; m = m + m - 1.0f; } else m = m - 1.0f;
  float z = m * m;
  float y = MB_LOG_P0;
  y = y * m + MB_LOG_P1; y = y * m + MB_LOG_P2; y = y * m + MB_LOG_P3;
  y = y * m + MB_LOG_P4; y = y * m + MB_LOG_P5; y = y * m + MB_LOG_P6;
  y = y * m + MB_LOG_P7; y = y * m + MB_LOG_P8;
  y = y * m * z;
  y += e * MB_LN2_LO;
  y -= 0.5f * z;
  return m + y + e * MB_LN2_HI;
}

/* softplus(x) = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)); log1p(u) computed as
   log(1 + u) * u / ((1 + u) - 1), exact to rounding for tiny u */
static inline float mb_softplusf(float x) {
  float a = x < 0 ? -x : x;
  float u = mb_expf(-a), w = 1.0f + u, d = w - 1.0f;
  float l = d == 0.0f ? u : mb_logf(w) * (u / d);
  return (x > 0 ? x : 0.0f) + l;
}

/* sigmoid(x) = 1 / (1 + exp(-x)) */
static inline float mb_sigmoidf(float x) { return 1.0f / (1.0f + mb_expf(-x)); }

/* scalar sin and cos of 2 pi t, the same reduction and polynomials as mb_sincos2pi8 */
static inline void mb_sincos2pif(float t, float *sn, float *cs) {
  float j = __builtin_roundf(4.0f * t);
  float a = (t - 0.25f * j) * 6.28318530717958648f, a2 = a * a;
  float s = ((-1.9515295891e-4f * a2 + 8.3321608736e-3f) * a2 - 1.6666654611e-1f) * a2 * a + a;
  float c = ((2.443315711809948e-5f * a2 - 1.388731625493765e-3f) * a2 + 4.166664568298827e-2f) *
            a2 * a2 + (1.0f - 0.5f * a2);
  switch ((int)j & 3) {
    case 0: *sn = s; *cs = c; break;
    case 1: *sn = c; *cs = -s; break;
    case 2: *sn = -s; *cs = -c; break;
    default: *sn = -c; *cs = s; break;
  }
}

#ifdef MB_SIMD8
/* 8-lane exp: the same steps as mb_expf with FMAs (results may differ in the last bit) */
static inline __m256 mb_exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(MB_EXP_LO)), _mm256_set1_ps(MB_EXP_HI));
  __m256 fn = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(MB_LOG2E)),
                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(MB_LN2_HI), x);
  r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(MB_LN2_LO), r);
  __m256 p = _mm256_set1_ps(MB_EXP_P0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(MB_EXP_P1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(MB_EXP_P2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(MB_EXP_P3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(MB_EXP_P4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(MB_EXP_P5));
  p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  __m256i n = _mm256_add_epi32(_mm256_cvtps_epi32(fn), _mm256_set1_epi32(127));
  return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(n, 23)));
}

/* 8-lane log: the same steps as mb_logf, the range adjustment by masks instead of a branch */
static inline __m256 mb_log8(__m256 x) {
  __m256i bits = _mm256_castps_si256(x);
  __m256 e = _mm256_cvtepi32_ps(_mm256_sub_epi32(
      _mm256_and_si256(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(0xff)),
      _mm256_set1_epi32(126)));
  bits = _mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32((int)0x807fffff)),
                         _mm256_set1_epi32(0x3f000000));
  __m256 m = _mm256_castsi256_ps(bits);
  __m256 small = _mm256_cmp_ps(m, _mm256_set1_ps(MB_SQRTHF), _CMP_LT_OQ);
  e = _mm256_sub_ps(e, _mm256_and_ps(small, _mm256_set1_ps(1.0f)));
  m = _mm256_sub_ps(_mm256_add_ps(m, _mm256_and_ps(small, m)), _mm256_set1_ps(1.0f));
  __m256 z = _mm256_mul_ps(m, m);
  __m256 y = _mm256_set1_ps(MB_LOG_P0);
  y = _mm256_fmadd_ps(y, m, _mm256_set1_ps(MB_LOG_P1));
  y = _mm256_fmadd_ps(y, m, _mm256_set1_ps(MB_LOG_P2));
  y = _mm256_fmadd_ps(y, m, _mm256_set1_ps(MB_LOG_P3));
  y = _mm256_fmadd_ps(y, m, _mm256_set1_ps(MB_LOG_P4));
  y = _mm256_fmadd_ps(y, m, _mm256_set1_ps(MB_LOG_P5));
  y = _mm256_fmadd_ps(y, m, _mm256_set1_ps(MB_LOG_P6));
  y = _mm256_fmadd_ps(y, m, _mm256_set1_ps(MB_LOG_P7));
  y = _mm256_fmadd_ps(y, m, _mm256_set1_ps(MB_LOG_P8));
  y = _mm256_mul_ps(_mm256_mul_ps(y, m), z);
  y = _mm256_fmadd_ps(e, _mm256_set1_ps(MB_LN2_LO), y);
  y = _mm256_fnmadd_ps(_mm256_set1_ps(0.5f), z, y);
  return _mm256_fmadd_ps(e, _mm256_set1_ps(MB_LN2_HI), _mm256_add_ps(m, y));
}

/* 8-lane softplus as mb_softplusf; the max() guards the unused division when u is tiny */
static inline __m256 mb_softplus8(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
  __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);               /* |x| */
  __m256 u = mb_exp8(_mm256_sub_ps(zero, a));
  __m256 w = _mm256_add_ps(one, u), d = _mm256_sub_ps(w, one);
  __m256 l = _mm256_mul_ps(mb_log8(w), _mm256_div_ps(u, _mm256_max_ps(d, _mm256_set1_ps(1e-30f))));
  l = _mm256_blendv_ps(l, u, _mm256_cmp_ps(d, zero, _CMP_EQ_OQ));
  return _mm256_add_ps(_mm256_max_ps(x, zero), l);
}

/* sigmoid = 1 / d, d = 1 + exp(-x): the 12-bit reciprocal estimate and one Newton step
   (relative error below 1e-7) instead of a division, which would bound the throughput */
static inline __m256 mb_sigmoid8(__m256 x) {
  __m256 d = _mm256_add_ps(_mm256_set1_ps(1.0f), mb_exp8(_mm256_sub_ps(_mm256_setzero_ps(), x)));
  __m256 r = _mm256_rcp_ps(d);
  return _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2.0f)));
}

/* sin and cos of 2 pi t for t in [0, 1): t = j/4 + y with |y| <= 1/8 turn, polynomials on
   a = 2 pi y in [-pi/4, pi/4] (errors below 2e-7), then a rotation by j quarter turns */
static inline void mb_sincos2pi8(__m256 t, __m256 *sn, __m256 *cs) {
  __m256 j = _mm256_round_ps(_mm256_mul_ps(t, _mm256_set1_ps(4.0f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 a = _mm256_mul_ps(_mm256_fnmadd_ps(j, _mm256_set1_ps(0.25f), t),
                           _mm256_set1_ps(6.28318530717958648f));
  __m256 a2 = _mm256_mul_ps(a, a);
  __m256 s = _mm256_fmadd_ps(a2, _mm256_set1_ps(-1.9515295891e-4f),
                             _mm256_set1_ps(8.3321608736e-3f));
  s = _mm256_fmadd_ps(s, a2, _mm256_set1_ps(-1.6666654611e-1f));
  s = _mm256_fmadd_ps(_mm256_mul_ps(s, a2), a, a);
  __m256 c = _mm256_fmadd_ps(a2, _mm256_set1_ps(2.443315711809948e-5f),
                             _mm256_set1_ps(-1.388731625493765e-3f));
  c = _mm256_fmadd_ps(c, a2, _mm256_set1_ps(4.166664568298827e-2f));
  c = _mm256_fmadd_ps(_mm256_mul_ps(c, a2), a2,
                      _mm256_fnmadd_ps(_mm256_set1_ps(0.5f), a2, _mm256_set1_ps(1.0f)));
  /* quarter turns j mod 4: (s, c) -> (s, c), (c, -s), (-s, -c), (-c, s) */
  __m256i q = _mm256_and_si256(_mm256_cvtps_epi32(j), _mm256_set1_epi32(3));
  __m256 swap = _mm256_castsi256_ps(_mm256_slli_epi32(q, 31));              /* odd j */
  /* j = 2, 3 */
  __m256 sgn_s = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_srli_epi32(q, 1), 31));
  __m256 sgn_c = _mm256_castsi256_ps(_mm256_slli_epi32(
      _mm256_xor_si256(q, _mm256_srli_epi32(q, 1)), 31));                   /* j = 1, 2 */
  __m256 s2 = _mm256_blendv_ps(s, c, swap), c2 = _mm256_blendv_ps(c, s, swap);
  *sn = _mm256_xor_ps(s2, sgn_s);
  *cs = _mm256_xor_ps(c2, sgn_c);
}

/* lane mask for the first k (0..8) lanes, for masked loads and stores of row tails */
static inline __m256i mb_mask8(int k) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#ifdef MB_SIMD16
/* first k (0..16) lanes */
static inline __mmask16 mb_mask16(int k) {
  return k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (k < 0 ? 0 : k)) - 1u);
}

/* loads and stores of the first lanes of k: full vectors without a mask (masked stores are
   slow on some CPUs, Zen 4 among them), masked ones for row tails */
MB_T512 static inline __m512 mb_ld16(const float *p, __mmask16 k) {
  return k == (__mmask16)0xffff ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(k, p);
}
MB_T512 static inline void mb_st16(float *p, __mmask16 k, __m512 v) {
  if (k == (__mmask16)0xffff) _mm512_storeu_ps(p, v);
  else _mm512_mask_storeu_ps(p, k, v);
}

/* 16-lane exp: mb_exp8's steps */
MB_T512 static inline __m512 mb_exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(MB_EXP_LO)), _mm512_set1_ps(MB_EXP_HI));
  __m512 fn = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(MB_LOG2E)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(fn, _mm512_set1_ps(MB_LN2_HI), x);
  r = _mm512_fnmadd_ps(fn, _mm512_set1_ps(MB_LN2_LO), r);
  __m512 p = _mm512_set1_ps(MB_EXP_P0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(MB_EXP_P1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(MB_EXP_P2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(MB_EXP_P3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(MB_EXP_P4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(MB_EXP_P5));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  __m512i n = _mm512_add_epi32(_mm512_cvtps_epi32(fn), _mm512_set1_epi32(127));
  return _mm512_mul_ps(p, _mm512_castsi512_ps(_mm512_slli_epi32(n, 23)));
}

/* 16-lane log: mb_log8's steps, the masks as AVX-512 mask registers (e - 0 and m + 0 of the
   8-lane version are exact, so skipping them changes nothing) */
MB_T512 static inline __m512 mb_log16(__m512 x) {
  __m512i bits = _mm512_castps_si512(x);
  __m512 e = _mm512_cvtepi32_ps(_mm512_sub_epi32(
      _mm512_and_si512(_mm512_srli_epi32(bits, 23), _mm512_set1_epi32(0xff)),
      _mm512_set1_epi32(126)));
  bits = _mm512_or_si512(_mm512_and_si512(bits, _mm512_set1_epi32((int)0x807fffff)),
                         _mm512_set1_epi32(0x3f000000));
  __m512 m = _mm512_castsi512_ps(bits);
  __mmask16 small = _mm512_cmp_ps_mask(m, _mm512_set1_ps(MB_SQRTHF), _CMP_LT_OQ);
  e = _mm512_mask_sub_ps(e, small, e, _mm512_set1_ps(1.0f));
  m = _mm512_sub_ps(_mm512_mask_add_ps(m, small, m, m), _mm512_set1_ps(1.0f));
  __m512 z = _mm512_mul_ps(m, m);
  __m512 y = _mm512_set1_ps(MB_LOG_P0);
  y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(MB_LOG_P1));
  y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(MB_LOG_P2));
  y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(MB_LOG_P3));
  y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(MB_LOG_P4));
  y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(MB_LOG_P5));
  y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(MB_LOG_P6));
  y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(MB_LOG_P7));
  y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(MB_LOG_P8));
  y = _mm512_mul_ps(_mm512_mul_ps(y, m), z);
  y = _mm512_fmadd_ps(e, _mm512_set1_ps(MB_LN2_LO), y);
  y = _mm512_fnmadd_ps(_mm512_set1_ps(0.5f), z, y);
  return _mm512_fmadd_ps(e, _mm512_set1_ps(MB_LN2_HI), _mm512_add_ps(m, y));
}

/* 16-lane softplus as mb_softplus8 */
MB_T512 static inline __m512 mb_softplus16(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
  __m512 a = _mm512_andnot_ps(_mm512_set1_ps(-0.0f), x);
  __m512 u = mb_exp16(_mm512_sub_ps(zero, a));
  __m512 w = _mm512_add_ps(one, u), d = _mm512_sub_ps(w, one);
  __m512 l = _mm512_mul_ps(mb_log16(w), _mm512_div_ps(u, _mm512_max_ps(d, _mm512_set1_ps(1e-30f))));
  l = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(d, zero, _CMP_EQ_OQ), l, u);
  return _mm512_add_ps(_mm512_max_ps(x, zero), l);
}

/* the AVX reciprocal estimate of each 8-lane half (what mb_sigmoid8 sees) */
MB_T512 static inline __m512 mb_rcp16(__m512 d) {
  __m256 lo = _mm256_rcp_ps(_mm512_castps512_ps256(d));
  __m256 hi = _mm256_rcp_ps(_mm512_extractf32x8_ps(d, 1));
  return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
}

/* 16-lane sigmoid as mb_sigmoid8 */
MB_T512 static inline __m512 mb_sigmoid16(__m512 x) {
  __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), mb_exp16(_mm512_sub_ps(_mm512_setzero_ps(), x)));
  __m512 r = mb_rcp16(d);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}

/* 16-lane sin and cos of 2 pi t as mb_sincos2pi8 */
MB_T512 static inline void mb_sincos2pi16(__m512 t, __m512 *sn, __m512 *cs) {
  __m512 j = _mm512_roundscale_ps(_mm512_mul_ps(t, _mm512_set1_ps(4.0f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 a = _mm512_mul_ps(_mm512_fnmadd_ps(j, _mm512_set1_ps(0.25f), t),
                           _mm512_set1_ps(6.28318530717958648f));
  __m512 a2 = _mm512_mul_ps(a, a);
  __m512 s = _mm512_fmadd_ps(a2, _mm512_set1_ps(-1.9515295891e-4f),
                             _mm512_set1_ps(8.3321608736e-3f));
  s = _mm512_fmadd_ps(s, a2, _mm512_set1_ps(-1.6666654611e-1f));
  s = _mm512_fmadd_ps(_mm512_mul_ps(s, a2), a, a);
  __m512 c = _mm512_fmadd_ps(a2, _mm512_set1_ps(2.443315711809948e-5f),
                             _mm512_set1_ps(-1.388731625493765e-3f));
  c = _mm512_fmadd_ps(c, a2, _mm512_set1_ps(4.166664568298827e-2f));
  c = _mm512_fmadd_ps(_mm512_mul_ps(c, a2), a2,
                      _mm512_fnmadd_ps(_mm512_set1_ps(0.5f), a2, _mm512_set1_ps(1.0f)));
  __m512i q = _mm512_and_si512(_mm512_cvtps_epi32(j), _mm512_set1_epi32(3));
  __mmask16 swap = _mm512_test_epi32_mask(q, _mm512_set1_epi32(1));            /* odd j */
  __m512 sgn_s = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_srli_epi32(q, 1), 31));
  __m512 sgn_c = _mm512_castsi512_ps(_mm512_slli_epi32(
      _mm512_xor_si512(q, _mm512_srli_epi32(q, 1)), 31));
  __m512 s2 = _mm512_mask_blend_ps(swap, s, c), c2 = _mm512_mask_blend_ps(swap, c, s);
  *sn = _mm512_xor_ps(s2, sgn_s);
  *cs = _mm512_xor_ps(c2, sgn_c);
}

/* lanes 0..7 and 8..15 */
MB_T512 static inline __m256 mb_lo8(__m512 x) { return _mm512_castps512_ps256(x); }
MB_T512 static inline __m256 mb_hi8(__m512 x) { return _mm512_extractf32x8_ps(x, 1); }

/* the kernels take the AVX-512 path */
static inline int mb_use512(void) { return mbn_isa() == MB_ISA_AVX512; }

/* 16 floats rounded to bf16 as mb_bf16 (gemm.c's packing steps), stored to the first lanes
   of k at p */
MB_T512 static inline void mb_st16bf16(uint16_t *p, __mmask16 k, __m512 v) {
  const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7fff);
  const __m512i abs = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
  __m512i u = _mm512_castps_si512(v), hi = _mm512_srli_epi32(u, 16);
  __m512i rn = _mm512_srli_epi32(
    _mm512_add_epi32(_mm512_add_epi32(u, bias), _mm512_and_si512(hi, one)), 16);
  __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, abs), inf);
  __m256i h = _mm512_cvtepi32_epi16(
    _mm512_mask_mov_epi32(rn, nan, _mm512_or_si512(hi, _mm512_set1_epi32(0x40))));
  if (k == (__mmask16)0xffff) _mm256_storeu_si256((__m256i *)(void *)p, h);
  else _mm256_mask_storeu_epi16(p, k, h);
}
#endif
#endif

/* fp32 -> bf16, round to nearest even, a NaN stays a quiet NaN: the rounding of the bf16
   products' operands (src/nn/gemm.c), for kernels that write an operand's bf16 copy in the
   pass that computes it */
static inline uint16_t mb_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16, q = (u >> 16) | 0x40u;
  return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? q : r);
}

#ifdef MB_SIMD8
/* 8 floats rounded as mb_bf16, stored at p */
static inline void mb_st8bf16(uint16_t *p, __m256 v) {
  const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff);
  const __m256i abs = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
  __m256i u = _mm256_castps_si256(v), hi = _mm256_srli_epi32(u, 16);
  __m256i rn = _mm256_srli_epi32(
    _mm256_add_epi32(_mm256_add_epi32(u, bias), _mm256_and_si256(hi, one)), 16);
  __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs), inf);
  __m256i h = _mm256_blendv_epi8(rn, _mm256_or_si256(hi, _mm256_set1_epi32(0x40)), nan);
  /* 32 -> 16 bits (the values fit), in order */
  __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  _mm_storeu_si128((__m128i *)(void *)p, w);
}
#endif

#endif
