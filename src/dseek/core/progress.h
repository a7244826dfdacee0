// A progress line on stderr for long work: "[what] done/total  pct%  <status>  ETA 3m12s".
// On a terminal it redraws in place (\r, at most ~10 times a second); otherwise (logs, CI) it
// prints a plain line each time print_line() is asked or a tenth of the work has passed.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace dseek {

class ProgressBar {
 public:
  ProgressBar(std::string what, int64_t total, int64_t start = 0);
  // Report `done` units finished; status is free text (loss, rate, ...).
  void update(int64_t done, const std::string& status, bool force_line = false);
  void finish(const std::string& status);
  static std::string format_duration(double seconds);  // "4m12s", "1h03m", "12s"

 private:
  std::string what_;
  int64_t total_, start_, last_decile_ = -1;
  bool tty_;
  std::chrono::steady_clock::time_point t0_, last_draw_;
  size_t last_len_ = 0;
};

}  // namespace dseek
