// Sampler tests: each step of the contract in sampler.h on hand-computed cases, probs() against a
// naive full-sort reference (double, HF-style ascending cumsum for top-p), seeded determinism,
// empirical frequencies against probs(), and the error paths.
#include "dseek/infer/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "dseek/core/error.h"

namespace dseek {
namespace {

// ---------------------------------------------------------------------------------------------
// helpers

// Deterministic test logits: raw mt19937 words (fully specified) mapped to [-scale, scale).
std::vector<float> random_logits(int vocab, uint32_t seed, float scale) {
  std::mt19937 gen(seed);
  std::vector<float> x(vocab);
  for (float& v : x) v = scale * (2.0f * (float)((double)gen() / 4294967296.0) - 1.0f);
  return x;
}

std::vector<float> log_of(const std::vector<double>& p) {
  std::vector<float> x;
  for (double v : p) x.push_back((float)std::log(v));
  return x;
}

int count_nonzero(const std::vector<float>& p) {
  return (int)std::count_if(p.begin(), p.end(), [](float v) { return v != 0.0f; });
}

// Naive reference of the whole pipeline as sampler.h specifies it: plain loops, full sorts,
// double precision, HF's formulation of top-p (ascending cumsum) with the 1e-6 boundary slack.
std::vector<double> naive_probs(const std::vector<float>& logits, const SamplerConfig& c,
                                const std::vector<int32_t>& context) {
  const int n = (int)logits.size();
  std::vector<double> x(logits.begin(), logits.end());
  std::vector<bool> seen(n, false);
  for (int32_t t : context) {
    if (seen[t]) continue;
    seen[t] = true;
    x[t] = x[t] > 0 ? x[t] / c.repetition_penalty : x[t] * c.repetition_penalty;
  }
  std::vector<double> p(n, 0.0);
  if (c.temperature == 0.0f) {
    p[std::max_element(x.begin(), x.end()) - x.begin()] = 1.0;
    return p;
  }
  for (double& v : x) v /= c.temperature;
  std::vector<bool> keep(n, true);
  auto softmax_kept = [&] {
    double m = -INFINITY, s = 0.0;
    for (int i = 0; i < n; i++)
      if (keep[i]) m = std::max(m, x[i]);
    std::vector<double> q(n, 0.0);
    for (int i = 0; i < n; i++)
      if (keep[i]) s += (q[i] = std::exp(x[i] - m));
    for (double& v : q) v /= s;
    return q;
  };
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return x[a] > x[b]; });
  if (c.top_k > 0)
    for (int r = c.top_k; r < n; r++) keep[order[r]] = false;
  if (c.top_p < 1.0f) {  // HF: ascending cumsum, remove cum <= 1 - p, keep the top one
    std::vector<double> q = softmax_kept();
    double cum = 0.0;
    for (int r = n - 1; r >= 1; r--) {
      cum += q[order[r]];
      if (cum <= 1.0 - c.top_p + 1e-6) keep[order[r]] = false;
    }
  }
  if (c.min_p > 0.0f) {
    std::vector<double> q = softmax_kept();
    const double q_max = *std::max_element(q.begin(), q.end());
    for (int i = 0; i < n; i++)
      if (q[i] < c.min_p * q_max * (1.0 - 1e-6)) keep[i] = false;
  }
  return softmax_kept();
}

// Max-abs comparison reporting the worst token. exact_support: the kept sets must be identical
// (off for 129k-token top-p, where fp32 exp noise may move the cut by a token of mass ~1e-8).
void expect_probs_near(const std::vector<float>& got, const std::vector<double>& want, double tol,
                       bool exact_support = true) {
  ASSERT_EQ(got.size(), want.size());
  double worst = 0.0;
  size_t worst_i = 0;
  for (size_t i = 0; i < got.size(); i++) {
    if (exact_support) {
      ASSERT_EQ(got[i] == 0.0f, want[i] == 0.0) << "kept set differs at token " << i;
    }
    ASSERT_TRUE(std::isfinite(got[i])) << "token " << i;
    const double d = std::abs(got[i] - want[i]);
    if (d > worst) worst = d, worst_i = i;
  }
  EXPECT_LE(worst, tol) << "worst token " << worst_i << ": got " << got[worst_i] << " want "
                        << want[worst_i];
}

// ---------------------------------------------------------------------------------------------
// greedy and temperature

