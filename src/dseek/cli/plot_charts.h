// The charts of `dseek plot` and what they share: the runs read from metrics.jsonl, series
// taken from their records (non-finite or missing values skipped), line styles, log axes.
// Each chart_* function draws one PNG into Ctx::out or, when its keys are absent from every
// run, adds a "NAME.png (no KEY)" note to Ctx::skipped. With more than one run (--compare)
// line charts overlay the runs, one colour per run.
//   plot_charts_train.cpp  pretraining: loss, lr, grad_norm, tokens_per_s, maxvio, expert_load
//   plot_charts_post.cpp   post-training (dseek grpo): rewards, eval, rl_dynamics
//   plot_charts_common.cpp the helpers declared here
// Not here: the command line and reading the log (cmd_plot.cpp), gnuplot (plot_gnuplot.h).
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dseek/cli/plot_gnuplot.h"

namespace dseek::cli::plot {

inline constexpr size_t kSmoothMin = 200;  // train loss with more points also gets an EMA line

// Keys of post-training runs (posttrain/grpo.cpp and posttrain/sft.cpp write them).
namespace post_key {
inline constexpr const char* kRewardMean = "reward_mean";
inline constexpr const char* kRewardStd = "reward_std";
inline constexpr const char* kAccuracy = "accuracy";
inline constexpr const char* kFormat = "format";
inline constexpr const char* kCompletionTokens = "completion_tokens";
inline constexpr const char* kKl = "kl";  // grpo: KL to the reference (k3); sft: distillation KL
inline constexpr const char* kClipFracLow = "clip_frac_low";
inline constexpr const char* kClipFracHigh = "clip_frac_high";
inline constexpr const char* kEntropy = "entropy";
inline constexpr const char* kEvalPass1 = "eval_pass1";
inline constexpr const char* kEvalPassK = "eval_passk";
inline constexpr const char* kEvalK = "eval_k";
inline constexpr const char* kEvalFormat = "eval_format";
}  // namespace post_key

struct Run {
  std::string dir;
  std::string name;  // legend label: the folder name
  std::vector<nlohmann::json> records;
};

struct Ctx {
  std::vector<Run> runs;  // runs[0] is RUN_DIR, then the --compare folders
  std::filesystem::path out;
  int layer = -1;  // expert_load: MoE layer, -1 = all stacked
  Gnuplot* gp = nullptr;
  std::vector<std::string> wrote, skipped;
};

// ---- metrics -> series

bool finite_number(const nlohmann::json& v);
double step_of(const nlohmann::json& r);
bool run_has(const Run& run, const char* key);  // some record has `key` as a finite number
// A `dseek grpo` run: it logs rollout rewards or completion lengths.
bool is_rl_run(const Run& run);
// key -> (step, value) for records where it is a finite number.
XY series_scalar(const Run& run, const char* key);
// key[idx] -> (step, value) for records where key is an array with a finite number at idx.
XY series_elem(const Run& run, const char* key, size_t idx);
// mean over the finite numbers of array key -> (step, mean).
XY series_mean(const Run& run, const char* key);
size_t array_len_max(const Run& run, const char* key);
// Debiased exponential moving average over ~n/per points (at least 2).
XY series_ema(const XY& s, double per = 100.0);
// Per array element: the mean of key[idx] over the last 10% of records that have key.
XY series_tail_mean_by_index(const Run& run, const char* key);

// ---- styles and axes

inline bool compare(const Ctx& c) {
  return c.runs.size() > 1;
}
inline const char* run_color(size_t r) {
  return kColors[r % kNumColors];
}
std::string lines(const char* color, double lw, int dt = 1);
// "#B0rrggbb": the colour made translucent, for raw points under an EMA line.
std::string faint(const char* color);
// "What - run" for one run; "What" with --compare (the legend names the runs).
std::string title_for(const Ctx& c, const std::string& what);
// y range and tics of a log axis over the data (tight, 1-2-5 or finer tics).
std::string log_axis(const std::vector<XY>& ss);
// A log y axis helps when every value is positive and they span at least a factor of 2.
bool log_useful(const std::vector<XY>& ss);
// Draws one panel as c.out/png_name and records it in c.wrote.
void line_chart(Ctx& c, const Panel& p, const std::string& png_name);

// ---- charts

void chart_loss(Ctx& c);
// One line per run of a scalar key; logy: a log axis when log_useful.
void chart_scalar(Ctx& c, const char* key, const std::string& png_name, Panel p, bool logy);
void chart_maxvio(Ctx& c);
void chart_expert_load(Ctx& c);

void chart_rewards(Ctx& c);
void chart_eval(Ctx& c);
void chart_rl_dynamics(Ctx& c);

}  // namespace dseek::cli::plot
