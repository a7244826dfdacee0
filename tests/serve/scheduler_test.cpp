// The continuous-batching engine on its own (no HTTP): per-request results equal generate()
// whatever runs beside them, the cache budget makes requests wait instead of failing, cancel
// frees the slot, stop ids end a request, over-budget requests are refused at submit.
#include <atomic>

#include "dseek/core/error.h"
#include "dseek/serve/scheduler.h"
#include "serve/serve_kit.h"

namespace {

using namespace dseek;
using namespace dseek::serve;
using namespace dseek_test;

struct Finished {
  std::vector<int32_t> ids;
  SeqHandle::Update last;
};

Finished drain(const std::shared_ptr<SeqHandle>& h) {
  Finished f;
  for (int i = 0; i < 6000; i++) {
    SeqHandle::Update u = h->wait(std::chrono::milliseconds(10));
    f.ids.insert(f.ids.end(), u.tokens.begin(), u.tokens.end());
    if (u.finished) {
      f.last = u;
      return f;
    }
  }
  ADD_FAILURE() << "request did not finish";
  return f;
}

// Stats settle one engine iteration after the last token was handed over.
EngineStats idle_stats(const Scheduler& eng) {
  EngineStats s = eng.stats();
  for (int i = 0; i < 500 && (s.running > 0 || s.waiting > 0 || s.cache_tokens_used > 0); i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    s = eng.stats();
  }
  return s;
}

std::vector<int32_t> prompt_of(int i) {  // distinct prompts of different lengths
  std::vector<int32_t> p;
  for (int k = 0; k < 3 + 2 * i; k++) p.push_back((int32_t)((17 * i + 31 * k + 5) % 500 + 2));
  return p;
}

TEST(Scheduler, BatchedEqualsGeneratePerRequest) {
  const Model& m = cached_model(tiny_dir());
  Scheduler eng(m, EngineLimits{.max_seqs = 4,
                                .max_cache_tokens = 4096,
                                .max_model_len = 256,
                                .threads = 0,
                                .on_step = nullptr});
  std::vector<std::shared_ptr<SeqHandle>> hs;
  std::vector<SeqRequest> reqs;
  for (int i = 0; i < 8; i++) {
    SeqRequest r;
    r.prompt = prompt_of(i);
    r.max_tokens = 6 + 3 * i;  // different lengths: requests leave at different steps
    r.sampler = i % 3 == 0 ? sampling(0.0f, 0) : sampling(0.9f, 100 + i, i % 2 ? 20 : 0, 0.95f);
    reqs.push_back(r);
    hs.push_back(eng.submit(r));
  }
  for (int i = 0; i < 8; i++) {
    Finished f = drain(hs[i]);
    EXPECT_EQ(f.ids, reference_ids(tiny_dir(), reqs[i].prompt, reqs[i].max_tokens, reqs[i].sampler))
        << "request " << i;
    EXPECT_EQ(f.last.reason, FinishReason::FINISH_LENGTH);
  }
  EngineStats s = idle_stats(eng);
  EXPECT_EQ(s.max_running_seen, 4);  // batched, never above max_seqs
  EXPECT_EQ(s.running, 0);
  EXPECT_EQ(s.cache_tokens_used, 0);
  int64_t want_gen = 0, want_prompt = 0;
  for (const auto& r : reqs) want_gen += r.max_tokens, want_prompt += (int64_t)r.prompt.size();
  EXPECT_EQ(s.generated_tokens_total, want_gen);
  EXPECT_EQ(s.prompt_tokens_total, want_prompt);
}

TEST(Scheduler, TinyCacheBudgetMakesRequestsWait) {
  const Model& m = cached_model(tiny_dir());
  // Each request reserves 5 + 10 = 15 tokens; the budget holds two at a time.
  std::atomic<int> steps{0};
  Scheduler eng(m, EngineLimits{.max_seqs = 8,
                                .max_cache_tokens = 30,
                                .max_model_len = 256,
                                .threads = 0,
                                .on_step = [&] { steps++; }});
  std::vector<std::shared_ptr<SeqHandle>> hs;
  std::vector<int32_t> p = {3, 1, 4, 1, 5};
  for (int i = 0; i < 6; i++) {
    SeqRequest r;
    r.prompt = p;
    r.prompt[0] = 3 + i;
    r.max_tokens = 10;
    r.sampler = sampling(0.7f, i);
    hs.push_back(eng.submit(r));
  }
  for (int i = 0; i < 6; i++) {
    std::vector<int32_t> pi = p;
    pi[0] = 3 + i;
    EXPECT_EQ(drain(hs[i]).ids, reference_ids(tiny_dir(), pi, 10, sampling(0.7f, i)));
  }
  EngineStats s = idle_stats(eng);
  EXPECT_EQ(s.max_running_seen, 2);
  EXPECT_EQ(s.cache_tokens_used, 0);
  EXPECT_EQ(s.waiting, 0);
  EXPECT_GE(steps.load(), 30);  // 3 waves of 10 steps: they really waited
}

TEST(Scheduler, CancelFreesTheSlot) {
  const Model& m = cached_model(tiny_dir());
  Scheduler eng(m, EngineLimits{.max_seqs = 1,
                                .max_cache_tokens = 256,
                                .max_model_len = 256,
                                .threads = 0,
                                .on_step = [] {
                                  std::this_thread::sleep_for(std::chrono::milliseconds(2));
                                }});
  SeqRequest r;
  r.prompt = {5, 6, 7};
  r.max_tokens = 200;
  r.sampler = sampling(0.0f, 0);
  auto h = eng.submit(r);
  auto queued = eng.submit(r);  // waits: one slot only
  SeqHandle::Update u = h->wait(std::chrono::milliseconds(5000));
  ASSERT_FALSE(u.tokens.empty());
  eng.cancel(queued);
  eng.cancel(h);
  EXPECT_EQ(drain(h).last.reason, FinishReason::FINISH_CANCELLED);
  EXPECT_EQ(drain(queued).last.reason, FinishReason::FINISH_CANCELLED);
  EngineStats s = idle_stats(eng);
  EXPECT_EQ(s.running, 0);
  EXPECT_EQ(s.waiting, 0);
  EXPECT_EQ(s.cache_tokens_used, 0);
  EXPECT_EQ(s.cancelled_total, 2);
  EXPECT_LT(s.generated_tokens_total, 200);
  // And the engine still serves.
  r.max_tokens = 4;
  EXPECT_EQ(drain(eng.submit(r)).ids, reference_ids(tiny_dir(), r.prompt, 4, r.sampler));
}

TEST(Scheduler, StopIdEndsTheRequest) {
  const Model& m = cached_model(tiny_dir());
  Scheduler eng(m, EngineLimits{.max_seqs = 2,
                                .max_cache_tokens = 512,
                                .max_model_len = 256,
                                .threads = 0,
                                .on_step = nullptr});
  std::vector<int32_t> p = {9, 8, 7, 6};
  std::vector<int32_t> ref = reference_ids(tiny_dir(), p, 8, sampling(0.0f, 0));
  SeqRequest r;
  r.prompt = p;
  r.max_tokens = 8;
  r.sampler = sampling(0.0f, 0);
  r.stop_ids = {ref[2]};
  Finished f = drain(eng.submit(r));
  std::vector<int32_t> want(ref.begin(), std::find(ref.begin(), ref.end(), ref[2]) + 1);
  EXPECT_EQ(f.ids, want);
  EXPECT_EQ(f.last.reason, FinishReason::FINISH_STOP);
  EXPECT_TRUE(f.last.last_is_stop);
}

TEST(Scheduler, RefusesWhatCanNeverFitAndSurvivesBadTokens) {
  const Model& m = cached_model(tiny_dir());
  Scheduler eng(m, EngineLimits{.max_seqs = 2,
                                .max_cache_tokens = 20,
                                .max_model_len = 16,
                                .threads = 0,
                                .on_step = nullptr});
  SeqRequest r;
  r.prompt = {1, 2, 3};
  r.max_tokens = 14;  // 17 > max_model_len 16
  r.sampler = sampling(0.0f, 0);
  EXPECT_THROW(eng.submit(r), Error);
  r.prompt = {1, 2, 100000};  // outside the vocabulary: the request fails, the engine goes on
  r.max_tokens = 4;
  Finished bad = drain(eng.submit(r));
  EXPECT_EQ(bad.last.reason, FinishReason::FINISH_ERROR);
  EXPECT_NE(bad.last.error.find("vocabulary"), std::string::npos) << bad.last.error;
  r.prompt = {1, 2, 3};
  EXPECT_EQ(drain(eng.submit(r)).ids, reference_ids(tiny_dir(), r.prompt, 4, r.sampler));
  EXPECT_EQ(idle_stats(eng).cache_tokens_used, 0);
}

}  // namespace
