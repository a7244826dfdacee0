// The training metrics log: RUN_DIR/metrics.jsonl, one JSON object per line, appended and
// flushed after every record (a crash loses at most the line being written). `dseek plot`
// reads it back. Not here: console printing, TensorBoard/W&B, checkpoints.
//
// Keys the training loop writes (all optional except step; numbers are JSON numbers, a
// non-finite value is written as null and plots skip it):
//   step          int     optimizer updates done when the record was written: the record of the
//                         first update has step 1; a checkpoint taken after update S resumes at S
//   loss          float   train loss: main-model next-token cross-entropy, mean over tokens
//   val_loss      float   validation loss (only on evaluation steps)
//   mtp_loss      [float] MTP cross-entropy per depth k = 1..D (DeepSeek-V3 §2.2)
//   lr            float   learning rate used by this update
//   grad_norm     float   global L2 norm of the gradients before clipping
//   tokens_per_s  float   training throughput over the last logging interval
//   maxvio        [float] MaxVio per MoE layer: (max_e load_e - mean load) / mean load
//                         (Wang et al. 2024, auxiliary-loss-free load balancing)
//   expert_load   [[float]] per MoE layer, E values: the share of the layer's routed
//                         (token, expert) assignments that went to each expert (a row sums to
//                         1; plots divide by the row mean, so a row summing to Ek reads the same)
//   time_s        float   wall-clock seconds since the run started (continues across resumes)
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace dseek {

// Key names, so writer and reader cannot drift apart.
namespace metrics_key {
inline constexpr const char* kStep = "step";
inline constexpr const char* kLoss = "loss";
inline constexpr const char* kValLoss = "val_loss";
inline constexpr const char* kMtpLoss = "mtp_loss";
inline constexpr const char* kLr = "lr";
inline constexpr const char* kGradNorm = "grad_norm";
inline constexpr const char* kTokensPerS = "tokens_per_s";
inline constexpr const char* kMaxVio = "maxvio";
inline constexpr const char* kExpertLoad = "expert_load";
inline constexpr const char* kTimeS = "time_s";
}  // namespace metrics_key

inline constexpr const char* kMetricsFileName = "metrics.jsonl";

class MetricsLog {
 public:
  // A fresh run: creates RUN_DIR if needed and empties any existing metrics.jsonl.
  static MetricsLog create(const std::string& run_dir);
  // Resuming from a checkpoint taken at `step`: keeps the records with step <= `step` (and drops
  // later ones, written after that checkpoint, plus a torn last line left by a crash), rewriting
  // the file atomically; then appends. A missing file starts empty. A malformed line other than
  // the last throws naming the file and line number.
  static MetricsLog resume(const std::string& run_dir, int64_t step);

  MetricsLog(MetricsLog&& o) noexcept;
  MetricsLog& operator=(MetricsLog&& o) noexcept;
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  ~MetricsLog();

  // Appends one record (a JSON object with a non-negative integer "step") and flushes.
  void write(const nlohmann::json& record);
  const std::string& path() const { return path_; }
  int64_t records_kept() const { return kept_; }  // lines kept by resume()

 private:
  MetricsLog(std::string path, FILE* f, int64_t kept)
      : path_(std::move(path)), f_(f), kept_(kept) {}
  std::string path_;
  FILE* f_ = nullptr;
  int64_t kept_ = 0;
};

// Every record of a metrics.jsonl, in file order. A torn (unparseable) last line is skipped; any
// other malformed line, or a line that is not an object with an integer step, throws naming
// PATH:LINE. Used by `dseek plot` and by MetricsLog::resume.
std::vector<nlohmann::json> metrics_log_read(const std::string& path);

}  // namespace dseek
