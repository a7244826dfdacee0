// Tests for core/dtype: bf16, f16 and fp8 (e4m3fn, e5m2) conversions against independently
// written references (sign/exponent/mantissa formulas in double, brute-force nearest-value
// search), hand-picked rounding cases, and convert_to_f32 for every dtype from unaligned memory.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "dseek/core/dtype.h"
#include "dseek/core/error.h"

namespace dseek {
namespace {

// ---------------------------------------------------------------------------------------------
// helpers

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// e4m3fn by its definition: (-1)^s * 2^(e-7) * (1 + m/8), subnormal (-1)^s * 2^-6 * m/8,
// S.1111.111 is NaN.
double e4m3_ref(int c) {
  int s = (c >> 7) & 1, e = (c >> 3) & 15, m = c & 7;
  if (e == 15 && m == 7) return std::numeric_limits<double>::quiet_NaN();
  double mag = e == 0 ? std::pow(2.0, -6) * (m / 8.0) : std::pow(2.0, e - 7) * (1.0 + m / 8.0);
  return s ? -mag : mag;
}

// Nearest of two candidate codes by exact (double) distance; ties go to the even code.
template <typename Dec>
uint32_t nearest_even(double x, uint32_t lo, uint32_t hi, Dec dec) {
  double dl = std::fabs(x - dec(lo)), dh = std::fabs(x - dec(hi));
  if (dl < dh) return lo;
  if (dh < dl) return hi;
  return (lo & 1) ? hi : lo;
}

// ---------------------------------------------------------------------------------------------
// names and sizes

TEST(DType, NamesRoundTripAndSizes) {
  const DType all[] = {DType::F64,     DType::F32,     DType::F16, DType::BF16,
                       DType::F8_E4M3, DType::F8_E5M2, DType::I64, DType::I32,
                       DType::I16,     DType::I8,      DType::U8,  DType::BOOL};
  const char* names[] = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2",
                         "I64", "I32", "I16", "I8",   "U8",      "BOOL"};
  const size_t sizes[] = {8, 4, 2, 2, 1, 1, 8, 4, 2, 1, 1, 1};
  for (int i = 0; i < 12; i++) {
    EXPECT_STREQ(dtype_name(all[i]), names[i]);
    EXPECT_EQ(dtype_size(all[i]), sizes[i]) << names[i];
    DType t;
    ASSERT_TRUE(dtype_from_name(names[i], &t));
    EXPECT_EQ(t, all[i]);
  }
  DType t;
  EXPECT_FALSE(dtype_from_name("F4", &t));
  EXPECT_FALSE(dtype_from_name("f32", &t));
  EXPECT_FALSE(dtype_from_name("", &t));
}

// ---------------------------------------------------------------------------------------------
// bf16

TEST(DType, Bf16AllCodesRoundTrip) {
  for (uint32_t h = 0; h < 65536; h++) {
    float f = bf16_to_f32((uint16_t)h);
    EXPECT_EQ(bits(f), h << 16);  // bf16 is the top half of an fp32
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f))));
    } else {
      ASSERT_EQ(f32_to_bf16(f), h) << std::hex << h;
    }
  }
}

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f), 0x3F80);             // tie, 1.0 is even
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3F82);         // tie, 1+2^-6 is even
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3F81);  // just above the tie
  EXPECT_EQ(f32_to_bf16(-1.0f), 0xBF80);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7F80);  // rounds up to inf
  EXPECT_EQ(f32_to_bf16(INFINITY), 0x7F80);
  EXPECT_EQ(f32_to_bf16(-INFINITY), 0xFF80);
  EXPECT_EQ(f32_to_bf16(from_bits(0x00010000)), 0x0001);  // subnormal kept
  EXPECT_EQ(f32_to_bf16(from_bits(0x00008000)), 0x0000);  // half the smallest: tie to 0
  EXPECT_EQ(f32_to_bf16(from_bits(0x00018000)), 0x0002);  // 1.5 ulp: tie to even 2
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(from_bits(0x7F800001)))));  // payload in low bits
  // Random floats against the brute-force nearest of the two neighbouring bf16 values.
  std::mt19937 rng(1);
  for (int k = 0; k < 200000; k++) {
    uint32_t u = rng();
    float f = from_bits(u);
    if (!std::isfinite(f)) continue;
    uint32_t lo = u >> 16, hi = lo + 1;  // same sign; |lo| <= |f| < |hi|
    auto dec = [](uint32_t c) {  // inf stands for 2^128 here: IEEE overflow rounds as if it were
      double v = bf16_to_f32((uint16_t)c);
      return std::isinf(v) ? std::copysign(0x1p128, v) : v;
    };
    uint32_t want = nearest_even(f, lo, hi, dec);
    ASSERT_EQ(f32_to_bf16(f), want) << std::hex << u;
  }
}

