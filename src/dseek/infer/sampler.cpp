// Sampler implementation: the steps and formulas are the contract in sampler.h. Plain scalar
// loops over fp32 logits with double accumulation; no SIMD intrinsics, no threads.
#include "dseek/infer/sampler.h"

#include <algorithm>  // nth_element, partial_sort, sort, fill, copy
#include <cmath>      // exp, isfinite
#include <limits>     // infinity

#include "dseek/core/error.h"
#include "dseek/core/rng.h"

namespace dseek {

// ---------------------------------------------------------------------------------------------
// constants

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
// Mass (top-p) or relative probability (min-p) within which a boundary counts as reached.
constexpr double kBoundaryEps = 1e-6;
// top-p without top-k: quickselect ranges at most this long are finished with a sort.
constexpr int64_t kTopPSortBelow = 64;

// ---------------------------------------------------------------------------------------------
// random numbers: splitmix64 to expand the seed, xoshiro256** for the stream (both public domain,
// Blackman & Vigna); results are fully specified by the algorithms, unlike <random> distributions.

inline uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

uint64_t xoshiro256ss_next(uint64_t s[4]) {
  const uint64_t result = rotl(s[1] * 5, 7) * 9;
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// config

void sampler_config_validate(const SamplerConfig& c) {
  DSEEK_CHECK(std::isfinite(c.temperature) && c.temperature >= 0.0f,
              "sampler: temperature must be finite and >= 0 (0 = greedy), got {}", c.temperature);
  DSEEK_CHECK(c.top_k >= 0, "sampler: top_k must be >= 0 (0 = off), got {}", c.top_k);
  DSEEK_CHECK(c.top_p > 0.0f && c.top_p <= 1.0f,
              "sampler: top_p must be in (0, 1] (1 = off), got {}", c.top_p);
  DSEEK_CHECK(c.min_p >= 0.0f && c.min_p < 1.0f,
              "sampler: min_p must be in [0, 1) (0 = off), got {}", c.min_p);
  DSEEK_CHECK(std::isfinite(c.repetition_penalty) && c.repetition_penalty > 0.0f,
              "sampler: repetition_penalty must be finite and > 0 (1 = off), got {}",
              c.repetition_penalty);
}

Sampler::Sampler(SamplerConfig c) : cfg_(c) {
  sampler_config_validate(cfg_);
  reseed(cfg_.seed);
}

void Sampler::reseed(uint64_t seed) {
  cfg_.seed = seed;
  uint64_t x = seed;
  for (uint64_t& s : rng_) s = splitmix64_next(&x);
}

double Sampler::uniform() {
  return (double)(xoshiro256ss_next(rng_) >> 11) * 0x1.0p-53;
}

// ---------------------------------------------------------------------------------------------
// steps 1-5

// Step 1. Each distinct id once: seen_ marks ids already penalised in this call.
void Sampler::penalize(int vocab, const std::vector<int32_t>& context) {
  if (seen_.size() < (size_t)vocab) seen_.resize(vocab, 0);
  if (++seen_stamp_ == 0) {  // wrapped: forget every old stamp
    std::fill(seen_.begin(), seen_.end(), 0u);
    seen_stamp_ = 1;
  }
  const float r = cfg_.repetition_penalty;
  for (size_t pos = 0; pos < context.size(); pos++) {
    const int32_t t = context[pos];
    DSEEK_CHECK(t >= 0 && t < vocab,
                "sampler: context id {} at position {} is outside the vocabulary [0, {})", t, pos,
                vocab);
    if (seen_[t] == seen_stamp_) continue;
    seen_[t] = seen_stamp_;
    float& v = z_[t];
    v = v > 0.0f ? v / r : v * r;
  }
}

// Step 3: exactly k tokens, ordered by (z desc, index asc).
void Sampler::keep_top_k(int k) {
  if (k >= n_kept_) return;
  const float* z = z_.data();
  auto before = [z](int32_t a, int32_t b) { return z[a] > z[b] || (z[a] == z[b] && a < b); };
  int32_t* c = cand_.data();
  std::nth_element(c, c + (k - 1), c + n_kept_, before);
  std::sort(c, c + k, before);
  n_kept_ = k;
  kept_sorted_ = true;
}

// Step 4: keep the shortest (z desc, index asc) prefix whose softmax mass reaches p, i.e. the
// first j* >= 1 tokens with mass(j*) >= limit (all of them if none). After a top-k the list is
// sorted and a walk finds j*. Otherwise a weighted quickselect finds the cut token without
// sorting (O(V) expected; p = .9 over 129k flat-ish logits keeps ~10^4 tokens), then the kept
// set is rebuilt in index order so the draw walks a canonical order.
void Sampler::keep_top_p(float p, int vocab) {
  const float* z = z_.data();
  int32_t* c = cand_.data();
  const int64_t n = n_kept_;
  auto before = [z](int32_t a, int32_t b) { return z[a] > z[b] || (z[a] == z[b] && a < b); };

  if (kept_sorted_) {
    double total = 0.0;
    for (int64_t j = 0; j < n; j++) total += std::exp(z[c[j]]);
    const double limit = ((double)p - kBoundaryEps) * total;
    double mass = 0.0;  // sum of exp(z) over c[0, j)
    for (int64_t j = 0; j < n; j++) {
      if (j > 0 && mass >= limit) {
        n_kept_ = (int)j;
        return;
      }
      mass += std::exp(z[c[j]]);
    }
    return;
  }

  // Unsorted: w[id] = exp(z[id]) (token-indexed; step 6 rewrites weight_ afterwards).
  float* w = weight_.data();
  double total = 0.0;
  for (int64_t j = 0; j < n; j++) total += (w[c[j]] = std::exp(z[c[j]]));
  const double limit = ((double)p - kBoundaryEps) * total;

  // Invariant: j* in (lo, hi]; c[0, lo) precede c[lo, hi), which precede c[hi, n) in the
  // (z desc, index asc) order; mass_lo = mass of c[0, lo).
  int64_t lo = 0, hi = n, j_star = -1;
  double mass_lo = 0.0;
  int rounds_left = 64;  // median-of-3 quickselect; adversarial inputs fall back to a sort
  while (hi - lo > kTopPSortBelow && rounds_left-- > 0) {
    const int32_t a = c[lo], b = c[lo + (hi - lo) / 2], d = c[hi - 1];
    const int32_t pivot = before(a, b) ? (before(b, d) ? b : (before(a, d) ? d : a))
                                       : (before(a, d) ? a : (before(b, d) ? d : b));
    // Lomuto partition (fully specified order): tokens before the pivot to the front.
    int64_t store = lo;
    double mass_before = 0.0;
    for (int64_t j = lo; j < hi; j++) {
      if (before(c[j], pivot)) {
        mass_before += w[c[j]];
        std::swap(c[j], c[store++]);
      }
    }
    for (int64_t j = store; j < hi; j++) {  // the pivot goes right after them
      if (c[j] == pivot) {
        std::swap(c[j], c[store]);
        break;
      }
    }
    if (store >= 1 && mass_lo + mass_before >= limit) {
      hi = store;  // j* <= store
    } else if (mass_lo + mass_before + w[pivot] >= limit) {
      j_star = store + 1;  // the pivot is the last kept token
      break;
    } else {
      mass_lo += mass_before + w[pivot];
      lo = store + 1;
    }
  }
  if (j_star < 0) {  // small range: sort it and walk
    std::sort(c + lo, c + hi, before);
    j_star = hi;
    double mass = mass_lo;
    for (int64_t j = lo; j < hi; j++) {
      if (j > 0 && mass >= limit) {
        j_star = j;
        break;
      }
      mass += w[c[j]];
    }
  }
  const int32_t cut = c[j_star - 1];  // the last kept token
  int kept = 0;
  for (int32_t i = 0; i < vocab; i++) {
    if (z[i] > -kInf && (i == cut || before(i, cut))) c[kept++] = i;
  }
  n_kept_ = kept;  // == j_star
}

// Step 5: keep i iff exp(z_i - max z) >= m, in place, order preserved.
void Sampler::keep_min_p(float m) {
  const float* z = z_.data();
  int32_t* c = cand_.data();
  float z_max = -kInf;
  for (int j = 0; j < n_kept_; j++) z_max = std::max(z_max, z[c[j]]);
  const double threshold = (double)m * (1.0 - kBoundaryEps);
  int kept = 0;
  for (int j = 0; j < n_kept_; j++) {
    if ((double)std::exp(z[c[j]] - z_max) >= threshold) c[kept++] = c[j];
  }
  n_kept_ = kept;  // >= 1: the max itself has ratio 1 > m
}

int32_t Sampler::process(const float* logits, int vocab, const std::vector<int32_t>& context) {
  DSEEK_CHECK(logits != nullptr, "sampler: logits pointer is null");
  DSEEK_CHECK(vocab > 0, "sampler: vocab must be > 0, got {}", vocab);
  if (z_.size() < (size_t)vocab) {
    z_.resize(vocab);
    cand_.resize(vocab);
    weight_.resize(vocab);
  }
  float* z = z_.data();
  std::copy(logits, logits + vocab, z);
  if (cfg_.repetition_penalty != 1.0f) penalize(vocab, context);

  float x_max = -kInf;
  int32_t arg_max = -1;
  for (int i = 0; i < vocab; i++) {
    const float v = z[i];
    DSEEK_CHECK(v < kInf, "sampler: logit {} of {} is {}; logits must be finite or -inf", i, vocab,
                v);
    if (v > x_max) {
      x_max = v;
      arg_max = i;
    }
  }
  DSEEK_CHECK(arg_max >= 0, "sampler: all {} logits are -inf; no token can be drawn", vocab);
  if (cfg_.temperature == 0.0f) return arg_max;

  // Step 2: z = (x - max x) / T <= 0; -inf tokens leave the candidate list.
  const float t = cfg_.temperature;
  int n = 0;
  for (int i = 0; i < vocab; i++) {
    const float v = t == 1.0f ? z[i] - x_max : (z[i] - x_max) / t;
    z[i] = v;
    if (v > -kInf) cand_[n++] = i;
  }
  n_kept_ = n;
  kept_sorted_ = false;

  if (cfg_.top_k > 0) keep_top_k(cfg_.top_k);
  if (cfg_.top_p < 1.0f) keep_top_p(cfg_.top_p, vocab);
  if (cfg_.min_p > 0.0f) keep_min_p(cfg_.min_p);

  double sum = 0.0;
  for (int j = 0; j < n_kept_; j++) {
    weight_[j] = std::exp(z[cand_[j]]);
    sum += weight_[j];
  }
  weight_sum_ = sum;  // >= 1: the argmax has z = 0 and is always kept
  return -1;
}

// ---------------------------------------------------------------------------------------------
// public entry points

int32_t Sampler::sample(const float* logits, int vocab, const std::vector<int32_t>& context) {
  const int32_t greedy = process(logits, vocab, context);
  if (greedy >= 0) return greedy;
  const double u = uniform() * weight_sum_;
  double acc = 0.0;
  for (int j = 0; j < n_kept_; j++) {
    acc += weight_[j];
    if (u < acc) return cand_[j];
  }
  // u landed past the last partial sum by rounding: take the last token with non-zero weight.
  for (int j = n_kept_ - 1; j > 0; j--) {
    if (weight_[j] > 0.0f) return cand_[j];
  }
  return cand_[0];
}

void Sampler::probs(const float* logits, int vocab, const std::vector<int32_t>& context,
                    std::vector<float>* out) {
  DSEEK_CHECK(out != nullptr, "sampler: probs output vector is null");
  const int32_t greedy = process(logits, vocab, context);
  out->assign(vocab, 0.0f);
  if (greedy >= 0) {
    (*out)[greedy] = 1.0f;
    return;
  }
  for (int j = 0; j < n_kept_; j++) (*out)[cand_[j]] = (float)(weight_[j] / weight_sum_);
}

}  // namespace dseek
