/* Fused network kernels used by the dynamics ensemble: swish keeping its sigmoid, column
   blocks of the linear weight gradient, and the Gaussian head
   with soft log-variance bounds (loss, gradient, bounded log-variance, sampling).
   Each kernel has an AVX2 path (8 lanes, masked tails) and a scalar path with the same
   polynomials (ens_simd.h); neither allocates. With AVX2 each also has an AVX-512 variant
   (the *16 functions, taken when mbn_isa() says so) giving the same bits: every element goes
   through the same operations as on the AVX2 path, including which elements an 8-lane step
   covers and which the scalar tail (the vector sigmoid and the FMAs differ from the scalar
   code in the last bit), and sums keep the AVX2 lane layout and order. */
#include "mbpo/nn.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include <cblas.h>

#include "nn/ens_simd.h"
#include "nn/matmul.h"

/* Swish ------------------------------------------------------------------------------
   The forward keeps s = sigmoid(z) so that the backward needs no exponential:
   d(z s)/dz = s + z s (1 - s) = s + h (1 - s) with h = z s. */

#ifdef MB_SIMD16
/* 16 lanes, then one 8-lane piece where the AVX2 path has one (a masked 16-lane step); the
   scalar tail is the same code */
MB_T512 static size_t swish_fwd16(float *h, float *s, const float *z, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 16) {
    __mmask16 k = i + 16 <= n ? (__mmask16)0xffff : (__mmask16)0xff;
    __m512 zi = mb_ld16(z + i, k), si = mb_sigmoid16(zi);
    if (s) mb_st16(s + i, k, si);
    mb_st16(h + i, k, _mm512_mul_ps(zi, si));
    if (k != 0xffff) { i += 8; break; }
  }
  return i;
}
#endif

void mbn_swishForwardSig(float *h, float *s, const float *z, size_t n) {
  /* 8 lanes at a time, then the scalar tail with the same polynomials */
  size_t i = 0;
#ifdef MB_SIMD16
  if (mb_use512()) i = swish_fwd16(h, s, z, n);
#endif
#ifdef MB_SIMD8
  for (; i + 8 <= n; i += 8) {
    __m256 zi = _mm256_loadu_ps(z + i), si = mb_sigmoid8(zi);
    if (s) _mm256_storeu_ps(s + i, si);
    _mm256_storeu_ps(h + i, _mm256_mul_ps(zi, si));
  }
#endif
  for (; i < n; i++) {
    float zi = z[i], si = mb_sigmoidf(zi);
    if (s) s[i] = si;
    h[i] = zi * si;
  }
}

/* dz = dh (s + h (1 - s)); every element read before its slot is written, so dz may alias */
#ifdef MB_SIMD16
MB_T512 static size_t swish_bwd16(float *dz, uint16_t *dz16, const float *dh, const float *h,
                                  const float *s, size_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  size_t i = 0;
  for (; i + 8 <= n; i += 16) {
    __mmask16 k = i + 16 <= n ? (__mmask16)0xffff : (__mmask16)0xff;
    __m512 si = mb_ld16(s + i, k), hi = mb_ld16(h + i, k);
    __m512 d = _mm512_fmadd_ps(hi, _mm512_sub_ps(one, si), si);
    __m512 v = _mm512_mul_ps(mb_ld16(dh + i, k), d);
    mb_st16(dz + i, k, v);
    if (dz16) mb_st16bf16(dz16 + i, k, v);
    if (k != 0xffff) { i += 8; break; }
  }
  return i;
}
#endif

void mbn_swishBackwardSig(float *dz, const float *dh, const float *h, const float *s, size_t n) {
  mbn_swishBackwardSig16(dz, NULL, dh, h, s, n);
}

void mbn_swishBackwardSig16(float *dz, uint16_t *dz16, const float *dh, const float *h,
                            const float *s, size_t n) {
  /* d(z s)/dz = s + z s (1 - s) = s + h (1 - s) */
  size_t i = 0;
#ifdef MB_SIMD16
  if (mb_use512()) i = swish_bwd16(dz, dz16, dh, h, s, n);
#endif
#ifdef MB_SIMD8
  const __m256 one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= n; i += 8) {
    __m256 si = _mm256_loadu_ps(s + i), hi = _mm256_loadu_ps(h + i);
    __m256 d = _mm256_fmadd_ps(hi, _mm256_sub_ps(one, si), si);
    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(dh + i), d);
    _mm256_storeu_ps(dz + i, v);
    if (dz16) mb_st8bf16(dz16 + i, v);
  }
