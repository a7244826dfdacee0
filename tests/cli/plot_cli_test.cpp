// `dseek plot` as a user runs it: a synthetic metrics.jsonl with every key the training loop
// writes (steps, loss with NaN holes, val_loss, 2 MTP depths, lr, grad_norm, tokens_per_s,
// maxvio and expert_load for 3 MoE layers of 8 experts) must give six PNGs; --compare and
// --layer work; a synthetic `dseek grpo` log gives rewards/eval/rl_dynamics (also with
// --compare), a `dseek sft` log gets its distillation KL in loss.png, a pretraining log skips
// the post-training charts with a note; missing gnuplot, a missing log and a bad --layer are
// one-line errors (exit 2).
// Skipped when gnuplot is absent, except under CI=true where that is a failure.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/cli_kit.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// helpers

using PlotRun = dseek_test::CliResult;

// Runs `[env_prefix] DSEEK_BINARY plot ARGS`, capturing stdout and stderr.
PlotRun plot_exec(const std::string& args, const std::string& env_prefix = "") {
  return dseek_test::dseek_cli("plot " + args, env_prefix);
}

bool gnuplot_present() {
  return std::system("command -v gnuplot >/dev/null 2>&1") == 0;
}

bool under_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

#define REQUIRE_GNUPLOT()                                                               \
  do {                                                                                  \
    if (!gnuplot_present()) {                                                           \
      if (under_ci())                                                                   \
        FAIL() << "gnuplot is required under CI=true (apt-get install -y gnuplot-nox)"; \
      GTEST_SKIP() << "gnuplot not installed (apt-get install -y gnuplot-nox)";         \
    }                                                                                   \
  } while (0)

