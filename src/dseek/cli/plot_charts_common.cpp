// What the charts of `dseek plot` share (contract in plot_charts.h): series taken from the
// records of a run, line styles, log axes, drawing a one-panel chart.
#include <algorithm>  // min, max
#include <cmath>      // isfinite, log10, pow

#include <fmt/format.h>

#include "dseek/cli/plot_charts.h"
#include "dseek/train/metrics_log.h"

namespace dseek::cli::plot {

using json = nlohmann::json;
namespace mk = dseek::metrics_key;

// ---------------------------------------------------------------------------------------------
// metrics -> series

bool finite_number(const json& v) {
  return v.is_number() && std::isfinite(v.get<double>());
}

double step_of(const json& r) {
  return (double)r[mk::kStep].get<int64_t>();
}

bool run_has(const Run& run, const char* key) {
  for (const json& r : run.records) {
    auto it = r.find(key);
    if (it != r.end() && finite_number(*it)) return true;
  }
  return false;
}

bool is_rl_run(const Run& run) {
  return run_has(run, post_key::kRewardMean) || run_has(run, post_key::kCompletionTokens);
}

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

XY series_ema(const XY& s, double per) {
  const double tau = std::max(2.0, (double)s.x.size() / per);
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
// styles and axes

std::string lines(const char* color, double lw, int dt) {
  return fmt::format("with lines lw {} dt {} lc rgb '{}'", lw, dt, color);
}

std::string faint(const char* color) {
  return std::string("#B0") + (color + 1);
}

std::string title_for(const Ctx& c, const std::string& what) {
  if (compare(c)) return what;
  return what + " - " + c.runs[0].name;
}

// A tight range (gnuplot would widen it to whole decades) with 1-2-5 or finer tics, so a loss
// going from 11 to 3 still fills the chart.
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

bool log_useful(const std::vector<XY>& ss) {
  double lo = INFINITY, hi = 0;
  for (const XY& s : ss)
    for (double y : s.y) {
      if (y <= 0) return false;
      lo = std::min(lo, y), hi = std::max(hi, y);
    }
  return hi > 0 && hi >= 2 * lo;
}

void line_chart(Ctx& c, const Panel& p, const std::string& png_name) {
  std::string png = (c.out / png_name).string();
  c.gp->run(c.gp->header(png, kWidth, kHeight) + c.gp->panel(p), png);
  c.wrote.push_back(png);
}

}  // namespace dseek::cli::plot
