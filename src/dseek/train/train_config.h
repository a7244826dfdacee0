// TrainConfig: one pretraining run, read from a recipe (recipes/*.json) with command-line
// overrides applied on top (`--set key.sub=value` for any field; common ones have flags).
// Every key is checked: unknown keys and wrong types are errors, so a typo never silently
// falls back to a default. The resolved config is printed at start and saved with checkpoints.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dseek/model/config.h"
#include "dseek/train/adamw.h"
#include "dseek/train/lr_schedule.h"

namespace dseek {

struct TrainConfig {
  nlohmann::json model;            // a config.json (hub layout); vocab_size may be "auto" (data's)
  std::string init_from;           // or: a model folder to start from (fine-tuning / continuing)
  int64_t mtp_depth = 0;           // MTP modules to train (DeepSeek-V3: 1)
  float mtp_lambda = 0.3f;         // MTP loss weight ...
  float mtp_lambda_late = 0.1f;    // ... lowered to this ...
  float mtp_lambda_switch = 0.7f;  // ... after this fraction of the steps (V3: 10T of 14.8T)
  std::string data;                // dataset folder from `dseek data prepare`
  std::string out_dir = "runs/run";
  std::string tokenizer;  // copied into checkpoints; used for samples (default: data's)
  uint64_t seed = 0;
  float init_std = 0.02f;
  int64_t batch_size = 8, seq_len = 256, grad_accum = 1;
  int64_t steps = 1000;
  double time_limit_s = 0;  // > 0: stop (with a checkpoint) after this much training time
  LrSchedule lr;
  AdamWConfig optimizer;
  float grad_clip = 1.0f;            // 0 = off
  float bias_update_speed = 0.001f;  // gamma of the aux-loss-free bias update (0 = off)
  float seq_balance_alpha = 1e-4f;   // complementary sequence-wise balance loss
  float aux_balance_alpha = 0.0f;    // classic expert-level auxiliary loss (for comparison)
  int64_t log_every = 10, eval_every = 100, eval_batches = 16, checkpoint_every = 200;
  int64_t sample_every = 0, sample_tokens = 64;
  std::string sample_prompt = "The";
  int threads = 0;             // 0 = all cores
  std::string device = "cpu";  // "cpu", "cuda" (GPU step, model/gpu_model.h), "auto" (cuda if any)

  static TrainConfig from_json(const nlohmann::json& j, const std::string& origin);
  nlohmann::json to_json() const;
  float mtp_lambda_at(int64_t step) const;
};

// Apply "a.b.c=value" (value parsed as JSON, else taken as a string) to a JSON object.
void json_set_path(nlohmann::json& j, const std::string& assignment);
nlohmann::json load_json_file(const std::string& path);

}  // namespace dseek
