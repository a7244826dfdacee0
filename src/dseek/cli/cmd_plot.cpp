// `dseek plot RUN_DIR [--out DIR] [--compare RUN_DIR2 ...] [--layer L]`: PNG charts of a training
// run's metrics.jsonl (keys documented in train/metrics_log.h), drawn by gnuplot from a generated
// script and data files in a temporary folder (one gnuplot process per chart, so an error names
// the chart). Charts, each skipped with a note when its key is absent:
//   loss.png         train loss (raw + EMA when noisy), val loss, MTP loss per depth
//   lr.png           learning rate
//   grad_norm.png    global gradient norm before clipping
//   tokens_per_s.png throughput
//   maxvio.png       left: MaxVio per MoE layer + mean over layers (with --compare: the mean of
//                    each run); right: per-layer MaxVio averaged over the last 10% of records
//   expert_load.png  heatmap of expert load / balanced load over steps, all MoE layers stacked
//                    (or --layer L); main run only
// loss and grad_norm get a log y axis when all values are positive and span a factor >= 2.
// With --compare every line chart overlays the runs, one colour per run, legend = folder name.
// gnuplot is looked up on PATH (or taken from $DSEEK_GNUPLOT); pngcairo when it has it, else png.
// Not here: reading the log (train/metrics_log.cpp), any metric computation.
#include <fcntl.h>     // O_WRONLY for the spawn redirections
#include <spawn.h>     // posix_spawnp: gnuplot without a shell
#include <sys/wait.h>  // waitpid
#include <unistd.h>    // getpid, access

#include <algorithm>   // min, max, minmax
#include <cmath>       // isfinite
#include <cstdio>      // printf, FILE
#include <cstdlib>     // getenv, system
#include <cstring>     // strerror
#include <filesystem>  // temp folders, output folder
#include <fstream>     // data files, gnuplot stderr
#include <map>         // points per data file
#include <random>      // temp folder name
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dseek/cli/command.h"
#include "dseek/core/error.h"
#include "dseek/train/metrics_log.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
namespace mk = dseek::metrics_key;

// ---------------------------------------------------------------------------------------------
// constants

constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
constexpr int kNumColors = sizeof(kColors) / sizeof(kColors[0]);
constexpr int kWidth = 1200, kHeight = 700;  // pixels of a line chart
constexpr size_t kSmoothMin = 200;           // train loss with more points also gets an EMA line
constexpr size_t kFewPoints = 25;            // series with fewer points are drawn with markers
constexpr int kHeatmapColsMax = 600;         // steps are resampled to at most this many columns
constexpr double kLoadRelMax = 3.0;          // heatmap colour scale: load / balanced in [0, 3]
constexpr const char* kInstallHint = "apt-get install -y gnuplot-nox";

// ---------------------------------------------------------------------------------------------
// metrics -> series

struct Run {
  std::string dir;
  std::string name;  // legend label: the folder name
  std::vector<json> records;
};

struct XY {
  std::vector<double> x, y;
  bool empty() const { return x.empty(); }
};

bool finite_number(const json& v) {
  return v.is_number() && std::isfinite(v.get<double>());
}

double step_of(const json& r) {
  return (double)r[mk::kStep].get<int64_t>();
}

// key -> (step, value) for records where it is a finite number.
XY series_scalar(const Run& run, const char* key) {
  XY s;
  for (const json& r : run.records) {
    auto it = r.find(key);
    if (it == r.end() || !finite_number(*it)) continue;
    s.x.push_back(step_of(r));
    s.y.push_back(it->get<double>());
  }
  return s;
}

// key[idx] -> (step, value) for records where key is an array with a finite number at idx.
XY series_elem(const Run& run, const char* key, size_t idx) {
  XY s;
  for (const json& r : run.records) {
    auto it = r.find(key);
    if (it == r.end() || !it->is_array() || idx >= it->size() || !finite_number((*it)[idx]))
      continue;
    s.x.push_back(step_of(r));
    s.y.push_back((*it)[idx].get<double>());
  }
  return s;
}

// mean over the finite numbers of array key -> (step, mean).
XY series_mean(const Run& run, const char* key) {
  XY s;
  for (const json& r : run.records) {
    auto it = r.find(key);
    if (it == r.end() || !it->is_array()) continue;
    double sum = 0;
    int n = 0;
    for (const json& v : *it)
      if (finite_number(v)) sum += v.get<double>(), n++;
    if (n == 0) continue;
    s.x.push_back(step_of(r));
    s.y.push_back(sum / n);
  }
  return s;
}

