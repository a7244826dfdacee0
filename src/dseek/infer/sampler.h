// Sampler: turns one row of next-token logits into a token id (CPU, fp32 logits, double sums).
// Holds the sampling knobs, its own seeded RNG and reusable scratch buffers; it does not run
// the model, batch rows, or decode text (stop strings live in infer/stop_strings.h).
//
// Contract. x = logits[0..V), ctx = the context ids (prompt + generated so far). Steps, in the
// order transformers' generate applies its processors and then its warpers (repetition penalty,
// temperature, top-k, top-p, min-p; reference: huggingface/transformers
// src/transformers/generation/logits_process.py @ 00857b6c, RepetitionPenaltyLogitsProcessor,
// TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper, MinPLogitsWarper):
//   1. repetition penalty r (CTRL): for each DISTINCT id t in ctx (once, however often it occurs)
//        x[t] = x[t] > 0 ? x[t] / r : x[t] * r
//   2. temperature T: T == 0 => greedy: return argmax x (lowest index on ties); steps 3-6 skipped.
//      Otherwise z[i] = (x[i] - max x) / T. (The shift by max x does not change any step below
//      and keeps z <= 0, so a tiny T cannot overflow to +inf.) Tokens with z = -inf are dropped.
//   3. top-k (k > 0): keep exactly the k largest z. Ties are broken by lower index.
//      DIFFERS from TopKLogitsWarper on purpose: HF keeps every token tied with the k-th value.
//   4. top-p (p < 1): with q = softmax over the kept set, sorted by (z desc, index asc), keep the
//      shortest prefix whose mass reaches p: the first token always, token j > 0 iff
//      sum_{i<j} q_i < p - kBoundaryEps.
//      This is HF's "remove tokens whose ascending cumulative prob <= 1 - p" (at least one
//      kept), with ties at the cut ordered by index instead of torch.sort's arbitrary order.
//   5. min-p (m > 0): with q = softmax over the kept set, keep i iff q_i >= m * max q (within a
//      relative kBoundaryEps). Equivalently exp(z_i - max z) >= m. The argmax always survives.
//   6. P[i] = exp(z_i) / sum_kept exp(z_j) for kept i, 0 elsewhere; draw i ~ P.
// kBoundaryEps (1e-6) only decides cases that sit on a boundary within fp32 rounding, e.g.
// probs .5 .3 .15 .05 with top_p = .8 keep two tokens, as the exact arithmetic says.
//
// Randomness: xoshiro256** seeded through splitmix64(seed); one draw u = (next >> 11) * 2^-53 in
// [0, 1) per sampled token, walked over the kept tokens in a fixed order (by (z desc, index
// asc) after top-k, else by index). Same seed, config, logits and context => same tokens, on
// any platform with IEEE fp32 and the same libm exp. Greedy draws nothing.
// Cost per call: O(V) copies and scans; top-k uses nth_element (O(V)) and sorts only k;
// top-p without top-k finds its cut with a weighted quickselect (O(V) expected, no sort). No
// heap allocation once the buffers have grown to V.
// Errors (dseek::Error): invalid config (at construction), null logits, V <= 0, NaN or +inf
// logits, all logits -inf, and context ids outside [0, V) while the penalty is active.
// Not thread-safe: one Sampler per decoding stream.
#pragma once

#include <cstdint>
#include <vector>

namespace dseek {

struct SamplerConfig {
  float temperature = 1.0f;         // 0 => greedy (argmax, lowest index on ties); must be >= 0
  int top_k = 0;                    // 0 => off; >= 0
  float top_p = 1.0f;               // nucleus mass in (0, 1]; 1 => off
  float min_p = 0.0f;               // keep p >= min_p * p_max; in [0, 1); 0 => off
  float repetition_penalty = 1.0f;  // CTRL/HF: x > 0 ? x / r : x * r per distinct ctx id; > 0
  uint64_t seed = 0;
};

// Throws dseek::Error naming the first invalid field and its allowed range.
void sampler_config_validate(const SamplerConfig& c);

class Sampler {
 public:
  explicit Sampler(SamplerConfig c);

  // logits: [V]; context: ids already in the sequence (may be empty). Returns a token in [0, V).
  int32_t sample(const float* logits, int vocab, const std::vector<int32_t>& context);

  // The distribution sample() draws from for the same inputs (one-hot at the argmax when
  // greedy). out: resized to [V]. Does not advance the RNG.
  void probs(const float* logits, int vocab, const std::vector<int32_t>& context,
             std::vector<float>* out);

  const SamplerConfig& config() const { return cfg_; }
  // Restart the random stream as if freshly constructed with this seed.
  void reseed(uint64_t seed);

 private:
  // Runs steps 1-5. Greedy: returns the argmax id. Otherwise returns -1 and leaves the kept
  // token ids in cand_[0, n_kept_) with their weights exp(z) in weight_[0, n_kept_).
  int32_t process(const float* logits, int vocab, const std::vector<int32_t>& context);
  void penalize(int vocab, const std::vector<int32_t>& context);
  void keep_top_k(int k);
  void keep_top_p(float p, int vocab);
  void keep_min_p(float m);
  double uniform();  // [0, 1), 53 bits

  SamplerConfig cfg_;
  uint64_t rng_[4] = {0, 0, 0, 0};  // xoshiro256** state
  std::vector<float> z_;            // [V] processed logits (step 1, then z of step 2)
  std::vector<int32_t> cand_;       // [V] kept token ids; the first n_kept_ are valid
  std::vector<float> weight_;       // [V] exp(z) of cand_[j]; the first n_kept_ are valid
  std::vector<uint32_t> seen_;      // [V] == seen_stamp_ where an id was already penalised
  uint32_t seen_stamp_ = 0;
  int n_kept_ = 0;
  double weight_sum_ = 0.0;   // sum of weight_[0, n_kept_)
  bool kept_sorted_ = false;  // cand_[0, n_kept_) ordered by (z desc, index asc)
};

}  // namespace dseek
