/* mbpo rendering core: headless pictures of an env and mp4 files of them.
   Rendering draws through an OpenGL context this file makes without a display: Mesa's EGL
   surfaceless platform (llvmpipe in software on a server, a GPU's driver where there is
   one), one context per process, current on the thread that rendered first. MuJoCo's own
   renderer (mjv_ / mjr_, MuJoCo 2.2.2) draws the scene into its offscreen framebuffer and
   the pixels are read back top row first. The renderer keeps its own copy of the env's
   mjModel (visual settings changed on the copy only) and reads the env's mjData: it never
   changes the simulation.
   Encoding pipes raw RGB frames into an ffmpeg child (fork + execvp, no shell: the output
   path is one argument, given as "file:PATH") that writes H.264 in an mp4 container.
   Environment: MBPO_NO_GL=1 makes the GL set-up fail as if no EGL were installed (for
   tests); MBPO_FFMPEG=PROGRAM names the encoder program (default "ffmpeg" on PATH). */
#ifndef MBPO_RENDER_H
#define MBPO_RENDER_H

#include <stdint.h>

#include "mbpo/env.h"

typedef struct mbRenderer mbRenderer;
typedef struct mbVideo mbVideo;

#define MBV_MIN_SIZE 16      /* smallest frame side in pixels */
#define MBV_MAX_SIZE 4096    /* largest frame side in pixels */

/* Renderer ------------------------------------------------------------------------------ */

/* Options of a renderer (mbpo.render's R.new; the camera is a string, read apart): the rows
   of mbv_renderFields. */
typedef struct mbvRenderOptions { int width, height; } mbvRenderOptions;
extern const mbField mbv_renderFields[];

/* A renderer of env's state at width x height pixels (each in [MBV_MIN_SIZE, MBV_MAX_SIZE]).
   camera: "track" (the default for NULL or "", except for a custom model with cameras: its
   first camera) follows the body "torso" (else the first body) from the side; "free" is a
   fixed view of the whole model; any other name is the model's own camera of that name.
   Built-in tasks (their MJCF has no materials) get a coloured floor with a 1 m grid and no
   multisampling; custom models keep their own look. The env must outlive the renderer.
   NULL + mbu_error when no GL context can be made or the camera is unknown (the message
   lists the model's cameras). */
mbRenderer *mbv_newRenderer(mbEnv *env, int width, int height, const char *camera);
/* Frees the renderer (NULL is fine). */
void mbv_freeRenderer(mbRenderer *r);

/* Draws the env's current state into the renderer's frame; overlay text in the top-left
   corner: labels in one column, values (may be NULL) in the next, lines split by '\n'
   (labels NULL: no overlay). */
int mbv_render(mbRenderer *r, const char *labels, const char *values);
/* The last frame: [height x width x 3] RGB bytes, top row first. */
const uint8_t *mbv_pixels(const mbRenderer *r);
int mbv_width(const mbRenderer *r);
int mbv_height(const mbRenderer *r);

/* Encoder ------------------------------------------------------------------------------- */

/* Starts an encoder writing an mp4 (H.264, yuv420p) of width x height frames (both even) at
   fps frames per second to path (created or overwritten). NULL + mbu_error when the
   encoder program cannot be started (not installed: the message says how to get it). */
mbVideo *mbv_open(const char *path, int width, int height, int fps);
/* Appends one frame: rgb [height x width x 3], top row first. MB_ERR when the encoder has
   failed (its own last message in the error). */
int mbv_write(mbVideo *v, const uint8_t *rgb);
/* Frames written so far. */
int64_t mbv_frames(const mbVideo *v);
/* Ends the stream, waits for the encoder and frees v: MB_OK when the file is complete, else
   MB_ERR with the encoder's last message (v is freed either way; NULL is fine). */
int mbv_close(mbVideo *v);

#endif