size_t array_len_max(const Run& run, const char* key) {
  size_t n = 0;
  for (const json& r : run.records) {
    auto it = r.find(key);
    if (it != r.end() && it->is_array()) n = std::max(n, it->size());
  }
  return n;
}

// Debiased exponential moving average over ~n/100 points.
XY series_ema(const XY& s) {
  const double tau = std::max(2.0, (double)s.x.size() / 100.0);
  const double beta = 1.0 - 1.0 / tau;
  XY e;
  double m = 0, w = 0;
  for (size_t i = 0; i < s.x.size(); i++) {
    m = beta * m + (1 - beta) * s.y[i];
    w = beta * w + (1 - beta);
    e.x.push_back(s.x[i]);
    e.y.push_back(m / w);
  }
  return e;
}

// Per array element: the mean of key[idx] over the last 10% of records that have key.
XY series_tail_mean_by_index(const Run& run, const char* key) {
  std::vector<const json*> rows;
  for (const json& r : run.records) {
    auto it = r.find(key);
    if (it != r.end() && it->is_array()) rows.push_back(&*it);
  }
  XY s;
  if (rows.empty()) return s;
  const size_t n_tail = std::max<size_t>(1, rows.size() / 10);
  const size_t len = array_len_max(run, key);
  for (size_t l = 0; l < len; l++) {
    double sum = 0;
    int n = 0;
    for (size_t i = rows.size() - n_tail; i < rows.size(); i++)
      if (l < rows[i]->size() && finite_number((*rows[i])[l]))
        sum += (*rows[i])[l].get<double>(), n++;
    if (n == 0) continue;
    s.x.push_back((double)l);
    s.y.push_back(sum / n);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// gnuplot scripts

// A gnuplot single-quoted string literal ('' stands for ').
std::string gq(const std::string& s) {
  std::string r = "'";
  for (char c : s) {
    if (c == '\'') r.push_back('\'');
    r.push_back(c);
  }
  r.push_back('\'');
  return r;
}

struct Series {
  std::string file;   // "x y" per line
  std::string title;  // legend entry; empty = notitle
  std::string style;  // "with lines lw 2 lc rgb '#1f77b4'"
};

// One set of axes. Every field is emitted explicitly, so panels of a multiplot do not inherit
// each other's settings.
struct Panel {
  std::string title{}, xlabel = "step", ylabel{};
  bool logy = false;
  bool y_from_zero = false;
  std::string yformat{};          // e.g. "%.1e"; empty = default
  std::string key = "top right";  // legend placement
  std::string extra{};            // more gnuplot commands, after the defaults (tics, ranges)
  std::vector<Series> series{};
};

class Gnuplot {
 public:
  Gnuplot(std::string exe, std::string terminal, fs::path tmp)
      : exe_(std::move(exe)), term_(std::move(terminal)), tmp_(std::move(tmp)) {}

  std::string data_write(const XY& s) {
    std::string path = (tmp_ / fmt::format("s{}.dat", n_files_++)).string();
    std::ofstream f(path);
    for (size_t i = 0; i < s.x.size(); i++) f << fmt::format("{:.10g} {:.10g}\n", s.x[i], s.y[i]);
    DSEEK_CHECK(f.good(), "{}: cannot write plot data", path);
    points_[path] = s.x.size();
    return path;
  }
  std::string binary_write(const std::vector<float>& v) {
    std::string path = (tmp_ / fmt::format("b{}.bin", n_files_++)).string();
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(v.data()), (std::streamsize)(v.size() * sizeof(float)));
    DSEEK_CHECK(f.good(), "{}: cannot write plot data", path);
    return path;
  }

  std::string header(const std::string& png, int w, int h) const {
    return fmt::format("set terminal {} size {},{} noenhanced font 'sans,11'\nset output {}\n",
                       term_, w, h, gq(png));
  }

  std::string panel(const Panel& p) const {
    std::string s;
    s += "set title " + gq(p.title) + "\n";
    s += "set xlabel " + gq(p.xlabel) + "\nset ylabel " + gq(p.ylabel) + "\n";
    s += "set grid lc rgb '#d0d0d0'\nset key " + p.key + " box opaque\n";
    s += p.logy ? "set logscale y\n" : "unset logscale y\n";
    s += "set format y " + gq(p.yformat.empty() ? "%g" : p.yformat) + "\n";
    s += p.y_from_zero && !p.logy ? "set yrange [0:*]\n" : "set yrange [*:*]\n";
    // 5% headroom above the highest line (autoscaled ranges only), tics back to defaults
    s += "set offsets 0, 0, graph 0.05, 0\nset autoscale x\n";
    s += "set xtics autofreq\nset ytics autofreq\nset mxtics default\nset mytics default\n";
    s += p.extra;
    s += "plot ";
    for (size_t i = 0; i < p.series.size(); i++) {
      const Series& se = p.series[i];
      // a line through a handful of points (or one) is hard to see: mark the points too
      std::string style = se.style;
      auto it = points_.find(se.file);
      if (it != points_.end() && it->second < kFewPoints && style.rfind("with lines ", 0) == 0)
        style = "with linespoints pt 7 ps 0.8 " + style.substr(11);
      s += (i ? ", \\\n     " : "") + gq(se.file) + " using 1:2 " + style + " " +
           (se.title.empty() ? std::string("notitle") : "title " + gq(se.title));
    }
    return s + "\n";
  }

  // Runs gnuplot on `script`; throws with gnuplot's first error line when it fails.
  void run(const std::string& script, const std::string& png) {
    const std::string sp = (tmp_ / fmt::format("p{}.gp", n_files_++)).string();
    const std::string errp = sp + ".err";
    std::error_code ec;
    fs::remove(png, ec);  // so a stale chart from an earlier call cannot pass for a new one
    {
      std::ofstream f(sp);
      f << script;
      DSEEK_CHECK(f.good(), "{}: cannot write gnuplot script", sp);
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, errp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    std::vector<char*> argv = {const_cast<char*>(exe_.c_str()), const_cast<char*>(sp.c_str()),
                               nullptr};
    pid_t pid = 0;
    int rc = posix_spawnp(&pid, exe_.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    DSEEK_CHECK(rc == 0, "cannot start {}: {}", exe_, std::strerror(rc));
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && fs::exists(png)) return;
    std::ifstream e(errp);
    std::string line, first;
    while (std::getline(e, line))
      if (line.find_first_not_of(" ^") != std::string::npos &&
          line.find("line ") != std::string::npos) {
        first = line;
        break;
      }
    dseek::fail("gnuplot failed drawing {}: {}", png, first.empty() ? "(no message)" : first);
  }

 private:
  std::string exe_, term_;
  fs::path tmp_;
  int n_files_ = 0;
  std::map<std::string, size_t> points_;  // data file -> number of points
};

// ---------------------------------------------------------------------------------------------
// charts

struct Ctx {
  std::vector<Run> runs;  // runs[0] is RUN_DIR, then the --compare folders
  fs::path out;
  int layer = -1;  // expert_load: MoE layer, -1 = all stacked
  Gnuplot* gp;
  std::vector<std::string> wrote, skipped;
};

bool compare(const Ctx& c) {
  return c.runs.size() > 1;
}
const char* run_color(size_t r) {
  return kColors[r % kNumColors];
}
std::string lines(const char* color, double lw, int dt = 1) {
  return fmt::format("with lines lw {} dt {} lc rgb '{}'", lw, dt, color);
}
std::string title_for(const Ctx& c, const std::string& what) {
  if (compare(c)) return what;
  return what + " - " + c.runs[0].name;
}
// y range and tics of a log axis over the data: a tight range (gnuplot would widen it to whole
// decades) with 1-2-5 or finer tics, so a loss going from 11 to 3 still fills the chart.
std::string log_axis(const std::vector<XY>& ss) {
  double lo = INFINITY, hi = -INFINITY;
  for (const XY& s : ss)
    for (double y : s.y) lo = std::min(lo, y), hi = std::max(hi, y);
  if (!(lo > 0) || !std::isfinite(hi)) return "";
  lo /= 1.08, hi *= 1.08;
  const double ratio = hi / lo;
  std::vector<double> mant = ratio > 300  ? std::vector<double>{1}
                             : ratio > 12 ? std::vector<double>{1, 2, 5}
                                          : std::vector<double>{1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8};
  std::string tics;
  for (int k = (int)std::floor(std::log10(lo)); k <= (int)std::ceil(std::log10(hi)); k++)
    for (double m : mant) {
      const double t = m * std::pow(10.0, k);
      if (t >= lo && t <= hi) tics += fmt::format("{}{:g}", tics.empty() ? "" : ", ", t);
    }
  std::string s = fmt::format("set yrange [{:.6g}:{:.6g}]\n", lo, hi);
  if (!tics.empty()) s += "set ytics (" + tics + ")\nset mytics 1\n";
  return s;
}

// A log y axis helps when every value is positive and they span at least a factor of 2.
bool log_useful(const std::vector<XY>& ss) {
  double lo = INFINITY, hi = 0;
  for (const XY& s : ss)
    for (double y : s.y) {
      if (y <= 0) return false;
      lo = std::min(lo, y), hi = std::max(hi, y);
    }
  return hi > 0 && hi >= 2 * lo;
}

void line_chart(Ctx& c, Panel p, const std::string& png_name) {
  std::string png = (c.out / png_name).string();
  c.gp->run(c.gp->header(png, kWidth, kHeight) + c.gp->panel(p), png);
  c.wrote.push_back(png);
}

void chart_loss(Ctx& c) {
  Panel p{.title = title_for(c, "Loss"), .ylabel = "cross-entropy (nats, log scale)"};
  std::vector<XY> all;
  for (size_t r = 0; r < c.runs.size(); r++) {
    const Run& run = c.runs[r];
    const std::string pre = compare(c) ? run.name + " " : "";
    XY train = series_scalar(run, mk::kLoss);
    XY val = series_scalar(run, mk::kValLoss);
    const char* col_train = compare(c) ? run_color(r) : kColors[0];
    const char* col_val = compare(c) ? run_color(r) : kColors[1];
    if (!train.empty()) {
      if (train.x.size() > kSmoothMin) {
        if (!compare(c)) {  // raw points faint under the EMA
          std::string faint = std::string("#B0") + (col_train + 1);
          p.series.push_back({c.gp->data_write(train), pre + "train", lines(faint.c_str(), 1)});
        }
        p.series.push_back(
            {c.gp->data_write(series_ema(train)), pre + "train (EMA)", lines(col_train, 2)});
      } else {
        p.series.push_back({c.gp->data_write(train), pre + "train", lines(col_train, 1.5)});
      }
      all.push_back(train);
    }
    if (!val.empty()) {
      p.series.push_back(
          {c.gp->data_write(val), pre + "val",
           fmt::format("with linespoints lw 2 dt 2 pt 7 ps 0.8 lc rgb '{}'", col_val)});
      all.push_back(val);
    }
    const size_t depth = array_len_max(run, mk::kMtpLoss);
    for (size_t k = 0; k < depth; k++) {
      XY m = series_elem(run, mk::kMtpLoss, k);
      if (m.empty()) continue;
      if (m.x.size() > kSmoothMin) m = series_ema(m);
      const char* col = compare(c) ? run_color(r) : kColors[(2 + k) % kNumColors];
      p.series.push_back({c.gp->data_write(m), fmt::format("{}MTP depth {}", pre, k + 1),
                          lines(col, 1.5, compare(c) ? 3 + (int)k : 1)});
      all.push_back(m);
    }
  }
  if (all.empty()) {
    c.skipped.push_back("loss.png (no loss, val_loss or mtp_loss)");
    return;
  }
  p.logy = log_useful(all);
  if (p.logy) p.extra = log_axis(all);
  if (!p.logy) p.ylabel = "cross-entropy (nats)";
  line_chart(c, p, "loss.png");
}

// A chart with one line per run of a scalar key.
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

// ---------------------------------------------------------------------------------------------
// entry point

std::string gnuplot_find() {
  if (const char* g = std::getenv("DSEEK_GNUPLOT"); g && *g) return g;
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "";
  size_t b = 0;
  while (b <= p.size()) {
    size_t e = p.find(':', b);
    if (e == std::string::npos) e = p.size();
    std::string dir = p.substr(b, e - b);
    if (dir.empty()) dir = ".";
    std::string cand = dir;
    cand.append("/gnuplot");
    if (::access(cand.c_str(), X_OK) == 0) return cand;
    b = e + 1;
  }
  std::string msg = "gnuplot not found on PATH (dseek plot draws with it); install it: ";
  msg.append(kInstallHint);
  throw dseek::Error(msg);
}

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

  std::mt19937_64 rng(std::random_device{}());
  fs::path tmp = fs::temp_directory_path() / fmt::format("dseek_plot_{}_{:x}", getpid(), rng());
  fs::create_directories(tmp);
  // pngcairo draws anti-aliased lines and alpha; plain png (libgd) is the fallback.
  std::string term = "pngcairo";
  {
    std::string probe = fmt::format("'{}' -e 'set terminal pngcairo' >/dev/null 2>&1", gp_exe);
    if (gp_exe.find('\'') != std::string::npos || std::system(probe.c_str()) != 0) term = "png";
  }
  Gnuplot gp(gp_exe, term, tmp);
  c.gp = &gp;
  try {
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
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  fs::remove_all(tmp, ec);
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
