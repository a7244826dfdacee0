// FP8 checkpoints as DeepSeek-V3/R1 are published: the test quantizes the v3_tiny fixture
// itself (every attention/MLP/expert linear -> float8_e4m3fn + weight_scale_inv per 128x128
// block; router, embeddings, head and norms stay fp32), writes it, and loads it back.
// Checks: the loaded weights equal fp8 * scale exactly (so the model equals one built from
// naively dequantized weights), logits stay within the quantization error of the original,
// and a missing or mis-shaped scale gets a clear error.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "dseek/core/dtype.h"
#include "dseek/io/safetensors.h"
#include "dseek/model/model.h"
#include "dseek/model/reference_check.h"
#include "dseek/ops/fp8_block.h"

using namespace dseek;
namespace fs = std::filesystem;

namespace {

const std::string kSrc = std::string(DSEEK_FIXTURES) + "/v3_tiny";

bool quantized_in_official_format(const std::string& name) {
  if (name.find("norm") != std::string::npos) return false;
  if (name.find("mlp.gate.") != std::string::npos) return false;  // router stays high precision
  if (name.find("embed_tokens") != std::string::npos || name == "lm_head.weight") return false;
  return name.find("self_attn.") != std::string::npos || name.find("mlp.") != std::string::npos;
}

enum class Corrupt { NONE, DROP_SCALE, BAD_SCALE_SHAPE };

// Write an FP8 copy of v3_tiny into `dir`; returns the names that were quantized.
std::vector<std::string> write_fp8_copy(const std::string& dir, Corrupt corrupt) {
  fs::create_directories(dir);
  fs::copy_file(kSrc + "/config.json", dir + "/config.json", fs::copy_options::overwrite_existing);
  auto src = SafeTensorsFile::open(kSrc + "/model.safetensors");
  std::vector<std::string> names = src->names(), quantized;
  std::vector<Tensor> keep_f32;
  std::vector<std::vector<uint8_t>> keep_q;
  keep_f32.reserve(names.size() * 2);
  keep_q.reserve(names.size());
  std::vector<TensorToWrite> out;
  for (const std::string& n : names) {
    const TensorInfo& t = src->get(n);
    Tensor w = read_f32(t);
    if (!quantized_in_official_format(n) || w.ndim() != 2) {
      keep_f32.push_back(std::move(w));
      out.push_back({n, DType::F32, keep_f32.back().shape, keep_f32.back().ptr()});
      continue;
    }
    keep_q.emplace_back();
    Tensor s;
    fp8_block_quantize(w, &keep_q.back(), &s);
    out.push_back({n, DType::F8_E4M3, w.shape, keep_q.back().data()});
    quantized.push_back(n);
    const bool first = quantized.size() == 1;
    if (first && corrupt == Corrupt::DROP_SCALE) continue;
    if (first && corrupt == Corrupt::BAD_SCALE_SHAPE) s.shape = {1, 1, 1};
    keep_f32.push_back(std::move(s));
    out.push_back({n + "_scale_inv", DType::F32, keep_f32.back().shape, keep_f32.back().ptr()});
  }
  safetensors_write(dir + "/model.safetensors", out);
  return quantized;
}

}  // namespace

