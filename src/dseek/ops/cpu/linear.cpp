// Linear / GEMM on the CPU through CBLAS (OpenBLAS), with a naive reference.
#include "dseek/ops/cpu/linear.h"

#include <cblas.h>

#include <algorithm>
#include <vector>

namespace dseek {

void gemm_nt(float* out, int64_t ldo, const float* A, int64_t lda, const float* B, int64_t ldb,
             int64_t M, int64_t N, int64_t K, float beta) {
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B,
              (int)ldb, beta, out, (int)ldo);
}

void gemm_nn(float* out, int64_t ldo, const float* A, int64_t lda, const float* B, int64_t ldb,
             int64_t M, int64_t N, int64_t K, float beta) {
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, A, (int)lda,
              B, (int)ldb, beta, out, (int)ldo);
}

void gemm_tn(float* out, int64_t ldo, const float* A, int64_t lda, const float* B, int64_t ldb,
             int64_t M, int64_t N, int64_t K, float beta) {
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B,
              (int)ldb, beta, out, (int)ldo);
}

void linear_forward(float* out, const float* in, const float* W, const float* bias, int64_t N,
                    int64_t IN, int64_t OUT) {
  gemm_nt(out, OUT, in, IN, W, IN, N, OUT, IN, 0.0f);
  if (bias) {
    for (int64_t n = 0; n < N; n++)
      for (int64_t o = 0; o < OUT; o++) out[n * OUT + o] += bias[o];
  }
}

void linear_forward_naive(float* out, const float* in, const float* W, const float* bias, int64_t N,
                          int64_t IN, int64_t OUT) {
  for (int64_t n = 0; n < N; n++)
    for (int64_t o = 0; o < OUT; o++) {
      double acc = bias ? bias[o] : 0.0;
      for (int64_t i = 0; i < IN; i++) acc += (double)in[n * IN + i] * W[o * IN + i];
      out[n * OUT + o] = (float)acc;
    }
}

// ---- backward ------------------------------------------------------------------------------

void linear_backward(float* dx, float* dW, float* db, const float* dy, const float* x,
                     const float* W, int64_t N, int64_t IN, int64_t OUT, bool accumulate) {
  if (dx) {
    if (OUT == 0) {  // empty contraction: BLAS may leave C untouched
      if (!accumulate) std::fill(dx, dx + N * IN, 0.0f);
    } else {
      gemm_nn(dx, IN, dy, OUT, W, IN, N, IN, OUT, accumulate ? 1.0f : 0.0f);  // dx = dy W
    }
  }
  if (dW && N > 0) gemm_tn(dW, IN, dy, OUT, x, IN, OUT, IN, N, 1.0f);  // dW += dy^T x
  if (db) {
    // column blocks: each thread owns whole columns, rows summed in order (deterministic)
    constexpr int64_t kB = 256;
    const int64_t nblk = (OUT + kB - 1) / kB;
#pragma omp parallel for schedule(static) if (N * OUT > 65536)
    for (int64_t b = 0; b < nblk; b++) {
      const int64_t o0 = b * kB, o1 = std::min(OUT, o0 + kB);
      double acc[kB] = {};
      for (int64_t n = 0; n < N; n++) {
        const float* r = dy + n * OUT;
        for (int64_t o = o0; o < o1; o++) acc[o - o0] += r[o];
      }
      for (int64_t o = o0; o < o1; o++) db[o] += (float)acc[o - o0];
    }
  }
}

void linear_backward_naive(float* dx, float* dW, float* db, const float* dy, const float* x,
                           const float* W, int64_t N, int64_t IN, int64_t OUT, bool accumulate) {
  if (dx)
    for (int64_t n = 0; n < N; n++)
      for (int64_t i = 0; i < IN; i++) {
        double acc = 0.0;
        for (int64_t o = 0; o < OUT; o++) acc += (double)dy[n * OUT + o] * W[o * IN + i];
        dx[n * IN + i] = accumulate ? dx[n * IN + i] + (float)acc : (float)acc;
      }
  if (dW)
    for (int64_t o = 0; o < OUT; o++)
      for (int64_t i = 0; i < IN; i++) {
        double acc = 0.0;
        for (int64_t n = 0; n < N; n++) acc += (double)dy[n * OUT + o] * x[n * IN + i];
        dW[o * IN + i] += (float)acc;
      }
  if (db)
    for (int64_t o = 0; o < OUT; o++) {
      double acc = 0.0;
      for (int64_t n = 0; n < N; n++) acc += dy[n * OUT + o];
      db[o] += (float)acc;
    }
}

}  // namespace dseek
