// The whole model's training step on the GPU (model/gpu_model.h) against the CPU backend
// (model/model_train.h, train/adamw.h), on the same weights (the CPU model holds the bf16-rounded
// weights the GPU's GEMMs read, so only the arithmetic differs).
//
// Tolerances. Every GPU activation is stored in bf16 (one rounding: 2^-9 relative) and every
// activation gradient too, while the CPU keeps fp32 throughout; a whole model chains ~20 such
// roundings per layer forward and backward, and the MoE layer alone measured 3-4e-3 normwise
// against the fp32 CPU (docs/cuda_ops.md). So, normwise per tensor:
//  - the loss: |gpu - cpu| <= 2e-3 * cpu (the CE is fp32 over bf16 logits inputs);
//  - every parameter gradient: ||g_gpu - g_cpu|| / ||g_cpu|| < 2e-2 (about 5x the single-layer
//    error, for the depth). This needs the same expert choices on both sides: a token whose
//    k-th and (k+1)-th expert scores differ by less than the bf16 noise of the router input picks
//    another expert on the GPU, and with init-scale weights one expert's output is a sizeable part
//    of that token's hidden state, so a few flips move every gradient by several percent
//    (measured: 18 flips of 3072 choices gave 4-6e-2 on all tensors of the tiny model). The
//    strict cases therefore make the routing decisive (decisive_routing below: the router rows
//    are unit directions u_e, each token's embedding is the sum of the directions of K experts
//    spread over topk_group groups, the MTP eh_proj passes the embedding half through), check
//    that the expert loads agree exactly, and then hold every tensor to 2e-2. A third case keeps
//    random routing (and tied embeddings) and only bounds the median error, printing the flips.
//  - AdamW: applied to the GPU's own gradients on both sides, the weights must agree to 1e-6
//    relative (the kernels match the CPU bit for bit in tests/cuda/adamw_test.cpp; only the clip
//    factor, computed from an fp64 norm in another order, can differ in the last bit).
//  - 200 training steps of the tiny recipe's model on a synthetic bigram corpus (each token has
//    4 possible successors: entropy ln 4): mean |loss_gpu - loss_cpu| over the last 50 steps
//    < 0.05, and both curves fall by more than 2 nats.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cuda_test_util.h"
#include "dseek/core/dtype.h"
#include "dseek/model/gpu_model.h"
#include "dseek/model/model_train.h"
#include "dseek/train/adamw.h"
#include "dseek/ops/cpu/moe_balance_loss.h"
#include "dseek/train/bias_balancing.h"

#ifdef DSEEK_HAVE_CUDA
#include "dseek/model/gpu_model_kernels.h"  // moe_balance_loss_gpu
#endif

using namespace dseek;

