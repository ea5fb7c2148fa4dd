/* mbpo network kernels: linear layers on OpenBLAS sgemm, activations, Adam, initialisers,
   and a multilayer-perceptron descriptor whose parameters live in one slab.
   Layout conventions (row-major, batch first):
     x [B x in], W [in x out], b [out], y [B x out]:  y = x @ W + b
   Kernels never allocate. Parameter gradients are accumulated with += (zero them
   explicitly); input gradients dx are overwritten. Shapes are in the comment of each kernel. */
#ifndef MBPO_NN_H
#define MBPO_NN_H

#include <stddef.h>
#include <stdint.h>

#include "mbpo/fields.h"
#include "mbpo/rng.h"
#include "mbpo/tensor.h"

/* Precision of the matrix products ------------------------------------------------------ */

/* MB_FP32: OpenBLAS sgemm. MB_BF16: operands rounded to bfloat16, fp32 accumulation and
   result (oneDNN matmul; AVX512-BF16 or AMX); everything else stays fp32. */
typedef enum mbPrecision { MB_FP32 = 0, MB_BF16 = 1 } mbPrecision;

/* In bf16, products with M, N or K under this stay on sgemm in fp32 (small-K first layers,
   one-unit outputs: too small for the matrix units to pay). */
#define MB_BF16_MIN_DIM 32

/* C[M x N] = alpha op(A) op(B) + beta C, row-major, op(X) = X^T when tX (A is [K x M] then,
   B [N x K]), as cblas_sgemm; in prec (src/nn/gemm.c). MB_ERR when oneDNN fails. */
