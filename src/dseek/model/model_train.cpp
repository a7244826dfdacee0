#include "dseek/model/model_train.h"

#include <algorithm>

#include "dseek/ops/cpu/cpu_parallel.h"
#include "dseek/ops/cpu/cross_entropy.h"
#include "dseek/ops/cpu/token_logprobs.h"
#include "dseek/ops/cpu/embedding.h"
#include "dseek/ops/cpu/linear.h"
#include "dseek/ops/cpu/rmsnorm.h"
#include "dseek/ops/cpu/rope.h"

namespace dseek {

namespace {

// Per-thread scratch of the calling thread, grown on demand (no allocation, memset or page
// faults per step). Slots are distinct per use below.
std::vector<float>& scratch(int slot, size_t n) {
  thread_local std::vector<float> bufs[8];
  if (bufs[slot].size() < n) bufs[slot].resize(n);
  return bufs[slot];
}

// h[i] += y[i], over the team when large (elementwise: the same for any thread count)
void add_inplace(float* h, const float* y, int64_t n) {
  const int nt = par_threads((double)n, 262144.0);
#pragma omp parallel for simd schedule(static) num_threads(nt) if (nt > 1)
  for (int64_t i = 0; i < n; i++) h[i] += y[i];
}

// ---------------------------------------------------------------------------------------------
// one decoder layer: h += MLA(RMSNorm(h)); h += FFN(RMSNorm(h))

void layer_train_forward(std::vector<float>& h, const LayerWeights& L, const ModelConfig& cfg,
                         bool moe, int64_t B, int64_t T, const float* cos_t, const float* sin_t,
                         LayerActs& la, const TrainOptions& opt, std::vector<int64_t>* load,
                         double* balance_loss) {
  const int64_t C = cfg.hidden_size, N = B * T;
  const float eps = (float)cfg.rms_norm_eps;
  float* y = scratch(0, N * C).data();
  la.h_in = h;
  la.x1.resize(N * C);
  la.rstd1.resize(N);
  rmsnorm_forward(la.x1.data(), C, la.rstd1.data(), h.data(), C, L.attn_norm.ptr(), N, C, eps);
  mla_forward_naive(y, la.x1.data(), L, cfg, cos_t, sin_t, B, T, &la.attn);
  add_inplace(h.data(), y, N * C);
  la.h_mid = h;
  la.x2.resize(N * C);
  la.rstd2.resize(N);
  rmsnorm_forward(la.x2.data(), C, la.rstd2.data(), h.data(), C, L.ffn_norm.ptr(), N, C, eps);
  if (moe) {
    MoeBalance bal{.seq_alpha = opt.seq_balance_alpha,
                   .aux_alpha = opt.aux_balance_alpha,
                   .T = T,
                   .grad_scale = opt.loss_scale};
    moe_forward(y, la.x2.data(), L, cfg, N, load, &la.moe, &bal);
    *balance_loss += la.moe.balance_loss;
  } else {
    ffn_dense_forward(y, la.x2.data(), L.gate_proj, L.up_proj, L.down_proj, N, C, &la.ffn);
  }
  add_inplace(h.data(), y, N * C);
}

// dh: gradient w.r.t. the layer output on entry, w.r.t. its input on return.
void layer_train_backward(std::vector<float>& dh, LayerWeights& G, const LayerWeights& L,
                          const ModelConfig& cfg, bool moe, const LayerActs& la, int64_t N) {
  const int64_t C = cfg.hidden_size;
  float* dx = scratch(1, N * C).data();
  if (moe) {
    moe_backward(dx, G, dh.data(), L, cfg, la.moe, N);
  } else {
    ffn_dense_backward(dx, G.gate_proj, G.up_proj, G.down_proj, dh.data(), L.gate_proj, L.up_proj,
                       L.down_proj, la.ffn, N, C);
  }
  rmsnorm_backward(dh.data(), C, G.ffn_norm.ptr(), dx, C, la.h_mid.data(), C, L.ffn_norm.ptr(),
                   la.rstd2.data(), N, C, /*accumulate=*/true);
  mla_backward(dx, G, dh.data(), L, cfg, la.attn);
  rmsnorm_backward(dh.data(), C, G.attn_norm.ptr(), dx, C, la.h_in.data(), C, L.attn_norm.ptr(),
                   la.rstd1.data(), N, C, /*accumulate=*/true);
}

// logits = hn W_head^T, then in place: d(scale * mean CE)/dlogits. Returns the mean CE.
double head_loss(std::vector<float>& dlogits, const std::vector<float>& hn, const Model& m,
                 const int32_t* targets, int64_t N, float loss_scale, int64_t* count_out) {
  const int64_t C = m.cfg.hidden_size, V = m.cfg.vocab_size;
  dlogits.resize(N * V);
  linear_forward(dlogits.data(), hn.data(), m.w.head().ptr(), nullptr, N, C, V);
  int64_t count = 0;
  for (int64_t i = 0; i < N; i++) count += targets[i] >= 0;
  const float scale = count ? loss_scale / (float)count : 0.0f;
  double sum =
      cross_entropy_forward_backward(dlogits.data(), dlogits.data(), targets, N, V, scale, nullptr);
  *count_out = count;
  return count ? sum / count : 0.0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// forward

double model_train_forward(const Model& m, const int32_t* inputs, const int32_t* targets, int64_t B,
                           int64_t T, TrainActs& a, const TrainOptions& opt) {
  const ModelConfig& cfg = m.cfg;
  const int64_t C = cfg.hidden_size, V = cfg.vocab_size, N = B * T;
  const int64_t half = cfg.qk_rope_head_dim / 2, nl = cfg.num_hidden_layers, D = cfg.mtp_depth;
  const float eps = (float)cfg.rms_norm_eps;
  for (int64_t i = 0; i < N; i++)
    DSEEK_CHECK(inputs[i] >= 0 && inputs[i] < V, "input token {} outside the vocabulary [0, {})",
                inputs[i], V);
  a.B = B;
  a.T = T;
  a.opt = opt;
  a.inputs.assign(inputs, inputs + N);
  a.layers.resize(nl);
  a.expert_load.assign(nl, {});
  a.balance_loss = 0.0;

  std::vector<int32_t> pos(T);
  for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)t;
  std::vector<float> cos_t(T * half), sin_t(T * half);
  rope_tables(cos_t.data(), sin_t.data(), pos.data(), T, m.inv_freq.data(), half,
              m.rope_attn_factor);

  std::vector<float>& h = a.h_final;  // the residual stream, updated in place
  h.resize(N * C);
  embedding_forward(h.data(), m.w.embed.ptr(), inputs, N, C);
  for (int64_t l = 0; l < nl; l++)
    layer_train_forward(h, m.w.layers[l], cfg, cfg.is_moe_layer(l), B, T, cos_t.data(),
                        sin_t.data(), a.layers[l], opt, &a.expert_load[l], &a.balance_loss);
  a.hn.resize(N * C);
  a.rstd_final.resize(N);
  rmsnorm_forward(a.hn.data(), C, a.rstd_final.data(), h.data(), C, m.w.norm.ptr(), N, C, eps);
  if (opt.defer_head_grad) {
    a.dlogits.resize(N * V);
    linear_forward(a.dlogits.data(), a.hn.data(), m.w.head().ptr(), nullptr, N, C, V);
    DSEEK_CHECK(opt.head_temperature > 0.0f, "head_temperature must be > 0, got {}",
                opt.head_temperature);
    if (opt.head_temperature != 1.0f) {
      const float inv = 1.0f / opt.head_temperature;
      for (float& x : a.dlogits) x *= inv;
    }
    a.token_logp.resize(N);
    a.token_entropy.resize(N);
    token_logprobs(a.token_logp.data(), a.token_entropy.data(), a.dlogits.data(), targets, N, V);
    double sum = 0;
    a.n_targets = 0;
    for (int64_t i = 0; i < N; i++)
      if (targets[i] >= 0) {
        sum -= a.token_logp[i];
        a.n_targets++;
      }
    a.ce_loss = a.n_targets ? sum / a.n_targets : 0.0;
  } else {
    a.ce_loss = head_loss(a.dlogits, a.hn, m, targets, N, opt.loss_scale, &a.n_targets);
  }

  // multi-token prediction, depth k = 1..D
  a.mtp.resize(opt.run_mtp ? D : 0);
  a.mtp_loss_total = 0.0;
  for (int64_t k = 1; k <= (int64_t)a.mtp.size(); k++) {
    const MtpWeights& M = m.w.mtp[k - 1];
    MtpActs& ma = a.mtp[k - 1];
    ma.tokens.assign(N, 0);
    ma.targets.assign(N, -1);
    for (int64_t b = 0; b < B; b++)
      for (int64_t i = 0; i + k < T; i++) {
        ma.tokens[b * T + i] = inputs[b * T + i + k];
        ma.targets[b * T + i] = targets[b * T + i + k];
      }
    ma.h_prev = k == 1 ? a.hn : a.mtp[k - 2].h_out;
    ma.emb.resize(N * C);
    embedding_forward(ma.emb.data(), m.w.embed.ptr(), ma.tokens.data(), N, C);
    ma.cat.resize(N * 2 * C);
    ma.rstd_e.resize(N);
    ma.rstd_h.resize(N);
    rmsnorm_forward(ma.cat.data(), 2 * C, ma.rstd_e.data(), ma.emb.data(), C, M.enorm.ptr(), N, C,
                    eps);
    rmsnorm_forward(ma.cat.data() + C, 2 * C, ma.rstd_h.data(), ma.h_prev.data(), C, M.hnorm.ptr(),
                    N, C, eps);
    std::vector<float>& hk = ma.h_out;  // the block's residual stream, updated in place
    hk.resize(N * C);
    linear_forward(hk.data(), ma.cat.data(), M.eh_proj.ptr(), nullptr, N, 2 * C, C);
    const int64_t li = nl + k - 1;
    std::vector<int64_t> load;
    layer_train_forward(hk, M.block, cfg, cfg.is_moe_layer(li), B, T, cos_t.data(), sin_t.data(),
                        ma.block, opt, &load, &a.balance_loss);
    ma.hn.resize(N * C);
    ma.rstd_out.resize(N);
    rmsnorm_forward(ma.hn.data(), C, ma.rstd_out.data(), hk.data(), C, M.head_norm.ptr(), N, C,
                    eps);
    const float scale = opt.loss_scale * opt.mtp_lambda / (float)D;
    ma.loss = head_loss(ma.dlogits, ma.hn, m, ma.targets.data(), N, scale, &ma.n_targets);
    a.mtp_loss_total += opt.mtp_lambda / D * ma.loss;
  }
  return a.ce_loss + a.balance_loss + a.mtp_loss_total;
}

// ---------------------------------------------------------------------------------------------
// backward: the forward's list of calls, reversed

void model_train_backward(const Model& m, const TrainActs& a, ModelWeights& G) {
  const ModelConfig& cfg = m.cfg;
  const int64_t C = cfg.hidden_size, V = cfg.vocab_size, N = a.B * a.T;
  const int64_t nl = cfg.num_hidden_layers, D = (int64_t)a.mtp.size();
  Tensor& dhead = cfg.tie_word_embeddings ? G.embed : G.lm_head;
  // buffers of the calling thread, kept between steps
  thread_local std::vector<float> dhn, dh, dhk_n, dhk, dcat, demb, dprev;
  dh.resize(N * C);

  // MTP depths, last first; dprev carries d h^{k-1} from depth k to depth k-1
  for (int64_t k = D; k >= 1; k--) {
    const MtpWeights& M = m.w.mtp[k - 1];
    MtpWeights& GM = G.mtp[k - 1];
    const MtpActs& ma = a.mtp[k - 1];
    dhk_n.resize(N * C);
    dhk.resize(N * C);
    linear_backward(dhk_n.data(), dhead.ptr(), nullptr, ma.dlogits.data(), ma.hn.data(),
                    m.w.head().ptr(), N, C, V);
    rmsnorm_backward(dhk.data(), C, GM.head_norm.ptr(), dhk_n.data(), C, ma.h_out.data(), C,
                     M.head_norm.ptr(), ma.rstd_out.data(), N, C);
    if (k < D) add_inplace(dhk.data(), dprev.data(), N * C);  // h^k also fed depth k+1
    const int64_t li = nl + k - 1;
    layer_train_backward(dhk, GM.block, M.block, cfg, cfg.is_moe_layer(li), ma.block, N);
    dcat.resize(N * 2 * C);
    demb.resize(N * C);
    linear_backward(dcat.data(), GM.eh_proj.ptr(), nullptr, dhk.data(), ma.cat.data(),
                    M.eh_proj.ptr(), N, 2 * C, C);
    rmsnorm_backward(demb.data(), C, GM.enorm.ptr(), dcat.data(), 2 * C, ma.emb.data(), C,
                     M.enorm.ptr(), ma.rstd_e.data(), N, C);
    embedding_backward(G.embed.ptr(), demb.data(), ma.tokens.data(), N, C);
    dprev.resize(N * C);
    rmsnorm_backward(dprev.data(), C, GM.hnorm.ptr(), dcat.data() + C, 2 * C, ma.h_prev.data(), C,
                     M.hnorm.ptr(), ma.rstd_h.data(), N, C);
  }
  // gradient w.r.t. the main model's post-norm hidden state hn (head + MTP depth 1)
  if (D > 0) {
    std::swap(dhn, dprev);
  } else {
    dhn.assign(N * C, 0.0f);
  }

  // main model: logits = hn W_head^T  (tied: the head is the embedding)
  linear_backward(dhn.data(), dhead.ptr(), nullptr, a.dlogits.data(), a.hn.data(), m.w.head().ptr(),
                  N, C, V, /*accumulate=*/true);
  rmsnorm_backward(dh.data(), C, G.norm.ptr(), dhn.data(), C, a.h_final.data(), C, m.w.norm.ptr(),
                   a.rstd_final.data(), N, C);
  for (int64_t l = nl - 1; l >= 0; l--)
    layer_train_backward(dh, G.layers[l], m.w.layers[l], cfg, cfg.is_moe_layer(l), a.layers[l], N);
  embedding_backward(G.embed.ptr(), dh.data(), a.inputs.data(), N, C);
}

}  // namespace dseek