TEST(Sampler, GreedyPicksArgmaxLowestIndexOnTies) {
  Sampler s({.temperature = 0.0f});
  const std::vector<float> x = {1.0f, 5.0f, 3.0f, 5.0f, -INFINITY};
  EXPECT_EQ(s.sample(x.data(), 5, {}), 1);
  std::vector<float> p;
  s.probs(x.data(), 5, {}, &p);
  EXPECT_EQ(p, (std::vector<float>{0, 1, 0, 0, 0}));
  // Greedy still sees the repetition penalty: 5/2 = 2.5 < 3.
  Sampler r({.temperature = 0.0f, .repetition_penalty = 2.0f});
  EXPECT_EQ(r.sample(x.data(), 5, {1, 3, 1}), 2);
}

TEST(Sampler, TemperatureEqualsSoftmaxOfScaledLogits) {
  const std::vector<float> x = random_logits(1000, 1, 8.0f);
  for (float t : {0.3f, 1.0f, 2.7f}) {
    Sampler s({.temperature = t});
    std::vector<float> p;
    s.probs(x.data(), (int)x.size(), {}, &p);
    std::vector<double> want(x.size());
    double m = *std::max_element(x.begin(), x.end()), sum = 0.0;
    for (size_t i = 0; i < x.size(); i++) sum += (want[i] = std::exp((x[i] - m) / t));
    for (double& v : want) v /= sum;
    SCOPED_TRACE(t);
    expect_probs_near(p, want, 1e-6);
    EXPECT_NEAR(std::accumulate(p.begin(), p.end(), 0.0), 1.0, 1e-5);
  }
}

TEST(Sampler, NegativeInfinityLogitsNeverDrawn) {
  const std::vector<float> x = {-INFINITY, 0.0f, -INFINITY, 0.0f};
  Sampler s({.top_k = 3, .seed = 7});
  std::vector<float> p;
  s.probs(x.data(), 4, {}, &p);
  EXPECT_EQ(p, (std::vector<float>{0, 0.5f, 0, 0.5f}));
  for (int i = 0; i < 1000; i++) {
    const int32_t t = s.sample(x.data(), 4, {});
    EXPECT_TRUE(t == 1 || t == 3);
  }
}

// ---------------------------------------------------------------------------------------------
// top-k, top-p, min-p

TEST(Sampler, TopKKeepsExactlyKLowestIndexOnTies) {
  const std::vector<float> x = {1.0f, 3.0f, 2.0f, 3.0f, 3.0f, 0.0f};
  Sampler s({.top_k = 2});
  std::vector<float> p;
  s.probs(x.data(), 6, {}, &p);
  EXPECT_EQ(p, (std::vector<float>{0, 0.5f, 0, 0.5f, 0, 0}));  // ids 1, 3 of the tied 1, 3, 4
  Sampler s4({.top_k = 4});
  s4.probs(x.data(), 6, {}, &p);
  EXPECT_EQ(count_nonzero(p), 4);
  EXPECT_EQ(p[0], 0.0f);  // 1.0 < 2.0: id 2 is the 4th
  EXPECT_GT(p[2], 0.0f);
  Sampler big({.top_k = 100});  // k > V: no-op
  big.probs(x.data(), 6, {}, &p);
  EXPECT_EQ(count_nonzero(p), 6);
}

TEST(Sampler, TopKOnFullVocabMatchesNaive) {
  const std::vector<float> x = random_logits(129280, 2, 10.0f);
  for (int k : {1, 50, 4000}) {
    const SamplerConfig c = {.temperature = 0.7f, .top_k = k};
    Sampler s(c);
    std::vector<float> p;
    s.probs(x.data(), (int)x.size(), {}, &p);
    SCOPED_TRACE(k);
    EXPECT_EQ(count_nonzero(p), k);
    expect_probs_near(p, naive_probs(x, c, {}), 1e-6);
  }
}

