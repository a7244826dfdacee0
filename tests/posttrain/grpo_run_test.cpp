// The GRPO loop and its sampling on a tiny random policy (vocabulary of the tokenizer fixture):
// rollouts are deterministic per seed and independent of the thread count; greedy rollouts equal
// generate(); grpo_run's micro-batching is exact (micro-batch 2 and 16 give the same update, with
// the KL term and two updates per batch); metrics.jsonl carries the documented keys.
#include <gtest/gtest.h>

#include <omp.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "dseek/infer/generate.h"
#include "dseek/model/checkpoint.h"
#include "dseek/posttrain/grpo.h"
#include "dseek/posttrain/rollout.h"
#include "dseek/posttrain/sft.h"
#include "dseek/posttrain/sft_data.h"
#include "dseek/posttrain/task_traces.h"
#include "posttrain/tiny_policy.h"

using namespace dseek;
namespace fs = std::filesystem;

namespace {

// A random policy folder (config + weights + tokenizer), made once.
const std::string& policy_dir() {
  static std::string dir = [] {
    // per process: ctest runs the tests of this file in parallel processes
    const std::string d = ::testing::TempDir() + "/grpo_policy_" + std::to_string(::getpid());
    dseek_test::write_tiny_policy(d + "/random", 3);
    // a short SFT on formatted 1-digit additions, so sampled completions earn varying rewards
    // (a random policy earns none, and zero advantages would not move it)
    {
      std::ofstream f(d + "/sft.jsonl");
      for (const Problem& p : task_generate("add", Split::SPLIT_TRAIN, 64, 1, {.arith_digits = 1}))
        f << sft_jsonl_line(p.question, task_completion(p)) << "\n";
    }
    SftConfig sc;
    sc.model = d + "/random";
    sc.data = d + "/sft.jsonl";
    sc.out_dir = d + "/sft";
    sc.steps = 150;
    sc.batch_size = 16;
    sc.lr = 1e-2;
    sc.log_every = 150;
    SftResult r = sft_run(sc);
    EXPECT_LT(r.last_loss, 0.6 * r.first_loss) << "SFT did not learn";
    return r.final_dir;
  }();
  return dir;
}

std::vector<std::vector<int32_t>> some_prompts() {
  return {{0, 17, 42, 99}, {0, 5, 6}, {0, 1000}};
}

TEST(Rollout, DeterministicAndThreadIndependent) {
  Model m = Model::load(policy_dir());
  RolloutOptions o;
  o.max_new_tokens = 12;
  o.sampler.temperature = 1.0f;
  o.seed = 9;
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  std::vector<Rollout> a = rollout_generate(m, some_prompts(), 3, o);
  omp_set_num_threads(std::max(2, saved));
  std::vector<Rollout> b = rollout_generate(m, some_prompts(), 3, o);
  omp_set_num_threads(saved);
  ASSERT_EQ(a.size(), 9u);
  bool differ = false;
  for (size_t i = 0; i < a.size(); i++) {
    EXPECT_EQ(a[i].ids, b[i].ids) << i;
    EXPECT_EQ(a[i].prompt, (int64_t)i / 3);
    if (i % 3 && a[i].ids != a[i - 1].ids) differ = true;
  }
  EXPECT_TRUE(differ) << "samples of one prompt should differ at temperature 1";
  o.seed = 10;
  std::vector<Rollout> c = rollout_generate(m, some_prompts(), 3, o);
  bool any_change = false;
  for (size_t i = 0; i < a.size(); i++) any_change = any_change || c[i].ids != a[i].ids;
  EXPECT_TRUE(any_change);
}

TEST(Rollout, GreedyEqualsGenerate) {
  Model m = Model::load(policy_dir());
  RolloutOptions o;
  o.max_new_tokens = 10;
  o.sampler.temperature = 0.0f;
  std::vector<Rollout> r = rollout_generate(m, some_prompts(), 1, o);
  for (size_t i = 0; i < r.size(); i++) {
    LatentCache cache = m.new_cache();
    GenerateOptions g;
    g.max_new_tokens = 10;
    g.sampler.temperature = 0.0f;
    EXPECT_EQ(r[i].ids, generate(m, cache, some_prompts()[i], g)) << i;
  }
}

GrpoConfig small_config(const std::string& out, int64_t micro) {
  GrpoConfig c;
  c.model = policy_dir();
  c.out_dir = out;
  c.task = "add";
  c.task_options.arith_digits = 1;
  c.steps = 1;
  c.prompts_per_step = 4;
  c.group_size = 4;
  c.max_new_tokens = 40;
  c.updates = 2;
  c.micro_batch = micro;
  c.lr = 1.0;
  // eps = 1: the update is nearly linear in the gradient, so equal gradients give equal weights
  // to rounding (with eps ~ 0 Adam's first step is lr * sign(g), which hides small differences)
  c.optimizer = {.lr = 1.0f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1.0f, .weight_decay = 0.0f};
  c.loss.beta = 0.04f;
  c.eval_n = 3;
  c.eval_k = 2;
  c.eval_every = 1;
  c.rewards = {
      .accuracy = 1.0f, .format = 0.5f, .language = 0.0f, .language_target = Script::SCRIPT_LATIN};
  return c;
}

TEST(GrpoRun, MicroBatchingIsExactAndMetricsAreWritten) {
  const std::string root = ::testing::TempDir() + "/grpo_run_" + std::to_string(::getpid());
  fs::remove_all(root);
  GrpoResult a = grpo_run(small_config(root + "/a", 16));
  GrpoResult b = grpo_run(small_config(root + "/b", 3));
  EXPECT_EQ(a.steps, 1);
  Model m0 = Model::load(policy_dir()), ma = Model::load(a.final_dir),
        mb = Model::load(b.final_dir);
  std::vector<ParamRef> p0 = model_params(m0.cfg, m0.w), pa = model_params(ma.cfg, ma.w),
                        pb = model_params(mb.cfg, mb.w);
  double max_change = 0, max_diff = 0;
  for (size_t i = 0; i < p0.size(); i++)
    for (size_t k = 0; k < p0[i].tensor->data.size(); k++) {
      max_change =
          std::max(max_change, (double)std::fabs(pa[i].tensor->data[k] - p0[i].tensor->data[k]));
      max_diff =
          std::max(max_diff, (double)std::fabs(pa[i].tensor->data[k] - pb[i].tensor->data[k]));
    }
  EXPECT_GT(max_change, 1e-4) << "the policy did not move";
  EXPECT_LE(max_diff, 1e-4 * max_change) << "micro-batching changed the update";

  std::ifstream f(root + "/a/metrics.jsonl");
  std::string line;
  bool saw_step = false, saw_eval = false;
  while (std::getline(f, line)) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j.contains("reward_mean")) {
      saw_step = true;
      for (const char* k : {"reward_std", "accuracy", "format", "completion_tokens", "kl",
                            "clip_frac_low", "clip_frac_high", "entropy", "loss", "grad_norm"})
        EXPECT_TRUE(j.contains(k)) << k;
      EXPECT_GT(j["entropy"].get<double>(), 0.0);
    }
    if (j.contains("eval_pass1")) {
      saw_eval = true;
      EXPECT_TRUE(j.contains("eval_format"));
      EXPECT_TRUE(j.contains("eval_passk"));
    }
  }
  EXPECT_TRUE(saw_step);
  EXPECT_TRUE(saw_eval);
  EXPECT_TRUE(fs::exists(root + "/a/final/tokenizer.json"));
}

}  // namespace
