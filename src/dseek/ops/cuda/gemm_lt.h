// GEMM through cuBLASLt: bf16 A and B, fp32 accumulation (CUBLAS_COMPUTE_32F), bf16 or fp32 D.
// Row-major, the same contract as the CPU gemm_nt / gemm_nn / gemm_tn of ops/cpu/linear.h:
//   D[M, N] = alpha * op(A) op(B) + beta * D (+ bias[N] on every row)
//   op(A) [M, K]: A stored [M, K] (trans_a false) or [K, M] (trans_a true), row stride lda
//   op(B) [K, N]: B stored [K, N] (trans_b false) or [N, K] (trans_b true), row stride ldb
// beta = 0 overwrites D (D is not read); beta = 1 accumulates into D (fp32 D: the parameter
// gradients). With a bf16 D and beta = 1, cuBLASLt rounds op(A) op(B) to bf16 before adding D
// (measured on the H100: D = bf16(bf16(prod) + D), up to one bf16 ulp from the exact sum);
// accumulate in an fp32 D where that matters. Split-K partial sums are kept in fp32 (the
// heuristic may not pick cuBLASLt's in-place bf16 reduction). The bias (may be null) has D's type
// and goes through cuBLASLt's BIAS epilogue. Degenerate shapes: M = 0 or N = 0 do nothing; K = 0
// gives D = beta * D (+ bias not allowed). Row-major is mapped onto cuBLASLt's column-major as D^T
// = op(B)^T op(A)^T (no copies). A GemmLt holds one cuBLASLt handle, a workspace, and a cache of
// plans (descriptors + the heuristic's algorithm) keyed by shape, layout, types and pointer
// alignment. One GemmLt must be used from one host thread at a time; the stream is per call.
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <cstddef>
#include <cstdint>
#include <memory>

#include "dseek/ops/cuda/bf16.h"  // bf16_t

namespace dseek::cuda {

enum class GemmOut { BF16, F32 };

struct GemmLtParams {
  void* D = nullptr;  // [M, N] row stride ldd, bf16 or fp32 per d_type
  int64_t ldd = 0;
  GemmOut d_type = GemmOut::BF16;
  const bf16_t* A = nullptr;  // [M, K] or [K, M] (trans_a)
  int64_t lda = 0;
  bool trans_a = false;
  const bf16_t* B = nullptr;  // [K, N] or [N, K] (trans_b)
  int64_t ldb = 0;
  bool trans_b = false;
  int64_t M = 0, N = 0, K = 0;
  float alpha = 1.0f, beta = 0.0f;
  const void* bias = nullptr;  // [N] of d_type (may be null)
};

class GemmLt {
 public:
  explicit GemmLt(size_t workspace_bytes = size_t(32) << 20);
  ~GemmLt();
  GemmLt(const GemmLt&) = delete;
  GemmLt& operator=(const GemmLt&) = delete;

  void run(const GemmLtParams& p, cudaStream_t stream);
  size_t plans_cached() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The three layouts of ops/cpu/linear.h (beta 0 overwrites, 1 accumulates):
//   nt: D[M, N] (+)= A[M, K] B[N, K]^T     (linear forward: x W^T)
//   nn: D[M, N] (+)= A[M, K] B[K, N]       (linear backward dx = dy W)
//   tn: D[M, N] (+)= A[K, M]^T B[K, N]     (linear backward dW = dy^T x)
void gemm_lt_nt(GemmLt& g, void* D, int64_t ldd, GemmOut d_type, const bf16_t* A, int64_t lda,
                const bf16_t* B, int64_t ldb, int64_t M, int64_t N, int64_t K, float beta,
                cudaStream_t stream);
void gemm_lt_nn(GemmLt& g, void* D, int64_t ldd, GemmOut d_type, const bf16_t* A, int64_t lda,
                const bf16_t* B, int64_t ldb, int64_t M, int64_t N, int64_t K, float beta,
                cudaStream_t stream);
void gemm_lt_tn(GemmLt& g, void* D, int64_t ldd, GemmOut d_type, const bf16_t* A, int64_t lda,
                const bf16_t* B, int64_t ldb, int64_t M, int64_t N, int64_t K, float beta,
                cudaStream_t stream);

}  // namespace dseek::cuda
