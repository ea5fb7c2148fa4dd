/* Tensor linear algebra through OpenBLAS cblas_sgemm: matmul and addmm on 2-d views.
   A view whose rows or columns are unit-stride goes to sgemm as it is, with a transpose
   flag and a leading dimension; only views that are neither are copied first. */
#include "mbpo/tensor.h"
#include "mbpo/core.h"

#include <limits.h>

#include <cblas.h>

/* how sgemm reads one operand: its data, whether it is stored transposed, its leading
   dimension */
typedef struct blasmat {
  const float *data;
  int trans;    /* 0: row-major [rows x cols]; 1: row-major [cols x rows] read transposed */
  int64_t ld;
} blasmat;

/* describes the 2-d view t for sgemm; 0 when it is neither row- nor column-major */
static int layout(blasmat *m, const mbTensor *t) {
  int64_t r = t->size[0], c = t->size[1], s0 = t->stride[0], s1 = t->stride[1];
  int64_t rmin = r > 1 ? r : 1, cmin = c > 1 ? c : 1;
  m->data = mbt_data(t);
  /* row-major: unit column stride, rows at least cols apart (strides of size-1 dims are
     free, so a single row or column takes the tight leading dimension) */
  if ((c <= 1 || s1 == 1) && (r <= 1 || s0 >= cmin)) {
    m->trans = 0;
    m->ld = r <= 1 ? cmin : s0;
    return m->ld <= INT_MAX;
  }
  if ((r <= 1 || s0 == 1) && (c <= 1 || s1 >= rmin)) {
    m->trans = 1;
    m->ld = c <= 1 ? rmin : s1;
    return m->ld <= INT_MAX;
  }
  return 0;
}

static CBLAS_TRANSPOSE flag(int trans) { return trans ? CblasTrans : CblasNoTrans; }

/* c (row- or column-major) = beta * c + alpha * a @ b; shapes already checked, M, N, K > 0 */
static int gemm(mbTensor *c, const mbTensor *a, const mbTensor *b, float beta, float alpha) {
  blasmat A, B, C;
  mbTensor ta = {0}, tb = {0};
  int rc = MB_OK;
  /* operands sgemm cannot read in place are copied to contiguous temporaries */
  if (!layout(&A, a)) {
    if (mbt_contiguous(&ta, a) < 0) return MB_ERR;
    layout(&A, &ta);
  }
  if (!layout(&B, b)) {
    if (mbt_contiguous(&tb, b) < 0) { mbt_release(&ta); return MB_ERR; }
    layout(&B, &tb);
  }
  int M = (int)a->size[0], K = (int)a->size[1], N = (int)b->size[1];
  if (layout(&C, c)) {
    float *cd = mbt_data(c);
    if (!C.trans)
      cblas_sgemm(CblasRowMajor, flag(A.trans), flag(B.trans), M, N, K, alpha, A.data,
                  (int)A.ld, B.data, (int)B.ld, beta, cd, (int)C.ld);
    else /* c column-major: compute c^T = b^T @ a^T, row-major [N x M] */
      cblas_sgemm(CblasRowMajor, flag(!B.trans), flag(!A.trans), N, M, K, alpha, B.data,
                  (int)B.ld, A.data, (int)A.ld, beta, cd, (int)C.ld);
  } else {
    rc = mbu_error("addmm: output view is neither row- nor column-major");
  }
  mbt_release(&ta);
  mbt_release(&tb);
  return rc;
}

int mbt_mmShape(int64_t *size, const mbTensor *a, const mbTensor *b, const char *name) {
  char s1[160], s2[160];
  if (a->ndim != 2 || b->ndim != 2)
    return mbu_error("%s: expected 2-d tensors, got %s @ %s", name, mbt_shapeStr(a, s1, sizeof s1),
                     mbt_shapeStr(b, s2, sizeof s2));
  if (a->size[1] != b->size[0])
    return mbu_error("%s: size mismatch, %s @ %s", name, mbt_shapeStr(a, s1, sizeof s1),
                     mbt_shapeStr(b, s2, sizeof s2));
  size[0] = a->size[0];
  size[1] = b->size[1];
  return MB_OK;
}

static int addmm(mbTensor *c, const mbTensor *a, const mbTensor *b, float beta, float alpha,
                 const char *name) {
  char s1[160], s2[160], s3[160];
  if (a->ndim != 2 || b->ndim != 2 || c->ndim != 2)
    return mbu_error("%s: expected 2-d tensors, got %s @ %s into %s", name,
                     mbt_shapeStr(a, s1, sizeof s1), mbt_shapeStr(b, s2, sizeof s2),
                     mbt_shapeStr(c, s3, sizeof s3));
  if (a->size[1] != b->size[0])
    return mbu_error("%s: size mismatch, %s @ %s", name, mbt_shapeStr(a, s1, sizeof s1),
                     mbt_shapeStr(b, s2, sizeof s2));
  int64_t M = a->size[0], K = a->size[1], N = b->size[1];
  if (c->size[0] != M || c->size[1] != N)
    return mbu_error("%s: result of %s @ %s cannot be written into %s", name,
                     mbt_shapeStr(a, s1, sizeof s1), mbt_shapeStr(b, s2, sizeof s2),
                     mbt_shapeStr(c, s3, sizeof s3));
  if (M > INT_MAX || N > INT_MAX || K > INT_MAX)
    return mbu_error("%s: sizes beyond the BLAS integer range, %s @ %s", name,
                     mbt_shapeStr(a, s1, sizeof s1), mbt_shapeStr(b, s2, sizeof s2));
  if (M == 0 || N == 0) return MB_OK;
  /* nothing to multiply: c = beta * c (beta 0 clears NaN too, as sgemm does) */
  if (K == 0 || alpha == 0) {
    if (beta == 0) return mbt_fill(c, 0);
    if (beta == 1) return MB_OK;
    return mbt_binaryScalar(c, c, beta, MB_MUL);
  }
  /* c sharing storage with an input, or neither row- nor column-major: go through a
     contiguous temporary and copy back */
  blasmat C;
  if (c->storage == a->storage || c->storage == b->storage || !layout(&C, c)) {
    mbTensor t;
    if ((beta == 0 ? mbt_empty(&t, 2, c->size) : mbt_init(&t, 2, c->size)) < 0) return MB_ERR;
    if (beta != 0) mbt_copy(&t, c);
    int rc = gemm(&t, a, b, beta, alpha);
    if (rc == MB_OK) mbt_copy(c, &t);
    mbt_release(&t);
    return rc;
  }
  return gemm(c, a, b, beta, alpha);
}

int mbt_addmm(mbTensor *c, const mbTensor *a, const mbTensor *b, float beta, float alpha) {
  return addmm(c, a, b, beta, alpha, "addmm");
}

int mbt_matmul(mbTensor *c, const mbTensor *a, const mbTensor *b) {
  return addmm(c, a, b, 0.0f, 1.0f, "matmul");
}
