// MTP speculative decoding (infer/speculative.h, infer/mtp_draft.h):
//   - Model::forward_cached with hn_out gives the same logits bit for bit;
//   - greedy: speculative output equals plain generate() and transformers' generate on the
//     fixtures (their main weights; the fixtures ship no MTP tensors, so a seeded random MTP
//     module is added: its drafts are mostly wrong, and the test would fail if they were emitted
//     unverified), and on a tiny model with MTP trained here for a few seconds (drafts mostly
//     right: the accept / roll-back path), for 1..3 drafts per step, with stop ids and the
//     final cache length as generate() leaves them;
//   - the acceptance rule on a fine grid of u gives exactly p;
//   - sampling: chi-square of the first three tokens of many seeded runs against the main
//     model's own probabilities (computed by the full, uncached forward), with a power check
//     that the draft chain's distribution (what skipping verification would give) fails it.
#include "dseek/infer/speculative.h"

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "dseek/core/error.h"
#include "dseek/core/rng.h"
#include "dseek/infer/mtp_draft.h"
#include "dseek/io/safetensors.h"
#include "dseek/model/model_train.h"
#include "dseek/train/adamw.h"
#include "model/tiny_model_config.h"

namespace dseek {
namespace {

// ---------------------------------------------------------------------------------------------
// helpers

std::string fixture(const std::string& name) {
  return std::string(DSEEK_FIXTURES) + "/" + name;
}

// A fixture's main weights plus a seeded random MTP module (the fixtures ship none).
Model fixture_with_mtp(const std::string& name, uint64_t seed) {
  Model m = Model::load(fixture(name));
  ModelConfig c = m.cfg;
  c.mtp_depth = 1;
  Model r = Model::random(c, seed);
  m.cfg.mtp_depth = 1;
  m.w.mtp = r.w.mtp;
  return m;
}

std::vector<int32_t> run(const Model& m, const std::vector<int32_t>& prompt, int64_t n,
                         SamplerConfig s, int64_t drafts, GenerateStats* st = nullptr,
                         std::vector<int32_t> stop = {}, int64_t* cache_len = nullptr) {
  LatentCache cache = m.new_cache();
  GenerateOptions o;
  o.max_new_tokens = n;
  o.sampler = s;
  o.stop_ids = std::move(stop);
  o.mtp_draft_tokens = drafts;
  std::vector<int32_t> out = generate(m, cache, prompt, o, nullptr, st);
  if (cache_len) *cache_len = cache.len;
  return out;
}

SamplerConfig greedy() {
  SamplerConfig s;
  s.temperature = 0.0f;
  return s;
}

// A tiny V3 model with one MTP module trained on arithmetic progressions mod 64
// (t_{i+1} = t_i + step, step in 1..7): after 120 AdamW steps the main model continues a
// progression and the MTP module mostly drafts the right next-next token.
const Model& trained_tiny() {
  static Model m = [] {
    ModelConfig c = dseek_test::tiny_model_config(false, 1);
    Model mm = Model::random(c, 3);
    ModelWeights G;
    weights_allocate(c, G);
    std::vector<ParamRef> params = model_params(c, mm.w), grads = model_params(c, G);
    AdamW opt(params,
              AdamWConfig{
                  .lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.0f});
    const int64_t B = 8, T = 24, V = c.vocab_size;
    std::vector<int32_t> in(B * T), tgt(B * T);
    uint64_t s = 12345;
    TrainActs acts;
    for (int step = 0; step < 120; step++) {
      for (int64_t b = 0; b < B; b++) {
        const int64_t start = (int64_t)(splitmix64_next(&s) % V),
                      inc = 1 + (int64_t)(splitmix64_next(&s) % 7);
        for (int64_t t = 0; t < T; t++) {
          in[b * T + t] = (int32_t)((start + inc * t) % V);
          tgt[b * T + t] = t + 1 < T ? (int32_t)((start + inc * (t + 1)) % V) : -1;
        }
      }
      grads_zero(grads);
      model_train_forward(mm, in.data(), tgt.data(), B, T, acts, TrainOptions{});
      model_train_backward(mm, acts, G);
      clip_grad_norm(grads, 1.0f);
      opt.step(grads);
    }
    return mm;
  }();
  return m;
}

// ---------------------------------------------------------------------------------------------
// the main forward with hidden states

TEST(Speculative, ForwardCachedWithHiddenEqualsForwardCachedBitForBit) {
  Model m = Model::load(fixture("v3_tiny"));
  const int64_t V = m.cfg.vocab_size, C = m.cfg.hidden_size;
  const std::vector<int32_t> a = {5, 17, 42, 7, 300}, b = {11, 12, 13};
  LatentCache c1 = m.new_cache(), c2 = m.new_cache();
  std::vector<float> hn(a.size() * C);
  Tensor logits = m.forward_cached(c1, a.data(), (int64_t)a.size(), false, hn.data());
  Tensor ref = m.forward_cached(c2, a.data(), (int64_t)a.size(), false);
  EXPECT_EQ(c1.len, c2.len);
  for (int64_t i = 0; i < ref.numel(); i++) ASSERT_EQ(logits.ptr()[i], ref.ptr()[i]) << i;
  // then a last-only step on the filled caches
  Tensor logits2 = m.forward_cached(c1, b.data(), (int64_t)b.size(), true, hn.data());
  Tensor ref2 = m.forward_cached(c2, b.data(), (int64_t)b.size(), true);
  for (int64_t i = 0; i < V; i++) ASSERT_EQ(logits2.ptr()[i], ref2.ptr()[i]) << i;
  // hn is the head's input: hn W_head^T reproduces the logits of the last row
  const float* h = hn.data() + 2 * C;
  for (int64_t v = 0; v < V; v += 37) {
    double dot = 0;
    for (int64_t j = 0; j < C; j++) dot += (double)h[j] * m.w.head().ptr()[v * C + j];
    EXPECT_NEAR(dot, ref2.ptr()[v], 1e-4 * (1 + std::fabs(dot)));
  }
}

TEST(Speculative, ModelWithoutMtpIsAClearError) {
  Model m = Model::load(fixture("v3_tiny"));
  try {
    run(m, {1, 2, 3}, 4, greedy(), 1);
    FAIL() << "expected dseek::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs a model with MTP weights"), std::string::npos)
        << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// greedy: the same tokens as plain decoding

class GreedyOnFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(GreedyOnFixture, EqualsPlainGreedyAndTransformers) {
  const Model m = fixture_with_mtp(GetParam(), 7);
  auto ref = SafeTensorsFile::open(fixture(GetParam()) + "/reference.safetensors");
  const TensorInfo& pi = ref->get("generate.prompt");
  const TensorInfo& oi = ref->get("generate.output");
  const int64_t* p64 = reinterpret_cast<const int64_t*>(pi.data);
  const int64_t* o64 = reinterpret_cast<const int64_t*>(oi.data);
  const std::vector<int32_t> prompt(p64, p64 + pi.numel());
  const std::vector<int32_t> hf(o64 + pi.numel(), o64 + oi.numel());
  const std::vector<int32_t> plain = run(m, prompt, (int64_t)hf.size(), greedy(), 0);
  ASSERT_EQ(plain, hf);
  int64_t drafted = 0, accepted = 0;
  for (int64_t k : {1, 2, 3}) {
    GenerateStats st;
    EXPECT_EQ(run(m, prompt, (int64_t)hf.size(), greedy(), k, &st), hf) << "drafts " << k;
    EXPECT_EQ(st.new_tokens, (int64_t)hf.size());
    EXPECT_EQ(st.verify_steps, (int64_t)hf.size() - 1 - st.accepted_tokens);
    drafted += st.draft_tokens;
    accepted += st.accepted_tokens;
  }
  // A random MTP module drafts mostly wrong tokens: emitting them unverified would break the
  // equality above.
  EXPECT_LT(accepted, drafted / 2);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GreedyOnFixture,
                         ::testing::Values("v3_tiny", "v3_tiny_yarn_noqlora", "v2_tiny"));

TEST(Speculative, GreedyOnTrainedTinyModelAcceptsAndEqualsPlain) {
  const Model& m = trained_tiny();
  const std::vector<std::vector<int32_t>> prompts = {
      {3, 5, 7}, {10, 13, 16, 19}, {60, 62, 0}, {1, 2, 40, 9, 33}, {20}};
  std::map<int64_t, std::pair<int64_t, int64_t>> by_k;  // drafts per step -> (drafted, accepted)
  for (const auto& p : prompts) {
    const std::vector<int32_t> plain = run(m, p, 40, greedy(), 0);
    for (int64_t k : {1, 2, 3}) {
      GenerateStats st;
      EXPECT_EQ(run(m, p, 40, greedy(), k, &st), plain) << "drafts " << k;
      by_k[k].first += st.draft_tokens;
      by_k[k].second += st.accepted_tokens;
      EXPECT_LT(st.verify_steps, 39);  // some step took more than one token
    }
  }
  // The trained module's first draft is mostly right, and not always: both paths ran. (Chained
  // drafts, which the module was never trained on, are rarely right here.)
  EXPECT_GT(by_k[1].second, by_k[1].first / 2);
  for (auto& [k, da] : by_k) EXPECT_LT(da.second, da.first) << "drafts " << k;
}

TEST(Speculative, StopIdsMaxTokensAndCacheLengthAsGenerate) {
  const Model& m = trained_tiny();
  const std::vector<int32_t> p = {10, 13, 16};
  const std::vector<int32_t> plain = run(m, p, 30, greedy(), 0);
  ASSERT_GE(plain.size(), 12u);
  const int32_t stop = plain[9];  // a token the progression reaches
  int64_t len_plain = 0, len_spec = 0;
  GenerateStats sp, ss;
  const std::vector<int32_t> a = run(m, p, 30, greedy(), 0, &sp, {stop}, &len_plain);
  for (int64_t k : {1, 3}) {
    const std::vector<int32_t> b = run(m, p, 30, greedy(), k, &ss, {stop}, &len_spec);
    EXPECT_EQ(a, b);
    EXPECT_EQ(b.back(), stop);
    EXPECT_TRUE(ss.stopped_by_token);
    EXPECT_EQ(len_spec, len_plain);
    for (int64_t n : {1, 2, 5}) {
      EXPECT_EQ(run(m, p, n, greedy(), k, nullptr, {}, &len_spec),
                std::vector<int32_t>(plain.begin(), plain.begin() + n));
      EXPECT_EQ(len_spec, (int64_t)p.size() + n - 1);
    }
  }
  // on_token returning false stops at once
  LatentCache cache = m.new_cache();
  GenerateOptions o;
  o.max_new_tokens = 30;
  o.sampler = greedy();
  o.mtp_draft_tokens = 3;
  int seen = 0;
  auto out = generate(m, cache, p, o, [&](int32_t, bool) { return ++seen < 4; });
  EXPECT_EQ(out, std::vector<int32_t>(plain.begin(), plain.begin() + 4));
  EXPECT_EQ(cache.len, (int64_t)p.size() + 3);
}

// A chat-style second call on a cache that already holds a first turn: the MTP module starts at
// the cache's length and the tokens still equal plain decoding's.
TEST(Speculative, ContinuesOnAFilledCache) {
  const Model& m = trained_tiny();
  GenerateOptions o;
  o.max_new_tokens = 8;
  o.sampler = greedy();
  LatentCache c1 = m.new_cache(), c2 = m.new_cache();
  auto a1 = generate(m, c1, {4, 6, 8}, o);
  o.mtp_draft_tokens = 2;
  auto b1 = generate(m, c2, {4, 6, 8}, o);
  ASSERT_EQ(a1, b1);
  ASSERT_EQ(c1.len, c2.len);
  o.mtp_draft_tokens = 0;
  auto a2 = generate(m, c1, {a1.back(), 30, 33}, o);
  o.mtp_draft_tokens = 2;
  auto b2 = generate(m, c2, {b1.back(), 30, 33}, o);
  EXPECT_EQ(a2, b2);
}

// ---------------------------------------------------------------------------------------------
// the acceptance rule, exactly

TEST(Speculative, AcceptThenResidualGivesExactlyP) {
  const std::vector<std::pair<std::vector<float>, std::vector<float>>> cases = {
      {{0.5f, 0.3f, 0.2f, 0.0f}, {0.1f, 0.1f, 0.4f, 0.4f}},
      {{0.25f, 0.25f, 0.25f, 0.25f}, {0.7f, 0.1f, 0.1f, 0.1f}},
      {{0.0f, 1.0f, 0.0f, 0.0f}, {1.0f, 0.0f, 0.0f, 0.0f}},  // greedy, wrong draft
      {{0.0f, 1.0f, 0.0f, 0.0f}, {0.0f, 1.0f, 0.0f, 0.0f}},  // greedy, right draft
      {{0.1f, 0.2f, 0.3f, 0.4f}, {0.1f, 0.2f, 0.3f, 0.4f}},  // p == q: always accepted
  };
  const int V = 4, G = 20000;  // u on a grid of G midpoints
  for (const auto& [p, q] : cases) {
    std::vector<double> out(V, 0.0);
    for (int d = 0; d < V; d++) {
      if (q[d] == 0.0f) continue;
      int acc = 0;
      for (int i = 0; i < G; i++) acc += speculative_accept(p.data(), q.data(), d, (i + 0.5) / G);
      const double a = (double)acc / G;
      EXPECT_NEAR(a, std::min(1.0, (double)p[d] / q[d]), 1.0 / G);
      out[d] += q[d] * a;
      std::vector<int> hits(V, 0);
      for (int i = 0; i < G; i++)
        hits[speculative_residual_draw(p.data(), q.data(), V, (i + 0.5) / G)]++;
      for (int x = 0; x < V; x++) out[x] += q[d] * (1.0 - a) * hits[x] / G;
    }
    for (int x = 0; x < V; x++) EXPECT_NEAR(out[x], p[x], 2e-4) << "token " << x;
  }
}

// ---------------------------------------------------------------------------------------------
// sampling: the distribution is the main model's

// Vocabulary 6, weights drawn with a large std (0.3) so that the main model and the MTP module
// have peaked, clearly different distributions.
Model tiny_vocab_model() {
  nlohmann::json j = {{"model_type", "deepseek_v3"},
                      {"vocab_size", 6},
                      {"hidden_size", 16},
                      {"intermediate_size", 24},
                      {"moe_intermediate_size", 8},
                      {"num_hidden_layers", 2},
                      {"num_attention_heads", 2},
                      {"n_shared_experts", 1},
                      {"n_routed_experts", 4},
                      {"routed_scaling_factor", 2.5},
                      {"kv_lora_rank", 8},
                      {"q_lora_rank", 12},
                      {"qk_rope_head_dim", 4},
                      {"v_head_dim", 4},
                      {"qk_nope_head_dim", 4},
                      {"n_group", 2},
                      {"topk_group", 1},
                      {"num_experts_per_tok", 2},
                      {"first_k_dense_replace", 1}};
  ModelConfig c = ModelConfig::from_json(j);
  c.mtp_depth = 1;
  Model m = Model::random(c, 11);
  weights_init_random(c, m.w, 11, 0.3f);
  return m;
}

// probs of the next token after `seq` by the full (uncached, naive-MLA) forward
std::vector<float> next_probs(const Model& m, const std::vector<int32_t>& seq, SamplerConfig s) {
  Tensor logits = m.forward(seq.data(), 1, (int64_t)seq.size());
  const int64_t V = m.cfg.vocab_size;
  Sampler sm(s);
  std::vector<float> p;
  sm.probs(logits.ptr() + ((int64_t)seq.size() - 1) * V, (int)V, seq, &p);
  return p;
}

// The draft chain's q1(.|x0), q2(.|x0, x1): MTP module over the prompt and x0, then chained.
void draft_probs(const Model& m, const std::vector<int32_t>& prompt, int32_t x0, int32_t x1,
                 SamplerConfig s, std::vector<float>* q1, std::vector<float>* q2) {
  const int64_t V = m.cfg.vocab_size, C = m.cfg.hidden_size, P = (int64_t)prompt.size();
  LatentCache cache = m.new_cache();
  std::vector<float> hn(P * C), dl(V), g(C), g2(C);
  m.forward_cached(cache, prompt.data(), P, true, hn.data());
  MtpDraft d(m);
  std::vector<int32_t> next(prompt.begin() + 1, prompt.end());
  next.push_back(x0);
  d.forward(dl.data(), g.data(), next.data(), hn.data(), P);
  std::vector<int32_t> ctx = prompt;
  ctx.push_back(x0);
  Sampler sm(s);
  sm.probs(dl.data(), (int)V, ctx, q1);
  d.forward(dl.data(), g2.data(), &x1, g.data(), 1);
  ctx.push_back(x1);
  sm.probs(dl.data(), (int)V, ctx, q2);
}

// Pearson chi-square over cells with expected count >= 5 (the rest pooled into one cell), as
// a Wilson-Hilferty z score (about N(0, 1) when the counts follow `expect`).
double chi_square_z(const std::vector<double>& expect, const std::vector<double>& count) {
  double x2 = 0, pool_e = 0, pool_c = 0;
  int cells = 0;
  for (size_t i = 0; i < expect.size(); i++) {
    if (expect[i] >= 5.0) {
      x2 += (count[i] - expect[i]) * (count[i] - expect[i]) / expect[i];
      cells++;
    } else {
      pool_e += expect[i];
      pool_c += count[i];
    }
  }
  if (pool_e > 0) {
    x2 += (pool_c - pool_e) * (pool_c - pool_e) / std::max(pool_e, 1e-9);
    cells++;
  }
  const double df = cells - 1, a = 2.0 / (9.0 * df);
  return (std::cbrt(x2 / df) - (1.0 - a)) / std::sqrt(a);
}

// `runs` seeded generations of drafts + 2 tokens (so the first step drafts `drafts` tokens):
// the first three tokens must follow p(x0) p(x1 | x0) p(x2 | x0, x1).
void check_distribution(SamplerConfig s, int64_t drafts, int runs) {
  const Model m = tiny_vocab_model();
  const int V = (int)m.cfg.vocab_size;
  const std::vector<int32_t> prompt = {2, 5, 1};
  // exact: p(x0) p(x1 | x0) p(x2 | x0, x1), and what unverified drafts would give
  std::vector<double> exact(V * V * V), drafts_only(V * V * V);
  const std::vector<float> p0 = next_probs(m, prompt, s);
  for (int a = 0; a < V; a++) {
    std::vector<int32_t> s1 = prompt;
    s1.push_back(a);
    const std::vector<float> p1 = next_probs(m, s1, s);
    for (int b = 0; b < V; b++) {
      std::vector<int32_t> s2 = s1;
      s2.push_back(b);
      const std::vector<float> p2 = next_probs(m, s2, s);
      std::vector<float> q1, q2;
      draft_probs(m, prompt, a, b, s, &q1, &q2);
      for (int c = 0; c < V; c++) {
        exact[(a * V + b) * V + c] = (double)p0[a] * p1[b] * p2[c];
        drafts_only[(a * V + b) * V + c] = (double)p0[a] * q1[b] * q2[c];
      }
    }
  }
  std::vector<double> count(V * V * V, 0.0), e(V * V * V), e_wrong(V * V * V);
  int64_t drafted = 0, accepted = 0;
  for (int r = 0; r < runs; r++) {
    SamplerConfig sr = s;
    sr.seed = 1000 + r;
    GenerateStats st;
    const std::vector<int32_t> t = run(m, prompt, drafts + 2, sr, drafts, &st);
    ASSERT_EQ(t.size(), (size_t)drafts + 2);
    count[(t[0] * V + t[1]) * V + t[2]] += 1;
    drafted += st.draft_tokens;
    accepted += st.accepted_tokens;
  }
  for (size_t i = 0; i < e.size(); i++) {
    e[i] = exact[i] * runs;
    e_wrong[i] = drafts_only[i] * runs;
  }
  const double z = chi_square_z(e, count);
  EXPECT_LT(z, 3.7) << "speculative samples do not follow the main model (z = " << z << ")";
  // Power: counts that followed the drafts would fail by far (z at the expected counts).
  EXPECT_GT(chi_square_z(e, e_wrong), 20.0);
  // both the accept and the reject paths ran, many times
  EXPECT_GT(accepted, drafted / 50);
  EXPECT_LT(accepted, drafted * 9 / 10);
}

TEST(Speculative, SamplingFollowsTheMainModel) {
  SamplerConfig s;
  s.temperature = 1.0f;
  s.top_p = 1.0f;
  check_distribution(s, 2, 12000);
}

TEST(Speculative, SamplingWithTopKAndTemperatureFollowsTheMainModel) {
  SamplerConfig s;
  s.temperature = 0.7f;
  s.top_k = 3;
  s.top_p = 1.0f;
  check_distribution(s, 1, 12000);
}

}  // namespace
}  // namespace dseek