#endif
  for (; i < n; i++) {
    dz[i] = dh[i] * (s[i] + h[i] * (1.0f - s[i]));
    if (dz16) dz16[i] = mb_bf16(dz[i]);
  }
}

/* Bias fused with the activation --------------------------------------------------------------
   A linear layer computed as y = x @ W (sgemm with beta = 0) and then this pass costs one sweep
   over y; broadcasting the bias into y first and running sgemm with beta = 1 costs two. */

#ifdef MB_SIMD16
/* one row of mbn_biasSwishSig: 16 lanes, the AVX2 path's last 8-lane piece masked; returns
   where the scalar tail starts */
MB_T512 static int bias_swish16(float *hr, float *sr, uint16_t *h16, const float *b, int n) {
  int j = 0;
  for (; j + 8 <= n; j += 16) {
    __mmask16 k = j + 16 <= n ? (__mmask16)0xffff : (__mmask16)0xff;
    __m512 z = _mm512_add_ps(mb_ld16(hr + j, k), mb_ld16(b + j, k));
    __m512 sg = mb_sigmoid16(z), v = _mm512_mul_ps(z, sg);
    if (sr) mb_st16(sr + j, k, sg);
    mb_st16(hr + j, k, v);
    if (h16) mb_st16bf16(h16 + j, k, v);
    if (k != 0xffff) { j += 8; break; }
  }
  return j;
}

/* rows of mbn_biasRelu (op 0) or mbn_addBias (op 1), masked tails */
MB_T512 static void bias_rows16(float *h, const float *b, int B, int n, int op) {
  const __m512 zero = _mm512_setzero_ps();
  for (int r = 0; r < B; r++) {
    float *hr = h + (size_t)r * n;
    for (int j = 0; j < n; j += 16) {
      __mmask16 k = mb_mask16(n - j);
      __m512 z = _mm512_add_ps(mb_ld16(hr + j, k), mb_ld16(b + j, k));
      /* z > 0 ? z : 0, as the scalar code (max would keep a NaN differently) */
      if (op == 0) z = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(z, zero, _CMP_GT_OQ), z);
      mb_st16(hr + j, k, z);
    }
  }
}
#endif

/* per row: z = h + b, s = sigmoid(z), h = z s */
void mbn_biasSwishSig(float *h, float *s, const float *b, int B, int n) {
  mbn_biasSwishSig16(h, s, NULL, b, B, n);
}

void mbn_biasSwishSig16(float *h, float *s, uint16_t *h16, const float *b, int B, int n) {
#ifdef MB_SIMD16
  const int wide = mb_use512();
#endif
  for (int r = 0; r < B; r++) {
    float *hr = h + (size_t)r * n, *sr = s ? s + (size_t)r * n : NULL;
    uint16_t *hr16 = h16 ? h16 + (size_t)r * n : NULL;
    int j = 0;
#ifdef MB_SIMD16
    if (wide) j = bias_swish16(hr, sr, hr16, b, n);
#endif
#ifdef MB_SIMD8
    for (; j + 8 <= n; j += 8) {
      __m256 z = _mm256_add_ps(_mm256_loadu_ps(hr + j), _mm256_loadu_ps(b + j));
      __m256 sg = mb_sigmoid8(z), v = _mm256_mul_ps(z, sg);
      if (sr) _mm256_storeu_ps(sr + j, sg);
      _mm256_storeu_ps(hr + j, v);
      if (hr16) mb_st8bf16(hr16 + j, v);
    }
#endif
    for (; j < n; j++) {
      float z = hr[j] + b[j], sg = mb_sigmoidf(z);
      if (sr) sr[j] = sg;
      hr[j] = z * sg;
      if (hr16) hr16[j] = mb_bf16(hr[j]);
    }
  }
}

/* per row: h = max(h + b, 0) (plain loops: the compiler vectorises them) */
void mbn_biasRelu(float *h, const float *b, int B, int n) {
#ifdef MB_SIMD16
  if (mb_use512()) { bias_rows16(h, b, B, n, 0); return; }
#endif
  for (int r = 0; r < B; r++) {
    float *hr = h + (size_t)r * n;
    for (int j = 0; j < n; j++) {
      float z = hr[j] + b[j];
      hr[j] = z > 0.0f ? z : 0.0f;
    }
  }
}

