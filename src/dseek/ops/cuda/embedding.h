// Token embedding on the GPU (mirror of ops/cpu/embedding.h):
//   forward : out[n, :] = table[ids[n], :]          (bf16 -> bf16, a copy)
//   backward: dtable[ids[n], :] += dout[n, :]        (fp32 gradient, bf16 dout)
// table [V, C] bf16, ids [N] int32 on the device, out / dout [N, C]. An id outside [0, V) cannot
// throw from the device: the forward writes a row of NaN (loud downstream) and the backward
// skips the row; validate ids on the host where they come from.
// The backward adds with fp32 atomics: repeated ids sum in an unspecified order (the result can
// differ run to run in the last bits when an id repeats; unique ids are exact and deterministic).
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <cstdint>

#include "dseek/ops/cuda/bf16.h"  // bf16_t

namespace dseek::cuda {

void embedding_forward(bf16_t* out, const bf16_t* table, const int32_t* ids, int64_t N, int64_t C,
                       int64_t V, cudaStream_t stream);
void embedding_backward(float* dtable, const bf16_t* dout, const int32_t* ids, int64_t N, int64_t C,
                        int64_t V, cudaStream_t stream);

}  // namespace dseek::cuda
