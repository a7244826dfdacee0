// Per-token log-probabilities and entropies from logits, and the gradient of any loss written
// in terms of those log-probs (the building block of RL objectives and distillation):
//   lse[n]     = logsumexp(logits[n, :])
//   logp[n]    = logits[n, target[n]] - lse[n]
//   entropy[n] = -sum_v p[n, v] log p[n, v] = lse[n] - sum_v p[n, v] logits[n, v]
//   backward:  dlogits[n, :] = dlogp[n] * (onehot(target[n]) - softmax(logits[n, :]))
// Rows with target < 0 are ignored: logp = entropy = 0, gradient 0. exp in fp32 (exp_fast), the
// sums in fp64. Same numerics as cross_entropy.h (logp = -CE for the row).
#pragma once

#include <cstdint>

namespace dseek {

// logits [N, V], targets [N]; logp, entropy [N] (entropy may be null). Throws dseek::Error if a
// target >= V (checked before any work).
void token_logprobs(float* logp, float* entropy, const float* logits, const int32_t* targets,
                    int64_t N, int64_t V);

// In place: logits_to_dlogits [N, V] holds the logits on entry and dloss/dlogits on return,
// given dlogp [N] = dloss/dlogp per row (a 0 row costs the same; ignored rows become 0).
void token_logprobs_backward(float* logits_to_dlogits, const int32_t* targets, const float* dlogp,
                             int64_t N, int64_t V);

}  // namespace dseek
