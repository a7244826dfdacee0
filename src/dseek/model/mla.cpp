#include "dseek/model/mla.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "dseek/ops/cpu/attention.h"
#include "dseek/ops/cpu/linear.h"
#include "dseek/ops/cpu/rmsnorm.h"
#include "dseek/ops/cpu/rope.h"

namespace dseek {

namespace {
constexpr float kLoraNormEps = 1e-6f;  // q_a_layernorm / kv_a_layernorm are built without eps

const float* opt(const Tensor& t) {
  return t.empty() ? nullptr : t.ptr();
}
float* opt(Tensor& t) {
  return t.empty() ? nullptr : t.ptr();
}

// Shared preamble: q [N, H*Dqk] with rope applied to q_pe; c [N, Dc] normalized latent;
// kpe [N, Dr] rotated shared key. With `a`, also keeps cq, rstd_q, cqn, kva, rstd_kv.
void mla_project(std::vector<float>& q, std::vector<float>& c, std::vector<float>& kpe,
                 const float* x, const LayerWeights& L, const ModelConfig& cfg, const float* cos_t,
                 const float* sin_t, int64_t N, MlaActs* a = nullptr) {
  const int64_t C = cfg.hidden_size, H = cfg.num_attention_heads, Dqk = cfg.qk_head_dim();
  const int64_t Dn = cfg.qk_nope_head_dim, Dr = cfg.qk_rope_head_dim, Dc = cfg.kv_lora_rank;
  const int64_t Dq = cfg.q_lora_rank;
  q.resize(N * H * Dqk);
  if (Dq > 0) {
    std::vector<float> cq_local, rq_local, cqn_local;
    std::vector<float>& cq = a ? a->cq : cq_local;
    std::vector<float>& rq = a ? a->rstd_q : rq_local;
    std::vector<float>& cqn = a ? a->cqn : cqn_local;
    cq.resize(N * Dq);
    rq.resize(N);
    cqn.resize(N * Dq);
    linear_forward(cq.data(), x, L.q_a_proj.ptr(), opt(L.q_a_bias), N, C, Dq);
    rmsnorm_forward(cqn.data(), Dq, rq.data(), cq.data(), Dq, L.q_a_norm.ptr(), N, Dq,
                    kLoraNormEps);
    linear_forward(q.data(), cqn.data(), L.q_b_proj.ptr(), nullptr, N, Dq, H * Dqk);
  } else {
    linear_forward(q.data(), x, L.q_proj.ptr(), nullptr, N, C, H * Dqk);
  }
  std::vector<float> kva_local, rkv_local;
  std::vector<float>& kva = a ? a->kva : kva_local;
  std::vector<float>& rkv = a ? a->rstd_kv : rkv_local;
  kva.resize(N * (Dc + Dr));
  rkv.resize(N);
  linear_forward(kva.data(), x, L.kv_a_proj.ptr(), opt(L.kv_a_bias), N, C, Dc + Dr);
  c.resize(N * Dc);
  rmsnorm_forward(c.data(), Dc, rkv.data(), kva.data(), Dc + Dr, L.kv_a_norm.ptr(), N, Dc,
                  kLoraNormEps);
  kpe.resize(N * Dr);
  for (int64_t n = 0; n < N; n++)
    std::copy(kva.data() + n * (Dc + Dr) + Dc, kva.data() + (n + 1) * (Dc + Dr), &kpe[n * Dr]);
  const int64_t half = Dr / 2;
  rope_forward(q.data() + Dn, N, H, H * Dqk, Dqk, cos_t, sin_t, half, cfg.rope_interleave);
  rope_forward(kpe.data(), N, 1, Dr, Dr, cos_t, sin_t, half, cfg.rope_interleave);
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// naive path: forward (reference, training) and its backward

void mla_forward_naive(float* out, const float* x, const LayerWeights& L, const ModelConfig& cfg,
                       const float* cos_t, const float* sin_t, int64_t B, int64_t T,
                       MlaActs* save) {
  const int64_t C = cfg.hidden_size, H = cfg.num_attention_heads, Dqk = cfg.qk_head_dim();
  const int64_t Dn = cfg.qk_nope_head_dim, Dr = cfg.qk_rope_head_dim, Dc = cfg.kv_lora_rank;
  const int64_t Dv = cfg.v_head_dim, N = B * T;
  // rope tables are per position; repeat them for each sequence of the batch
  const int64_t half = Dr / 2;
  std::vector<float> cb_local, sb_local;
  std::vector<float>& cb = save ? save->cos_t : cb_local;
  std::vector<float>& sb = save ? save->sin_t : sb_local;
  cb.resize(N * half);
  sb.resize(N * half);
  for (int64_t b = 0; b < B; b++) {
    std::copy(cos_t, cos_t + T * half, cb.data() + b * T * half);
    std::copy(sin_t, sin_t + T * half, sb.data() + b * T * half);
  }
  std::vector<float> q_local, c_local, kpe, K_local, V_local, o_local, p_local;
  std::vector<float>& q = save ? save->q : q_local;
  std::vector<float>& c = save ? save->c : c_local;
  std::vector<float>& K = save ? save->K : K_local;
  std::vector<float>& V = save ? save->V : V_local;
  std::vector<float>& o = save ? save->o : o_local;
  if (save) {
    save->x.assign(x, x + N * C);
    save->B = B;
    save->T = T;
  }
  mla_project(q, c, kpe, x, L, cfg, cb.data(), sb.data(), N, save);
  std::vector<float> kv(N * H * (Dn + Dv));
  linear_forward(kv.data(), c.data(), L.kv_b_proj.ptr(), nullptr, N, Dc, H * (Dn + Dv));
  K.resize(N * H * Dqk);
  V.resize(N * H * Dv);
  for (int64_t n = 0; n < N; n++)
    for (int64_t h = 0; h < H; h++) {
      const float* src = kv.data() + (n * H + h) * (Dn + Dv);
      float* k = K.data() + (n * H + h) * Dqk;
      std::copy(src, src + Dn, k);
      std::copy(kpe.data() + n * Dr, kpe.data() + (n + 1) * Dr, k + Dn);
      std::copy(src + Dn, src + Dn + Dv, V.data() + (n * H + h) * Dv);
    }
  o.resize(N * H * Dv);
  float* probs = nullptr;
  if (save) {
    save->probs.resize(B * H * T * T);
    probs = save->probs.data();
  }
  const float scale = cfg.softmax_scale();
  for (int64_t b = 0; b < B; b++) {
    const int64_t off = b * T * H;
    attention_forward(o.data() + off * Dv, probs ? probs + b * H * T * T : nullptr,
                      q.data() + off * Dqk, K.data() + off * Dqk, V.data() + off * Dv, T, H, Dqk,
                      Dv, scale);
  }
  linear_forward(out, o.data(), L.o_proj.ptr(), opt(L.o_bias), N, H * Dv, C);
}

void mla_backward(float* dx, LayerWeights& G, const float* dout, const LayerWeights& L,
                  const ModelConfig& cfg, const MlaActs& a) {
  const int64_t C = cfg.hidden_size, H = cfg.num_attention_heads, Dqk = cfg.qk_head_dim();
  const int64_t Dn = cfg.qk_nope_head_dim, Dr = cfg.qk_rope_head_dim, Dc = cfg.kv_lora_rank;
  const int64_t Dv = cfg.v_head_dim, Dq = cfg.q_lora_rank, B = a.B, T = a.T, N = B * T;
  const int64_t half = Dr / 2;
  // out = o W_o^T (+ b_o)
  std::vector<float> d_o(N * H * Dv);
  linear_backward(d_o.data(), G.o_proj.ptr(), opt(G.o_bias), dout, a.o.data(), L.o_proj.ptr(), N,
                  H * Dv, C);
  // attention per sequence
  std::vector<float> dq(N * H * Dqk), dK(N * H * Dqk), dV(N * H * Dv);
  const float scale = cfg.softmax_scale();
  for (int64_t b = 0; b < B; b++) {
    const int64_t off = b * T * H;
    attention_backward(dq.data() + off * Dqk, dK.data() + off * Dqk, dV.data() + off * Dv,
                       d_o.data() + off * Dv, a.q.data() + off * Dqk, a.K.data() + off * Dqk,
                       a.V.data() + off * Dv, a.probs.data() + b * H * T * T, T, H, Dqk, Dv, scale);
  }
  // K = [k_nope | k_pe (shared by heads)], V  ->  dkv [N, H, Dn+Dv], dkpe [N, Dr]
  std::vector<float> dkv(N * H * (Dn + Dv)), dkva(N * (Dc + Dr), 0.0f);
  for (int64_t n = 0; n < N; n++) {
    float* dpe = dkva.data() + n * (Dc + Dr) + Dc;
    for (int64_t h = 0; h < H; h++) {
      const float* dk = dK.data() + (n * H + h) * Dqk;
      float* d = dkv.data() + (n * H + h) * (Dn + Dv);
      std::copy(dk, dk + Dn, d);
      std::copy(dV.data() + (n * H + h) * Dv, dV.data() + (n * H + h + 1) * Dv, d + Dn);
      for (int64_t i = 0; i < Dr; i++) dpe[i] += dk[Dn + i];
    }
  }
  // kv = c W_kvb^T
  std::vector<float> dc(N * Dc);
  linear_backward(dc.data(), G.kv_b_proj.ptr(), nullptr, dkv.data(), a.c.data(), L.kv_b_proj.ptr(),
                  N, Dc, H * (Dn + Dv));
  // c = RMSNorm(kva[:, :Dc]);  k_pe = RoPE(kva[:, Dc:])
  rmsnorm_backward(dkva.data(), Dc + Dr, G.kv_a_norm.ptr(), dc.data(), Dc, a.kva.data(), Dc + Dr,
                   L.kv_a_norm.ptr(), a.rstd_kv.data(), N, Dc);
  rope_backward(dkva.data() + Dc, N, 1, Dc + Dr, Dr, a.cos_t.data(), a.sin_t.data(), half,
                cfg.rope_interleave);
  // kva = x W_kva^T (+ b)
  linear_backward(dx, G.kv_a_proj.ptr(), opt(G.kv_a_bias), dkva.data(), a.x.data(),
                  L.kv_a_proj.ptr(), N, C, Dc + Dr);
  // q: RoPE on q_pe, then the projections
  rope_backward(dq.data() + Dn, N, H, H * Dqk, Dqk, a.cos_t.data(), a.sin_t.data(), half,
                cfg.rope_interleave);
  if (Dq > 0) {
    std::vector<float> dcqn(N * Dq), dcq(N * Dq);
    linear_backward(dcqn.data(), G.q_b_proj.ptr(), nullptr, dq.data(), a.cqn.data(),
                    L.q_b_proj.ptr(), N, Dq, H * Dqk);
    rmsnorm_backward(dcq.data(), Dq, G.q_a_norm.ptr(), dcqn.data(), Dq, a.cq.data(), Dq,
                     L.q_a_norm.ptr(), a.rstd_q.data(), N, Dq);
    linear_backward(dx, G.q_a_proj.ptr(), opt(G.q_a_bias), dcq.data(), a.x.data(), L.q_a_proj.ptr(),
                    N, C, Dq, /*accumulate=*/true);
  } else {
    linear_backward(dx, G.q_proj.ptr(), nullptr, dq.data(), a.x.data(), L.q_proj.ptr(), N, C,
                    H * Dqk, /*accumulate=*/true);
  }
}

// ---------------------------------------------------------------------------------------------
// absorbed path: inference over the latent cache

void mla_forward_absorbed(float* out, const float* x, const LayerWeights& L, const ModelConfig& cfg,
                          const float* cos_t, const float* sin_t, int64_t S, LatentCache& cache,
                          int64_t layer) {
  const int64_t C = cfg.hidden_size, H = cfg.num_attention_heads, Dqk = cfg.qk_head_dim();
  const int64_t Dn = cfg.qk_nope_head_dim, Dr = cfg.qk_rope_head_dim, Dc = cfg.kv_lora_rank;
  const int64_t Dv = cfg.v_head_dim;
  const int64_t past = cache.len, Tt = past + S;
  std::vector<float> q, c, kpe;
  mla_project(q, c, kpe, x, L, cfg, cos_t, sin_t, S);
  cache.reserve(Tt);
  float* cc = cache.c_kv[layer].data();  // [Tt, Dc]
  float* cp = cache.k_pe[layer].data();  // [Tt, Dr]
  std::copy(c.begin(), c.end(), cc + past * Dc);
  std::copy(kpe.begin(), kpe.end(), cp + past * Dr);

  // q_abs[s, h, :] = q_nope[s, h, :] W_UK(h)   (W_UK(h) = kv_b rows h*(Dn+Dv) .. +Dn)
  const float* Wkvb = L.kv_b_proj.ptr();
  std::vector<float> qa(S * H * Dc);
  for (int64_t h = 0; h < H; h++)
    gemm_nn(qa.data() + h * Dc, H * Dc, q.data() + h * Dqk, H * Dqk, Wkvb + h * (Dn + Dv) * Dc, Dc,
            S, Dc, Dn, 0.0f);
  // scores [S*H, Tt] = q_abs c^T + q_pe k_pe^T ; rows (s, h)
  std::vector<float> sc(S * H * Tt);
  gemm_nt(sc.data(), Tt, qa.data(), Dc, cc, Dc, S * H, Tt, Dc, 0.0f);
  gemm_nt(sc.data(), Tt, q.data() + Dn, Dqk, cp, Dr, S * H, Tt, Dr, 1.0f);
  const float scale = cfg.softmax_scale();
  for (int64_t s = 0; s < S; s++)
    for (int64_t h = 0; h < H; h++) {
      float* r = sc.data() + (s * H + h) * Tt;
      const int64_t nt = past + s + 1;  // causal: keys 0 .. past+s
      float mx = -INFINITY;
      for (int64_t t = 0; t < nt; t++) {
        r[t] *= scale;
        mx = std::max(mx, r[t]);
      }
      double sum = 0.0;
      for (int64_t t = 0; t < nt; t++) {
        r[t] = std::exp(r[t] - mx);
        sum += r[t];
      }
      const float inv = (float)(1.0 / sum);
      for (int64_t t = 0; t < nt; t++) r[t] *= inv;
      for (int64_t t = nt; t < Tt; t++) r[t] = 0.0f;
    }
  // x_lat [S*H, Dc] = P c ; o[s, h, :] = W_UV(h) x_lat[s, h, :]
  std::vector<float> xl(S * H * Dc);
  gemm_nn(xl.data(), Dc, sc.data(), Tt, cc, Dc, S * H, Dc, Tt, 0.0f);
  std::vector<float> o(S * H * Dv);
  for (int64_t h = 0; h < H; h++)
    gemm_nt(o.data() + h * Dv, H * Dv, xl.data() + h * Dc, H * Dc, Wkvb + (h * (Dn + Dv) + Dn) * Dc,
            Dc, S, Dv, Dc, 0.0f);
  linear_forward(out, o.data(), L.o_proj.ptr(), opt(L.o_bias), S, H * Dv, C);
}

}  // namespace dseek
