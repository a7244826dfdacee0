// `dseek plot` as a user runs it: a synthetic metrics.jsonl with every key the training loop
// writes (steps, loss with NaN holes, val_loss, 2 MTP depths, lr, grad_norm, tokens_per_s,
// maxvio and expert_load for 3 MoE layers of 8 experts) must give six PNGs; --compare and
// --layer work; missing gnuplot, a missing log and a bad --layer are one-line errors (exit 2).
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

bool is_png(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  unsigned char sig[8] = {};
  f.read(reinterpret_cast<char*>(sig), 8);
  const unsigned char want[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  return f.gcount() == 8 && std::equal(sig, sig + 8, want);
}

const char* kCharts[] = {"loss.png",         "lr.png",     "grad_norm.png",
                         "tokens_per_s.png", "maxvio.png", "expert_load.png"};

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
