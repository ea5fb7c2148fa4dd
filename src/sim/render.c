/* Headless rendering of an env (EGL surfaceless + MuJoCo's renderer) and mp4 encoding through
   an ffmpeg child. See include/mbpo/render.h for the contract. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <EGL/egl.h>
#include <EGL/eglext.h>

#include "mbpo/core.h"
#include "mbpo/render.h"
#include "sim/task.h"

/* GL context ------------------------------------------------------------------------------ */

/* one surfaceless EGL context for the whole process, made on first use */
static EGLDisplay gl_display = EGL_NO_DISPLAY;
static EGLContext gl_context = EGL_NO_CONTEXT;

/* makes the process's GL context (once) and makes it current on this thread */
static int gl_current(void) {
  const char *nogl = getenv("MBPO_NO_GL");
  if (nogl && *nogl && strcmp(nogl, "0") != 0)
    return mbu_error("no OpenGL for rendering: EGL is not available (MBPO_NO_GL is set)");
  if (gl_context == EGL_NO_CONTEXT) {
    /* the surfaceless platform needs no display server and no GPU (llvmpipe) */
    PFNEGLGETPLATFORMDISPLAYEXTPROC getdisplay =
      (PFNEGLGETPLATFORMDISPLAYEXTPROC)eglGetProcAddress("eglGetPlatformDisplayEXT");
    if (!getdisplay)
      return mbu_error("no OpenGL for rendering: EGL has no eglGetPlatformDisplayEXT "
                       "(install libegl-mesa0 and libgl1-mesa-dri)");
    EGLDisplay dpy = getdisplay(EGL_PLATFORM_SURFACELESS_MESA, EGL_DEFAULT_DISPLAY, NULL);
    EGLint major, minor;
    if (dpy == EGL_NO_DISPLAY || !eglInitialize(dpy, &major, &minor))
      return mbu_error("no OpenGL for rendering: Mesa's EGL surfaceless display did not "
                       "start (EGL error 0x%x; install libegl-mesa0 and libgl1-mesa-dri)",
                       (unsigned)eglGetError());
    const EGLint attr[] = {EGL_RED_SIZE, 8, EGL_GREEN_SIZE, 8, EGL_BLUE_SIZE, 8,
                           EGL_DEPTH_SIZE, 24, EGL_RENDERABLE_TYPE, EGL_OPENGL_BIT,
                           EGL_SURFACE_TYPE, EGL_PBUFFER_BIT, EGL_NONE};
    EGLConfig cfg;
    EGLint n = 0;
    if (!eglChooseConfig(dpy, attr, &cfg, 1, &n) || n < 1 || !eglBindAPI(EGL_OPENGL_API)) {
      eglTerminate(dpy);
      return mbu_error("no OpenGL for rendering: EGL offers no desktop OpenGL configuration "
                       "(EGL %d.%d)", (int)major, (int)minor);
    }
    EGLContext ctx = eglCreateContext(dpy, cfg, EGL_NO_CONTEXT, NULL);
    if (ctx == EGL_NO_CONTEXT) {
      eglTerminate(dpy);
      return mbu_error("no OpenGL for rendering: eglCreateContext failed (EGL error 0x%x)",
                       (unsigned)eglGetError());
    }
    gl_display = dpy;
    gl_context = ctx;
  }
  if (eglGetCurrentContext() != gl_context &&
      !eglMakeCurrent(gl_display, EGL_NO_SURFACE, EGL_NO_SURFACE, gl_context))
    return mbu_error("no OpenGL for rendering: eglMakeCurrent failed (EGL error 0x%x)",
                     (unsigned)eglGetError());
  return MB_OK;
}

/* Renderer ------------------------------------------------------------------------------- */

