// Feed-forward blocks of a layer (SPEC §3.6, §4):
//   dense:  y = W_down (silu(W_gate x) * (W_up x))
//   MoE:    y = sum_k w_k Expert_{idx_k}(x)  (experts in ascending id)  +  Shared(x)
// Routing is ops/cpu/moe_router. Only the chosen experts run: tokens are grouped by expert and
// each expert multiplies its group at once. Expert loads (tokens per expert) are reported so
// balancing and metrics can use them.
#pragma once

#include <cstdint>
#include <vector>

#include "dseek/model/config.h"
#include "dseek/model/weights.h"

namespace dseek {

void ffn_dense_forward(float* out, const float* x, const Tensor& gate, const Tensor& up,
                       const Tensor& down, int64_t N, int64_t C);

// x [N, C] -> out [N, C]. expert_load (may be null) receives [E] token counts.
void moe_forward(float* out, const float* x, const LayerWeights& L, const ModelConfig& c, int64_t N,
                 std::vector<int64_t>* expert_load = nullptr);

}  // namespace dseek
