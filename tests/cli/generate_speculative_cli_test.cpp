// `dseek generate --speculative mtp` as a user runs it, on a tiny random model with one MTP
// module written to disk: the greedy tokens equal plain `generate`'s for 1 and 3 drafts per
// step, the acceptance rate and tokens/s line is printed, and bad input (unknown method,
// --draft-tokens out of range, a model without MTP) gets a one-line error and exit code 2.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "cli/cli_kit.h"

using dseek_test::expect_one_line_error;
#include "dseek/model/checkpoint.h"
#include "dseek/model/model.h"
#include "model/tiny_model_config.h"

namespace {

using dseek_test::dseek_cli;
namespace fs = std::filesystem;

std::string mtp_model_dir() {
  static std::string d = [] {
    std::string p = ::testing::TempDir() + "/speculative_cli_" + std::to_string(::getpid());
    fs::remove_all(p);
    dseek::Model m = dseek::Model::random(dseek_test::tiny_model_config(false, 1), 9);
    dseek::save_model_dir(p, m, {});
    return p;
  }();
  return d;
}

TEST(GenerateSpeculativeCli, SameTokensAsPlainAndPrintsAcceptance) {
  const std::string base =
      "generate -m " + mtp_model_dir() + " --prompt-ids 3,14,15,9 --greedy -n 20 --ignore-eos";
  auto plain = dseek_cli(base);
  ASSERT_EQ(plain.code, 0) << plain.err;
  ASSERT_FALSE(plain.out.empty());
  EXPECT_EQ(plain.err.find("[speculative]"), std::string::npos);
  for (int k : {1, 3}) {
    auto spec = dseek_cli(base + " --speculative mtp --draft-tokens " + std::to_string(k));
    ASSERT_EQ(spec.code, 0) << spec.err;
    EXPECT_EQ(spec.out, plain.out);
    const std::string want = "[speculative] mtp, " + std::to_string(k) +
                             (k == 1 ? " draft per step: " : " drafts per step: ");
    EXPECT_NE(spec.err.find(want), std::string::npos) << spec.err;
    EXPECT_NE(spec.err.find("drafts accepted ("), std::string::npos) << spec.err;
    EXPECT_NE(spec.err.find("tok/s)"), std::string::npos) << spec.err;
  }
}

TEST(GenerateSpeculativeCli, BadInputIsOneLine) {
  const std::string base = "generate --prompt-ids 1,2 --greedy -n 4 ";
  expect_one_line_error(dseek_cli(base + "-m " + mtp_model_dir() + " --speculative eagle"),
                        "--speculative: unknown method 'eagle' (available: mtp)");
  expect_one_line_error(
      dseek_cli(base + "-m " + mtp_model_dir() + " --speculative mtp --draft-tokens 0"),
      "--draft-tokens must be in [1, 16], got 0");
  const std::string no_mtp = std::string(DSEEK_FIXTURES) + "/v3_tiny";
  expect_one_line_error(dseek_cli(base + "-m " + no_mtp + " --speculative mtp"),
                        "has no MTP module");
}

}  // namespace
