// Auxiliary-loss-free load balancing (DeepSeek-V3 §2.1.2). After each optimizer step, for every
// MoE layer with expert loads c_i (tokens routed to expert i over the step):
//   b_i += gamma * sign(mean_j c_j - c_i)
// on e_score_correction_bias, which only steers expert selection (never the combine weights).
// MaxVio (the report's balance measure) = max_i c_i / mean_j c_j - 1; 0 is perfect balance.
#pragma once

#include <cstdint>
#include <vector>

#include "dseek/model/config.h"
#include "dseek/model/weights.h"

namespace dseek {

// loads: per main layer ([E] for MoE layers, empty otherwise), summed over the step.
void bias_balance_update(ModelWeights& w, const ModelConfig& c,
                         const std::vector<std::vector<int64_t>>& loads, float gamma);

double max_violation(const std::vector<int64_t>& load);

}  // namespace dseek
