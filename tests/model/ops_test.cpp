// CPU ops against naive versions and hand-computed cases: linear (BLAS vs loops), RMSNorm,
// RoPE (rotation preserves norms, interleaved = permuted half layout), the MoE routers,
// naive attention vs the absorbed latent path.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "dseek/ops/cpu/attention.h"
#include "dseek/ops/cpu/linear.h"
#include "dseek/ops/cpu/moe_router.h"
#include "dseek/ops/cpu/rmsnorm.h"
#include "dseek/ops/cpu/rope.h"

using namespace dseek;

namespace {
std::vector<float> randn(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}
}  // namespace

TEST(Ops, LinearMatchesNaive) {
  const int N = 7, IN = 33, OUT = 19;
  auto x = randn(N * IN, 1), W = randn(OUT * IN, 2), b = randn(OUT, 3);
  std::vector<float> y(N * OUT), yr(N * OUT);
  linear_forward(y.data(), x.data(), W.data(), b.data(), N, IN, OUT);
  linear_forward_naive(yr.data(), x.data(), W.data(), b.data(), N, IN, OUT);
  for (int i = 0; i < N * OUT; i++) EXPECT_NEAR(y[i], yr[i], 1e-4f * (1 + std::fabs(yr[i])));
}

TEST(Ops, RmsNormHandCase) {
  float x[4] = {1, 2, 3, 4}, w[4] = {1, 0.5f, 2, 1}, y[4], r;
  rmsnorm_forward(y, 4, &r, x, 4, w, 1, 4, 1e-6f);
  const double rs = 1.0 / std::sqrt((1 + 4 + 9 + 16) / 4.0 + 1e-6);
  EXPECT_NEAR(r, rs, 1e-7);
  for (int i = 0; i < 4; i++) EXPECT_NEAR(y[i], x[i] * rs * w[i], 1e-6);
}

TEST(Ops, RopeInterleavedEqualsPermutedHalf) {
  const int Dr = 8, half = 4, N = 3;
  std::vector<float> inv = {1.0f, 0.1f, 0.01f, 0.001f};
  std::vector<int32_t> pos = {0, 5, 17};
  std::vector<float> c(N * half), s(N * half);
  rope_tables(c.data(), s.data(), pos.data(), N, inv.data(), half, 1.0f);
  auto x = randn(N * Dr, 4);
  // interleaved x -> permuted [evens | odds] layout
  std::vector<float> xp(N * Dr);
  for (int n = 0; n < N; n++)
    for (int i = 0; i < half; i++) {
      xp[n * Dr + i] = x[n * Dr + 2 * i];
      xp[n * Dr + half + i] = x[n * Dr + 2 * i + 1];
    }
  std::vector<float> a = x, b = xp;
  rope_forward(a.data(), N, 1, Dr, Dr, c.data(), s.data(), half, true);
  rope_forward(b.data(), N, 1, Dr, Dr, c.data(), s.data(), half, false);
  for (int n = 0; n < N; n++) {
    double na = 0, nx = 0;
    for (int i = 0; i < half; i++) {
      EXPECT_NEAR(a[n * Dr + 2 * i], b[n * Dr + i], 1e-6);
      EXPECT_NEAR(a[n * Dr + 2 * i + 1], b[n * Dr + half + i], 1e-6);
    }
    for (int i = 0; i < Dr; i++) {
      na += a[n * Dr + i] * a[n * Dr + i];
      nx += x[n * Dr + i] * x[n * Dr + i];
    }
    EXPECT_NEAR(na, nx, 1e-4);  // a rotation keeps the norm
  }
  // position 0 is the identity
  for (int i = 0; i < Dr; i++) EXPECT_FLOAT_EQ(a[i], x[i]);
}

