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

// Shared preamble: q [N, H*Dqk] with rope applied to q_pe; c [N, Dc] normalized latent;
// kpe [N, Dr] rotated shared key.
void mla_project(std::vector<float>& q, std::vector<float>& c, std::vector<float>& kpe,
                 const float* x, const LayerWeights& L, const ModelConfig& cfg, const float* cos_t,
                 const float* sin_t, int64_t N) {
  const int64_t C = cfg.hidden_size, H = cfg.num_attention_heads, Dqk = cfg.qk_head_dim();
  const int64_t Dn = cfg.qk_nope_head_dim, Dr = cfg.qk_rope_head_dim, Dc = cfg.kv_lora_rank;
  const int64_t Dq = cfg.q_lora_rank;
  q.resize(N * H * Dqk);
  if (Dq > 0) {
    std::vector<float> cq(N * Dq);
    linear_forward(cq.data(), x, L.q_a_proj.ptr(), opt(L.q_a_bias), N, C, Dq);
    rmsnorm_forward(cq.data(), Dq, nullptr, cq.data(), Dq, L.q_a_norm.ptr(), N, Dq, kLoraNormEps);
    linear_forward(q.data(), cq.data(), L.q_b_proj.ptr(), nullptr, N, Dq, H * Dqk);
  } else {
    linear_forward(q.data(), x, L.q_proj.ptr(), nullptr, N, C, H * Dqk);
  }
  std::vector<float> kva(N * (Dc + Dr));
  linear_forward(kva.data(), x, L.kv_a_proj.ptr(), opt(L.kv_a_bias), N, C, Dc + Dr);
  c.resize(N * Dc);
  rmsnorm_forward(c.data(), Dc, nullptr, kva.data(), Dc + Dr, L.kv_a_norm.ptr(), N, Dc,
                  kLoraNormEps);
  kpe.resize(N * Dr);
  for (int64_t n = 0; n < N; n++)
    std::copy(kva.data() + n * (Dc + Dr) + Dc, kva.data() + (n + 1) * (Dc + Dr), &kpe[n * Dr]);
  const int64_t half = Dr / 2;
  rope_forward(q.data() + Dn, N, H, H * Dqk, Dqk, cos_t, sin_t, half, cfg.rope_interleave);
  rope_forward(kpe.data(), N, 1, Dr, Dr, cos_t, sin_t, half, cfg.rope_interleave);
}
}  // namespace

void mla_forward_naive(float* out, const float* x, const LayerWeights& L, const ModelConfig& cfg,
                       const float* cos_t, const float* sin_t, int64_t B, int64_t T) {
  const int64_t C = cfg.hidden_size, H = cfg.num_attention_heads, Dqk = cfg.qk_head_dim();
  const int64_t Dn = cfg.qk_nope_head_dim, Dr = cfg.qk_rope_head_dim, Dc = cfg.kv_lora_rank;
  const int64_t Dv = cfg.v_head_dim, N = B * T;
  // rope tables are per position; repeat them for each sequence of the batch
  const int64_t half = Dr / 2;
  std::vector<float> cb(N * half), sb(N * half);
  for (int64_t b = 0; b < B; b++) {
    std::copy(cos_t, cos_t + T * half, cb.data() + b * T * half);
    std::copy(sin_t, sin_t + T * half, sb.data() + b * T * half);
  }
  std::vector<float> q, c, kpe;
  mla_project(q, c, kpe, x, L, cfg, cb.data(), sb.data(), N);
  std::vector<float> kv(N * H * (Dn + Dv));
  linear_forward(kv.data(), c.data(), L.kv_b_proj.ptr(), nullptr, N, Dc, H * (Dn + Dv));
  std::vector<float> K(N * H * Dqk), V(N * H * Dv);
  for (int64_t n = 0; n < N; n++)
    for (int64_t h = 0; h < H; h++) {
      const float* src = kv.data() + (n * H + h) * (Dn + Dv);
      float* k = K.data() + (n * H + h) * Dqk;
      std::copy(src, src + Dn, k);
      std::copy(kpe.data() + n * Dr, kpe.data() + (n + 1) * Dr, k + Dn);
      std::copy(src + Dn, src + Dn + Dv, V.data() + (n * H + h) * Dv);
    }
  std::vector<float> o(N * H * Dv);
  const float scale = cfg.softmax_scale();
  for (int64_t b = 0; b < B; b++) {
    const int64_t off = b * T * H;
    attention_forward(o.data() + off * Dv, nullptr, q.data() + off * Dqk, K.data() + off * Dqk,
                      V.data() + off * Dv, T, H, Dqk, Dv, scale);
  }
  linear_forward(out, o.data(), L.o_proj.ptr(), opt(L.o_bias), N, H * Dv, C);
}

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
