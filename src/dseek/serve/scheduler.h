// Scheduler: the continuous-batching engine behind `dseek serve`. One thread owns the model and
// runs steps; requests join and leave between steps. Token ids in, token ids out: no text, no
// HTTP (openai_protocol.h and server.h do those).
//
// Contract.
//   - submit() queues a request (FIFO) and returns its handle at once. A request needs
//     `reserve = prompt + max_tokens` cache tokens for its whole life; submit() throws
//     dseek::Error when reserve exceeds the whole budget or max_model_len (the server validates
//     this first and answers 400), so a queued request can always run eventually.
//   - Each step: (1) drop cancelled requests, (2) admit waiting requests in FIFO order while
//     running < max_seqs and used + reserve <= max_cache_tokens (the head of the queue waits
//     rather than being overtaken), allocating each one's LatentCache of exactly `reserve`
//     tokens, (3) run one forward per running request: the whole prompt for the newly admitted
//     (prefill), the last sampled token for the others (decode); prefill and decode are mixed
//     in one step, the requests of a step run in parallel (OpenMP `parallel for`, each forward
//     single-threaded inside it; a step of one request uses every thread), (4) sample one token
//     per request and hand it to the handle, (5) retire requests that hit a stop id, their
//     max_tokens or a cancel, and free their cache.
//   - Per request the tokens equal generate() with the same prompt, GenerateOptions and seed,
//     whatever else runs: each request has its own cache, Sampler and context, and the CPU ops
//     give the same result for any thread count (ops/cpu/cpu_parallel.h).
//   - A request whose forward throws (e.g. a token id outside the vocabulary) finishes with
//     FINISH_ERROR and a message; the engine keeps serving.
// Not here: text decoding, stop strings (the consumer cancels when it sees one), HTTP.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dseek/infer/sampler.h"
#include "dseek/model/model.h"

namespace dseek::serve {

struct EngineLimits {
  int max_seqs = 8;              // requests running at once
  int64_t max_cache_tokens = 0;  // sum of (prompt + max_tokens) over running requests
  int64_t max_model_len = 0;     // prompt + max_tokens of one request
  int threads = 0;               // OpenMP threads of the engine thread; 0 = OpenMP's default
  std::function<void()>
      on_step;  // called by the engine thread before each step (tests); may be null
};

enum class FinishReason { FINISH_NONE, FINISH_STOP, FINISH_LENGTH, FINISH_CANCELLED, FINISH_ERROR };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", "error"

struct SeqRequest {
  std::vector<int32_t> prompt;  // [P] token ids, P >= 1
  int64_t max_tokens = 16;      // >= 1
  SamplerConfig sampler;
  std::vector<int32_t> stop_ids;  // e.g. EOS; the stop token is delivered, then the request ends
};

// The consumer's side of one request. Tokens arrive in order; wait() hands over what is new.
class SeqHandle {
 public:
  struct Update {
    std::vector<int32_t> tokens;  // new since the last wait()
    bool finished = false;
    FinishReason reason = FinishReason::FINISH_NONE;
    bool last_is_stop = false;  // the final token is a stop id (hide it)
    std::string error;          // FINISH_ERROR only
  };
  // Blocks until something new arrives, the request finishes, or `timeout` passes.
  Update wait(std::chrono::milliseconds timeout);
  bool cancel_requested() const { return cancel_.load(); }
  int64_t prompt_tokens() const { return prompt_tokens_; }

 private:
  friend class Scheduler;
  void push(int32_t id, bool is_stop, FinishReason finish, const std::string& error);

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int32_t> fresh_;
  bool finished_ = false, delivered_finish_ = false, last_is_stop_ = false;
  FinishReason reason_ = FinishReason::FINISH_NONE;
  std::string error_;
  std::atomic<bool> cancel_{false};
  int64_t prompt_tokens_ = 0;
};

struct EngineStats {
  int running = 0, waiting = 0, max_running_seen = 0;
  int64_t cache_tokens_used = 0, cache_tokens_capacity = 0;  // reserved by running requests
  int64_t prompt_tokens_total = 0, generated_tokens_total = 0, steps_total = 0;
  int64_t finished_total = 0, cancelled_total = 0;
  double decode_tokens_per_second = 0;  // tokens sampled / busy step time, last ~10 s
};

class Scheduler {
 public:
  // Starts the engine thread. `model` must outlive the Scheduler.
  Scheduler(const Model& model, EngineLimits limits);
  ~Scheduler();  // stops the thread; unfinished requests end as cancelled
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  std::shared_ptr<SeqHandle> submit(SeqRequest req);
  // Ask the engine to drop the request (no-op once finished); its slot frees at the next step.
  void cancel(const std::shared_ptr<SeqHandle>& h);
  EngineStats stats() const;
  const EngineLimits& limits() const { return limits_; }
  const Model& model() const { return model_; }

 private:
  struct Seq;
  void loop();
  void step(std::vector<std::unique_ptr<Seq>>& run);

  const Model& model_;
  EngineLimits limits_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Seq>> waiting_;
  bool stop_ = false;
  EngineStats stats_;
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::pair<int64_t, double>>>
      recent_;  // (step end, (tokens, busy seconds)) of the last ~10 s
  std::thread thread_;
};

}  // namespace dseek::serve
