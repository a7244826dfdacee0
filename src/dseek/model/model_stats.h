// Parameter and KV-cache arithmetic for `dseek info` (from the config alone, no weights):
//   total     = every parameter of the main model (MTP modules excluded, counted apart)
//   active    = what one token touches: everything except the routed experts it does not
//               choose (Ek of E routed experts per MoE layer)
//   kv cache  = per token and layer, MLA keeps c_kv (Dc) + k_pe (Dr) values; standard MHA of
//               the same shape would keep K and V for every head: H * (Dqk + Dv)
#pragma once

#include <cstdint>

#include "dseek/model/config.h"

namespace dseek {

struct ModelStats {
  int64_t total_params = 0;
  int64_t active_params = 0;         // per token, embeddings and head included
  int64_t embedding_params = 0;      // embed_tokens + lm_head (one copy when tied)
  int64_t routed_expert_params = 0;  // all routed experts, all layers
  int64_t mtp_params_estimate = 0;   // num_nextn_predict_layers modules (shared emb/head excl.)
  int64_t mla_cache_values_per_token = 0;  // all layers
  int64_t mha_cache_values_per_token = 0;  // all layers
};

ModelStats model_stats(const ModelConfig& c);

}  // namespace dseek