/* per row: y += b */
void mbn_addBias(float *y, const float *b, int B, int n) {
#ifdef MB_SIMD16
  if (mb_use512()) { bias_rows16(y, b, B, n, 1); return; }
#endif
  for (int r = 0; r < B; r++) {
    float *yr = y + (size_t)r * n;
    for (int j = 0; j < n; j++) yr[j] += b[j];
  }
}

/* Standardisation --------------------------------------------------------------------------- */

#ifdef MB_SIMD16
MB_T512 static void standardize16(float *x, const float *src, const float *mean,
                                  const float *inv_std, int n) {
  for (int j = 0; j < n; j += 16) {
    __mmask16 k = mb_mask16(n - j);
    __m512 d = _mm512_sub_ps(mb_ld16(src + j, k), mb_ld16(mean + j, k));
    mb_st16(x + j, k, _mm512_mul_ps(d, mb_ld16(inv_std + j, k)));
  }
}
#endif

void mbn_standardize(float *x, const float *src, const float *mean, const float *inv_std, int n) {
#ifdef MB_SIMD16
  if (mb_use512()) { standardize16(x, src, mean, inv_std, n); return; }
#endif
  for (int k = 0; k < n; k++) x[k] = (src[k] - mean[k]) * inv_std[k];
}

/* Linear, a block of weight rows ----------------------------------------------------------
   Splitting a weight gradient by rows gives each task a contiguous block of the parameter
   slab, so decay and Adam run on it in one call while it is in cache. */

#ifdef MB_SIMD16
/* The fp32 weight gradient without packing: dW [nk x N] = x[:, 0:nk]^T dy over B rows, x
   with leading dimension ldx, dy and dW dense with N columns. Each element is one chain of
   FMAs over the rows in order starting from 0, acc = fma(x[r][k], dy[r][j], acc), the sum
   OpenBLAS's sgemm computes for these shapes (the same bits on Zen 4 for every ensemble
   shape; tests/c/test_nn_wgrad.c checks the chain). A tile of RK (<= 8) rows of dW by NC
   (<= 3) vectors of 16 columns stays in 24 registers for the whole sweep over the rows;
   the last vector of a tile takes the mask km. */
#define WG_PREFETCH 16   /* rows ahead to prefetch */
MB_T512 static inline __attribute__((always_inline)) void wgrad_tile(
    float *restrict dW, const float *restrict x, int ldx, const float *restrict dy, int N, int B,
    const int RK, const int NC, __mmask16 km) {
  __m512 acc[8][3];
  _Pragma("GCC unroll 8")
  for (int i = 0; i < RK; i++)
    _Pragma("GCC unroll 3")
    for (int c = 0; c < NC; c++) acc[i][c] = _mm512_setzero_ps();
  for (int r = 0; r < B; r++) {
    const float *yr = dy + (size_t)r * N, *xr = x + (size_t)r * ldx;
    _mm_prefetch((const char *)(xr + (size_t)WG_PREFETCH * ldx), _MM_HINT_T0);
    __m512 v[3];
    _Pragma("GCC unroll 3")
    for (int c = 0; c < NC; c++)
      _mm_prefetch((const char *)(yr + (size_t)WG_PREFETCH * N + 16 * c), _MM_HINT_T0);
    _Pragma("GCC unroll 3")
    for (int c = 0; c < NC; c++)
      v[c] = c == NC - 1 ? _mm512_maskz_loadu_ps(km, yr + 16 * c) : _mm512_loadu_ps(yr + 16 * c);
    _Pragma("GCC unroll 8")
    for (int i = 0; i < RK; i++) {
      __m512 a = _mm512_set1_ps(xr[i]);
      _Pragma("GCC unroll 3")
      for (int c = 0; c < NC; c++)
        acc[i][c] = _mm512_fmadd_ps(a, v[c], acc[i][c]);
    }
  }
  _Pragma("GCC unroll 8")
  for (int i = 0; i < RK; i++)
    _Pragma("GCC unroll 3")
    for (int c = 0; c < NC; c++) {
      float *d = dW + (size_t)i * N + 16 * c;
      if (c == NC - 1) _mm512_mask_storeu_ps(d, km, acc[i][c]);
      else _mm512_storeu_ps(d, acc[i][c]);
    }
}

#define WG_CASE(rk, nc) \
  case (rk) * 4 + (nc): wgrad_tile(d, xs, ldx, ys, N, B, rk, nc, km); break;
#define WG_ROW(rk) WG_CASE(rk, 1) WG_CASE(rk, 2) WG_CASE(rk, 3)

