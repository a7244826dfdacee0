// SwiGLU activation: out[i] = silu(gate[i]) * up[i],  silu(z) = z / (1 + exp(-z)).
// gate and up may be the two halves of one [N, 2I] buffer (pass strides).
//
// Gradient convention (all *_backward ops in ops/cpu): parameter gradients ACCUMULATE (+=);
// activation gradients OVERWRITE (=), unless the function takes `bool accumulate` and it is true
// (then +=). A null output pointer means "not needed": that work is skipped.
#pragma once

#include <cstdint>

namespace dseek {

void swiglu_forward(float* out, const float* gate, const float* up, int64_t n);
// Backward, with sig = sigmoid(g):
//   dup[i]   = dout[i] * silu(g[i])
//   dgate[i] = dout[i] * up[i] * sig * (1 + g (1 - sig))
// Both overwrite (either may be null); they must not alias gate/up/dout. sigmoid and 1 - sigmoid
// are formed from exp(-|g|), so no inf/NaN at any |g|.
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, int64_t n);

}  // namespace dseek
