/* Tests of src/core/rng.c: reproducibility, streams, moments, bounds, permutations. */
#include <string.h>
#include <stdlib.h>

#include "mbpo/rng.h"
#include "test.h"

static void test_reproducible(void) {
  mbRng a, b;
  mbg_seed(&a, 42, 0);
  mbg_seed(&b, 42, 0);
  int same = 1;
  for (int i = 0; i < 1000; i++) same &= mbg_next(&a) == mbg_next(&b);
  CHECK(same, "same seed gives different sequences");
  /* state restore: copy mid-sequence, continue both */
  mbRng c = a;
  for (int i = 0; i < 100; i++) same &= mbg_next(&a) == mbg_next(&c);
  CHECK(same, "restored state diverges");
}

static void test_streams_differ(void) {
  mbRng a, b, c;
  mbg_seed(&a, 1, 0);
  mbg_seed(&b, 1, 1);
  mbg_seed(&c, 2, 0);
  int eqab = 0, eqac = 0;
  for (int i = 0; i < 1000; i++) {
    uint64_t x = mbg_next(&a), y = mbg_next(&b), z = mbg_next(&c);
    eqab += x == y;
    eqac += x == z;
  }
  CHECK(eqab == 0 && eqac == 0, "streams collide: %d %d", eqab, eqac);
  /* correlation between two streams' uniforms is near 0 */
  mbg_seed(&a, 7, 0);
  mbg_seed(&b, 7, 1);
  double sxy = 0, sx = 0, sy = 0, sxx = 0, syy = 0;
  int n = 100000;
  for (int i = 0; i < n; i++) {
    double x = mbg_uniform(&a), y = mbg_uniform(&b);
    sx += x; sy += y; sxy += x * y; sxx += x * x; syy += y * y;
  }
  double cov = sxy / n - sx / n * sy / n;
  double r = cov / sqrt((sxx / n - sx / n * sx / n) * (syy / n - sy / n * sy / n));
  CHECK(fabs(r) < 0.02, "stream correlation %g", r);
}

static void test_uniform_moments(void) {
  mbRng g;
  mbg_seed(&g, 3, 0);
  int n = 200000;
  double s = 0, s2 = 0, lo = 1, hi = 0;
  for (int i = 0; i < n; i++) {
    double u = mbg_uniform(&g);
    s += u; s2 += u * u;
    if (u < lo) lo = u;
    if (u > hi) hi = u;
  }
  CHECK(lo >= 0 && hi < 1, "uniform out of [0,1): %g %g", lo, hi);
  CHECK_NEAR(s / n, 0.5, 0.005);
  CHECK_NEAR(s2 / n - (s / n) * (s / n), 1.0 / 12, 0.003);
  float f = 0, fmax = 0;
  for (int i = 0; i < n; i++) { f = mbg_uniformf(&g); if (f > fmax) fmax = f; }
  CHECK(fmax < 1.0f, "uniformf reached 1");
}

static void test_normal_moments(void) {
  mbRng g;
  mbg_seed(&g, 4, 0);
  int n = 200001; /* odd: exercises the tail of mbg_normalFill */
  float *x = malloc(sizeof(float) * (size_t)n);
  mbg_normalFill(x, &g, (size_t)n);
  double s = 0, s2 = 0, s4 = 0;
  for (int i = 0; i < n; i++) { s += x[i]; s2 += (double)x[i] * x[i]; s4 += pow(x[i], 4); }
  double m = s / n, v = s2 / n - m * m;
  CHECK(fabs(m) < 0.01, "normal mean %g", m);
  CHECK(fabs(v - 1) < 0.015, "normal variance %g", v);
  CHECK(fabs(s4 / n - 3) < 0.1, "normal kurtosis %g", s4 / n);
  free(x);
}

static void test_below_uniform(void) {
  /* chi-square over 7 bins, 70000 draws: 6 dof, 99.9% quantile 22.46 */
  mbRng g;
  mbg_seed(&g, 5, 0);
  int counts[7] = {0};
  for (int i = 0; i < 70000; i++) {
    uint64_t k = mbg_below(&g, 7);
    CHECK(k < 7, "below out of range %llu", (unsigned long long)k);
    counts[k]++;
  }
  double chi = 0;
  for (int i = 0; i < 7; i++) chi += pow(counts[i] - 10000.0, 2) / 10000.0;
  CHECK(chi < 22.46, "chi-square %g", chi);
}

static void test_permutation(void) {
  mbRng g;
  mbg_seed(&g, 6, 0);
  int64_t p[1000];
  int seen[1000];
  mbg_permutation(p, &g, 1000);
  memset(seen, 0, sizeof seen);
  int ok = 1, fixed = 0;
  for (int i = 0; i < 1000; i++) {
    if (p[i] < 0 || p[i] >= 1000 || seen[p[i]]) ok = 0;
    else seen[p[i]] = 1;
    fixed += p[i] == i;
  }
  CHECK(ok, "not a permutation");
  CHECK(fixed < 10, "too many fixed points: %d", fixed);
}

/* mbg_skipNormals leaves the generator where mbg_normalFill of as many values does */
static void test_skip_normals(void) {
  float buf[9];
  for (size_t n = 0; n <= 9; n++) {
    mbRng a, b;
    mbg_seed(&a, 5, n);
    b = a;
    mbg_normalFill(buf, &a, n);
    mbg_skipNormals(&b, n);
    CHECK(memcmp(&a, &b, sizeof a) == 0, "n = %zu", n);
    CHECK(mbg_next(&a) == mbg_next(&b), "next draw after n = %zu", n);
  }
}

int main(void) {
  RUN(test_reproducible);
  RUN(test_streams_differ);
  RUN(test_uniform_moments);
  RUN(test_normal_moments);
  RUN(test_below_uniform);
  RUN(test_permutation);
  RUN(test_skip_normals);
  return TEST_REPORT();
}
