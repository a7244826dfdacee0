// Tests for train/adamw: a few steps against torch.optim.AdamW's update written out in double
// (weight decay before the Adam step, bias correction), no decay on 1-D tensors by default and a
// caller-supplied predicate, frozen (trainable=false) parameters untouched, the state file round
// trip (identical next steps) and its error messages, grad_global_norm and clip_grad_norm_.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "dseek/core/dtype.h"
#include "dseek/core/error.h"
#include "dseek/io/safetensors.h"
#include "dseek/train/adamw.h"

namespace dseek {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// helpers

struct TempDir {  // a fresh directory, removed at scope exit
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "dseek_adamw_XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// A toy model: a matrix [3, 4], a norm weight [4], a frozen bias [3].
struct Toy {
  Tensor w{{3, 4}}, norm{{4}}, bias{{3}};
  std::vector<ParamRef> refs() {
    return {{.name = "w", .tensor = &w, .shape = w.shape, .trainable = true},
            {.name = "norm", .tensor = &norm, .shape = norm.shape, .trainable = true},
            {.name = "bias", .tensor = &bias, .shape = bias.shape, .trainable = false}};
  }
};

void fill(Tensor& t, std::mt19937& rng, float scale) {
  std::normal_distribution<float> d(0.0f, scale);
  for (float& x : t.data) x = d(rng);
}

// torch.optim.AdamW (single-tensor path) for one tensor, in double.
struct RefAdamW {
  std::vector<double> p, m, v;
  int64_t t = 0;
  explicit RefAdamW(const Tensor& init)
      : p(init.data.begin(), init.data.end()), m(p.size(), 0.0), v(p.size(), 0.0) {}
  void step(const Tensor& g, double lr, double b1, double b2, double eps, double wd) {
    t++;
    const double bc1 = 1 - std::pow(b1, (double)t), bc2 = 1 - std::pow(b2, (double)t);
    for (size_t i = 0; i < p.size(); i++) {
      p[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * g.data[i];
      v[i] = b2 * v[i] + (1 - b2) * (double)g.data[i] * g.data[i];
      const double mhat = m[i] / bc1, vhat = v[i] / bc2;
      p[i] -= lr * mhat / (std::sqrt(vhat) + eps);
    }
  }
};

void expect_near_ref(const Tensor& got, const RefAdamW& ref, const char* what) {
  for (size_t i = 0; i < ref.p.size(); i++)
    EXPECT_NEAR(got.data[i], ref.p[i], 1e-6 + 2e-6 * std::fabs(ref.p[i]))
        << what << " element " << i << " at step " << ref.t;
}

// ---------------------------------------------------------------------------------------------
// the update

TEST(AdamW, MatchesTorchFormulaOverSteps) {
  std::mt19937 rng(1);
  Toy model, grad;
  fill(model.w, rng, 0.5f);
  fill(model.norm, rng, 0.5f);
  const AdamWConfig cfg{
      .lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
  AdamW opt(model.refs(), cfg);
  RefAdamW ref_w(model.w), ref_norm(model.norm);
  const float lrs[] = {1e-2f, 5e-3f, 2e-2f, 1e-3f, 1e-2f};
  for (float lr : lrs) {
    fill(grad.w, rng, 1.0f);
    fill(grad.norm, rng, 1.0f);
    opt.step(grad.refs(), lr);
    ref_w.step(grad.w, lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay);
    ref_norm.step(grad.norm, lr, cfg.beta1, cfg.beta2, cfg.eps, /*wd=*/0.0);  // 1-D: no decay
    expect_near_ref(model.w, ref_w, "w");
    expect_near_ref(model.norm, ref_norm, "norm");
  }
  EXPECT_EQ(opt.t(), 5);
  EXPECT_TRUE(opt.decays(0));
  EXPECT_FALSE(opt.decays(1));
}

TEST(AdamW, FirstStepIsSignTimesLrPlusDecay) {
  // t = 1: mhat = g, vhat = g^2, so p1 = p0 (1 - lr wd) - lr g / (|g| + eps): a hand-checkable
  // value.
  Tensor w({1, 2});
  w.data = {1.0f, -2.0f};
  Tensor g({1, 2});
  g.data = {0.5f, -4.0f};
  std::vector<ParamRef> p = {{.name = "w", .tensor = &w, .shape = w.shape, .trainable = true}};
  std::vector<ParamRef> gr = {{.name = "w", .tensor = &g, .shape = g.shape, .trainable = true}};
  AdamW opt(p, {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 0.0f, .weight_decay = 0.5f});
  opt.step(gr, 0.1f);
  EXPECT_NEAR(w.data[0], 1.0 * 0.95 - 0.1, 1e-6);
  EXPECT_NEAR(w.data[1], -2.0 * 0.95 + 0.1, 1e-6);
}

TEST(AdamW, DecayPredicateCanBeOverridden) {
  std::mt19937 rng(2);
  Toy model, grad;
  fill(model.w, rng, 0.5f);
  fill(model.norm, rng, 0.5f);
  // decay everything trainable, including the 1-D norm
  AdamW opt(model.refs(), {.lr = 1e-2f, .weight_decay = 0.2f},
            [](const ParamRef&) { return true; });
  EXPECT_TRUE(opt.decays(1));
  RefAdamW ref_norm(model.norm);
  fill(grad.w, rng, 1.0f);
  fill(grad.norm, rng, 1.0f);
  opt.step(grad.refs(), 1e-2f);
  ref_norm.step(grad.norm, 1e-2, 0.9f, 0.95f, 1e-8f, 0.2f);
  expect_near_ref(model.norm, ref_norm, "norm");
}

TEST(AdamW, FrozenParameterUntouchedAndWithoutState) {
  std::mt19937 rng(3);
  Toy model, grad;
  fill(model.bias, rng, 1.0f);
  const std::vector<float> before = model.bias.data;
  AdamW opt(model.refs(), {});
  EXPECT_TRUE(opt.exp_avg(2).empty());
  EXPECT_EQ(opt.state_numel(), 2 * (12 + 4));
  fill(grad.bias, rng, 1.0f);  // a gradient that would move it
  fill(grad.w, rng, 1.0f);
  for (int i = 0; i < 3; i++) opt.step(grad.refs(), 1e-2f);
  EXPECT_EQ(model.bias.data, before);
  // the gradient of a frozen parameter may be absent altogether
  auto refs = grad.refs();
  refs[2].tensor = nullptr;
  grad.bias = Tensor();
  EXPECT_NO_THROW(opt.step(refs, 1e-2f));
  EXPECT_EQ(model.bias.data, before);
}

TEST(AdamW, RejectsMismatchedGradients) {
  Toy model, grad;
  AdamW opt(model.refs(), {});
  auto g = grad.refs();
  g.pop_back();
  EXPECT_THROW(opt.step(g, 1e-3f), Error);
  g = grad.refs();
  std::swap(g[0], g[1]);
  try {
    opt.step(g, 1e-3f);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected w"), std::string::npos) << e.what();
  }
  Tensor wrong({4, 3});
  g = grad.refs();
  g[0].tensor = &wrong;
  try {
    opt.step(g, 1e-3f);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[4, 3], expected [3, 4]"), std::string::npos) << e.what();
  }
  EXPECT_EQ(opt.t(), 0);  // a rejected step does not count
}

// ---------------------------------------------------------------------------------------------
// state file

TEST(AdamW, SaveLoadRoundTripGivesIdenticalNextSteps) {
  TempDir tmp;
  const std::string path = (tmp.path / "optimizer.safetensors").string();
  std::mt19937 rng(4);
  Toy a, grad;
  fill(a.w, rng, 0.5f);
  fill(a.norm, rng, 0.5f);
  const AdamWConfig cfg{.lr = 3e-3f, .weight_decay = 0.1f};
  AdamW opt_a(a.refs(), cfg);
  for (int i = 0; i < 3; i++) {
    fill(grad.w, rng, 1.0f);
    fill(grad.norm, rng, 1.0f);
    opt_a.step(grad.refs(), 3e-3f);
  }
  opt_a.save(path);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  {
    auto f = SafeTensorsFile::open(path);
    EXPECT_EQ(f->names(), (std::vector<std::string>{"m.norm", "m.w", "v.norm", "v.w"}));
    EXPECT_EQ(f->metadata().at("step"), "3");
  }

  Toy b = a;  // the weights as a checkpoint would restore them
  AdamW opt_b(b.refs(), cfg);
  opt_b.load(path);
  EXPECT_EQ(opt_b.t(), 3);
  for (int i = 0; i < 3; i++) {
    fill(grad.w, rng, 1.0f);
    fill(grad.norm, rng, 1.0f);
    opt_a.step(grad.refs(), 2e-3f);
    opt_b.step(grad.refs(), 2e-3f);
  }
  EXPECT_EQ(a.w.data, b.w.data);  // bitwise
  EXPECT_EQ(a.norm.data, b.norm.data);
  EXPECT_EQ(opt_a.exp_avg_sq(0).data, opt_b.exp_avg_sq(0).data);
}

std::string load_error(AdamW& opt, const std::string& path) {
  try {
    opt.load(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(AdamW, LoadNamesMissingExtraAndMisshapedTensors) {
  TempDir tmp;
  const std::string path = (tmp.path / "opt.safetensors").string();
  Toy a;
  AdamW opt(a.refs(), {});
  opt.save(path);

  // a model with another matrix shape
  Tensor w2({4, 4}), n2({4});
  std::vector<ParamRef> other = {
      {.name = "w", .tensor = &w2, .shape = w2.shape, .trainable = true},
      {.name = "norm", .tensor = &n2, .shape = n2.shape, .trainable = true}};
  AdamW opt2(other, {});
  std::string e = load_error(opt2, path);
  EXPECT_NE(e.find("m.w has shape [3, 4], expected [4, 4]"), std::string::npos) << e;

  // a model with an extra parameter: missing in the file
  Tensor extra({2, 2});
  std::vector<ParamRef> more = a.refs();
  more.push_back({.name = "extra", .tensor = &extra, .shape = extra.shape, .trainable = true});
  AdamW opt3(more, {});
  e = load_error(opt3, path);
  EXPECT_NE(e.find("has no m.extra"), std::string::npos) << e;

  // a model without "norm": the file has tensors this optimizer does not know
  std::vector<ParamRef> fewer = {a.refs()[0]};
  AdamW opt4(fewer, {});
  e = load_error(opt4, path);
  EXPECT_NE(e.find("m.norm which is not a trainable parameter"), std::string::npos) << e;
  EXPECT_EQ(opt4.t(), 0);  // failed load leaves the optimizer as it was

  // not an optimizer file at all
  const std::string other_file = (tmp.path / "weights.safetensors").string();
  safetensors_write(other_file,
                    {{.name = "w", .dtype = DType::F32, .shape = {3, 4}, .data = a.w.ptr()}});
  e = load_error(opt, other_file);
  EXPECT_NE(e.find("not an AdamW state file"), std::string::npos) << e;
}

// ---------------------------------------------------------------------------------------------
// gradient norm and clipping

// ---------------------------------------------------------------------------------------------
// bf16 state

float bf16_round(float x) {
  return bf16_to_f32(f32_to_bf16(x));
}

// One step of the bf16-state update written out per element from the previous stored state
// (fp32 math as torch's op order, m and v rounded to bf16 on store): the optimizer must match
// it exactly for m and v (same rounding of the same fp32 value) and to fp32 rounding for p.
TEST(AdamW, Bf16StateEqualsRoundedFp32UpdateFromStoredState) {
  std::mt19937 rng(7);
  Toy a, grad;
  fill(a.w, rng, 0.5f);
  fill(a.norm, rng, 0.5f);
  const AdamWConfig cfg{.lr = 2e-3f, .beta2 = 0.95f, .weight_decay = 0.1f, .state_bf16 = true};
  AdamW opt(a.refs(), cfg);
  for (int step = 1; step <= 4; step++) {
    fill(grad.w, rng, 1.0f);
    const Tensor p0 = a.w, m0 = opt.exp_avg(0), v0 = opt.exp_avg_sq(0);
    opt.step(grad.refs(), 2e-3f);
    const double bc1 = 1 - std::pow(0.9, step), bc2 = 1 - std::pow(0.95, step);
    for (int64_t i = 0; i < p0.numel(); i++) {
      const float g = grad.w.data[i];
      const float m = std::fma(0.1f, g - m0.data[i], m0.data[i]);
      const float v = std::fma(v0.data[i], 0.95f, (0.05f * g) * g);
      EXPECT_EQ(opt.exp_avg(0).data[i], bf16_round(m)) << "m " << i << " step " << step;
      EXPECT_EQ(opt.exp_avg_sq(0).data[i], bf16_round(v)) << "v " << i << " step " << step;
      const double pr = p0.data[i] * (1 - 2e-3 * 0.1) -
                        (2e-3 / bc1) * m / (std::sqrt((double)v) / std::sqrt(bc2) + 1e-8);
      EXPECT_NEAR(a.w.data[i], pr, 1e-6 + 2e-6 * std::fabs(pr)) << "p " << i << " step " << step;
    }
  }
}

// bf16 state follows the fp32-state optimizer closely over many steps (beta2 0.95), and differs
// from it (the rounding is really applied).
TEST(AdamW, Bf16StateTracksFp32State) {
  std::mt19937 rng(8);
  Toy a, grad;
  fill(a.w, rng, 0.5f);
  fill(a.norm, rng, 0.5f);
  Toy b = a;
  AdamWConfig cfg{.lr = 1e-3f, .weight_decay = 0.1f};
  AdamW fp(a.refs(), cfg);
  cfg.state_bf16 = true;
  AdamW bf(b.refs(), cfg);
  double max_diff = 0.0;
  bool any_diff = false;
  for (int step = 0; step < 50; step++) {
    fill(grad.w, rng, 1.0f);
    fill(grad.norm, rng, 1.0f);
    const Tensor a0 = a.w;
    fp.step(grad.refs());
    bf.step(grad.refs());
    // the weights' paths differ by a small fraction of the total movement
    for (int64_t i = 0; i < a.w.numel(); i++) {
      any_diff |= a.w.data[i] != b.w.data[i];
      max_diff = std::max(max_diff, (double)std::fabs(a.w.data[i] - b.w.data[i]));
    }
  }
  EXPECT_TRUE(any_diff);
  // 50 steps of at most ~lr each: the paths may drift apart by a few percent of that
  EXPECT_LT(max_diff, 0.05 * 50 * 1e-3);
}

TEST(AdamW, Bf16StateSavesBf16AndResumesExactly) {
  TempDir tmp;
  const std::string path = (tmp.path / "optimizer.safetensors").string();
  std::mt19937 rng(9);
  Toy a, grad;
  fill(a.w, rng, 0.5f);
  fill(a.norm, rng, 0.5f);
  const AdamWConfig cfg{.lr = 3e-3f, .weight_decay = 0.1f, .state_bf16 = true};
  AdamW opt_a(a.refs(), cfg);
  for (int i = 0; i < 3; i++) {
    fill(grad.w, rng, 1.0f);
    fill(grad.norm, rng, 1.0f);
    opt_a.step(grad.refs());
  }
  opt_a.save(path);
  {
    auto f = SafeTensorsFile::open(path);
    EXPECT_EQ(f->find("m.w")->dtype, DType::BF16);
    EXPECT_EQ(f->find("v.norm")->dtype, DType::BF16);
    EXPECT_EQ(f->metadata().at("state_dtype"), "bf16");
  }
  Toy b = a;
  AdamW opt_b(b.refs(), cfg);
  opt_b.load(path);
  EXPECT_EQ(opt_b.exp_avg(0).data, opt_a.exp_avg(0).data);
  for (int i = 0; i < 3; i++) {
    fill(grad.w, rng, 1.0f);
    fill(grad.norm, rng, 1.0f);
    opt_a.step(grad.refs());
    opt_b.step(grad.refs());
  }
  EXPECT_EQ(a.w.data, b.w.data);  // bitwise
  EXPECT_EQ(a.norm.data, b.norm.data);
  EXPECT_EQ(opt_a.exp_avg_sq(0).data, opt_b.exp_avg_sq(0).data);
}

TEST(GradNorm, GlobalNormOverTrainableGradients) {
  Toy g;
  g.w.data.assign(12, 1.0f);      // sum of squares 12
  g.norm.data = {2, 0, 0, 0};     // + 4
  g.bias.data = {100, 100, 100};  // frozen: not counted
  EXPECT_DOUBLE_EQ(grad_global_norm(g.refs()), 4.0);
}

TEST(GradNorm, ClipScalesOnlyAboveMaxAndReturnsPreClipNorm) {
  Toy g;
  g.w.data.assign(12, 1.0f);
  g.norm.data = {2, 0, 0, 0};  // norm 4
  auto refs = g.refs();
  float n = clip_grad_norm(refs, 1.0f);
  EXPECT_FLOAT_EQ(n, 4.0f);
  const float scale = 1.0f / (4.0f + 1e-6f);  // torch: max_norm / (norm + 1e-6)
  EXPECT_FLOAT_EQ(g.w.data[0], scale);
  EXPECT_FLOAT_EQ(g.norm.data[0], 2.0f * scale);
  EXPECT_NEAR(grad_global_norm(refs), 1.0, 1e-6);

  // below the limit (scale >= 1): untouched
  Toy h;
  h.w.data.assign(12, 0.1f);
  auto hr = h.refs();
  const std::vector<float> before = h.w.data;
  n = clip_grad_norm(hr, 1.0f);
  EXPECT_NEAR(n, std::sqrt(0.12), 1e-6);
  EXPECT_EQ(h.w.data, before);

  // non-finite norm: gradients left as they are for the caller to skip the step
  Toy k;
  k.w.data[3] = INFINITY;
  k.norm.data[0] = 1.0f;
  auto kr = k.refs();
  n = clip_grad_norm(kr, 1.0f);
  EXPECT_TRUE(std::isinf(n));
  EXPECT_EQ(k.norm.data[0], 1.0f);
}

TEST(GradNorm, LargeTensorUsesBlocksAndDoubleAccumulation) {
  // 1M elements of 1e-3: a float running sum would drift; double in blocks is exact enough.
  Tensor big({1 << 20});
  big.data.assign(big.data.size(), 1e-3f);
  std::vector<ParamRef> r = {
      {.name = "big", .tensor = &big, .shape = big.shape, .trainable = true}};
  const double want = std::sqrt((double)(1 << 20)) * (double)1e-3f;
  EXPECT_NEAR(grad_global_norm(r), want, want * 1e-12);
}

}  // namespace
}  // namespace dseek
