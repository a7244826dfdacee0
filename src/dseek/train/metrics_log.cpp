// metrics.jsonl writer (append + flush per record), resume truncation, and the reader.
// Not here: what the training loop measures (keys documented in metrics_log.h), plotting
// (cli/cmd_plot.cpp).
#include "dseek/train/metrics_log.h"

#include <unistd.h>  // fsync, fileno

#include <cerrno>      // errno
#include <cstring>     // strerror
#include <filesystem>  // create_directories, rename
#include <fstream>     // reading the log
#include <utility>     // exchange

#include <nlohmann/json.hpp>  // records

#include "dseek/core/error.h"  // DSEEK_CHECK, fail

namespace dseek {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// reading

namespace {

struct Line {
  std::string text;  // without the newline
  json record;
};

bool record_ok(const json& r) {
  if (!r.is_object()) return false;
  auto it = r.find(metrics_key::kStep);
  return it != r.end() && it->is_number_integer() && it->get<int64_t>() >= 0;
}

// Lines of PATH; a missing file has none. The last line is dropped when it does not parse (a
// record torn by a crash); any other bad line throws.
std::vector<Line> lines_read(const std::string& path) {
  std::vector<Line> out;
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    DSEEK_CHECK(!fs::exists(path), "{}: cannot open for reading", path);
    return out;
  }
  std::vector<std::string> raw;
  for (std::string s; std::getline(f, s);) raw.push_back(std::move(s));
  for (size_t i = 0; i < raw.size(); i++) {
    const bool last = i + 1 == raw.size();
    if (raw[i].find_first_not_of(" \t\r") == std::string::npos) continue;  // blank line
    json r = json::parse(raw[i], nullptr, /*allow_exceptions=*/false);
    if (r.is_discarded() && last) break;  // torn final record
    DSEEK_CHECK(!r.is_discarded(), "{}:{}: not valid JSON: {:.80}", path, i + 1, raw[i]);
    DSEEK_CHECK(record_ok(r), "{}:{}: a record must be a JSON object with an integer \"step\" >= 0",
                path, i + 1);
    out.push_back({std::move(raw[i]), std::move(r)});
  }
  return out;
}

FILE* append_open(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "ab");
  DSEEK_CHECK(f, "{}: cannot open for appending: {}", path, std::strerror(errno));
  return f;
}

}  // namespace

std::vector<json> metrics_log_read(const std::string& path) {
  DSEEK_CHECK(fs::exists(path), "{}: no such file (a training run writes it in its run folder)",
              path);
  std::vector<json> out;
  for (Line& l : lines_read(path)) out.push_back(std::move(l.record));
  return out;
}

// ---------------------------------------------------------------------------------------------
// writing

MetricsLog MetricsLog::create(const std::string& run_dir) {
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  DSEEK_CHECK(!ec, "{}: cannot create run folder: {}", run_dir, ec.message());
  std::string path = (fs::path(run_dir) / kMetricsFileName).string();
  FILE* f = std::fopen(path.c_str(), "wb");
  DSEEK_CHECK(f, "{}: cannot create: {}", path, std::strerror(errno));
  return MetricsLog(path, f, 0);
}

MetricsLog MetricsLog::resume(const std::string& run_dir, int64_t step) {
  DSEEK_CHECK(step >= 0, "MetricsLog::resume: step must be >= 0, got {}", step);
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  DSEEK_CHECK(!ec, "{}: cannot create run folder: {}", run_dir, ec.message());
  std::string path = (fs::path(run_dir) / kMetricsFileName).string();
  std::vector<Line> lines = lines_read(path);

  // Rewrite the kept lines to PATH.tmp, fsync, rename: a crash here leaves the old file intact.
  const std::string tmp = path + ".tmp";
  FILE* t = std::fopen(tmp.c_str(), "wb");
  DSEEK_CHECK(t, "{}: cannot create: {}", tmp, std::strerror(errno));
  int64_t kept = 0;
  bool ok = true;
  for (const Line& l : lines) {
    if (l.record[metrics_key::kStep].get<int64_t>() > step) continue;
    ok = ok && std::fputs(l.text.c_str(), t) >= 0 && std::fputc('\n', t) != EOF;
    kept++;
  }
  ok = ok && std::fflush(t) == 0 && ::fsync(::fileno(t)) == 0;
  ok = (std::fclose(t) == 0) && ok;
  if (!ok) {
    int err = errno;
    fs::remove(tmp, ec);
    fail("{}: write failed: {}", tmp, std::strerror(err));
  }
  fs::rename(tmp, path, ec);
  DSEEK_CHECK(!ec, "{}: cannot rename to {}: {}", tmp, path, ec.message());
  return MetricsLog(path, append_open(path), kept);
}

MetricsLog::MetricsLog(MetricsLog&& o) noexcept
    : path_(std::move(o.path_)), f_(std::exchange(o.f_, nullptr)), kept_(o.kept_) {}

MetricsLog& MetricsLog::operator=(MetricsLog&& o) noexcept {
  if (this != &o) {
    if (f_) std::fclose(f_);
    path_ = std::move(o.path_);
    f_ = std::exchange(o.f_, nullptr);
    kept_ = o.kept_;
  }
  return *this;
}

MetricsLog::~MetricsLog() {
  if (f_) std::fclose(f_);
}

void MetricsLog::write(const json& record) {
  DSEEK_CHECK(f_, "MetricsLog::write on a closed log");
  DSEEK_CHECK(record_ok(record),
              "metrics record must be a JSON object with an integer \"step\" >= 0, got {:.200}",
              record.dump());
  // nlohmann writes NaN/inf as null; replace invalid UTF-8 instead of throwing mid-training.
  std::string line = record.dump(-1, ' ', false, json::error_handler_t::replace);
  line.push_back('\n');
  bool ok = std::fwrite(line.data(), 1, line.size(), f_) == line.size() && std::fflush(f_) == 0;
  DSEEK_CHECK(ok, "{}: write failed: {}", path_, std::strerror(errno));
}

}  // namespace dseek
