/* Tests of the state descriptors (include/mbpo/state.h, src/core/state.c and each object's
   own): a descriptor is complete when copying its blocks from one object into another of the
   same layout, built from another seed, makes the second continue bit for bit as the first;
   the identity blocks say the layout in words. The env's descriptor is tested the same way in
   test_env.c, the buffer's through a file in test_buffer.c. */
#include <stdlib.h>
#include <string.h>

#include "mbpo/core.h"
#include "mbpo/ensemble.h"
#include "mbpo/sac.h"
#include "mbpo/state.h"
#include "test.h"

/* copies every block that is not an identity check from src's blocks to dst's */
static void copyblocks(mbStateBlock *dst, const mbStateBlock *src, int n) {
  for (int i = 0; i < n; i++) {
    CHECK(!strcmp(dst[i].name, src[i].name) && dst[i].dtype == src[i].dtype, "block %d", i);
    if (src[i].flags & MB_ST_CHECK) continue;
    memcpy(dst[i].data, src[i].data,
           (size_t)(mbu_blockNumel(&src[i]) * mbu_dtypeSize(src[i].dtype)));
  }
}

/* names distinct; data present for every block but text */
static void wellformed(const mbStateBlock *b, int n, const char *what) {
  CHECK(n > 0 && n <= MB_STATE_MAXBLOCKS, "%s: %d blocks", what, n);
  for (int i = 0; i < n; i++) {
    CHECK(b[i].name && (b[i].dtype == MB_STR) == (b[i].data == NULL), "%s: block %d", what, i);
    CHECK(b[i].dtype != MB_STR || (b[i].flags & MB_ST_CHECK), "%s: text %s not a check", what,
          b[i].name);
    for (int j = 0; j < i; j++) CHECK(strcmp(b[i].name, b[j].name), "%s: two %s", what, b[i].name);
  }
}

static void agent(mbSac *s, uint64_t seed) {
  mbSacConfig c;
  mbr_sacDefaults(&c, 3, 2);
  c.nhidden = 2;
  c.hidden[0] = 8;
  c.hidden[1] = 6;
  c.batch = 5;
  c.seed = seed;
  CHECK(mbr_sacInit(s, &c) == MB_OK, "init: %s", mbu_lasterror());
}

static void updates(mbSac *s, mbRng *g, int n) {
  enum { B = 5 };
  float obs[B * 3], act[B * 2], rew[B], obs2[B * 3], done[B];
  for (int k = 0; k < n; k++) {
    mbg_uniformFill(obs, g, B * 3, -1, 1);
    mbg_uniformFill(act, g, B * 2, -1, 1);
    mbg_uniformFill(rew, g, B, -1, 1);
    mbg_uniformFill(obs2, g, B * 3, -1, 1);
    for (int i = 0; i < B; i++) done[i] = (float)(i == 2);
    CHECK(mbr_sacUpdate(s, NULL, obs, act, rew, obs2, done, B) == MB_OK, "update");
  }
}

static void test_sac_complete(void) {
  mbSac a, b;
  agent(&a, 1);
  agent(&b, 2);
  mbRng g, h;
  mbg_seed(&g, 7, 0);
  updates(&a, &g, 3);
  mbStateBlock ba[MB_STATE_MAXBLOCKS], bb[MB_STATE_MAXBLOCKS];
  int na = mbr_sacStateBlocks(ba, &a), nb = mbr_sacStateBlocks(bb, &b);
  wellformed(ba, na, "sac");
  CHECK(na == nb, "%d and %d blocks", na, nb);
  CHECK(!strcmp(ba[0].name, "layout") && !strcmp(ba[0].text, "obs 3, act 2, hidden {8,6}"),
        "layout '%s'", ba[0].text);
  copyblocks(bb, ba, na);
  h = g;
  updates(&a, &g, 4);
  updates(&b, &h, 4);
  CHECK(!memcmp(a.pi_p, b.pi_p, sizeof(float) * a.npi) &&
        !memcmp(a.q_p, b.q_p, sizeof(float) * 2 * a.nq) &&
        !memcmp(a.q_targ, b.q_targ, sizeof(float) * 2 * a.nq) && a.log_alpha == b.log_alpha &&
        !memcmp(&a.rng, &b.rng, sizeof a.rng) && a.updates == 7 && b.updates == 7,
        "the agent given a's blocks diverges from a");
  mbr_sacFree(&a);
  mbr_sacFree(&b);
}