TEST(Sampler, TopPHandCases) {
  // probs .15 .5 .05 .3 (shuffled so the sort matters)
  const std::vector<float> x = log_of({0.15, 0.5, 0.05, 0.3});
  std::vector<float> p;
  Sampler s80({.top_p = 0.8f});  // .5 + .3 reaches .8: two kept
  s80.probs(x.data(), 4, {}, &p);
  EXPECT_EQ(p[0], 0.0f);
  EXPECT_NEAR(p[1], 0.5 / 0.8, 1e-6);
  EXPECT_EQ(p[2], 0.0f);
  EXPECT_NEAR(p[3], 0.3 / 0.8, 1e-6);
  Sampler s81({.top_p = 0.81f});  // needs .15 too
  s81.probs(x.data(), 4, {}, &p);
  EXPECT_NEAR(p[0], 0.15 / 0.95, 1e-6);
  EXPECT_NEAR(p[1], 0.5 / 0.95, 1e-6);
  EXPECT_EQ(p[2], 0.0f);
  EXPECT_NEAR(p[3], 0.3 / 0.95, 1e-6);
  Sampler s50({.top_p = 0.5f});  // the top token alone reaches .5
  s50.probs(x.data(), 4, {}, &p);
  EXPECT_EQ(p, (std::vector<float>{0, 1, 0, 0}));
  Sampler tiny({.top_p = 1e-9f});  // at least one token is kept
  tiny.probs(x.data(), 4, {}, &p);
  EXPECT_EQ(p, (std::vector<float>{0, 1, 0, 0}));
  Sampler all({.top_p = 0.999f});
  all.probs(x.data(), 4, {}, &p);
  EXPECT_EQ(count_nonzero(p), 4);
}

TEST(Sampler, TopPAfterTopKUsesRenormalisedMass) {
  // top-k 3 leaves .5 .3 .15 (mass .95), renormalised .526 .316 .158: the top two hold .842.
  const std::vector<float> x = log_of({0.15, 0.5, 0.05, 0.3});
  std::vector<float> p;
  Sampler s({.top_k = 3, .top_p = 0.85f});  // .842 < .85: three kept
  s.probs(x.data(), 4, {}, &p);
  EXPECT_EQ(count_nonzero(p), 3);
  Sampler s2({.top_k = 3, .top_p = 0.84f});
  s2.probs(x.data(), 4, {}, &p);
  EXPECT_EQ(count_nonzero(p), 2);
}

TEST(Sampler, TopPOnFullVocabMatchesNaive) {
  // Exercises the growing partially sorted prefix (64, 512, 4096, ... tokens).
  const std::vector<float> x = random_logits(129280, 3, 6.0f);
  for (float top_p : {0.05f, 0.5f, 0.9f, 0.999f}) {
    const SamplerConfig c = {.top_p = top_p};
    Sampler s(c);
    std::vector<float> p;
    s.probs(x.data(), (int)x.size(), {}, &p);
    SCOPED_TRACE(top_p);
    expect_probs_near(p, naive_probs(x, c, {}), 1e-6, /*exact_support=*/false);
    const int kept = count_nonzero(p);
    std::vector<double> want = naive_probs(x, c, {});
    const int want_kept = (int)std::count_if(want.begin(), want.end(), [](double v) { return v; });
    EXPECT_NEAR(kept, want_kept, 2);
  }
}

TEST(Sampler, TopPTiesCutByLowestIndex) {
  std::vector<float> p;
  const std::vector<float> flat10(10, 0.5f);
  Sampler s({.top_p = 0.35f});  // .1 each: four reach .35
  s.probs(flat10.data(), 10, {}, &p);
  for (int i = 0; i < 10; i++) EXPECT_EQ(p[i], i < 4 ? 0.25f : 0.0f) << i;
  // Through the quickselect path (no top-k, V > 64): ties all the way.
  const std::vector<float> flat(1000, -1.0f);
  Sampler h({.top_p = 0.5f});
  h.probs(flat.data(), 1000, {}, &p);
  for (int i = 0; i < 1000; i++) ASSERT_EQ(p[i] > 0.0f, i < 500) << i;
}