MB_T512 static void wgrad16(float *dW, const float *x, int ldx, const float *dy, int nk, int N,
                            int B) {
  for (int k = 0; k < nk; k += 8) {
    int rk = nk - k < 8 ? nk - k : 8;
    for (int j = 0; j < N; j += 48) {
      int rc = N - j < 48 ? N - j : 48, nc = (rc + 15) / 16;
      __mmask16 km = mb_mask16(rc - 16 * (nc - 1));
      float *d = dW + (size_t)k * N + j;
      const float *xs = x + k, *ys = dy + j;
      switch (rk * 4 + nc) {
        WG_ROW(1) WG_ROW(2) WG_ROW(3) WG_ROW(4) WG_ROW(5) WG_ROW(6) WG_ROW(7) WG_ROW(8)
        default: break;
      }
    }
  }
}
#undef WG_ROW
#undef WG_CASE
#undef WG_PREFETCH

/* 1: fp32 weight gradients on wgrad16 (a CPU with the AVX-512 path, whatever mbn_isa()
   says, so that both ISA paths give the same bits; MBPO_GEMM_F32=blas keeps them on sgemm
   with every other fp32 product) */
static atomic_int wgrad16_off;   /* mbn_wgradDirectUse(0): A/B measurements */

static int wgrad16_on(void) {
  return mbn_isaSupported(MB_ISA_AVX512) && mbn_gemmF32InUse() &&
         !atomic_load_explicit(&wgrad16_off, memory_order_relaxed);
}
#endif

void mbn_wgradDirectUse(int on) {
#ifdef MB_SIMD16
  atomic_store(&wgrad16_off, !on);
#else
  (void)on;
#endif
}

int mbn_wgradDirectInUse(void) {
#ifdef MB_SIMD16
  return wgrad16_on();
#else
  return 0;
#endif
}

/* dW rows [k0, k1) = x[:, k0:k1]^T dy; an empty batch gives zeros */
void mbn_linearBackwardRowsP(mbPrecision prec, float *dW, const float *dy, const float *x, int B,
                             int in, int out, int k0, int k1) {
  mbn_linearBackwardRows16(prec, dW, dy, NULL, x, NULL, B, in, out, k0, k1);
}

void mbn_linearBackwardRows16(mbPrecision prec, float *dW, const float *dy, const uint16_t *dy16,
                              const float *x, const uint16_t *x16, int B, int in, int out,
                              int k0, int k1) {
  int nk = k1 - k0;
  if (nk <= 0) return;
  if (B <= 0) {
    memset(dW + (size_t)k0 * out, 0, sizeof(float) * (size_t)nk * out);
    return;
  }
#ifdef MB_SIMD16
  /* fp32, and in bf16 the products mbn_gemm leaves to fp32 sgemm (a dimension under
     MB_BF16_MIN_DIM: the first layer's rows, the output layer's columns) */
  int fp32 = prec == MB_FP32 || nk < MB_BF16_MIN_DIM || out < MB_BF16_MIN_DIM ||
             B < MB_BF16_MIN_DIM;
  if (fp32 && wgrad16_on()) {
    wgrad16(dW + (size_t)k0 * out, x + k0, in, dy, nk, out, B);
    return;
  }
#endif
  /* dW[k0:k1, :] = x[:, k0:k1]^T @ dy: a column block of x (leading dimension in); beta = 0
     overwrites, so the gradient slab needs no zeroing */
  mbn_gemm16(prec, 1, 0, nk, out, B, 1.0f, x + k0, in, x16 ? x16 + k0 : NULL, dy, out, dy16,
             0.0f, dW + (size_t)k0 * out, out);
}

void mbn_linearBackwardRows(float *dW, const float *dy, const float *x, int B, int in, int out,
                            int k0, int k1) {
  mbn_linearBackwardRowsP(MB_FP32, dW, dy, x, B, in, out, k0, k1);
}

#ifdef MB_SIMD16
/* the column sums of mbn_biasGrad: blocks of 64 columns summed over the rows in registers
   (then 16 at a time), each column 0 + row 0 + row 1 + ... as on the AVX2 path */
