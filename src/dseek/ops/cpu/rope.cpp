#include "dseek/ops/cpu/rope.h"

#include <cmath>

namespace dseek {

void rope_tables(float* cos_out, float* sin_out, const int32_t* pos, int64_t P,
                 const float* inv_freq, int64_t half, float attention_factor) {
  for (int64_t p = 0; p < P; p++)
    for (int64_t i = 0; i < half; i++) {
      float th = (float)pos[p] * inv_freq[i];
      cos_out[p * half + i] = (float)std::cos((double)th) * attention_factor;
      sin_out[p * half + i] = (float)std::sin((double)th) * attention_factor;
    }
}

void rope_forward(float* x, int64_t N, int64_t nh, int64_t ld_tok, int64_t ld_head,
                  const float* cos_t, const float* sin_t, int64_t half, bool interleaved) {
  for (int64_t n = 0; n < N; n++) {
    const float* c = cos_t + n * half;
    const float* s = sin_t + n * half;
    for (int64_t h = 0; h < nh; h++) {
      float* v = x + n * ld_tok + h * ld_head;
      for (int64_t i = 0; i < half; i++) {
        float* pa = interleaved ? &v[2 * i] : &v[i];
        float* pb = interleaved ? &v[2 * i + 1] : &v[i + half];
        float a = *pa, b = *pb;
        *pa = a * c[i] - b * s[i];
        *pb = b * c[i] + a * s[i];
      }
    }
  }
}

void rope_backward(float* dx, int64_t N, int64_t nh, int64_t ld_tok, int64_t ld_head,
                   const float* cos_t, const float* sin_t, int64_t half, bool interleaved) {
#pragma omp parallel for schedule(static) if (N * nh * half > 65536)
  for (int64_t n = 0; n < N; n++) {
    const float* c = cos_t + n * half;
    const float* s = sin_t + n * half;
    for (int64_t h = 0; h < nh; h++) {
      float* v = dx + n * ld_tok + h * ld_head;
      for (int64_t i = 0; i < half; i++) {
        float* pa = interleaved ? &v[2 * i] : &v[i];
        float* pb = interleaved ? &v[2 * i + 1] : &v[i + half];
        const float ga = *pa, gb = *pb;
        *pa = ga * c[i] + gb * s[i];
        *pb = gb * c[i] - ga * s[i];
      }
    }
  }
}

}  // namespace dseek
