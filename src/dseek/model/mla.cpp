// Threading: with B >= 2 sequences the naive forward runs one task per sequence (projections,
// RoPE, attention over all heads, o_proj: T rows each, single-threaded sgemm) spread over the
// team by one `omp for`; the backward does the same for the activation gradients, then (after
// one barrier) spreads the weight gradients over the team in blocks of weight rows. Each output
// element is computed by one task, so results do not depend on the thread count. With B = 1 the
// same code runs once over all rows and the ops parallelize themselves.
#include "dseek/model/mla.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "dseek/ops/cpu/attention.h"
#include "dseek/ops/cpu/cpu_parallel.h"
#include "dseek/ops/cpu/linear.h"
#include "dseek/ops/cpu/rmsnorm.h"
#include "dseek/ops/cpu/rope.h"

namespace dseek {

namespace {
constexpr float kLoraNormEps = 1e-6f;  // q_a_layernorm / kv_a_layernorm are built without eps
constexpr double kParFlops = 2e6;      // below this a layer runs on the calling thread

const float* opt(const Tensor& t) {
  return t.empty() ? nullptr : t.ptr();
}
float* opt(Tensor& t) {
  return t.empty() ? nullptr : t.ptr();
}

struct Dims {
  int64_t C, H, Dqk, Dn, Dr, Dc, Dv, Dq, half;
  explicit Dims(const ModelConfig& c)
      : C(c.hidden_size),
        H(c.num_attention_heads),
        Dqk(c.qk_head_dim()),
        Dn(c.qk_nope_head_dim),
        Dr(c.qk_rope_head_dim),
        Dc(c.kv_lora_rank),
        Dv(c.v_head_dim),
        Dq(c.q_lora_rank),
        half(c.qk_rope_head_dim / 2) {}
};

// Outputs of the shared preamble for n rows (row pointers at the first row). cq, rq, cqn only
// with q-LoRA (Dq > 0).
struct Proj {
  float* q;    // [n, H*Dqk] with rope applied to q_pe
  float* c;    // [n, Dc] normalized latent
  float* kpe;  // [n, Dr] rotated shared key
  float* cq;   // [n, Dq]
  float* rq;   // [n]
  float* cqn;  // [n, Dq]
  float* kva;  // [n, Dc+Dr]
  float* rkv;  // [n]
};

void mla_project(const Proj& p, const float* x, const LayerWeights& L, const ModelConfig& cfg,
                 const float* cos_t, const float* sin_t, int64_t n) {
  const Dims d(cfg);
  if (d.Dq > 0) {
    linear_forward(p.cq, x, L.q_a_proj.ptr(), opt(L.q_a_bias), n, d.C, d.Dq);
    rmsnorm_forward(p.cqn, d.Dq, p.rq, p.cq, d.Dq, L.q_a_norm.ptr(), n, d.Dq, kLoraNormEps);
    linear_forward(p.q, p.cqn, L.q_b_proj.ptr(), nullptr, n, d.Dq, d.H * d.Dqk);
  } else {
    linear_forward(p.q, x, L.q_proj.ptr(), nullptr, n, d.C, d.H * d.Dqk);
  }
  linear_forward(p.kva, x, L.kv_a_proj.ptr(), opt(L.kv_a_bias), n, d.C, d.Dc + d.Dr);
  rmsnorm_forward(p.c, d.Dc, p.rkv, p.kva, d.Dc + d.Dr, L.kv_a_norm.ptr(), n, d.Dc, kLoraNormEps);
  for (int64_t i = 0; i < n; i++)
    std::copy(p.kva + i * (d.Dc + d.Dr) + d.Dc, p.kva + (i + 1) * (d.Dc + d.Dr), p.kpe + i * d.Dr);
  rope_forward(p.q + d.Dn, n, d.H, d.H * d.Dqk, d.Dqk, cos_t, sin_t, d.half, cfg.rope_interleave);
  rope_forward(p.kpe, n, 1, d.Dr, d.Dr, cos_t, sin_t, d.half, cfg.rope_interleave);
}

// Per-thread scratch, grown on demand.
float* tls(int which, size_t n) {
  thread_local std::vector<float> bufs[4];
  if (bufs[which].size() < n) bufs[which].resize(n);
  return bufs[which].data();
}

// Everything the naive forward keeps, as row-0 pointers into [N, ...] arrays.
struct FwdBufs {
  Proj p;
  float *K, *V, *o, *probs;
};

// Forward of sequences [b0, b1): rows r0 = b0*T .. b1*T.
void forward_seqs(float* out, const float* x, const LayerWeights& L, const ModelConfig& cfg,
                  const FwdBufs& f, const float* cb, const float* sb, int64_t b0, int64_t b1,
                  int64_t T) {
  const Dims d(cfg);
  const int64_t r0 = b0 * T, n = (b1 - b0) * T;
  const Proj& g = f.p;
  const Proj p{g.q + r0 * d.H * d.Dqk,     g.c + r0 * d.Dc,
               tls(0, n * d.Dr),           g.cq ? g.cq + r0 * d.Dq : nullptr,
               g.rq ? g.rq + r0 : nullptr, g.cqn ? g.cqn + r0 * d.Dq : nullptr,
               g.kva + r0 * (d.Dc + d.Dr), g.rkv + r0};
  mla_project(p, x + r0 * d.C, L, cfg, cb + r0 * d.half, sb + r0 * d.half, n);
  const int64_t Dkv = d.Dn + d.Dv;
  float* kv = tls(1, n * d.H * Dkv);
  linear_forward(kv, p.c, L.kv_b_proj.ptr(), nullptr, n, d.Dc, d.H * Dkv);
  float* K = f.K + r0 * d.H * d.Dqk;
  float* V = f.V + r0 * d.H * d.Dv;
  for (int64_t i = 0; i < n; i++)
    for (int64_t h = 0; h < d.H; h++) {
      const float* src = kv + (i * d.H + h) * Dkv;
      float* k = K + (i * d.H + h) * d.Dqk;
      std::copy(src, src + d.Dn, k);
      std::copy(p.kpe + i * d.Dr, p.kpe + (i + 1) * d.Dr, k + d.Dn);
      std::copy(src + d.Dn, src + Dkv, V + (i * d.H + h) * d.Dv);
    }
  float* o = f.o + r0 * d.H * d.Dv;
  attention_forward_batch(o, f.probs ? f.probs + b0 * d.H * T * T : nullptr, p.q, K, V, b1 - b0, T,
                          d.H, d.Dqk, d.Dv, cfg.softmax_scale());
  linear_forward(out + r0 * d.C, o, L.o_proj.ptr(), opt(L.o_bias), n, d.H * d.Dv, d.C);
}

// Activation-gradient buffers of the backward ([N, ...], row-0 pointers), kept for the weight
// gradients.
struct BwdBufs {
  float* dq;    // [N, H*Dqk] after the RoPE backward
  float* dkv;   // [N, H*(Dn+Dv)]
  float* dkva;  // [N, Dc+Dr]
  float* dc;    // [N, Dc]
  float* dcqn;  // [N, Dq]
  float* dcq;   // [N, Dq]
};

// Backward, activation side, of sequences [b0, b1): dx rows overwritten.
void backward_seqs(float* dx, const float* dout, const LayerWeights& L, const ModelConfig& cfg,
                   const MlaActs& a, const BwdBufs& g, int64_t b0, int64_t b1) {
  const Dims d(cfg);
  const int64_t T = a.T, r0 = b0 * T, n = (b1 - b0) * T, Dkv = d.Dn + d.Dv;
  const int64_t HQ = d.H * d.Dqk, HV = d.H * d.Dv;
  // out = o W_o^T (+ b_o)
  float* d_o = tls(0, n * HV);
  linear_backward(d_o, nullptr, nullptr, dout + r0 * d.C, nullptr, L.o_proj.ptr(), n, HV, d.C);
  // attention
  float* dq = g.dq + r0 * HQ;
  float* dK = tls(1, n * HQ);
  float* dV = tls(2, n * HV);
  attention_backward_batch(dq, dK, dV, d_o, a.q.data() + r0 * HQ, a.K.data() + r0 * HQ,
                           a.V.data() + r0 * HV, a.probs.data() + b0 * d.H * T * T, b1 - b0, T, d.H,
                           d.Dqk, d.Dv, cfg.softmax_scale());
  // K = [k_nope | k_pe (shared by heads)], V  ->  dkv [n, H, Dn+Dv], dkpe [n, Dr]
  float* dkv = g.dkv + r0 * d.H * Dkv;
  float* dkva = g.dkva + r0 * (d.Dc + d.Dr);
  for (int64_t i = 0; i < n; i++) {
    float* dpe = dkva + i * (d.Dc + d.Dr) + d.Dc;
    std::fill(dpe, dpe + d.Dr, 0.0f);
    for (int64_t h = 0; h < d.H; h++) {
      const float* dk = dK + (i * d.H + h) * d.Dqk;
      float* o = dkv + (i * d.H + h) * Dkv;
      std::copy(dk, dk + d.Dn, o);
      std::copy(dV + (i * d.H + h) * d.Dv, dV + (i * d.H + h + 1) * d.Dv, o + d.Dn);
      for (int64_t j = 0; j < d.Dr; j++) dpe[j] += dk[d.Dn + j];
    }
  }
  // kv = c W_kvb^T
  float* dc = g.dc + r0 * d.Dc;
  linear_backward(dc, nullptr, nullptr, dkv, nullptr, L.kv_b_proj.ptr(), n, d.Dc, d.H * Dkv);
  // c = RMSNorm(kva[:, :Dc]);  k_pe = RoPE(kva[:, Dc:])
  rmsnorm_backward(dkva, d.Dc + d.Dr, nullptr, dc, d.Dc, a.kva.data() + r0 * (d.Dc + d.Dr),
                   d.Dc + d.Dr, L.kv_a_norm.ptr(), a.rstd_kv.data() + r0, n, d.Dc);
  rope_backward(dkva + d.Dc, n, 1, d.Dc + d.Dr, d.Dr, a.cos_t.data() + r0 * d.half,
                a.sin_t.data() + r0 * d.half, d.half, cfg.rope_interleave);
  // kva = x W_kva^T (+ b)
  float* dxr = dx + r0 * d.C;
  linear_backward(dxr, nullptr, nullptr, dkva, nullptr, L.kv_a_proj.ptr(), n, d.C, d.Dc + d.Dr);
  // q: RoPE on q_pe, then the projections
  rope_backward(dq + d.Dn, n, d.H, HQ, d.Dqk, a.cos_t.data() + r0 * d.half,
                a.sin_t.data() + r0 * d.half, d.half, cfg.rope_interleave);
  if (d.Dq > 0) {
    float* dcqn = g.dcqn + r0 * d.Dq;
    float* dcq = g.dcq + r0 * d.Dq;
    linear_backward(dcqn, nullptr, nullptr, dq, nullptr, L.q_b_proj.ptr(), n, d.Dq, HQ);
    rmsnorm_backward(dcq, d.Dq, nullptr, dcqn, d.Dq, a.cq.data() + r0 * d.Dq, d.Dq,
                     L.q_a_norm.ptr(), a.rstd_q.data() + r0, n, d.Dq);
    linear_backward(dxr, nullptr, nullptr, dcq, nullptr, L.q_a_proj.ptr(), n, d.C, d.Dq,
                    /*accumulate=*/true);
  } else {
    linear_backward(dxr, nullptr, nullptr, dq, nullptr, L.q_proj.ptr(), n, d.C, HQ,
                    /*accumulate=*/true);
  }
}

// One weight-gradient job: a block of weight rows, or a norm weight's gradient.
struct WJob {
  WeightGradBlock blk{};
  int norm = -1;  // 0: kv_a_norm, 1: q_a_norm (blk unused)
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// naive path: forward (reference, training) and its backward

void mla_forward_naive(float* out, const float* x, const LayerWeights& L, const ModelConfig& cfg,
                       const float* cos_t, const float* sin_t, int64_t B, int64_t T,
                       MlaActs* save) {
  const Dims d(cfg);
  const int64_t N = B * T;
  // rope tables are per position; repeat them for each sequence of the batch
  thread_local MlaActs cache;  // without save: buffers kept between calls (no page faults)
  MlaActs& a = save ? *save : cache;
  std::vector<float>& cb = a.cos_t;
  std::vector<float>& sb = a.sin_t;
  cb.resize(N * d.half);
  sb.resize(N * d.half);
  for (int64_t b = 0; b < B; b++) {
    std::copy(cos_t, cos_t + T * d.half, cb.data() + b * T * d.half);
    std::copy(sin_t, sin_t + T * d.half, sb.data() + b * T * d.half);
  }
  if (save) {
    save->x.assign(x, x + N * d.C);
    save->B = B;
    save->T = T;
  }
  a.q.resize(N * d.H * d.Dqk);
  a.c.resize(N * d.Dc);
  a.kva.resize(N * (d.Dc + d.Dr));
  a.rstd_kv.resize(N);
  if (d.Dq > 0) {
    a.cq.resize(N * d.Dq);
    a.rstd_q.resize(N);
    a.cqn.resize(N * d.Dq);
  }
  a.K.resize(N * d.H * d.Dqk);
  a.V.resize(N * d.H * d.Dv);
  a.o.resize(N * d.H * d.Dv);
  if (save) a.probs.resize(B * d.H * T * T);
  const FwdBufs f{Proj{a.q.data(), a.c.data(), nullptr, d.Dq > 0 ? a.cq.data() : nullptr,
                       d.Dq > 0 ? a.rstd_q.data() : nullptr, d.Dq > 0 ? a.cqn.data() : nullptr,
                       a.kva.data(), a.rstd_kv.data()},
                  a.K.data(), a.V.data(), a.o.data(), save ? a.probs.data() : nullptr};
  const double flops = 2.0 * N * d.C * (d.Dq + d.H * d.Dqk + d.Dc + d.Dr + d.H * d.Dv) +
                       2.0 * N * T * d.H * (d.Dqk + d.Dv);
  const int nt = B >= 2 ? par_threads(flops, kParFlops) : 1;
  if (B >= 2) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
    for (int64_t b = 0; b < B; b++)
      forward_seqs(out, x, L, cfg, f, cb.data(), sb.data(), b, b + 1, T);
  } else {
    forward_seqs(out, x, L, cfg, f, cb.data(), sb.data(), 0, B, T);
  }
}

void mla_backward(float* dx, LayerWeights& G, const float* dout, const LayerWeights& L,
                  const ModelConfig& cfg, const MlaActs& a) {
  const Dims d(cfg);
  const int64_t B = a.B, T = a.T, N = B * T, Dkv = d.Dn + d.Dv;
  const int64_t HQ = d.H * d.Dqk, HV = d.H * d.Dv;
  // the calling thread's buffers, shared with the team
  thread_local std::vector<float> dq_b, dkv_b, dkva_b, dc_b, dcqn_b, dcq_b;
  dq_b.resize(N * HQ);
  dkv_b.resize(N * d.H * Dkv);
  dkva_b.resize(N * (d.Dc + d.Dr));
  dc_b.resize(N * d.Dc);
  dcqn_b.resize(N * d.Dq);
  dcq_b.resize(N * d.Dq);
  const BwdBufs g{dq_b.data(), dkv_b.data(),  dkva_b.data(),
                  dc_b.data(), dcqn_b.data(), dcq_b.data()};

  // weight gradients, in blocks of rows (the order of the list does not change the result)
  std::vector<WJob> jobs;
  std::vector<WeightGradBlock> blks;
  weight_grad_blocks(blks, G.o_proj.ptr(), opt(G.o_bias), dout, a.o.data(), N, HV, d.C);
  weight_grad_blocks(blks, G.kv_b_proj.ptr(), nullptr, g.dkv, a.c.data(), N, d.Dc, d.H * Dkv);
  weight_grad_blocks(blks, G.kv_a_proj.ptr(), opt(G.kv_a_bias), g.dkva, a.x.data(), N, d.C,
                     d.Dc + d.Dr);
  if (d.Dq > 0) {
    weight_grad_blocks(blks, G.q_b_proj.ptr(), nullptr, g.dq, a.cqn.data(), N, d.Dq, HQ);
    weight_grad_blocks(blks, G.q_a_proj.ptr(), opt(G.q_a_bias), g.dcq, a.x.data(), N, d.C, d.Dq);
  } else {
    weight_grad_blocks(blks, G.q_proj.ptr(), nullptr, g.dq, a.x.data(), N, d.C, HQ);
  }
  std::stable_sort(
      blks.begin(), blks.end(),
      [](const WeightGradBlock& x, const WeightGradBlock& y) { return x.cost() > y.cost(); });
  jobs.push_back(WJob{.norm = 0});
  if (d.Dq > 0) jobs.push_back(WJob{.norm = 1});
  for (const WeightGradBlock& b : blks) jobs.push_back(WJob{.blk = b});
  const int64_t njobs = (int64_t)jobs.size();
  auto run_job = [&](const WJob& j) {
    if (j.norm == 0)
      rmsnorm_backward(nullptr, 0, G.kv_a_norm.ptr(), g.dc, d.Dc, a.kva.data(), d.Dc + d.Dr,
                       L.kv_a_norm.ptr(), a.rstd_kv.data(), N, d.Dc);
    else if (j.norm == 1)
      rmsnorm_backward(nullptr, 0, G.q_a_norm.ptr(), g.dcqn, d.Dq, a.cq.data(), d.Dq,
                       L.q_a_norm.ptr(), a.rstd_q.data(), N, d.Dq);
    else
      run_weight_grad_block(j.blk);
  };

  const double flops =
      4.0 * N * d.C * (d.Dq + HQ + d.Dc + d.Dr + HV) + 4.0 * N * T * d.H * (d.Dqk + d.Dv);
  const int nt = B >= 2 ? par_threads(flops, kParFlops) : 1;
  if (B >= 2) {
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
#pragma omp for schedule(dynamic, 1)
      for (int64_t b = 0; b < B; b++) backward_seqs(dx, dout, L, cfg, a, g, b, b + 1);
#pragma omp for schedule(dynamic, 1)
      for (int64_t i = 0; i < njobs; i++) run_job(jobs[i]);
    }
  } else {
    backward_seqs(dx, dout, L, cfg, a, g, 0, B);
    for (const WJob& j : jobs) run_job(j);
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
  const int64_t Dq = cfg.q_lora_rank;
  std::vector<float> q(S * H * Dqk), c(S * Dc), kpe(S * Dr), cq(S * Dq), rq(S), cqn(S * Dq),
      kva(S * (Dc + Dr)), rkv(S);
  mla_project(Proj{q.data(), c.data(), kpe.data(), cq.data(), rq.data(), cqn.data(), kva.data(),
                   rkv.data()},
              x, L, cfg, cos_t, sin_t, S);
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
