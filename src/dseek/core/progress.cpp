#include "dseek/core/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace dseek {

ProgressBar::ProgressBar(std::string what, int64_t total, int64_t start)
    : what_(std::move(what)), total_(total), start_(start), tty_(isatty(STDERR_FILENO) == 1) {
  t0_ = last_draw_ = std::chrono::steady_clock::now();
}

std::string ProgressBar::format_duration(double s) {
  if (s < 0 || s != s) return "?";
  const int64_t t = (int64_t)(s + 0.5);
  if (t < 60) return fmt::format("{}s", t);
  if (t < 3600) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}h{:02d}m", t / 3600, (t % 3600) / 60);
}

void ProgressBar::update(int64_t done, const std::string& status, bool force_line) {
  auto now = std::chrono::steady_clock::now();
  const double el = std::chrono::duration<double>(now - t0_).count();
  const double frac = total_ > 0 ? (double)done / total_ : 0.0;
  const double rate = el > 0 ? (done - start_) / el : 0.0;
  const double eta = rate > 0 ? (total_ - done) / rate : -1;
  std::string line = fmt::format("[{}] {}/{} {:3.0f}%  {}  ETA {}", what_, done, total_, 100 * frac,
                                 status, format_duration(eta));
  if (tty_) {
    if (!force_line && done < total_ &&
        std::chrono::duration<double>(now - last_draw_).count() < 0.1)
      return;
    const int width = 24, fill = (int)(frac * width);
    std::string bar = fmt::format("|{}{}|", std::string(fill, '#'), std::string(width - fill, '.'));
    line = fmt::format("[{}] {} {}/{}  {}  ETA {}", what_, bar, done, total_, status,
                       format_duration(eta));
    std::string pad = last_len_ > line.size() ? std::string(last_len_ - line.size(), ' ') : "";
    std::fprintf(stderr, "\r%s%s", line.c_str(), pad.c_str());
    if (force_line) std::fputc('\n', stderr);
    last_len_ = force_line ? 0 : line.size();
  } else {
    const int64_t decile = total_ > 0 ? (int64_t)(10 * frac) : 0;
    if (!force_line && decile == last_decile_) return;
    last_decile_ = decile;
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
  last_draw_ = now;
}

void ProgressBar::finish(const std::string& status) {
  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  if (tty_ && last_len_) std::fputc('\n', stderr);
  std::fprintf(stderr, "[%s] done in %s  %s\n", what_.c_str(), format_duration(el).c_str(),
               status.c_str());
  last_len_ = 0;
}

}  // namespace dseek
