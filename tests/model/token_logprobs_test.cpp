// token_logprobs against a naive fp64 log-softmax, its backward against finite differences, and
// the model's deferred head gradient: writing dlogp = -1/n into acts.dlogits must give exactly
// the gradients of the default mean cross-entropy (and run_mtp = false must drop only MTP).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "dseek/model/model_train.h"
#include "dseek/ops/cpu/token_logprobs.h"
#include "model/tiny_model_config.h"

using namespace dseek;

namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

double naive_logp(const float* l, int64_t V, int32_t t, double* entropy) {
  double mx = l[0];
  for (int64_t v = 0; v < V; v++) mx = std::max(mx, (double)l[v]);
  double s = 0;
  for (int64_t v = 0; v < V; v++) s += std::exp(l[v] - mx);
  const double lse = mx + std::log(s);
  double h = 0;
  for (int64_t v = 0; v < V; v++) {
    const double lp = l[v] - lse;
    h -= std::exp(lp) * lp;
  }
  *entropy = h;
  return l[t] - lse;
}

TEST(TokenLogprobs, MatchesNaiveFp64) {
  const int64_t N = 37, V = 301;
  std::vector<float> logits = randn(N * V, 1, 3.0f);
  std::vector<int32_t> tgt(N);
  for (int64_t n = 0; n < N; n++) tgt[n] = n % 5 == 3 ? -1 : (int32_t)((n * 97) % V);
  std::vector<float> lp(N, NAN), ent(N, NAN);
  token_logprobs(lp.data(), ent.data(), logits.data(), tgt.data(), N, V);
  for (int64_t n = 0; n < N; n++) {
    if (tgt[n] < 0) {
      EXPECT_EQ(lp[n], 0.0f);
      EXPECT_EQ(ent[n], 0.0f);
      continue;
    }
    double h;
    const double ref = naive_logp(logits.data() + n * V, V, tgt[n], &h);
    EXPECT_NEAR(lp[n], ref, 2e-5 * std::max(1.0, std::fabs(ref))) << n;
    EXPECT_NEAR(ent[n], h, 2e-5 * std::max(1.0, h)) << n;
  }
}

TEST(TokenLogprobs, BackwardMatchesFiniteDifferences) {
  // loss = sum_n g_n logp_n; d loss / d logits by central differences in fp64
  const int64_t N = 4, V = 23;
  std::vector<float> logits = randn(N * V, 2, 1.5f), g = randn(N, 3, 1.0f);
  std::vector<int32_t> tgt = {3, -1, 22, 0};
  std::vector<float> d = logits;
  token_logprobs_backward(d.data(), tgt.data(), g.data(), N, V);
  for (int64_t n = 0; n < N; n++)
    for (int64_t v = 0; v < V; v++) {
      auto loss = [&](double delta) {
        std::vector<float> l(logits.begin() + n * V, logits.begin() + (n + 1) * V);
        double h;
        std::vector<double> ld(l.begin(), l.end());
        ld[v] += delta;
        double mx = ld[0];
        for (double x : ld) mx = std::max(mx, x);
        double s = 0;
        for (double x : ld) s += std::exp(x - mx);
        (void)h;
        return tgt[n] < 0 ? 0.0 : g[n] * (ld[tgt[n]] - mx - std::log(s));
      };
      const double fd = (loss(1e-4) - loss(-1e-4)) / 2e-4;
      EXPECT_NEAR(d[n * V + v], fd, 1e-5) << n << "," << v;
    }
}

ModelConfig tiny_config() {
  return dseek_test::tiny_model_config(false, 1);
}

