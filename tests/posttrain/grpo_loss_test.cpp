// Tests for posttrain/grpo_loss: advantages of a group (unbiased std, all-equal rewards, Dr. GRPO
// without std), clipping on both sides with its zero gradients, clip-higher, the k3 KL value and
// gradient, the three aggregations on ragged sequences with padding (values worked by hand from
// the formulas in grpo_loss.h), a central finite-difference check of dloss/dlogp in double on
// random inputs away from the clip boundaries, and the errors on invalid input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "dseek/core/error.h"
#include "dseek/posttrain/grpo_loss.h"

namespace dseek {
namespace {

// A packed batch owning its storage; view() gives the spans.
struct GrpoBatch {
  std::vector<float> logp, old_logp, ref_logp, mask, adv;
  std::vector<int64_t> seq_lens;
  GrpoLossInputs view() const {
    return {.logp = logp,
            .old_logp = old_logp,
            .ref_logp = ref_logp,
            .mask = mask,
            .seq_lens = seq_lens,
            .advantages = adv};
  }
};

std::vector<float> grads_of(const GrpoBatch& b, const GrpoLossConfig& cfg) {
  std::vector<float> g(b.logp.size(), 12345.0f);  // poison: every entry must be overwritten
  grpo_loss_backward(g, b.view(), cfg);
  return g;
}

// ---- advantages ---------------------------------------------------------------------------

TEST(GrpoAdvantages, UnbiasedStdAndEqualGroup) {
  // group 1: r = {0, 0, 1, 1}: mean 0.5, sum of squared deviations 4 * 0.25 = 1,
  //   unbiased std = sqrt(1 / 3) = 0.57735027 (biased would be 0.5 and give +-1)
  //   eps = 0: A = +-0.5 / 0.57735027 = +-0.8660254 (sqrt(3) / 2)
  // group 2: r = {3, 3, 3, 3}: all equal; with eps = 0 that is 0 / 0, defined as A = 0
  const std::vector<float> r = {0, 0, 1, 1, 3, 3, 3, 3};
  std::vector<float> a = grpo_advantages(r, 4, GrpoScaling::GRPO_SCALING_STD, 0.0f);
  ASSERT_EQ(a.size(), 8u);
  const float s = 0.8660254f;
  const std::vector<float> want = {-s, -s, s, s, 0, 0, 0, 0};
  for (size_t i = 0; i < 8; ++i) EXPECT_NEAR(a[i], want[i], 1e-6f) << i;

  // default eps = 1e-4: A = 0.5 / (0.57735027 + 0.0001) = 0.86587543; equal group 0 / 1e-4 = 0
  a = grpo_advantages(r, 4, GrpoScaling::GRPO_SCALING_STD);
  EXPECT_NEAR(a[0], -0.86587543f, 1e-6f);
  EXPECT_NEAR(a[3], 0.86587543f, 1e-6f);
  for (size_t i = 4; i < 8; ++i) EXPECT_EQ(a[i], 0.0f);

  // r = {1, 2, 3, 4} in groups of 2: {1, 2}: mean 1.5, unbiased std = sqrt(0.5) = 0.70710678,
  //   A = -+0.5 / 0.70710678 = -+0.70710678; {3, 4} the same
  a = grpo_advantages({1, 2, 3, 4}, 2, GrpoScaling::GRPO_SCALING_STD, 0.0f);
  EXPECT_NEAR(a[0], -0.70710678f, 1e-6f);
  EXPECT_NEAR(a[1], 0.70710678f, 1e-6f);
  EXPECT_NEAR(a[2], -0.70710678f, 1e-6f);
  EXPECT_NEAR(a[3], 0.70710678f, 1e-6f);
}

TEST(GrpoAdvantages, DrGrpoNoStd) {
  // A = r - mean: {0, 0, 1, 1} -> mean 0.5 -> {-0.5, -0.5, 0.5, 0.5}; {3, 3, 3, 3} -> 0
  // {5, 1, 0} (G = 3): mean 2 -> {3, -1, -2}; G = 1 is allowed without std: A = 0
  std::vector<float> a =
      grpo_advantages({0, 0, 1, 1, 3, 3, 3, 3}, 4, GrpoScaling::GRPO_SCALING_NONE);
  const std::vector<float> want = {-0.5f, -0.5f, 0.5f, 0.5f, 0, 0, 0, 0};
  for (size_t i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(a[i], want[i]) << i;
  a = grpo_advantages({5, 1, 0}, 3, GrpoScaling::GRPO_SCALING_NONE);
  EXPECT_FLOAT_EQ(a[0], 3.0f);
  EXPECT_FLOAT_EQ(a[1], -1.0f);
  EXPECT_FLOAT_EQ(a[2], -2.0f);
  a = grpo_advantages({7, 2}, 1, GrpoScaling::GRPO_SCALING_NONE);
  EXPECT_EQ(a[0], 0.0f);
  EXPECT_EQ(a[1], 0.0f);
}

TEST(GrpoAdvantages, InvalidInputThrows) {
  // group size not dividing the batch, non-positive group, G = 1 with std (unbiased std
  // undefined), non-finite reward, negative eps
  EXPECT_THROW(grpo_advantages({1, 2, 3}, 2, GrpoScaling::GRPO_SCALING_STD), Error);
  EXPECT_THROW(grpo_advantages({1, 2, 3, 4, 5}, 4, GrpoScaling::GRPO_SCALING_NONE), Error);
  EXPECT_THROW(grpo_advantages({1, 2}, 0, GrpoScaling::GRPO_SCALING_NONE), Error);
  EXPECT_THROW(grpo_advantages({1, 2}, 1, GrpoScaling::GRPO_SCALING_STD), Error);
  EXPECT_THROW(grpo_advantages({1, std::numeric_limits<float>::quiet_NaN()}, 2,
                               GrpoScaling::GRPO_SCALING_STD),
               Error);
  EXPECT_THROW(grpo_advantages({1, 2}, 2, GrpoScaling::GRPO_SCALING_STD, -1.0f), Error);
  EXPECT_TRUE(grpo_advantages({}, 4, GrpoScaling::GRPO_SCALING_STD).empty());
}

// ---- clipping -----------------------------------------------------------------------------

TEST(GrpoLoss, ClipBothSides) {
  // 4 one-token sequences, eps_low = eps_high = 0.2, beta = 0, sequence mean (w = 1/4 each).
  // old_logp = -1; logp = -1 + ln(1.5) (ratio 1.5) or -1 + ln(0.5) (ratio 0.5).
  //   s0: A = +2, ratio 1.5 > 1.2: o = min(3, 2.4) = 2.4 (clipped high), l = -2.4, grad 0
  //   s1: A = -2, ratio 0.5 < 0.8: o = min(-1, -1.6) = -1.6 (clipped low), l = 1.6, grad 0
  //   s2: A = +2, ratio 0.5: o = min(1, 1.6) = 1 (unclipped), l = -1, dl = -ratio*A = -1
  //   s3: A = -2, ratio 1.5: o = min(-3, -2.4) = -3 (unclipped), l = 3, dl = -ratio*A = 3
  // loss = (-2.4 + 1.6 - 1 + 3) / 4 = 0.3; dlogp = {0, 0, -1/4, 3/4}
  // clip_frac_low = clip_frac_high = 1/4; ratio_mean = (1.5 + 0.5 + 0.5 + 1.5) / 4 = 1
  const float up = -1.0f + std::log(1.5f), down = -1.0f + std::log(0.5f);
  GrpoBatch b{.logp = {up, down, down, up},
              .old_logp = {-1, -1, -1, -1},
              .ref_logp = {},
              .mask = {1, 1, 1, 1},
              .adv = {2, -2, 2, -2},
              .seq_lens = {1, 1, 1, 1}};
  const GrpoLossConfig cfg{.kind = GrpoLossKind::GRPO_LOSS_SEQUENCE_MEAN,
                           .eps_low = 0.2f,
                           .eps_high = 0.2f,
                           .beta = 0.0f};
  const GrpoLossStats st = grpo_loss_forward(b.view(), cfg);
  EXPECT_NEAR(st.loss, 0.3, 1e-6);
  EXPECT_DOUBLE_EQ(st.clip_frac_low, 0.25);
  EXPECT_DOUBLE_EQ(st.clip_frac_high, 0.25);
  EXPECT_NEAR(st.ratio_mean, 1.0, 1e-6);
  EXPECT_EQ(st.kl_mean, 0.0);
  EXPECT_EQ(st.num_tokens, 4);
  const std::vector<float> g = grads_of(b, cfg);
  EXPECT_EQ(g[0], 0.0f);
  EXPECT_EQ(g[1], 0.0f);
  EXPECT_NEAR(g[2], -0.25f, 1e-6f);
  EXPECT_NEAR(g[3], 0.75f, 1e-6f);
}

TEST(GrpoLoss, ClipHigher) {
  // DAPO clip-higher: A = +1, ratio 1.25. With eps_high = 0.2: 1.25 > 1.2, clipped,
  //   o = 1.2, l = -1.2, grad 0. With eps_high = 0.28: 1.25 <= 1.28, unclipped, o = 1.25,
  //   l = -1.25, dl = -1.25. One token, token mean: w = 1.
  GrpoBatch b{.logp = {-2.0f + std::log(1.25f)},
              .old_logp = {-2.0f},
              .ref_logp = {},
              .mask = {1},
              .adv = {1},
              .seq_lens = {1}};
  GrpoLossConfig cfg{
      .kind = GrpoLossKind::GRPO_LOSS_TOKEN_MEAN, .eps_low = 0.2f, .eps_high = 0.2f, .beta = 0.0f};
  GrpoLossStats st = grpo_loss_forward(b.view(), cfg);
  EXPECT_NEAR(st.loss, -1.2, 1e-6);
  EXPECT_DOUBLE_EQ(st.clip_frac_high, 1.0);
  EXPECT_EQ(grads_of(b, cfg)[0], 0.0f);
  cfg.eps_high = 0.28f;
  st = grpo_loss_forward(b.view(), cfg);
  EXPECT_NEAR(st.loss, -1.25, 1e-6);
  EXPECT_DOUBLE_EQ(st.clip_frac_high, 0.0);
  EXPECT_NEAR(grads_of(b, cfg)[0], -1.25f, 1e-6f);
}

// ---- KL -----------------------------------------------------------------------------------

TEST(GrpoLoss, KlK3ValueAndGradient) {
  // A = 0 (the ratio term is 0), beta = 0.1, logp = old_logp = -1, two tokens of one sequence:
  //   t0: ref = logp + ln 2: d = ref - logp = ln 2, e^d = 2,
  //       k3 = 2 - ln 2 - 1 = 0.30685282, dk3/dlogp = 1 - 2 = -1
  //   t1: ref = logp - ln 2: d = -ln 2, e^d = 0.5,
  //       k3 = 0.5 + ln 2 - 1 = 0.19314718, dk3/dlogp = 1 - 0.5 = 0.5
  // kl_mean = (0.30685282 + 0.19314718) / 2 = 0.25
  // token mean (w = 1/2): loss = 0.1 * 0.25 = 0.025; dlogp = 0.1 * {-1, 0.5} / 2 = {-0.05, 0.025}
  const float lp = -1.0f, ln2 = std::log(2.0f);
  GrpoBatch b{.logp = {lp, lp},
              .old_logp = {lp, lp},
              .ref_logp = {lp + ln2, lp - ln2},
              .mask = {1, 1},
              .adv = {0},
              .seq_lens = {2}};
  const GrpoLossConfig cfg{.kind = GrpoLossKind::GRPO_LOSS_TOKEN_MEAN, .beta = 0.1f};
  const GrpoLossStats st = grpo_loss_forward(b.view(), cfg);
  EXPECT_NEAR(st.kl_mean, 0.25, 1e-6);
  EXPECT_NEAR(st.loss, 0.025, 1e-7);
  EXPECT_DOUBLE_EQ(st.ratio_mean, 1.0);
  const std::vector<float> g = grads_of(b, cfg);
  EXPECT_NEAR(g[0], -0.05f, 1e-7f);
  EXPECT_NEAR(g[1], 0.025f, 1e-7f);

  // k3 is 0 with zero gradient where ref == logp
  b.ref_logp = {lp, lp};
  EXPECT_EQ(grpo_loss_forward(b.view(), cfg).loss, 0.0);
  EXPECT_EQ(grads_of(b, cfg)[0], 0.0f);
}

// ---- aggregation --------------------------------------------------------------------------

TEST(GrpoLoss, AggregationRaggedWithPadding) {
  // ratio = 1 everywhere (logp = old_logp), beta = 0, so l_t = -A_s and dl_t = -A_s.
  // seq_lens {3, 1, 3}; mask {1 1 1 | 1 | 1 1 0}: n = {3, 1, 2}, 6 completion tokens;
  // A = {1, 2, 3}. The padding token's log-probs are NaN: never read.
  // per-sequence sums of l: -3, -2, -6
  //   SEQUENCE_MEAN: (-3/3 + -2/1 + -6/2) / 3 = (-1 - 2 - 3) / 3 = -2
  //                  w = 1/(3*3), 1/(3*1), 1/(3*2): dlogp = -1/9 (x3), -2/3, -1/2 (x2), 0
  //   TOKEN_MEAN:    (-3 - 2 - 6) / 6 = -11/6;   dlogp = -A/6: -1/6 (x3), -1/3, -1/2 (x2), 0
  //   DR_GRPO L = 4: (-3 - 2 - 6) / (3 * 4) = -11/12; dlogp = -A/12
  const float nan = std::numeric_limits<float>::quiet_NaN();
  GrpoBatch b{.logp = {-1, -2, -3, -1, -2, -3, nan},
              .old_logp = {-1, -2, -3, -1, -2, -3, nan},
              .ref_logp = {},
              .mask = {1, 1, 1, 1, 1, 1, 0},
              .adv = {1, 2, 3},
              .seq_lens = {3, 1, 3}};
  GrpoLossConfig cfg{.beta = 0.0f, .max_completion_length = 4};

  cfg.kind = GrpoLossKind::GRPO_LOSS_SEQUENCE_MEAN;
  EXPECT_NEAR(grpo_loss_forward(b.view(), cfg).loss, -2.0, 1e-12);
  std::vector<float> g = grads_of(b, cfg);
  std::vector<float> want = {-1.f / 9, -1.f / 9, -1.f / 9, -2.f / 3, -0.5f, -0.5f, 0.0f};
  for (size_t i = 0; i < 7; ++i) EXPECT_NEAR(g[i], want[i], 1e-7f) << i;

  cfg.kind = GrpoLossKind::GRPO_LOSS_TOKEN_MEAN;
  EXPECT_NEAR(grpo_loss_forward(b.view(), cfg).loss, -11.0 / 6.0, 1e-12);
  g = grads_of(b, cfg);
  want = {-1.f / 6, -1.f / 6, -1.f / 6, -1.f / 3, -0.5f, -0.5f, 0.0f};
  for (size_t i = 0; i < 7; ++i) EXPECT_NEAR(g[i], want[i], 1e-7f) << i;

  cfg.kind = GrpoLossKind::GRPO_LOSS_DR_GRPO;
  const GrpoLossStats st = grpo_loss_forward(b.view(), cfg);
  EXPECT_NEAR(st.loss, -11.0 / 12.0, 1e-12);
  EXPECT_EQ(st.num_tokens, 6);
  EXPECT_DOUBLE_EQ(st.ratio_mean, 1.0);
  g = grads_of(b, cfg);
  want = {-1.f / 12, -1.f / 12, -1.f / 12, -2.f / 12, -3.f / 12, -3.f / 12, 0.0f};
  for (size_t i = 0; i < 7; ++i) EXPECT_NEAR(g[i], want[i], 1e-7f) << i;

  // An empty 4th sequence counts in S for the sequence mean (as TRL's clamp(min=1) row):
  //   (-1 - 2 - 3 + 0) / 4 = -1.5; for the token mean it changes nothing: -11/6
  b.adv.push_back(5);
  b.seq_lens.push_back(0);
  cfg.kind = GrpoLossKind::GRPO_LOSS_SEQUENCE_MEAN;
  EXPECT_NEAR(grpo_loss_forward(b.view(), cfg).loss, -1.5, 1e-12);
  cfg.kind = GrpoLossKind::GRPO_LOSS_TOKEN_MEAN;
  EXPECT_NEAR(grpo_loss_forward(b.view(), cfg).loss, -11.0 / 6.0, 1e-12);

  // no completion tokens at all: loss 0, stats 0, grads 0
  GrpoBatch e{
      .logp = {-1}, .old_logp = {-1}, .ref_logp = {}, .mask = {0}, .adv = {1}, .seq_lens = {1}};
  const GrpoLossStats se = grpo_loss_forward(e.view(), cfg);
  EXPECT_EQ(se.loss, 0.0);
  EXPECT_EQ(se.num_tokens, 0);
  EXPECT_EQ(se.ratio_mean, 0.0);
  EXPECT_EQ(grads_of(e, cfg)[0], 0.0f);
}

// ---- finite differences -------------------------------------------------------------------

TEST(GrpoLoss, FiniteDifferenceGradient) {
  // Random ragged batch, every term active (clipped and unclipped tokens, KL). Ratios within
  // 0.02 of a clip boundary are redrawn so that the central difference never crosses a kink.
  // The loss is computed in double from the fp32 inputs, so the difference quotient uses the
  // exact perturbation (float(x + h) - float(x - h)) in double.
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> u_logp(-3.0f, -0.1f), u_dev(-0.4f, 0.4f),
      u_adv(-2.0f, 2.0f), u_mask(0.0f, 1.0f);
  std::uniform_int_distribution<int> u_len(0, 7);
  const float eps_low = 0.2f, eps_high = 0.28f;
  GrpoBatch b;
  for (int s = 0; s < 6; ++s) {
    const int len = u_len(rng);
    b.seq_lens.push_back(len);
    b.adv.push_back(u_adv(rng));
    for (int i = 0; i < len; ++i) {
      const float lp = u_logp(rng);
      float old = lp;
      for (;;) {
        old = lp + u_dev(rng);
        const double ratio = std::exp(static_cast<double>(lp) - old);
        if (std::abs(ratio - (1.0 - eps_low)) > 0.02 && std::abs(ratio - (1.0 + eps_high)) > 0.02)
          break;
      }
      b.logp.push_back(lp);
      b.old_logp.push_back(old);
      b.ref_logp.push_back(lp + u_dev(rng));
      b.mask.push_back(u_mask(rng) < 0.85f ? 1.0f : 0.0f);
    }
  }
  ASSERT_GT(b.logp.size(), 10u);
  for (GrpoLossKind kind : {GrpoLossKind::GRPO_LOSS_SEQUENCE_MEAN,
                            GrpoLossKind::GRPO_LOSS_TOKEN_MEAN, GrpoLossKind::GRPO_LOSS_DR_GRPO}) {
    const GrpoLossConfig cfg{.kind = kind,
                             .eps_low = eps_low,
                             .eps_high = eps_high,
                             .beta = 0.3f,
                             .max_completion_length = 8};
    const GrpoLossStats st = grpo_loss_forward(b.view(), cfg);
    // the batch must exercise both clip sides somewhere, or the check is weaker than claimed
    EXPECT_GT(st.clip_frac_low + st.clip_frac_high, 0.0);
    const std::vector<float> g = grads_of(b, cfg);
    double max_err = 0.0;
    for (size_t t = 0; t < b.logp.size(); ++t) {
      const float x = b.logp[t];
      GrpoBatch bp = b, bm = b;
      bp.logp[t] = x + 1e-3f;
      bm.logp[t] = x - 1e-3f;
      const double h2 = static_cast<double>(bp.logp[t]) - static_cast<double>(bm.logp[t]);
      const double fd =
          (grpo_loss_forward(bp.view(), cfg).loss - grpo_loss_forward(bm.view(), cfg).loss) / h2;
      if (b.mask[t] == 0.0f) {
        EXPECT_EQ(g[t], 0.0f);
        EXPECT_EQ(fd, 0.0);
        continue;
      }
      const double err = std::abs(fd - g[t]);
      max_err = std::max(max_err, err);
      EXPECT_NEAR(g[t], fd, 1e-5 + 1e-4 * std::abs(fd)) << "token " << t;
    }
    EXPECT_LT(max_err, 1e-4);
  }
}

// ---- errors -------------------------------------------------------------------------------

TEST(GrpoLoss, InvalidInputThrows) {
  const GrpoBatch ok{.logp = {-1, -2, -3},
                     .old_logp = {-1, -2, -3},
                     .ref_logp = {-1, -2, -3},
                     .mask = {1, 1, 0},
                     .adv = {1, -1},
                     .seq_lens = {2, 1}};
  const GrpoLossConfig cfg{.max_completion_length = 2};
  EXPECT_NO_THROW(grpo_loss_forward(ok.view(), cfg));
  std::vector<float> g(3);
  EXPECT_NO_THROW(grpo_loss_backward(g, ok.view(), cfg));

  auto throws = [&](auto edit, GrpoLossConfig c) {
    GrpoBatch b = ok;
    edit(b);
    EXPECT_THROW(grpo_loss_forward(b.view(), c), Error);
    std::vector<float> gb(b.logp.size());
    EXPECT_THROW(grpo_loss_backward(gb, b.view(), c), Error);
  };
  throws([](GrpoBatch& b) { b.old_logp.pop_back(); }, cfg);  // old_logp size
  throws([](GrpoBatch& b) { b.mask.push_back(1); }, cfg);    // mask size
  throws([](GrpoBatch& b) { b.ref_logp.pop_back(); }, cfg);  // ref_logp size
  throws([](GrpoBatch& b) { b.ref_logp.clear(); }, cfg);     // beta > 0, no ref
  throws([](GrpoBatch& b) { b.adv.push_back(0); }, cfg);     // advantages vs sequences
  throws([](GrpoBatch& b) { b.seq_lens = {2, 2}; }, cfg);    // lens sum past N
  throws([](GrpoBatch& b) { b.seq_lens = {1, 1}; }, cfg);    // lens sum short of N
  throws([](GrpoBatch& b) { b.seq_lens = {4, -1}; }, cfg);   // negative length
  throws([](GrpoBatch& b) { b.mask[0] = 0.5f; }, cfg);       // mask not 0/1
  throws([](GrpoBatch& b) { b.logp[1] = NAN; }, cfg);        // NaN on a completion token
  throws([](GrpoBatch& b) { b.adv[0] = INFINITY; }, cfg);    // non-finite advantage
  GrpoLossConfig c = cfg;
  c.eps_low = 1.0f;
  throws([](GrpoBatch&) {}, c);
  c = cfg;
  c.eps_high = -0.1f;
  throws([](GrpoBatch&) {}, c);
  c = cfg;
  c.beta = -1.0f;
  throws([](GrpoBatch&) {}, c);
  c = cfg;
  c.kind = GrpoLossKind::GRPO_LOSS_DR_GRPO;
  c.max_completion_length = 0;
  throws([](GrpoBatch&) {}, c);  // Dr. GRPO without L
  c.max_completion_length = 1;
  throws([](GrpoBatch&) {}, c);  // sequence 0 has 2 completion tokens > L = 1
  c.max_completion_length = 2;
  EXPECT_NO_THROW(grpo_loss_forward(ok.view(), c));

  std::vector<float> short_g(2);
  EXPECT_THROW(grpo_loss_backward(short_g, ok.view(), cfg), Error);  // dlogp size

  // beta = 0 needs no reference
  GrpoBatch b = ok;
  b.ref_logp.clear();
  c = cfg;
  c.beta = 0.0f;
  const GrpoLossStats st = grpo_loss_forward(b.view(), c);
  EXPECT_EQ(st.kl_mean, 0.0);
}

}  // namespace
}  // namespace dseek