TEST(Ops, RouterV3GroupLimitedHandCase) {
  // 8 experts in 4 groups of 2, keep 2 groups, top-2. Bias steers selection only.
  RouterParams p{.n_experts = 8,
                 .top_k = 2,
                 .n_group = 4,
                 .topk_group = 2,
                 .sigmoid = true,
                 .group_limited = true,
                 .norm_topk = true,
                 .scaling = 2.5f};
  // sigmoid(logit) for logits below; group sums: g0 = s0+s1, ...
  float logits[8] = {2.0f, -1.0f, 0.5f, 0.4f, 3.0f, -3.0f, 0.0f, 0.1f};
  float bias[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int32_t idx[2];
  float w[2], sc[8];
  moe_router_forward(idx, w, sc, logits, bias, 1, p);
  auto sg = [](float z) { return 1.0f / (1.0f + std::exp(-z)); };
  // group scores: g0 = s(2)+s(-1) = 1.150, g1 = s(.5)+s(.4) = 1.221, g2 = s(3)+s(-3) = 1.0,
  // g3 = s(0)+s(.1) = 1.025 -> keep g1, g0 -> top-2 of {0,1,2,3}: experts 0 and 2
  EXPECT_EQ(idx[0], 0);
  EXPECT_EQ(idx[1], 2);
  float s0 = sg(2.0f), s2 = sg(0.5f);
  EXPECT_NEAR(w[0], s0 / (s0 + s2) * 2.5f, 1e-6);
  EXPECT_NEAR(w[1], s2 / (s0 + s2) * 2.5f, 1e-6);
  // expert 4 has the top score but its group (with expert 5) loses. A bias of +1 on expert 5
  // lifts group 2 to s(3)+s(-3)+1 = 2.0: groups 2 and 1 are kept, and the biased choice picks
  // experts 4 (0.953) and 5 (0.047 + 1); the weights use the unbiased scores.
  bias[5] = 1.0f;
  moe_router_forward(idx, w, sc, logits, bias, 1, p);
  EXPECT_EQ(idx[0], 4);
  EXPECT_EQ(idx[1], 5);
  float s4 = sg(3.0f), s5 = sg(-3.0f);
  EXPECT_NEAR(w[0], s4 / (s4 + s5) * 2.5f, 1e-6);
  EXPECT_NEAR(w[1], s5 / (s4 + s5) * 2.5f, 1e-6);
}

TEST(Ops, RouterV2GreedySoftmax) {
  RouterParams p{.n_experts = 4,
                 .top_k = 2,
                 .n_group = 1,
                 .topk_group = 1,
                 .sigmoid = false,
                 .group_limited = false,
                 .norm_topk = false,
                 .scaling = 1.0f};
  float logits[4] = {0.1f, 2.0f, -1.0f, 1.0f};
  int32_t idx[2];
  float w[2];
  moe_router_forward(idx, w, nullptr, logits, nullptr, 1, p);
  double z = std::exp(0.1) + std::exp(2.0) + std::exp(-1.0) + std::exp(1.0);
  EXPECT_EQ(idx[0], 1);  // sorted by expert id
  EXPECT_EQ(idx[1], 3);
  EXPECT_NEAR(w[0], std::exp(2.0) / z, 1e-6);
  EXPECT_NEAR(w[1], std::exp(1.0) / z, 1e-6);
}

TEST(Ops, AttentionCausalHandCase) {
  // T = 2, H = 1: first query sees only the first key
  float q[4] = {1, 0, 0, 1}, k[4] = {1, 0, 1, 1}, v[4] = {1, 2, 3, 4}, o[4], pr[4];
  attention_forward(o, pr, q, k, v, 2, 1, 2, 2, 1.0f);
  EXPECT_FLOAT_EQ(o[0], 1);
  EXPECT_FLOAT_EQ(o[1], 2);
  // second query: scores (0, 1) -> p = (1/(1+e), e/(1+e))
  double p1 = std::exp(1.0) / (1 + std::exp(1.0));
  EXPECT_NEAR(pr[3], p1, 1e-6);
  EXPECT_NEAR(pr[1], 0.0, 0);
  EXPECT_NEAR(o[2], (1 - p1) * 1 + p1 * 3, 1e-6);
  EXPECT_NEAR(o[3], (1 - p1) * 2 + p1 * 4, 1e-6);
}
