/* Tests of src/sim/render.c: a Hopper frame has the scene where it belongs (rows top first:
   the black sky above, the blue floor below, the orange body near the centre), drawing does
   not change the simulation, the encoder writes an mp4 whose frame count and size ffprobe
   confirms, and the failures (no GL, an unknown camera, a missing encoder, bad sizes) come
   back as errors with a message. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mbpo/core.h"
#include "mbpo/env.h"
#include "mbpo/render.h"
#include "test.h"

#define W 120
#define H 96

/* mean of channel c over rows [r0, r1) */
static double mean_rows(const uint8_t *rgb, int r0, int r1, int c) {
  double s = 0;
  for (int y = r0; y < r1; y++)
    for (int x = 0; x < W; x++) s += rgb[(y * W + x) * 3 + c];
  return s / ((double)(r1 - r0) * W);
}

static void test_frame(void) {
  mbEnv *env = mbs_make("Hopper", 1);
  mbEnv *twin = mbs_make("Hopper", 1);
  CHECK(env && twin, "make: %s", mbu_lasterror());
  if (!env || !twin) return;
  float o1[11], o2[11];
  mbs_reset(o1, env, 1.0);
  mbs_reset(o2, twin, 1.0);
  mbRenderer *r = mbv_newRenderer(env, W, H, NULL);
  CHECK(r != NULL, "renderer: %s", mbu_lasterror());
  if (!r) { mbs_free(env); mbs_free(twin); return; }
  CHECK(mbv_width(r) == W && mbv_height(r) == H, "size %dx%d", mbv_width(r), mbv_height(r));
  const double act[3] = {0.2, -0.3, 0.4};
  for (int t = 0; t < 10; t++) {
    double rw1, rw2;
    int te1, tr1, te2, tr2;
    CHECK(mbv_render(r, NULL, NULL) == MB_OK, "render: %s", mbu_lasterror());
    mbs_step(o1, &rw1, &te1, &tr1, env, act);
    mbs_step(o2, &rw2, &te2, &tr2, twin, act);
    CHECK(memcmp(o1, o2, sizeof o1) == 0 && rw1 == rw2, "drawing changed the state at step %d", t);
  }
  const uint8_t *px = mbv_pixels(r);
  /* top rows: the background (black, no skybox); bottom rows: the floor, blue above red */
  double top = mean_rows(px, 0, 4, 0) + mean_rows(px, 0, 4, 1) + mean_rows(px, 0, 4, 2);
  double bot_r = mean_rows(px, H - 4, H, 0), bot_b = mean_rows(px, H - 4, H, 2);
  CHECK(top < 10, "top rows are not the dark background: %.1f", top);
  CHECK(bot_b > bot_r + 5 && bot_b > 30, "bottom rows are not the floor: r %.1f b %.1f", bot_r,
        bot_b);
  /* the body (orange: red well above blue) is somewhere in the middle columns */
  int orange = 0;
  for (int y = 0; y < H; y++)
    for (int x = W / 3; x < 2 * W / 3; x++) {
      const uint8_t *p = px + (y * W + x) * 3;
      if (p[0] > 120 && p[0] > p[2] + 60) orange++;
    }
  CHECK(orange > 20, "no body pixels in the middle: %d", orange);
  /* the overlay changes the top-left corner only */
  uint8_t *plain = malloc(W * H * 3);
  CHECK(mbv_render(r, NULL, NULL) == MB_OK, "%s", mbu_lasterror());
  memcpy(plain, px, W * H * 3);
  CHECK(mbv_render(r, "return", "12.5") == MB_OK, "%s", mbu_lasterror());
  CHECK(memcmp(plain, px, W * H * 3) != 0, "overlay drew nothing");
  CHECK(memcmp(plain + (H - 8) * W * 3, px + (H - 8) * W * 3, 8 * W * 3) == 0,
        "overlay reached the bottom rows");
  free(plain);
  mbv_freeRenderer(r);
  mbs_free(env);
  mbs_free(twin);
}