MB_T512 static void bias_grad16(float *restrict d, const float *restrict dy, int B, int out,
                                int nc) {
  int j = 0;
  for (; j + 64 <= nc; j += 64) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int r = 0; r < B; r++) {
      const float *row = dy + (size_t)r * out + j;
      s0 = _mm512_add_ps(s0, _mm512_loadu_ps(row));
      s1 = _mm512_add_ps(s1, _mm512_loadu_ps(row + 16));
      s2 = _mm512_add_ps(s2, _mm512_loadu_ps(row + 32));
      s3 = _mm512_add_ps(s3, _mm512_loadu_ps(row + 48));
    }
    _mm512_storeu_ps(d + j, s0);
    _mm512_storeu_ps(d + j + 16, s1);
    _mm512_storeu_ps(d + j + 32, s2);
    _mm512_storeu_ps(d + j + 48, s3);
  }
  for (; j < nc; j += 16) {
    __mmask16 k = mb_mask16(nc - j);
    __m512 s0 = _mm512_setzero_ps();
    for (int r = 0; r < B; r++) s0 = _mm512_add_ps(s0, mb_ld16(dy + (size_t)r * out + j, k));
    mb_st16(d + j, k, s0);
  }
}
#endif

/* db[c0:c1] = column sums of dy, rows in order (restrict: the two never overlap) */
void mbn_biasGrad(float *db, const float *dy, int B, int out, int c0, int c1) {
  int nc = c1 - c0;
  if (nc <= 0) return;
  float *restrict d = db + c0;
  memset(d, 0, sizeof(float) * (size_t)nc);
#ifdef MB_SIMD16
  if (mb_use512()) { bias_grad16(d, dy + c0, B, out, nc); return; }
#endif
  for (int r = 0; r < B; r++) {
    const float *restrict row = dy + (size_t)r * out + c0;
    int j = 0;
#ifdef MB_SIMD8
    for (; j + 8 <= nc; j += 8)
      _mm256_storeu_ps(d + j, _mm256_add_ps(_mm256_loadu_ps(d + j), _mm256_loadu_ps(row + j)));
#endif
    for (; j < nc; j++) d[j] += row[j];
  }
}

/* Noise ----------------------------------------------------------------------------------------
   Box-Muller: z0 = r cos(2 pi t), z1 = r sin(2 pi t), r = sqrt(-2 log u), with u in (0, 1] and t
   in [0, 1) from one 64-bit draw. Vectorised over 8 pairs; the draws themselves are serial
   (the generator's state), about 1 ns each. */

/* one Box-Muller pair from one 64-bit draw: u in (0, 1] from the top 24 bits, t in [0, 1)
   from the next 24 */
static inline void draw_ut(mbRng *g, float *u, float *t) {
  uint64_t x = mbg_next(g);
  *u = (float)((x >> 40) + 1) * 0x1.0p-24f;
  *t = (float)((x >> 16) & 0xffffff) * 0x1.0p-24f;
}

#ifdef MB_SIMD16
/* 32 values (two rounds of the AVX2 path: 16 pairs, cosines then sines of each 8) per step;
   returns the values done */
MB_T512 static size_t gauss_noise16(float *out, mbRng *g, size_t n) {
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    float u[16], t[16];
    for (int k = 0; k < 16; k++) draw_ut(g, &u[k], &t[k]);
    __m512 r = _mm512_sqrt_ps(_mm512_mul_ps(_mm512_set1_ps(-2.0f), mb_log16(_mm512_loadu_ps(u))));
    __m512 sn, cs;
    mb_sincos2pi16(_mm512_loadu_ps(t), &sn, &cs);
    __m512 c = _mm512_mul_ps(r, cs), s = _mm512_mul_ps(r, sn);
    _mm256_storeu_ps(out + i, mb_lo8(c));
    _mm256_storeu_ps(out + i + 8, mb_lo8(s));
    _mm256_storeu_ps(out + i + 16, mb_hi8(c));
    _mm256_storeu_ps(out + i + 24, mb_hi8(s));
  }
  return i;
}
#endif

/* 16 values (8 pairs) per vector round; an odd tail uses half of a last pair */
void mbn_gaussNoise(float *out, mbRng *g, size_t n) {
  size_t i = 0;
#ifdef MB_SIMD16
  if (mb_use512()) i = gauss_noise16(out, g, n);
#endif
#ifdef MB_SIMD8
  for (; i + 16 <= n; i += 16) {
    float u[8], t[8];
    for (int k = 0; k < 8; k++) draw_ut(g, &u[k], &t[k]);
    __m256 r = _mm256_sqrt_ps(_mm256_mul_ps(_mm256_set1_ps(-2.0f), mb_log8(_mm256_loadu_ps(u))));
    __m256 sn, cs;
    mb_sincos2pi8(_mm256_loadu_ps(t), &sn, &cs);
    _mm256_storeu_ps(out + i, _mm256_mul_ps(r, cs));
    _mm256_storeu_ps(out + i + 8, _mm256_mul_ps(r, sn));
  }
#endif
  for (; i < n; i += 2) {
    float u, t, sn, cs;
    draw_ut(g, &u, &t);
    float r = sqrtf(-2.0f * mb_logf(u));
    mb_sincos2pif(t, &sn, &cs);
    out[i] = r * cs;
    if (i + 1 < n) out[i + 1] = r * sn;
  }
}

