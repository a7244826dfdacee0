// The post-training commands as a user runs them, on a tiny random policy with the tokenizer
// fixture: tasks -> sft -> eval -> sample -> grpo, each checked on its output (SFT lowers the
// loss; every kept rejection sample is a correct, well-formatted answer to its question; GRPO
// writes its metrics and final model), and bad input gets a one-line error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli/cli_kit.h"

using dseek_test::expect_one_line_error;
#include "posttrain/tiny_policy.h"
#include "dseek/model/checkpoint.h"
#include "dseek/posttrain/rewards.h"

using namespace dseek;
using dseek_test::dseek_cli;
namespace fs = std::filesystem;

namespace {

std::string dir() {
  static std::string d = [] {
    std::string p = ::testing::TempDir() + "/posttrain_cli_" + std::to_string(::getpid());
    fs::remove_all(p);
    fs::create_directories(p);
    dseek_test::write_tiny_policy(p + "/policy", 5);
    return p;
  }();
  return d;
}

nlohmann::json last_json_line(const std::string& out) {
  std::string s = out;
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return nlohmann::json::parse(s.substr(s.rfind('\n') + 1));
}

TEST(PosttrainCli, TasksSftEvalSampleGrpo) {
  const std::string d = dir();
  auto r =
      dseek_cli("tasks generate --task add --digits 1 -n 96 --format sft -o " + d + "/sft.jsonl");
  ASSERT_EQ(r.code, 0) << r.err;
  r = dseek_cli("sft -m " + d + "/policy --data " + d + "/sft.jsonl -o " + d +
                "/sft --steps 150 --lr 1e-2 --batch-size 16 --threads 2");
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json s = last_json_line(r.out);
  EXPECT_LT(s["loss_last"].get<double>(), 0.5 * s["loss_first"].get<double>()) << r.out;
  EXPECT_TRUE(fs::exists(d + "/sft/final/tokenizer.json"));

  r = dseek_cli("eval -m " + d + "/sft/final --task add --digits 1 -n 20 -k 2 --max-new-tokens 40");
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json e = last_json_line(r.out);
  for (const char* k : {"pass1", "format", "passk", "sample_accuracy", "mean_tokens"})
    EXPECT_TRUE(e.contains(k)) << k;
  EXPECT_GE(e["passk"].get<double>(), e["pass1"].get<double>() - 1.0);  // a probability

  r = dseek_cli("sample -m " + d + "/sft/final --task add --digits 1 -n 48 --samples 4 " +
                "--max-new-tokens 40 -o " + d + "/rs.jsonl");
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json ss = last_json_line(r.out);
  std::ifstream f(d + "/rs.jsonl");
  std::string line;
  int64_t lines = 0;
  while (std::getline(f, line)) {
    nlohmann::json j = nlohmann::json::parse(line);
    const std::string q = j["messages"][0]["content"], a = j["messages"][1]["content"];
    // "Compute A + B. ..." -> the reference answer, checked independently of the sampler
    int x = 0, y = 0;
    ASSERT_EQ(std::sscanf(q.c_str(), "Compute %d + %d.", &x, &y), 2) << q;
    Problem p{.prompt = q, .answer = std::to_string(x + y), .task = "add", .question = q};
    EXPECT_EQ(reward_accuracy(p, a), 1.0f) << a;
    EXPECT_EQ(reward_format(a), 1.0f) << a;
    lines++;
  }
  EXPECT_GT(lines, 0) << "no sample was accepted: the check above would be vacuous";
  EXPECT_EQ(lines, ss["written"].get<int64_t>());
  EXPECT_LE(ss["accepted"].get<int64_t>(), ss["samples"].get<int64_t>());

  r = dseek_cli("grpo -m " + d + "/sft/final --task add --digits 1 --steps 2 --prompts 4 -G 4 " +
                "--max-new-tokens 40 --eval-n 10 --eval-k 2 --eval-every 1 --lr 1e-3 " +
                "--checkpoint-every 1 --eval-temperature 0.5 -o " + d + "/grpo");
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json g = last_json_line(r.out);
  EXPECT_EQ(g["steps"].get<int64_t>(), 2);
  EXPECT_NE(r.err.find("before RL"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(d + "/grpo/final/model.safetensors"));
  EXPECT_TRUE(fs::exists(d + "/grpo/metrics.jsonl"));
  // The periodic checkpoint is a usable model folder too (weights + tokenizer).
  EXPECT_TRUE(fs::exists(d + "/grpo/checkpoint/model.safetensors"));
  EXPECT_TRUE(fs::exists(d + "/grpo/checkpoint/tokenizer.json"));
  EXPECT_NE(r.err.find("T=0.5"), std::string::npos) << r.err;  // pass@k at --eval-temperature
}

TEST(PosttrainCli, BadInputGetsOneLineErrors) {
  const std::string d = dir();
  expect_one_line_error(dseek_cli("tasks generate --task nope -n 3"), "unknown task");
  expect_one_line_error(dseek_cli("sft -m " + d + "/nope --data x.jsonl"), "nope");
  expect_one_line_error(dseek_cli("sft -m " + d + "/policy --data " + d + "/missing.jsonl"),
                        "missing.jsonl");
  {
    std::ofstream f(d + "/bad.jsonl");
    f << R"({"prompt": "a", "response": "b"})"
      << "\n"
      << "{oops"
      << "\n";
  }
  expect_one_line_error(dseek_cli("sft -m " + d + "/policy --data " + d + "/bad.jsonl"),
                        "bad.jsonl:2");
  expect_one_line_error(dseek_cli("grpo -m " + d + "/policy --group-size 1"), "group-size");
  expect_one_line_error(dseek_cli("grpo -m " + d + "/policy --loss bogus"), "--loss");
  expect_one_line_error(dseek_cli("grpo -m " + d + "/policy --prompt-style nope"), "prompt style");
  expect_one_line_error(dseek_cli("eval -m " + d + "/policy --problems " + d + "/bad.jsonl"),
                        "bad.jsonl:1");
}

}  // namespace
