// Fused softmax cross-entropy over a vocabulary, row by row (numerically stable: max-subtracted,
// fp64 sum of the exponentials):
//   loss[n]     = logsumexp(logits[n, :]) - logits[n, target[n]]
//   dlogits[n]  = grad_scale * (softmax(logits[n, :]) - onehot(target[n]))
// logits [N, V]; targets [N], target < 0 = ignored row (no loss, zero gradient); a target >= V
// throws dseek::Error (checked before any work).
//
// Gradient convention (all *_backward ops in ops/cpu): parameter gradients ACCUMULATE (+=);
// activation gradients OVERWRITE (=), unless the function takes `bool accumulate` and it is true
// (then +=). A null output pointer means "not needed": that work is skipped.
#pragma once

#include <cstdint>

namespace dseek {

// Returns the SUM of the per-row losses over non-ignored rows (fp64, summed in row order).
// dlogits [N, V] (may be null: loss only) is overwritten, zero on ignored rows; it may alias
// logits (in place). *count (may be null) receives the number of non-ignored rows.
double cross_entropy_forward_backward(float* dlogits, const float* logits, const int32_t* targets,
                                      int64_t N, int64_t V, float grad_scale, int64_t* count);

}  // namespace dseek
