// `dseek train` as a user runs it, on a tiny model and the fixture corpus:
//  - a run killed with SIGKILL while writing a checkpoint leaves the previous checkpoint whole,
//    and --resume continues with exactly the loss sequence of an unbroken run;
//  - the checkpoint is a model folder that `dseek generate` runs (tokenizer included);
//  - bad recipes and flags get one-line errors with exit code 2.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "cli/cli_kit.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

using TrainRun = dseek_test::CliResult;

TrainRun sh(const std::string& cmd_tail, const std::string& env = "") {
  return dseek_test::dseek_cli(cmd_tail, env);
}

const std::string F = DSEEK_FIXTURES;

// A tokenized copy of the fixture corpus, made once.
std::string dataset() {
  static std::string d;
  if (!d.empty()) return d;
  d = testing::TempDir() + "/dseek_train_data_" + std::to_string(getpid());
  TrainRun r =
      sh("data prepare -q --tokenizer " + F + "/tokenizer_v3style/tokenizer.json --input " + F +
         "/tokenizer_v3style/brown_sample.txt --output " + d);
  EXPECT_EQ(r.code, 0) << r.err;
  return d;
}

std::string recipe(const std::string& dir) {
  json j = {{"model",
             {{"model_type", "deepseek_v3"},
              {"vocab_size", "auto"},
              {"hidden_size", 48},
              {"intermediate_size", 96},
              {"moe_intermediate_size", 24},
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
              {"max_position_embeddings", 128},
              {"bos_token_id", 0},
              {"eos_token_id", 1}}},
            {"mtp", {{"depth", 1}}},
            {"data", dataset()},
            {"out_dir", dir},
            {"batch_size", 2},
            {"seq_len", 32},
            {"steps", 12},
            {"lr", {{"kind", "cosine"}, {"max_lr", 3e-3}, {"min_lr", 3e-4}, {"warmup_steps", 2}}},
            {"log_every", 1},
            {"eval_every", 6},
            {"eval_batches", 2},
            {"checkpoint_every", 4},
            {"sample_tokens", 4}};
  fs::create_directories(dir);
  const std::string p = dir + ".json";
  std::ofstream(p) << j.dump(2);
  return p;
}

std::map<int64_t, double> losses(const std::string& dir) {
  std::map<int64_t, double> m;
  std::ifstream f(dir + "/metrics.jsonl");
  std::string line;
  while (std::getline(f, line)) {
    json j = json::parse(line);
    if (j.contains("loss")) m[j["step"].get<int64_t>()] = j["loss"].get<double>();
  }
  return m;
}

}  // namespace

TEST(TrainCli, KilledMidCheckpointResumesExactly) {
  const std::string base = testing::TempDir() + "/dseek_train_" + std::to_string(getpid());
  const std::string a = base + "_a", b = base + "_b";
  fs::remove_all(a);
  fs::remove_all(b);

  TrainRun ra = sh("train --threads 2 --config " + recipe(a));
  ASSERT_EQ(ra.code, 0) << ra.err;
  std::map<int64_t, double> la = losses(a);
  ASSERT_EQ(la.size(), 12u);
  EXPECT_LT(la[12], la[1]);  // it learns

  // killed while the 2nd checkpoint (step 8) is half written
  TrainRun rb = sh("train --threads 2 --config " + recipe(b), "DSEEK_TEST_KILL_IN_CHECKPOINT=2");
  EXPECT_EQ(rb.code, 128 + SIGKILL) << rb.err;
  // the previous checkpoint (step 4) is intact and loadable
  json st = json::parse(std::ifstream(b + "/checkpoint/trainer_state.json"));
  EXPECT_EQ(st["step"].get<int64_t>(), 4);
  TrainRun chk = sh("info " + b + "/checkpoint");
  EXPECT_EQ(chk.code, 0) << chk.err;

  TrainRun rr = sh("train --threads 2 --resume --out " + b);
  ASSERT_EQ(rr.code, 0) << rr.err;
  std::map<int64_t, double> lb = losses(b);
  ASSERT_EQ(lb.size(), 12u);
  for (int64_t s = 1; s <= 12; s++) EXPECT_EQ(la[s], lb[s]) << "step " << s;

  // the final checkpoint is a model folder dseek runs, with its tokenizer
  TrainRun g = sh("generate -m " + b + "/checkpoint --prompt The --greedy -n 4");
  EXPECT_EQ(g.code, 0) << g.err;
  EXPECT_EQ(g.out.rfind("The", 0), 0u) << g.out;
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST(TrainCli, BadRecipesAreOneLineErrors) {
  const std::string d = testing::TempDir() + "/dseek_train_bad_" + std::to_string(getpid());
  const std::string p = recipe(d);
  auto one_line = [](const TrainRun& r, const std::string& needle) {
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  };
  one_line(sh("train --config " + p + " --set balance.gama=0.1"), "unknown key 'balance.gama'");
  one_line(sh("train --config " + p + " --set batch_size=0"), "batch_size must be positive");
  one_line(sh("train --config " + p + " --data /nonexistent"), "/nonexistent");
  one_line(sh("train --config /nonexistent.json"), "/nonexistent.json");
  one_line(sh("train --resume --out " + d + "_never"), "");
  one_line(sh("train --config " + p + " --set model.n_group=3"), "not divisible by n_group");
  fs::remove_all(d);
}
