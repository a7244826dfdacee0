// Causal softmax attention, naive (materializes the [T, T] scores per head), fp32:
//   S[h, s, t] = scale * q[s, h, :] . k[t, h, :]   for t <= s (keys after s are skipped)
//   P = softmax_t(S);  out[s, h, :] = sum_t P[h, s, t] v[t, h, :]
// One sequence: q [T, H, Dqk], k [T, H, Dqk], v [T, H, Dv], out [T, H, Dv] (contiguous).
// probs [H, T, T] (may be null) receives P for the backward pass (zeros above the diagonal).
#pragma once

#include <cstdint>

namespace dseek {

void attention_forward(float* out, float* probs, const float* q, const float* k, const float* v,
                       int64_t T, int64_t H, int64_t Dqk, int64_t Dv, float scale);

}  // namespace dseek
