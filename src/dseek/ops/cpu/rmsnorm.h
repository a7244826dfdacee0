// RMSNorm (transformers DeepseekV3RMSNorm, SPEC §3.1), fp32:
//   rstd[n] = 1 / sqrt(mean_j x[n, j]^2 + eps);  out[n, j] = x[n, j] * rstd[n] * w[j]
// x [N, C] with row stride ldx (>= C), out [N, C] with row stride ldo; rstd [N] may be null
// (it is saved for the backward pass).
#pragma once

#include <cstdint>

namespace dseek {

void rmsnorm_forward(float* out, int64_t ldo, float* rstd, const float* x, int64_t ldx,
                     const float* w, int64_t N, int64_t C, float eps);

}  // namespace dseek
