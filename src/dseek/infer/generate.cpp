#include "dseek/infer/generate.h"

#include <algorithm>
#include <chrono>

#include "dseek/infer/speculative.h"

namespace dseek {

std::vector<int32_t> generate(const Model& m, LatentCache& cache,
                              const std::vector<int32_t>& prompt, const GenerateOptions& opt,
                              const TokenCallback& on_token, GenerateStats* stats) {
  using clock = std::chrono::steady_clock;
  if (opt.mtp_draft_tokens > 0) return speculative_generate(m, cache, prompt, opt, on_token, stats);
  DSEEK_CHECK(!prompt.empty(), "generation needs a non-empty prompt");
  DSEEK_CHECK(opt.max_new_tokens >= 0, "max_new_tokens must be >= 0");
  Sampler sampler(opt.sampler);
  std::vector<int32_t> context = prompt, out;
  GenerateStats st;
  st.prompt_tokens = (int64_t)prompt.size();
  if (opt.max_new_tokens == 0) {
    if (stats) *stats = st;
    return out;
  }
  auto t0 = clock::now();
  Tensor logits = m.forward_cached(cache, prompt.data(), (int64_t)prompt.size(), true);
  auto t1 = clock::now();
  st.prefill_s = std::chrono::duration<double>(t1 - t0).count();
  const int V = (int)m.cfg.vocab_size;
  while (true) {
    int32_t id = sampler.sample(logits.ptr(), V, context);
    const bool is_stop =
        std::find(opt.stop_ids.begin(), opt.stop_ids.end(), id) != opt.stop_ids.end();
    out.push_back(id);
    context.push_back(id);
    st.new_tokens++;
    bool go_on = on_token ? on_token(id, is_stop) : true;
    if (is_stop) st.stopped_by_token = true;
    if (is_stop || !go_on || st.new_tokens >= opt.max_new_tokens) break;
    logits = m.forward_cached(cache, &id, 1, true);
  }
  st.decode_s = std::chrono::duration<double>(clock::now() - t1).count();
  if (stats) *stats = st;
  return out;
}

}  // namespace dseek
