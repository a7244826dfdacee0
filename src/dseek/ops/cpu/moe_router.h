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
//
// Gradient convention (all *_backward ops in ops/cpu): parameter gradients ACCUMULATE (+=);
// activation gradients OVERWRITE (=), unless the function takes `bool accumulate` and it is true
// (then +=). A null output pointer means "not needed": that work is skipped.
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

// Backward of the combine weights w [N, Ek] w.r.t. the router logits [N, E], through the
// selected experts idx only: the selection (top-k, groups, bias) is not differentiable and the
// V3 selection bias gets no gradient. scores [N, E] = s saved by moe_router_forward.
//   w_k = c * s_{idx_k} / (S + 1e-20), S = sum_j s_{idx_j}   if p.norm_topk (c = p.scaling)
//   w_k = c * s_{idx_k}                                      otherwise
//   => ds_{idx_j} = c (dw_j - sum_k dw_k s_{idx_k} / S') / S'  (S' = S + 1e-20), or c dw_j
// sigmoid (V3): dlogit_e = ds_e s_e (1 - s_e): zero for unselected experts.
// softmax (V2): dlogit_e = s_e (ds_e - sum_j ds_j s_j): every logit gets a gradient.
// dlogits [N, E] overwrite; dw [N, Ek] and idx [N, Ek] as the forward produced them. fp64 sums.
void moe_router_backward(float* dlogits, const float* dw, const int32_t* idx, const float* scores,
                         int64_t N, const RouterParams& p);

}  // namespace dseek
