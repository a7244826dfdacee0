// Fused multi-tensor AdamW on the GPU: one launch updates every tensor of a list, with the same
// formulas, op order and per-step scalars as train/adamw.h (torch.optim.AdamW, single-tensor
// path). fp32 master weights, fp32 m and v, fp32 gradients, and a bf16 copy of each updated
// weight written in the same pass (the copy the bf16 GEMMs read). At step t (1-based), lr:
//   g     = grad * grad_scale                  (grad_scale: clip_grad_norm's factor, or 1)
//   p    *= 1 - lr * wd                        (tensors with decay only)
//   m     = fma(1 - b1, g - m, m)
//   v     = fma(v, b2, (1 - b2) g g)
//   p    -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps);   p_bf16 = bf16(p)
// The scalars are formed in double and rounded to fp32 once (as the CPU AdamW does); the element
// math is fp32 with IEEE sqrt and division, so results match the CPU to the last bit or so.
// bf16 state (m_bf16 / v_bf16 set instead of m / v): the moments are read from bf16, the math
// is the same fp32, and m, v are stored rounded to bf16 (nearest even): train/adamw.h's
// AdamWConfig::state_bf16, bit for bit. 4 bytes of state per parameter instead of 8.
// Not here: the global gradient norm (a reduction; compute it and pass grad_scale).
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <cstdint>
#include <vector>

#include "dseek/ops/cuda/bf16.h"  // bf16_t

namespace dseek::cuda {

struct AdamWTensor {
  float* param = nullptr;        // [n] fp32 master weight
  float* m = nullptr;            // [n] first moment (fp32 state)
  float* v = nullptr;            // [n] second moment (fp32 state)
  const float* grad = nullptr;   // [n] gradient
  bf16_t* param_bf16 = nullptr;  // [n] bf16 copy of the updated weight (may be null)
  int64_t n = 0;
  bool decay = true;
  bf16_t* m_bf16 = nullptr;  // [n] first moment (bf16 state: set both, leave m, v null)
  bf16_t* v_bf16 = nullptr;  // [n] second moment (bf16 state)
};

struct AdamWHyper {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;
};

class AdamWMultiTensor {
 public:
  // Uploads the tensor table and the chunk map once (the list does not change between steps).
  AdamWMultiTensor(std::vector<AdamWTensor> tensors, AdamWHyper hyper);
  ~AdamWMultiTensor();
  AdamWMultiTensor(const AdamWMultiTensor&) = delete;
  AdamWMultiTensor& operator=(const AdamWMultiTensor&) = delete;

  // One update of every tensor, step number t >= 1 (torch's state["step"] after increment).
  void step(float lr, int64_t t, float grad_scale, cudaStream_t stream);

  int64_t chunks() const { return n_chunks_; }

 private:
  std::vector<AdamWTensor> tensors_;
  AdamWHyper hyper_;
  void* d_tensors_ = nullptr;  // device copy of the table
  void* d_chunks_ = nullptr;   // device chunk map
  int64_t n_chunks_ = 0;
};

}  // namespace dseek::cuda