namespace {

ModelConfig small_config(bool tied) {
  nlohmann::json j = {{"model_type", "deepseek_v3"},
                      {"vocab_size", 512},
                      {"hidden_size", 64},
                      {"intermediate_size", 64},
                      {"moe_intermediate_size", 16},
                      {"num_hidden_layers", 2},
                      {"num_attention_heads", 2},
                      {"n_shared_experts", 1},
                      {"n_routed_experts", 8},
                      {"routed_scaling_factor", 2.5},
                      {"kv_lora_rank", 32},
                      {"q_lora_rank", 48},
                      {"qk_rope_head_dim", 16},
                      {"v_head_dim", 32},
                      {"qk_nope_head_dim", 32},
                      {"n_group", 4},
                      {"topk_group", 2},
                      {"num_experts_per_tok", 2},
                      {"first_k_dense_replace", 1},
                      {"norm_topk_prob", true},
                      {"tie_word_embeddings", tied}};
  ModelConfig c = ModelConfig::from_json(j);
  c.mtp_depth = 2;
  return c;
}

// The tiny recipe's model (recipes/tiny.json) with a 4096-token vocabulary.
ModelConfig tiny_recipe_config(nlohmann::json* recipe = nullptr) {
  std::ifstream f(std::string(DSEEK_SOURCE_DIR) + "/recipes/tiny.json");
  nlohmann::json r = nlohmann::json::parse(f);
  r["model"]["vocab_size"] = 4096;
  ModelConfig c = ModelConfig::from_json(r["model"]);
  c.mtp_depth = r["mtp"]["depth"].get<int64_t>();
  if (recipe) *recipe = r;
  return c;
}

void decisive_routing(Model& m, uint64_t seed);

// Random weights rounded to bf16 (what the GPU computes with), router biases small and random.
Model bf16_model(const ModelConfig& c, uint64_t seed, bool decisive) {
  Model m = Model::random(c, seed);
  if (decisive) decisive_routing(m, seed + 3);
  std::mt19937_64 rng(seed + 7);
  std::uniform_real_distribution<float> u(-0.02f, 0.02f);
  for (ParamRef& p : model_params(m.cfg, m.w)) {
    if (!p.trainable)
      for (float& x : p.tensor->data) x = u(rng);
    for (float& x : p.tensor->data) x = bf16_to_f32(f32_to_bf16(x));
  }
  return m;
}

// Decisive routing (see the top of the file): router rows 0.3 u_e, embedding rows
// sqrt(C/K) sum_{e in S_v} u_e (+ the random init), S_v = K experts from topk_group groups;
// MTP eh_proj = [I | random]. Chosen logits ~2, the others ~0 +- 0.3: no bf16 noise flips them.
void decisive_routing(Model& m, uint64_t seed) {
  const ModelConfig& c = m.cfg;
  const int64_t C = c.hidden_size, E = c.n_routed_experts, K = c.num_experts_per_tok;
  const int64_t G = c.n_group, per = E / G, tg = c.topk_group;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> u(E * C);
  for (int64_t e = 0; e < E; e++) {
    double n2 = 0;
    for (int64_t j = 0; j < C; j++) n2 += (double)(u[e * C + j] = nd(rng)) * u[e * C + j];
    for (int64_t j = 0; j < C; j++) u[e * C + j] /= (float)std::sqrt(n2);
  }
  auto set_router = [&](LayerWeights& L) {
    if (L.router.empty()) return;
    for (int64_t i = 0; i < E * C; i++) L.router.data[i] = 0.3f * u[i];
  };
  for (LayerWeights& L : m.w.layers) set_router(L);
  for (MtpWeights& M : m.w.mtp) {
    set_router(M.block);
    for (int64_t i = 0; i < C; i++)
      for (int64_t j = 0; j < C; j++) M.eh_proj.data[i * 2 * C + j] = i == j ? 1.0f : 0.0f;
  }
  const float sc = std::sqrt((float)C / (float)K);
  for (int64_t v = 0; v < c.vocab_size; v++) {
    std::vector<int64_t> groups(G), chosen;
    for (int64_t g = 0; g < G; g++) groups[g] = g;
    std::shuffle(groups.begin(), groups.end(), rng);
    for (int64_t k = 0; k < K; k++) {  // K / tg experts from each of tg groups (K % tg == 0)
      const int64_t g = groups[k % tg];
      int64_t e;
      do e = g * per + (int64_t)(rng() % per);
      while (std::find(chosen.begin(), chosen.end(), e) != chosen.end());
      chosen.push_back(e);
    }
    float* row = m.w.embed.ptr() + v * C;
    for (int64_t e : chosen)
      for (int64_t j = 0; j < C; j++) row[j] += sc * u[e * C + j];
  }
}

void random_tokens(std::vector<int32_t>& in, std::vector<int32_t>& tgt, int64_t B, int64_t T,
                   int64_t V, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> seq(B * (T + 1));
  for (auto& x : seq) x = (int32_t)(rng() % V);
  in.resize(B * T);
  tgt.resize(B * T);
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < T; t++) {
      in[b * T + t] = seq[b * (T + 1) + t];
      tgt[b * T + t] = seq[b * (T + 1) + t + 1];
    }
  tgt[3] = -1;  // an ignored target
}

