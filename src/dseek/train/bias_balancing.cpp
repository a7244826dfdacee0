#include "dseek/train/bias_balancing.h"

#include <algorithm>

#include "dseek/core/error.h"

namespace dseek {

void bias_balance_update(ModelWeights& w, const ModelConfig& c,
                         const std::vector<std::vector<int64_t>>& loads, float gamma) {
  if (gamma == 0.0f) return;
  for (size_t l = 0; l < loads.size() && l < w.layers.size(); l++) {
    const std::vector<int64_t>& load = loads[l];
    Tensor& b = w.layers[l].router_bias;
    if (load.empty() || b.empty()) continue;
    DSEEK_CHECK((int64_t)load.size() == b.numel(), "layer {}: {} expert loads for {} experts", l,
                load.size(), b.numel());
    double mean = 0;
    for (int64_t x : load) mean += (double)x;
    mean /= (double)load.size();
    for (size_t e = 0; e < load.size(); e++) {
      const double d = mean - (double)load[e];
      b.data[e] += d > 0 ? gamma : (d < 0 ? -gamma : 0.0f);
    }
  }
}

double max_violation(const std::vector<int64_t>& load) {
  if (load.empty()) return 0.0;
  double mean = 0, mx = 0;
  for (int64_t x : load) {
    mean += (double)x;
    mx = std::max(mx, (double)x);
  }
  mean /= (double)load.size();
  return mean > 0 ? mx / mean - 1.0 : 0.0;
}

}  // namespace dseek
