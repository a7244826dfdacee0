// `dseek info MODEL`: the resolved config, parameter counts (total, active per token) and the
// MLA latent-cache size per token against standard multi-head attention of the same shape.
// Reads config.json only (and lists checkpoint tensors when present), so it works on a
// config for a 671B model without its weights.
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dseek/cli/command.h"
#include "dseek/io/safetensors.h"
#include "dseek/model/config.h"
#include "dseek/model/model_stats.h"

namespace {

std::string human(double n) {
  const char* u[] = {"", "K", "M", "B", "T"};
  int i = 0;
  while (n >= 1000 && i < 4) {
    n /= 1000;
    i++;
  }
  return fmt::format("{:.2f}{}", n, u[i]);
}

std::string bytes(double b) {
  const char* u[] = {"B", "KiB", "MiB", "GiB"};
  int i = 0;
  while (b >= 1024 && i < 3) {
    b /= 1024;
    i++;
  }
  return fmt::format("{:.1f} {}", b, u[i]);
}

void run_info(const std::string& path, bool as_json) {
  using namespace dseek;
  ModelConfig c = ModelConfig::load(path);
  ModelStats s = model_stats(c);
  const int64_t ctx = 4096;
  if (as_json) {
    nlohmann::json j = {
        {"model_type", arch_name(c.arch)},
        {"total_params", s.total_params},
        {"active_params", s.active_params},
        {"embedding_params", s.embedding_params},
        {"routed_expert_params", s.routed_expert_params},
        {"mtp_params_estimate", s.mtp_params_estimate},
        {"mla_cache_bytes_per_token_bf16", s.mla_cache_values_per_token * 2},
        {"mha_cache_bytes_per_token_bf16", s.mha_cache_values_per_token * 2},
        {"cache_compression", (double)s.mha_cache_values_per_token / s.mla_cache_values_per_token}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("[model] %s  (%s)\n", path.c_str(), arch_name(c.arch));
  std::printf("  layers %ld (dense %ld, MoE %ld)  hidden %ld  heads %ld  vocab %ld\n",
              (long)c.num_hidden_layers,
              (long)std::min(c.first_k_dense_replace, c.num_hidden_layers),
              (long)(c.n_routed_experts
                         ? std::max<int64_t>(0, c.num_hidden_layers - c.first_k_dense_replace)
                         : 0),
              (long)c.hidden_size, (long)c.num_attention_heads, (long)c.vocab_size);
  std::printf("  MLA: q_lora %s  kv_lora %ld  nope %ld + rope %ld  v %ld  rope %s%s\n",
              c.q_lora_rank ? std::to_string(c.q_lora_rank).c_str() : "none", (long)c.kv_lora_rank,
              (long)c.qk_nope_head_dim, (long)c.qk_rope_head_dim, (long)c.v_head_dim,
              c.rope.type.c_str(),
              c.rope.type == "yarn" ? fmt::format(" x{}", c.rope.factor).c_str() : "");
  if (c.n_routed_experts)
    std::printf("  MoE: %ld routed (top-%ld, %ld groups keep %ld) + %ld shared, width %ld, %s\n",
                (long)c.n_routed_experts, (long)c.num_experts_per_tok, (long)c.n_group,
                (long)c.topk_group, (long)c.n_shared_experts, (long)c.moe_intermediate_size,
                c.scoring == RouterScoring::SIGMOID ? "sigmoid router" : "softmax router");
  std::printf("[params]\n");
  std::printf("  total             %14ld  (%s)\n", (long)s.total_params,
              human(s.total_params).c_str());
  std::printf("  active per token  %14ld  (%s, %.1f%%)\n", (long)s.active_params,
              human(s.active_params).c_str(), 100.0 * s.active_params / s.total_params);
  std::printf("  embeddings+head   %14ld  (%s)\n", (long)s.embedding_params,
              human(s.embedding_params).c_str());
  if (s.mtp_params_estimate)
    std::printf("  MTP modules       %14ld  (%s, not included above)\n",
                (long)s.mtp_params_estimate, human(s.mtp_params_estimate).c_str());
  std::printf("[kv cache per token, bf16, all %ld layers]\n", (long)c.num_hidden_layers);
  std::printf("  MLA latent (c_kv %ld + k_pe %ld)   %10ld bytes\n", (long)c.kv_lora_rank,
              (long)c.qk_rope_head_dim, (long)s.mla_cache_values_per_token * 2);
  std::printf("  standard MHA (%ld heads x (%ld + %ld)) %10ld bytes\n", (long)c.num_attention_heads,
              (long)c.qk_head_dim(), (long)c.v_head_dim, (long)s.mha_cache_values_per_token * 2);
  std::printf("  compression       %.1fx  (at %ld tokens: %s vs %s)\n",
              (double)s.mha_cache_values_per_token / s.mla_cache_values_per_token, (long)ctx,
              bytes(2.0 * s.mla_cache_values_per_token * ctx).c_str(),
              bytes(2.0 * s.mha_cache_values_per_token * ctx).c_str());
  namespace fs = std::filesystem;
  if (fs::is_directory(path)) {
    bool has_weights = fs::exists(fs::path(path) / "model.safetensors") ||
                       fs::exists(fs::path(path) / "model.safetensors.index.json");
    if (has_weights) {
      auto ck = Checkpoint::open(path);
      std::printf("[checkpoint] %zu tensors\n", ck->names().size());
    }
  }
}

const bool reg = dseek::cli::add_command(
    {"info", "Show a model's shape, parameter counts and latent KV-cache size",
     [](CLI::App* sub, int*) {
       static std::string path;
       static bool as_json = false;
       sub->add_option("model", path, "model folder (config.json [+ safetensors]) or config file")
           ->required();
       sub->add_flag("--json", as_json, "print one JSON line instead of the table");
       sub->callback([] { run_info(path, as_json); });
     },
     20});

}  // namespace
