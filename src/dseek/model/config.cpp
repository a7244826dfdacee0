// Parsing and validation of config.json for deepseek_v3 / deepseek_v2, and the RoPE/YaRN
// quantities derived from it. Formulas follow transformers' modeling_rope_utils.py
// (_compute_default_rope_parameters, _compute_yarn_parameters) and the DeepSeek-V3 attention
// scaling (SPEC §3.4, §3.5); fp32 where transformers computes in fp32.
#include "dseek/model/config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "dseek/core/error.h"

namespace dseek {

using json = nlohmann::json;

const char* arch_name(ModelArch a) {
  return a == ModelArch::DEEPSEEK_V3 ? "deepseek_v3" : "deepseek_v2";
}

namespace {

// Typed field access with one-line errors: "config.json: field hidden_size must be an integer".
struct Fields {
  const json& j;
  const std::string& origin;
  bool has(const char* k) const { return j.contains(k) && !j[k].is_null(); }
  int64_t i(const char* k, int64_t def, bool required = false) const {
    if (!has(k)) {
      DSEEK_CHECK(!required, "{}: missing field '{}'", origin, k);
      return def;
    }
    const json& v = j[k];
    if (v.is_number_integer() || v.is_number_unsigned()) return v.get<int64_t>();
    if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>())
      return (int64_t)v.get<double>();
    fail("{}: field '{}' must be an integer, got {}", origin, k, v.dump());
  }
  double f(const char* k, double def) const {
    if (!has(k)) return def;
    DSEEK_CHECK(j[k].is_number(), "{}: field '{}' must be a number, got {}", origin, k,
                j[k].dump());
    return j[k].get<double>();
  }
  bool b(const char* k, bool def) const {
    if (!has(k)) return def;
    DSEEK_CHECK(j[k].is_boolean(), "{}: field '{}' must be true or false, got {}", origin, k,
                j[k].dump());
    return j[k].get<bool>();
  }
  std::string s(const char* k, const std::string& def) const {
    if (!has(k)) return def;
    DSEEK_CHECK(j[k].is_string(), "{}: field '{}' must be a string, got {}", origin, k,
                j[k].dump());
    return j[k].get<std::string>();
  }
};

double get_mscale(double scale, double m = 1.0) {
  return scale <= 1.0 ? 1.0 : 0.1 * m * std::log(scale) + 1.0;
}

}  // namespace

