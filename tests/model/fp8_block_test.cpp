// Tests for ops/fp8_block: quantize -> safetensors -> dequantize round trip on a matrix with
// partial edge blocks and block-wise different magnitudes, dequant against a naive loop with an
// independently written e4m3 decoder, and the dtype/shape checks.
#include <gtest/gtest.h>

#include <unistd.h>  // getpid

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>
#include <vector>

#include "dseek/core/dtype.h"
#include "dseek/core/error.h"
#include "dseek/io/safetensors.h"
#include "dseek/ops/fp8_block.h"

namespace dseek {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// helpers

// e4m3fn from its definition (bias 7, subnormals (m/8) * 2^-6, S.1111.111 NaN), in double.
double e4m3_ref(int c) {
  int s = (c >> 7) & 1, e = (c >> 3) & 15, m = c & 7;
  if (e == 15 && m == 7) return NAN;
  double mag = e == 0 ? std::ldexp(m / 8.0, -6) : std::ldexp(1.0 + m / 8.0, e - 7);
  return s ? -mag : mag;
}

TensorInfo info(const std::string& name, DType t, std::vector<int64_t> shape, const void* data) {
  TensorInfo r;
  r.name = name;
  r.dtype = t;
  r.shape = std::move(shape);
  r.data = static_cast<const uint8_t*>(data);
  r.nbytes = (size_t)r.numel() * dtype_size(t);
  return r;
}

void expect_error(const std::function<void()>& fn, const std::string& part) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    return;
  }
  ADD_FAILURE() << "no dseek::Error thrown; expected one mentioning " << part;
}

// ---------------------------------------------------------------------------------------------
// tests

