// `dseek train --config recipes/tiny.json [flags]`: pretrain a DeepSeek-V3-style model on token
// shards from `dseek data prepare`. Flags override the recipe; `--set a.b=v` overrides any key.
// `--resume` continues OUT/checkpoint exactly (the recipe saved in the run folder is used when
// --config is not given). `--device cuda` runs the step on the GPU (train/train_step.h).
#include <cstdio>
#include <filesystem>

#include "dseek/cli/command.h"
#include "dseek/train/trainer.h"

namespace {

using namespace dseek;
using json = nlohmann::json;

struct Args {
  std::string config, out, data, tokenizer, device;
  std::vector<std::string> sets;
  int64_t steps = 0, batch_size = 0, seq_len = 0;
  double lr = 0, time_limit = -1, gamma = -1;
  int64_t seed = -1, threads = -1;
  bool resume = false;
};

int run(const Args& a) {
  json j;
  std::string origin = a.config;
  if (!a.config.empty()) {
    j = load_json_file(a.config);
  } else {
    DSEEK_CHECK(a.resume && !a.out.empty(),
                "give a recipe with --config FILE (or --resume --out RUN_DIR)");
    origin = a.out + "/recipe.json";
    j = load_json_file(origin);
  }
  DSEEK_CHECK(j.is_object(), "{}: a recipe must be a JSON object", origin);
  if (!a.out.empty()) j["out_dir"] = a.out;
  if (!a.data.empty()) j["data"] = a.data;
  if (!a.tokenizer.empty()) j["tokenizer"] = a.tokenizer;
  if (a.steps > 0) {
    j["steps"] = a.steps;
    if (j.contains("lr") && j["lr"].is_object()) j["lr"].erase("total_steps");
  }
  if (a.batch_size > 0) j["batch_size"] = a.batch_size;
  if (a.seq_len > 0) j["seq_len"] = a.seq_len;
  if (a.lr > 0) j["lr"]["max_lr"] = a.lr;
  if (a.time_limit >= 0) j["time_limit_s"] = a.time_limit;
  if (a.gamma >= 0) j["balance"]["bias_update_speed"] = a.gamma;
  if (a.seed >= 0) j["seed"] = a.seed;
  if (a.threads >= 0) j["threads"] = a.threads;
  if (!a.device.empty()) j["device"] = a.device;
  for (const std::string& s : a.sets) json_set_path(j, s);
  TrainConfig c = TrainConfig::from_json(j, origin);
  TrainResult r = train_run(c, a.resume);
  std::printf(
      "{\"steps\": %ld, \"loss\": %.6f, \"val_loss\": %.6f, \"stopped_by_time\": %s, "
      "\"device\": \"%s\"}\n",
      (long)r.steps_done, r.last_loss, r.last_val_loss, r.stopped_by_time ? "true" : "false",
      r.device.c_str());
  return 0;
}

const bool reg = dseek::cli::add_command(
    {"train", "Pretrain a DeepSeek-V3-style model (MLA, MoE, MTP) on token shards",
     [](CLI::App* sub, int* rc) {
       static Args a;
       sub->add_option("-c,--config", a.config, "recipe JSON (recipes/tiny.json)");
       sub->add_option("-o,--out", a.out, "run folder (metrics.jsonl, checkpoint/)");
       sub->add_option("--data", a.data, "dataset folder from `dseek data prepare`");
       sub->add_option("--tokenizer", a.tokenizer, "tokenizer.json (default: the dataset's)");
       sub->add_option("--steps", a.steps, "optimizer steps");
       sub->add_option("--batch-size", a.batch_size, "sequences per micro-batch");
       sub->add_option("--seq-len", a.seq_len, "tokens per sequence");
       sub->add_option("--lr", a.lr, "peak learning rate");
       sub->add_option("--time-limit", a.time_limit,
                       "stop after this many seconds of training (checkpoint saved)");
       sub->add_option("--gamma", a.gamma,
                       "bias update speed of aux-loss-free balancing (0 = off)");
       sub->add_option("--seed", a.seed, "seed (init, data order)");
       sub->add_option("--threads", a.threads, "CPU threads (0 = all)");
       sub->add_option("--device", a.device,
                       "cpu (default), cuda (the whole step on one GPU: bf16 compute, fp32 master "
                       "weights and AdamW state), or auto (cuda when a GPU is usable)");
       sub->add_option("--set", a.sets, "override any recipe key: --set balance.seq_alpha=0");
       sub->add_flag("--resume", a.resume, "continue from OUT/checkpoint exactly");
       sub->footer(
           "Example:\n  bash scripts/fetch_corpus.sh && dseek train --config recipes/tiny.json\n"
           "  dseek train --resume --out runs/tiny\n"
           "  dseek train --config recipes/tiny.json --device cuda --out runs/tiny_gpu\n");
       sub->callback([rc] { *rc = run(a); });
     },
     40});

}  // namespace