static void test_ensemble_complete(void) {
  mbEnsembleConfig c;
  mbn_ensDefaults(&c, 5, 4);
  c.members = 3;
  c.elites = 2;
  c.nhidden = 2;
  c.hidden[0] = c.hidden[1] = 8;
  mbEnsemble *a = NULL, *b = NULL;
  c.seed = 1;
  CHECK(mbn_ensCreate(&a, &c) == MB_OK, "create: %s", mbu_lasterror());
  c.seed = 2;
  CHECK(mbn_ensCreate(&b, &c) == MB_OK, "create: %s", mbu_lasterror());
  if (!a || !b) return;
  enum { N = 60 };
  float x[N * 5], y[N * 4];
  mbRng g;
  mbg_seed(&g, 3, 0);
  mbg_uniformFill(x, &g, N * 5, -1, 1);
  for (int i = 0; i < N; i++)
    for (int j = 0; j < 4; j++) y[i * 4 + j] = x[i * 5 + j] * x[i * 5 + 4] + 0.1f * (float)j;
  mbFitOptions o;
  mbn_fitDefaults(&o, a);
  o.max_epochs = 2;
  mbFitResult r;
  CHECK(mbn_ensFit(&r, a, x, y, N, &o) == MB_OK, "fit: %s", mbu_lasterror());
  mbStateBlock ba[MB_STATE_MAXBLOCKS], bb[MB_STATE_MAXBLOCKS];
  int na = mbn_ensStateBlocks(ba, a), nb = mbn_ensStateBlocks(bb, b);
  wellformed(ba, na, "ensemble");
  CHECK(na == nb, "%d and %d blocks", na, nb);
  CHECK(!strcmp(ba[1].text, "inputs=5 outputs=4 members=3 elites=2 hidden=8,8 activation=swish"),
        "layout '%s'", ba[1].text);
  copyblocks(bb, ba, na);
  /* a model step reads the elites and the standardiser, which the next fit recomputes */
  float na_[N * 3], ra[N], nb_[N * 3], rb[N];
  mbRng s1, s2;
  mbg_seed(&s1, 9, 0);
  s2 = s1;
  CHECK(mbn_ensStep(na_, ra, NULL, a, x, x + 3 * N, N, &s1, MB_PRED_SAMPLE) == MB_OK &&
        mbn_ensStep(nb_, rb, NULL, b, x, x + 3 * N, N, &s2, MB_PRED_SAMPLE) == MB_OK, "step");
  CHECK(!memcmp(na_, nb_, sizeof na_) && !memcmp(ra, rb, sizeof ra),
        "a model step of the ensemble given a's blocks differs from a's");
  CHECK(mbn_ensFit(&r, a, x, y, N, &o) == MB_OK && mbn_ensFit(&r, b, x, y, N, &o) == MB_OK,
        "fit: %s", mbu_lasterror());
  CHECK(!memcmp(a->params, b->params, sizeof(float) * a->ntotal) &&
        !memcmp(a->adam_v, b->adam_v, sizeof(float) * a->ntotal) &&
        !memcmp(a->elite, b->elite, sizeof(int) * (size_t)c.elites) &&
        !memcmp(&a->rng, &b->rng, sizeof a->rng) && a->fits == 2 && b->fits == 2,
        "the ensemble given a's blocks diverges from a");
  mbn_ensFree(a);
  mbn_ensFree(b);
}

static void test_helpers(void) {
  mbStateBlock b[2];
  int64_t w[6] = {0};
  mbu_block(b, "q", MB_F64, 0, w, 2, 2, 3);
  char s[32];
  CHECK(mbu_blockNumel(b) == 6 && !strcmp(mbu_blockShape(s, sizeof s, b), "[2 x 3]"), "%s", s);
  mbRng g;
  CHECK(mbg_stateBlocks(b + 1, &g) == b + 2 && b[1].dtype == MB_U64 && b[1].shape[0] == 4 &&
        b[1].data == g.s && (b[1].flags & MB_ST_NONZERO), "rng block");
  CHECK(!strcmp(mbu_dtypeName(MB_U64), "U64") && !strcmp(mbu_dtypeName(MB_I32), "I64") &&
        mbu_dtypeSize(MB_I32) == 4 && mbu_dtypeSize(MB_F64) == 8, "dtypes");
}