TEST(Sampler, MinPHandCases) {
  const std::vector<float> x = log_of({0.15, 0.5, 0.05, 0.3});
  std::vector<float> p;
  auto kept = [&](SamplerConfig c) {
    Sampler s(c);
    s.probs(x.data(), 4, {}, &p);
    return count_nonzero(p);
  };
  EXPECT_EQ(kept({.min_p = 0.05f}), 4);  // threshold .025
  EXPECT_EQ(kept({.min_p = 0.1f}), 4);   // threshold .05: inclusive, .05 stays
  EXPECT_EQ(kept({.min_p = 0.25f}), 3);  // .125
  EXPECT_EQ(kept({.min_p = 0.5f}), 2);   // .25
  EXPECT_EQ(kept({.min_p = 0.7f}), 1);   // .35
  Sampler s({.min_p = 0.5f});
  s.probs(x.data(), 4, {}, &p);
  EXPECT_NEAR(p[1], 0.5 / 0.8, 1e-6);
  EXPECT_NEAR(p[3], 0.3 / 0.8, 1e-6);
  // min-p sees the tempered distribution: at T = 2 the ratio of .05 to .5 is sqrt(.1) = .316.
  EXPECT_EQ(kept({.min_p = 0.31f}), 2);
  EXPECT_EQ(kept({.temperature = 2.0f, .min_p = 0.31f}), 4);
}

// ---------------------------------------------------------------------------------------------
// repetition penalty

TEST(Sampler, RepetitionPenaltyEachDistinctIdOnce) {
  const std::vector<float> x = {2.0f, -2.0f, 1.0f, 0.5f, 0.0f};
  const std::vector<int32_t> ctx = {0, 1, 0, 0, 1, 4};
  Sampler s({.repetition_penalty = 2.0f});
  std::vector<float> p;
  s.probs(x.data(), 5, ctx, &p);
  const std::vector<double> z = {1.0, -4.0, 1.0, 0.5, 0.0};  // 2/2, -2*2, -, -, 0 stays 0
  double sum = 0.0;
  for (double v : z) sum += std::exp(v);
  for (int i = 0; i < 5; i++) EXPECT_NEAR(p[i], std::exp(z[i]) / sum, 1e-6) << i;
  // A penalty < 1 rewards: 1 / 0.4 = 2.5 beats 2; -2 * 0.4 = -0.8 still loses.
  Sampler r({.temperature = 0.0f, .repetition_penalty = 0.4f});
  EXPECT_EQ(r.sample(x.data(), 5, {2}), 2);
  EXPECT_EQ(r.sample(x.data(), 5, {1, 1}), 0);
  Sampler tie({.temperature = 0.0f, .repetition_penalty = 0.5f});
  EXPECT_EQ(tie.sample(x.data(), 5, {2}), 0);  // 1 / 0.5 = 2 ties with id 0: lowest index
  // Same sampler, different contexts: the dedup marks of one call do not leak into the next.
  s.probs(x.data(), 5, {}, &p);
  expect_probs_near(p, naive_probs(x, {}, {}), 1e-6);
}

TEST(Sampler, CombinedConfigsMatchNaive) {
  const std::vector<float> x = random_logits(5000, 4, 5.0f);
  std::vector<int32_t> ctx;
  for (int i = 0; i < 300; i++) ctx.push_back((i * 7919) % 5000);
  const SamplerConfig configs[] = {
      {.temperature = 0.8f, .top_k = 40, .top_p = 0.9f, .min_p = 0.05f, .repetition_penalty = 1.3f},
      {.temperature = 1.5f, .top_p = 0.7f, .repetition_penalty = 0.8f},
      {.temperature = 0.6f, .top_k = 1000, .min_p = 0.01f},
      {.temperature = 1.0f, .top_k = 5, .top_p = 0.3f},
  };
  for (const SamplerConfig& c : configs) {
    Sampler s(c);
    std::vector<float> p;
    s.probs(x.data(), (int)x.size(), ctx, &p);
    SCOPED_TRACE(testing::Message() << "T=" << c.temperature << " k=" << c.top_k << " p=" << c.top_p
                                    << " min_p=" << c.min_p);
    expect_probs_near(p, naive_probs(x, c, ctx), 1e-6);
  }
}

// ---------------------------------------------------------------------------------------------
// randomness

TEST(Sampler, SeededReproducibleAndSeedsDiffer) {
  const std::vector<float> x = random_logits(300, 5, 2.0f);
  auto draws = [&](uint64_t seed) {
    Sampler s({.top_p = 0.95f, .seed = seed});
    std::vector<int32_t> out;
    for (int i = 0; i < 200; i++) out.push_back(s.sample(x.data(), 300, {}));
    return out;
  };
  EXPECT_EQ(draws(42), draws(42));
  EXPECT_NE(draws(42), draws(43));
  Sampler s({.seed = 9});
  const int32_t first = s.sample(x.data(), 300, {});
  s.reseed(9);
  EXPECT_EQ(s.sample(x.data(), 300, {}), first);
  // probs() does not consume random numbers.
  Sampler a({.seed = 3}), b({.seed = 3});
  std::vector<float> p;
  a.probs(x.data(), 300, {}, &p);
  EXPECT_EQ(a.sample(x.data(), 300, {}), b.sample(x.data(), 300, {}));
}

