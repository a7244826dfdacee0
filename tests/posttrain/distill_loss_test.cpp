// Logit distillation: alpha = 0 is cross-entropy exactly; the KL is 0 (and its gradient too) for
// a teacher equal to the student; the gradient matches central finite differences of the loss
// computed independently in fp64.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "dseek/ops/cpu/cross_entropy.h"
#include "dseek/posttrain/distill_loss.h"

using namespace dseek;

namespace {

std::vector<float> randn(size_t n, uint32_t seed, float s) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0, s);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

double loss_fp64(const std::vector<double>& s, const std::vector<float>& t, int32_t tgt,
                 double alpha, double tau) {
  const size_t V = s.size();
  auto lsm = [&](auto get, double temp) {
    double mx = -1e300;
    for (size_t v = 0; v < V; v++) mx = std::max(mx, get(v) / temp);
    double z = 0;
    for (size_t v = 0; v < V; v++) z += std::exp(get(v) / temp - mx);
    std::vector<double> o(V);
    for (size_t v = 0; v < V; v++) o[v] = get(v) / temp - mx - std::log(z);
    return o;
  };
  auto S = [&](size_t v) { return s[v]; };
  auto T = [&](size_t v) { return (double)t[v]; };
  std::vector<double> ls = lsm(S, 1.0), lqs = lsm(S, tau), lqt = lsm(T, tau);
  double kl = 0;
  for (size_t v = 0; v < V; v++) kl += std::exp(lqt[v]) * (lqt[v] - lqs[v]);
  return (1 - alpha) * -ls[tgt] + alpha * tau * tau * kl;
}

TEST(DistillLoss, AlphaZeroIsCrossEntropy) {
  const int64_t N = 5, V = 40;
  std::vector<float> s = randn(N * V, 1, 2), t = randn(N * V, 2, 2);
  std::vector<int32_t> tgt = {3, -1, 39, 0, 17};
  std::vector<float> d = s, ce(N * V);
  DistillStats st =
      distill_forward_backward(d.data(), t.data(), tgt.data(), N, V, 0.0f, 1.0f, 0.25f);
  int64_t cnt;
  double ce_sum =
      cross_entropy_forward_backward(ce.data(), s.data(), tgt.data(), N, V, 0.25f, &cnt);
  EXPECT_EQ(st.rows, cnt);
  EXPECT_NEAR(st.ce_sum, ce_sum, 1e-5 * ce_sum);
  for (int64_t i = 0; i < N * V; i++) EXPECT_NEAR(d[i], ce[i], 1e-6) << i;
}

TEST(DistillLoss, SelfTeacherHasZeroKl) {
  const int64_t N = 3, V = 30;
  std::vector<float> s = randn(N * V, 3, 2);
  std::vector<int32_t> tgt = {1, 2, 3};
  std::vector<float> d = s;
  DistillStats st =
      distill_forward_backward(d.data(), s.data(), tgt.data(), N, V, 1.0f, 2.0f, 1.0f);
  EXPECT_NEAR(st.kl_sum, 0.0, 1e-9);
  for (float x : d) EXPECT_NEAR(x, 0.0f, 1e-7);
}

TEST(DistillLoss, GradientMatchesFiniteDifferences) {
  const int64_t V = 17;
  std::vector<float> s = randn(V, 4, 1.5f), t = randn(V, 5, 1.5f);
  const int32_t tgt = 6;
  const float alpha = 0.3f, tau = 2.0f;
  std::vector<float> d = s;
  distill_forward_backward(d.data(), t.data(), &tgt, 1, V, alpha, tau, 1.0f);
  for (int64_t v = 0; v < V; v++) {
    std::vector<double> p(s.begin(), s.end()), m(s.begin(), s.end());
    p[v] += 1e-5;
    m[v] -= 1e-5;
    const double fd = (loss_fp64(p, t, tgt, alpha, tau) - loss_fp64(m, t, tgt, alpha, tau)) / 2e-5;
    EXPECT_NEAR(d[v], fd, 2e-5) << v;
  }
}

}  // namespace