struct mbRenderer {
  mbEnv *env;              /* the env whose mjData is drawn (not owned) */
  mjModel *m;              /* own copy of the env's model: visual settings changed here only */
  mjvScene scn;
  mjvCamera cam;
  mjvOption opt;
  mjrContext con;
  int have_scene, have_context;
  int width, height;
  int grid;                /* 1: draw the floor grid (built-in tasks) */
  int track;               /* the tracked body (track camera) */
  int tracking;            /* 1: the camera follows body track */
  double lookat_z;         /* lookat height of the track camera */
  double radius;           /* size of the tracked body's subtree, metres */
  uint8_t *gl;             /* [height x width x 3] as GL reads it (bottom row first) */
  uint8_t *rgb;            /* [height x width x 3] top row first */
};

/* the scene can hold the model's geoms plus the grid lines */
#define GRID_HALF 12         /* grid lines within +-12 m of the tracked body */
#define EXTRA_GEOMS (2 * (2 * GRID_HALF + 1) + 16)

static void do_makescene(void *arg) {
  mbRenderer *r = arg;
  mjv_makeScene(r->m, &r->scn, r->m->ngeom + EXTRA_GEOMS + 100);
  r->have_scene = 1;
}

static void do_makecontext(void *arg) {
  mbRenderer *r = arg;
  /* the overlay's font grows with the frame (about 4 % of its height per line) */
  int font = r->height >= 720 ? mjFONTSCALE_150 : r->height >= 360 ? mjFONTSCALE_100
                                                                   : mjFONTSCALE_50;
  mjr_makeContext(r->m, &r->con, font);
  r->have_context = 1;
  mjr_setBuffer(mjFB_OFFSCREEN, &r->con);
}

/* the colours of a built-in task (its MJCF has no materials or lights): a dark blue floor
   drawn without bounds, warm bodies, a brighter headlight */
static void style_builtin(mjModel *m) {
  for (int g = 0; g < m->ngeom; g++) {
    float *c = m->geom_rgba + 4 * g;
    if (m->geom_type[g] == mjGEOM_PLANE && m->geom_bodyid[g] == 0) {
      c[0] = 0.20f; c[1] = 0.25f; c[2] = 0.32f; c[3] = 1.0f;
      m->geom_size[3 * g] = 0;       /* 0: an unbounded plane when drawn */
      m->geom_size[3 * g + 1] = 0;
    } else {
      c[0] = 0.85f; c[1] = 0.55f; c[2] = 0.30f; c[3] = 1.0f;
    }
  }
  /* no multisampling: 2.5x faster in llvmpipe (34 -> 11 ms a 480x480 frame), edges
     slightly rougher */
  m->vis.quality.offsamples = 0;
  m->vis.headlight.ambient[0] = m->vis.headlight.ambient[1] = m->vis.headlight.ambient[2] = 0.35f;
  m->vis.headlight.diffuse[0] = m->vis.headlight.diffuse[1] = m->vis.headlight.diffuse[2] = 0.65f;
  m->vis.headlight.specular[0] = m->vis.headlight.specular[1] =
    m->vis.headlight.specular[2] = 0.2f;
}

/* the radius of the tracked body's subtree at qpos0 (the model's own statistic, stat.extent,
   counts the floor): the largest distance from the subtree's centre of mass to the far side
   of one of its geoms, at least 0.25 */
static void do_radius(void *arg) {
  mbRenderer *r = arg;
  const mjModel *m = r->m;
  int body = r->track;
  mjData *d = mj_makeData(m);
  if (!d) return;
  mj_forward(m, d);
  double rad = 0.25;
  for (int g = 0; g < m->ngeom; g++) {
    /* geoms of the subtree: walk up from the geom's body */
    int b = m->geom_bodyid[g];
    while (b > 0 && b != body) b = m->body_parentid[b];
    if (b != body || m->geom_bodyid[g] == 0) continue;
    double dist = 0;
    for (int k = 0; k < 3; k++) {
      double x = d->geom_xpos[3 * g + k] - d->subtree_com[3 * body + k];
      dist += x * x;
    }
    dist = sqrt(dist) + m->geom_rbound[g];
    if (dist > rad) rad = dist;
  }
  r->radius = rad;
  r->lookat_z = d->subtree_com[3 * body + 2];
  mj_deleteData(d);
}