/* the message texts of blocks: shapes, what a block takes, and each value rule failing */
static void test_messages(void) {
  char s[160];
  int64_t shape[2] = {-1, 29}, one = 7;
  CHECK(!strcmp(mbu_shapeText(s, sizeof s, MB_F64, 2, shape), "F64 [N x 29]"), "%s", s);
  CHECK(!strcmp(mbu_shapeText(s, sizeof s, 0, 1, &one), "[7]"), "%s", s);
  CHECK(!strcmp(mbu_shapeText(s, sizeof s, MB_U64, 0, NULL), "U64 []"), "%s", s);
  CHECK(!strcmp(mbu_shapeText(s, 6, MB_F32, 2, shape), "F32 ["), "truncated: %s", s);
  mbStateBlock b;
  float f[3] = {1, 2, 0};
  mbu_block(&b, "w", MB_F32, MB_ST_ROWS | MB_ST_FINITE, f, 2, 1, 3);
  CHECK(!strcmp(mbu_blockWant(s, sizeof s, &b), "F32 [N x 3]"), "%s", s);
  CHECK(mbu_blockCheck(s, sizeof s, &b) == NULL, "finite values pass");
  b.flags = MB_ST_POSITIVE;
  CHECK(!strcmp(mbu_blockWant(s, sizeof s, &b), "F32 [1 x 3]"), "%s", s);
  const char *bad = mbu_blockCheck(s, sizeof s, &b);
  CHECK(bad && !strcmp(bad, "[3] = 0 is not a positive number"), "%s", bad ? bad : "NULL");
  f[2] = NAN;
  b.flags = MB_ST_FINITE;
  bad = mbu_blockCheck(s, sizeof s, &b);
  CHECK(bad && strstr(bad, "[3] = ") && strstr(bad, "nan is not a finite number"), "%s",
        bad ? bad : "NULL");
  uint64_t w[4] = {0};
  mbu_block(&b, "rng", MB_U64, MB_ST_NONZERO, w, 1, 4, 0);
  bad = mbu_blockCheck(s, sizeof s, &b);
  CHECK(bad && !strcmp(bad, "is all zero"), "%s", bad ? bad : "NULL");
  w[3] = 1;
  CHECK(mbu_blockCheck(s, sizeof s, &b) == NULL, "one word set");
  int64_t count = -2, obs = 11;
  mbu_block(&b, "size", MB_I64, 0, &count, 0, 0, 0);
  bad = mbu_blockCheck(s, sizeof s, &b);
  CHECK(bad && !strcmp(bad, "is -2: a count must be >= 0"), "%s", bad ? bad : "NULL");
  CHECK(!strcmp(mbu_blockWant(s, sizeof s, &b), "an integer"), "%s", s);
  mbu_block(&b, "obs", MB_I64, MB_ST_CHECK, &obs, 0, 0, 0);
  CHECK(!strcmp(mbu_blockWant(s, sizeof s, &b), "11") && !mbu_blockCheck(s, sizeof s, &b),
        "a check: %s", s);
  int idx[3] = {0, 6, 7};
  mbu_block(&b, "elites", MB_I32, MB_ST_INDEX, idx, 1, 3, 0);
  b.bound = 7;
  CHECK(!strcmp(mbu_blockWant(s, sizeof s, &b), "I64 [3]"), "%s", s);
  bad = mbu_blockCheck(s, sizeof s, &b);
  CHECK(bad && !strcmp(bad, "[3] = 8 is not in 1..7"), "%s", bad ? bad : "NULL");
  idx[2] = 3;
  CHECK(mbu_blockCheck(s, sizeof s, &b) == NULL, "indices in range");
  mbu_block(&b, "task", MB_STR, MB_ST_CHECK, NULL, 0, 0, 0);
  snprintf(b.text, sizeof b.text, "hopper");
  CHECK(!strcmp(mbu_blockWant(s, sizeof s, &b), "'hopper'"), "%s", s);
  mbu_block(&b, "on", MB_BOOL, 0, idx, 0, 0, 0);
  CHECK(!strcmp(mbu_blockWant(s, sizeof s, &b), "a boolean"), "%s", s);
  mbu_block(&b, "lr", MB_F64, 0, f, 0, 0, 0);
  CHECK(!strcmp(mbu_blockWant(s, sizeof s, &b), "a number"), "%s", s);
}

