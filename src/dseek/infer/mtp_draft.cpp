// MTP draft module (contract in mtp_draft.h). fp32 on the CPU, the ops of model.cpp /
// model_train.cpp.
#include "dseek/infer/mtp_draft.h"

#include <algorithm>

#include "dseek/model/layer_residual.h"  // attn_residual, ffn_residual
#include "dseek/model/mla.h"             // mla_forward_absorbed
#include "dseek/ops/cpu/linear.h"        // linear_forward
#include "dseek/ops/cpu/rmsnorm.h"       // rmsnorm_forward
#include "dseek/ops/cpu/rope.h"          // rope_tables

namespace dseek {

namespace {

void check_ids(const int32_t* tokens, int64_t n, int64_t V) {
  for (int64_t i = 0; i < n; i++)
    DSEEK_CHECK(tokens[i] >= 0 && tokens[i] < V,
                "token id {} at position {} is outside the vocabulary [0, {})", tokens[i], i, V);
}

// Rope tables [S, Dr/2] for positions first .. first+S-1.
void rope_for(std::vector<float>& cos_t, std::vector<float>& sin_t, const Model& m, int64_t first,
              int64_t S) {
  const int64_t half = m.cfg.qk_rope_head_dim / 2;
  std::vector<int32_t> pos(S);
  for (int64_t s = 0; s < S; s++) pos[s] = (int32_t)(first + s);
  cos_t.resize(S * half);
  sin_t.resize(S * half);
  rope_tables(cos_t.data(), sin_t.data(), pos.data(), S, m.inv_freq.data(), half,
              m.rope_attn_factor);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// MTP module 1

MtpDraft::MtpDraft(const Model& m, int64_t first_pos)
    : m_(m), first_pos_(first_pos), cache_(1, m.cfg.kv_lora_rank, m.cfg.qk_rope_head_dim) {
  DSEEK_CHECK(first_pos >= 0, "MTP draft: first position must be >= 0, got {}", first_pos);
  DSEEK_CHECK(m.cfg.mtp_depth >= 1 && !m.w.mtp.empty(),
              "speculative decoding with MTP needs a model with MTP weights "
              "(model.layers.{}.eh_proj.weight ...); this one has none",
              m.cfg.num_hidden_layers);
}

void MtpDraft::forward(float* logits_last, float* g_last, const int32_t* next_tokens,
                       const float* h, int64_t S) {
  const ModelConfig& cfg = m_.cfg;
  const MtpWeights& M = m_.w.mtp[0];
  const int64_t C = cfg.hidden_size;
  const float eps = (float)cfg.rms_norm_eps;
  DSEEK_CHECK(S > 0, "MTP draft needs at least one position");
  check_ids(next_tokens, S, cfg.vocab_size);
  std::vector<float> e(S * C), cat(S * 2 * C), z(S * C);
  for (int64_t n = 0; n < S; n++)
    std::copy(m_.w.embed.ptr() + next_tokens[n] * C, m_.w.embed.ptr() + (next_tokens[n] + 1) * C,
              &e[n * C]);
  rmsnorm_forward(cat.data(), 2 * C, nullptr, e.data(), C, M.enorm.ptr(), S, C, eps);
  rmsnorm_forward(cat.data() + C, 2 * C, nullptr, h, C, M.hnorm.ptr(), S, C, eps);
  linear_forward(z.data(), cat.data(), M.eh_proj.ptr(), nullptr, S, 2 * C, C);
  std::vector<float> cos_t, sin_t;
  rope_for(cos_t, sin_t, m_, end(), S);
  attn_residual(z.data(), M.block, cfg, S, [&](float* out, const float* x) {
    mla_forward_absorbed(out, x, M.block, cfg, cos_t.data(), sin_t.data(), S, cache_, 0);
  });
  cache_.len += S;
  float* last = z.data() + (S - 1) * C;
  ffn_residual(last, M.block, cfg, cfg.num_hidden_layers, 1);
  rmsnorm_forward(g_last, C, nullptr, last, C, M.head_norm.ptr(), 1, C, eps);
  linear_forward(logits_last, g_last, m_.w.head().ptr(), nullptr, 1, C, cfg.vocab_size);
}

}  // namespace dseek
