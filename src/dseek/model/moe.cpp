// Threading: the routed experts, the shared experts and a dense MLP are cut into tasks of at most
// kRowChunk rows (row-local: gather, gate/up, SwiGLU, down) that one `omp for` spreads over the
// team, each task calling single-threaded sgemm. The backward has a second pass of
// weight-gradient tasks (kWRows rows of one weight over all of its rows) after a barrier. The
// cut is a fixed function of the shapes and each output element is computed by one task, so
// results are the same for any thread count; the combine sums each token's experts in
// ascending id, as the sequential code did.
#include "dseek/model/moe.h"

#include <algorithm>

#include "dseek/ops/cpu/cpu_parallel.h"
#include "dseek/ops/cpu/linear.h"
#include "dseek/ops/cpu/moe_balance_loss.h"
#include "dseek/ops/cpu/moe_router.h"
#include "dseek/ops/cpu/swiglu.h"

namespace dseek {

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

namespace {

constexpr int64_t kRowChunk = 256;  // rows per row-local task
constexpr int64_t kWRows = 64;      // weight rows per weight-gradient task
constexpr double kParFlops = 2e6;   // below this a whole FFN runs on the calling thread

struct Mlp {  // gate, up [I, C]; down [C, I]
  const float *gate, *up, *down;
  int64_t I;
};
Mlp mlp_of(const Tensor& gate, const Tensor& up, const Tensor& down) {
  return Mlp{gate.ptr(), up.ptr(), down.ptr(), gate.dim(0)};
}

// nr rows: x [nr, C] -> g, u, a [nr, I], y [nr, C]
void mlp_rows_forward(float* y, float* g, float* u, float* a, const float* x, const Mlp& w,
                      int64_t nr, int64_t C) {
  linear_forward(g, x, w.gate, nullptr, nr, C, w.I);
  linear_forward(u, x, w.up, nullptr, nr, C, w.I);
  swiglu_forward(a, g, u, nr * w.I);
  linear_forward(y, a, w.down, nullptr, nr, w.I, C);
}

// nr rows, activation side: dy [nr, C] -> dg, du [nr, I]; dx [nr, C] (overwrite or +=)
void mlp_rows_backward(float* dx, float* dg, float* du, const float* dy, const float* g,
                       const float* u, const Mlp& w, int64_t nr, int64_t C, bool accumulate) {
  thread_local std::vector<float> da;
  if ((int64_t)da.size() < nr * w.I) da.resize(nr * w.I);
  linear_backward(da.data(), nullptr, nullptr, dy, nullptr, w.down, nr, w.I, C);
  swiglu_backward(dg, du, da.data(), g, u, nr * w.I);
  linear_backward(dx, nullptr, nullptr, dg, nullptr, w.gate, nr, C, w.I, accumulate);
  linear_backward(dx, nullptr, nullptr, du, nullptr, w.up, nr, C, w.I, true);
}

void add_mlp_wtasks(std::vector<WeightGradBlock>& ts, Tensor& dgate, Tensor& dup, Tensor& ddown,
                    const float* dy, const float* dg, const float* du, const float* x,
                    const float* a, int64_t N, int64_t C, int64_t I) {
  weight_grad_blocks(ts, ddown.ptr(), nullptr, dy, a, N, I, C, kWRows);  // ddown [C, I] += dy^T a
  weight_grad_blocks(ts, dgate.ptr(), nullptr, dg, x, N, C, I, kWRows);  // dgate [I, C] += dg^T x
  weight_grad_blocks(ts, dup.ptr(), nullptr, du, x, N, C, I, kWRows);    // dup   [I, C] += du^T x
}
double wtask_cost(const WeightGradBlock& t) {
  return t.cost();
}

struct RTask {  // rows [r0, r1) of expert e (e < 0: the shared experts / a dense MLP)
  int64_t e, r0, r1;
};
void add_rtasks(std::vector<RTask>& ts, int64_t e, int64_t n) {
  for (int64_t r0 = 0; r0 < n; r0 += kRowChunk) ts.push_back({e, r0, std::min(n, r0 + kRowChunk)});
}

template <class T, class F>
void sort_by_cost_desc(std::vector<T>& ts, F cost) {  // largest first: a good dynamic schedule
  std::stable_sort(ts.begin(), ts.end(), [&](const T& a, const T& b) { return cost(a) > cost(b); });
}

std::vector<float>& tls_buf(int which, size_t n) {  // per-thread scratch, grown on demand
  thread_local std::vector<float> bufs[4];
  if (bufs[which].size() < n) bufs[which].resize(n);
  return bufs[which];
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// dense SwiGLU MLP

void ffn_dense_forward(float* out, const float* x, const Tensor& gate, const Tensor& up,
                       const Tensor& down, int64_t N, int64_t C, FfnActs* save) {
  const Mlp w = mlp_of(gate, up, down);
  const int64_t I = w.I;
  thread_local FfnActs cache;  // without save: buffers kept between calls
  FfnActs& a = save ? *save : cache;
  a.g.resize(N * I);
  a.u.resize(N * I);
  a.a.resize(N * I);
  if (save) a.x.assign(x, x + N * C);
  const int64_t nchunks = (N + kRowChunk - 1) / kRowChunk;
  const int nt = par_threads(6.0 * N * C * I, kParFlops);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
  for (int64_t c = 0; c < nchunks; c++) {
    const int64_t r0 = c * kRowChunk, nr = std::min(N, r0 + kRowChunk) - r0;
    mlp_rows_forward(out + r0 * C, a.g.data() + r0 * I, a.u.data() + r0 * I, a.a.data() + r0 * I,
                     x + r0 * C, w, nr, C);
  }
}

void ffn_dense_backward(float* dx, Tensor& dgate, Tensor& dup, Tensor& ddown, const float* dout,
                        const Tensor& gate, const Tensor& up, const Tensor& down, const FfnActs& a,
                        int64_t N, int64_t C, bool accumulate) {
  const Mlp w = mlp_of(gate, up, down);
  const int64_t I = w.I;
  float* dg = tls_buf(0, N * I).data();
  float* du = tls_buf(1, N * I).data();
  std::vector<WeightGradBlock> wt;
  add_mlp_wtasks(wt, dgate, dup, ddown, dout, dg, du, a.x.data(), a.a.data(), N, C, I);
  sort_by_cost_desc(wt, wtask_cost);
  const int64_t nchunks = (N + kRowChunk - 1) / kRowChunk, nw = (int64_t)wt.size();
  const int nt = par_threads(12.0 * N * C * I, kParFlops);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
#pragma omp for schedule(dynamic, 1)
    for (int64_t c = 0; c < nchunks; c++) {
      const int64_t r0 = c * kRowChunk, nr = std::min(N, r0 + kRowChunk) - r0;
      mlp_rows_backward(dx + r0 * C, dg + r0 * I, du + r0 * I, dout + r0 * C, a.g.data() + r0 * I,
                        a.u.data() + r0 * I, w, nr, C, accumulate);
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < nw; i++) run_weight_grad_block(wt[i]);
  }
}

// ---------------------------------------------------------------------------------------------
// MoE: router + routed experts + shared experts

void moe_forward(float* out, const float* x, const LayerWeights& L, const ModelConfig& c, int64_t N,
                 std::vector<int64_t>* expert_load, MoeActs* save, const MoeBalance* bal) {
  const int64_t C = c.hidden_size, E = c.n_routed_experts, K = c.num_experts_per_tok;
  thread_local MoeActs cache;  // without save: buffers kept between calls
  MoeActs& a = save ? *save : cache;
  std::vector<float>& logits = tls_buf(0, N * E);
  linear_forward(logits.data(), x, L.router.ptr(), nullptr, N, C, E);
  a.idx.resize(N * K);
  a.w.resize(N * K);
  a.scores.resize(N * E);
  const RouterParams rp = router_params(c);
  moe_router_forward(a.idx.data(), a.w.data(), a.scores.data(), logits.data(),
                     L.router_bias.empty() ? nullptr : L.router_bias.ptr(), N, rp);
  if (save) a.x.assign(x, x + N * C);

  // group (token, slot) pairs by expert; pos[n*K + k] = the pair's row in its expert's group
  a.rows.resize(E);
  for (auto& r : a.rows) r.clear();
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
  std::vector<int32_t> pos(N * K);
  for (int64_t e = 0; e < E; e++)
    for (size_t i = 0; i < a.rows[e].size(); i++) pos[a.rows[e][i]] = (int32_t)i;

  // activations of every expert, and the row tasks
  a.experts.resize(E);
  a.y.resize(E);
  std::vector<RTask> tasks;
  double flops = 0.0;
  for (int64_t e = 0; e < E; e++) {
    const int64_t ne = a.load[e], I = L.exp_gate[e].dim(0);
    FfnActs& fa = a.experts[e];
    fa.x.resize(ne * C);
    fa.g.resize(ne * I);
    fa.u.resize(ne * I);
    fa.a.resize(ne * I);
    a.y[e].resize(ne * C);
    add_rtasks(tasks, e, ne);
    flops += 6.0 * ne * C * I;
  }
  const bool shared = !L.sh_gate.empty();
  float* shy = nullptr;
  if (shared) {
    const int64_t I = L.sh_gate.dim(0);
    a.shared.g.resize(N * I);
    a.shared.u.resize(N * I);
    a.shared.a.resize(N * I);
    if (save) a.shared.x.assign(x, x + N * C);
    shy = tls_buf(1, N * C).data();
    add_rtasks(tasks, -1, N);
    flops += 6.0 * N * C * I;
  }
  sort_by_cost_desc(tasks, [](const RTask& t) { return t.r1 - t.r0; });
  const int64_t ntasks = (int64_t)tasks.size();
  const int nt = par_threads(flops, kParFlops);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < ntasks; i++) {
      const RTask& t = tasks[i];
      const int64_t nr = t.r1 - t.r0;
      if (t.e < 0) {
        const Mlp w = mlp_of(L.sh_gate, L.sh_up, L.sh_down);
        FfnActs& sa = a.shared;
        mlp_rows_forward(shy + t.r0 * C, sa.g.data() + t.r0 * w.I, sa.u.data() + t.r0 * w.I,
                         sa.a.data() + t.r0 * w.I, x + t.r0 * C, w, nr, C);
        continue;
      }
      const Mlp w = mlp_of(L.exp_gate[t.e], L.exp_up[t.e], L.exp_down[t.e]);
      FfnActs& fa = a.experts[t.e];
      const std::vector<int32_t>& rows = a.rows[t.e];
      float* xg = fa.x.data() + t.r0 * C;
      for (int64_t i2 = t.r0; i2 < t.r1; i2++) {
        const float* src = x + (rows[i2] / K) * C;
        std::copy(src, src + C, xg + (i2 - t.r0) * C);
      }
      mlp_rows_forward(a.y[t.e].data() + t.r0 * C, fa.g.data() + t.r0 * w.I,
                       fa.u.data() + t.r0 * w.I, fa.a.data() + t.r0 * w.I, xg, w, nr, C);
    }
    // out[n] = sum_k w_k y_k (ascending expert) + shared(x)[n]
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) {
      float* o = out + n * C;
      std::fill(o, o + C, 0.0f);
      for (int64_t k = 0; k < K; k++) {
        const float* y = a.y[a.idx[n * K + k]].data() + (int64_t)pos[n * K + k] * C;
        const float wk = a.w[n * K + k];
        for (int64_t j = 0; j < C; j++) o[j] += wk * y[j];
      }
      if (shy)
        for (int64_t j = 0; j < C; j++) o[j] += shy[n * C + j];
    }
  }
}

