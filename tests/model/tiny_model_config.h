// Test kit of tests/model: the small DeepSeek-V3 config the gradient tests share (vocab 64,
// hidden 32, 2 layers: one dense, one MoE with 8 routed experts in 4 groups, top-2, one shared
// expert; q-LoRA and the latent KV), so every path of the model carries a gradient.
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "dseek/model/config.h"

namespace dseek_test {

inline dseek::ModelConfig tiny_model_config(bool tied, int64_t mtp_depth) {
  nlohmann::json j = {{"model_type", "deepseek_v3"},
                      {"vocab_size", 64},
                      {"hidden_size", 32},
                      {"intermediate_size", 48},
                      {"moe_intermediate_size", 16},
                      {"num_hidden_layers", 2},
                      {"num_attention_heads", 2},
                      {"n_shared_experts", 1},
                      {"n_routed_experts", 8},
                      {"routed_scaling_factor", 2.5},
                      {"kv_lora_rank", 16},
                      {"q_lora_rank", 24},
                      {"qk_rope_head_dim", 8},
                      {"v_head_dim", 8},
                      {"qk_nope_head_dim", 8},
                      {"n_group", 4},
                      {"topk_group", 2},
                      {"num_experts_per_tok", 2},
                      {"first_k_dense_replace", 1},
                      {"tie_word_embeddings", tied}};
  dseek::ModelConfig c = dseek::ModelConfig::from_json(j);
  c.mtp_depth = mtp_depth;
  return c;
}

}  // namespace dseek_test
