/* mbpo random numbers: xoshiro256++ generators seeded through splitmix64.
   Every random draw in the program comes from an mbRng; its whole state is four 64-bit
   words, so it can be saved and restored exactly. Streams: mbg_seed(g, seed, stream) gives
   statistically independent generators for different stream numbers of one seed. */
#ifndef MBPO_RNG_H
#define MBPO_RNG_H

#include <stdint.h>
#include <stddef.h>

typedef struct mbRng {
  uint64_t s[4];
} mbRng;

/* Seeds a generator from (seed, stream). */
void mbg_seed(mbRng *g, uint64_t seed, uint64_t stream);

/* Next raw 64-bit output. */
uint64_t mbg_next(mbRng *g);

/* Uniform double in [0, 1) with 53 random bits. */
double mbg_uniform(mbRng *g);

/* Uniform float in [0, 1) with 24 random bits. */
float mbg_uniformf(mbRng *g);

/* Uniform integer in [0, n) without modulo bias (Lemire); n > 0. */
uint64_t mbg_below(mbRng *g, uint64_t n);

/* Standard normal (Box-Muller; no cached spare, so the state is only s[4]). */
double mbg_normal(mbRng *g);

/* out[0..n) = independent standard normals, two per pair of uniforms. */
void mbg_normalFill(float *out, mbRng *g, size_t n);

/* advances g exactly as mbg_normalFill of n values does, without computing them (so that a
   copy of g can fill the values that follow them, on another thread) */
void mbg_skipNormals(mbRng *g, size_t n);

/* out[0..n) = uniform in [lo, hi). */
void mbg_uniformFill(float *out, mbRng *g, size_t n, float lo, float hi);

/* perm[0..n) = a uniformly random permutation of 0..n-1 (Fisher-Yates). */
void mbg_permutation(int64_t *perm, mbRng *g, size_t n);

/* Shuffles idx[0..n) in place. */
void mbg_shuffle(int64_t *idx, mbRng *g, size_t n);

#endif
