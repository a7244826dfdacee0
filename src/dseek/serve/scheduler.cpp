// Scheduler implementation: the contract is in scheduler.h. The engine thread owns the running
// list; the mutex guards only the waiting queue, the stats and the stop flag, so HTTP threads
// never wait for a forward pass.
#include "dseek/serve/scheduler.h"

#include <omp.h>

#include <algorithm>

#include "dseek/core/error.h"

namespace dseek::serve {

// ---------------------------------------------------------------------------------------------
// constants

namespace {
constexpr double kRateWindowS = 10.0;  // window of dseek_decode_tokens_per_second
}  // namespace

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::FINISH_STOP:
      return "stop";
    case FinishReason::FINISH_LENGTH:
      return "length";
    case FinishReason::FINISH_CANCELLED:
      return "cancelled";
    case FinishReason::FINISH_ERROR:
      return "error";
    case FinishReason::FINISH_NONE:
      break;
  }
  return "none";
}

// ---------------------------------------------------------------------------------------------
// SeqHandle

SeqHandle::Update SeqHandle::wait(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait_for(lk, timeout, [&] { return !fresh_.empty() || finished_; });
  Update u;
  u.tokens.swap(fresh_);
  if (finished_) {
    u.finished = true;
    u.reason = reason_;
    u.last_is_stop = last_is_stop_;
    u.error = error_;
  }
  return u;
}

void SeqHandle::push(int32_t id, bool is_stop, FinishReason finish, const std::string& error) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (finished_) return;
    if (id >= 0) fresh_.push_back(id);
    if (finish != FinishReason::FINISH_NONE) {
      finished_ = true;
      reason_ = finish;
      last_is_stop_ = is_stop;
      error_ = error;
    }
  }
  cv_.notify_all();
}

// ---------------------------------------------------------------------------------------------
// one request inside the engine

struct Scheduler::Seq {
  std::shared_ptr<SeqHandle> h;
  SeqRequest req;
  int64_t reserve = 0;  // prompt + max_tokens: cache tokens held while running
  LatentCache cache;
  std::vector<int32_t> context;  // [prompt + generated] for the sampler's penalty
  Sampler sampler;
  int64_t generated = 0;
  bool prefilled = false;
  FinishReason finish = FinishReason::FINISH_NONE;

  Seq(std::shared_ptr<SeqHandle> handle, SeqRequest r)
      : h(std::move(handle)), req(std::move(r)), sampler(req.sampler) {
    reserve = (int64_t)req.prompt.size() + req.max_tokens;
    context = req.prompt;
  }
};

// ---------------------------------------------------------------------------------------------
// public entry points

Scheduler::Scheduler(const Model& model, EngineLimits limits)
    : model_(model), limits_(std::move(limits)) {
  DSEEK_CHECK(limits_.max_seqs >= 1, "max_seqs must be >= 1, got {}", limits_.max_seqs);
  DSEEK_CHECK(limits_.max_cache_tokens >= 2, "max_cache_tokens must be >= 2, got {}",
              limits_.max_cache_tokens);
  DSEEK_CHECK(limits_.max_model_len >= 2, "max_model_len must be >= 2, got {}",
              limits_.max_model_len);
  stats_.cache_tokens_capacity = limits_.max_cache_tokens;
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<SeqHandle> Scheduler::submit(SeqRequest req) {
  DSEEK_CHECK(!req.prompt.empty(), "a request needs at least one prompt token");
  DSEEK_CHECK(req.max_tokens >= 1, "max_tokens must be >= 1, got {}", req.max_tokens);
  sampler_config_validate(req.sampler);
  const int64_t reserve = (int64_t)req.prompt.size() + req.max_tokens;
  DSEEK_CHECK(reserve <= limits_.max_model_len,
              "prompt ({} tokens) + max_tokens ({}) exceeds the context length {}",
              req.prompt.size(), req.max_tokens, limits_.max_model_len);
  DSEEK_CHECK(reserve <= limits_.max_cache_tokens,
              "prompt ({} tokens) + max_tokens ({}) exceeds the cache budget of {} tokens",
              req.prompt.size(), req.max_tokens, limits_.max_cache_tokens);
  auto h = std::make_shared<SeqHandle>();
  h->prompt_tokens_ = (int64_t)req.prompt.size();
  auto s = std::make_unique<Seq>(h, std::move(req));
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_) {
      h->push(-1, false, FinishReason::FINISH_CANCELLED, "");
      return h;
    }
    waiting_.push_back(std::move(s));
    stats_.waiting = (int)waiting_.size();
  }
  cv_.notify_all();
  return h;
}

void Scheduler::cancel(const std::shared_ptr<SeqHandle>& h) {
  if (!h) return;
  h->cancel_.store(true);
  cv_.notify_all();
}

EngineStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  EngineStats s = stats_;
  int64_t tokens = 0;
  double busy = 0;
  const auto now = std::chrono::steady_clock::now();
  for (const auto& [t, tb] : recent_) {
    if (std::chrono::duration<double>(now - t).count() > kRateWindowS) continue;
    tokens += tb.first;
    busy += tb.second;
  }
  s.decode_tokens_per_second = busy > 0 ? (double)tokens / busy : 0.0;
  return s;
}

