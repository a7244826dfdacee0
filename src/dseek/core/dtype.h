// Element types found in DeepSeek / Hugging Face checkpoints and their conversions to fp32.
// bf16 and f16 are converted exactly (round-to-nearest-even on the way back); fp8 e4m3fn follows
// the OCP spec as torch.float8_e4m3fn: bias 7, no infinities, NaN = S.1111.111, max finite 448,
// subnormals (m/8)*2^-6. Conversion to fp8 saturates to +-448 and rounds to nearest even.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace dseek {

enum class DType { F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U8, BOOL };

size_t dtype_size(DType t);
const char* dtype_name(DType t);              // safetensors spelling: "F32", "BF16", "F8_E4M3", ...
bool dtype_from_name(const std::string& s, DType* out);  // false if unknown

float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);  // round to nearest even; NaN stays NaN
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float fp8_e4m3_to_f32(uint8_t v);
uint8_t f32_to_fp8_e4m3(float f);  // saturating, round to nearest even
float fp8_e5m2_to_f32(uint8_t v);

// Convert n elements of type t at src (little-endian, possibly unaligned) into fp32 dst.
// Integer types convert by value. Throws dseek::Error for types that have no fp32 meaning.
void convert_to_f32(float* dst, const void* src, DType t, size_t n);

}  // namespace dseek
