/* xoshiro256++ (Blackman and Vigna) seeded with splitmix64; derived draws. */
#include "mbpo/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void mbg_seed(mbRng *g, uint64_t seed, uint64_t stream) {
  /* mix the stream number into the splitmix state so that (seed, stream) pairs give
     unrelated starting points; splitmix never yields an all-zero xoshiro state in practice,
     but guard anyway */
  uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ULL + 0x8cb92ba72f3d8dd7ULL);
  splitmix64(&x);
  for (int i = 0; i < 4; i++) g->s[i] = splitmix64(&x);
  if (!(g->s[0] | g->s[1] | g->s[2] | g->s[3])) g->s[0] = 1;
}

uint64_t mbg_next(mbRng *g) {
  uint64_t *s = g->s;
  uint64_t result = rotl(s[0] + s[3], 23) + s[0];
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double mbg_uniform(mbRng *g) { return (double)(mbg_next(g) >> 11) * 0x1.0p-53; }

float mbg_uniformf(mbRng *g) { return (float)(mbg_next(g) >> 40) * 0x1.0p-24f; }

uint64_t mbg_below(mbRng *g, uint64_t n) {
  /* Lemire's multiply-and-reject: unbiased, one multiplication in the common case */
  unsigned __int128 m = (unsigned __int128)mbg_next(g) * n;
  uint64_t low = (uint64_t)m;
  if (low < n) {
    uint64_t threshold = (0 - n) % n;
    while (low < threshold) {
      m = (unsigned __int128)mbg_next(g) * n;
      low = (uint64_t)m;
    }
  }
  return (uint64_t)(m >> 64);
}

/* one Box-Muller pair from two uniforms; u1 in (0, 1] so log is finite */
static void boxmuller(mbRng *g, double *z0, double *z1) {
  double u1 = 1.0 - mbg_uniform(g);
  double u2 = mbg_uniform(g);
  double r = sqrt(-2.0 * log(u1));
  double t = 6.283185307179586 * u2;
  *z0 = r * cos(t);
  *z1 = r * sin(t);
}

double mbg_normal(mbRng *g) {
  double z0, z1;
  boxmuller(g, &z0, &z1);
  return z0;
}

void mbg_normalFill(float *out, mbRng *g, size_t n) {
  size_t i = 0;
  for (; i + 1 < n; i += 2) {
    double z0, z1;
    boxmuller(g, &z0, &z1);
    out[i] = (float)z0;
    out[i + 1] = (float)z1;
  }
  if (i < n) out[i] = (float)mbg_normal(g);
}

void mbg_skipNormals(mbRng *g, size_t n) {
  /* two uniforms per pair, and two for an odd last value (mbg_normal) */
  for (size_t i = 0; i < 2 * ((n + 1) / 2); i++) mbg_next(g);
}

void mbg_uniformFill(float *out, mbRng *g, size_t n, float lo, float hi) {
  float w = hi - lo;
  for (size_t i = 0; i < n; i++) out[i] = lo + w * mbg_uniformf(g);
}

void mbg_shuffle(int64_t *idx, mbRng *g, size_t n) {
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)mbg_below(g, i);
    int64_t t = idx[i - 1];
    idx[i - 1] = idx[j];
    idx[j] = t;
  }
}

void mbg_permutation(int64_t *perm, mbRng *g, size_t n) {
  for (size_t i = 0; i < n; i++) perm[i] = (int64_t)i;
  mbg_shuffle(perm, g, n);
}