/* points the camera: "track"/""/NULL, "free", or a camera of the model by name */
static int set_camera(mbRenderer *r, const char *camera) {
  mjModel *m = r->m;
  mjv_defaultCamera(&r->cam);
  /* a custom model's own first camera by default */
  if ((!camera || !*camera) && mbs_isCustom(r->env) && m->ncam > 0) {
    r->cam.type = mjCAMERA_FIXED;
    r->cam.fixedcamid = 0;
    return MB_OK;
  }
  if (!camera || !*camera || strcmp(camera, "track") == 0) {
    int body = mj_name2id(m, mjOBJ_BODY, "torso");
    if (body < 0) body = m->nbody > 1 ? 1 : 0;
    r->track = body;
    r->radius = 1;
    if (mbs_guardedCall(do_radius, r, "render: sizing the camera") < 0) return MB_ERR;
    /* a free camera whose lookat follows the subtree's centre of mass in x and y at the
       height it has at qpos0 (do_draw), so hops do not shake the picture */
    r->cam.type = mjCAMERA_FREE;
    r->tracking = 1;
    r->cam.distance = 4.0 * r->radius;
    r->cam.azimuth = 90;       /* from -y looking at +y: x runs to the right */
    r->cam.elevation = -20;
    return MB_OK;
  }
  if (strcmp(camera, "free") == 0) {
    mjv_defaultFreeCamera(m, &r->cam);
    return MB_OK;
  }
  int id = mj_name2id(m, mjOBJ_CAMERA, camera);
  if (id >= 0) {
    r->cam.type = mjCAMERA_FIXED;
    r->cam.fixedcamid = id;
    return MB_OK;
  }
  /* unknown: name the choices */
  char list[512];
  size_t len = 0;
  list[0] = 0;
  for (int i = 0; i < m->ncam && len < sizeof list - 64; i++) {
    const char *name = mj_id2name(m, mjOBJ_CAMERA, i);
    if (!name) continue;
    len += (size_t)snprintf(list + len, sizeof list - len, "%s'%s'", len ? ", " : "", name);
  }
  return mbu_error("unknown camera '%s': the model '%s' has %s%s; or use 'track' or 'free'",
                   camera, mbs_name(r->env), len ? "the cameras " : "no cameras", list);
}

const mbField mbv_renderFields[] = {
  MB_F_INT(mbvRenderOptions, width, 480, MBV_MIN_SIZE, MBV_MAX_SIZE, "frame width in pixels")
  MB_F_INT(mbvRenderOptions, height, 480, MBV_MIN_SIZE, MBV_MAX_SIZE, "frame height in pixels")
  MB_F_END};

mbRenderer *mbv_newRenderer(mbEnv *env, int width, int height, const char *camera) {
  if (!env) { mbu_error("render: env is NULL"); return NULL; }
  if (width < MBV_MIN_SIZE || width > MBV_MAX_SIZE || height < MBV_MIN_SIZE ||
      height > MBV_MAX_SIZE) {
    mbu_error("render: frame size %dx%d outside [%d, %d] per side", width, height,
              MBV_MIN_SIZE, MBV_MAX_SIZE);
    return NULL;
  }
  mbRenderer *r = mbu_calloc(1, sizeof *r);
  if (!r) return NULL;
  r->env = env;
  r->width = width;
  r->height = height;
  mjv_defaultScene(&r->scn);
  mjv_defaultOption(&r->opt);
  mjr_defaultContext(&r->con);
  r->m = mj_copyModel(NULL, mbs_mjModel(env));
  r->gl = mbu_malloc((size_t)width * (size_t)height * 3);
  r->rgb = mbu_malloc((size_t)width * (size_t)height * 3);
  if (!r->m || !r->gl || !r->rgb) {
    if (!r->m) mbu_error("render: cannot copy the model of '%s'", mbs_name(env));
    mbv_freeRenderer(r);
    return NULL;
  }
  if (set_camera(r, camera) < 0 || gl_current() < 0) {
    mbv_freeRenderer(r);
    return NULL;
  }
  if (!mbs_isCustom(env)) {
    style_builtin(r->m);
    r->grid = 1;
  }
  /* the offscreen buffer is sized by <visual><global offwidth offheight> (640x480 unless the
     model says otherwise): grown on the copy to hold the frame */
  if (r->m->vis.global.offwidth < width) r->m->vis.global.offwidth = width;
  if (r->m->vis.global.offheight < height) r->m->vis.global.offheight = height;
  if (mbs_guardedCall(do_makescene, r, "render: making the scene") < 0 ||
      mbs_guardedCall(do_makecontext, r, "render: making the GL context") < 0) {
    mbv_freeRenderer(r);
    return NULL;
  }
  if (r->con.currentBuffer != mjFB_OFFSCREEN || r->con.offWidth < width ||
      r->con.offHeight < height) {
    mbu_error("render: no %dx%d offscreen framebuffer (got %dx%d)", width, height,
              r->con.offWidth, r->con.offHeight);
    mbv_freeRenderer(r);
    return NULL;
  }
  return r;
}