void moe_backward(float* dx, LayerWeights& G, const float* dout, const LayerWeights& L,
                  const ModelConfig& c, const MoeActs& a, int64_t N) {
  const int64_t C = c.hidden_size, E = c.n_routed_experts, K = c.num_experts_per_tok;
  // per expert: dy [ne, C], dg / du [ne, I], dxg [ne, C] at offsets in shared buffers
  std::vector<int64_t> offC(E + 1, 0), offI(E + 1, 0);
  for (int64_t e = 0; e < E; e++) {
    offC[e + 1] = offC[e] + a.load[e] * C;
    offI[e + 1] = offI[e] + a.load[e] * L.exp_gate[e].dim(0);
  }
  const bool shared = !L.sh_gate.empty();
  const int64_t Is = shared ? L.sh_gate.dim(0) : 0;
  float* dy = tls_buf(0, offC[E] + N * C).data();  // experts, then the shared dx
  float* dxg = tls_buf(1, offC[E]).data();
  float* dg = tls_buf(2, offI[E] + N * Is).data();  // experts, then the shared experts
  float* du = tls_buf(3, offI[E] + N * Is).data();
  float* dxs = dy + offC[E];
  std::vector<float> dw(N * K, 0.0f);
  std::vector<int32_t> pos(N * K);
  for (int64_t e = 0; e < E; e++)
    for (size_t i = 0; i < a.rows[e].size(); i++) pos[a.rows[e][i]] = (int32_t)i;

  std::vector<RTask> tasks;
  std::vector<WeightGradBlock> wt;
  double flops = 0.0;
  for (int64_t e = 0; e < E; e++) {
    const int64_t ne = a.load[e], I = L.exp_gate[e].dim(0);
    add_rtasks(tasks, e, ne);
    const FfnActs& fa = a.experts[e];
    add_mlp_wtasks(wt, G.exp_gate[e], G.exp_up[e], G.exp_down[e], dy + offC[e], dg + offI[e],
                   du + offI[e], fa.x.data(), fa.a.data(), ne, C, I);
    flops += 12.0 * ne * C * I;
  }
  if (shared) {
    add_rtasks(tasks, -1, N);
    add_mlp_wtasks(wt, G.sh_gate, G.sh_up, G.sh_down, dout, dg + offI[E], du + offI[E],
                   a.shared.x.data(), a.shared.a.data(), N, C, Is);
    flops += 12.0 * N * C * Is;
  }
  sort_by_cost_desc(tasks, [](const RTask& t) { return t.r1 - t.r0; });
  sort_by_cost_desc(wt, wtask_cost);
  const int64_t ntasks = (int64_t)tasks.size(), nw = (int64_t)wt.size();
  const int nt = par_threads(flops, kParFlops);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < ntasks; i++) {
      const RTask& t = tasks[i];
      const int64_t nr = t.r1 - t.r0;
      if (t.e < 0) {
        const Mlp w = mlp_of(L.sh_gate, L.sh_up, L.sh_down);
        mlp_rows_backward(dxs + t.r0 * C, dg + offI[E] + t.r0 * Is, du + offI[E] + t.r0 * Is,
                          dout + t.r0 * C, a.shared.g.data() + t.r0 * Is,
                          a.shared.u.data() + t.r0 * Is, w, nr, C, false);
        continue;
      }
      const Mlp w = mlp_of(L.exp_gate[t.e], L.exp_up[t.e], L.exp_down[t.e]);
      const FfnActs& fa = a.experts[t.e];
      const std::vector<int32_t>& rows = a.rows[t.e];
      const std::vector<float>& y = a.y[t.e];
      float* dye = dy + offC[t.e] + t.r0 * C;
      for (int64_t i2 = t.r0; i2 < t.r1; i2++) {  // out[n] += w * y_i
        const float* go = dout + (rows[i2] / K) * C;
        const float wk = a.w[rows[i2]];
        const float* yi = y.data() + i2 * C;
        float* d = dye + (i2 - t.r0) * C;
        for (int64_t j = 0; j < C; j++) d[j] = wk * go[j];
        dw[rows[i2]] = (float)dot_d(go, yi, C);
      }
      mlp_rows_backward(dxg + offC[t.e] + t.r0 * C, dg + offI[t.e] + t.r0 * w.I,
                        du + offI[t.e] + t.r0 * w.I, dye, fa.g.data() + t.r0 * w.I,
                        fa.u.data() + t.r0 * w.I, w, nr, C, false);
    }
    // weight gradients, and dx[n] = sum_k dxg (ascending expert) + shared dx
#pragma omp for schedule(dynamic, 1) nowait
    for (int64_t i = 0; i < nw; i++) run_weight_grad_block(wt[i]);
#pragma omp for schedule(dynamic, 64)
    for (int64_t n = 0; n < N; n++) {
      float* d = dx + n * C;
      std::fill(d, d + C, 0.0f);
      for (int64_t k = 0; k < K; k++) {
        const int64_t e = a.idx[n * K + k];
        const float* g = dxg + offC[e] + (int64_t)pos[n * K + k] * C;
        for (int64_t j = 0; j < C; j++) d[j] += g[j];
      }
      if (shared)
        for (int64_t j = 0; j < C; j++) d[j] += dxs[n * C + j];
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
}

}  // namespace dseek