/* Gaussian head with soft log-variance bounds ---------------------------------------------
   out rows are [mean (D) | raw log-variance (D)];
   lv = min + softplus(max - softplus(max - raw) - min).
   D is small (12 for Hopper, 28 for Ant): rows are processed in 8-lane pieces with masked
   loads and stores for the last piece, so no lane reads or writes past the row. */

#ifdef MB_SIMD16
/* mbn_gaussLogvar (eps == NULL, sample 0) or mbn_gaussSample (sample 1) in 16-lane pieces */
MB_T512 static void gauss_rows16(float *y, const float *out, const float *eps,
                                 const float *maxlv, const float *minlv, int B, int D,
                                 int sample) {
  for (int r = 0; r < B; r++) {
    const float *mu = out + (size_t)r * 2 * D, *raw = mu + D;
    const float *e = eps ? eps + (size_t)r * D : NULL;
    float *dst = y + (size_t)r * D;
    if (sample && !e) { memcpy(dst, mu, sizeof(float) * (size_t)D); continue; }
    for (int j = 0; j < D; j += 16) {
      __mmask16 k = mb_mask16(D - j);
      __m512 mx = mb_ld16(maxlv + j, k), mn = mb_ld16(minlv + j, k);
      __m512 rw = mb_ld16(raw + j, k);
      __m512 l1 = _mm512_sub_ps(mx, mb_softplus16(_mm512_sub_ps(mx, rw)));
      __m512 lv = _mm512_add_ps(mn, mb_softplus16(_mm512_sub_ps(l1, mn)));
      if (sample) {
        __m512 sd = mb_exp16(_mm512_mul_ps(_mm512_set1_ps(0.5f), lv));
        lv = _mm512_fmadd_ps(sd, mb_ld16(e + j, k), mb_ld16(mu + j, k));
      }
      mb_st16(dst + j, k, lv);
    }
  }
}
#endif

/* the bounded log-variance of every row (predict's second output) */
void mbn_gaussLogvar(float *lv, const float *out, const float *maxlv, const float *minlv,
                     int B, int D) {
#ifdef MB_SIMD16
  if (mb_use512()) { gauss_rows16(lv, out, NULL, maxlv, minlv, B, D, 0); return; }
#endif
  for (int r = 0; r < B; r++) {
    const float *raw = out + (size_t)r * 2 * D + D;
    float *dst = lv + (size_t)r * D;
    int j = 0;
#ifdef MB_SIMD8
    for (; j < D; j += 8) {
      __m256i k = mb_mask8(D - j);
      __m256 mx = _mm256_maskload_ps(maxlv + j, k), mn = _mm256_maskload_ps(minlv + j, k);
      __m256 rw = _mm256_maskload_ps(raw + j, k);
      __m256 l1 = _mm256_sub_ps(mx, mb_softplus8(_mm256_sub_ps(mx, rw)));
      _mm256_maskstore_ps(dst + j, k, _mm256_add_ps(mn, mb_softplus8(_mm256_sub_ps(l1, mn))));
    }
#endif
    for (; j < D; j++) {
      float l1 = maxlv[j] - mb_softplusf(maxlv[j] - raw[j]);
      dst[j] = minlv[j] + mb_softplusf(l1 - minlv[j]);
    }
  }
}

