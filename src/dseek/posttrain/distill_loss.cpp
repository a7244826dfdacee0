#include "dseek/posttrain/distill_loss.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "dseek/core/error.h"
#include "dseek/ops/cpu/cpu_parallel.h"

namespace dseek {

namespace {
// log-softmax of x / tau into out (fp64 sums)
void log_softmax(double* out, const float* x, int64_t V, double tau) {
  double mx = x[0];
  for (int64_t v = 1; v < V; v++) mx = std::max(mx, (double)x[v]);
  double s = 0;
  for (int64_t v = 0; v < V; v++) s += std::exp((x[v] - mx) / tau);
  const double lse = std::log(s);
  for (int64_t v = 0; v < V; v++) out[v] = (x[v] - mx) / tau - lse;
}
}  // namespace

DistillStats distill_forward_backward(float* s, const float* t, const int32_t* targets, int64_t N,
                                      int64_t V, float alpha, float tau, float scale) {
  DSEEK_CHECK(alpha >= 0.0f && alpha <= 1.0f, "distill: alpha must be in [0, 1], got {}", alpha);
  DSEEK_CHECK(tau > 0.0f, "distill: temperature must be > 0, got {}", tau);
  for (int64_t n = 0; n < N; n++)
    DSEEK_CHECK(targets[n] < V, "distill: target {} of row {} outside the vocabulary {}",
                targets[n], n, V);
  std::vector<double> ce(N, 0.0), kl(N, 0.0);
  const int nt = par_threads((double)N * V * 4, 65536.0);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    std::vector<double> ls(V), lsT(V), lqS(V), lqT(V);
#pragma omp for schedule(dynamic, 8)
    for (int64_t n = 0; n < N; n++) {
      float* x = s + n * V;
      const int32_t tgt = targets[n];
      if (tgt < 0) {
        std::fill(x, x + V, 0.0f);
        continue;
      }
      log_softmax(ls.data(), x, V, 1.0);
      log_softmax(lqS.data(), x, V, tau);
      log_softmax(lqT.data(), t + n * V, V, tau);
      ce[n] = -ls[tgt];
      double k = 0;
      for (int64_t v = 0; v < V; v++) k += std::exp(lqT[v]) * (lqT[v] - lqS[v]);
      kl[n] = (double)tau * tau * k;
      for (int64_t v = 0; v < V; v++) {
        double g = (1.0 - alpha) * (std::exp(ls[v]) - (v == tgt ? 1.0 : 0.0)) +
                   alpha * tau * (std::exp(lqS[v]) - std::exp(lqT[v]));
        x[v] = (float)(scale * g);
      }
    }
  }
  DistillStats st;
  for (int64_t n = 0; n < N; n++)
    if (targets[n] >= 0) {
      st.ce_sum += ce[n];
      st.kl_sum += kl[n];
      st.rows++;
    }
  return st;
}

}  // namespace dseek
