// Linear / GEMM on the CPU through CBLAS (OpenBLAS), with a naive reference.
#include "dseek/ops/cpu/linear.h"

#include <cblas.h>

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

}  // namespace dseek
