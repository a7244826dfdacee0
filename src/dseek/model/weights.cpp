// Parameter list, allocation, random init and checkpoint loading for ModelWeights.
#include "dseek/model/weights.h"

#include <cmath>
#include <random>

#include <fmt/format.h>

#include "dseek/io/safetensors.h"
#include "dseek/ops/fp8_block.h"

namespace dseek {

namespace {
// The parameters of one decoder layer with hub prefix `pre`; `moe` picks the FFN kind.
void layer_params(std::vector<ParamRef>& p, const ModelConfig& c, LayerWeights& L,
                  const std::string& pre, bool moe) {
  const int64_t C = c.hidden_size, H = c.num_attention_heads, Dqk = c.qk_head_dim();
  const int64_t Dc = c.kv_lora_rank, Dr = c.qk_rope_head_dim, Dn = c.qk_nope_head_dim;
  const int64_t Dv = c.v_head_dim, Dq = c.q_lora_rank, I = c.intermediate_size;
  const int64_t Im = c.moe_intermediate_size, Is = c.shared_intermediate(), E = c.n_routed_experts;
  auto add = [&](const std::string& n, Tensor* t, std::vector<int64_t> s, bool tr = true) {
    p.push_back({pre + n, t, std::move(s), tr});
  };
  add("input_layernorm.weight", &L.attn_norm, {C});
  if (Dq > 0) {
    add("self_attn.q_a_proj.weight", &L.q_a_proj, {Dq, C});
    if (c.attention_bias) add("self_attn.q_a_proj.bias", &L.q_a_bias, {Dq});
    add("self_attn.q_a_layernorm.weight", &L.q_a_norm, {Dq});
    add("self_attn.q_b_proj.weight", &L.q_b_proj, {H * Dqk, Dq});
  } else {
    add("self_attn.q_proj.weight", &L.q_proj, {H * Dqk, C});
  }
  add("self_attn.kv_a_proj_with_mqa.weight", &L.kv_a_proj, {Dc + Dr, C});
  if (c.attention_bias) add("self_attn.kv_a_proj_with_mqa.bias", &L.kv_a_bias, {Dc + Dr});
  add("self_attn.kv_a_layernorm.weight", &L.kv_a_norm, {Dc});
  add("self_attn.kv_b_proj.weight", &L.kv_b_proj, {H * (Dn + Dv), Dc});
  add("self_attn.o_proj.weight", &L.o_proj, {C, H * Dv});
  if (c.attention_bias) add("self_attn.o_proj.bias", &L.o_bias, {C});
  add("post_attention_layernorm.weight", &L.ffn_norm, {C});
  if (!moe) {
    add("mlp.gate_proj.weight", &L.gate_proj, {I, C});
    add("mlp.up_proj.weight", &L.up_proj, {I, C});
    add("mlp.down_proj.weight", &L.down_proj, {C, I});
    return;
  }
  add("mlp.gate.weight", &L.router, {E, C});
  if (c.arch == ModelArch::DEEPSEEK_V3)
    add("mlp.gate.e_score_correction_bias", &L.router_bias, {E}, false);
  L.exp_gate.resize(E);
  L.exp_up.resize(E);
  L.exp_down.resize(E);
  for (int64_t e = 0; e < E; e++) {
    add(fmt::format("mlp.experts.{}.gate_proj.weight", e), &L.exp_gate[e], {Im, C});
    add(fmt::format("mlp.experts.{}.up_proj.weight", e), &L.exp_up[e], {Im, C});
    add(fmt::format("mlp.experts.{}.down_proj.weight", e), &L.exp_down[e], {C, Im});
  }
  if (Is > 0) {
    add("mlp.shared_experts.gate_proj.weight", &L.sh_gate, {Is, C});
    add("mlp.shared_experts.up_proj.weight", &L.sh_up, {Is, C});
    add("mlp.shared_experts.down_proj.weight", &L.sh_down, {C, Is});
  }
}
}  // namespace

std::vector<ParamRef> model_params(const ModelConfig& c, ModelWeights& w) {
  const int64_t C = c.hidden_size;
  std::vector<ParamRef> p;
  if (w.layers.size() != (size_t)c.num_hidden_layers) w.layers.resize(c.num_hidden_layers);
  if (w.mtp.size() != (size_t)c.mtp_depth) w.mtp.resize(c.mtp_depth);
  p.push_back({"model.embed_tokens.weight", &w.embed, {c.vocab_size, C}});
  for (int64_t l = 0; l < c.num_hidden_layers; l++)
    layer_params(p, c, w.layers[l], fmt::format("model.layers.{}.", l), c.is_moe_layer(l));
  p.push_back({"model.norm.weight", &w.norm, {C}});
  if (!c.tie_word_embeddings) p.push_back({"lm_head.weight", &w.lm_head, {c.vocab_size, C}});
  for (int64_t k = 0; k < c.mtp_depth; k++) {
    MtpWeights& M = w.mtp[k];
    const int64_t li = c.num_hidden_layers + k;
    const std::string pre = fmt::format("model.layers.{}.", li);
    p.push_back({pre + "enorm.weight", &M.enorm, {C}});
    p.push_back({pre + "hnorm.weight", &M.hnorm, {C}});
    p.push_back({pre + "eh_proj.weight", &M.eh_proj, {C, 2 * C}});
    layer_params(p, c, M.block, pre, c.is_moe_layer(li));
    p.push_back({pre + "shared_head.norm.weight", &M.head_norm, {C}});
  }
  return p;
}

std::vector<std::string> mtp_shared_copy_names(const ModelConfig& c, int64_t k) {
  const std::string pre = fmt::format("model.layers.{}.", c.num_hidden_layers + k);
  return {pre + "embed_tokens.weight", pre + "shared_head.head.weight"};
}

void weights_allocate(const ModelConfig& c, ModelWeights& w) {
  for (ParamRef& p : model_params(c, w)) *p.tensor = Tensor(p.shape);
}

void weights_init_random(const ModelConfig& c, ModelWeights& w, uint64_t seed, float init_std) {
  std::mt19937_64 rng(seed);
  for (ParamRef& p : model_params(c, w)) {
    *p.tensor = Tensor(p.shape);
    Tensor& t = *p.tensor;
    if (p.shape.size() == 1) {  // norms = 1, biases (router bias, attention biases) = 0
      const bool is_norm = p.name.find("norm") != std::string::npos;
      for (float& v : t.data) v = is_norm ? 1.0f : 0.0f;
      continue;
    }
    // Box-Muller on our own uniform draws: identical on every platform for a given seed.
    auto uni = [&]() { return ((rng() >> 11) + 0.5) * (1.0 / 9007199254740992.0); };
    for (int64_t i = 0; i < t.numel(); i += 2) {
      double u1 = uni(), u2 = uni();
      double r = std::sqrt(-2.0 * std::log(u1));
      t.data[i] = (float)(init_std * r * std::cos(2 * M_PI * u2));
      if (i + 1 < t.numel()) t.data[i + 1] = (float)(init_std * r * std::sin(2 * M_PI * u2));
    }
  }
}

void weights_load(ModelConfig& c, ModelWeights& w, const Checkpoint& ck) {
  c.mtp_depth = 0;
  while (ck.has(fmt::format("model.layers.{}.eh_proj.weight", c.num_hidden_layers + c.mtp_depth)))
    c.mtp_depth++;
  for (ParamRef& p : model_params(c, w)) {
    const TensorInfo* t = ck.find(p.name);
    DSEEK_CHECK(t, "checkpoint {} has no tensor {} (expected shape {})", ck.dir(), p.name,
                shape_str(p.shape));
    if (t->dtype == DType::F8_E4M3) {
      const TensorInfo* s = ck.find(p.name + "_scale_inv");
      DSEEK_CHECK(s, "FP8 weight {} has no scale tensor {}_scale_inv", p.name, p.name);
      DSEEK_CHECK(t->shape == p.shape, "tensor {} has shape {}, expected {}", p.name,
                  shape_str(t->shape), shape_str(p.shape));
      *p.tensor = fp8_block_dequant(*t, *s);
    } else {
      *p.tensor = read_f32(*t, p.shape);
    }
  }
}

int64_t weights_count(const ModelConfig& c) {
  ModelWeights w;
  int64_t n = 0;
  for (const ParamRef& p : model_params(c, w)) n += Tensor::numel_of(p.shape);
  return n;
}

}  // namespace dseek
