#include "dseek/model/model_stats.h"

#include "dseek/model/weights.h"

namespace dseek {

ModelStats model_stats(const ModelConfig& c) {
  ModelStats s;
  ModelWeights w;
  const int64_t K = c.num_experts_per_tok;
  int64_t per_expert = 0;
  for (const ParamRef& p : model_params(c, w)) {
    const int64_t n = Tensor::numel_of(p.shape);
    s.total_params += n;
    if (p.name.find(".mlp.experts.") != std::string::npos) {
      s.routed_expert_params += n;
      if (p.name.find(".mlp.experts.0.") != std::string::npos &&
          p.name.find("model.layers." + std::to_string(c.first_k_dense_replace) + ".") == 0)
        per_expert += n;
    }
    if (p.name == "model.embed_tokens.weight" || p.name == "lm_head.weight")
      s.embedding_params += n;
  }
  const int64_t n_moe = c.n_routed_experts > 0
                            ? std::max<int64_t>(0, c.num_hidden_layers - c.first_k_dense_replace)
                            : 0;
  s.active_params = s.total_params - s.routed_expert_params + n_moe * K * per_expert;
  // One MTP module = eh_proj [C, 2C] + 3 norms + one decoder block (MoE if past the dense ones)
  if (c.num_nextn_predict_layers > 0) {
    ModelConfig one = c;
    one.num_hidden_layers = 1;
    one.first_k_dense_replace = c.num_hidden_layers >= c.first_k_dense_replace ? 0 : 1;
    ModelWeights w1;
    int64_t block = 0;
    for (const ParamRef& p : model_params(one, w1))
      if (p.name.rfind("model.layers.", 0) == 0) block += Tensor::numel_of(p.shape);
    const int64_t C = c.hidden_size;
    s.mtp_params_estimate = c.num_nextn_predict_layers * (block + 2 * C * C + 3 * C);
  }
  s.mla_cache_values_per_token = c.num_hidden_layers * (c.kv_lora_rank + c.qk_rope_head_dim);
  s.mha_cache_values_per_token =
      c.num_hidden_layers * c.num_attention_heads * (c.qk_head_dim() + c.v_head_dim);
  return s;
}

}  // namespace dseek
