// Element types: sizes, safetensors names, and bit-exact conversions to and from fp32.
// Formats (all little-endian):
//   bf16     1.8.7,  the top half of an fp32; encode rounds to nearest even, NaN stays (quiet) NaN.
//   f16      1.5.10, bias 15, inf/NaN at exponent 31, subnormals m * 2^-24.
//   e4m3fn   1.4.3,  bias 7, no inf, NaN = S.1111.111, max 448, subnormals (m/8) * 2^-6
//            (torch.float8_e4m3fn). Encode rounds to nearest even and SATURATES: finite values and
//            +-inf beyond 448 become +-448 (torch's own cast would give NaN there); NaN ->
//            S.1111.111.
//   e5m2     1.5.2,  bias 15, the top byte of an f16 (inf and NaN as f16); decode only.
// Encoders work on the integer bits (no dependence on the FPU rounding mode). Scalar, no
// intrinsics.
#include "dseek/core/dtype.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "dseek/core/error.h"

namespace dseek {

// ---------------------------------------------------------------------------------------------
// helpers

namespace {

uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float f32_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// x >> shift, rounded to nearest, ties to even (shift in 1..31).
uint32_t shift_right_rne(uint32_t x, int shift) {
  uint32_t r = x >> shift;
  uint32_t rem = x & ((1u << shift) - 1u);
  uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (r & 1u))) r++;
  return r;
}

template <typename T>
T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // unaligned-safe; the project only targets little-endian hosts
  return v;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// dtype table

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64:
      return 8;
    case DType::F32:
      return 4;
    case DType::F16:
      return 2;
    case DType::BF16:
      return 2;
    case DType::F8_E4M3:
      return 1;
    case DType::F8_E5M2:
      return 1;
    case DType::I64:
      return 8;
    case DType::I32:
      return 4;
    case DType::I16:
      return 2;
    case DType::I8:
      return 1;
    case DType::U8:
      return 1;
    case DType::BOOL:
      return 1;
  }
  fail("dtype_size: invalid DType value {}", (int)t);
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F64:
      return "F64";
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::F8_E4M3:
      return "F8_E4M3";
    case DType::F8_E5M2:
      return "F8_E5M2";
    case DType::I64:
      return "I64";
    case DType::I32:
      return "I32";
    case DType::I16:
      return "I16";
    case DType::I8:
      return "I8";
    case DType::U8:
      return "U8";
    case DType::BOOL:
      return "BOOL";
  }
  return "?";
}

