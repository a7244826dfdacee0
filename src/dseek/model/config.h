// ModelConfig: a DeepSeek-V3 / V2 config.json, parsed and validated (SPEC §1), plus what is
// derived from it: qk_head_dim, the RoPE inverse frequencies (plain or YaRN, SPEC §3.4), the
// cos/sin attention factor and the softmax scale (SPEC §3.5).
// Accepts the classic hub layout (`rope_theta` + `rope_scaling` with `type`) and the
// transformers-5 layout (`rope_parameters` with `rope_type`). Unknown model types, activations
// other than silu and impossible shapes (e.g. n_routed_experts % n_group != 0) are refused.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace dseek {

enum class ModelArch { DEEPSEEK_V3, DEEPSEEK_V2 };
enum class RouterScoring { SIGMOID, SOFTMAX };
enum class TopkMethod { NOAUX_TC, GREEDY, GROUP_LIMITED_GREEDY };

struct RopeConfig {
  std::string type = "default";  // "default" or "yarn"
  double theta = 10000.0;
  double factor = 1.0;
  int64_t original_max_position_embeddings = 0;
  double beta_fast = 32.0, beta_slow = 1.0;
  double mscale = 0.0, mscale_all_dim = 0.0;  // 0 = absent
  double attention_factor = -1.0;             // < 0 = derive from mscales
  bool truncate = true;
};

struct ModelConfig {
  ModelArch arch = ModelArch::DEEPSEEK_V3;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;            // C
  int64_t intermediate_size = 0;      // dense FFN width
  int64_t moe_intermediate_size = 0;  // routed expert width
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;  // H
  int64_t n_shared_experts = 0;
  int64_t n_routed_experts = 0;  // E
  double routed_scaling_factor = 1.0;
  int64_t kv_lora_rank = 0;      // Dc
  int64_t q_lora_rank = 0;       // Dq; 0 = no q compression (q_proj)
  int64_t qk_rope_head_dim = 0;  // Dr
  int64_t qk_nope_head_dim = 0;  // Dn
  int64_t v_head_dim = 0;        // Dv
  int64_t n_group = 1;
  int64_t topk_group = 1;
  int64_t num_experts_per_tok = 0;  // Ek
  int64_t first_k_dense_replace = 0;
  bool norm_topk_prob = false;
  RouterScoring scoring = RouterScoring::SIGMOID;
  TopkMethod topk_method = TopkMethod::NOAUX_TC;
  double rms_norm_eps = 1e-6;
  int64_t max_position_embeddings = 4096;
  RopeConfig rope;
  bool rope_interleave = true;
  bool attention_bias = false;
  bool mlp_bias = false;
  bool tie_word_embeddings = false;
  int64_t bos_token_id = 0, eos_token_id = 1;
  int64_t num_nextn_predict_layers = 0;  // MTP depth in config.json (may ship no tensors)
  int64_t mtp_depth = 0;  // MTP modules present in this model's weights (set on load/init)

  // derived
  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  bool is_moe_layer(int64_t l) const { return n_routed_experts > 0 && l >= first_k_dense_replace; }
  int64_t shared_intermediate() const { return moe_intermediate_size * n_shared_experts; }
  std::vector<float> rope_inv_freq() const;  // [Dr/2], fp32 as HF computes it
  float rope_attention_factor() const;       // multiplies cos and sin (1.0 for shipped configs)
  float softmax_scale() const;               // qk_head_dim^-0.5 (* mscale^2 under YaRN)

  static ModelConfig from_json(const nlohmann::json& j, const std::string& origin = "config");
  static ModelConfig load(const std::string& model_dir_or_file);
  nlohmann::json to_json() const;  // hub layout (transformers-5 `rope_parameters` form)
  void validate(const std::string& origin) const;
};

const char* arch_name(ModelArch a);

}  // namespace dseek