static void test_errors(void) {
  mbEnv *env = mbs_make("InvertedPendulum", 0);
  mbs_reset(NULL, env, 1.0);
  CHECK(mbv_newRenderer(env, 8, 64, NULL) == NULL, "size 8 accepted");
  CHECK(strstr(mbu_lasterror(), "outside") != NULL, "%s", mbu_lasterror());
  CHECK(mbv_newRenderer(env, 64, 64, "nope") == NULL, "unknown camera accepted");
  CHECK(strstr(mbu_lasterror(), "unknown camera 'nope'") != NULL, "%s", mbu_lasterror());
  setenv("MBPO_NO_GL", "1", 1);
  CHECK(mbv_newRenderer(env, 64, 64, NULL) == NULL, "MBPO_NO_GL ignored");
  CHECK(strstr(mbu_lasterror(), "no OpenGL") != NULL, "%s", mbu_lasterror());
  unsetenv("MBPO_NO_GL");
  mbRenderer *r = mbv_newRenderer(env, 64, 64, "free");
  CHECK(r != NULL, "free camera: %s", mbu_lasterror());
  mbv_freeRenderer(r);
  setenv("MBPO_FFMPEG", "/nonexistent/ffmpeg", 1);
  CHECK(mbv_open("/tmp/x.mp4", 64, 64, 25) == NULL, "a missing encoder started");
  CHECK(strstr(mbu_lasterror(), "not installed") != NULL, "%s", mbu_lasterror());
  unsetenv("MBPO_FFMPEG");
  CHECK(mbv_open("/tmp/x.mp4", 63, 64, 25) == NULL, "odd width accepted");
  CHECK(mbv_open("/tmp/x.mp4", 64, 64, 0) == NULL, "fps 0 accepted");
  mbs_free(env);
}

static void test_encode(void) {
  char dir[] = "/tmp/mbpo_render_XXXXXX";
  if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
  char path[128], cmd[512];
  snprintf(path, sizeof path, "%s/a b'c.mp4", dir);  /* quotes and spaces reach no shell */
  mbVideo *v = mbv_open(path, 64, 48, 30);
  CHECK(v != NULL, "open: %s", mbu_lasterror());
  if (!v) return;
  uint8_t *frame = malloc(64 * 48 * 3);
  for (int f = 0; f < 7; f++) {
    for (int i = 0; i < 64 * 48 * 3; i++) frame[i] = (uint8_t)(i * 7 + f * 40);
    CHECK(mbv_write(v, frame) == MB_OK, "write: %s", mbu_lasterror());
  }
  CHECK(mbv_frames(v) == 7, "frames %lld", (long long)mbv_frames(v));
  CHECK(mbv_close(v) == MB_OK, "close: %s", mbu_lasterror());
  free(frame);
  /* ffprobe's count and size (the path is ours: quoted for the shell by hand) */
  snprintf(cmd, sizeof cmd, "ffprobe -v error -count_frames -show_entries "
           "stream=nb_read_frames,width,height -of csv=p=0 \"%s/a b'c.mp4\"", dir);
  FILE *p = popen(cmd, "r");
  char line[128] = "";
  if (p) { if (!fgets(line, sizeof line, p)) line[0] = 0; pclose(p); }
  int w = 0, h = 0, n = 0;
  CHECK(sscanf(line, "%d,%d,%d", &w, &h, &n) == 3 && w == 64 && h == 48 && n == 7,
        "ffprobe says '%s'", line);
  /* an encoder that fails: its exit status is the error */
  setenv("MBPO_FFMPEG", "false", 1);
  v = mbv_open(path, 64, 48, 30);
  CHECK(v != NULL, "open false: %s", mbu_lasterror());
  if (v) {
    uint8_t small[64 * 48 * 3] = {0};
    int rc = MB_OK;
    for (int f = 0; f < 50 && rc == MB_OK; f++) rc = mbv_write(v, small);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", mbu_lasterror());
    if (rc == MB_OK) {
      rc = mbv_close(v);   /* the pipe took every frame: the exit status tells */
      snprintf(msg, sizeof msg, "%s", mbu_lasterror());
    } else {
      mbv_close(v);
    }
    CHECK(rc == MB_ERR && strstr(msg, "false failed (exit 1)") != NULL, "%s", msg);
  }
  unsetenv("MBPO_FFMPEG");
  unlink(path);
  rmdir(dir);
}

/* the options of a renderer (mbv_renderFields): 480 x 480, each side within the limits */
static void test_fields(void) {
  mbvRenderOptions o = {0, 0};
  mbu_fieldDefaults(&o, mbv_renderFields);
  CHECK(o.width == 480 && o.height == 480, "defaults %d x %d", o.width, o.height);
  const mbField *f = mbu_fieldFind(mbv_renderFields, "height");
  CHECK(f && mbu_fieldInRange(f, MBV_MIN_SIZE) && !mbu_fieldInRange(f, MBV_MAX_SIZE + 1),
        "height's range");
}

int main(void) {
  RUN(test_fields);
  RUN(test_frame);
  RUN(test_errors);
  RUN(test_encode);
  return TEST_REPORT();
}
