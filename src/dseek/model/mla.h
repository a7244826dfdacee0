// MLA: Multi-head Latent Attention of one layer (SPEC §3.2, §5.2), fp32 on the CPU.
//   q = W_qb RMSNorm(W_qa x)  (or W_q x);  per head q = [q_nope (Dn) | q_pe (Dr)]
//   [c_kv | k_pe] = W_kva x;  c = RMSNorm(c_kv);  RoPE on q_pe and k_pe (one head, shared)
// Naive path (training, reference): [k_nope | v] = W_kvb c per head; K = [k_nope | k_pe];
//   causal softmax(scale * Q K^T) V, then o_proj.
// Absorbed path (inference over a LatentCache): W_kvb = [W_UK ; W_UV] per head,
//   q_abs = q_nope W_UK  [Dc];  score_t = scale * (q_abs . c_t + q_pe . k_pe_t)
//   x_lat = sum_t P_t c_t  [Dc];  o = W_UV x_lat;  then o_proj.  Exact algebra: both paths agree.
#pragma once

#include <cstdint>
#include <vector>

#include "dseek/infer/latent_cache.h"
#include "dseek/model/config.h"
#include "dseek/model/weights.h"

namespace dseek {

// What the naive forward saves for the backward pass (N = B*T tokens).
struct MlaActs {
  std::vector<float> x;             // [N, C]      the normalized input
  std::vector<float> cq;            // [N, Dq]     q_a_proj output (q-LoRA only)
  std::vector<float> rstd_q;        // [N]
  std::vector<float> cqn;           // [N, Dq]     RMSNorm(cq)
  std::vector<float> q;             // [N, H, Dqk] after RoPE on q_pe
  std::vector<float> kva;           // [N, Dc+Dr]  kv_a_proj output (k_pe part before RoPE)
  std::vector<float> rstd_kv;       // [N]
  std::vector<float> c;             // [N, Dc]     normalized latent
  std::vector<float> K;             // [N, H, Dqk] [k_nope | k_pe rotated]
  std::vector<float> V;             // [N, H, Dv]
  std::vector<float> probs;         // [B, H, T, T]
  std::vector<float> o;             // [N, H*Dv]   attention output before o_proj
  std::vector<float> cos_t, sin_t;  // [N, Dr/2] rope tables per token
  int64_t B = 0, T = 0;
};

// B sequences of T tokens at positions 0..T-1 (causal within each). x [B*T, C] is the
// normalized input, out [B*T, C] the attention output (before the residual add).
// cos_t/sin_t: rope tables for positions 0..T-1, [T, Dr/2]. save (may be null) keeps what the
// backward needs.
void mla_forward_naive(float* out, const float* x, const LayerWeights& L, const ModelConfig& c,
                       const float* cos_t, const float* sin_t, int64_t B, int64_t T,
                       MlaActs* save = nullptr);
// Backward of mla_forward_naive: dout [N, C] -> dx [N, C] (overwrite); parameter gradients
// accumulate into G (same layout as the weights).
void mla_backward(float* dx, LayerWeights& G, const float* dout, const LayerWeights& L,
                  const ModelConfig& c, const MlaActs& a);

// S new tokens of one sequence at positions cache.len .. cache.len+S-1 for layer `layer`:
// appends their c_kv / k_pe to the cache (the caller advances cache.len after the last layer)
// and attends over everything cached. cos_t/sin_t: tables for the S new positions.
void mla_forward_absorbed(float* out, const float* x, const LayerWeights& L, const ModelConfig& c,
                          const float* cos_t, const float* sin_t, int64_t S, LatentCache& cache,
                          int64_t layer);

}  // namespace dseek