ModelConfig ModelConfig::from_json(const json& j, const std::string& origin) {
  DSEEK_CHECK(j.is_object(), "{}: expected a JSON object", origin);
  Fields F{j, origin};
  ModelConfig c;
  std::string mt = F.s("model_type", "");
  if (mt == "deepseek_v3") {
    c.arch = ModelArch::DEEPSEEK_V3;
  } else if (mt == "deepseek_v2") {
    c.arch = ModelArch::DEEPSEEK_V2;
  } else {
    fail("{}: unsupported model_type '{}' (dseek runs deepseek_v3 and deepseek_v2)", origin, mt);
  }
  const bool v3 = c.arch == ModelArch::DEEPSEEK_V3;
  c.vocab_size = F.i("vocab_size", 0, true);
  c.hidden_size = F.i("hidden_size", 0, true);
  c.intermediate_size = F.i("intermediate_size", 0);
  c.moe_intermediate_size = F.i("moe_intermediate_size", 0);
  c.num_hidden_layers = F.i("num_hidden_layers", 0, true);
  c.num_attention_heads = F.i("num_attention_heads", 0, true);
  c.n_shared_experts = F.i("n_shared_experts", 0);
  // aliases of n_routed_experts in transformers 5 (num_local_experts for V3, num_experts for V2)
  c.n_routed_experts = F.has("n_routed_experts") ? F.i("n_routed_experts", 0)
                                                 : F.i("num_local_experts", F.i("num_experts", 0));
  c.routed_scaling_factor = F.f("routed_scaling_factor", 1.0);
  c.kv_lora_rank = F.i("kv_lora_rank", 0, true);
  c.q_lora_rank = F.i("q_lora_rank", 0);  // null -> 0 (no q compression)
  c.qk_rope_head_dim = F.i("qk_rope_head_dim", 0, true);
  c.qk_nope_head_dim = F.i("qk_nope_head_dim", 0, true);
  c.v_head_dim = F.i("v_head_dim", 0, true);
  c.n_group = F.i("n_group", 1);
  c.topk_group = F.i("topk_group", 1);
  c.num_experts_per_tok = F.i("num_experts_per_tok", 0);
  c.first_k_dense_replace = F.i("first_k_dense_replace", 0);
  c.rms_norm_eps = F.f("rms_norm_eps", 1e-6);
  c.max_position_embeddings = F.i("max_position_embeddings", 4096);
  c.attention_bias = F.b("attention_bias", false);
  c.mlp_bias = F.b("mlp_bias", false);
  c.tie_word_embeddings = F.b("tie_word_embeddings", false);
  c.bos_token_id = F.i("bos_token_id", v3 ? 0 : 100000);
  c.eos_token_id = F.i("eos_token_id", v3 ? 1 : 100001);
  c.num_nextn_predict_layers = F.i("num_nextn_predict_layers", 0);
  c.rope_interleave = v3 ? F.b("rope_interleave", true) : true;

  std::string act = F.s("hidden_act", "silu");
  DSEEK_CHECK(act == "silu", "{}: hidden_act '{}' is not supported (DeepSeek models use silu)",
              origin, act);
  if (F.has("num_key_value_heads")) {
    int64_t kvh = F.i("num_key_value_heads", 0);
    DSEEK_CHECK(kvh == c.num_attention_heads,
                "{}: num_key_value_heads ({}) must equal num_attention_heads ({}) for MLA", origin,
                kvh, c.num_attention_heads);
  }

  // Router. V3: sigmoid + noaux_tc, normalization from norm_topk_prob. V2: softmax, greedy or
  // group_limited_greedy, never normalized (transformers' V2 ignores norm_topk_prob).
  if (v3) {
    c.scoring = RouterScoring::SIGMOID;
    c.topk_method = TopkMethod::NOAUX_TC;
    c.norm_topk_prob = F.b("norm_topk_prob", true);
    std::string sf = F.s("scoring_func", "sigmoid");
    DSEEK_CHECK(sf == "sigmoid", "{}: deepseek_v3 uses scoring_func 'sigmoid', got '{}'", origin,
                sf);
  } else {
    c.scoring = RouterScoring::SOFTMAX;
    c.norm_topk_prob = false;
    std::string tm = F.s("topk_method", "greedy");
    if (tm == "greedy") {
      c.topk_method = TopkMethod::GREEDY;
    } else if (tm == "group_limited_greedy") {
      c.topk_method = TopkMethod::GROUP_LIMITED_GREEDY;
    } else {
      fail("{}: unsupported topk_method '{}' for deepseek_v2 (greedy, group_limited_greedy)",
           origin, tm);
    }
    std::string sf = F.s("scoring_func", "softmax");
    DSEEK_CHECK(sf == "softmax", "{}: deepseek_v2 uses scoring_func 'softmax', got '{}'", origin,
                sf);
  }

  // RoPE: transformers-5 `rope_parameters`, or classic `rope_theta` + `rope_scaling`.
  json rp = json::object();
  if (F.has("rope_parameters")) {
    DSEEK_CHECK(j["rope_parameters"].is_object(), "{}: rope_parameters must be an object", origin);
    rp = j["rope_parameters"];
  } else if (F.has("rope_scaling")) {
    DSEEK_CHECK(j["rope_scaling"].is_object(), "{}: rope_scaling must be an object or null",
                origin);
    rp = j["rope_scaling"];
  }
  Fields R{rp, origin};
  c.rope.theta = R.has("rope_theta") ? R.f("rope_theta", 10000.0) : F.f("rope_theta", 10000.0);
  c.rope.type = R.has("rope_type") ? R.s("rope_type", "default") : R.s("type", "default");
  if (c.rope.type == "default") {
    // nothing else
  } else if (c.rope.type == "yarn") {
    c.rope.factor = R.f("factor", 0.0);
    DSEEK_CHECK(R.has("factor"), "{}: yarn rope scaling needs 'factor'", origin);
    c.rope.original_max_position_embeddings =
        F.has("original_max_position_embeddings")
            ? F.i("original_max_position_embeddings", 0)
            : R.i("original_max_position_embeddings", c.max_position_embeddings);
    c.rope.beta_fast = R.f("beta_fast", 32.0);
    c.rope.beta_slow = R.f("beta_slow", 1.0);
    if (c.rope.beta_fast == 0) c.rope.beta_fast = 32.0;
    if (c.rope.beta_slow == 0) c.rope.beta_slow = 1.0;
    c.rope.mscale = R.f("mscale", 0.0);
    c.rope.mscale_all_dim = R.f("mscale_all_dim", 0.0);
    c.rope.attention_factor = R.f("attention_factor", -1.0);
    c.rope.truncate = R.b("truncate", true);
  } else {
    fail("{}: unsupported rope type '{}' (dseek supports default and yarn)", origin, c.rope.type);
  }
  c.validate(origin);
  return c;
}

