// Feed-forward blocks of a layer (SPEC §3.6, §4), forward and backward:
//   dense:  y = W_down (silu(W_gate x) * (W_up x))
//   MoE:    y = sum_k w_k Expert_{idx_k}(x)  (experts in ascending id)  +  Shared(x)
// Routing is ops/cpu/moe_router. Only the chosen experts run: tokens are grouped by expert and
// each expert multiplies its group at once (no token dropping). The balance losses
// (ops/cpu/moe_balance_loss) are computed here when asked, and their gradient joins the
// router's. Gradient convention: parameter grads accumulate, dx is overwritten.
#pragma once

#include <cstdint>
#include <vector>

#include "dseek/model/config.h"
#include "dseek/model/weights.h"
#include "dseek/ops/cpu/moe_router.h"  // RouterParams

namespace dseek {

// The router settings of a config (experts, top-k, groups, scoring, normalization, scaling):
// the one mapping used by the CPU MoE, the GPU trainer and the GPU decoder.
RouterParams router_params(const ModelConfig& c);

struct FfnActs {            // one SwiGLU MLP over M rows
  std::vector<float> x;     // [M, C] input (gathered rows for an expert)
  std::vector<float> g, u;  // [M, I] gate / up projections (pre-activation)
  std::vector<float> a;     // [M, I] silu(g) * u
};

struct MoeBalance {
  float seq_alpha = 0.0f;   // complementary sequence-wise balance loss weight (V3)
  float aux_alpha = 0.0f;   // classic expert-level auxiliary loss weight
  int64_t T = 0;            // sequence length (tokens are B sequences of T)
  float grad_scale = 1.0f;  // the backward differentiates grad_scale * loss
};

struct MoeActs {
  std::vector<float> x;                    // [N, C]
  std::vector<float> scores;               // [N, E] router scores s (sigmoid / softmax)
  std::vector<int32_t> idx;                // [N, K] chosen experts (ascending per token)
  std::vector<float> w;                    // [N, K] combine weights
  std::vector<std::vector<int32_t>> rows;  // per expert: n*K + k of each routed (token, slot)
  std::vector<FfnActs> experts;            // per expert
  std::vector<std::vector<float>> y;       // per expert [ne, C] output before weighting
  FfnActs shared;
  std::vector<int64_t> load;  // [E] tokens per expert
  double balance_loss = 0.0;  // seq-wise + expert-level, already weighted by alpha
  MoeBalance bal;
};

void ffn_dense_forward(float* out, const float* x, const Tensor& gate, const Tensor& up,
                       const Tensor& down, int64_t N, int64_t C, FfnActs* save = nullptr);
void ffn_dense_backward(float* dx, Tensor& dgate, Tensor& dup, Tensor& ddown, const float* dout,
                        const Tensor& gate, const Tensor& up, const Tensor& down, const FfnActs& a,
                        int64_t N, int64_t C, bool accumulate = false);

// x [N, C] -> out [N, C]. expert_load (may be null) receives [E] token counts.
void moe_forward(float* out, const float* x, const LayerWeights& L, const ModelConfig& c, int64_t N,
                 std::vector<int64_t>* expert_load = nullptr, MoeActs* save = nullptr,
                 const MoeBalance* bal = nullptr);
void moe_backward(float* dx, LayerWeights& G, const float* dout, const LayerWeights& L,
                  const ModelConfig& c, const MoeActs& a, int64_t N);

}  // namespace dseek