TEST(TokenLogprobs, DeferredHeadGradEqualsMeanCrossEntropy) {
  Model m = Model::random(tiny_config(), 11);
  const int64_t B = 2, T = 9, N = B * T;
  std::vector<int32_t> in(N), tgt(N);
  for (int64_t i = 0; i < N; i++) {
    in[i] = (int32_t)((i * 7 + 3) % 64);
    tgt[i] = i % 4 == 0 ? -1 : (int32_t)((i * 5 + 1) % 64);
  }
  TrainOptions base;
  base.run_mtp = false;
  TrainActs a;
  ModelWeights g1, g2;
  weights_allocate(m.cfg, g1);
  weights_allocate(m.cfg, g2);
  const double loss = model_train_forward(m, in.data(), tgt.data(), B, T, a, base);
  EXPECT_TRUE(a.mtp.empty());
  model_train_backward(m, a, g1);

  TrainOptions def = base;
  def.defer_head_grad = true;
  TrainActs b;
  const double loss2 = model_train_forward(m, in.data(), tgt.data(), B, T, b, def);
  EXPECT_NEAR(loss, loss2, 1e-6 * std::fabs(loss));
  ASSERT_EQ(b.token_logp.size(), (size_t)N);
  int64_t n = 0;
  double sum = 0;
  for (int64_t i = 0; i < N; i++)
    if (tgt[i] >= 0) {
      n++;
      sum -= b.token_logp[i];
    }
  EXPECT_NEAR(sum / n, b.ce_loss, 1e-9);
  std::vector<float> dlogp(N, -1.0f / (float)n);  // d(mean CE)/dlogp
  token_logprobs_backward(b.dlogits.data(), tgt.data(), dlogp.data(), N, m.cfg.vocab_size);
  model_train_backward(m, b, g2);
  std::vector<ParamRef> p1 = model_params(m.cfg, g1), p2 = model_params(m.cfg, g2);
  int compared = 0;
  for (size_t i = 0; i < p1.size(); i++) {
    const bool mtp = p1[i].name.find("layers.2.") != std::string::npos;  // the MTP module
    double mx = 0, err = 0;
    for (size_t k = 0; k < p1[i].tensor->data.size(); k++) {
      mx = std::max(mx, (double)std::fabs(p1[i].tensor->data[k]));
      err = std::max(err, (double)std::fabs(p1[i].tensor->data[k] - p2[i].tensor->data[k]));
    }
    if (mtp) {
      EXPECT_EQ(mx, 0.0) << p1[i].name << " (MTP skipped: no gradient)";
      continue;
    }
    EXPECT_LE(err, 1e-5 * std::max(mx, 1e-6)) << p1[i].name;
    compared += mx > 0;
  }
  EXPECT_GT(compared, 10);
}

// With head_temperature T the deferred logits are logits / T, and (1/T) x the gradient w.r.t.
// them, fed back, equals the gradient of the tempered mean CE: compared against the default
// path on a model whose head is scaled by 1/T (same function of the weights).
TEST(TokenLogprobs, DeferredHeadTemperature) {
  Model m = Model::random(tiny_config(), 12);
  const int64_t B = 1, T = 7, N = B * T;
  std::vector<int32_t> in(N), tgt(N);
  for (int64_t i = 0; i < N; i++) {
    in[i] = (int32_t)((i * 11 + 2) % 64);
    tgt[i] = (int32_t)((i * 3 + 5) % 64);
  }
  const float temp = 0.7f;
  TrainOptions o;
  o.run_mtp = false;
  o.defer_head_grad = true;
  o.head_temperature = temp;
  TrainActs a;
  model_train_forward(m, in.data(), tgt.data(), B, T, a, o);
  Model ms = m;  // head / T
  for (float& x : ms.w.lm_head.data) x /= temp;
  TrainOptions plain;
  plain.run_mtp = false;
  TrainActs b;
  model_train_forward(ms, in.data(), tgt.data(), B, T, b, plain);
  EXPECT_NEAR(a.ce_loss, b.ce_loss, 1e-5 * b.ce_loss);
  std::vector<float> dlogp(N, -1.0f / (float)N / temp);
  token_logprobs_backward(a.dlogits.data(), tgt.data(), dlogp.data(), N, m.cfg.vocab_size);
  ModelWeights g1, g2;
  weights_allocate(m.cfg, g1);
  weights_allocate(m.cfg, g2);
  model_train_backward(m, a, g1);
  model_train_backward(ms, b, g2);
  // the embedding gradient flows through the head only via hidden states, which agree
  const std::vector<float>& e1 = g1.embed.data;
  const std::vector<float>& e2 = g2.embed.data;
  double mx = 0, err = 0;
  for (size_t k = 0; k < e1.size(); k++) {
    mx = std::max(mx, (double)std::fabs(e2[k]));
    err = std::max(err, (double)std::fabs(e1[k] - e2[k]));
  }
  EXPECT_GT(mx, 0.0);
  EXPECT_LE(err, 1e-4 * mx);
}

}  // namespace
