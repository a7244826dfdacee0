// RMSNorm (transformers DeepseekV3RMSNorm, SPEC §3.1), fp32:
//   rstd[n] = 1 / sqrt(mean_j x[n, j]^2 + eps);  out[n, j] = x[n, j] * rstd[n] * w[j]
// x [N, C] with row stride ldx (>= C), out [N, C] with row stride ldo; rstd [N] may be null
// (it is saved for the backward pass).
//
// Gradient convention (all *_backward ops in ops/cpu): parameter gradients ACCUMULATE (+=);
// activation gradients OVERWRITE (=), unless the function takes `bool accumulate` and it is true
// (then +=). A null output pointer means "not needed": that work is skipped.
#pragma once

#include <cstdint>

namespace dseek {

void rmsnorm_forward(float* out, int64_t ldo, float* rstd, const float* x, int64_t ldx,
                     const float* w, int64_t N, int64_t C, float eps);

// Backward, with r = rstd[n] saved by the forward and g[j] = dy[n, j] * w[j]:
//   dx[n, j] = r * (g[j] - x[n, j] * r^2 * (sum_k g[k] x[n, k]) / C)   (= or += per accumulate)
//   dw[j]   += sum_n dy[n, j] * x[n, j] * r[n]                          (may be null)
// Row strides: dx lddx, dy lddy, x ldx. dx may alias dy or x (same stride). fp64 row sums;
// dw is reduced from per-row-block partials in a fixed order (the same for any thread count).
void rmsnorm_backward(float* dx, int64_t lddx, float* dw, const float* dy, int64_t lddy,
                      const float* x, int64_t ldx, const float* w, const float* rstd, int64_t N,
                      int64_t C, bool accumulate = false);

}  // namespace dseek
