// The pretraining charts of `dseek plot` (keys in train/metrics_log.h); dseek sft runs use the
// same loss, lr, grad_norm and tokens_per_s charts:
//   loss.png         train loss (raw + EMA when noisy), val loss, MTP loss per depth, and the
//                    distillation KL of a dseek sft run when logged ('kl'; not drawn for grpo
//                    runs, whose KL goes to rl_dynamics.png); grpo-only runs: the GRPO loss
//   lr.png           learning rate
//   grad_norm.png    global gradient norm before clipping
//   tokens_per_s.png throughput
//   maxvio.png       left: MaxVio per MoE layer + mean over layers (with --compare: the mean of
//                    each run); right: per-layer MaxVio averaged over the last 10% of records
//   expert_load.png  heatmap of expert load / balanced load over steps, all MoE layers stacked
//                    (or --layer L); main run only
// loss and grad_norm get a log y axis when all values are positive and span a factor >= 2.
// Not here: the post-training charts (plot_charts_post.cpp), gnuplot (plot_gnuplot.cpp).
#include <algorithm>  // min, max, clamp
#include <cmath>      // NAN

#include <fmt/format.h>

#include "dseek/cli/plot_charts.h"
#include "dseek/core/error.h"
#include "dseek/train/metrics_log.h"