void ModelConfig::validate(const std::string& origin) const {
  auto pos = [&](int64_t v, const char* name) {
    DSEEK_CHECK(v > 0, "{}: {} must be positive, got {}", origin, name, v);
  };
  pos(vocab_size, "vocab_size");
  pos(hidden_size, "hidden_size");
  pos(num_hidden_layers, "num_hidden_layers");
  pos(num_attention_heads, "num_attention_heads");
  pos(kv_lora_rank, "kv_lora_rank");
  pos(qk_rope_head_dim, "qk_rope_head_dim");
  pos(v_head_dim, "v_head_dim");
  DSEEK_CHECK(qk_nope_head_dim >= 0, "{}: qk_nope_head_dim must be >= 0", origin);
  DSEEK_CHECK(q_lora_rank >= 0, "{}: q_lora_rank must be >= 0 or null", origin);
  DSEEK_CHECK(qk_rope_head_dim % 2 == 0, "{}: qk_rope_head_dim must be even, got {}", origin,
              qk_rope_head_dim);
  DSEEK_CHECK(rms_norm_eps > 0, "{}: rms_norm_eps must be positive", origin);
  DSEEK_CHECK(first_k_dense_replace >= 0, "{}: first_k_dense_replace must be >= 0", origin);
  const bool any_dense = n_routed_experts == 0 || first_k_dense_replace > 0;
  if (any_dense) pos(intermediate_size, "intermediate_size");
  DSEEK_CHECK(n_routed_experts >= 0, "{}: n_routed_experts must be >= 0", origin);
  if (n_routed_experts > 0 && first_k_dense_replace < num_hidden_layers) {
    pos(moe_intermediate_size, "moe_intermediate_size");
    pos(n_group, "n_group");
    DSEEK_CHECK(n_shared_experts >= 0, "{}: n_shared_experts must be >= 0", origin);
    DSEEK_CHECK(num_experts_per_tok >= 1 && num_experts_per_tok <= n_routed_experts,
                "{}: num_experts_per_tok ({}) must be between 1 and n_routed_experts ({})", origin,
                num_experts_per_tok, n_routed_experts);
    DSEEK_CHECK(n_routed_experts % n_group == 0,
                "{}: n_routed_experts ({}) is not divisible by n_group ({})", origin,
                n_routed_experts, n_group);
    DSEEK_CHECK(topk_group >= 1 && topk_group <= n_group,
                "{}: topk_group ({}) must be between 1 and n_group ({})", origin, topk_group,
                n_group);
    const bool grouped =
        arch == ModelArch::DEEPSEEK_V3 || topk_method == TopkMethod::GROUP_LIMITED_GREEDY;
    if (grouped) {
      DSEEK_CHECK(topk_group * (n_routed_experts / n_group) >= num_experts_per_tok,
                  "{}: topk_group ({}) groups of {} experts leave fewer than "
                  "num_experts_per_tok ({}) experts to choose from",
                  origin, topk_group, n_routed_experts / n_group, num_experts_per_tok);
    }
    if (arch == ModelArch::DEEPSEEK_V3) {
      DSEEK_CHECK(n_routed_experts / n_group >= 2,
                  "{}: deepseek_v3 routing scores groups by their top-2 experts, so each of "
                  "the n_group ({}) groups needs at least 2 experts",
                  origin, n_group);
    }
  }
  if (rope.type == "yarn") {
    DSEEK_CHECK(rope.factor > 0, "{}: yarn factor must be positive, got {}", origin, rope.factor);
    DSEEK_CHECK(rope.original_max_position_embeddings > 0,
                "{}: yarn original_max_position_embeddings must be positive", origin);
  }
  DSEEK_CHECK(rope.theta > 0, "{}: rope_theta must be positive", origin);
}

ModelConfig ModelConfig::load(const std::string& path) {
  namespace fs = std::filesystem;
  std::string file = path;
  if (fs::is_directory(path)) file = (fs::path(path) / "config.json").string();
  std::ifstream in(file);
  DSEEK_CHECK(in.good(), "cannot open model config {}: {}", file,
              fs::exists(file) ? "not readable" : "no such file");
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  DSEEK_CHECK(!j.is_discarded(), "{}: malformed JSON", file);
  return from_json(j, file);
}

