#include "dseek/ops/cpu/moe_balance_loss.h"

#include <vector>

namespace dseek {

double moe_balance_loss(float* dlogits, const float* scores, const int32_t* idx, int64_t N,
                        int64_t E, int64_t K, int64_t group_T, bool sigmoid, float alpha) {
  if (alpha == 0.0f || N == 0) return 0.0;
  const int64_t n_groups = N / group_T;
  double total = 0.0;
  std::vector<double> f(E), P(E), g(E);
  for (int64_t gi = 0; gi < n_groups; gi++) {
    const int64_t t0 = gi * group_T;
    std::fill(f.begin(), f.end(), 0.0);
    std::fill(P.begin(), P.end(), 0.0);
    for (int64_t t = t0; t < t0 + group_T; t++) {
      for (int64_t k = 0; k < K; k++) f[idx[t * K + k]] += 1.0;
      const float* s = scores + t * E;
      double S = 0;
      for (int64_t e = 0; e < E; e++) S += s[e];
      for (int64_t e = 0; e < E; e++) P[e] += s[e] / S;
    }
    double l = 0;
    for (int64_t e = 0; e < E; e++) {
      f[e] *= (double)E / (K * group_T);
      P[e] /= group_T;
      l += f[e] * P[e];
    }
    total += l;
    if (!dlogits) continue;
    for (int64_t e = 0; e < E; e++) g[e] = alpha * f[e] / (group_T * (double)n_groups);
    for (int64_t t = t0; t < t0 + group_T; t++) {
      const float* s = scores + t * E;
      double S = 0, gs = 0;
      for (int64_t e = 0; e < E; e++) S += s[e];
      for (int64_t e = 0; e < E; e++) gs += g[e] * s[e] / S;
      float* d = dlogits + t * E;
      for (int64_t e = 0; e < E; e++) {
        if (sigmoid) {
          d[e] += (float)(s[e] * (1.0 - s[e]) * (g[e] - gs) / S);
        } else {  // S == 1
          d[e] += (float)(s[e] * (g[e] - gs));
        }
      }
    }
  }
  return alpha * total / n_groups;
}

}  // namespace dseek
