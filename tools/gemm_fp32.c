/* fp32 matrix products at the call sites' shapes: OpenBLAS sgemm against oneDNN's fp32
   matmul (primitive created once per shape, operands used in place, beta as a sum post-op),
   one thread each as inside the kernels' parallel sections (OpenBLAS at 1 thread, oneDNN
   with one OpenMP thread). The two alternate within one process, REPS calls per round, and
   the best round of each is kept (thread CPU time), so a loaded machine slows both alike.
   Checks that both give the same product (relative difference) before timing.
   Build and run: make build/tools/gemm_fp32 && build/tools/gemm_fp32 [ROUNDS] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

typedef struct Shape {
  const char *site;
  int ta, tb, M, N, K;
  float beta;
} Shape;

/* C [M x N] = op(A) op(B) (+ C when beta = 1); lda, ldb, ldc the dense ones */
static const Shape shapes[] = {
  /* SAC, Hopper (obs 11, act 3), batch 256, hidden 256 */
  {"sac policy fwd L1 (K = obs)", 0, 0, 256, 256, 11, 1},
  {"sac critic fwd L1 (K = obs+act)", 0, 0, 256, 256, 14, 1},
  {"sac fwd hidden", 0, 0, 256, 256, 256, 1},
  {"sac fwd hidden, half batch", 0, 0, 128, 256, 256, 1},
  {"sac policy fwd out (N = 2 act)", 0, 0, 256, 6, 256, 1},
  {"sac critic fwd out (N = 1)", 0, 0, 256, 1, 256, 1},
  {"sac bwd dx = dy W^T", 0, 1, 256, 256, 256, 0},
  {"sac bwd dx, half batch", 0, 1, 128, 256, 256, 0},
  {"sac bwd dW += x^T dy", 1, 0, 256, 256, 256, 1},
  {"sac bwd dW L1 (M = obs+act)", 1, 0, 14, 256, 256, 1},
  {"sac bwd dW, half batch", 1, 0, 256, 256, 128, 1},
  {"sac input grad rows (~100)", 0, 1, 100, 256, 256, 0},
  /* SAC, Ant (obs 27, act 8) first layers */
  {"sac Ant critic fwd L1 (K = 35)", 0, 0, 256, 256, 35, 1},
  {"sac Ant dW L1 (M = 35)", 1, 0, 35, 256, 256, 1},
  /* ensemble training, Hopper (in 14, out 2 x 12), hidden 200, per task 128 rows */
  {"ens fwd L1 (128 x 14 x 200)", 0, 0, 128, 200, 14, 0},
  {"ens fwd hidden (128 x 200 x 200)", 0, 0, 128, 200, 200, 0},
  {"ens fwd out (128 x 200 x 24)", 0, 0, 128, 24, 200, 0},
  {"ens bwd dx (128 x 200 x 200)^T", 0, 1, 128, 200, 200, 0},
  {"ens bwd dW rows (100 x 200, K 256)", 1, 0, 100, 200, 256, 0},
  {"ens bwd dW L1 rows (7 x 200)", 1, 0, 7, 200, 256, 0},
  {"ens fwd hidden, whole member", 0, 0, 256, 200, 200, 0},
  /* model step: items of 512 rows through one member, and 100k rows in one product */
  {"step L1 (512 x 14 x 200)", 0, 0, 512, 200, 14, 0},
  {"step hidden (512 x 200 x 200)", 0, 0, 512, 200, 200, 0},
  {"step out (512 x 200 x 24)", 0, 0, 512, 24, 200, 0},
  {"100k rows hidden (100000 x 200 x 200)", 0, 0, 100000, 200, 200, 0},
  {"100k rows L1 (100000 x 14 x 200)", 0, 0, 100000, 200, 14, 0},
};

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);   /* one thread: its CPU time */
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static dnnl_engine_t engine;
static dnnl_stream_t stream;

typedef struct Dnn {
  dnnl_primitive_t prim;
  dnnl_memory_t a, b, c;
} Dnn;

static int dnn_create(Dnn *d, const Shape *s, char *impl, size_t nimpl) {
  int M = s->M, N = s->N, K = s->K;
  dnnl_memory_desc_t amd, bmd, cmd;
  dnnl_dims_t ad = {M, K}, bd = {K, N}, cd = {M, N};
  dnnl_dims_t as = {s->ta ? 1 : K, s->ta ? M : 1}, bs = {s->tb ? 1 : N, s->tb ? K : 1};
  dnnl_dims_t cs = {N, 1};
  if (dnnl_memory_desc_init_by_strides(&amd, 2, ad, dnnl_f32, as) ||
      dnnl_memory_desc_init_by_strides(&bmd, 2, bd, dnnl_f32, bs) ||
      dnnl_memory_desc_init_by_strides(&cmd, 2, cd, dnnl_f32, cs))
    return -1;
  dnnl_matmul_desc_t md;
  if (dnnl_matmul_desc_init(&md, &amd, &bmd, NULL, &cmd)) return -1;
  dnnl_primitive_attr_t attr;
  dnnl_primitive_attr_create(&attr);
  if (s->beta != 0.0f) {
    dnnl_post_ops_t po;
    dnnl_post_ops_create(&po);
    dnnl_post_ops_append_sum(po, s->beta);
    dnnl_primitive_attr_set_post_ops(attr, po);
    dnnl_post_ops_destroy(po);
  }
  dnnl_primitive_desc_t pd;
  int bad = dnnl_primitive_desc_create(&pd, &md, attr, engine, NULL) != dnnl_success;
  dnnl_primitive_attr_destroy(attr);
  if (bad) return -1;
  const char *name = NULL;
  dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name);
  snprintf(impl, nimpl, "%s", name ? name : "?");
  bad = dnnl_primitive_create(&d->prim, pd) != dnnl_success;
  dnnl_primitive_desc_destroy(pd);
  if (bad) return -1;
  dnnl_memory_create(&d->a, &amd, engine, DNNL_MEMORY_NONE);
  dnnl_memory_create(&d->b, &bmd, engine, DNNL_MEMORY_NONE);
  dnnl_memory_create(&d->c, &cmd, engine, DNNL_MEMORY_NONE);
  return 0;
}

