// Model-level gradient check by finite differences for what the transformers fixtures do not
// cover: MTP modules (depth 2, so the chaining h^1 -> depth 2 is exercised), the MoE balance
// losses (sequence-wise and expert-level) and tied embeddings. For each tensor P, with a random
// direction d, the directional derivative <dL/dP, d> from the backward must match the central
// difference (L(P + e d) - L(P - e d)) / 2e of the full training loss, with routing unchanged
// by the perturbation (checked).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "dseek/model/model_train.h"
#include "model/tiny_model_config.h"

using namespace dseek;

namespace {

ModelConfig tiny_config(bool tied) {
  return dseek_test::tiny_model_config(tied, 2);
}

struct Case {
  Model m;
  std::vector<int32_t> in, tgt;
  TrainOptions opt;
  int64_t B = 2, T = 12;
};

Case make_case(bool tied) {
  Case k;
  k.m = Model::random(tiny_config(tied), 7);
  // larger weights than the 0.02 init so every path carries a visible gradient; not the
  // routers, whose sigmoid would saturate into exact ties (1.0f) that any perturbation flips
  for (ParamRef& p : model_params(k.m.cfg, k.m.w))
    if (p.shape.size() == 2 && p.name.find("mlp.gate.") == std::string::npos)
      for (float& v : p.tensor->data) v *= 8.0f;
  std::mt19937 g(3);
  for (int64_t i = 0; i < k.B * k.T; i++) {
    k.in.push_back((int32_t)(g() % 64));
    k.tgt.push_back(i % k.T == k.T - 1 ? -1 : (int32_t)(g() % 64));
  }
  k.opt.mtp_lambda = 0.5f;
  k.opt.seq_balance_alpha = 0.3f;
  k.opt.aux_balance_alpha = 0.2f;
  return k;
}

double loss_and_loads(Case& k, std::vector<std::vector<int64_t>>* loads) {
  TrainActs a;
  double l = model_train_forward(k.m, k.in.data(), k.tgt.data(), k.B, k.T, a, k.opt);
  if (loads) {
    *loads = a.expert_load;
    for (auto& ma : a.mtp) loads->push_back(ma.block.moe.load);
  }
  return l;
}

void check_tensors(bool tied, const std::vector<std::string>& names) {
  Case k = make_case(tied);
  TrainActs a;
  model_train_forward(k.m, k.in.data(), k.tgt.data(), k.B, k.T, a, k.opt);
  ASSERT_GT(a.balance_loss, 0.0);
  ASSERT_EQ(a.mtp.size(), 2u);
  ModelWeights G;
  weights_allocate(k.m.cfg, G);
  model_train_backward(k.m, a, G);
  std::vector<ParamRef> P = model_params(k.m.cfg, k.m.w), GP = model_params(k.m.cfg, G);
  std::vector<std::vector<int64_t>> base_loads;
  loss_and_loads(k, &base_loads);
  std::mt19937 g(11);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (const std::string& name : names) {
    size_t i = 0;
    while (i < P.size() && P[i].name != name) i++;
    ASSERT_LT(i, P.size()) << "no parameter " << name;
    Tensor& t = *P[i].tensor;
    std::vector<float> d(t.numel());
    for (float& x : d) x = nd(g);
    double analytic = 0;
    for (int64_t j = 0; j < t.numel(); j++) analytic += (double)GP[i].tensor->data[j] * d[j];
    const float eps = 1e-4f;
    std::vector<float> orig = t.data;
    std::vector<std::vector<int64_t>> lp, lm;
    for (int64_t j = 0; j < t.numel(); j++) t.data[j] = orig[j] + eps * d[j];
    double Lp = loss_and_loads(k, &lp);
    for (int64_t j = 0; j < t.numel(); j++) t.data[j] = orig[j] - eps * d[j];
    double Lm = loss_and_loads(k, &lm);
    t.data = orig;
    ASSERT_EQ(lp, base_loads) << name << ": the perturbation changed the routing";
    ASSERT_EQ(lm, base_loads) << name << ": the perturbation changed the routing";
    const double fd = (Lp - Lm) / (2.0 * eps);
    EXPECT_NEAR(analytic, fd, 2e-3 + 1e-2 * std::fabs(fd))
        << name << ": backward " << analytic << " vs finite difference " << fd;
    EXPECT_GT(std::fabs(analytic), 1e-3) << name << " carries no gradient";
  }
}

}  // namespace

TEST(ModelGradFd, MtpModulesAndSharedParts) {
  check_tensors(false,
                {"model.layers.2.eh_proj.weight", "model.layers.2.enorm.weight",
                 "model.layers.2.hnorm.weight", "model.layers.2.shared_head.norm.weight",
                 "model.layers.2.self_attn.kv_b_proj.weight", "model.layers.2.mlp.gate.weight",
                 "model.layers.3.eh_proj.weight", "model.layers.3.hnorm.weight",
                 "model.layers.3.mlp.shared_experts.up_proj.weight", "model.norm.weight",
                 "lm_head.weight", "model.embed_tokens.weight"});
}

TEST(ModelGradFd, BalanceLossesReachTheRouter) {
  check_tensors(
      false, {"model.layers.1.mlp.gate.weight", "model.layers.1.post_attention_layernorm.weight"});
}

TEST(ModelGradFd, TiedEmbeddings) {
  check_tensors(true, {"model.embed_tokens.weight", "model.layers.2.eh_proj.weight"});
}
