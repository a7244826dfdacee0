#include "dseek/model/model.h"

#include <algorithm>
#include <cmath>

#include "dseek/io/safetensors.h"
#include "dseek/model/layer_residual.h"
#include "dseek/model/mla.h"
#include "dseek/model/moe.h"
#include "dseek/ops/cpu/linear.h"
#include "dseek/ops/cpu/rmsnorm.h"
#include "dseek/ops/cpu/rope.h"

namespace dseek {

void Model::init_derived() {
  inv_freq = cfg.rope_inv_freq();
  rope_attn_factor = cfg.rope_attention_factor();
}

Model Model::load(const std::string& dir) {
  Model m;
  m.cfg = ModelConfig::load(dir);
  auto ck = Checkpoint::open(dir);
  weights_load(m.cfg, m.w, *ck);
  m.init_derived();
  return m;
}

Model Model::random(const ModelConfig& cfg, uint64_t seed) {
  Model m;
  m.cfg = cfg;
  weights_init_random(cfg, m.w, seed);
  m.init_derived();
  return m;
}

LatentCache Model::new_cache() const {
  return LatentCache(cfg.num_hidden_layers, cfg.kv_lora_rank, cfg.qk_rope_head_dim);
}

void Model::check_tokens(const int32_t* tokens, int64_t n) const {
  for (int64_t i = 0; i < n; i++)
    DSEEK_CHECK(tokens[i] >= 0 && tokens[i] < cfg.vocab_size,
                "token id {} at position {} is outside the vocabulary [0, {})", tokens[i], i,
                cfg.vocab_size);
}

void Model::logits_from_hidden(float* logits, const float* h, int64_t N) const {
  const int64_t C = cfg.hidden_size;
  std::vector<float> hn(N * C);
  rmsnorm_forward(hn.data(), C, nullptr, h, C, w.norm.ptr(), N, C, (float)cfg.rms_norm_eps);
  linear_forward(logits, hn.data(), w.head().ptr(), nullptr, N, C, cfg.vocab_size);
}

void ffn_residual(float* h, const LayerWeights& L, const ModelConfig& cfg, int64_t l, int64_t N) {
  const int64_t C = cfg.hidden_size;
  std::vector<float> x(N * C), y(N * C);
  rmsnorm_forward(x.data(), C, nullptr, h, C, L.ffn_norm.ptr(), N, C, (float)cfg.rms_norm_eps);
  if (cfg.is_moe_layer(l)) {
    moe_forward(y.data(), x.data(), L, cfg, N);
  } else {
    ffn_dense_forward(y.data(), x.data(), L.gate_proj, L.up_proj, L.down_proj, N, C);
  }
  for (int64_t i = 0; i < N * C; i++) h[i] += y[i];
}

Tensor Model::forward(const int32_t* tokens, int64_t B, int64_t T) const {
  const int64_t C = cfg.hidden_size, N = B * T, half = cfg.qk_rope_head_dim / 2;
  check_tokens(tokens, N);
  std::vector<float> h(N * C);
  for (int64_t n = 0; n < N; n++)
    std::copy(w.embed.ptr() + tokens[n] * C, w.embed.ptr() + (tokens[n] + 1) * C, &h[n * C]);
  std::vector<int32_t> pos(T);
  for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)t;
  std::vector<float> cos_t(T * half), sin_t(T * half);
  rope_tables(cos_t.data(), sin_t.data(), pos.data(), T, inv_freq.data(), half, rope_attn_factor);
  for (int64_t l = 0; l < cfg.num_hidden_layers; l++) {
    const LayerWeights& L = w.layers[l];
    attn_residual(h.data(), L, cfg, N, [&](float* out, const float* x) {
      mla_forward_naive(out, x, L, cfg, cos_t.data(), sin_t.data(), B, T);
    });
    ffn_residual(h.data(), L, cfg, l, N);
  }
  Tensor logits({N, cfg.vocab_size});
  logits_from_hidden(logits.ptr(), h.data(), N);
  return logits;
}

Tensor Model::forward_cached(LatentCache& cache, const int32_t* tokens, int64_t S, bool last_only,
                             float* hn_out) const {
  const int64_t C = cfg.hidden_size, half = cfg.qk_rope_head_dim / 2;
  DSEEK_CHECK(S > 0, "forward_cached needs at least one token");
  check_tokens(tokens, S);
  std::vector<float> h(S * C);
  for (int64_t n = 0; n < S; n++)
    std::copy(w.embed.ptr() + tokens[n] * C, w.embed.ptr() + (tokens[n] + 1) * C, &h[n * C]);
  std::vector<int32_t> pos(S);
  for (int64_t s = 0; s < S; s++) pos[s] = (int32_t)(cache.len + s);
  std::vector<float> cos_t(S * half), sin_t(S * half);
  rope_tables(cos_t.data(), sin_t.data(), pos.data(), S, inv_freq.data(), half, rope_attn_factor);
  for (int64_t l = 0; l < cfg.num_hidden_layers; l++) {
    const LayerWeights& L = w.layers[l];
    attn_residual(h.data(), L, cfg, S, [&](float* out, const float* x) {
      mla_forward_absorbed(out, x, L, cfg, cos_t.data(), sin_t.data(), S, cache, l);
    });
    ffn_residual(h.data(), L, cfg, l, S);
  }
  cache.len += S;
  const int64_t first = last_only ? S - 1 : 0;
  Tensor logits({S - first, cfg.vocab_size});
  if (hn_out) {  // every row normalized (rows are independent: the same values as below)
    rmsnorm_forward(hn_out, C, nullptr, h.data(), C, w.norm.ptr(), S, C, (float)cfg.rms_norm_eps);
    linear_forward(logits.ptr(), hn_out + first * C, w.head().ptr(), nullptr, S - first, C,
                   cfg.vocab_size);
  } else {
    logits_from_hidden(logits.ptr(), h.data() + first * C, S - first);
  }
  return logits;
}

double causal_lm_loss(const Tensor& logits, const int32_t* tokens, int64_t B, int64_t T) {
  const int64_t V = logits.dim(1);
  double total = 0.0;
  int64_t count = 0;
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t + 1 < T; t++) {
      const float* r = logits.ptr() + (b * T + t) * V;
      float mx = *std::max_element(r, r + V);
      double sum = 0.0;
      for (int64_t v = 0; v < V; v++) sum += std::exp((double)r[v] - mx);
      total += std::log(sum) + mx - r[tokens[b * T + t + 1]];
      count++;
    }
  return count ? total / count : 0.0;
}

}  // namespace dseek