TEST(Sampler, FixedSeedGolden) {
  // Pins splitmix64 + xoshiro256** and the walk order: a change here changes every seeded run.
  const std::vector<float> x = log_of({0.1, 0.2, 0.3, 0.4});
  Sampler s({.seed = 1234});
  std::vector<int32_t> got;
  for (int i = 0; i < 12; i++) got.push_back(s.sample(x.data(), 4, {}));
  EXPECT_EQ(got, (std::vector<int32_t>{0, 3, 3, 3, 1, 3, 2, 1, 2, 3, 2, 1}));
}

TEST(Sampler, EmpiricalFrequenciesWithinFourSigma) {
  const std::vector<float> x = {1.0f, 0.2f, -0.5f, 2.0f, 0.0f, -3.0f, 1.5f, 0.7f, -1.0f, 0.1f};
  const std::vector<int32_t> ctx = {3, 3, 6, 1};
  const SamplerConfig c = {.temperature = 0.9f,
                           .top_k = 8,
                           .top_p = 0.97f,
                           .min_p = 0.03f,
                           .repetition_penalty = 1.2f,
                           .seed = 2024};
  Sampler s(c);
  std::vector<float> p;
  s.probs(x.data(), 10, ctx, &p);
  ASSERT_GE(count_nonzero(p), 5);
  const int n = 200000;
  std::vector<int> counts(10, 0);
  for (int i = 0; i < n; i++) counts[s.sample(x.data(), 10, ctx)]++;
  for (int i = 0; i < 10; i++) {
    if (p[i] == 0.0f) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " has probability 0";
      continue;
    }
    const double mean = n * (double)p[i], sigma = std::sqrt(n * p[i] * (1.0 - p[i]));
    EXPECT_LE(std::abs(counts[i] - mean), 4.0 * sigma)
        << "token " << i << ": " << counts[i] << " draws, expected " << mean;
  }
}

// ---------------------------------------------------------------------------------------------
// errors

TEST(Sampler, InvalidConfigsThrow) {
  EXPECT_THROW(Sampler({.temperature = -0.1f}), Error);
  EXPECT_THROW(Sampler({.temperature = NAN}), Error);
  EXPECT_THROW(Sampler({.temperature = INFINITY}), Error);
  EXPECT_THROW(Sampler({.top_k = -1}), Error);
  EXPECT_THROW(Sampler({.top_p = 0.0f}), Error);
  EXPECT_THROW(Sampler({.top_p = 1.01f}), Error);
  EXPECT_THROW(Sampler({.top_p = NAN}), Error);
  EXPECT_THROW(Sampler({.min_p = -0.01f}), Error);
  EXPECT_THROW(Sampler({.min_p = 1.0f}), Error);
  EXPECT_THROW(Sampler({.repetition_penalty = 0.0f}), Error);
  EXPECT_THROW(Sampler({.repetition_penalty = -1.0f}), Error);
  try {
    Sampler({.top_p = 1.5f});
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("top_p must be in (0, 1]"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(Sampler({.temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f}));
}

TEST(Sampler, BadInputsThrow) {
  Sampler s({.repetition_penalty = 1.1f});
  std::vector<float> x = {0.0f, 1.0f, 2.0f};
  EXPECT_THROW(s.sample(x.data(), 3, {3}), Error);   // id past the vocabulary
  EXPECT_THROW(s.sample(x.data(), 3, {-1}), Error);  // negative id
  EXPECT_THROW(s.sample(nullptr, 3, {}), Error);
  EXPECT_THROW(s.sample(x.data(), 0, {}), Error);
  x[1] = NAN;
  EXPECT_THROW(s.sample(x.data(), 3, {}), Error);
  x[1] = INFINITY;
  EXPECT_THROW(s.sample(x.data(), 3, {}), Error);
  const std::vector<float> dead(3, -INFINITY);
  EXPECT_THROW(s.sample(dead.data(), 3, {}), Error);
}

}  // namespace
}  // namespace dseek
