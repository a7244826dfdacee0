// Test kit shared by the post-training tests (tests/posttrain, tests/cli): a tiny random
// DeepSeek-V3 policy (2 layers, hidden 32, 4 routed experts) over the vocabulary of the
// tokenizer fixture, written as a model folder that ships tokenizer.json.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "dseek/model/checkpoint.h"
#include "dseek/tokenizer/tokenizer.h"

namespace dseek_test {

inline const std::string kTinyPolicyTokenizer = DSEEK_FIXTURES "/tokenizer_v3style/tokenizer.json";

// Writes the folder `dir` (replaced if present): config.json, model.safetensors (seeded random
// weights), tokenizer.json.
inline void write_tiny_policy(const std::string& dir, uint64_t seed) {
  dseek::Tokenizer tok = dseek::Tokenizer::load(kTinyPolicyTokenizer);
  nlohmann::json j = {{"model_type", "deepseek_v3"},
                      {"vocab_size", 3072},
                      {"hidden_size", 32},
                      {"intermediate_size", 48},
                      {"moe_intermediate_size", 16},
                      {"num_hidden_layers", 2},
                      {"num_attention_heads", 2},
                      {"n_shared_experts", 1},
                      {"n_routed_experts", 4},
                      {"routed_scaling_factor", 2.5},
                      {"kv_lora_rank", 16},
                      {"q_lora_rank", 24},
                      {"qk_rope_head_dim", 8},
                      {"v_head_dim", 8},
                      {"qk_nope_head_dim", 8},
                      {"n_group", 2},
                      {"topk_group", 1},
                      {"num_experts_per_tok", 2},
                      {"first_k_dense_replace", 1},
                      {"bos_token_id", tok.bos_id()},
                      {"eos_token_id", tok.eos_id()}};
  dseek::Model m = dseek::Model::random(dseek::ModelConfig::from_json(j), seed);
  dseek::save_model_dir_with_tokenizer(dir, m, {}, kTinyPolicyTokenizer);
}

}  // namespace dseek_test