/* values taken into blocks: conversions, shapes, the scratch used */
static void test_take(void) {
  unsigned char scratch[256], *sp = scratch;
  mbStateBlock b[4], s;
  float x = 0, w[6];
  int64_t cnt = 0, i64 = 5, shape2[2] = {3, 2};
  double f64 = 0.25;
  int on = 1, elite[3];
  mbu_block(&b[0], "x", MB_F32, 0, &x, 0, 0, 0);
  mbu_block(&b[1], "n", MB_I64, 0, &cnt, 0, 0, 0);
  mbu_block(&b[2], "w", MB_F32, MB_ST_ROWS, w, 2, 1, 2);
  mbu_block(&b[3], "e", MB_I32, MB_ST_INDEX, elite, 1, 3, 0);
  CHECK(mbu_blockScratch(b, 4) == 8 + 8 + 8 + 16, "scratch: %zu", mbu_blockScratch(b, 4));
  mbStateBlock vi = {.dtype = MB_I64, .data = &i64}, vf = {.dtype = MB_F64, .data = &f64};
  char hopper[] = "hopper", ant[] = "ant";
  mbStateBlock vb = {.dtype = MB_BOOL, .data = &on}, vs = {.dtype = MB_STR, .data = hopper};
  s = b[0];
  CHECK(mbu_blockTake(&s, &vf, &sp) && *(float *)s.data == 0.25f && sp == scratch + 8, "F64");
  s = b[0];
  CHECK(mbu_blockTake(&s, &vi, &sp) && *(float *)s.data == 5.0f, "an integer for a float");
  s = b[1];
  CHECK(mbu_blockTake(&s, &vi, &sp) && *(int64_t *)s.data == 5, "I64");
  s = b[1];
  CHECK(!mbu_blockTake(&s, &vf, &sp) && !mbu_blockTake(&s, &vb, &sp), "a float is no count");
  mbStateBlock task;
  mbu_block(&task, "task", MB_STR, MB_ST_CHECK, NULL, 0, 0, 0);
  snprintf(task.text, sizeof task.text, "hopper");
  s = task;
  CHECK(mbu_blockTake(&s, &vs, &sp), "same text");
  vs.data = ant;
  s = task;
  CHECK(!mbu_blockTake(&s, &vs, &sp), "other text");
  float data[6] = {1, 2, 3, 4, 5, 6};
  mbStateBlock va = {.dtype = MB_F32, .ndim = 2, .shape = {3, 2}, .data = data};
  s = b[2];
  CHECK(mbu_blockTake(&s, &va, &sp) && s.data == data && s.shape[0] == 3, "rows are free");
  va.shape[1] = 3;
  s = b[2];
  CHECK(!mbu_blockTake(&s, &va, &sp), "columns are not");
  va = (mbStateBlock){.dtype = MB_F64, .ndim = 2, .shape = {shape2[0], shape2[1]}, .data = data};
  s = b[2];
  CHECK(!mbu_blockTake(&s, &va, &sp), "an F64 array for an F32 block");
  int64_t idx[3] = {1, 7, 3};
  mbStateBlock ve = {.dtype = MB_I64, .ndim = 1, .shape = {3}, .data = idx};
  unsigned char *before = sp;
  s = b[3];
  CHECK(mbu_blockTake(&s, &ve, &sp) && ((int *)s.data)[0] == 0 && ((int *)s.data)[1] == 6 &&
        ((int *)s.data)[2] == 2 && sp == before + 16, "1-based indices to 0-based ints");
  uint64_t words[3];  /* and back: the inverse */
  mbu_blockWords(words, &s);
  CHECK(words[0] == 1 && words[1] == 7 && words[2] == 3, "ints to 1-based words");
  mbu_blockWords(words, &b[1]);
  CHECK(words[0] == (uint64_t)cnt, "an 8-byte block as it is");
  idx[1] = (int64_t)1 << 40;
  s = b[3];
  CHECK(!mbu_blockTake(&s, &ve, &sp), "an index past int range");
  s = b[2];
  CHECK(!mbu_blockTake(&s, &ve, &sp), "a 1-d value for a 2-d block");
  s = b[3];
  CHECK(!mbu_blockTake(&s, &vi, &sp), "a scalar for an array");
  /* an identity takes only its own value; a copy writes all but identities */
  int64_t obs = 11, given = 11;
  mbStateBlock id, vid = {.dtype = MB_I64, .data = &given};
  mbu_block(&id, "obs", MB_I64, MB_ST_CHECK, &obs, 0, 0, 0);
  s = id;
  CHECK(mbu_blockTake(&s, &vid, &sp), "the same identity");
  given = 12;
  s = id;
  CHECK(!mbu_blockTake(&s, &vid, &sp), "another identity");
  mbStateBlock own[2], taken[2];
  int64_t cnt2 = 1, newcnt = 9;
  mbu_block(&own[0], "obs", MB_I64, MB_ST_CHECK, &obs, 0, 0, 0);
  mbu_block(&own[1], "n", MB_I64, 0, &cnt2, 0, 0, 0);
  memcpy(taken, own, sizeof own);
  taken[0].data = &given;
  taken[1].data = &newcnt;
  mbu_blockCopy(own, taken, 2);
  CHECK(obs == 11 && cnt2 == 9, "copied: obs %lld n %lld", (long long)obs, (long long)cnt2);
}

int main(void) {
  RUN(test_helpers);
  RUN(test_take);
  RUN(test_messages);
  RUN(test_sac_complete);
  RUN(test_ensemble_complete);
  return TEST_REPORT();
}
