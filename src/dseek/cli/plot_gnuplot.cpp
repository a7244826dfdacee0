// gnuplot for `dseek plot` (contract in plot_gnuplot.h): executable lookup, temporary folder,
// data files, script pieces, and spawning gnuplot without a shell.
#include "dseek/cli/plot_gnuplot.h"

#include <fcntl.h>     // O_WRONLY for the spawn redirections
#include <spawn.h>     // posix_spawnp: gnuplot without a shell
#include <sys/wait.h>  // waitpid
#include <unistd.h>    // getpid, access

#include <cstdlib>  // getenv, system
#include <cstring>  // strerror
#include <fstream>  // data files, gnuplot stderr
#include <random>   // temp folder name

#include <fmt/format.h>

#include "dseek/core/error.h"

extern char** environ;

namespace dseek::cli::plot {

namespace fs = std::filesystem;

std::string gq(const std::string& s) {
  std::string r = "'";
  for (char c : s) {
    if (c == '\'') r.push_back('\'');
    r.push_back(c);
  }
  r.push_back('\'');
  return r;
}

std::string gnuplot_find() {
  if (const char* g = std::getenv("DSEEK_GNUPLOT"); g && *g) return g;
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "";
  size_t b = 0;
  while (b <= p.size()) {
    size_t e = p.find(':', b);
    if (e == std::string::npos) e = p.size();
    // an empty PATH entry is the current folder
    std::string cand = e > b ? p.substr(b, e - b) : std::string(".");
    cand.append("/gnuplot");
    if (::access(cand.c_str(), X_OK) == 0) return cand;
    b = e + 1;
  }
  std::string msg = "gnuplot not found on PATH (dseek plot draws with it); install it: ";
  msg.append(kInstallHint);
  throw dseek::Error(msg);
}

Gnuplot::Gnuplot(std::string exe) : exe_(std::move(exe)) {
  std::mt19937_64 rng(std::random_device{}());
  tmp_ = fs::temp_directory_path() / fmt::format("dseek_plot_{}_{:x}", getpid(), rng());
  fs::create_directories(tmp_);
  // pngcairo draws anti-aliased lines and alpha; plain png (libgd) is the fallback.
  term_ = "pngcairo";
  std::string probe = fmt::format("'{}' -e 'set terminal pngcairo' >/dev/null 2>&1", exe_);
  if (exe_.find('\'') != std::string::npos || std::system(probe.c_str()) != 0) term_ = "png";
}

Gnuplot::~Gnuplot() {
  std::error_code ec;
  fs::remove_all(tmp_, ec);
}

std::string Gnuplot::data_write(const XY& s) {
  std::string path = (tmp_ / fmt::format("s{}.dat", n_files_++)).string();
  std::ofstream f(path);
  for (size_t i = 0; i < s.x.size(); i++) f << fmt::format("{:.10g} {:.10g}\n", s.x[i], s.y[i]);
  DSEEK_CHECK(f.good(), "{}: cannot write plot data", path);
  points_[path] = s.x.size();
  return path;
}

std::string Gnuplot::band_write(const XY& mid, const std::vector<double>& half) {
  std::string path = (tmp_ / fmt::format("s{}.dat", n_files_++)).string();
  std::ofstream f(path);
  for (size_t i = 0; i < mid.x.size() && i < half.size(); i++)
    f << fmt::format("{:.10g} {:.10g} {:.10g}\n", mid.x[i], mid.y[i] - half[i], mid.y[i] + half[i]);
  DSEEK_CHECK(f.good(), "{}: cannot write plot data", path);
  return path;
}

std::string Gnuplot::binary_write(const std::vector<float>& v) {
  std::string path = (tmp_ / fmt::format("b{}.bin", n_files_++)).string();
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), (std::streamsize)(v.size() * sizeof(float)));
  DSEEK_CHECK(f.good(), "{}: cannot write plot data", path);
  return path;
}

std::string Gnuplot::header(const std::string& png, int w, int h) const {
  return fmt::format("set terminal {} size {},{} noenhanced font 'sans,11'\nset output {}\n", term_,
                     w, h, gq(png));
}

std::string Gnuplot::panel(const Panel& p) const {
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
  if (p.series.empty()) {  // empty axes with a note (a panel of a multiplot without its key)
    s += "unset logscale y\nset xrange [0:1]\nset yrange [0:1]\nset format y '%g'\n";
    s += "set label 1 'no data in the log' at graph 0.5, graph 0.5 center\n";
    return s + "plot -1 notitle\nunset label 1\n";
  }
  s += p.extra;
  s += "plot ";
  for (size_t i = 0; i < p.series.size(); i++) {
    const Series& se = p.series[i];
    // a line through a handful of points (or one) is hard to see: mark the points too
    std::string style = se.style;
    auto it = points_.find(se.file);
    if (it != points_.end() && it->second < kFewPoints && style.rfind("with lines ", 0) == 0)
      style = "with linespoints pt 7 ps 0.8 " + style.substr(11);
    s += (i ? ", \\\n     " : "") + gq(se.file) + " using " + se.cols + " " + style + " " +
         (se.title.empty() ? std::string("notitle") : "title " + gq(se.title));
  }
  return s + "\n";
}

void Gnuplot::run(const std::string& script, const std::string& png) {
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

}  // namespace dseek::cli::plot
