#include "dseek/ops/cpu/token_logprobs.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "dseek/core/error.h"
#include "dseek/ops/cpu/cpu_parallel.h"

namespace dseek {

namespace {
void check_targets(const int32_t* targets, int64_t N, int64_t V) {
  for (int64_t n = 0; n < N; n++)
    DSEEK_CHECK(targets[n] < V, "token_logprobs: target {} of row {} is outside the vocabulary {}",
                targets[n], n, V);
}
}  // namespace

void token_logprobs(float* logp, float* entropy, const float* logits, const int32_t* targets,
                    int64_t N, int64_t V) {
  check_targets(targets, N, V);
  const int nt = par_threads((double)N * V, 65536.0);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    std::vector<float> e(V);
#pragma omp for schedule(dynamic, 16)
    for (int64_t n = 0; n < N; n++) {
      const int32_t tgt = targets[n];
      if (tgt < 0) {
        logp[n] = 0.0f;
        if (entropy) entropy[n] = 0.0f;
        continue;
      }
      const float* l = logits + n * V;
      const float mx = max_f(l, V);
      std::copy(l, l + V, e.data());
      exp_sub_inplace(e.data(), mx, V);
      const double sum = sum_d(e.data(), V);
      const double lse = (double)mx + std::log(sum);
      logp[n] = (float)((double)l[tgt] - lse);
      if (entropy) {
        double px = 0.0;  // sum_v p_v * logits_v
        for (int64_t v = 0; v < V; v++) px += (double)e[v] * l[v];
        entropy[n] = (float)(lse - px / sum);
      }
    }
  }
}

void token_logprobs_backward(float* d, const int32_t* targets, const float* dlogp, int64_t N,
                             int64_t V) {
  check_targets(targets, N, V);
  const int nt = par_threads((double)N * V, 65536.0);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(dynamic, 16)
  for (int64_t n = 0; n < N; n++) {
    float* x = d + n * V;
    const int32_t tgt = targets[n];
    if (tgt < 0) {
      std::fill(x, x + V, 0.0f);
      continue;
    }
    const float mx = max_f(x, V);
    exp_sub_inplace(x, mx, V);
    const double sum = sum_d(x, V);
    const float f = (float)(-(double)dlogp[n] / sum);  // -g * softmax
#pragma omp simd
    for (int64_t v = 0; v < V; v++) x[v] *= f;
    x[tgt] += dlogp[n];  // + g * onehot
  }
}

}  // namespace dseek
