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

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                        const float* k, const float* v, const float* probs, int64_t T, int64_t H,
                        int64_t Dqk, int64_t Dv, float scale) {
  if (T <= 0 || H <= 0 || (!dq && !dk && !dv)) return;
  std::vector<double> D(H * T);  // D[h, s] = sum_t P dP
  auto dot = [](const float* a, const float* b, int64_t n) {
    float d = 0.0f;
    for (int64_t i = 0; i < n; i++) d += a[i] * b[i];
    return d;
  };
  // pass 1, rows: D and dq
#pragma omp parallel
  {
    std::vector<float> dp(T);
#pragma omp for collapse(2) schedule(static)
    for (int64_t h = 0; h < H; h++)
      for (int64_t s = 0; s < T; s++) {
        const float* pr = probs + (h * T + s) * T;
        const float* gs = dout + (s * H + h) * Dv;
        double acc = 0.0;
        for (int64_t t = 0; t <= s; t++) {
          dp[t] = dot(gs, v + (t * H + h) * Dv, Dv);
          acc += (double)pr[t] * dp[t];
        }
        D[h * T + s] = acc;
        if (!dq) continue;
        float* o = dq + (s * H + h) * Dqk;
        for (int64_t i = 0; i < Dqk; i++) o[i] = 0.0f;
        for (int64_t t = 0; t <= s; t++) {
          const float ds = pr[t] * (float)(dp[t] - acc) * scale;
          const float* kt = k + (t * H + h) * Dqk;
          for (int64_t i = 0; i < Dqk; i++) o[i] += ds * kt[i];
        }
      }
  }
  if (!dk && !dv) return;
    // pass 2, columns: dk and dv
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t h = 0; h < H; h++)
    for (int64_t t = 0; t < T; t++) {
      const float* vt = v + (t * H + h) * Dv;
      float* ok = dk ? dk + (t * H + h) * Dqk : nullptr;
      float* ov = dv ? dv + (t * H + h) * Dv : nullptr;
      if (ok)
        for (int64_t i = 0; i < Dqk; i++) ok[i] = 0.0f;
      if (ov)
        for (int64_t i = 0; i < Dv; i++) ov[i] = 0.0f;
      for (int64_t s = t; s < T; s++) {
        const float p = probs[(h * T + s) * T + t];
        const float* gs = dout + (s * H + h) * Dv;
        if (ov)
          for (int64_t i = 0; i < Dv; i++) ov[i] += p * gs[i];
        if (ok) {
          const float ds = p * (float)(dot(gs, vt, Dv) - D[h * T + s]) * scale;
          const float* qs = q + (s * H + h) * Dqk;
          for (int64_t i = 0; i < Dqk; i++) ok[i] += ds * qs[i];
        }
      }
    }
}

}  // namespace dseek
