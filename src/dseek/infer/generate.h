// Autoregressive generation on the CPU with the MLA latent cache: prefill the prompt in one
// forward_cached call, then one token per step. Each new token is handed to on_token as soon as
// it is chosen (streaming); returning false from on_token stops generation.
// Stops after max_new_tokens, or when a token in stop_ids is produced (that token is returned
// as the last element but reported with is_stop = true so callers can hide it).
// With mtp_draft_tokens > 0 the tokens come from MTP speculative decoding (infer/speculative.h):
// the same distribution, and with greedy decoding the same tokens, several per model forward.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "dseek/infer/latent_cache.h"
#include "dseek/infer/sampler.h"
#include "dseek/model/model.h"

namespace dseek {

struct GenerateOptions {
  int64_t max_new_tokens = 128;
  SamplerConfig sampler;          // temperature 0 = greedy
  std::vector<int32_t> stop_ids;  // e.g. EOS; empty = never stop on a token
  int64_t mtp_draft_tokens = 0;   // > 0: speculative decoding, this many MTP drafts per step
};

struct GenerateStats {
  int64_t prompt_tokens = 0, new_tokens = 0;
  double prefill_s = 0, decode_s = 0;
  bool stopped_by_token = false;
  // speculative decoding only: drafts proposed, drafts accepted, main-model verify forwards
  int64_t draft_tokens = 0, accepted_tokens = 0, verify_steps = 0;
};

using TokenCallback = std::function<bool(int32_t id, bool is_stop)>;

std::vector<int32_t> generate(const Model& m, LatentCache& cache,
                              const std::vector<int32_t>& prompt, const GenerateOptions& opt,
                              const TokenCallback& on_token = nullptr,
                              GenerateStats* stats = nullptr);

}  // namespace dseek
