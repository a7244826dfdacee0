// SwiGLU on the GPU (mirror of ops/cpu/swiglu.h), bf16 storage, fp32 math:
//   out[n, i] = silu(gate[n, i]) * up[n, i],   silu(z) = z sigmoid(z)
//   backward, sig = sigmoid(g):  dup = dout silu(g);  dgate = dout up sig (1 + g (1 - sig))
// Rows: gate and up [N, I] with row stride ld_in (the two halves of one [N, 2I] GEMM output:
// ld_in = 2I, up = gate + I); out and dout [N, I] with stride ld_out. dgate and dup share the
// layout of gate and up (ld_in). Outputs overwrite; dgate or dup may be null. sig and 1 - sig
// come from exp(-|g|), so no inf/NaN at any |g|.
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <cstdint>

#include "dseek/ops/cuda/bf16.h"  // bf16_t

namespace dseek::cuda {

void swiglu_forward(bf16_t* out, int64_t ld_out, const bf16_t* gate, const bf16_t* up,
                    int64_t ld_in, int64_t N, int64_t I, cudaStream_t stream);
void swiglu_backward(bf16_t* dgate, bf16_t* dup, int64_t ld_in, const bf16_t* dout, int64_t ld_out,
                     const bf16_t* gate, const bf16_t* up, int64_t N, int64_t I,
                     cudaStream_t stream);

}  // namespace dseek::cuda
