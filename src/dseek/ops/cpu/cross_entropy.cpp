#include "dseek/ops/cpu/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "dseek/core/error.h"
#include "dseek/ops/cpu/cpu_parallel.h"

namespace dseek {

namespace {
// Loss of one row; with d, also d = grad_scale (softmax(l) - onehot(tgt)). exp in fp32 (vector
// exp_fast), the normalizer summed in fp64. d may alias l. e is [V] scratch when d is null, so
// both paths compute the same sum.
double ce_row(float* d, const float* l, int32_t tgt, int64_t V, float grad_scale, float* e) {
  const float lt = l[tgt];  // read before an in-place overwrite
  const float mx = max_f(l, V);
  float* x = d ? d : e;
  if (x != l) std::copy(l, l + V, x);
  exp_sub_inplace(x, mx, V);  // elementwise, so x may alias l
  const double sum = sum_d(x, V);
  if (d) {
    const float f = (float)(grad_scale / sum);
#pragma omp simd
    for (int64_t v = 0; v < V; v++) d[v] *= f;
    d[tgt] -= grad_scale;
  }
  return ((double)mx - lt) + std::log(sum);
}
}  // namespace

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
  const int nt = par_threads((double)N * V, 65536.0);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    std::vector<float> e(dlogits ? 0 : V);
#pragma omp for schedule(dynamic, 16)
    for (int64_t n = 0; n < N; n++) {
      const int32_t tgt = targets[n];
      float* d = dlogits ? dlogits + n * V : nullptr;
      if (tgt < 0) {
        if (d) std::fill(d, d + V, 0.0f);
        continue;
      }
      row_loss[n] = ce_row(d, logits + n * V, tgt, V, grad_scale, e.data());
    }
  }
  double loss = 0.0;
  for (int64_t n = 0; n < N; n++) loss += row_loss[n];
  return loss;
}

}  // namespace dseek