// ---------------------------------------------------------------------------------------------
// the engine thread

void Scheduler::loop() {
  std::vector<std::unique_ptr<Seq>> run;
  auto retire = [&](Seq& s, FinishReason why) {  // under mu_
    if (why == FinishReason::FINISH_CANCELLED) {
      s.h->push(-1, false, why, "");
      stats_.cancelled_total++;
    }
    stats_.finished_total++;
    stats_.cache_tokens_used -= s.reserve;
  };
  if (limits_.threads > 0) omp_set_num_threads(limits_.threads);  // a per-thread setting
  while (true) {
    {
      std::unique_lock<std::mutex> lk(mu_);
      // (1) drop what was cancelled or finished
      for (auto it = waiting_.begin(); it != waiting_.end();) {
        if ((*it)->h->cancel_requested()) {
          (*it)->h->push(-1, false, FinishReason::FINISH_CANCELLED, "");
          stats_.cancelled_total++;
          stats_.finished_total++;
          it = waiting_.erase(it);
        } else {
          ++it;
        }
      }
      for (auto& s : run) {
        if (s->finish == FinishReason::FINISH_NONE && s->h->cancel_requested())
          s->finish = FinishReason::FINISH_CANCELLED;
        if (s->finish != FinishReason::FINISH_NONE) {
          retire(*s, s->finish);
          s.reset();  // frees the LatentCache
        }
      }
      std::erase(run, nullptr);
      if (stop_) {
        for (auto& s : run) retire(*s, FinishReason::FINISH_CANCELLED);
        for (auto& s : waiting_) s->h->push(-1, false, FinishReason::FINISH_CANCELLED, "");
        waiting_.clear();
        run.clear();
        stats_.running = stats_.waiting = 0;
        return;
      }
      // (2) admit in FIFO order while a slot and the cache budget allow
      while (!waiting_.empty() && (int)run.size() < limits_.max_seqs &&
             stats_.cache_tokens_used + waiting_.front()->reserve <= limits_.max_cache_tokens) {
        std::unique_ptr<Seq> s = std::move(waiting_.front());
        waiting_.pop_front();
        s->cache = model_.new_cache();
        s->cache.reserve(s->reserve);
        stats_.cache_tokens_used += s->reserve;
        run.push_back(std::move(s));
      }
      stats_.running = (int)run.size();
      stats_.waiting = (int)waiting_.size();
      stats_.max_running_seen = std::max(stats_.max_running_seen, stats_.running);
      if (run.empty()) {
        cv_.wait(lk, [&] { return stop_ || !waiting_.empty(); });
        continue;
      }
    }
    if (limits_.on_step) limits_.on_step();
    // (3)-(4) one forward and one sampled token per running request
    const auto t0 = std::chrono::steady_clock::now();
    step(run);
    const auto t1 = std::chrono::steady_clock::now();
    std::lock_guard<std::mutex> lk(mu_);
    stats_.steps_total++;
    stats_.generated_tokens_total += (int64_t)run.size();
    recent_.emplace_back(
        t1, std::make_pair((int64_t)run.size(), std::chrono::duration<double>(t1 - t0).count()));
    while (!recent_.empty() &&
           std::chrono::duration<double>(t1 - recent_.front().first).count() > kRateWindowS)
      recent_.pop_front();
    for (const auto& s : run)
      if (s->generated == 1) stats_.prompt_tokens_total += (int64_t)s->req.prompt.size();
  }
}

void Scheduler::step(std::vector<std::unique_ptr<Seq>>& run) {
  const int V = (int)model_.cfg.vocab_size;
  auto one = [&](Seq& s) {
    try {
      Tensor logits;
      if (!s.prefilled) {
        logits =
            model_.forward_cached(s.cache, s.req.prompt.data(), (int64_t)s.req.prompt.size(), true);
        s.prefilled = true;
      } else {
        const int32_t last = s.context.back();
        logits = model_.forward_cached(s.cache, &last, 1, true);
      }
      const int32_t id = s.sampler.sample(logits.ptr(), V, s.context);
      s.context.push_back(id);
      s.generated++;
      const auto& stops = s.req.stop_ids;
      const bool is_stop = std::find(stops.begin(), stops.end(), id) != stops.end();
      if (is_stop) {
        s.finish = FinishReason::FINISH_STOP;
      } else if (s.generated >= s.req.max_tokens) {
        s.finish = FinishReason::FINISH_LENGTH;
      }
      s.h->push(id, is_stop, s.finish, "");
    } catch (const std::exception& e) {
      s.finish = FinishReason::FINISH_ERROR;
      s.h->push(-1, false, s.finish, e.what());
    }
  };
  const int n = (int)run.size();
  if (n == 1) {
    one(*run[0]);  // alone: the ops use every thread
    return;
  }
  const int nt = std::max(1, std::min(n, omp_get_max_threads()));
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
  for (int i = 0; i < n; i++) one(*run[i]);
}

}  // namespace dseek::serve
