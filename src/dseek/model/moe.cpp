#include "dseek/model/moe.h"

#include <algorithm>

#include "dseek/ops/cpu/linear.h"
#include "dseek/ops/cpu/moe_balance_loss.h"
#include "dseek/ops/cpu/moe_router.h"
#include "dseek/ops/cpu/swiglu.h"

namespace dseek {

namespace {
RouterParams router_params(const ModelConfig& c) {
  return RouterParams{.n_experts = c.n_routed_experts,
                      .top_k = c.num_experts_per_tok,
                      .n_group = c.n_group,
                      .topk_group = c.topk_group,
                      .sigmoid = c.scoring == RouterScoring::SIGMOID,
                      .group_limited = c.topk_method != TopkMethod::GREEDY,
                      .norm_topk = c.norm_topk_prob,
                      .scaling = (float)c.routed_scaling_factor};
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// dense SwiGLU MLP

void ffn_dense_forward(float* out, const float* x, const Tensor& gate, const Tensor& up,
                       const Tensor& down, int64_t N, int64_t C, FfnActs* save) {
  const int64_t I = gate.dim(0);
  FfnActs local;
  FfnActs& a = save ? *save : local;
  a.g.resize(N * I);
  a.u.resize(N * I);
  a.a.resize(N * I);
  if (save) a.x.assign(x, x + N * C);
  linear_forward(a.g.data(), x, gate.ptr(), nullptr, N, C, I);
  linear_forward(a.u.data(), x, up.ptr(), nullptr, N, C, I);
  swiglu_forward(a.a.data(), a.g.data(), a.u.data(), N * I);
  linear_forward(out, a.a.data(), down.ptr(), nullptr, N, I, C);
}

void ffn_dense_backward(float* dx, Tensor& dgate, Tensor& dup, Tensor& ddown, const float* dout,
                        const Tensor& gate, const Tensor& up, const Tensor& down, const FfnActs& a,
                        int64_t N, int64_t C, bool accumulate) {
  const int64_t I = gate.dim(0);
  std::vector<float> da(N * I), dg(N * I), du(N * I);
  linear_backward(da.data(), ddown.ptr(), nullptr, dout, a.a.data(), down.ptr(), N, I, C);
  swiglu_backward(dg.data(), du.data(), da.data(), a.g.data(), a.u.data(), N * I);
  linear_backward(dx, dgate.ptr(), nullptr, dg.data(), a.x.data(), gate.ptr(), N, C, I, accumulate);
  linear_backward(dx, dup.ptr(), nullptr, du.data(), a.x.data(), up.ptr(), N, C, I, true);
}

// ---------------------------------------------------------------------------------------------
// MoE: router + routed experts + shared experts

void moe_forward(float* out, const float* x, const LayerWeights& L, const ModelConfig& c, int64_t N,
                 std::vector<int64_t>* expert_load, MoeActs* save, const MoeBalance* bal) {
  const int64_t C = c.hidden_size, E = c.n_routed_experts, K = c.num_experts_per_tok;
  MoeActs local;
  MoeActs& a = save ? *save : local;
  std::vector<float> logits(N * E);
  linear_forward(logits.data(), x, L.router.ptr(), nullptr, N, C, E);
  a.idx.resize(N * K);
  a.w.resize(N * K);
  a.scores.resize(N * E);
  const RouterParams rp = router_params(c);
  moe_router_forward(a.idx.data(), a.w.data(), a.scores.data(), logits.data(),
                     L.router_bias.empty() ? nullptr : L.router_bias.ptr(), N, rp);
  if (save) a.x.assign(x, x + N * C);

  // group (token, slot) pairs by expert
  a.rows.assign(E, {});
  for (int64_t n = 0; n < N; n++)
    for (int64_t k = 0; k < K; k++) a.rows[a.idx[n * K + k]].push_back((int32_t)(n * K + k));
  a.load.assign(E, 0);
  for (int64_t e = 0; e < E; e++) a.load[e] = (int64_t)a.rows[e].size();
  if (expert_load) *expert_load = a.load;
  a.balance_loss = 0.0;
  if (bal) {
    a.bal = *bal;
    const bool sig = rp.sigmoid;
    a.balance_loss += moe_balance_loss(nullptr, a.scores.data(), a.idx.data(), N, E, K, bal->T, sig,
                                       bal->seq_alpha);
    a.balance_loss +=
        moe_balance_loss(nullptr, a.scores.data(), a.idx.data(), N, E, K, N, sig, bal->aux_alpha);
  }

  std::fill(out, out + N * C, 0.0f);
  a.experts.resize(save ? E : 1);
  a.y.resize(save ? E : 1);
  for (int64_t e = 0; e < E; e++) {
    const auto& rows = a.rows[e];
    const int64_t ne = (int64_t)rows.size();
    if (ne == 0) continue;
    FfnActs& fa = a.experts[save ? e : 0];
    std::vector<float>& y = a.y[save ? e : 0];
    std::vector<float> xg(ne * C);
    for (int64_t i = 0; i < ne; i++) {
      const int64_t n = rows[i] / K;
      std::copy(x + n * C, x + (n + 1) * C, xg.data() + i * C);
    }
    y.resize(ne * C);
    ffn_dense_forward(y.data(), xg.data(), L.exp_gate[e], L.exp_up[e], L.exp_down[e], ne, C,
                      save ? &fa : nullptr);
    for (int64_t i = 0; i < ne; i++) {
      float* o = out + (rows[i] / K) * C;
      const float wk = a.w[rows[i]];
      for (int64_t j = 0; j < C; j++) o[j] += wk * y[i * C + j];
    }
  }
  if (!L.sh_gate.empty()) {
    std::vector<float> sh(N * C);
    ffn_dense_forward(sh.data(), x, L.sh_gate, L.sh_up, L.sh_down, N, C,
                      save ? &a.shared : nullptr);
    for (int64_t i = 0; i < N * C; i++) out[i] += sh[i];
  }
}

void moe_backward(float* dx, LayerWeights& G, const float* dout, const LayerWeights& L,
                  const ModelConfig& c, const MoeActs& a, int64_t N) {
  const int64_t C = c.hidden_size, E = c.n_routed_experts, K = c.num_experts_per_tok;
  std::fill(dx, dx + N * C, 0.0f);
  std::vector<float> dw(N * K, 0.0f);
  std::vector<float> dy, dxg;
  for (int64_t e = 0; e < E; e++) {
    const auto& rows = a.rows[e];
    const int64_t ne = (int64_t)rows.size();
    if (ne == 0) continue;
    const std::vector<float>& y = a.y[e];
    dy.resize(ne * C);
    for (int64_t i = 0; i < ne; i++) {  // out[n] += w * y_i
      const float* go = dout + (rows[i] / K) * C;
      const float wk = a.w[rows[i]];
      double s = 0;
      for (int64_t j = 0; j < C; j++) {
        dy[i * C + j] = wk * go[j];
        s += (double)go[j] * y[i * C + j];
      }
      dw[rows[i]] = (float)s;
    }
    dxg.resize(ne * C);
    ffn_dense_backward(dxg.data(), G.exp_gate[e], G.exp_up[e], G.exp_down[e], dy.data(),
                       L.exp_gate[e], L.exp_up[e], L.exp_down[e], a.experts[e], ne, C);
    for (int64_t i = 0; i < ne; i++) {
      float* d = dx + (rows[i] / K) * C;
      for (int64_t j = 0; j < C; j++) d[j] += dxg[i * C + j];
    }
  }
  // router: w depends on the logits through the scores of the chosen experts
  std::vector<float> dlogits(N * E);
  const RouterParams rp = router_params(c);
  moe_router_backward(dlogits.data(), dw.data(), a.idx.data(), a.scores.data(), N, rp);
  moe_balance_loss(dlogits.data(), a.scores.data(), a.idx.data(), N, E, K, a.bal.T, rp.sigmoid,
                   a.bal.seq_alpha * a.bal.grad_scale);
  moe_balance_loss(dlogits.data(), a.scores.data(), a.idx.data(), N, E, K, N, rp.sigmoid,
                   a.bal.aux_alpha * a.bal.grad_scale);
  linear_backward(dx, G.router.ptr(), nullptr, dlogits.data(), a.x.data(), L.router.ptr(), N, C, E,
                  /*accumulate=*/true);
  if (!L.sh_gate.empty())
    ffn_dense_backward(dx, G.sh_gate, G.sh_up, G.sh_down, dout, L.sh_gate, L.sh_up, L.sh_down,
                       a.shared, N, C, /*accumulate=*/true);
}

}  // namespace dseek
