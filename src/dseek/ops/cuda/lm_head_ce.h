// LM head fused with softmax cross-entropy, in row chunks, so fp32 logits exist only for one
// chunk of R rows at a time (never [N, V] for the whole batch). Per chunk of rows (mirror of
// ops/cpu/cross_entropy.h with the head GEMMs of ops/cpu/linear.h around it):
//   logits [R, V] = h W^T                       (cuBLASLt, bf16 in, fp32 out)
//   loss[n]       = logsumexp(logits[n]) - logits[n, target[n]]     (0 on ignored rows)
//   dlogits [R, V] = grad_scale * (softmax(logits[n]) - onehot(target[n]))  (bf16; 0 if ignored)
//   dh [R, C]     = dlogits W                   (bf16, overwrite)
//   dW [V, C]    += dlogits^T h                 (fp32, accumulate: a parameter gradient)
// h [N, C] bf16 (row stride ldh), W [V, C] bf16, targets [N] int32 on the device (< 0 =
// ignored). A target >= V cannot throw from the device: that row's loss is NaN (and it gets no
// gradient); validate targets on the host. loss_rows [N] fp32 receives per-row losses; the caller
// sums them (in the same order as the CPU: cross_entropy_forward_backward returns the sum).
// dh and dW may be null (loss only: no dlogits, no backward GEMMs).
// Memory: chunk_rows * V * 6 bytes (fp32 logits + bf16 dlogits), allocated once.
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <cstdint>

#include "dseek/ops/cuda/bf16.h"     // bf16_t
#include "dseek/ops/cuda/gemm_lt.h"  // GemmLt

namespace dseek::cuda {

class LmHeadCe {
 public:
  LmHeadCe(int64_t V, int64_t chunk_rows);
  ~LmHeadCe();
  LmHeadCe(const LmHeadCe&) = delete;
  LmHeadCe& operator=(const LmHeadCe&) = delete;

  // loss_rows [N]; dh [N, C] (row stride C, may be null); dW [V, C] (+=, may be null);
  // h [N, C] (ldh); W [V, C]; targets [N].
  void forward_backward(GemmLt& g, float* loss_rows, bf16_t* dh, float* dW, const bf16_t* h,
                        int64_t ldh, const bf16_t* W, const int32_t* targets, int64_t N, int64_t C,
                        float grad_scale, cudaStream_t stream);

  int64_t chunk_rows() const { return R_; }

 private:
  int64_t V_ = 0, R_ = 0, ldl_ = 0;  // ldl_: row stride of the chunk buffers (V rounded up to 8)
  float* logits_ = nullptr;          // [R, ldl]
  bf16_t* dlogits_ = nullptr;        // [R, ldl]
};

// The fused softmax-CE on an fp32 logits block alone (the kernel between the two GEMMs):
// loss[n] and dlogits[n, :V] (bf16, row stride ldd, may be null) from logits [N, V] (ldl).
void cross_entropy_forward_backward(float* loss, bf16_t* dlogits, int64_t ldd, const float* logits,
                                    int64_t ldl, const int32_t* targets, int64_t N, int64_t V,
                                    float grad_scale, cudaStream_t stream);

}  // namespace dseek::cuda