// ---------------------------------------------------------------------------------------------
// f16

double f16_ref(uint32_t h) {
  int s = (h >> 15) & 1, e = (h >> 10) & 31, m = h & 1023;
  if (e == 31) return m ? NAN : (s ? -INFINITY : INFINITY);
  double mag =
      e == 0 ? std::pow(2.0, -14) * (m / 1024.0) : std::pow(2.0, e - 15) * (1 + m / 1024.0);
  return s ? -mag : mag;
}

TEST(DType, F16AllCodesDecodeAndRoundTrip) {
  for (uint32_t h = 0; h < 65536; h++) {
    float f = f16_to_f32((uint16_t)h);
    double r = f16_ref(h);
    if (std::isnan(r)) {
      EXPECT_TRUE(std::isnan(f));
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
      continue;
    }
    ASSERT_EQ((double)f, r) << std::hex << h;
    ASSERT_EQ(std::signbit(f), (h >> 15) != 0);
    ASSERT_EQ(f32_to_f16(f), h) << std::hex << h;
  }
}

TEST(DType, F16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f), 0x3C00);      // tie, even
  EXPECT_EQ(f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3C02);  // tie, even
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);  // tie with "65536": rounds to inf
  EXPECT_EQ(f32_to_f16(1e10f), 0x7C00);
  EXPECT_EQ(f32_to_f16(-INFINITY), 0xFC00);
  EXPECT_EQ(f32_to_f16(0x1p-24f), 0x0001);  // smallest subnormal
  EXPECT_EQ(f32_to_f16(0x1p-25f), 0x0000);  // tie to even 0
  EXPECT_EQ(f32_to_f16(0x1p-25f * 1.0001f), 0x0001);
  EXPECT_EQ(f32_to_f16(3 * 0x1p-25f), 0x0002);                // tie 1|2 -> 2
  EXPECT_EQ(f32_to_f16(1023 * 0x1p-24f + 0x1p-25f), 0x0400);  // tie, carries to the smallest normal
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16(from_bits(1)), 0x0000);  // fp32 subnormal underflows
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(NAN))));
  std::mt19937 rng(2);
  for (int k = 0; k < 200000; k++) {
    // exponents around the f16 range, so normals, subnormals and overflow are all hit
    float f = std::ldexp((float)(rng() & 0xFFFFFF) / 0x1p24f, (int)(rng() % 50) - 30);
    if (rng() & 1) f = -f;
    // neighbours: the f16 code of |f| rounded toward zero, found by scanning from the encoder's
    // answer (checked to bracket f), then compared exactly.
    uint32_t c = f32_to_f16(f);
    double af = std::fabs((double)f), ac = std::fabs(f16_ref(c));
    uint32_t s = c & 0x8000, m = c & 0x7FFF;
    uint32_t lo = ac <= af ? m : m - 1, hi = lo + 1;
    if (af >= 65520.0) {
      ASSERT_EQ(m, 0x7C00u) << f;
      continue;
    }
    ASSERT_LE(std::fabs(f16_ref(lo)), af) << f;
    ASSERT_GT(std::fabs(f16_ref(hi)), af) << f;
    uint32_t want = nearest_even(af, lo, hi, [](uint32_t x) { return f16_ref(x); });
    ASSERT_EQ(c, s | want) << f;
  }
}

#if defined(__FLT16_MAX__) && (defined(__x86_64__) || defined(__aarch64__))
TEST(DType, F16MatchesCompilerFloat16) {  // the compiler's own conversion as a second reference
  std::mt19937 rng(3);
  for (int k = 0; k < 200000; k++) {
    float f = from_bits(rng());
    if (std::isnan(f)) continue;
    _Float16 h = (_Float16)f;
    uint16_t hb;
    std::memcpy(&hb, &h, 2);
    ASSERT_EQ(f32_to_f16(f), hb) << f;
  }
}
#endif