bool dtype_from_name(const std::string& s, DType* out) {
  static const DType kAll[] = {DType::F64,     DType::F32,     DType::F16, DType::BF16,
                               DType::F8_E4M3, DType::F8_E5M2, DType::I64, DType::I32,
                               DType::I16,     DType::I8,      DType::U8,  DType::BOOL};
  for (DType t : kAll) {
    if (s == dtype_name(t)) {
      *out = t;
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// bf16

float bf16_to_f32(uint16_t h) {
  return f32_from_bits((uint32_t)h << 16);
}

uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x0040u);  // quiet NaN
  // Round to nearest even on the low 16 bits; a carry walks into the exponent (and to inf).
  return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// ---------------------------------------------------------------------------------------------
// f16

float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t man = h & 0x3FFu;
  if (exp == 0x1F) return f32_from_bits(sign | 0x7F800000u | (man << 13));  // inf / NaN
  if (exp == 0) {                                                           // zero / subnormal
    float v = std::ldexp((float)man, -24);
    return sign ? -v : v;
  }
  return f32_from_bits(sign | ((exp + 112u) << 23) | (man << 13));  // rebias 15 -> 127
}

uint16_t f32_to_f16(float f) {
  uint32_t u = f32_bits(f);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return sign | 0x7E00u | (uint16_t)((a >> 13) & 0x3FFu);  // quiet NaN
  if (a >= 0x477FF000u) return sign | 0x7C00u;  // >= 65520 (halfway past 65504) -> inf
  if (a >= 0x38800000u) {                       // normal: >= 2^-14
    uint32_t rebiased = a - (112u << 23);       // exponent 127 -> 15 bias
    return sign | (uint16_t)shift_right_rne(rebiased, 13);
  }
  if (a <= 0x33000000u) return sign;  // <= 2^-25 (exact half of the smallest subnormal) -> 0
  // Subnormal: value = m * 2^(e-150) with the implicit bit; in units of 2^-24 that is
  // m * 2^(e-126), e in [102, 112], so shift right by 126-e in [14, 24].
  uint32_t e = a >> 23;
  uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
  return sign | (uint16_t)shift_right_rne(m, (int)(126u - e));
}

// ---------------------------------------------------------------------------------------------
// fp8

float fp8_e4m3_to_f32(uint8_t v) {
  uint32_t exp = (v >> 3) & 0xFu;
  uint32_t man = v & 0x7u;
  float r;
  if (exp == 0xF && man == 0x7) {
    r = std::numeric_limits<float>::quiet_NaN();
  } else if (exp == 0) {
    r = std::ldexp((float)man, -9);  // (m/8) * 2^-6
  } else {
    r = f32_from_bits(((exp + 120u) << 23) | (man << 20));  // rebias 7 -> 127
  }
  return (v & 0x80u) ? -r : r;
}

uint8_t f32_to_fp8_e4m3(float f) {
  uint32_t u = f32_bits(f);
  uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
  uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return sign | 0x7Fu;   // NaN
  if (a >= 0x43E80000u) return sign | 0x7Eu;  // >= 464 (halfway 448..480) and inf: saturate
  if (a >= 0x3C800000u) {                     // normal: >= 2^-6
    uint32_t rebiased = a - (120u << 23);     // exponent 127 -> 7 bias
    uint32_t r = shift_right_rne(rebiased, 20);
    return sign | (uint8_t)(r > 0x7Eu ? 0x7Eu : r);
  }
  if (a <= 0x3A800000u) return sign;  // <= 2^-10 (half the smallest subnormal 2^-9) -> 0
  // Subnormal: in units of 2^-9 the value is m * 2^(e-141), e in [117, 120]: shift by 141-e.
  uint32_t e = a >> 23;
  uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
  return sign | (uint8_t)shift_right_rne(m, (int)(141u - e));
}

float fp8_e5m2_to_f32(uint8_t v) {
  return f16_to_f32((uint16_t)((uint16_t)v << 8));
}

// ---------------------------------------------------------------------------------------------
// bulk conversion

void convert_to_f32(float* dst, const void* src, DType t, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(src);
  switch (t) {
    case DType::F32:
      std::memcpy(dst, p, n * 4);
      return;
    case DType::F64:
      for (size_t i = 0; i < n; i++) dst[i] = (float)load_le<double>(p + 8 * i);
      return;
    case DType::F16:
      for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32(load_le<uint16_t>(p + 2 * i));
      return;
    case DType::BF16:
      for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(load_le<uint16_t>(p + 2 * i));
      return;
    case DType::F8_E4M3: {
      float lut[256];
      for (int c = 0; c < 256; c++) lut[c] = fp8_e4m3_to_f32((uint8_t)c);
      for (size_t i = 0; i < n; i++) dst[i] = lut[p[i]];
      return;
    }
    case DType::F8_E5M2:
      for (size_t i = 0; i < n; i++) dst[i] = fp8_e5m2_to_f32(p[i]);
      return;
    case DType::I64:
      for (size_t i = 0; i < n; i++) dst[i] = (float)load_le<int64_t>(p + 8 * i);
      return;
    case DType::I32:
      for (size_t i = 0; i < n; i++) dst[i] = (float)load_le<int32_t>(p + 4 * i);
      return;
    case DType::I16:
      for (size_t i = 0; i < n; i++) dst[i] = (float)load_le<int16_t>(p + 2 * i);
      return;
    case DType::I8:
      for (size_t i = 0; i < n; i++) dst[i] = (float)(int8_t)p[i];
      return;
    case DType::U8:
      for (size_t i = 0; i < n; i++) dst[i] = (float)p[i];
      return;
    case DType::BOOL:
      for (size_t i = 0; i < n; i++) dst[i] = p[i] ? 1.0f : 0.0f;
      return;
  }
  fail("convert_to_f32: dtype {} has no fp32 conversion", (int)t);
}

}  // namespace dseek
