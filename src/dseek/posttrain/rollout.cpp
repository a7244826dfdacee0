#include "dseek/posttrain/rollout.h"

#include <omp.h>

#include <exception>

#include "dseek/core/error.h"
#include "dseek/core/rng.h"
#include "dseek/infer/generate.h"

namespace dseek {

namespace {
uint64_t mix(uint64_t x) {
  return splitmix64_next(&x);
}
}  // namespace

std::vector<Rollout> rollout_generate(const Model& m,
                                      const std::vector<std::vector<int32_t>>& prompts, int n,
                                      const RolloutOptions& opt) {
  DSEEK_CHECK(n >= 1, "rollout: samples per prompt must be >= 1, got {}", n);
  sampler_config_validate(opt.sampler);
  for (size_t i = 0; i < prompts.size(); i++)
    DSEEK_CHECK(!prompts[i].empty(), "rollout: prompt {} is empty", i);
  const int64_t total = (int64_t)prompts.size() * n;
  std::vector<Rollout> out(total);
  std::exception_ptr err;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t s = 0; s < total; s++) {
    try {
      Rollout& r = out[s];
      r.prompt = s / n;
      GenerateOptions g;
      g.max_new_tokens = opt.max_new_tokens;
      g.sampler = opt.sampler;
      g.sampler.seed = mix(opt.seed ^ mix((uint64_t)r.prompt * 1000003ull + (uint64_t)(s % n)));
      g.stop_ids = opt.stop_ids;
      LatentCache cache = m.new_cache();
      GenerateStats st;
      r.ids = generate(m, cache, prompts[r.prompt], g, nullptr, &st);
      r.stopped = st.stopped_by_token;
    } catch (...) {
#pragma omp critical(dseek_rollout_error)
      if (!err) err = std::current_exception();
    }
  }
  if (err) std::rethrow_exception(err);
  return out;
}

}  // namespace dseek