TEST(Fp8Block, QuantizeWriteReadDequantRoundTrip) {
  const int64_t rows = 300, cols = 200, block = 128;  // 3 x 2 blocks, the last ones partial
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Tensor w({rows, cols});
  for (int64_t i = 0; i < rows; i++) {
    for (int64_t j = 0; j < cols; j++) {
      // each block gets its own magnitude, so using a neighbour's scale would show
      float mag = std::pow(10.0f, (float)(i / block) - 2.0f * (float)(j / block));
      w.data[i * cols + j] = normal(rng) * mag;
    }
  }
  for (int64_t j = 0; j < 5; j++) w.data[j] = 0.0f;  // a few exact zeros
  std::vector<uint8_t> q;
  Tensor scale;
  fp8_block_quantize(w, &q, &scale);
  ASSERT_EQ(q.size(), (size_t)(rows * cols));
  ASSERT_EQ(scale.shape, (std::vector<int64_t>{3, 2}));

  // scale_inv = amax / 448 per block, recomputed here
  for (int64_t bi = 0; bi < 3; bi++) {
    for (int64_t bj = 0; bj < 2; bj++) {
      float amax = 0;
      for (int64_t i = bi * block; i < std::min(rows, (bi + 1) * block); i++) {
        for (int64_t j = bj * block; j < std::min(cols, (bj + 1) * block); j++) {
          amax = std::max(amax, std::fabs(w.data[i * cols + j]));
        }
      }
      EXPECT_EQ(scale.data[bi * 2 + bj], amax / 448.0f) << bi << "," << bj;
    }
  }

  fs::path dir = fs::temp_directory_path() / ("dseek_fp8_" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::string path = (dir / "fp8.safetensors").string();
  safetensors_write(path, {{"w.weight", DType::F8_E4M3, {rows, cols}, q.data()},
                           {"w.weight_scale_inv", DType::F32, {3, 2}, scale.ptr()}});
  auto f = SafeTensorsFile::open(path);
  Tensor deq = fp8_block_dequant(f->get("w.weight"), f->get("w.weight_scale_inv"));
  ASSERT_EQ(deq.shape, w.shape);

  // Per-element bound. x = w / s lies in [-448, 448]. e4m3 rounds to nearest: for |x| >= 2^-6
  // (normal) the spacing in [2^e, 2^(e+1)) is 2^(e-3), so |fp8(x) - x| <= 2^(e-4) <= 2^-4 |x|
  // (3 mantissa bits); below 2^-6 (subnormal) the spacing is 2^-9, so the error is <= 2^-10.
  // Scaling back by s: |deq - w| <= 2^-4 |w| + 2^-10 s, plus a few fp32 roundings (w / s and
  // fp8 * s, each <= 2^-24 relative), covered by 8 * FLT_EPSILON * |w|.
  double err2 = 0, ref2 = 0;
  for (int64_t i = 0; i < rows; i++) {
    for (int64_t j = 0; j < cols; j++) {
      float x = w.data[i * cols + j], y = deq.data[i * cols + j];
      float s = scale.data[(i / block) * 2 + j / block];
      float bound = 0x1p-4f * std::fabs(x) + 0x1p-10f * s + 8 * FLT_EPSILON * std::fabs(x);
      ASSERT_LE(std::fabs(y - x), bound) << "at [" << i << ", " << j << "] w=" << x;
      if (x == 0.0f) {
        ASSERT_EQ(y, 0.0f);
      }
      err2 += (double)(y - x) * (y - x) / ((double)s * s);  // per-block normalised, since
      ref2 += (double)x * x / ((double)s * s);              // magnitudes differ by 1e5
    }
  }
  EXPECT_LT(std::sqrt(err2 / ref2), 0.05);
  f.reset();
  fs::remove_all(dir);
}

TEST(Fp8Block, DequantMatchesNaiveLoop) {
  // 130 x 129 with the default block 128: a 2 x 2 grid of blocks (three of them partial).
  const int64_t rows = 130, cols = 129;
  std::vector<uint8_t> q(rows * cols);
  std::mt19937 rng(11);
  for (auto& c : q) {
    c = (uint8_t)(rng() & 0xFF);
    if ((c & 0x7F) == 0x7F) c = 0x3F;  // no NaN codes
  }
  const float sc[4] = {1.0f, 2.0f, 0.5f, 0.001f};  // [2, 2]
  Tensor deq = fp8_block_dequant(info("W", DType::F8_E4M3, {rows, cols}, q.data()),
                                 info("W_scale_inv", DType::F32, {2, 2}, sc));
  for (int64_t i = 0; i < rows; i++) {
    for (int64_t j = 0; j < cols; j++) {
      double want = e4m3_ref(q[i * cols + j]) * sc[(i >= 128) * 2 + (j >= 128)];
      ASSERT_EQ(deq.data[i * cols + j], (float)want) << i << "," << j;
    }
  }

  // A handcrafted 4 x 4 matrix with block 2: codes and scales chosen by hand.
  const uint8_t h[16] = {0x38, 0xB8, 0x40, 0x7E,                 // 1, -1 | 2, 448
                         0x08, 0x01, 0x00, 0x80,                 // 2^-6, 2^-9 | 0, -0
                         0x30, 0x3C, 0x48, 0xC8,                 // 0.5, 1.5 | 4, -4
                         0x78, 0x77, 0x39, 0x06};                // 256, 240 | 1.125, 6*2^-9
  const uint16_t hs_bf16[4] = {0x3F80, 0x4000, 0x3E80, 0xC040};  // 1, 2, 0.25, -3 (BF16 scales)
  const float want[16] = {1,      -1,     4,   896, 0x1p-6f, 0x1p-9f, 0,       -0.0f,
                          0.125f, 0.375f, -12, 12,  64,      60,      -3.375f, -18 * 0x1p-9f};
  Tensor hd = fp8_block_dequant(info("H", DType::F8_E4M3, {4, 4}, h),
                                info("H_scale_inv", DType::BF16, {2, 2}, hs_bf16), 2);
  for (int k = 0; k < 16; k++) EXPECT_EQ(hd.data[k], want[k]) << k;
}

TEST(Fp8Block, QuantizeEdgeCases) {
  Tensor z({3, 5});  // all zero: scale 1, codes 0
  std::vector<uint8_t> q;
  Tensor s;
  fp8_block_quantize(z, &q, &s);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(s.data[0], 1.0f);
  for (uint8_t c : q) EXPECT_EQ(c, 0);
  Tensor m({1, 2});
  m.data = {-3.0f, 1.5f};  // amax 3 -> scale 3/448; -3 maps to -448 exactly
  fp8_block_quantize(m, &q, &s);
  EXPECT_EQ(q[0], 0xFE);
  EXPECT_FLOAT_EQ(fp8_e4m3_to_f32(q[1]) * s.data[0], 1.5f);
  m.data[1] = NAN;
  EXPECT_THROW(fp8_block_quantize(m, &q, &s), Error);
  Tensor v({4});
  EXPECT_THROW(fp8_block_quantize(v, &q, &s), Error);
}

TEST(Fp8Block, RejectsMismatches) {
  std::vector<uint8_t> q(64 * 64, 0x38);
  std::vector<float> s6(6, 1.0f), s1(1, 1.0f);
  std::vector<uint16_t> s1_16(1, 0x3C00);
  auto w = info("W", DType::F8_E4M3, {64, 64}, q.data());
  expect_error(
      [&] {
        fp8_block_dequant(w, info("W_scale_inv", DType::F32, {2, 3}, s6.data()));
      },
      "FP8 weight W: scale W_scale_inv has shape [2, 3], expected [1, 1]");
  expect_error([&] { fp8_block_dequant(w, info("W_scale_inv", DType::F32, {1}, s1.data())); },
               "has shape [1], expected [1, 1]");
  expect_error(
      [&] {
        fp8_block_dequant(w, info("W_scale_inv", DType::F16, {1, 1}, s1_16.data()));
      },
      "F16");
  expect_error(
      [&] {
        fp8_block_dequant(info("W", DType::U8, {64, 64}, q.data()),
                          info("W_scale_inv", DType::F32, {1, 1}, s1.data()));
      },
      "FP8 weight W has dtype U8, expected F8_E4M3");
  expect_error(
      [&] {
        fp8_block_dequant(info("W", DType::F8_E4M3, {4096}, q.data()),
                          info("W_scale_inv", DType::F32, {1, 1}, s1.data()));
      },
      "W");
  // 200 x 300 needs a [2, 3] scale with block 128, but [1, 3] with block 256.
  std::vector<uint8_t> big(200 * 300, 0);
  auto wb = info("B", DType::F8_E4M3, {200, 300}, big.data());
  EXPECT_EQ(fp8_block_dequant(wb, info("B_s", DType::F32, {2, 3}, s6.data())).numel(), 60000);
  EXPECT_EQ(fp8_block_dequant(wb, info("B_s", DType::F32, {1, 2}, s6.data()), 256).numel(), 60000);
  expect_error(
      [&] {
        fp8_block_dequant(wb, info("B_s", DType::F32, {1, 2}, s6.data()));
      },
      "expected [2, 3]");
}

}  // namespace
}  // namespace dseek