/* mean + exp(lv / 2) eps per element; the mean alone without noise */
void mbn_gaussSample(float *y, const float *out, const float *eps, const float *maxlv,
                     const float *minlv, int B, int D) {
#ifdef MB_SIMD16
  if (mb_use512()) { gauss_rows16(y, out, eps, maxlv, minlv, B, D, 1); return; }
#endif
  for (int r = 0; r < B; r++) {
    const float *mu = out + (size_t)r * 2 * D, *raw = mu + D;
    const float *e = eps ? eps + (size_t)r * D : NULL;
    float *dst = y + (size_t)r * D;
    if (!e) { memcpy(dst, mu, sizeof(float) * (size_t)D); continue; }
    int j = 0;
#ifdef MB_SIMD8
    for (; j < D; j += 8) {
      __m256i k = mb_mask8(D - j);
      __m256 mx = _mm256_maskload_ps(maxlv + j, k), mn = _mm256_maskload_ps(minlv + j, k);
      __m256 rw = _mm256_maskload_ps(raw + j, k);
      __m256 l1 = _mm256_sub_ps(mx, mb_softplus8(_mm256_sub_ps(mx, rw)));
      __m256 lv = _mm256_add_ps(mn, mb_softplus8(_mm256_sub_ps(l1, mn)));
      __m256 sd = mb_exp8(_mm256_mul_ps(_mm256_set1_ps(0.5f), lv));
      __m256 s = _mm256_fmadd_ps(sd, _mm256_maskload_ps(e + j, k), _mm256_maskload_ps(mu + j, k));
      _mm256_maskstore_ps(dst + j, k, s);
    }
#endif
    for (; j < D; j++) {
      float l1 = maxlv[j] - mb_softplusf(maxlv[j] - raw[j]);
      float lv = minlv[j] + mb_softplusf(l1 - minlv[j]);
      dst[j] = mu[j] + mb_expf(0.5f * lv) * e[j];
    }
  }
}

#ifdef MB_SIMD16
/* mbn_gaussNll in 16-lane pieces; each row's loss terms summed in the AVX2 layout (8 lanes,
   pieces of 8 in order, lanes into double in order) */
MB_T512 static double gauss_nll16(float *dout, float *dmax, float *dmin, const float *out,
                                  const float *y, const float *maxlv, const float *minlv, int B,
                                  int D, float scale) {
  const __m512 one = _mm512_set1_ps(1.0f), vs = _mm512_set1_ps(scale);
  const __m512 zero = _mm512_setzero_ps();
  double total = 0.0;
  for (int r = 0; r < B; r++) {
    const float *mu = out + (size_t)r * 2 * D, *raw = mu + D, *yr = y + (size_t)r * D;
    float *dmu = dout ? dout + (size_t)r * 2 * D : NULL, *draw = dmu ? dmu + D : NULL;
    __m256 acc = _mm256_setzero_ps();
    for (int j = 0; j < D; j += 16) {
      __mmask16 k = mb_mask16(D - j);
      __m512 mx = mb_ld16(maxlv + j, k), mn = mb_ld16(minlv + j, k);
      __m512 a = _mm512_sub_ps(mx, mb_ld16(raw + j, k));
      __m512 l1 = _mm512_sub_ps(mx, mb_softplus16(a));
      __m512 b = _mm512_sub_ps(l1, mn);
      __m512 lv = _mm512_add_ps(mn, mb_softplus16(b));
      __m512 iv = mb_exp16(_mm512_sub_ps(zero, lv));
      __m512 d = _mm512_sub_ps(mb_ld16(mu + j, k), mb_ld16(yr + j, k));
      __m512 q = _mm512_mul_ps(_mm512_mul_ps(d, d), iv);
      __m512 term = _mm512_maskz_mov_ps(k, _mm512_add_ps(q, lv));   /* live lanes */
      acc = _mm256_add_ps(acc, mb_lo8(term));
      if (j + 8 < D) acc = _mm256_add_ps(acc, mb_hi8(term));
      if (!dout) continue;
      __m512 s1 = mb_sigmoid16(a), s2 = mb_sigmoid16(b);
      __m512 gmu = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(2.0f), vs), _mm512_mul_ps(d, iv));
      __m512 glv = _mm512_mul_ps(vs, _mm512_sub_ps(one, q));
      __m512 gl1 = _mm512_mul_ps(glv, s2);
      mb_st16(dmu + j, k, gmu);
      mb_st16(draw + j, k, _mm512_mul_ps(gl1, s1));
      __m512 gmx = _mm512_fmadd_ps(gl1, _mm512_sub_ps(one, s1), mb_ld16(dmax + j, k));
      __m512 gmn = _mm512_fmadd_ps(glv, _mm512_sub_ps(one, s2), mb_ld16(dmin + j, k));
      mb_st16(dmax + j, k, gmx);
      mb_st16(dmin + j, k, gmn);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, acc);
    for (int l = 0; l < 8; l++) total += lanes[l];
  }
  return total * (double)scale;
}
#endif

