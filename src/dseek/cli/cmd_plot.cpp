// `dseek plot RUN_DIR [--out DIR] [--compare RUN_DIR2 ...] [--layer L]`: PNG charts of a training
// run's metrics.jsonl (keys documented in train/metrics_log.h; post-training keys in
// cli/plot_charts.h), drawn by gnuplot. This file: the options, reading the runs, the output
// folder, and which charts are drawn in which order; each chart is skipped with a note when its
// keys are absent:
//   pretraining (and dseek sft): loss, lr, grad_norm, tokens_per_s, maxvio, expert_load
//                                (plot_charts_train.cpp)
//   post-training (dseek grpo):  rewards, eval, rl_dynamics (plot_charts_post.cpp)
// With --compare every line chart overlays the runs, one colour per run, legend = folder name.
// gnuplot is looked up on PATH (or taken from $DSEEK_GNUPLOT); pngcairo when it has it, else png
// (plot_gnuplot.h). Not here: parsing the log (train/metrics_log.cpp), any metric computation.
#include <cstdio>      // printf
#include <filesystem>  // output folder, run folders
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dseek/cli/command.h"
#include "dseek/cli/plot_charts.h"
#include "dseek/cli/plot_gnuplot.h"
#include "dseek/core/error.h"
#include "dseek/train/metrics_log.h"

namespace {

namespace fs = std::filesystem;
namespace mk = dseek::metrics_key;
using namespace dseek::cli::plot;

std::string run_name(const std::string& dir) {
  fs::path p = fs::path(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  std::string n = p.filename().string();
  return n.empty() || n == "." ? fs::absolute(p).filename().string() : n;
}

void run_plot(const std::string& run_dir, const std::vector<std::string>& compare_dirs,
              std::string out, int layer) {
  const std::string gp_exe = gnuplot_find();
  Ctx c;
  std::vector<std::string> dirs = {run_dir};
  dirs.insert(dirs.end(), compare_dirs.begin(), compare_dirs.end());
  for (const std::string& d : dirs) {
    DSEEK_CHECK(fs::is_directory(d), "{}: not a folder (expected a run folder with {})", d,
                dseek::kMetricsFileName);
    Run r{.dir = d, .name = run_name(d), .records = {}};
    r.records = dseek::metrics_log_read((fs::path(d) / dseek::kMetricsFileName).string());
    DSEEK_CHECK(!r.records.empty(), "{}/{}: no records yet", d, dseek::kMetricsFileName);
    std::printf("[plot] %s: %zu records, steps %ld..%ld\n", d.c_str(), r.records.size(),
                (long)r.records.front()[mk::kStep].get<int64_t>(),
                (long)r.records.back()[mk::kStep].get<int64_t>());
    c.runs.push_back(std::move(r));
  }
  // Same folder names (runs/a/x vs runs/b/x): label with the path as given instead.
  std::vector<bool> dup(c.runs.size(), false);
  for (size_t i = 0; i < c.runs.size(); i++)
    for (size_t j = 0; j < c.runs.size(); j++)
      if (i != j && c.runs[i].name == c.runs[j].name) dup[i] = true;
  for (size_t i = 0; i < c.runs.size(); i++)
    if (dup[i]) c.runs[i].name = c.runs[i].dir;

  c.out = out.empty() ? fs::path(run_dir) / "plots" : fs::path(out);
  std::error_code ec;
  fs::create_directories(c.out, ec);
  DSEEK_CHECK(!ec, "{}: cannot create output folder: {}", c.out.string(), ec.message());
  c.layer = layer;
  if (layer >= 0) {
    const size_t L = array_len_max(c.runs[0], mk::kExpertLoad);
    DSEEK_CHECK((size_t)layer < L, "--layer {}: the run has {} MoE layers in expert_load{}", layer,
                L, L ? fmt::format(" (0..{})", L - 1) : "");
  }

  Gnuplot gp(gp_exe);  // its temporary folder goes when it does, on errors too
  c.gp = &gp;
  chart_loss(c);
  chart_scalar(c, mk::kLr, "lr.png",
               Panel{.title = title_for(c, "Learning rate"),
                     .ylabel = "lr",
                     .y_from_zero = true,
                     .yformat = "%.1e"},
               false);
  chart_scalar(
      c, mk::kGradNorm, "grad_norm.png",
      Panel{.title = title_for(c, "Gradient norm (before clipping)"), .ylabel = "global L2 norm"},
      true);
  chart_scalar(c, mk::kTokensPerS, "tokens_per_s.png",
               Panel{.title = title_for(c, "Training throughput"),
                     .ylabel = "tokens / s",
                     .y_from_zero = true},
               false);
  chart_maxvio(c);
  chart_expert_load(c);
  chart_rewards(c);
  chart_eval(c);
  chart_rl_dynamics(c);
  for (const std::string& w : c.wrote) std::printf("[plot] wrote %s\n", w.c_str());
  for (const std::string& s : c.skipped) std::printf("[plot] skipped %s\n", s.c_str());
}

const bool reg = dseek::cli::add_command(
    {"plot", "Draw PNG charts of a training run's metrics.jsonl (gnuplot)",
     [](CLI::App* sub, int*) {
       static std::string run_dir, out;
       static std::vector<std::string> compare_dirs;
       static int layer = -1;
       sub->add_option("run_dir", run_dir, "run folder holding metrics.jsonl")->required();
       sub->add_option("--out", out, "output folder for the PNGs (default RUN_DIR/plots)");
       sub->add_option("--compare", compare_dirs,
                       "more run folders to overlay (legend: folder names)")
           ->expected(1, -1);
       sub->add_option("--layer", layer,
                       "expert_load.png: only this MoE layer (default: all layers stacked)")
           ->check(CLI::NonNegativeNumber);
       sub->footer("Example: dseek plot runs/tiny --compare runs/tiny_aux --out plots/");
       sub->callback([] { run_plot(run_dir, compare_dirs, out, layer); });
     },
     70});

}  // namespace