static void dnn_run(Dnn *d, const float *A, const float *B, float *C) {
  dnnl_memory_set_data_handle(d->a, (void *)(uintptr_t)A);
  dnnl_memory_set_data_handle(d->b, (void *)(uintptr_t)B);
  dnnl_memory_set_data_handle(d->c, C);
  dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, d->a}, {DNNL_ARG_WEIGHTS, d->b}, {DNNL_ARG_DST, d->c}};
  dnnl_primitive_execute(d->prim, stream, 3, args);
  dnnl_stream_wait(stream);
}

static void blas_run(const Shape *s, const float *A, const float *B, float *C) {
  int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
  cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans,
              s->M, s->N, s->K, 1.0f, A, lda, B, ldb, s->beta, C, s->N);
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 7;
  if (rounds < 1) rounds = 1;
  openblas_set_num_threads(1);
  omp_set_num_threads(1);
  if (dnnl_engine_create(&engine, dnnl_cpu, 0) || dnnl_stream_create(&stream, engine, 0)) {
    fprintf(stderr, "gemm_fp32: no oneDNN CPU engine\n");
    return 1;
  }
  printf("fp32 GEMM, 1 thread each, best of %d alternating rounds (GFLOP/s)\n", rounds);
  printf("%-40s %5s %6s %6s %2s %9s %9s %7s  %s\n", "call site", "M", "N", "K", "t", "OpenBLAS",
         "oneDNN", "dnn/bl", "oneDNN kernel");
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    const Shape *s = &shapes[i];
    size_t na = (size_t)s->M * s->K, nb = (size_t)s->K * s->N, nc = (size_t)s->M * s->N;
    float *A = malloc(na * 4), *B = malloc(nb * 4), *C1 = malloc(nc * 4), *C2 = malloc(nc * 4);
    if (!A || !B || !C1 || !C2) return 1;
    srand(1);
    for (size_t k = 0; k < na; k++) A[k] = (float)rand() / RAND_MAX - 0.5f;
    for (size_t k = 0; k < nb; k++) B[k] = (float)rand() / RAND_MAX - 0.5f;
    for (size_t k = 0; k < nc; k++) C1[k] = C2[k] = (float)rand() / RAND_MAX - 0.5f;
    Dnn d;
    char impl[128];
    if (dnn_create(&d, s, impl, sizeof impl) < 0) {
      printf("%-40s: oneDNN has no fp32 matmul\n", s->site);
      continue;
    }
    /* the same product (beta = 1 adds C's random start in both) */
    blas_run(s, A, B, C1);
    dnn_run(&d, A, B, C2);
    double err = 0, ref = 0;
    for (size_t k = 0; k < nc; k++) {
      err = fmax(err, fabs((double)C1[k] - C2[k]));
      ref = fmax(ref, fabs((double)C1[k]));
    }
    double flops = 2.0 * s->M * s->N * s->K;
    int reps = (int)(2e8 / flops);   /* about 10 ms of work per round at 20 GFLOP/s */
    if (reps < 1) reps = 1;
    if (reps > 20000) reps = 20000;
    double best[2] = {1e30, 1e30};
    for (int r = 0; r < rounds; r++)
      for (int which = 0; which < 2; which++) {
        int w = (r & 1) ? 1 - which : which;   /* alternate which goes first */
        double t0 = now();
        for (int k = 0; k < reps; k++) {
          if (w == 0) blas_run(s, A, B, C1);
          else dnn_run(&d, A, B, C2);
        }
        double t = (now() - t0) / reps;
        if (t < best[w]) best[w] = t;
      }
    printf("%-40s %5d %6d %6d %d%d %9.1f %9.1f %7.2f  %s%s\n", s->site, s->M, s->N, s->K, s->ta,
           s->tb, flops / best[0] * 1e-9, flops / best[1] * 1e-9, best[0] / best[1], impl,
           err > 1e-4 * (ref > 1 ? ref : 1) ? "  RESULTS DIFFER" : "");
    fflush(stdout);
    dnnl_primitive_destroy(d.prim);
    dnnl_memory_destroy(d.a);
    dnnl_memory_destroy(d.b);
    dnnl_memory_destroy(d.c);
    free(A); free(B); free(C1); free(C2);
  }
  dnnl_stream_destroy(stream);
  dnnl_engine_destroy(engine);
  return 0;
}
