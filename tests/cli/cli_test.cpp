// The dseek binary as a user runs it: check-reference on the fixtures (exit 0, and exit 1 when a
// tolerance is missed), info, generate, and bad input -- truncated safetensors, wrong shapes,
// malformed config, missing tokenizer -- each a one-line "dseek: ..." error with exit code 2.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli/cli_kit.h"
#include "dseek/io/safetensors.h"

namespace fs = std::filesystem;

namespace {

using CliRun = dseek_test::CliResult;

CliRun run(const std::string& args) {
  return dseek_test::dseek_cli(args);
}

const std::string F = DSEEK_FIXTURES;

// A copy of v3_tiny in a temp folder that the test may damage.
std::string copy_fixture(const std::string& name) {
  std::string d = testing::TempDir() + "/dseek_cli_" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(F + "/v3_tiny/" + f, d + "/" + f);
  return d;
}

void expect_one_line_error(const CliRun& r, const std::string& needle) {
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err.rfind("dseek: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

}  // namespace

TEST(Cli, CheckReferencePassesOnFixtures) {
  for (const char* m : {"v3_tiny", "v3_tiny_yarn_noqlora", "v2_tiny"}) {
    CliRun r = run("check-reference " + F + "/" + m + " " + F + "/" + m + "/reference.safetensors");
    ASSERT_EQ(r.code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_TRUE(j["ok"].get<bool>());
    EXPECT_LT(j["logits_rel_err"].get<double>(), 1e-5);
    EXPECT_TRUE(j["generation_match"].get<bool>());
  }
}

TEST(Cli, CheckReferenceExitsOneWhenToleranceMissed) {
  CliRun r = run("check-reference " + F + "/v3_tiny " + F +
                 "/v3_tiny/reference.safetensors --tol-logits 1e-12");
  EXPECT_EQ(r.code, 1);
  EXPECT_FALSE(nlohmann::json::parse(r.out)["ok"].get<bool>());
  // a reference from another model: logits do not match at all
  r = run("check-reference " + F + "/v3_tiny " + F + "/v2_tiny/reference.safetensors");
  EXPECT_EQ(r.code, 1);
}

TEST(Cli, InfoAndGenerate) {
  CliRun r = run("info --json " + F + "/configs/deepseek_v3_671b.json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_NEAR(j["total_params"].get<double>() / 1e9, 671.0, 0.5);
  EXPECT_EQ(j["mla_cache_bytes_per_token_bf16"].get<int64_t>(), 61 * 576 * 2);
  // greedy generation of the fixture's prompt reproduces transformers' output ids
  auto ref = dseek::SafeTensorsFile::open(F + "/v3_tiny/reference.safetensors");
  auto prompt = dseek::read_i64(ref->get("generate.prompt"));
  auto output = dseek::read_i64(ref->get("generate.output"));
  std::string ids, want;
  for (auto v : prompt) {
    if (!ids.empty()) ids.push_back(',');
    ids.append(std::to_string(v));
  }
  for (size_t i = prompt.size(); i < output.size(); i++) {
    if (!want.empty()) want.push_back(' ');
    want.append(std::to_string(output[i]));
  }
  r = run("generate -m " + F + "/v3_tiny --prompt-ids " + ids + " --greedy --ignore-eos -n " +
          std::to_string(output.size() - prompt.size()));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, want + "\n");
}

TEST(Cli, TruncatedSafetensors) {
  std::string d = copy_fixture("trunc");
  fs::resize_file(d + "/model.safetensors", fs::file_size(d + "/model.safetensors") / 2);
  expect_one_line_error(run("generate -m " + d + " --prompt-ids 1,2 -n 2"), "model.safetensors");
}

TEST(Cli, WrongShapes) {
  std::string d = copy_fixture("shape");
  auto j = nlohmann::json::parse(std::ifstream(d + "/config.json"));
  j["hidden_size"] = 96;  // weights are 64 wide
  std::ofstream(d + "/config.json") << j.dump();
  expect_one_line_error(run("generate -m " + d + " --prompt-ids 1,2 -n 2"), "expected [");
}

TEST(Cli, MalformedConfig) {
  std::string d = copy_fixture("cfg");
  std::ofstream(d + "/config.json") << "{\"model_type\": \"deepseek_v3\", \"hidden_size\": ";
  expect_one_line_error(run("info " + d), "malformed JSON");
  std::ofstream(d + "/config.json") << "{\"model_type\": \"gpt2\"}";
  expect_one_line_error(run("info " + d), "unsupported model_type 'gpt2'");
}

TEST(Cli, MissingFilesAndBadFlags) {
  expect_one_line_error(run("generate -m " + F + "/v3_tiny --prompt hello -n 2"), "no tokenizer");
  expect_one_line_error(run("info /nonexistent/model"), "/nonexistent/model");
  expect_one_line_error(
      run("generate -m " + F + "/v3_tiny --prompt-ids 1,2 --tokenizer /nonexistent.json -n 2"), "");
  expect_one_line_error(run("generate -m " + F + "/v3_tiny --prompt-ids 1,x"), "not an integer");
  expect_one_line_error(run("generate -m " + F + "/v3_tiny --prompt-ids 1,99999"),
                        "outside the vocabulary");
  expect_one_line_error(run("generate -m " + F + "/v3_tiny --prompt-ids 1 --top-p 2"), "top_p");
  EXPECT_EQ(run("no-such-command").code, 2);
  EXPECT_EQ(run("--help").code, 0);
}

TEST(Cli, ChatLoopOverStdin) {
  // the dseek-written fixture model (vocab 3000) with the fixture tokenizer (3000 ids)
  std::string d = testing::TempDir() + "/dseek_cli_chat_" + std::to_string(getpid());
  fs::remove_all(d);
  fs::create_directories(d);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(F + "/dseek_yarn_tied/" + f, d + "/" + f);
  fs::copy_file(F + "/tokenizer_v3style/tokenizer.json", d + "/tokenizer.json");
  const std::string in = d + "/stdin.txt";
  std::ofstream(in) << "Hello there\nAnd a second turn\n/reset\nAfter reset\n/quit\n";
  CliRun r = dseek_test::dseek_cli("chat -m " + d + " --greedy -n 6", "", in);
  const std::string& out = r.out;
  EXPECT_EQ(r.code, 0) << r.err;
  size_t prompts = 0;  // "\n> " is printed before each line is read (5 lines, /quit included)
  for (size_t at = out.find("\n> "); at != std::string::npos; at = out.find("\n> ", at + 1))
    prompts++;
  EXPECT_EQ(prompts, 5u) << out;
  EXPECT_NE(out.find("(conversation cleared)"), std::string::npos) << out;
  fs::remove_all(d);
}
