// Rotary position embedding on the GPU (mirror of ops/cpu/rope.h), in place on bf16 values,
// fp32 math, fp32 cos/sin tables [N, Dr/2] (ops/cpu/rope.h rope_tables, uploaded):
//   forward : a' = a cos - b sin,   b' = b cos + a sin
//   backward: da = da' cos + db' sin, db = db' cos - da' sin   (the transposed rotation)
// interleaved = true: pairs (x[2i], x[2i+1]); false: pairs (x[i], x[i + half]).
// x holds N tokens x nh heads, each head's Dr = 2 * half rope values at x + n*ld_tok + h*ld_head
// (point x at the pe part of a head: only those values are touched).
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <cstdint>

#include "dseek/ops/cuda/bf16.h"  // bf16_t

namespace dseek::cuda {

void rope_forward(bf16_t* x, int64_t N, int64_t nh, int64_t ld_tok, int64_t ld_head,
                  const float* cos_t, const float* sin_t, int64_t half, bool interleaved,
                  cudaStream_t stream);
void rope_backward(bf16_t* dx, int64_t N, int64_t nh, int64_t ld_tok, int64_t ld_head,
                   const float* cos_t, const float* sin_t, int64_t half, bool interleaved,
                   cudaStream_t stream);

}  // namespace dseek::cuda
