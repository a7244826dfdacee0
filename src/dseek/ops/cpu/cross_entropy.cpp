#include "dseek/ops/cpu/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "dseek/core/error.h"

namespace dseek {

double cross_entropy_forward_backward(float* dlogits, const float* logits, const int32_t* targets,
                                      int64_t N, int64_t V, float grad_scale, int64_t* count) {
  int64_t valid = 0;
  for (int64_t n = 0; n < N; n++) {  // validate before the parallel region (no throw inside)
    DSEEK_CHECK(targets[n] < V, "cross_entropy: target {} of row {} is outside the vocabulary {}",
                targets[n], n, V);
    if (targets[n] >= 0) valid++;
  }
  if (count) *count = valid;
  std::vector<double> row_loss(N, 0.0);
#pragma omp parallel for schedule(static) if (N * V > 65536)
  for (int64_t n = 0; n < N; n++) {
    const int32_t tgt = targets[n];
    const float* l = logits + n * V;
    float* d = dlogits ? dlogits + n * V : nullptr;
    if (tgt < 0) {
      if (d) std::fill(d, d + V, 0.0f);
      continue;
    }
    const float lt = l[tgt];  // read before an in-place overwrite
    const float mx = *std::max_element(l, l + V);
    double sum = 0.0;
    if (d) {  // d[v] = exp(l[v] - mx): elementwise, so d may alias l
      for (int64_t v = 0; v < V; v++) {
        d[v] = std::exp(l[v] - mx);
        sum += d[v];
      }
      const float f = (float)(grad_scale / sum);
      for (int64_t v = 0; v < V; v++) d[v] *= f;
      d[tgt] -= grad_scale;
    } else {
      for (int64_t v = 0; v < V; v++) sum += std::exp(l[v] - mx);
    }
    row_loss[n] = ((double)mx - lt) + std::log(sum);
  }
  double loss = 0.0;
  for (int64_t n = 0; n < N; n++) loss += row_loss[n];
  return loss;
}

}  // namespace dseek
