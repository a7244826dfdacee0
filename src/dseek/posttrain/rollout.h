// Sampling completions from a policy for RL and evaluation: n samples for each prompt, each an
// independent run of the latent-cache generator (infer/generate.h), the runs spread over the
// OpenMP team (one sequence per thread; the ops inside run single-threaded). Each sample has its
// own seed, derived from (options.seed, prompt index, sample index), so the result does not
// depend on the number of threads or on the other prompts in the batch.
#pragma once

#include <cstdint>
#include <vector>

#include "dseek/infer/sampler.h"
#include "dseek/model/model.h"

namespace dseek {

struct RolloutOptions {
  int64_t max_new_tokens = 64;
  SamplerConfig sampler;          // temperature 0 = greedy; sampler.seed is replaced per sample
  std::vector<int32_t> stop_ids;  // usually {EOS}; the stop token is kept at the end of ids
  uint64_t seed = 0;
};

struct Rollout {
  int64_t prompt = 0;        // index into the prompts
  std::vector<int32_t> ids;  // completion ids (ending with the stop id when one was produced)
  bool stopped = false;      // true: ended with a stop id; false: hit max_new_tokens
};

// Returns prompts.size() * n rollouts, prompt-major (the n samples of prompt i are at
// [i*n, (i+1)*n)). Throws dseek::Error on an empty prompt or bad sampler settings.
std::vector<Rollout> rollout_generate(const Model& m,
                                      const std::vector<std::vector<int32_t>>& prompts, int n,
                                      const RolloutOptions& opt);

}  // namespace dseek
