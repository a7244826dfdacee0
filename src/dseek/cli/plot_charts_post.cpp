// The post-training charts of `dseek plot`, for `dseek grpo` runs (keys in plot_charts.h,
// written by posttrain/grpo.cpp: one record per step, plus eval records carrying "step"):
//   rewards.png      rollout reward mean with a +-reward_std band (one run only), accuracy and
//                    format rate of the rollouts per step
//   eval.png         held-out pass@1 (greedy), pass@k (k from eval_k) and format rate vs step,
//                    markers on the points
//   rl_dynamics.png  2x2: completion length, KL to the reference (k3), entropy, clip fractions
//                    (low and high); grpo runs only (an sft run's 'kl' goes to loss.png)
// A per-step series of more than kSmoothMinPost points is drawn as an EMA line, over its raw
// points drawn faint (one run) or alone (--compare, which overlays the runs, one colour each).
// Not here: the pretraining charts (plot_charts_train.cpp), gnuplot (plot_gnuplot.cpp).
#include <string>
#include <utility>  // pair

#include <fmt/format.h>

#include "dseek/cli/plot_charts.h"

namespace dseek::cli::plot {

namespace {

using json = nlohmann::json;
namespace pk = post_key;

constexpr size_t kSmoothMinPost = 50;  // per-step rollout statistics are noisy: EMA above this
constexpr double kEmaPer = 25.0;       // EMA over ~n/25 points
constexpr const char* kBandAlpha = "0.18";

// Adds series `s` to `p`: raw, or (noisy) EMA over faint raw points / EMA alone with --compare.
void add_line(const Ctx& c, Panel& p, const XY& s, const std::string& title, const char* color,
              int dt) {
  if (s.x.size() <= kSmoothMinPost) {
    p.series.push_back({c.gp->data_write(s), title, lines(color, 1.5, dt)});
    return;
  }
  if (!compare(c)) p.series.push_back({c.gp->data_write(s), "", lines(faint(color).c_str(), 1)});
  p.series.push_back(
      {c.gp->data_write(series_ema(s, kEmaPer)), title + " (EMA)", lines(color, 2, dt)});
}

// reward_mean and reward_std of the records that have both, as a band around the mean.
void add_reward_band(const Ctx& c, Panel& p, const Run& run, const char* color) {
  XY mid, sd;
  for (const json& r : run.records) {
    auto m = r.find(pk::kRewardMean), d = r.find(pk::kRewardStd);
    if (m == r.end() || d == r.end() || !finite_number(*m) || !finite_number(*d)) continue;
    mid.x.push_back(step_of(r)), mid.y.push_back(m->get<double>());
    sd.x.push_back(step_of(r)), sd.y.push_back(d->get<double>());
  }
  if (mid.empty()) return;
  if (mid.x.size() > kSmoothMinPost) mid = series_ema(mid, kEmaPer), sd = series_ema(sd, kEmaPer);
  p.series.push_back({c.gp->band_write(mid, sd.y), "reward +- std",
                      fmt::format("with filledcurves fc rgb '{}' fs transparent solid {} noborder",
                                  color, kBandAlpha),
                      "1:2:3"});
}

// The k of pass@k: the last eval_k the run logged.
std::string passk_label(const Run& run) {
  std::string k = "k";
  for (const json& r : run.records) {
    auto it = r.find(pk::kEvalK);
    if (it != r.end() && it->is_number_integer()) k = fmt::format("{}", it->get<int64_t>());
  }
  return "pass@" + k;
}

}  // namespace

void chart_rewards(Ctx& c) {
  Panel p{.title = title_for(c, "Rollout rewards per step"),
          .ylabel = "reward / rate (mean over the step's rollouts)",
          .key = "bottom right"};
  struct Key {
    const char* key;
    const char* label;
    int color, dt;
  };
  const Key keys[] = {{pk::kRewardMean, "reward", 0, 1},
                      {pk::kAccuracy, "accuracy", 2, 2},
                      {pk::kFormat, "format", 3, 3}};
  bool any = false;
  for (size_t r = 0; r < c.runs.size(); r++) {
    const Run& run = c.runs[r];
    const std::string pre = compare(c) ? run.name + " " : "";
    if (!compare(c)) add_reward_band(c, p, run, kColors[0]);
    for (const Key& k : keys) {
      XY s = series_scalar(run, k.key);
      if (s.empty()) continue;
      any = true;
      add_line(c, p, s, pre + k.label, compare(c) ? run_color(r) : kColors[k.color],
               compare(c) ? k.dt : 1);
    }
  }
  if (!any) {
    c.skipped.push_back("rewards.png (no reward_mean, accuracy or format)");
    return;
  }
  line_chart(c, p, "rewards.png");
}

void chart_eval(Ctx& c) {
  Panel p{.title = title_for(c, "Held-out evaluation"),
          .ylabel = "share of held-out problems",
          .key = "bottom right",
          .extra = "set yrange [0:1.05]\n"};
  bool any = false;
  for (size_t r = 0; r < c.runs.size(); r++) {
    const Run& run = c.runs[r];
    const std::string pre = compare(c) ? run.name + " " : "";
    const std::pair<const char*, std::string> keys[] = {{pk::kEvalPass1, "pass@1 (greedy)"},
                                                        {pk::kEvalPassK, passk_label(run)},
                                                        {pk::kEvalFormat, "format"}};
    for (size_t i = 0; i < 3; i++) {
      XY s = series_scalar(run, keys[i].first);
      if (s.empty()) continue;
      any = true;
      const char* col = compare(c) ? run_color(r) : kColors[i];
      p.series.push_back({c.gp->data_write(s), pre + keys[i].second,
                          fmt::format("with linespoints lw 2 dt {} pt {} ps 1.2 lc rgb '{}'",
                                      compare(c) ? 1 + i : 1, 7 + 2 * i, col)});
    }
  }
  if (!any) {
    c.skipped.push_back("eval.png (no eval_pass1, eval_passk or eval_format)");
    return;
  }
  line_chart(c, p, "eval.png");
}

void chart_rl_dynamics(Ctx& c) {
  Panel len{.title = "Completion length", .ylabel = "tokens (mean per completion)"};
  Panel kl{.title = "KL to the reference policy (k3 estimator)", .ylabel = "nats / token"};
  Panel ent{.title = "Policy entropy", .ylabel = "nats / token"};
  Panel clip{.title = "Clipped tokens", .ylabel = "fraction of tokens"};
  struct Key {
    Panel* panel;
    const char* key;
    const char* label;
    int color, dt;
  };
  const Key keys[] = {{&len, pk::kCompletionTokens, "completion tokens", 0, 1},
                      {&kl, pk::kKl, "KL", 1, 1},
                      {&ent, pk::kEntropy, "entropy", 2, 1},
                      {&clip, pk::kClipFracLow, "low (ratio < 1 - eps)", 4, 1},
                      {&clip, pk::kClipFracHigh, "high (ratio > 1 + eps)", 3, 2}};
  bool any = false;
  for (size_t r = 0; r < c.runs.size(); r++) {
    const Run& run = c.runs[r];
    if (!is_rl_run(run)) continue;
    const std::string pre = compare(c) ? run.name + " " : "";
    for (const Key& k : keys) {
      XY s = series_scalar(run, k.key);
      if (s.empty()) continue;
      any = true;
      add_line(c, *k.panel, s, pre + k.label, compare(c) ? run_color(r) : kColors[k.color], k.dt);
    }
  }
  if (!any) {
    c.skipped.push_back(
        "rl_dynamics.png (no completion_tokens, kl, entropy or clip_frac_low/high of a grpo run)");
    return;
  }
  for (Panel* p : {&len, &kl, &ent, &clip}) {
    p->y_from_zero = true;
    if (!compare(c) && p != &clip) p->key = "off";
  }
  const std::string png = (c.out / "rl_dynamics.png").string();
  std::string s = c.gp->header(png, 1500, 1000);
  s += "set multiplot layout 2,2 title " + gq(title_for(c, "RL dynamics")) + "\n";
  for (const Panel* p : {&len, &kl, &ent, &clip}) s += c.gp->panel(*p);
  s += "unset multiplot\n";
  c.gp->run(s, png);
  c.wrote.push_back(png);
}

}  // namespace dseek::cli::plot