TEST(Fp8Checkpoint, LoadsAndStaysWithinQuantizationError) {
  const std::string dir = testing::TempDir() + "/dseek_fp8_ok";
  std::vector<std::string> quantized = write_fp8_copy(dir, Corrupt::NONE);
  ASSERT_GT(quantized.size(), 20u);

  Model ref = Model::load(kSrc);
  Model q = Model::load(dir);

  // 1. every quantized weight equals decode(fp8) * scale, computed here by a naive loop
  auto ck = Checkpoint::open(dir);
  ModelWeights& w = q.w;
  for (const ParamRef& p : model_params(q.cfg, w)) {
    const TensorInfo& t = ck->get(p.name);
    if (t.dtype != DType::F8_E4M3) continue;
    Tensor s = read_f32(ck->get(p.name + "_scale_inv"));
    const int64_t rows = t.shape[0], cols = t.shape[1], sc = s.dim(1);
    for (int64_t i = 0; i < rows; i++)
      for (int64_t j = 0; j < cols; j++) {
        float want = fp8_e4m3_to_f32(t.data[i * cols + j]) * s.data[(i / 128) * sc + j / 128];
        ASSERT_EQ(p.tensor->data[i * cols + j], want) << p.name << " [" << i << ", " << j << "]";
      }
  }

  // 2. logits within the quantization error. The tiny random model amplifies weight error
  // into logit error non-linearly (expert choices flip), so the yardstick is the same model
  // with the same weights perturbed by random relative noise of the same size as the FP8
  // error: W * (1 + e), e ~ N(0, sigma), sigma = the measured rms relative FP8 error.
  // The FP8 model's logit error must be within 2x of that noise model's.
  auto weight_err = [&](Model& m) {  // rms over quantized tensors of ||W' - W|| / ||W||
    double s2 = 0;
    int n = 0;
    std::vector<ParamRef> pr = model_params(ref.cfg, ref.w), pm = model_params(m.cfg, m.w);
    for (size_t i = 0; i < pr.size(); i++) {
      if (!quantized_in_official_format(pr[i].name)) continue;
      double e = relative_error(pm[i].tensor->ptr(), pr[i].tensor->ptr(), pr[i].tensor->numel());
      s2 += e * e, n++;
    }
    return std::sqrt(s2 / std::max(n, 1));
  };
  const double sigma = weight_err(q);
  EXPECT_GT(sigma, 0.01);  // e4m3 keeps 3 mantissa bits: a few percent per weight
  EXPECT_LT(sigma, 0.04);
  std::vector<int32_t> ids = {1, 17, 42, 300, 5, 99, 256, 7, 8, 9, 10, 11};
  const int64_t T = (int64_t)ids.size();
  Tensor a = ref.forward(ids.data(), 1, T);
  const double err_fp8 = relative_error(q.forward(ids.data(), 1, T).ptr(), a.ptr(), a.numel());
  double err_noise = 0;
  const int trials = 4;
  for (int trial = 0; trial < trials; trial++) {
    Model nz = Model::load(kSrc);
    std::mt19937_64 g(1000 + trial);
    std::normal_distribution<double> d(0.0, sigma);
    for (const ParamRef& p : model_params(nz.cfg, nz.w))
      if (quantized_in_official_format(p.name))
        for (float& v : p.tensor->data) v = (float)(v * (1.0 + d(g)));
    err_noise += relative_error(nz.forward(ids.data(), 1, T).ptr(), a.ptr(), a.numel()) / trials;
  }
  std::printf("[fp8] weight rel err %.4f  logits rel err %.4f  same-size noise %.4f\n", sigma,
              err_fp8, err_noise);
  EXPECT_GT(err_fp8, err_noise / 2) << "fp8 " << err_fp8 << " noise " << err_noise;
  EXPECT_LT(err_fp8, err_noise * 2) << "fp8 " << err_fp8 << " noise " << err_noise;
  fs::remove_all(dir);
}

TEST(Fp8Checkpoint, MissingScaleIsAClearError) {
  const std::string dir = testing::TempDir() + "/dseek_fp8_noscale";
  std::vector<std::string> quantized = write_fp8_copy(dir, Corrupt::DROP_SCALE);
  try {
    Model::load(dir);
    FAIL() << "loading an FP8 weight without its scale must fail";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(quantized[0] + "_scale_inv"), std::string::npos) << msg;
  }
  fs::remove_all(dir);
}

TEST(Fp8Checkpoint, MisShapedScaleIsAClearError) {
  const std::string dir = testing::TempDir() + "/dseek_fp8_badscale";
  std::vector<std::string> quantized = write_fp8_copy(dir, Corrupt::BAD_SCALE_SHAPE);
  try {
    Model::load(dir);
    FAIL() << "a mis-shaped scale must fail";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(quantized[0]), std::string::npos) << msg;
    EXPECT_NE(msg.find("[1, 1, 1]"), std::string::npos) << msg;
  }
  fs::remove_all(dir);
}