// ---------------------------------------------------------------------------------------------
// fp8 e4m3fn

TEST(DType, Fp8E4M3AllCodesMatchFormula) {
  for (int c = 0; c < 256; c++) {
    float f = fp8_e4m3_to_f32((uint8_t)c);
    double r = e4m3_ref(c);
    if (std::isnan(r)) {
      EXPECT_TRUE(std::isnan(f)) << c;
    } else {
      EXPECT_EQ((double)f, r) << c;
      EXPECT_EQ(std::signbit(f), c >= 128) << c;
    }
  }
  EXPECT_EQ(fp8_e4m3_to_f32(0x7E), 448.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0xFE), -448.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x08), 0x1p-6f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x07), 7 * 0x1p-9f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x01), 0x1p-9f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x38), 1.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x40), 2.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x78), 256.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x77), 240.0f);
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(0x7F)));
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(0xFF)));
  EXPECT_TRUE(std::isinf(fp8_e4m3_to_f32(0x7F)) == false);
  EXPECT_EQ(bits(fp8_e4m3_to_f32(0x80)), 0x80000000u);  // -0
  int nans = 0;
  for (int c = 0; c < 256; c++) nans += std::isnan(fp8_e4m3_to_f32((uint8_t)c));
  EXPECT_EQ(nans, 2);  // no infinities, only two NaN codes
}

TEST(DType, Fp8E4M3EncodeRoundTripAndSaturation) {
  for (int c = 0; c < 256; c++) {
    if (c == 0x7F || c == 0xFF) continue;
    EXPECT_EQ(f32_to_fp8_e4m3(fp8_e4m3_to_f32((uint8_t)c)), c) << c;
  }
  EXPECT_EQ(f32_to_fp8_e4m3(1e6f), 0x7E);
  EXPECT_EQ(f32_to_fp8_e4m3(-1e6f), 0xFE);
  EXPECT_EQ(f32_to_fp8_e4m3(449.0f), 0x7E);
  EXPECT_EQ(f32_to_fp8_e4m3(464.0f), 0x7E);  // the tie with the missing 480: saturates
  EXPECT_EQ(f32_to_fp8_e4m3(500.0f), 0x7E);
  EXPECT_EQ(f32_to_fp8_e4m3(INFINITY), 0x7E);
  EXPECT_EQ(f32_to_fp8_e4m3(-INFINITY), 0xFE);
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(f32_to_fp8_e4m3(NAN))));
  EXPECT_EQ(f32_to_fp8_e4m3(0x1p-10f), 0x00);  // tie with 0 -> 0
  EXPECT_EQ(f32_to_fp8_e4m3(0x1p-10f * 1.001f), 0x01);
  EXPECT_EQ(f32_to_fp8_e4m3(-0x1p-11f), 0x80);  // underflow keeps the sign
  EXPECT_EQ(f32_to_fp8_e4m3(1e-30f), 0x00);
  EXPECT_EQ(f32_to_fp8_e4m3(from_bits(1)), 0x00);  // fp32 subnormal
}

TEST(DType, Fp8E4M3RoundsToNearestEvenAtEveryMidpoint) {
  // Consecutive positive codes c, c+1 are consecutive values; the even one has bit 0 clear.
  for (int c = 0; c < 0x7E; c++) {
    float a = fp8_e4m3_to_f32((uint8_t)c), b = fp8_e4m3_to_f32((uint8_t)(c + 1));
    float mid = (a + b) / 2;  // exact: both have few mantissa bits
    ASSERT_EQ((double)mid, (e4m3_ref(c) + e4m3_ref(c + 1)) / 2);
    int even = (c & 1) ? c + 1 : c;
    EXPECT_EQ(f32_to_fp8_e4m3(mid), even) << c;
    EXPECT_EQ(f32_to_fp8_e4m3(-mid), even | 0x80) << c;
    EXPECT_EQ(f32_to_fp8_e4m3(std::nextafter(mid, 0.0f)), c) << c;
    EXPECT_EQ(f32_to_fp8_e4m3(std::nextafter(mid, 1e9f)), c + 1) << c;
  }
}

