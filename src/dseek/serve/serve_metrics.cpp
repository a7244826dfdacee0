// ServeMetrics implementation: the metric names and meanings are listed in serve_metrics.h.
#include "dseek/serve/serve_metrics.h"

#include <fmt/format.h>

namespace dseek::serve {

namespace {
// A label value as the exposition format wants it: backslash, quote and newline escaped.
std::string label_escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}
}  // namespace

void ServeMetrics::request_done(const std::string& status) {
  std::lock_guard<std::mutex> lk(mu_);
  requests_[status]++;
}

int64_t ServeMetrics::requests(const std::string& status) const {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = requests_.find(status);
  return it == requests_.end() ? 0 : it->second;
}

std::string ServeMetrics::prometheus(
    const std::vector<std::pair<std::string, EngineStats>>& engines) const {
  std::string out;
  auto head = [&](const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  {
    std::lock_guard<std::mutex> lk(mu_);
    head("dseek_requests_total", "counter",
         "Finished completion requests by outcome (ok, bad_request, cancelled, error).");
    for (const auto& [status, n] : requests_)
      out += fmt::format("dseek_requests_total{{status=\"{}\"}} {}\n", status, n);
  }
  auto per_model = [&](const char* name, const char* type, const char* help, auto value) {
    head(name, type, help);
    for (const auto& [id, s] : engines)
      out += fmt::format("{}{{model=\"{}\"}} {}\n", name, label_escape(id), value(s));
  };
  per_model("dseek_requests_running", "gauge", "Requests in the running batch.",
            [](const EngineStats& s) { return s.running; });
  per_model("dseek_requests_waiting", "gauge", "Requests queued for a slot or cache budget.",
            [](const EngineStats& s) { return s.waiting; });
  per_model("dseek_prompt_tokens_total", "counter", "Prompt tokens prefilled.",
            [](const EngineStats& s) { return s.prompt_tokens_total; });
  per_model("dseek_generated_tokens_total", "counter", "Tokens sampled.",
            [](const EngineStats& s) { return s.generated_tokens_total; });
  per_model("dseek_cache_tokens_used", "gauge",
            "Latent-cache tokens reserved by running requests (prompt + max_tokens each).",
            [](const EngineStats& s) { return s.cache_tokens_used; });
  per_model("dseek_cache_tokens_capacity", "gauge", "Latent-cache budget in tokens.",
            [](const EngineStats& s) { return s.cache_tokens_capacity; });
  per_model("dseek_decode_tokens_per_second", "gauge",
            "Tokens sampled per second of busy engine time over the last ~10 s.",
            [](const EngineStats& s) { return fmt::format("{:.3f}", s.decode_tokens_per_second); });
  per_model("dseek_engine_steps_total", "counter", "Scheduler steps run.",
            [](const EngineStats& s) { return s.steps_total; });
  return out;
}

}  // namespace dseek::serve