void mbv_freeRenderer(mbRenderer *r) {
  if (!r) return;
  if (r->have_context && gl_current() == MB_OK) mjr_freeContext(&r->con);
  if (r->have_scene) mjv_freeScene(&r->scn);
  if (r->m) mj_deleteModel(r->m);
  mbu_free(r->gl);
  mbu_free(r->rgb);
  mbu_free(r);
}

/* thin boxes on the floor every metre around the tracked body, so the motion shows */
static void add_grid(mbRenderer *r) {
  const mjData *d = mbs_mjData(r->env);
  double cx = floor(d->subtree_com[3 * r->track]), cy = floor(d->subtree_com[3 * r->track + 1]);
  const float rgba[4] = {0.42f, 0.50f, 0.60f, 1.0f};
  const mjtNum mat[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  for (int dir = 0; dir < 2; dir++) {
    for (int k = -GRID_HALF; k <= GRID_HALF; k++) {
      if (r->scn.ngeom >= r->scn.maxgeom) return;
      mjtNum size[3], pos[3];
      /* dir 0: lines across x (at x = cx + k), dir 1: lines along x (at y = cy + k) */
      size[0] = dir == 0 ? 0.01 : GRID_HALF;
      size[1] = dir == 0 ? GRID_HALF : 0.01;
      size[2] = 0.001;
      pos[0] = dir == 0 ? cx + k : cx;
      pos[1] = dir == 0 ? cy : cy + k;
      pos[2] = 0.001;
      mjvGeom *g = r->scn.geoms + r->scn.ngeom++;
      mjv_initGeom(g, mjGEOM_BOX, size, pos, mat, rgba);
      g->category = mjCAT_DECOR;
    }
  }
}

/* arguments of the guarded draw */
typedef struct drawArgs {
  mbRenderer *r;
  const char *labels, *values;
} drawArgs;

static void do_draw(void *arg) {
  drawArgs *a = arg;
  mbRenderer *r = a->r;
  mjrRect vp = {0, 0, r->width, r->height};
  const mjData *d = mbs_mjData(r->env);
  if (r->tracking) {
    r->cam.lookat[0] = d->subtree_com[3 * r->track];
    r->cam.lookat[1] = d->subtree_com[3 * r->track + 1];
    r->cam.lookat[2] = r->lookat_z;
  }
  mjv_updateScene(r->m, mbs_mjData(r->env), &r->opt, NULL, &r->cam, mjCAT_ALL, &r->scn);
  if (r->grid) add_grid(r);
  mjr_setBuffer(mjFB_OFFSCREEN, &r->con);
  mjr_render(vp, &r->scn, &r->con);
  if (a->labels) mjr_overlay(mjFONT_NORMAL, mjGRID_TOPLEFT, vp, a->labels, a->values, &r->con);
  mjr_readPixels(r->gl, NULL, vp, &r->con);
}

int mbv_render(mbRenderer *r, const char *labels, const char *values) {
  if (gl_current() < 0) return MB_ERR;
  drawArgs a = {r, labels, values};
  if (mbs_guardedCall(do_draw, &a, "render") < 0) return MB_ERR;
  /* GL reads bottom-up: flip the rows */
  size_t row = (size_t)r->width * 3;
  for (int y = 0; y < r->height; y++)
    memcpy(r->rgb + (size_t)y * row, r->gl + (size_t)(r->height - 1 - y) * row, row);
  return MB_OK;
}

const uint8_t *mbv_pixels(const mbRenderer *r) { return r->rgb; }
int mbv_width(const mbRenderer *r) { return r->width; }
int mbv_height(const mbRenderer *r) { return r->height; }

/* Encoder ----------------------------------------------------------------------------------- */

struct mbVideo {
  pid_t pid;               /* the encoder child, -1 once reaped */
  int fd;                  /* write end of its stdin, -1 once closed */
  FILE *log;               /* its stderr (a temporary file) */
  int width, height;
  int64_t frames;
  char prog[256];
};

/* the last non-empty line the encoder wrote to stderr, or "" */
static const char *last_line(mbVideo *v, char *buf, size_t n) {
  buf[0] = 0;
  if (!v->log) return buf;
  char line[512];
  rewind(v->log);
  while (fgets(line, sizeof line, v->log)) {
    size_t len = strlen(line);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
      line[--len] = 0;
    if (len > 0) snprintf(buf, n, "%s", line);
  }
  return buf;
}

/* waits for the encoder; MB_OK when it exited 0 */
static int reap(mbVideo *v) {
  if (v->fd >= 0) { close(v->fd); v->fd = -1; }
  if (v->pid < 0) return MB_OK;
  int status = 0;
  pid_t got;
  do got = waitpid(v->pid, &status, 0); while (got < 0 && errno == EINTR);
  v->pid = -1;
  if (got < 0) return mbu_error("video: waiting for %s: %s", v->prog, strerror(errno));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return MB_OK;
  char msg[512];
  last_line(v, msg, sizeof msg);
  if (WIFSIGNALED(status))
    return mbu_error("video: %s was killed by signal %d%s%s", v->prog, WTERMSIG(status),
                     msg[0] ? ": " : "", msg);
  return mbu_error("video: %s failed (exit %d)%s%s", v->prog, WEXITSTATUS(status),
                   msg[0] ? ": " : "", msg);
}

static void free_video(mbVideo *v) {
  if (v->log) fclose(v->log);
  mbu_free(v);
}

mbVideo *mbv_open(const char *path, int width, int height, int fps) {
  if (!path || !*path) { mbu_error("video: empty output path"); return NULL; }
  if (width < MBV_MIN_SIZE || height < MBV_MIN_SIZE || width > MBV_MAX_SIZE ||
      height > MBV_MAX_SIZE || width % 2 || height % 2) {
    mbu_error("video: frame size %dx%d must be even and within [%d, %d] per side", width,
              height, MBV_MIN_SIZE, MBV_MAX_SIZE);
    return NULL;
  }
  if (fps < 1 || fps > 1000) {
    mbu_error("video: fps must be in [1, 1000], got %d", fps);
    return NULL;
  }
  mbVideo *v = mbu_calloc(1, sizeof *v);
  if (!v) return NULL;
  v->pid = -1;
  v->fd = -1;
  v->width = width;
  v->height = height;
  const char *prog = getenv("MBPO_FFMPEG");
  snprintf(v->prog, sizeof v->prog, "%s", prog && *prog ? prog : "ffmpeg");
  v->log = tmpfile();
  if (!v->log) {
    mbu_error("video: cannot create a temporary file: %s", strerror(errno));
    free_video(v);
    return NULL;
  }
  /* argv of the encoder: the output is one argument, "file:" so that no name is read as an
     option or a protocol */
  char size[32], rate[16];
  snprintf(size, sizeof size, "%dx%d", width, height);
  snprintf(rate, sizeof rate, "%d", fps);
  size_t plen = strlen(path) + 6;
  char *out = mbu_malloc(plen);
  if (!out) { free_video(v); return NULL; }
  snprintf(out, plen, "file:%s", path);
  const char *argv[] = {v->prog, "-hide_banner", "-nostats", "-loglevel", "error", "-y",
                  "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", size, "-r", rate,
                  "-i", "pipe:0", "-an", "-c:v", "libx264", "-preset", "veryfast",
                  "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", out, NULL};
  /* data: frames to the child's stdin; status: errno of a failed execvp (closed on exec) */
  int data[2], status[2];
  if (pipe2(data, O_CLOEXEC) < 0) {
    mbu_error("video: pipe: %s", strerror(errno));
    mbu_free(out);
    free_video(v);
    return NULL;
  }
  if (pipe2(status, O_CLOEXEC) < 0) {
    mbu_error("video: pipe: %s", strerror(errno));
    close(data[0]); close(data[1]);
    mbu_free(out);
    free_video(v);
    return NULL;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    /* child: stdin from the data pipe, stdout to /dev/null, stderr to the log */
    int devnull = open("/dev/null", O_WRONLY);
    if (dup2(data[0], 0) < 0 || (devnull >= 0 && dup2(devnull, 1) < 0) ||
        dup2(fileno(v->log), 2) < 0) {
      int e = errno;
      if (write(status[1], &e, sizeof e) < 0) _exit(126);
      _exit(126);
    }
    signal(SIGPIPE, SIG_DFL);
    /* execvp's argv is char *const[] for historical reasons; it does not write to it */
    union { const char **c; char **m; } args = {argv};
    execvp(argv[0], args.m);
    int e = errno;
    if (write(status[1], &e, sizeof e) < 0) _exit(127);
    _exit(127);
  }
  int fork_errno = errno;
  mbu_free(out);
  close(data[0]);
  close(status[1]);
  if (pid < 0) {
    close(data[1]);
    close(status[0]);
    mbu_error("video: fork: %s", strerror(fork_errno));
    free_video(v);
    return NULL;
  }
  v->pid = pid;
  v->fd = data[1];
  /* the status pipe closes on a successful exec (0 bytes) or carries execvp's errno */
  int e = 0;
  ssize_t got;
  do got = read(status[0], &e, sizeof e); while (got < 0 && errno == EINTR);
  close(status[0]);
  if (got == (ssize_t)sizeof e) {
    reap(v);
    if (e == ENOENT)
      mbu_error("video: the encoder '%s' is not installed or not on PATH (install ffmpeg: "
                "apt-get install ffmpeg, or set MBPO_FFMPEG to the program)", v->prog);
    else
      mbu_error("video: cannot run the encoder '%s': %s", v->prog, strerror(e));
    free_video(v);
    return NULL;
  }
  return v;
}

int mbv_write(mbVideo *v, const uint8_t *rgb) {
  if (v->fd < 0) return mbu_error("video: write after the encoder stopped");
  /* a dead encoder must give EPIPE here, not kill the process with SIGPIPE */
  struct sigaction ign, old;
  memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  sigaction(SIGPIPE, &ign, &old);
  size_t left = (size_t)v->width * (size_t)v->height * 3;
  const uint8_t *p = rgb;
  int err = 0;
  while (left > 0) {
    ssize_t n = write(v->fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    p += n;
    left -= (size_t)n;
  }
  sigaction(SIGPIPE, &old, NULL);
  if (err) {
    /* the encoder's own message says why it stopped */
    if (reap(v) < 0) return MB_ERR;
    return mbu_error("video: writing to %s: %s", v->prog, strerror(err));
  }
  v->frames++;
  return MB_OK;
}

int64_t mbv_frames(const mbVideo *v) { return v->frames; }

int mbv_close(mbVideo *v) {
  if (!v) return MB_OK;
  int rc = reap(v);
  if (rc == MB_OK && v->frames == 0) rc = mbu_error("video: no frames were written");
  free_video(v);
  return rc;
}