std::vector<float> ModelConfig::rope_inv_freq() const {
  const int64_t dim = qk_rope_head_dim;
  const int64_t half = dim / 2;
  std::vector<float> inv(half);
  const float base = (float)rope.theta;
  std::vector<float> pos_freqs(half);
  for (int64_t i = 0; i < half; i++) {
    float e = (float)(2 * i) / (float)dim;  // fp32 as torch.arange(...).float() / dim
    pos_freqs[i] = (float)std::pow((double)base, (double)e);
  }
  if (rope.type != "yarn") {
    for (int64_t i = 0; i < half; i++) inv[i] = 1.0f / pos_freqs[i];
    return inv;
  }
  const double orig = (double)rope.original_max_position_embeddings;
  auto corr_dim = [&](double nrot) {
    return (dim * std::log(orig / (nrot * 2 * M_PI))) / (2 * std::log(rope.theta));
  };
  double low = corr_dim(rope.beta_fast), high = corr_dim(rope.beta_slow);
  if (rope.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, (double)(dim - 1));
  if (low == high) high += 0.001;
  const float factor = (float)rope.factor;
  for (int64_t i = 0; i < half; i++) {
    float extra = 1.0f / pos_freqs[i];
    float inter = 1.0f / (factor * pos_freqs[i]);
    float ramp = ((float)i - (float)low) / (float)(high - low);
    ramp = std::min(std::max(ramp, 0.0f), 1.0f);
    float ef = 1.0f - ramp;
    inv[i] = inter * (1.0f - ef) + extra * ef;
  }
  return inv;
}

float ModelConfig::rope_attention_factor() const {
  if (rope.type != "yarn") return 1.0f;
  if (rope.attention_factor >= 0) return (float)rope.attention_factor;
  if (rope.mscale != 0 && rope.mscale_all_dim != 0)
    return (float)(get_mscale(rope.factor, rope.mscale) /
                   get_mscale(rope.factor, rope.mscale_all_dim));
  return (float)get_mscale(rope.factor);
}

float ModelConfig::softmax_scale() const {
  double s = std::pow((double)qk_head_dim(), -0.5);
  if (rope.type != "default" && rope.mscale_all_dim != 0) {
    double m = get_mscale(rope.factor, rope.mscale_all_dim);
    s = s * m * m;
  }
  return (float)s;
}

json ModelConfig::to_json() const {
  const bool v3 = arch == ModelArch::DEEPSEEK_V3;
  json j;
  j["architectures"] = {v3 ? "DeepseekV3ForCausalLM" : "DeepseekV2ForCausalLM"};
  j["model_type"] = arch_name(arch);
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["moe_intermediate_size"] = moe_intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_attention_heads;
  j["n_shared_experts"] = n_shared_experts;
  j["n_routed_experts"] = n_routed_experts;
  j["routed_scaling_factor"] = routed_scaling_factor;
  j["kv_lora_rank"] = kv_lora_rank;
  j["q_lora_rank"] = q_lora_rank > 0 ? json(q_lora_rank) : json(nullptr);
  j["qk_rope_head_dim"] = qk_rope_head_dim;
  j["qk_nope_head_dim"] = qk_nope_head_dim;
  j["v_head_dim"] = v_head_dim;
  j["n_group"] = n_group;
  j["topk_group"] = topk_group;
  j["num_experts_per_tok"] = num_experts_per_tok;
  j["first_k_dense_replace"] = first_k_dense_replace;
  j["norm_topk_prob"] = norm_topk_prob;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = rms_norm_eps;
  j["max_position_embeddings"] = max_position_embeddings;
  j["attention_bias"] = attention_bias;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["bos_token_id"] = bos_token_id;
  j["eos_token_id"] = eos_token_id;
  j["num_nextn_predict_layers"] = mtp_depth;
  if (v3) {
    j["rope_interleave"] = rope_interleave;
    j["scoring_func"] = "sigmoid";
    j["topk_method"] = "noaux_tc";
  } else {
    j["scoring_func"] = "softmax";
    j["topk_method"] = topk_method == TopkMethod::GREEDY ? "greedy" : "group_limited_greedy";
    j["mlp_bias"] = mlp_bias;
  }
  json rp = {{"rope_theta", rope.theta}, {"rope_type", rope.type}};
  if (rope.type == "yarn") {
    rp["factor"] = rope.factor;
    rp["original_max_position_embeddings"] = rope.original_max_position_embeddings;
    rp["beta_fast"] = rope.beta_fast;
    rp["beta_slow"] = rope.beta_slow;
    if (rope.mscale != 0) rp["mscale"] = rope.mscale;
    if (rope.mscale_all_dim != 0) rp["mscale_all_dim"] = rope.mscale_all_dim;
    if (rope.attention_factor >= 0) rp["attention_factor"] = rope.attention_factor;
  }
  j["rope_parameters"] = rp;
  j["torch_dtype"] = "float32";
  return j;
}

}  // namespace dseek