TEST(DType, Fp8E4M3EncodeMatchesBruteForceNearest) {
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> logmag(-14.0f, 9.5f);
  for (int k = 0; k < 100000; k++) {
    float f = std::exp2(logmag(rng)) * ((rng() & 1) ? -1.0f : 1.0f);
    // nearest finite code by exhaustive search, ties to the even code, saturating
    int best = -1;
    double best_d = INFINITY;
    for (int c = 0; c < 256; c++) {
      double r = e4m3_ref(c);
      if (std::isnan(r) || std::signbit(r) != std::signbit(f)) continue;
      double d = std::fabs(r - f);
      if (d < best_d || (d == best_d && (c & 1) == 0)) best = c, best_d = d;
    }
    ASSERT_EQ(f32_to_fp8_e4m3(f), best) << f;
  }
}

// ---------------------------------------------------------------------------------------------
// fp8 e5m2

TEST(DType, Fp8E5M2Decode) {
  for (int c = 0; c < 256; c++) {
    int s = c >> 7, e = (c >> 2) & 31, m = c & 3;
    float f = fp8_e5m2_to_f32((uint8_t)c);
    if (e == 31) {
      EXPECT_TRUE(m ? std::isnan(f) : std::isinf(f)) << c;
      continue;
    }
    double mag = e == 0 ? std::pow(2.0, -14) * (m / 4.0) : std::pow(2.0, e - 15) * (1 + m / 4.0);
    EXPECT_EQ((double)f, s ? -mag : mag) << c;
  }
  EXPECT_EQ(fp8_e5m2_to_f32(0x3C), 1.0f);
  EXPECT_EQ(fp8_e5m2_to_f32(0x7B), 57344.0f);
  EXPECT_EQ(fp8_e5m2_to_f32(0x01), 0x1p-16f);
  EXPECT_EQ(fp8_e5m2_to_f32(0xFC), -INFINITY);
}

// ---------------------------------------------------------------------------------------------
// convert_to_f32

template <typename T>
void check_convert(DType t, const std::vector<T>& vals, const std::vector<float>& want) {
  std::vector<uint8_t> buf(1);  // one leading byte: the source is deliberately unaligned
  const uint8_t* raw = reinterpret_cast<const uint8_t*>(vals.data());
  buf.insert(buf.end(), raw, raw + vals.size() * sizeof(T));
  std::vector<float> out(vals.size(), -7.0f);
  convert_to_f32(out.data(), buf.data() + 1, t, vals.size());
  for (size_t i = 0; i < vals.size(); i++) EXPECT_EQ(out[i], want[i]) << dtype_name(t) << " " << i;
}

TEST(DType, ConvertToF32EveryDType) {
  check_convert<double>(DType::F64, {1.5, -2.25, 1e300}, {1.5f, -2.25f, INFINITY});
  check_convert<float>(DType::F32, {1.5f, -0.1f}, {1.5f, -0.1f});
  check_convert<uint16_t>(DType::F16, {0x3C00, 0xC000, 0x0001}, {1.0f, -2.0f, 0x1p-24f});
  check_convert<uint16_t>(DType::BF16, {0x3F80, 0xC040}, {1.0f, -3.0f});
  check_convert<uint8_t>(DType::F8_E4M3, {0x38, 0x7E, 0xFE, 0x01},
                         {1.0f, 448.0f, -448.0f, 0x1p-9f});
  check_convert<uint8_t>(DType::F8_E5M2, {0x3C, 0xC0}, {1.0f, -2.0f});
  check_convert<int64_t>(DType::I64, {0, -5, 1LL << 40}, {0.0f, -5.0f, 0x1p40f});
  check_convert<int32_t>(DType::I32, {7, -2147483647 - 1}, {7.0f, -2147483648.0f});
  check_convert<int16_t>(DType::I16, {-32768, 32767}, {-32768.0f, 32767.0f});
  check_convert<int8_t>(DType::I8, {-128, 127}, {-128.0f, 127.0f});
  check_convert<uint8_t>(DType::U8, {0, 255}, {0.0f, 255.0f});
  check_convert<uint8_t>(DType::BOOL, {0, 1, 2}, {0.0f, 1.0f, 1.0f});
}

}  // namespace
}  // namespace dseek
