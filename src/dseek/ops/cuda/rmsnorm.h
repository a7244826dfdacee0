// RMSNorm on the GPU (mirror of ops/cpu/rmsnorm.h), bf16 storage, fp32 math:
//   h[n, j]   = x[n, j] (+ residual[n, j], rounded to bf16 and written to h_out when fused)
//   rstd[n]   = 1 / sqrt(mean_j h[n, j]^2 + eps);   out[n, j] = bf16(h[n, j] * rstd[n] * w[j])
// Backward, with r = rstd[n] and g[j] = dy[n, j] w[j]:
//   dx[n, j] = r (g[j] - h[n, j] r^2 (sum_k g[k] h[n, k]) / C)   (= or += per accumulate)
//   dw[j]   += sum_n dy[n, j] h[n, j] r[n]   (fp32; per-block partials summed in a fixed order,
//                                             so the result is the same run to run)
// Gradient convention as on the CPU: parameter gradients accumulate, activation gradients
// overwrite unless `accumulate` (the residual stream: dx += ...). Null outputs are skipped.
// x, residual, h_out share the row stride ldx; out has ldo; dx lddx; dy lddy. h_out may alias x
// (in-place residual update); dx may alias dy (same stride). w is the bf16 copy of the weight.
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <cstdint>

#include "dseek/ops/cuda/bf16.h"  // bf16_t

namespace dseek::cuda {

// out [N, C] (ldo); rstd [N] fp32 (may be null); h_out [N, C] (ldx; needed iff residual);
// x [N, C] (ldx); residual [N, C] (ldx, may be null); w [C].
void rmsnorm_forward(bf16_t* out, int64_t ldo, float* rstd, bf16_t* h_out, const bf16_t* x,
                     int64_t ldx, const bf16_t* residual, const bf16_t* w, int64_t N, int64_t C,
                     float eps, cudaStream_t stream);

// dx [N, C] (lddx, may be null); dw [C] fp32 (+=, may be null); dy [N, C] (lddy); x = the
// normalized input h [N, C] (ldx); w [C]; rstd [N] from the forward.
void rmsnorm_backward(bf16_t* dx, int64_t lddx, float* dw, const bf16_t* dy, int64_t lddy,
                      const bf16_t* x, int64_t ldx, const bf16_t* w, const float* rstd, int64_t N,
                      int64_t C, bool accumulate, cudaStream_t stream);

}  // namespace dseek::cuda