double rel_l2(const std::vector<float>& g, const std::vector<float>& r) {
  double num = 0, den = 0;
  for (size_t i = 0; i < g.size(); i++) {
    num += ((double)g[i] - r[i]) * ((double)g[i] - r[i]);
    den += (double)r[i] * r[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

bool is_routed_expert(const std::string& name) {
  return name.find("mlp.experts.") != std::string::npos;
}

// Loss and every gradient, GPU vs CPU; returns nothing, EXPECTs inside.
void compare_step(const char* label, const ModelConfig& cfg, int64_t B, int64_t T,
                  const TrainOptions& opt, bool decisive, bool also_adamw) {
  Model m = bf16_model(cfg, 11, decisive);
  std::vector<int32_t> in, tgt;
  random_tokens(in, tgt, B, T, cfg.vocab_size, 5);

  TrainActs acts;
  const double loss_cpu = model_train_forward(m, in.data(), tgt.data(), B, T, acts, opt);
  ModelWeights gc;
  weights_allocate(m.cfg, gc);
  model_train_backward(m, acts, gc);

  GpuModel gm(m, B, T);
  gm.zero_grads();
  const GpuStepStats s = gm.forward_backward(in.data(), tgt.data(), opt);
  ModelWeights gg;
  gm.download_grads(gg);

  std::printf(
      "[%s] loss gpu %.6f cpu %.6f (ce %.6f / %.6f, mtp %.6f / %.6f, balance %.3e / %.3e)\n", label,
      s.loss, loss_cpu, s.ce_loss, acts.ce_loss, s.mtp_loss_total, acts.mtp_loss_total,
      s.balance_loss, acts.balance_loss);
  EXPECT_NEAR(s.loss, loss_cpu, 2e-3 * std::fabs(loss_cpu)) << label;
  EXPECT_NEAR(s.balance_loss, acts.balance_loss, 2e-2 * std::fabs(acts.balance_loss) + 1e-9);
  int64_t load_diff = 0;
  for (size_t l = 0; l < acts.expert_load.size(); l++) {
    ASSERT_EQ(s.expert_load[l].size(), acts.expert_load[l].size());
    for (size_t e = 0; e < acts.expert_load[l].size(); e++)
      load_diff += std::llabs(s.expert_load[l][e] - acts.expert_load[l][e]);
  }
  std::printf("[%s] expert loads: sum |gpu - cpu| over main layers = %ld (of %ld choices)\n", label,
              (long)load_diff,
              (long)(B * T * cfg.num_experts_per_tok *
                     (cfg.num_hidden_layers - cfg.first_k_dense_replace)));
  if (decisive) {
    EXPECT_EQ(load_diff, 0) << label << ": routing should agree exactly";
  }
  const double tol = decisive ? 2e-2 : 0.5, tol_exp = decisive ? 2e-2 : 1.0,
               tol_med = decisive ? 2e-2 : 5e-2;

  std::vector<ParamRef> pc = model_params(m.cfg, gc), pg = model_params(m.cfg, gg);
  ASSERT_EQ(pc.size(), pg.size());
  double worst = 0, worst_exp = 0;
  std::string worst_name, worst_exp_name;
  std::vector<double> exp_errs;
  for (size_t i = 0; i < pc.size(); i++) {
    if (!pc[i].trainable) continue;
    const double e = rel_l2(pg[i].tensor->data, pc[i].tensor->data);
    if (is_routed_expert(pc[i].name)) {
      exp_errs.push_back(e);
      if (e > worst_exp) worst_exp = e, worst_exp_name = pc[i].name;
      EXPECT_LT(e, tol_exp) << label << " " << pc[i].name;
    } else {
      if (e > worst) worst = e, worst_name = pc[i].name;
      EXPECT_LT(e, tol) << label << " " << pc[i].name;
    }
    if (!std::isfinite(e)) ADD_FAILURE() << pc[i].name << " non-finite";
  }
  double med = 0;
  if (!exp_errs.empty()) {
    std::sort(exp_errs.begin(), exp_errs.end());
    med = exp_errs[exp_errs.size() / 2];
    EXPECT_LT(med, tol_med) << label << " median routed-expert gradient error";
  }
  std::printf(
      "[%s] gradients (rel L2 per tensor): worst non-expert %.3e (%s); routed experts "
      "worst %.3e (%s), median %.3e over %zu tensors\n",
      label, worst, worst_name.c_str(), worst_exp, worst_exp_name.c_str(), med, exp_errs.size());

  if (!also_adamw) return;
  // (b) one AdamW step (clip 1.0, lr 1e-3) on the GPU's own gradients, on both sides
  Model mc = m;
  AdamW adam(model_params(mc.cfg, mc.w), AdamWConfig{});
  std::vector<ParamRef> gpr = model_params(m.cfg, gg);
  const float norm_cpu = clip_grad_norm(gpr, 1.0f);
  adam.step(gpr, 1e-3f);
  const double norm_gpu = gm.clip_and_step(1e-3f, 1.0f);
  EXPECT_NEAR(norm_gpu, norm_cpu, 1e-5 * norm_cpu);
  ModelWeights wg;
  gm.download_weights(wg);
  std::vector<ParamRef> a = model_params(m.cfg, wg), b = model_params(mc.cfg, mc.w),
                        w0 = model_params(m.cfg, m.w);
  double worst_w = 0, worst_d = 0;
  for (size_t i = 0; i < a.size(); i++) {
    worst_w = std::max(worst_w, rel_l2(a[i].tensor->data, b[i].tensor->data));
    if (!b[i].trainable) continue;
    std::vector<float> d1(a[i].tensor->numel()), d2(d1.size());
    for (size_t j = 0; j < d1.size(); j++) {
      d1[j] = a[i].tensor->data[j] - w0[i].tensor->data[j];
      d2[j] = b[i].tensor->data[j] - w0[i].tensor->data[j];
    }
    worst_d = std::max(worst_d, rel_l2(d1, d2));
  }
  std::printf(
      "[%s] AdamW: grad norm gpu %.7g cpu %.7g; weights worst rel L2 %.3e, updates worst "
      "rel L2 %.3e\n",
      label, norm_gpu, (double)norm_cpu, worst_w, worst_d);
  EXPECT_LT(worst_w, 1e-6);
  EXPECT_LT(worst_d, 1e-3);
  // the AdamW moments, and their round trip (checkpoint / resume)
  ModelWeights am, av;
  gm.download_adam_state(am, av);
  std::vector<ParamRef> pm = model_params(m.cfg, am), pv = model_params(m.cfg, av);
  double worst_m = 0;
  for (size_t i = 0; i < pm.size(); i++) {
    if (!b[i].trainable) continue;
    worst_m = std::max(worst_m, rel_l2(pm[i].tensor->data, adam.exp_avg(i).data));
    worst_m = std::max(worst_m, rel_l2(pv[i].tensor->data, adam.exp_avg_sq(i).data));
  }
  EXPECT_LT(worst_m, 1e-6) << label << " AdamW moments";
  gm.upload_adam_state(am, av, gm.adam_step_count());
  ModelWeights am2, av2;
  gm.download_adam_state(am2, av2);
  std::vector<ParamRef> pm2 = model_params(m.cfg, am2);
  for (size_t i = 0; i < pm.size(); i++) EXPECT_EQ(pm2[i].tensor->data, pm[i].tensor->data);
  // the next step's loss on the updated weights (GPU bf16 copy written by the AdamW kernel)
  gm.zero_grads();
  const GpuStepStats s2 = gm.forward_backward(in.data(), tgt.data(), opt);
  Model mcr = mc;  // the CPU on the same updated weights, rounded to bf16 as the GPU reads them
  for (ParamRef& p : model_params(mcr.cfg, mcr.w))
    for (float& x : p.tensor->data) x = bf16_to_f32(f32_to_bf16(x));
  TrainActs acts2;
  const double l2 = model_train_forward(mcr, in.data(), tgt.data(), B, T, acts2, opt);
  std::printf("[%s] after the step: loss gpu %.6f cpu %.6f\n", label, s2.loss, l2);
  EXPECT_NEAR(s2.loss, l2, 2e-3 * std::fabs(l2));
}

}  // namespace

TEST(CudaGpuModel, SmallModelLossAndGradsMatchCpu) {
  DSEEK_REQUIRE_CUDA();
  TrainOptions o;
  o.mtp_lambda = 0.3f;
  o.seq_balance_alpha = 0.01f;
  o.aux_balance_alpha = 0.01f;
  o.loss_scale = 0.5f;
  compare_step("small MTP2 decisive", small_config(false), 2, 40, o, true, true);
}

// Random routing (a few expert choices flip between the backends) and tied embeddings: the
// loss, AdamW and the median gradient error are checked; the flips are printed.
TEST(CudaGpuModel, SmallTiedRandomRoutingCloseToCpu) {
  DSEEK_REQUIRE_CUDA();
  TrainOptions o;
  o.mtp_lambda = 0.3f;
  o.seq_balance_alpha = 0.01f;
  o.aux_balance_alpha = 0.01f;
  compare_step("small tied MTP2 random routing", small_config(true), 2, 40, o, false, true);
}

TEST(CudaGpuModel, TinyRecipeLossAndGradsMatchCpu) {
  DSEEK_REQUIRE_CUDA();
  nlohmann::json r;
  const ModelConfig c = tiny_recipe_config(&r);
  TrainOptions o;
  o.mtp_lambda = r["mtp"]["lambda"].get<float>();
  o.seq_balance_alpha = r["balance"]["seq_alpha"].get<float>();
  compare_step("tiny recipe decisive", c, 4, 64, o, true, true);
}

// 200 steps of the tiny recipe's model on both backends, same data, same optimizer.
TEST(CudaGpuModel, TinyRecipe200StepsFollowCpu) {
  DSEEK_REQUIRE_CUDA();
  nlohmann::json r;
  const ModelConfig c = tiny_recipe_config(&r);
  const int64_t B = r["batch_size"].get<int64_t>(), T = r["seq_len"].get<int64_t>(),
                V = c.vocab_size;
  const int steps = 200;
  const float max_lr = r["lr"]["max_lr"].get<float>(), clip = r["grad_clip"].get<float>();
  const float gamma = r["balance"]["bias_update_speed"].get<float>();
  const int warm = r["lr"]["warmup_steps"].get<int>();
  TrainOptions o;
  o.mtp_lambda = r["mtp"]["lambda"].get<float>();
  o.seq_balance_alpha = r["balance"]["seq_alpha"].get<float>();

  // synthetic corpus: a fixed random successor table, 4 successors per token
  std::mt19937_64 trng(123);
  std::vector<int32_t> succ(V * 4);
  for (auto& x : succ) x = (int32_t)(trng() % V);
  auto batch = [&](int step, std::vector<int32_t>& in, std::vector<int32_t>& tgt) {
    std::mt19937_64 rng(1000 + step);
    in.resize(B * T);
    tgt.resize(B * T);
    for (int64_t b = 0; b < B; b++) {
      int32_t t = (int32_t)(rng() % V);
      for (int64_t i = 0; i <= T; i++) {
        if (i < T) in[b * T + i] = t;
        if (i > 0) tgt[b * T + i - 1] = t;
        t = succ[t * 4 + rng() % 4];
      }
    }
  };
  auto lr_at = [&](int step) { return max_lr * std::min(1.0f, (float)(step + 1) / (float)warm); };

  Model mc = Model::random(c, 3);
  Model mg = mc;  // host copy whose router biases follow the GPU's loads
  GpuModel gm(
      mg, B, T,
      GpuAdamW{r["optimizer"]["beta1"].get<float>(), r["optimizer"]["beta2"].get<float>(),
               r["optimizer"]["eps"].get<float>(), r["optimizer"]["weight_decay"].get<float>()});
  AdamW adam(model_params(mc.cfg, mc.w),
             AdamWConfig{.lr = max_lr,
                         .beta1 = r["optimizer"]["beta1"].get<float>(),
                         .beta2 = r["optimizer"]["beta2"].get<float>(),
                         .eps = r["optimizer"]["eps"].get<float>(),
                         .weight_decay = r["optimizer"]["weight_decay"].get<float>()});
  ModelWeights G;
  weights_allocate(mc.cfg, G);
  std::vector<ParamRef> grads = model_params(mc.cfg, G);
  std::vector<double> lg(steps), lc(steps);
  std::vector<int32_t> in, tgt;
  TrainActs acts;
  double t_gpu = 0, t_cpu = 0;
  for (int s = 0; s < steps; s++) {
    batch(s, in, tgt);
    auto t0 = std::chrono::steady_clock::now();
    gm.zero_grads();
    const GpuStepStats st = gm.forward_backward(in.data(), tgt.data(), o);
    gm.clip_and_step(lr_at(s), clip);
    bias_balance_update(mg.w, mg.cfg, st.expert_load, gamma);
    gm.upload_router_biases(mg.w);
    gm.synchronize();
    auto t1 = std::chrono::steady_clock::now();
    lg[s] = st.ce_loss;
    for (ParamRef& g : grads) std::fill(g.tensor->data.begin(), g.tensor->data.end(), 0.0f);
    model_train_forward(mc, in.data(), tgt.data(), B, T, acts, o);
    model_train_backward(mc, acts, G);
    clip_grad_norm(grads, clip);
    adam.step(grads, lr_at(s));
    bias_balance_update(mc.w, mc.cfg, acts.expert_load, gamma);
    auto t2 = std::chrono::steady_clock::now();
    lc[s] = acts.ce_loss;
    t_gpu += std::chrono::duration<double>(t1 - t0).count();
    t_cpu += std::chrono::duration<double>(t2 - t1).count();
    if (s % 20 == 0 || s == steps - 1)
      std::printf("step %3d  loss gpu %.4f  cpu %.4f\n", s, lg[s], lc[s]);
  }
  double diff = 0, first_g = 0, first_c = 0, last_g = 0, last_c = 0;
  for (int s = steps - 50; s < steps; s++) diff += std::fabs(lg[s] - lc[s]) / 50;
  for (int s = 0; s < 10; s++) first_g += lg[s] / 10, first_c += lc[s] / 10;
  for (int s = steps - 10; s < steps; s++) last_g += lg[s] / 10, last_c += lc[s] / 10;
  std::printf(
      "200 steps: mean |gpu - cpu| over the last 50 = %.4f; first 10 mean gpu %.3f cpu "
      "%.3f, last 10 mean gpu %.3f cpu %.3f; time gpu %.1f s, cpu %.1f s\n",
      diff, first_g, first_c, last_g, last_c, t_gpu, t_cpu);
  EXPECT_LT(diff, 0.05);
  EXPECT_GT(first_g - last_g, 2.0);
  EXPECT_GT(first_c - last_c, 2.0);
}

// evaluate(): the main head's loss of forward_backward, without touching the gradients.
TEST(CudaGpuModel, EvaluateIsTheForwardsLossAndLeavesGradientsAlone) {
  DSEEK_REQUIRE_CUDA();
  const ModelConfig c = small_config(false);
  Model m = bf16_model(c, 21, false);
  const int64_t B = 2, T = 40;
  std::vector<int32_t> in, tgt;
  random_tokens(in, tgt, B, T, c.vocab_size, 9);
  for (int64_t t = 0; t < T; t++) tgt[T + t] = -1;  // a padding row, as the trainer's eval uses
  GpuModel gm(m, B, T);
  TrainOptions o;
  o.mtp_lambda = 0.3f;
  o.seq_balance_alpha = 0.01f;
  gm.zero_grads();
  const GpuStepStats fb = gm.forward_backward(in.data(), tgt.data(), o);
  ModelWeights g0, g1;
  gm.download_grads(g0);
  const GpuStepStats ev = gm.evaluate(in.data(), tgt.data());
  gm.download_grads(g1);
  std::printf("evaluate ce %.9g, forward_backward ce %.9g over %ld targets\n", ev.ce_loss,
              fb.ce_loss, (long)ev.n_targets);
  EXPECT_EQ(ev.ce_loss, fb.ce_loss);
  EXPECT_EQ(ev.n_targets, T - 1);  // row 0 minus the ignored target 3
  EXPECT_TRUE(ev.mtp_loss.empty());
  std::vector<ParamRef> p0 = model_params(c, g0), p1 = model_params(c, g1);
  for (size_t i = 0; i < p0.size(); i++) EXPECT_EQ(p0[i].tensor->data, p1[i].tensor->data);
  // and the CPU's loss on the same (bf16) weights
  TrainActs acts;
  model_train_forward(m, in.data(), tgt.data(), B, T, acts, TrainOptions{.run_mtp = false});
  EXPECT_NEAR(ev.ce_loss, acts.ce_loss, 2e-3 * acts.ce_loss);
}

// The balance-loss kernels (model/gpu_model_kernels.h) against ops/cpu/moe_balance_loss on random
// scores: sigmoid and softmax routers, the sequence-wise (group = one sequence of 100 tokens, so
// the 64-token chunks end inside a group) and the expert-level loss (one group of all tokens),
// E = 48 (not a multiple of the warp). Both sides compute in fp64: the loss to 1e-12 relative,
// dlogits (fp32, added to random values) to 1e-6.
TEST(CudaGpuModel, BalanceLossKernelsMatchCpu) {
#ifndef DSEEK_HAVE_CUDA
  GTEST_SKIP() << "no CUDA device: this build has no CUDA backend (test skipped)";
#else
  DSEEK_REQUIRE_CUDA();
  const int64_t T = 100, nseq = 3, N = T * nseq, E = 48, K = 6;
  const float alpha = 0.01f;
  std::mt19937_64 rng(17);
  for (const bool sigmoid : {true, false}) {
    std::vector<float> sc(N * E);
    std::uniform_real_distribution<float> u(0.01f, 0.99f);
    for (int64_t t = 0; t < N; t++) {
      double sum = 0;
      for (int64_t e = 0; e < E; e++) sum += sc[t * E + e] = u(rng);
      if (!sigmoid)
        for (int64_t e = 0; e < E; e++) sc[t * E + e] = (float)(sc[t * E + e] / sum);
    }
    std::vector<int32_t> idx(N * K), perm(E);
    for (int64_t t = 0; t < N; t++) {
      for (int64_t e = 0; e < E; e++) perm[e] = (int32_t)e;
      std::shuffle(perm.begin(), perm.end(), rng);
      for (int64_t k = 0; k < K; k++) idx[t * K + k] = perm[k];
    }
    std::vector<float> d0(N * E);
    std::uniform_real_distribution<float> ud(-1e-5f, 1e-5f);
    for (float& x : d0) x = ud(rng);
    for (const int64_t group_T : {T, N}) {
      std::vector<float> ref = d0;
      const double l_cpu =
          moe_balance_loss(ref.data(), sc.data(), idx.data(), N, E, K, group_T, sigmoid, alpha);
      const int64_t ng = N / group_T;
      DeviceBuffer<float> d_sc(sc), d_dl(d0);
      DeviceBuffer<int32_t> d_idx(idx);
      DeviceBuffer<double> d_gl(ng), d_scr(cuda::moe_balance_scratch_elems(N, E));
      cuda::moe_balance_loss_gpu(d_gl.get(), d_dl.get(), d_sc.get(), d_idx.get(), N, E, K, group_T,
                                 sigmoid, alpha, d_scr.get(), nullptr);
      test::device_sync();
      double l_gpu = 0;
      for (double g : d_gl.download()) l_gpu += alpha * g / (double)ng;
      const std::string what =
          fmt::format("{} group_T {}", sigmoid ? "sigmoid" : "softmax", group_T);
      std::printf("[balance %s] loss gpu %.15g cpu %.15g\n", what.c_str(), l_gpu, l_cpu);
      EXPECT_NEAR(l_gpu, l_cpu, 1e-12 * std::fabs(l_cpu)) << what;
      test::expect_close(what + " dlogits", d_dl.download(), ref, 1e-6, 1e-12, 1e-6);
    }
  }
#endif
}