struct TempDir {  // a fresh directory, removed at scope exit
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "dseek_plot_XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// A plausible run: `steps` records, val every 50, expert 0 of layer 1 hot early on.
void metrics_write(const fs::path& dir, int steps, double loss_offset) {
  fs::create_directories(dir);
  std::ofstream f(dir / "metrics.jsonl");
  const int L = 3, E = 8, Ek = 2;
  for (int s = 1; s <= steps; s++) {
    const double loss = loss_offset + 3.0 + 7.0 * std::exp(-s / 60.0) + 0.05 * std::sin(s * 1.7);
    json r = {{"step", s},
              {"loss", loss},
              {"mtp_loss", {loss + 0.3, loss + 0.6}},
              {"lr", 3e-4 * std::min(1.0, s / 20.0)},
              {"grad_norm", 5.0 * std::exp(-s / 40.0) + 0.3},
              {"tokens_per_s", 1200.0 + 30.0 * std::sin(s * 0.3)},
              {"time_s", s * 0.8}};
    if (s == 7) r["loss"] = nullptr;  // a NaN written as null
    if (s % 50 == 0) r["val_loss"] = loss + 0.1;
    json maxvio = json::array(), load = json::array();
    for (int l = 0; l < L; l++) {
      json row = json::array();
      double hot = (l == 1) ? 1.0 + 3.0 * std::exp(-s / 80.0) : 1.0 + 0.1 * l;
      double sum = hot + (E - 1);
      double mx = 0;
      for (int e = 0; e < E; e++) {
        double v = Ek * (e == 0 ? hot : 1.0) / sum;
        row.push_back(v);
        mx = std::max(mx, v);
      }
      load.push_back(row);
      maxvio.push_back((mx - (double)Ek / E) / ((double)Ek / E));
    }
    r["maxvio"] = maxvio;
    r["expert_load"] = load;
    f << r.dump() << "\n";
  }
}

// A `dseek grpo` run: one record per step with the rollout statistics, eval records (step 0 and
// the last step with pass@k, every 20 steps without) as separate lines.
void grpo_metrics_write(const fs::path& dir, int steps, double offset) {
  fs::create_directories(dir);
  std::ofstream f(dir / "metrics.jsonl");
  auto eval = [&](int s, bool with_k) {
    const double p = std::min(1.0, offset + 0.2 + 0.5 * s / steps);
    json r = {{"step", s},
              {"eval_pass1", p},
              {"eval_format", std::min(1.0, p + 0.3)},
              {"eval_mean_tokens", 40.0 - 10.0 * s / steps},
              {"eval_s", 1.5}};
    if (with_k) r["eval_passk"] = std::min(1.0, p + 0.2), r["eval_k"] = 8;
    if (with_k) r["eval_sample_accuracy"] = p * 0.9;
    f << r.dump() << "\n";
  };
  eval(0, true);
  for (int s = 1; s <= steps; s++) {
    const double acc = std::min(1.0, offset + 0.2 + 0.6 * s / steps + 0.1 * std::sin(s * 2.3));
    json r = {{"step", s},
              {"reward_mean", acc + 0.1},
              {"reward_std", 0.3 + 0.05 * std::cos(s)},
              {"accuracy", acc},
              {"format", std::min(1.0, acc + 0.3)},
              {"completion_tokens", 60.0 - 20.0 * s / steps + 3 * std::sin(s)},
              {"stopped", 0.9},
              {"kl", 0.002 * s / steps + 0.0005 * std::abs(std::sin(s))},
              {"clip_frac_low", 0.01 + 0.005 * std::sin(s)},
              {"clip_frac_high", 0.02 + 0.005 * std::cos(s)},
              {"entropy", 1.2 - 0.5 * s / steps},
              {"loss", -0.01 * std::sin(s)},
              {"grad_norm", 0.5 + 0.1 * std::sin(s)},
              {"lr", 1e-6},
              {"zero_adv_groups", 0.25},
              {"solved_groups", 0.1},
              {"rollout_s", 2.0},
              {"time_s", 2.5 * s}};
    if (s == 5) r["kl"] = nullptr;  // a NaN written as null
    f << r.dump() << "\n";
    if (s % 20 == 0 && s != steps) eval(s, false);
  }
  eval(steps, true);
}

// A `dseek sft` run: loss, lr, grad_norm, tokens_per_s, optionally the distillation kl, and
// val_loss on the last record.
void sft_metrics_write(const fs::path& dir, int steps, bool with_kl) {
  fs::create_directories(dir);
  std::ofstream f(dir / "metrics.jsonl");
  for (int s = 1; s <= steps; s++) {
    const double loss = 0.5 + 2.0 * std::exp(-s / 10.0);
    json r = {{"step", s},
              {"loss", loss},
              {"lr", 1e-4},
              {"grad_norm", 1.0 + std::exp(-s / 5.0)},
              {"tokens_per_s", 900.0},
              {"time_s", s * 0.5}};
    if (with_kl) r["kl"] = 0.2 + 1.5 * std::exp(-s / 8.0);
    if (s == steps) r["val_loss"] = loss + 0.05;
    f << r.dump() << "\n";
  }
}

bool is_png(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  unsigned char sig[8] = {};
  f.read(reinterpret_cast<char*>(sig), 8);
  const unsigned char want[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  return f.gcount() == 8 && std::equal(sig, sig + 8, want);
}

const char* kCharts[] = {"loss.png",         "lr.png",     "grad_norm.png",
                         "tokens_per_s.png", "maxvio.png", "expert_load.png"};
const char* kPostCharts[] = {"rewards.png", "eval.png", "rl_dynamics.png"};

// A valid PNG of more than a few bytes.
::testing::AssertionResult png_ok(const fs::path& p) {
  std::error_code ec;
  if (!fs::exists(p, ec)) return ::testing::AssertionFailure() << p << " missing";
  if (!is_png(p)) return ::testing::AssertionFailure() << p << " is not a PNG";
  if (fs::file_size(p, ec) < 1000) return ::testing::AssertionFailure() << p << " is tiny";
  return ::testing::AssertionSuccess();
}

// A gnuplot wrapper that appends every script it runs to `log`, so tests can read the scripts.
fs::path gnuplot_logger(const fs::path& dir, const fs::path& log) {
  const fs::path w = dir / "gnuplot_logger.sh";
  std::ofstream(w) << "#!/bin/sh\nfor a; do [ -f \"$a\" ] && cat \"$a\" >> '" << log.string()
                   << "'; done\nexec gnuplot \"$@\"\n";
  fs::permissions(w, fs::perms::owner_all);
  return w;
}

// ---------------------------------------------------------------------------------------------
// tests

TEST(PlotCli, DrawsEveryChart) {
  REQUIRE_GNUPLOT();
  TempDir tmp;
  const fs::path run = tmp.path / "tiny_run", out = tmp.path / "plots";
  metrics_write(run, 300, 0.0);
  PlotRun r = plot_exec(run.string() + " --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  for (const char* c : kCharts) {
    EXPECT_TRUE(is_png(out / c)) << c << "\n" << r.out;
    EXPECT_NE(r.out.find(std::string("wrote ") + (out / c).string()), std::string::npos) << r.out;
  }
}

TEST(PlotCli, DefaultOutputFolderAndSkippedCharts) {
  REQUIRE_GNUPLOT();
  TempDir tmp;
  const fs::path run = tmp.path / "r";
  fs::create_directories(run);
  std::ofstream(run / "metrics.jsonl") << "{\"step\":1,\"loss\":5}\n{\"step\":2,\"loss\":4}\n";
  PlotRun r = plot_exec(run.string());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(is_png(run / "plots" / "loss.png"));
  EXPECT_FALSE(fs::exists(run / "plots" / "maxvio.png"));
  EXPECT_NE(r.out.find("skipped maxvio.png"), std::string::npos) << r.out;
}

TEST(PlotCli, CompareRunsAndOneLayer) {
  REQUIRE_GNUPLOT();
  TempDir tmp;
  const fs::path a = tmp.path / "baseline", b = tmp.path / "aux_free", out = tmp.path / "cmp";
  metrics_write(a, 250, 0.0);
  metrics_write(b, 180, -0.2);
  PlotRun r =
      plot_exec(a.string() + " --compare " + b.string() + " --out " + out.string() + " --layer 1");
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  for (const char* c : kCharts) EXPECT_TRUE(is_png(out / c)) << c;
}

TEST(PlotCli, GrpoRunDrawsPostTrainingCharts) {
  REQUIRE_GNUPLOT();
  TempDir tmp;
  const fs::path run = tmp.path / "grpo_run", out = tmp.path / "plots";
  grpo_metrics_write(run, 120, 0.0);  // > 50 steps: raw + EMA lines
  PlotRun r = plot_exec(run.string() + " --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  for (const char* c : kPostCharts) {
    EXPECT_TRUE(png_ok(out / c)) << c << "\n" << r.out;
    EXPECT_NE(r.out.find(std::string("wrote ") + (out / c).string()), std::string::npos) << r.out;
  }
  for (const char* c : {"loss.png", "lr.png", "grad_norm.png"}) EXPECT_TRUE(png_ok(out / c)) << c;
  for (const char* c : {"tokens_per_s.png", "maxvio.png", "expert_load.png"}) {
    EXPECT_FALSE(fs::exists(out / c)) << c;
    EXPECT_NE(r.out.find(std::string("skipped ") + c), std::string::npos) << r.out;
  }
}

TEST(PlotCli, GrpoCompareOverlaysRuns) {
  REQUIRE_GNUPLOT();
  TempDir tmp;
  const fs::path a = tmp.path / "grpo_a", b = tmp.path / "grpo_b", out = tmp.path / "cmp";
  const fs::path log = tmp.path / "scripts.gp";
  grpo_metrics_write(a, 80, 0.0);
  grpo_metrics_write(b, 30, 0.1);  // short: markers on the points
  PlotRun r = plot_exec(a.string() + " --compare " + b.string() + " --out " + out.string(),
                        "DSEEK_GNUPLOT=" + gnuplot_logger(tmp.path, log).string());
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  for (const char* c : kPostCharts) EXPECT_TRUE(png_ok(out / c)) << c;
  std::ifstream in(log);
  const std::string scripts((std::istreambuf_iterator<char>(in)), {});
  for (const char* t :
       {"'grpo_a reward (EMA)'", "'grpo_b reward'", "'grpo_a pass@8'", "'grpo_b pass@1 (greedy)'",
        "'grpo_b KL'", "'grpo_a high (ratio > 1 + eps)"})
    EXPECT_NE(scripts.find(t), std::string::npos) << t;
}

TEST(PlotCli, SftRunDrawsLossWithKl) {
  REQUIRE_GNUPLOT();
  TempDir tmp;
  const fs::path run = tmp.path / "sft_run", out = tmp.path / "plots";
  const fs::path log = tmp.path / "scripts.gp";
  sft_metrics_write(run, 40, true);
  PlotRun r = plot_exec(run.string() + " --out " + out.string(),
                        "DSEEK_GNUPLOT=" + gnuplot_logger(tmp.path, log).string());
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  for (const char* c : {"loss.png", "lr.png", "grad_norm.png", "tokens_per_s.png"})
    EXPECT_TRUE(png_ok(out / c)) << c << "\n" << r.out;
  for (const char* c : {"maxvio.png", "expert_load.png", "rewards.png", "eval.png",
                        "rl_dynamics.png"}) {  // sft's kl is not an RL run's
    EXPECT_FALSE(fs::exists(out / c)) << c;
    EXPECT_NE(r.out.find(std::string("skipped ") + c), std::string::npos) << r.out;
  }
  std::ifstream in(log);
  const std::string scripts((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(scripts.find("title 'KL to teacher'"), std::string::npos) << scripts;
  EXPECT_NE(scripts.find("title 'val'"), std::string::npos);

  sft_metrics_write(run, 40, false);  // no distillation: no KL line
  std::error_code ec;
  fs::remove(log, ec);
  r = plot_exec(run.string() + " --out " + out.string(),
                "DSEEK_GNUPLOT=" + gnuplot_logger(tmp.path, log).string());
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  std::ifstream in2(log);
  const std::string scripts2((std::istreambuf_iterator<char>(in2)), {});
  EXPECT_EQ(scripts2.find("KL to teacher"), std::string::npos);
  EXPECT_TRUE(png_ok(out / "loss.png"));
}

TEST(PlotCli, PretrainingRunHasNoPostTrainingCharts) {
  REQUIRE_GNUPLOT();
  TempDir tmp;
  const fs::path run = tmp.path / "pre", out = tmp.path / "plots";
  metrics_write(run, 60, 0.0);
  PlotRun r = plot_exec(run.string() + " --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_TRUE(png_ok(out / "loss.png"));
  for (const char* c : kPostCharts) {
    EXPECT_FALSE(fs::exists(out / c)) << c;
    EXPECT_NE(r.out.find(std::string("skipped ") + c), std::string::npos) << r.out;
  }
}

TEST(PlotCli, MissingGnuplotIsAOneLineErrorWithInstallHint) {
  TempDir tmp;
  metrics_write(tmp.path / "r", 5, 0.0);
  PlotRun r =
      plot_exec((tmp.path / "r").string(), "/usr/bin/env PATH=/nonexistent DSEEK_GNUPLOT= ");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err.rfind("dseek: gnuplot not found", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("apt-get install -y gnuplot-nox"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(PlotCli, BadInputIsAOneLineError) {
  REQUIRE_GNUPLOT();
  TempDir tmp;
  PlotRun r = plot_exec((tmp.path / "nope").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err.rfind("dseek: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("not a folder"), std::string::npos) << r.err;

  fs::create_directories(tmp.path / "empty");
  r = plot_exec((tmp.path / "empty").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("metrics.jsonl: no such file"), std::string::npos) << r.err;

  metrics_write(tmp.path / "r", 5, 0.0);
  r = plot_exec((tmp.path / "r").string() + " --layer 7 --out " + (tmp.path / "o").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--layer 7: the run has 3 MoE layers"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

}  // namespace
