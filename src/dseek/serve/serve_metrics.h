// ServeMetrics: the counters of `dseek serve` and their Prometheus text exposition (format
// 0.0.4: "# HELP", "# TYPE", then `name{labels} value` lines). Request outcomes are counted
// here by the HTTP layer; token, queue and cache figures come from each model's Scheduler.
//
// Metrics (label model="<id>" on the engine figures, one series per served model):
//   dseek_requests_total{status}         counter  finished requests by outcome: ok,
//                                                 bad_request (4xx), cancelled, error (5xx)
//   dseek_requests_running               gauge    requests in the running batch
//   dseek_requests_waiting               gauge    requests queued for a slot or cache budget
//   dseek_prompt_tokens_total            counter  prompt tokens prefilled
//   dseek_generated_tokens_total         counter  tokens sampled
//   dseek_cache_tokens_used              gauge    cache tokens reserved by running requests
//   dseek_cache_tokens_capacity          gauge    the cache budget (--max-cache-tokens)
//   dseek_decode_tokens_per_second       gauge    tokens sampled / busy step time, last ~10 s
//   dseek_engine_steps_total             counter  scheduler steps
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "dseek/serve/scheduler.h"

namespace dseek::serve {

class ServeMetrics {
 public:
  void request_done(const std::string& status);  // "ok", "bad_request", "cancelled", "error"
  int64_t requests(const std::string& status) const;

  // engines: (model id, its stats), one per served model.
  std::string prometheus(const std::vector<std::pair<std::string, EngineStats>>& engines) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, int64_t> requests_ = {
      {"ok", 0}, {"bad_request", 0}, {"cancelled", 0}, {"error", 0}};
};

}  // namespace dseek::serve
