// MoE router: choose Ek of E experts per token and their combine weights (SPEC §4).
// DeepSeek-V3 (sigmoid, noaux_tc):
//   s = sigmoid(logits); choice = s + bias (bias only steers selection)
//   group score = sum of the top-2 choice values in each of n_group groups; keep topk_group
//   groups; experts outside them are masked to -inf; idx = top-Ek of the masked choice;
//   w = s[idx] (no bias), / (sum w + 1e-20) if norm_topk, * routed_scaling_factor.
// DeepSeek-V2 (softmax): s = softmax(logits); greedy: idx = top-Ek of s; group_limited_greedy:
//   group score = max s in the group, keep topk_group groups (others masked to 0);
//   w = s[idx] * routed_scaling_factor (never renormalized).
// Ties are broken toward the lower index. Each token's Ek choices are returned sorted by expert
// id (the order in which transformers accumulates expert outputs).
#pragma once

#include <cstdint>

namespace dseek {

struct RouterParams {
  int64_t n_experts = 0;  // E
  int64_t top_k = 0;      // Ek
  int64_t n_group = 1;
  int64_t topk_group = 1;
  bool sigmoid = true;  // V3 scoring; false = softmax (V2)
  bool group_limited = true;
  bool norm_topk = true;
  float scaling = 1.0f;
};

// logits [N, E]; bias [E] or null. Out: idx [N, Ek], w [N, Ek], scores [N, E] (s, may be null).
void moe_router_forward(int32_t* idx, float* w, float* scores, const float* logits,
                        const float* bias, int64_t N, const RouterParams& p);

}  // namespace dseek
