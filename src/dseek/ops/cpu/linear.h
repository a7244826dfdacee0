// Linear layer, nn.Linear convention: out[n, o] = sum_i in[n, i] * W[o, i] (+ bias[o]).
// Shapes: in [N, IN], W [OUT, IN] (row-major, as stored in checkpoints), out [N, OUT].
// linear_forward uses BLAS sgemm; linear_forward_naive is the plain-loop reference (fp64 acc).
//
// Gradient convention (all *_backward ops in ops/cpu): parameter gradients ACCUMULATE (+=);
// activation gradients OVERWRITE (=), unless the function takes `bool accumulate` and it is true
// (then +=). A null output pointer means "not needed": that work is skipped.
#pragma once

#include <cstdint>
#include <vector>

namespace dseek {

void linear_forward(float* out, const float* in, const float* W, const float* bias, int64_t N,
                    int64_t IN, int64_t OUT);
void linear_forward_naive(float* out, const float* in, const float* W, const float* bias, int64_t N,
                          int64_t IN, int64_t OUT);

// out[M, N] (+)= A[M, K] * B[N, K]^T with explicit leading dims; beta = 0 overwrites, 1
// accumulates.
void gemm_nt(float* out, int64_t ldo, const float* A, int64_t lda, const float* B, int64_t ldb,
             int64_t M, int64_t N, int64_t K, float beta);
// out[M, N] (+)= A[M, K] * B[K, N]
void gemm_nn(float* out, int64_t ldo, const float* A, int64_t lda, const float* B, int64_t ldb,
             int64_t M, int64_t N, int64_t K, float beta);
// out[M, N] (+)= A[K, M]^T * B[K, N]
void gemm_tn(float* out, int64_t ldo, const float* A, int64_t lda, const float* B, int64_t ldb,
             int64_t M, int64_t N, int64_t K, float beta);

// Backward of linear_forward. dy [N, OUT]; x [N, IN]; W [OUT, IN].
//   dx [N, IN]   = dy W        (overwrite, or += if accumulate; may be null)
//   dW [OUT, IN] += dy^T x     (may be null)
//   db [OUT]     += sum_n dy   (may be null; fp64 accumulation)
// BLAS sgemm; linear_backward_naive is the plain-loop reference (fp64 accumulation).
void linear_backward(float* dx, float* dW, float* db, const float* dy, const float* x,
                     const float* W, int64_t N, int64_t IN, int64_t OUT, bool accumulate = false);
// A block of weight-gradient rows: dW[o0:o1, :] += dy[:, o0:o1]^T x over all N rows (one
// single-threaded sgemm; db[o0:o1] += column sums of dy when db is set). Callers collect the
// blocks of several weights and spread them over a team themselves; each output element is
// computed by one block, so the result does not depend on the schedule.
struct WeightGradBlock {
  float* dW;
  float* db;
  const float* dy;  // [N, OUT]
  const float* x;   // [N, IN]
  int64_t N, IN, OUT, o0, o1;
  double cost() const { return (double)(o1 - o0) * (double)IN * (double)N; }
};
// Appends the blocks (of `rows` weight rows each) of dW += dy^T x (and db += sum_n dy).
void weight_grad_blocks(std::vector<WeightGradBlock>& out, float* dW, float* db, const float* dy,
                        const float* x, int64_t N, int64_t IN, int64_t OUT, int64_t rows = 64);
void run_weight_grad_block(const WeightGradBlock& b);

void linear_backward_naive(float* dx, float* dW, float* db, const float* dy, const float* x,
                           const float* W, int64_t N, int64_t IN, int64_t OUT,
                           bool accumulate = false);

}  // namespace dseek
