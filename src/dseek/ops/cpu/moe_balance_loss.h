// MoE balance losses on the router scores (DeepSeek-V3 §2.1.2 and DeepSeekMoE), CPU fp32.
// With s [N, E] the router scores (sigmoid for V3, softmax for V2) and s' = s / sum_j s_j the
// scores normalized per token (s' = s for softmax), K experts chosen per token:
//   sequence-wise (V3's complementary loss), per sequence of T tokens:
//     f_i = E / (K T) * #{t : i chosen at t},  P_i = (1/T) sum_t s'_{i,t},
//     L = alpha * mean over sequences of sum_i f_i P_i
//   expert-level (the classic auxiliary loss), the same over all N tokens as one group.
// f is a count (no gradient); the gradient flows through s' into the router logits:
//   dL/ds'_{i,t} = alpha f_i / (T n_seq) =: g_i;  sigmoid: dlogit_j = s_j (1 - s_j) (g_j - sum_i
//   g_i s'_i) / S_t softmax: dlogit_j = s_j (g_j - sum_i g_i s_i).
// A perfectly balanced router gives sum_i f_i P_i = 1 (f_i = 1, sum P_i = 1).
#pragma once

#include <cstdint>

namespace dseek {

// scores [N, E], idx [N, K]; tokens are n_seq sequences of T (N = n_seq * T); group_T = T for
// the sequence-wise loss, N for the expert-level one. Returns L; if dlogits is non-null the
// gradient is ADDED to it.
double moe_balance_loss(float* dlogits, const float* scores, const int32_t* idx, int64_t N,
                        int64_t E, int64_t K, int64_t group_T, bool sigmoid, float alpha);

}  // namespace dseek
