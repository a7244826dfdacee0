// Model: a DeepSeek-V3/V2 causal LM on the CPU (fp32): config + weights + the forward graph.
//   h = embed[t];  for each layer: h += MLA(RMSNorm(h));  h += FFN_or_MoE(RMSNorm(h))
//   logits = RMSNorm(h) W_head^T
// Two ways to run it: forward() over whole sequences with the naive MLA (the reference, and
// what training differentiates), and forward_cached() that appends tokens to a LatentCache and
// attends with kv_b_proj absorbed (generation). Both give the same logits to rounding.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dseek/core/tensor.h"
#include "dseek/infer/latent_cache.h"
#include "dseek/model/config.h"
#include "dseek/model/weights.h"

namespace dseek {

struct Model {
  ModelConfig cfg;
  ModelWeights w;
  std::vector<float> inv_freq;  // [Dr/2]
  float rope_attn_factor = 1.0f;

  // Load config.json + safetensors (single file, sharded, or FP8 with block scales).
  static Model load(const std::string& dir);
  // A model of the given config with random weights (seeded).
  static Model random(const ModelConfig& cfg, uint64_t seed);

  // B sequences of T tokens (row-major [B, T]) -> logits [B*T, V].
  Tensor forward(const int32_t* tokens, int64_t B, int64_t T) const;
  // Append S tokens to `cache` and return their logits: [S, V], or [1, V] (last token) if
  // last_only. hn_out, when given, receives the hidden states after the final norm of all S
  // tokens [S, C] (what the MTP module consumes); the logits are the same bit for bit.
  Tensor forward_cached(LatentCache& cache, const int32_t* tokens, int64_t S, bool last_only = true,
                        float* hn_out = nullptr) const;
  LatentCache new_cache() const;

 private:
  void init_derived();
  void check_tokens(const int32_t* tokens, int64_t n) const;
  void logits_from_hidden(float* logits, const float* h, int64_t N) const;
};

// Mean next-token cross-entropy as transformers' ForCausalLMLoss with labels = tokens:
// position t predicts token t+1; the last position of each sequence has no target.
double causal_lm_loss(const Tensor& logits, const int32_t* tokens, int64_t B, int64_t T);

}  // namespace dseek
