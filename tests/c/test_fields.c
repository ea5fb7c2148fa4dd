/* Tests of the field tables' helpers (include/mbpo/fields.h, src/core/fields.c): defaults
   written into a struct, values set, the range text and range check of each row type, and
   the nearest names offered for an unknown key. Uses a table of its own covering every
   row type. */
#include <stdint.h>
#include <string.h>

#include "mbpo/fields.h"
#include "test.h"

typedef struct Demo {
  int depth, on, act, nhidden, hidden[4];
  int64_t steps;
  uint64_t seed;
  float lr, scale[2], decay[5];
  double gamma;
} Demo;

static const mbField FIELDS[] = {
  MB_F_INT(Demo, depth, 3, 1, 64, "layers")
  MB_F_I64(Demo, steps, 1000, 0, 1e12, "steps (a bound past int range is not shown)")
  MB_F_U64(Demo, seed, 7, "seed")
  MB_F_FLOAT(Demo, lr, MB_F_OPEN_LO, 3e-4, 0, HUGE_VAL, "learning rate")
  MB_F_FLOATN(Demo, scales, scale, 2, 0.5, 0, 1, "both scales")
  MB_F_DOUBLE(Demo, gamma, MB_F_OPEN_HI, 0.99, 0, 1, "discount")
  MB_F_BOOL(Demo, on, 1, "switch")
  MB_F_ENUM(Demo, act, 1, "relu|swish|tanh", "activation")
  MB_F_INTS(Demo, hidden, nhidden, 4, 1, 65536, "widths", 200, 200)
  MB_F_FLOATS(Demo, decay, MB_F_LINKED, nhidden, 5, 0, 1, "decays", 1e-5, 2e-5, 3e-5)
  MB_F_END};

static const mbField *row(const char *name) { return mbu_fieldFind(FIELDS, name); }

static void test_defaults_and_set(void) {
  Demo d;
  memset(&d, 0xff, sizeof d);
  mbu_fieldDefaults(&d, FIELDS);
  CHECK(d.depth == 3 && d.steps == 1000 && d.seed == 7 && d.lr == 3e-4f && d.gamma == 0.99 &&
        d.on == 1 && d.act == 1, "scalars");
  CHECK(d.scale[0] == 0.5f && d.scale[1] == 0.5f, "a shorthand sets both floats");
  CHECK(d.nhidden == 2 && d.hidden[0] == 200 && d.hidden[1] == 200, "a list and its length");
  CHECK(d.decay[0] == 1e-5f && d.decay[2] == 3e-5f, "a linked list's default");
  mbu_fieldSet(&d, row("scales"), 0, 0.25);
  mbu_fieldSet(&d, row("hidden"), 1, 64);
  mbu_fieldSet(&d, row("seed"), 0, -1);
  CHECK(d.scale[0] == 0.25f && d.scale[1] == 0.25f && d.hidden[1] == 64 && d.hidden[0] == 200 &&
        d.seed == UINT64_MAX, "set");
  const mbField *act = row("act");
  CHECK(mbu_fieldEnumValue(act, "tanh") == 2 && mbu_fieldEnumValue(act, "relu") == 0 &&
        mbu_fieldEnumValue(act, "rel") == -1, "enum values by name");
  CHECK(mbu_fieldFind(FIELDS, "nope") == NULL && mbu_fieldIsInt(row("seed")) &&
        mbu_fieldIsInt(row("hidden")) && !mbu_fieldIsInt(row("lr")), "find, integer types");
}

static void test_ranges(void) {
  const struct { const char *name, *text; } want[] = {
    {"depth", "an integer in [1, 64]"}, {"steps", "an integer >= 0"},
    {"seed", "an integer"}, {"lr", "a number > 0"}, {"scales", "a number in (0, 1]"},
    {"gamma", "a number in [0, 1)"}, {"on", "true or false"},
    {"act", "one of relu, swish, tanh"}, {"hidden", "an integer in [1, 65536]"}};
  char b[160];
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    CHECK(!strcmp(mbu_fieldRange(row(want[i].name), b, sizeof b), want[i].text), "%s: %s",
          want[i].name, b);
  CHECK(mbu_fieldInRange(row("depth"), 1) && mbu_fieldInRange(row("depth"), 64) &&
        !mbu_fieldInRange(row("depth"), 0) && !mbu_fieldInRange(row("depth"), 65), "closed");
  CHECK(!mbu_fieldInRange(row("lr"), 0) && mbu_fieldInRange(row("lr"), 1e-9) &&
        !mbu_fieldInRange(row("lr"), HUGE_VAL) && !mbu_fieldInRange(row("lr"), NAN), "open lo");
  CHECK(!mbu_fieldInRange(row("gamma"), 1) && mbu_fieldInRange(row("gamma"), 0), "open hi");
  CHECK(mbu_fieldInRange(row("seed"), -1e18), "a seed takes any integer");
}

static void test_nearest(void) {
  const char *near[3], *extra[] = {"gammas", NULL};
  mbu_fieldNearest(near, "gama", FIELDS, NULL);
  CHECK(near[0] && !strcmp(near[0], "gamma"), "nearest: %s", near[0]);
  CHECK(near[1] && near[2], "three names");
  mbu_fieldNearest(near, "gammas", FIELDS, extra);
  CHECK(!strcmp(near[0], "gammas") && !strcmp(near[1], "gamma"), "extra keys count: %s %s",
        near[0], near[1]);
  /* ties: the earlier row first ("lr" and "on" are both 2 edits from "xy") */
  mbu_fieldNearest(near, "xy", FIELDS, NULL);
  CHECK(!strcmp(near[0], "lr") && !strcmp(near[1], "on") && !strcmp(near[2], "act"),
        "ties: %s %s %s", near[0], near[1], near[2]);
  static const mbField ONE[] = {MB_F_INT(Demo, depth, 3, 1, 64, "layers") MB_F_END};
  mbu_fieldNearest(near, "x", ONE, NULL);
  CHECK(!strcmp(near[0], "depth") && near[1] == NULL && near[2] == NULL, "fewer than three");
}

int main(void) {
  RUN(test_defaults_and_set);
  RUN(test_ranges);
  RUN(test_nearest);
  return TEST_REPORT();
}
