// gnuplot for `dseek plot`: finding the executable, a private temporary folder for data files
// and scripts (removed with the Gnuplot object), the terminal (pngcairo when gnuplot has it,
// else png), scripts built from Panel descriptions, and one gnuplot process per chart whose
// failure throws with gnuplot's first error line (so an error names the chart).
// Not here: which charts exist or what they show (plot_charts_*.cpp), reading metrics.jsonl.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace dseek::cli::plot {

inline constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
inline constexpr int kNumColors = sizeof(kColors) / sizeof(kColors[0]);
inline constexpr int kWidth = 1200, kHeight = 700;  // pixels of a line chart
inline constexpr size_t kFewPoints = 25;  // series with fewer points are drawn with markers
inline constexpr const char* kInstallHint = "apt-get install -y gnuplot-nox";

// Points of one line: x[i], y[i].
struct XY {
  std::vector<double> x, y;
  bool empty() const { return x.empty(); }
};

struct Series {
  std::string file;          // data file: "x y" (or "x lo hi" for a band) per line
  std::string title;         // legend entry; empty = notitle
  std::string style;         // "with lines lw 2 lc rgb '#1f77b4'"
  std::string cols = "1:2";  // gnuplot `using` columns
};

// One set of axes. Every field is emitted explicitly, so panels of a multiplot do not inherit
// each other's settings. A panel without series is drawn empty with a "no data" note.
struct Panel {
  std::string title{}, xlabel = "step", ylabel{};
  bool logy = false;
  bool y_from_zero = false;
  std::string yformat{};          // e.g. "%.1e"; empty = default
  std::string key = "top right";  // legend placement
  std::string extra{};            // more gnuplot commands, after the defaults (tics, ranges)
  std::vector<Series> series{};
};

// A gnuplot single-quoted string literal ('' stands for ').
std::string gq(const std::string& s);

// $DSEEK_GNUPLOT, else gnuplot on PATH; throws with the install hint when there is none.
std::string gnuplot_find();

class Gnuplot {
 public:
  // Creates the temporary folder and probes the terminal.
  explicit Gnuplot(std::string exe);
  ~Gnuplot();  // removes the temporary folder
  Gnuplot(const Gnuplot&) = delete;
  Gnuplot& operator=(const Gnuplot&) = delete;

  // Data files in the temporary folder; return their paths.
  std::string data_write(const XY& s);
  // "x y-half y+half" per line, for a band drawn with cols "1:2:3" and filledcurves.
  std::string band_write(const XY& mid, const std::vector<double>& half);
  std::string binary_write(const std::vector<float>& v);  // float32, for `binary array`

  // Script pieces: terminal + output, then one `plot` per panel.
  std::string header(const std::string& png, int w, int h) const;
  std::string panel(const Panel& p) const;

  // Runs gnuplot on `script`; throws with gnuplot's first error line when it fails.
  void run(const std::string& script, const std::string& png);

 private:
  std::string exe_, term_;
  std::filesystem::path tmp_;
  int n_files_ = 0;
  std::map<std::string, size_t> points_;  // data file -> number of points
};

}  // namespace dseek::cli::plot