namespace dseek::cli::plot {

namespace {

using json = nlohmann::json;
namespace mk = dseek::metrics_key;

constexpr int kHeatmapColsMax = 600;  // steps are resampled to at most this many columns
constexpr double kLoadRelMax = 3.0;   // heatmap colour scale: load / balanced in [0, 3]

}  // namespace

void chart_loss(Ctx& c) {
  Panel p{.title = title_for(c, "Loss"), .ylabel = "cross-entropy (nats, log scale)"};
  std::vector<XY> all;
  bool any_kl = false, all_rl = true;
  for (size_t r = 0; r < c.runs.size(); r++) {
    const Run& run = c.runs[r];
    const bool rl = is_rl_run(run);
    const std::string pre = compare(c) ? run.name + " " : "";
    XY train = series_scalar(run, mk::kLoss);
    XY val = series_scalar(run, mk::kValLoss);
    const char* col_train = compare(c) ? run_color(r) : kColors[0];
    const char* col_val = compare(c) ? run_color(r) : kColors[1];
    if (!train.empty()) {
      all_rl = all_rl && rl;
      if (train.x.size() > kSmoothMin) {
        if (!compare(c))  // raw points faint under the EMA
          p.series.push_back(
              {c.gp->data_write(train), pre + "train", lines(faint(col_train).c_str(), 1)});
        p.series.push_back(
            {c.gp->data_write(series_ema(train)), pre + "train (EMA)", lines(col_train, 2)});
      } else {
        p.series.push_back({c.gp->data_write(train), pre + "train", lines(col_train, 1.5)});
      }
      all.push_back(train);
    }
    if (!val.empty()) {
      all_rl = false;
      p.series.push_back(
          {c.gp->data_write(val), pre + "val",
           fmt::format("with linespoints lw 2 dt 2 pt 7 ps 0.8 lc rgb '{}'", col_val)});
      all.push_back(val);
    }
    const size_t depth = array_len_max(run, mk::kMtpLoss);
    for (size_t k = 0; k < depth; k++) {
      XY m = series_elem(run, mk::kMtpLoss, k);
      if (m.empty()) continue;
      all_rl = false;
      if (m.x.size() > kSmoothMin) m = series_ema(m);
      const char* col = compare(c) ? run_color(r) : kColors[(2 + k) % kNumColors];
      p.series.push_back({c.gp->data_write(m), fmt::format("{}MTP depth {}", pre, k + 1),
                          lines(col, 1.5, compare(c) ? 3 + (int)k : 1)});
      all.push_back(m);
    }
    XY kl = rl ? XY{} : series_scalar(run, post_key::kKl);  // sft distillation
    if (!kl.empty()) {
      any_kl = true;
      all_rl = false;
      if (kl.x.size() > kSmoothMin) kl = series_ema(kl);
      const char* col = compare(c) ? run_color(r) : kColors[4];
      p.series.push_back({c.gp->data_write(kl), pre + "KL to teacher", lines(col, 1.5, 4)});
      all.push_back(kl);
    }
  }
  if (all.empty()) {
    c.skipped.push_back("loss.png (no loss, val_loss or mtp_loss)");
    return;
  }
  const std::string what = any_kl ? "cross-entropy, KL (nats" : "cross-entropy (nats";
  p.logy = !all_rl && log_useful(all);
  if (p.logy) p.ylabel = what + ", log scale)", p.extra = log_axis(all);
  if (!p.logy) p.ylabel = all_rl ? "GRPO loss" : what + ")";
  line_chart(c, p, "loss.png");
}

void chart_scalar(Ctx& c, const char* key, const std::string& png_name, Panel p, bool logy) {
  std::vector<XY> all;
  for (size_t r = 0; r < c.runs.size(); r++) {
    XY s = series_scalar(c.runs[r], key);
    if (s.empty()) continue;
    p.series.push_back({c.gp->data_write(s), compare(c) ? c.runs[r].name : std::string(key),
                        lines(run_color(r), 1.5)});
    all.push_back(std::move(s));
  }
  if (all.empty()) {
    c.skipped.push_back(fmt::format("{} (no {})", png_name, key));
    return;
  }
  p.logy = logy && log_useful(all);
  if (p.logy) p.ylabel += " (log scale)", p.extra = log_axis(all);
  if (!compare(c)) p.key = "off";
  line_chart(c, p, png_name);
}

void chart_maxvio(Ctx& c) {
  Panel left{.title = title_for(c, "MaxVio over training"),
             .ylabel = "MaxVio = (max load - mean load) / mean load",
             .y_from_zero = true};
  Panel right{.title = "MaxVio per MoE layer (mean of the last 10% of records)",
              .xlabel = "MoE layer",
              .ylabel = "MaxVio",
              .y_from_zero = true};
  bool any = false;
  size_t max_layers = 0;
  for (size_t r = 0; r < c.runs.size(); r++) {
    const Run& run = c.runs[r];
    const size_t L = array_len_max(run, mk::kMaxVio);
    if (L == 0) continue;
    any = true;
    max_layers = std::max(max_layers, L);
    if (!compare(c)) {  // every layer thin (legend: first and last), the mean bold black
      for (size_t l = 0; l < L; l++) {
        XY s = series_elem(run, mk::kMaxVio, l);
        if (s.empty()) continue;
        std::string t = (L <= 8 || l == 0 || l + 1 == L) ? fmt::format("layer {}", l) : "";
        // many layers: translucent, so the mean stays readable on top
        std::string col = std::string(L > 8 ? "#90" : "#") + (run_color(l) + 1);
        left.series.push_back({c.gp->data_write(s), t, lines(col.c_str(), 1)});
      }
      left.series.push_back(
          {c.gp->data_write(series_mean(run, mk::kMaxVio)), "mean", lines("#000000", 2.5)});
    } else {
      left.series.push_back(
          {c.gp->data_write(series_mean(run, mk::kMaxVio)), run.name, lines(run_color(r), 2)});
    }
    right.series.push_back(
        {c.gp->data_write(series_tail_mean_by_index(run, mk::kMaxVio)), run.name,
         fmt::format("with linespoints lw 2 pt 7 ps 1 lc rgb '{}'", run_color(r))});
  }
  if (!any) {
    c.skipped.push_back("maxvio.png (no maxvio)");
    return;
  }
  std::string png = (c.out / "maxvio.png").string();
  std::string s = c.gp->header(png, 1500, 650);
  s += "set multiplot layout 1,2\n" + c.gp->panel(left);
  if (max_layers <= 24) right.extra = "set xtics 1\n";
  s += c.gp->panel(right) + "unset multiplot\n";
  c.gp->run(s, png);
  c.wrote.push_back(png);
}

void chart_expert_load(Ctx& c) {
  const Run& run = c.runs[0];
  std::vector<const json*> recs;  // records with an expert_load array
  for (const json& r : run.records) {
    auto it = r.find(mk::kExpertLoad);
    if (it != r.end() && it->is_array() && !it->empty()) recs.push_back(&r);
  }
  if (recs.empty()) {
    c.skipped.push_back("expert_load.png (no expert_load)");
    return;
  }
  const size_t L = array_len_max(run, mk::kExpertLoad);
  size_t E = 0;
  for (const json* r : recs)
    for (const json& row : (*r)[mk::kExpertLoad])
      if (row.is_array()) E = std::max(E, row.size());
  DSEEK_CHECK(E > 0, "{}: expert_load rows are not arrays of per-expert loads", run.dir);
  const size_t l0 = c.layer < 0 ? 0 : (size_t)c.layer, nl = c.layer < 0 ? L : 1;
  const size_t nrow = nl * E;

  // Columns: evenly spaced steps, each showing the latest record at or before it.
  const double s0 = step_of(*recs.front()), s1 = step_of(*recs.back());
  const int ncol = std::max(2, (int)std::min<size_t>(recs.size(), kHeatmapColsMax));
  const double dx = s1 > s0 ? (s1 - s0) / (ncol - 1) : 1.0;
  std::vector<float> img(nrow * ncol, NAN);
  size_t ri = 0;
  for (int col = 0; col < ncol; col++) {
    const double sc = s0 + col * dx;
    while (ri + 1 < recs.size() && step_of(*recs[ri + 1]) <= sc + 1e-9) ri++;
    const json& load = (*recs[ri])[mk::kExpertLoad];
    for (size_t l = 0; l < nl; l++) {
      if (l0 + l >= load.size() || !load[l0 + l].is_array()) continue;
      const json& row = load[l0 + l];
      double sum = 0;
      for (const json& v : row)
        if (finite_number(v)) sum += v.get<double>();
      const double mean = sum / (double)E;
      if (mean <= 0) continue;
      for (size_t e = 0; e < row.size(); e++)
        if (finite_number(row[e]))
          img[(l * E + e) * ncol + col] = (float)(row[e].get<double>() / mean);
    }
  }

  std::string png = (c.out / "expert_load.png").string();
  const int h = (int)std::clamp<size_t>(220 + nrow * 3, 600, 2000);
  std::string s = c.gp->header(png, kWidth, h);
  s += "set title " +
       gq(fmt::format("Expert load / balanced load - {} ({}; {} experts{})", run.name,
                      c.layer < 0 ? fmt::format("{} MoE layers stacked", L)
                                  : fmt::format("MoE layer {}", c.layer),
                      E, compare(c) ? "; --compare runs not shown" : "")) +
       "\n";
  s += "set xlabel 'step'\nset cblabel 'load / balanced load (1 = balanced; >3 clipped)'\n";
  s += fmt::format("set cbrange [0:{}]\n", kLoadRelMax);
  s += "set palette defined (0 '#313695', 0.5 '#74add1', 1 '#f7f7f7', 2 '#f46d43', 3 '#a50026')\n";
  s += fmt::format("set xrange [{}:{}]\n", s0 - dx / 2, s0 + (ncol - 0.5) * dx);
  s += fmt::format("set yrange [{}:-0.5]\n", nrow - 0.5);  // layer 0, expert 0 on top
  s += "set tics out\nunset key\n";
  if (c.layer < 0 && L > 1) {
    s += "set ylabel 'MoE layer (experts 0..E-1 within each band)'\nset ytics (";
    const size_t every = (L + 29) / 30;
    bool first = true;
    for (size_t l = 0; l < L; l += every) {
      s += fmt::format("{}'{}' {}", first ? "" : ", ", l, l * E + (E - 1) / 2.0);
      first = false;
    }
    s += ")\n";
    for (size_t l = 1; l < L; l++)
      s += fmt::format(
          "set arrow from graph 0, first {0} to graph 1, first {0} nohead lc rgb '#000000' "
          "lw 0.5 front\n",
          l * E - 0.5);
  } else {
    s += "set ylabel 'expert'\n";
  }
  s += fmt::format(
      "plot {} binary array=({},{}) format='%float32' origin=({},0) dx={} dy=1 with image\n",
      gq(c.gp->binary_write(img)), ncol, nrow, s0, dx);
  c.gp->run(s, png);
  c.wrote.push_back(png);
}

}  // namespace dseek::cli::plot
