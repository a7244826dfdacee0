// SwiGLU activation: out[i] = silu(gate[i]) * up[i],  silu(z) = z / (1 + exp(-z)).
// gate and up may be the two halves of one [N, 2I] buffer (pass strides).
#pragma once

#include <cstdint>

namespace dseek {

void swiglu_forward(float* out, const float* gate, const float* up, int64_t n);

}  // namespace dseek