int mbn_gemm(mbPrecision prec, int ta, int tb, int M, int N, int K, float alpha, const float *A,
             int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* mbn_gemm with operands rounded already: A16 (NULL: none) holds the bf16 rounding of every
   value of A at the same places (leading dimension lda), B16 likewise for B (ldb); where the
   product runs in bf16 they are read instead of rounding A and B again, and the bits are the
   same as mbn_gemm's. Where it runs in fp32 they are not read. */
int mbn_gemm16(mbPrecision prec, int ta, int tb, int M, int N, int K, float alpha,
               const float *A, int lda, const uint16_t *A16, const float *B, int ldb,
               const uint16_t *B16, float beta, float *C, int ldc);

/* x rounded to the nearest bfloat16 (ties to even), as the bf16 products round operands. */
float mbn_bf16Round(float x);

/* The fp32 product of mbn_gemm on oneDNN (src/nn/gemm_f32.c) for the shapes where it is the
   faster: returns 1 when it computed C, 0 when the shape (or MBPO_GEMM_F32=blas) leaves it to
   sgemm, MB_ERR when oneDNN failed. */
int mbn_gemmF32Dnnl(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc);
/* Turns that path on or off for every thread (tests and benchmarks; call it between
   products), and reports whether it is on. */
void mbn_gemmF32Use(int on);
int mbn_gemmF32InUse(void);

/* MB_OK when bf16 products run natively here (oneDNN picks an AVX512-BF16 or AMX kernel);
   else MB_ERR with a one-line message. impl [n] receives oneDNN's kernel name. */
int mbn_bf16Check(char *impl, size_t n);

/* Cached bf16 images of weights. A caller that multiplies the same weights many times
   between optimiser steps keeps their bf16 image (img[i] = the bf16 rounding of src[i],
   refreshed with mbn_bf16Image after every change of src) and attaches it: while attached,
   every bf16 product whose B operand lies inside [src, src + n) and is stored without gaps
   (ldb equal to its row length) reads the image instead of rounding B again; the bits are
   the same either way. Attach and detach outside parallel sections (they edit a small
   process-wide table); mbn_bf16Image may run inside them. Attaching a src already attached
   replaces its entry. MB_ERR when the table (8 entries) is full. */
void mbn_bf16Image(uint16_t *img, const float *src, size_t n);
int mbn_bf16Attach(const float *src, const uint16_t *img, size_t n);
void mbn_bf16Detach(const float *src);

/* Linear ------------------------------------------------------------------------------- */

/* y[B x out] = x[B x in] @ W[in x out] + b[out]   (b may be NULL) */
void mbn_linearForward(float *y, const float *x, const float *W, const float *b,
                       int B, int in, int out);

/* Given dy[B x out]:
     dx[B x in]   = dy @ W^T      (skipped when dx is NULL; overwritten)
     dW[in x out] += x^T @ dy     (skipped when dW is NULL)
     db[out]      += sum_rows dy  (skipped when db is NULL) */
void mbn_linearBackward(float *dx, float *dW, float *db, const float *dy, const float *x,
                        const float *W, int B, int in, int out);

/* The two above with their products in precision prec (mbn_gemm). */
void mbn_linearForwardP(mbPrecision prec, float *y, const float *x, const float *W,
                        const float *b, int B, int in, int out);
void mbn_linearBackwardP(mbPrecision prec, float *dx, float *dW, float *db, const float *dy,
                         const float *x, const float *W, int B, int in, int out);

/* Activations (elementwise over n; in place allowed: y == x, dx == dy) ------------------ */

/* y = max(x, 0) */
void mbn_reluForward(float *y, const float *x, size_t n);
/* dx = dy * (y > 0), from the forward output y */
void mbn_reluBackward(float *dx, const float *dy, const float *y, size_t n);

/* Optimisation --------------------------------------------------------------------------- */

typedef struct mbAdam {
  float lr, beta1, beta2, eps;  /* defaults 1e-3, 0.9, 0.999, 1e-8 (mbn_adamDefaults) */
  int64_t t;                    /* steps taken: the caller increments it once per step */
  int contract;                 /* arithmetic of mbn_adam: 0 (default) separate multiplies and
                                   adds; 1 FMAs in the vector lanes (the ensemble's) */
} mbAdam;

void mbn_adamDefaults(mbAdam *opt, float lr);

/* One Adam update at step opt->t (not incremented: increment it once per step, then update
   the slab in one call or in parts) of p, m, v [n] from g [n]:
     g += wd * p (written back when wd is not 0; always with contract);
     m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
     p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps);
     targ[n] = (1 - tau) targ + tau p when targ is not NULL (Polyak averaging of a target).
   Returns wd * sum(p^2) / 2 before the update, the decay term of the loss. The AVX2 and
   AVX-512 paths give the same bits (src/nn/kernels.c says how, for each arithmetic). */
double mbn_adam(float *p, float *m, float *v, float *g, size_t n, const mbAdam *opt, float wd,
                float *targ, float tau);

/* g[n] += wd * p[n]: the gradient of the loss term wd * sum(p^2) / 2 */
void mbn_addDecay(float *g, const float *p, float wd, size_t n);

/* Initialisers --------------------------------------------------------------------------- */

/* w[n] ~ N(0, std^2) truncated at 2 std (redrawn outside), as TensorFlow's truncated_normal */
void mbn_initTruncNormal(float *w, mbRng *g, size_t n, float std);
/* w[n] ~ U(-a, a) */
void mbn_initUniform(float *w, mbRng *g, size_t n, float a);

/* Multilayer perceptron ------------------------------------------------------------------ */

#define MB_MLP_MAXLAYERS 8

typedef enum mbActivation { MB_ACT_RELU = 0, MB_ACT_SWISH = 1 } mbActivation;

/* An MLP: nlayers linear layers sizes[0] -> sizes[1] -> ... -> sizes[nlayers], the
   activation after every layer but the last. Parameters of all layers live in one slab of
   nparams floats: W_l at woff[l] ([sizes[l] x sizes[l+1]]), b_l at boff[l] ([sizes[l+1]]). */
typedef struct mbMlp {
  int nlayers;
  int sizes[MB_MLP_MAXLAYERS + 1];
  mbActivation act;
  size_t woff[MB_MLP_MAXLAYERS], boff[MB_MLP_MAXLAYERS];
  size_t nparams;
  mbPrecision prec;     /* of its matrix products (MB_FP32 from mbn_mlpInit) */
} mbMlp;

/* Fills the descriptor; MB_ERR on a bad layer count or size. */
int mbn_mlpInit(mbMlp *m, int nlayers, const int *sizes, mbActivation act);

/* Initialises p[nparams]: weights truncated normal with std 1/(2 sqrt(fan_in)) (the MBPO
   reference model), biases 0. */
void mbn_mlpInitTruncNormal(float *p, const mbMlp *m, mbRng *g);

/* Initialises p[nparams] as PyTorch's nn.Linear default: W and b ~ U(+-1/sqrt(fan_in)). */
void mbn_mlpInitUniform(float *p, const mbMlp *m, mbRng *g);

/* Forward and backward (src/nn/mlp.c), SAC's networks and mbpo.nn's. The workspace of B rows
   holds each layer's output, [B x sizes[1]], ..., [B x sizes[nlayers]] (the activation runs
   in place), then for swish the sigmoid of each hidden layer. */

/* Floats of forward workspace for B rows. */
size_t mbn_mlpWorkspace(const mbMlp *m, int B);
/* Floats of backward scratch for B rows (two [B x widest hidden] buffers). */
size_t mbn_mlpScratch(const mbMlp *m, int B);
/* Output of layer l (1..nlayers; l = nlayers is the network output) inside ws [B x sizes[l]]. */
float *mbn_mlpHidden(float *ws, const mbMlp *m, int B, int l);
/* The network output inside ws [B x sizes[nlayers]]. */
float *mbn_mlpOutput(float *ws, const mbMlp *m, int B);
/* Forward of x [B x sizes[0]] with parameters p [nparams], products in m->prec; returns the
   output inside ws. */
float *mbn_mlpForward(float *ws, const mbMlp *m, const float *p, const float *x, int B);
/* Backward after mbn_mlpForward(ws, m, p, x, B): given dy [B x out], g[nparams] += parameter
   gradients; dx [B x sizes[0]] written (overwritten) when not NULL. scratch as
   mbn_mlpScratch. */
void mbn_mlpBackward(float *dx, float *g, float *scratch, const mbMlp *m, const float *p,
                     const float *x, const float *ws, const float *dy, int B);
/* Input gradient of a one-output ReLU MLP with at least one hidden layer on selected rows,
   restricted to input columns c0..c0+nc-1: dx[i, :] = dy * d out(x_r) / d x_r[c0:c0+nc] for
   r = idx[i], i < n, from the forward workspace ws of B rows. No parameter gradients.
   bufA, bufB: [n x widest hidden]. */
void mbn_mlpInputGradRows(float *dx, float *bufA, float *bufB, const mbMlp *m, const float *p,
                          const float *ws, int B, const int *idx, int n, float dy, int c0,
                          int nc);

/* A trainable MLP (src/nn/net.c, mbpo.nn's network) ------------------------------------
   The descriptor with its slabs [nparams] (parameters, gradients, both Adam moments; tensors
   so that the bindings can hand out views), Adam's settings, and what backward needs from the
   last forward. Unlike the kernels it allocates; a zeroed struct is its safe empty state. */
typedef struct mbMlpNet {
  mbTensor p, g, m, v;       /* storage NULL until built (p first: the bindings' open test) */
  mbMlp net;
  mbAdam adam;
  int B;                     /* rows of the last forward (0: none yet) */
  float *ws, *x, *scratch;   /* forward workspace, copy of the last input, backward scratch */
  size_t wscap, xcap, scap;  /* their capacities in floats */
} mbMlpNet;

/* The options of a trainable MLP (mbpo.nn's NN.mlp): the rows of mbn_netFields. */
typedef struct mbNetOptions {
  int sizes[MB_MLP_MAXLAYERS + 1], nsizes;
  int activation, init;   /* mbActivation; 0 uniform, 1 truncnormal */
  uint64_t seed;
  float lr;
} mbNetOptions;
#define MB_NET_FIELDS(S) \
  MB_F_LIST(S, sizes, MB_FIELD_INTS, MB_F_REQUIRED, nsizes, MB_MLP_MAXLAYERS + 1, 1, 1 << 20, \
            "widths: inputs, hidden layers, outputs (mbn_mlpInit's range)", 0) \
  MB_F_ENUM(S, activation, MB_ACT_RELU, "relu|swish", "hidden activation") \
  MB_F_ENUM(S, init, 0, "uniform|truncnormal", "initial weights") \
  MB_F_U64(S, seed, 0, "seed of the initial weights") \
  MB_F_FLOAT(S, lr, 0, 1e-3, 0, HUGE_VAL, "Adam step size")
extern const mbField mbn_netFields[];

/* Adam's settings and a weight decay added to the gradient (g + weight_decay * p), as
   mbpo.nn's Adam steps take them: the rows of mbn_adamFields (no defaults: a step keeps the
   optimiser's own settings for the keys not given). */
typedef struct mbAdamOptions { mbAdam adam; float weight_decay; } mbAdamOptions;
extern const mbField mbn_adamFields[];

/* Adam over the floats of a contiguous tensor (mbpo.nn's NN.adam): a view of the parameters
   (it keeps their storage alive), both moments [n] and the settings. A zeroed struct is its
   safe empty state. */
typedef struct mbAdamTensor {
  mbTensor p, m, v;          /* storage NULL until built (p first: the bindings' open test) */
  mbAdamOptions o;
} mbAdamTensor;

/* Builds the zeroed a over the contiguous p with the settings o: zero moments, step 0.
   MB_ERR when p is not contiguous or without memory (a is then safe to free). */
int mbn_adamTensorInit(mbAdamTensor *a, const mbTensor *p, const mbAdamOptions *o);
/* Drops the view and frees the moments; a is left empty. */
void mbn_adamTensorFree(mbAdamTensor *a);

/* Builds the zeroed n of the options o: slabs, weights from o->seed (init 1:
   mbn_mlpInitTruncNormal, 0: mbn_mlpInitUniform), Adam's defaults with o->lr. MB_ERR on
   bad sizes or no memory (n is then safe to free). */
int mbn_netInit(mbMlpNet *n, const mbNetOptions *o);
/* Frees the slabs and buffers; n is left empty (as zeroed). */
void mbn_netFree(mbMlpNet *n);
/* Forward of x [B x in] (x is copied: backward uses it); returns the output [B x out] inside
   the workspace, valid until the next forward, or NULL (no memory). */
const float *mbn_netForward(mbMlpNet *n, const float *x, int B);
/* Backward of the last forward from dy [B x out]: g += the parameter gradients, dx [B x in]
   written when not NULL. MB_ERR before any forward or without memory. */
int mbn_netBackward(mbMlpNet *n, float *dx, const float *dy);

/* Instruction-set path of the elementwise kernels (src/nn/isa.c) ---------------------------
   The product is built for x86-64-v3 (AVX2 + FMA); the kernels of ens_kernels.c, kernels.c
   and mlp.c also carry AVX-512 variants (function target attributes), taken at run
   time when the CPU has AVX-512F/BW/DQ/VL. Both paths do the same operations per element in
   the same order (the same FMA contractions, the reductions in the AVX2 lane layout), so the
   results are bit-identical whichever runs. MBPO_ISA=avx2 forces the AVX2 path. */
typedef enum mbIsa { MB_ISA_AVX2 = 0, MB_ISA_AVX512 = 1 } mbIsa;

/* the path taken now: MBPO_ISA's choice on the first call, else the best this CPU has */
mbIsa mbn_isa(void);
/* 1 when this build and CPU can take path isa */
int mbn_isaSupported(mbIsa isa);
/* "avx512", "avx2" ("scalar" for the AVX2 path of a build without AVX2) */
const char *mbn_isaName(mbIsa isa);
/* takes path isa from now on (all threads); MB_ERR when not supported */
int mbn_setIsa(mbIsa isa);
/* applies MBPO_ISA (unset or "auto": the best; "avx2"; "avx512"): MB_ERR with a one-line
   message for another value, or avx512 on a CPU without it */
int mbn_isaFromEnv(void);

/* x[n] = (src[n] - mean[n]) * inv_std[n]: one row of the standardiser */
void mbn_standardize(float *x, const float *src, const float *mean, const float *inv_std, int n);

/* Fused kernels (src/nn/ens_kernels.c; AVX2 when compiled for it, AVX-512 at run time) ----- */

/* h[n] = z * sigmoid(z) and, when s is not NULL, s[n] = sigmoid(z); h may alias z */
void mbn_swishForwardSig(float *h, float *s, const float *z, size_t n);

/* dz[n] = dh * (s + h (1 - s)): swish backward from the forward's outputs h and s;
   dz may alias dh or s */
void mbn_swishBackwardSig(float *dz, const float *dh, const float *h, const float *s, size_t n);
/* the same, also writing dz16 [n] = the bf16 rounding of dz when dz16 is not NULL */
void mbn_swishBackwardSig16(float *dz, uint16_t *dz16, const float *dh, const float *h,
                            const float *s, size_t n);

/* The bias and activation after a linear layer computed without bias (y = x @ W), in place
   on h [B x n] with b [n]: z = h + b; h = z * sigmoid(z) and s [B x n] = sigmoid(z) when s
   is not NULL (swish) / h = max(z, 0) (ReLU) / h = z (mbn_addBias) */
void mbn_biasSwishSig(float *h, float *s, const float *b, int B, int n);
/* the same, also writing h16 [B x n] = the bf16 rounding of the new h (as the bf16 products
   round their operands) when h16 is not NULL */
void mbn_biasSwishSig16(float *h, float *s, uint16_t *h16, const float *b, int B, int n);
void mbn_biasRelu(float *h, const float *b, int B, int n);
void mbn_addBias(float *y, const float *b, int B, int n);

/* The weight gradient of a block of rows [k0, k1) of a linear layer, overwritten:
     dW[in x out][k0:k1, :] = x[B x in][:, k0:k1]^T @ dy[B x out] */
void mbn_linearBackwardRows(float *dW, const float *dy, const float *x, int B, int in, int out,
                            int k0, int k1);
/* mbn_linearBackwardRows with its product in precision prec (mbn_gemm). */
void mbn_linearBackwardRowsP(mbPrecision prec, float *dW, const float *dy, const float *x, int B,
                             int in, int out, int k0, int k1);
/* the same with bf16 roundings of dy and x at the same places (either may be NULL; see
   mbn_gemm16): the same bits */
void mbn_linearBackwardRows16(mbPrecision prec, float *dW, const float *dy, const uint16_t *dy16,
                              const float *x, const uint16_t *x16, int B, int in, int out,
                              int k0, int k1);

/* The bias gradient of columns [c0, c1), overwritten: db[out][c0:c1] = sum_rows dy[:, c0:c1] */
void mbn_biasGrad(float *db, const float *dy, int B, int out, int c0, int c1);

/* out[n] = standard normal noise: Box-Muller in float from one 64-bit draw of g per pair
   (24-bit uniforms, so |z| < 5.8), vectorised; for sampling model predictions */
void mbn_gaussNoise(float *out, mbRng *g, size_t n);

/* Gaussian head with soft log-variance bounds. out[B x 2D] rows are [mean | raw]; maxlv,
   minlv [D]; lv = min + softplus(max - softplus(max - raw) - min).
   mbn_gaussLogvar: lv[B x D] the bounded log-variance. */
void mbn_gaussLogvar(float *lv, const float *out, const float *maxlv, const float *minlv,
                     int B, int D);

/* y[B x D] = mean + exp(lv / 2) * eps[B x D] (y = mean when eps is NULL) */
void mbn_gaussSample(float *y, const float *out, const float *eps, const float *maxlv,
                     const float *minlv, int B, int D);

/* Gaussian negative log-likelihood without constants,
     loss = scale * sum_{rows, dims} ((mean - y)^2 exp(-lv) + lv),   y [B x D],
   returned in double. When dout is not NULL: dout[B x 2D] = d loss / d out (overwritten;
   may alias out) and dmax[D], dmin[D] += d loss / d maxlv, d loss / d minlv. */
double mbn_gaussNll(float *dout, float *dmax, float *dmin, const float *out, const float *y,
                    const float *maxlv, const float *minlv, int B, int D, float scale);

#endif
