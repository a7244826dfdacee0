#include "dseek/ops/cpu/attention.h"

#include <cmath>
#include <vector>

namespace dseek {

void attention_forward(float* out, float* probs, const float* q, const float* k, const float* v,
                       int64_t T, int64_t H, int64_t Dqk, int64_t Dv, float scale) {
#pragma omp parallel
  {
    std::vector<float> p(T);
#pragma omp for collapse(2) schedule(static)
    for (int64_t h = 0; h < H; h++)
      for (int64_t s = 0; s < T; s++) {
        const float* qs = q + (s * H + h) * Dqk;
        float mx = -INFINITY;
        for (int64_t t = 0; t <= s; t++) {
          const float* kt = k + (t * H + h) * Dqk;
          float d = 0.0f;
          for (int64_t i = 0; i < Dqk; i++) d += qs[i] * kt[i];
          p[t] = d * scale;
          mx = std::max(mx, p[t]);
        }
        double sum = 0.0;
        for (int64_t t = 0; t <= s; t++) {
          p[t] = std::exp(p[t] - mx);
          sum += p[t];
        }
        float inv = (float)(1.0 / sum);
        float* o = out + (s * H + h) * Dv;
        for (int64_t i = 0; i < Dv; i++) o[i] = 0.0f;
        for (int64_t t = 0; t <= s; t++) {
          p[t] *= inv;
          const float* vt = v + (t * H + h) * Dv;
          for (int64_t i = 0; i < Dv; i++) o[i] += p[t] * vt[i];
        }
        if (probs) {
          float* pr = probs + (h * T + s) * T;
          for (int64_t t = 0; t < T; t++) pr[t] = t <= s ? p[t] : 0.0f;
        }
      }
  }
}

}  // namespace dseek
