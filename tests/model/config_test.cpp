// config.json parsing: both rope layouts, the derived YaRN quantities against SPEC §3.4/§3.5,
// and clear refusals of impossible or unsupported configs.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "dseek/core/error.h"
#include "dseek/model/config.h"
#include "dseek/model/model_stats.h"

using namespace dseek;
using json = nlohmann::json;

namespace {
json load_json(const std::string& p) {
  std::ifstream f(p);
  return json::parse(f);
}
const std::string kV3 = std::string(DSEEK_FIXTURES) + "/configs/deepseek_v3_671b.json";

void expect_error(const json& j, const std::string& needle) {
  try {
    ModelConfig::from_json(j, "cfg");
    FAIL() << "expected an error mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}
}  // namespace

TEST(Config, V3YarnMatchesSpecTable) {
  ModelConfig c = ModelConfig::load(kV3);
  EXPECT_EQ(c.arch, ModelArch::DEEPSEEK_V3);
  EXPECT_EQ(c.rope.type, "yarn");
  std::vector<float> f = c.rope_inv_freq();
  ASSERT_EQ(f.size(), 32u);
  // SPEC §3.4 reference values (fp32, +-1 ulp against torch's powf)
  const std::pair<int, double> table[] = {
      {0, 1.000000000e+00},  {1, 7.498942018e-01},  {8, 1.000000015e-01},  {10, 5.623412877e-02},
      {11, 3.900692612e-02}, {12, 2.687936090e-02}, {13, 1.837814413e-02}, {14, 1.244795602e-02},
      {15, 8.334509097e-03}, {16, 5.500000436e-03}, {17, 3.561997321e-03}, {18, 2.249365207e-03},
      {20, 7.905694074e-04}, {22, 1.778279402e-04}, {23, 3.333803397e-05}, {24, 2.499999937e-05},
      {28, 7.905694474e-06}, {31, 3.333803534e-06}};
  for (auto [i, v] : table) EXPECT_NEAR(f[i], v, 4e-7 * v) << "inv_freq[" << i << "]";
  EXPECT_NEAR(c.softmax_scale(), 0.1352337789, 1e-8);
  EXPECT_FLOAT_EQ(c.rope_attention_factor(), 1.0f);
}

TEST(Config, V2LiteMscaleScale) {
  json j = load_json(kV3);
  j["model_type"] = "deepseek_v2";
  j["scoring_func"] = "softmax";
  j["topk_method"] = "greedy";
  j["rope_scaling"]["mscale"] = 0.707;
  j["rope_scaling"]["mscale_all_dim"] = 0.707;
  ModelConfig c = ModelConfig::from_json(j);
  EXPECT_NEAR(c.softmax_scale(), 0.1147213868, 1e-8);  // SPEC §3.5
  EXPECT_FLOAT_EQ(c.rope_attention_factor(), 1.0f);
}

TEST(Config, BothRopeLayoutsAgree) {
  json classic = load_json(kV3);
  json v5 = classic;
  v5.erase("rope_scaling");
  v5.erase("rope_theta");
  v5["rope_parameters"] = {{"rope_type", "yarn"}, {"rope_theta", 10000.0},
                           {"factor", 40.0},      {"original_max_position_embeddings", 4096},
                           {"beta_fast", 32.0},   {"beta_slow", 1.0},
                           {"mscale", 1.0},       {"mscale_all_dim", 1.0}};
  ModelConfig a = ModelConfig::from_json(classic), b = ModelConfig::from_json(v5);
  EXPECT_EQ(a.rope_inv_freq(), b.rope_inv_freq());
  EXPECT_EQ(a.softmax_scale(), b.softmax_scale());
  // and the round trip through to_json keeps the derived numbers
  ModelConfig c = ModelConfig::from_json(a.to_json());
  EXPECT_EQ(a.rope_inv_freq(), c.rope_inv_freq());
  EXPECT_EQ(a.softmax_scale(), c.softmax_scale());
  EXPECT_EQ(c.q_lora_rank, 1536);
}

TEST(Config, DefaultRopeIsPlain) {
  ModelConfig c = ModelConfig::load(std::string(DSEEK_FIXTURES) + "/v3_tiny");
  std::vector<float> f = c.rope_inv_freq();
  ASSERT_EQ(f.size(), 4u);
  for (int i = 0; i < 4; i++) EXPECT_NEAR(f[i], std::pow(10000.0, -2.0 * i / 8), 1e-7);
  EXPECT_NEAR(c.softmax_scale(), 1.0 / std::sqrt(24.0), 1e-8);
}

TEST(Config, StatsOfDeepSeekV3) {
  ModelStats s = model_stats(ModelConfig::load(kV3));
  // DeepSeek-V3: 671B total, 37B activated per token (technical report)
  EXPECT_NEAR(s.total_params / 1e9, 671.0, 0.5);
  EXPECT_NEAR(s.active_params / 1e9, 37.5, 0.5);
  // MLA cache: 61 * (512 + 64) values per token; MHA: 61 * 128 * (192 + 128)
  EXPECT_EQ(s.mla_cache_values_per_token, 61 * 576);
  EXPECT_EQ(s.mha_cache_values_per_token, 61 * 128 * 320);
}

TEST(Config, RefusesBadConfigs) {
  json base = load_json(kV3);
  auto with = [&](const char* k, json v) {
    json j = base;
    j[k] = v;
    return j;
  };
  expect_error(with("model_type", "llama"), "unsupported model_type 'llama'");
  expect_error(with("hidden_size", -4), "hidden_size must be positive");
  expect_error(with("hidden_size", "big"), "must be an integer");
  expect_error(with("n_group", 3), "not divisible by n_group");
  expect_error(with("num_experts_per_tok", 300), "num_experts_per_tok (300)");
  json few = with("topk_group", 1);  // 1 group of 32 experts cannot supply 33
  few["num_experts_per_tok"] = 33;
  expect_error(few, "fewer than num_experts_per_tok");
  expect_error(with("hidden_act", "gelu"), "hidden_act 'gelu'");
  expect_error(with("num_key_value_heads", 8), "must equal num_attention_heads");
  expect_error(with("qk_rope_head_dim", 63), "must be even");
  json j = base;
  j.erase("kv_lora_rank");
  expect_error(j, "missing field 'kv_lora_rank'");
  j = base;
  j["rope_scaling"]["type"] = "dynamic";
  expect_error(j, "unsupported rope type 'dynamic'");
  EXPECT_THROW(ModelConfig::load("/nonexistent/dir"), Error);
}

TEST(Config, MalformedJsonFile) {
  std::string p = testing::TempDir() + "/bad_config.json";
  std::ofstream(p) << "{\"model_type\": \"deepseek_v3\", ";
  try {
    ModelConfig::load(p);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("malformed JSON"), std::string::npos);
  }
}
