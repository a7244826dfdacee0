#include "dseek/ops/cpu/swiglu.h"

#include <cmath>

namespace dseek {

void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) {
    const float g = gate[i];
    const float e = std::exp(-std::fabs(g));  // in (0, 1]: never overflows
    const float inv = 1.0f / (1.0f + e);
    const float sig = g >= 0.0f ? inv : e * inv;  // sigmoid(g)
    const float oms = g >= 0.0f ? e * inv : inv;  // 1 - sigmoid(g), without cancellation
    if (dup) dup[i] = dout[i] * (g * sig);
    if (dgate) dgate[i] = dout[i] * up[i] * (sig * (1.0f + g * oms));
  }
}

}  // namespace dseek