double mbn_gaussNll(float *dout, float *dmax, float *dmin, const float *out, const float *y,
                    const float *maxlv, const float *minlv, int B, int D, float scale) {
#ifdef MB_SIMD16
  if (mb_use512()) return gauss_nll16(dout, dmax, dmin, out, y, maxlv, minlv, B, D, scale);
#endif
  /* per element: loss = scale ((mu - y)^2 exp(-lv) + lv);
     d/dmu = 2 scale (mu - y) exp(-lv), d/dlv = scale (1 - (mu - y)^2 exp(-lv));
     lv1 = max - softplus(a), a = max - raw:  dlv1/draw = sigmoid(a), dlv1/dmax = 1 - sigmoid(a)
     lv = min + softplus(b), b = lv1 - min:   dlv/dlv1 = sigmoid(b), dlv/dmin = 1 - sigmoid(b) */
  double total = 0.0;  /* per row: 8 float lanes summed into double */
  for (int r = 0; r < B; r++) {
    const float *mu = out + (size_t)r * 2 * D, *raw = mu + D, *yr = y + (size_t)r * D;
    float *dmu = dout ? dout + (size_t)r * 2 * D : NULL, *draw = dmu ? dmu + D : NULL;
    int j = 0;
#ifdef MB_SIMD8
    const __m256 one = _mm256_set1_ps(1.0f), vs = _mm256_set1_ps(scale);
    __m256 acc = _mm256_setzero_ps();
    for (; j < D; j += 8) {
      __m256i k = mb_mask8(D - j);
      __m256 mx = _mm256_maskload_ps(maxlv + j, k), mn = _mm256_maskload_ps(minlv + j, k);
      __m256 a = _mm256_sub_ps(mx, _mm256_maskload_ps(raw + j, k));
      __m256 l1 = _mm256_sub_ps(mx, mb_softplus8(a));
      __m256 b = _mm256_sub_ps(l1, mn);
      __m256 lv = _mm256_add_ps(mn, mb_softplus8(b));
      __m256 iv = mb_exp8(_mm256_sub_ps(_mm256_setzero_ps(), lv));
      __m256 d = _mm256_sub_ps(_mm256_maskload_ps(mu + j, k), _mm256_maskload_ps(yr + j, k));
      __m256 q = _mm256_mul_ps(_mm256_mul_ps(d, d), iv);
      __m256 term = _mm256_add_ps(q, lv);
      acc = _mm256_add_ps(acc, _mm256_and_ps(term, _mm256_castsi256_ps(k)));  /* live lanes */
      if (!dout) continue;
      /* gradients: the loads of this piece happened above, so writing dout over out is safe */
      __m256 s1 = mb_sigmoid8(a), s2 = mb_sigmoid8(b);
      __m256 gmu = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(2.0f), vs), _mm256_mul_ps(d, iv));
      __m256 glv = _mm256_mul_ps(vs, _mm256_sub_ps(one, q));
      __m256 gl1 = _mm256_mul_ps(glv, s2);
      _mm256_maskstore_ps(dmu + j, k, gmu);
      _mm256_maskstore_ps(draw + j, k, _mm256_mul_ps(gl1, s1));
      __m256 gmx = _mm256_fmadd_ps(gl1, _mm256_sub_ps(one, s1), _mm256_maskload_ps(dmax + j, k));
      __m256 gmn = _mm256_fmadd_ps(glv, _mm256_sub_ps(one, s2), _mm256_maskload_ps(dmin + j, k));
      _mm256_maskstore_ps(dmax + j, k, gmx);
      _mm256_maskstore_ps(dmin + j, k, gmn);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, acc);
    for (int l = 0; l < 8; l++) total += lanes[l];
#endif
    for (; j < D; j++) {
      float a = maxlv[j] - raw[j];
      float l1 = maxlv[j] - mb_softplusf(a);
      float b = l1 - minlv[j];
      float lv = minlv[j] + mb_softplusf(b);
      float iv = mb_expf(-lv), d = mu[j] - yr[j], q = d * d * iv;
      total += (double)(q + lv);
      if (!dout) continue;
      float s1 = mb_sigmoidf(a), s2 = mb_sigmoidf(b);
      float glv = scale * (1.0f - q), gl1 = glv * s2;
      dmu[j] = 2.0f * scale * d * iv;
      draw[j] = gl1 * s1;
      dmax[j] += gl1 * (1.0f - s1);
      dmin[j] += glv * (1.0f - s2);
    }
  }
  return total * (double)scale;
}
