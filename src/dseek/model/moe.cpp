#include "dseek/model/moe.h"

#include <algorithm>

#include "dseek/ops/cpu/linear.h"
#include "dseek/ops/cpu/moe_router.h"
#include "dseek/ops/cpu/swiglu.h"

namespace dseek {

void ffn_dense_forward(float* out, const float* x, const Tensor& gate, const Tensor& up,
                       const Tensor& down, int64_t N, int64_t C) {
  const int64_t I = gate.dim(0);
  std::vector<float> g(N * I), u(N * I);
  linear_forward(g.data(), x, gate.ptr(), nullptr, N, C, I);
  linear_forward(u.data(), x, up.ptr(), nullptr, N, C, I);
  swiglu_forward(g.data(), g.data(), u.data(), N * I);
  linear_forward(out, g.data(), down.ptr(), nullptr, N, I, C);
}

void moe_forward(float* out, const float* x, const LayerWeights& L, const ModelConfig& c, int64_t N,
                 std::vector<int64_t>* expert_load) {
  const int64_t C = c.hidden_size, E = c.n_routed_experts, K = c.num_experts_per_tok;
  std::vector<float> logits(N * E);
  linear_forward(logits.data(), x, L.router.ptr(), nullptr, N, C, E);
  RouterParams rp{.n_experts = E,
                  .top_k = K,
                  .n_group = c.n_group,
                  .topk_group = c.topk_group,
                  .sigmoid = c.scoring == RouterScoring::SIGMOID,
                  .group_limited = c.topk_method != TopkMethod::GREEDY,
                  .norm_topk = c.norm_topk_prob,
                  .scaling = (float)c.routed_scaling_factor};
  std::vector<int32_t> idx(N * K);
  std::vector<float> w(N * K);
  moe_router_forward(idx.data(), w.data(), nullptr, logits.data(),
                     L.router_bias.empty() ? nullptr : L.router_bias.ptr(), N, rp);

  // group (token, slot) pairs by expert
  std::vector<std::vector<std::pair<int32_t, float>>> by_e(E);
  for (int64_t n = 0; n < N; n++)
    for (int64_t k = 0; k < K; k++) by_e[idx[n * K + k]].push_back({(int32_t)n, w[n * K + k]});
  if (expert_load) {
    expert_load->assign(E, 0);
    for (int64_t e = 0; e < E; e++) (*expert_load)[e] = (int64_t)by_e[e].size();
  }

  std::fill(out, out + N * C, 0.0f);
  std::vector<float> xg, g, u, y;
  for (int64_t e = 0; e < E; e++) {
    const auto& list = by_e[e];
    const int64_t ne = (int64_t)list.size();
    if (ne == 0) continue;
    const int64_t Im = L.exp_gate[e].dim(0);
    xg.resize(ne * C);
    for (int64_t i = 0; i < ne; i++)
      std::copy(x + list[i].first * C, x + (list[i].first + 1) * C, xg.data() + i * C);
    g.resize(ne * Im);
    u.resize(ne * Im);
    y.resize(ne * C);
    linear_forward(g.data(), xg.data(), L.exp_gate[e].ptr(), nullptr, ne, C, Im);
    linear_forward(u.data(), xg.data(), L.exp_up[e].ptr(), nullptr, ne, C, Im);
    swiglu_forward(g.data(), g.data(), u.data(), ne * Im);
    linear_forward(y.data(), g.data(), L.exp_down[e].ptr(), nullptr, ne, Im, C);
    for (int64_t i = 0; i < ne; i++) {
      float* o = out + list[i].first * C;
      const float wk = list[i].second;
      for (int64_t j = 0; j < C; j++) o[j] += wk * y[i * C + j];
    }
  }
  if (!L.sh_gate.empty()) {
    std::vector<float> sh(N * C);
    ffn_dense_forward(sh.data(), x, L.sh_gate, L.sh_up, L.sh_down, N, C);
    for (int64_t i = 0; i < N * C; i++) out[i] += sh[i];
  }
}

}  // namespace dseek
