// bf16 as the CUDA op headers see it: the raw 16-bit pattern (the upper half of an fp32, the same
// bits dseek/core/dtype.h's f32_to_bf16 / bf16_to_f32 produce and read). The .cu files view the
// same memory as __nv_bfloat16; keeping the headers free of cuda_bf16.h lets .cpp code use them.
#pragma once

#include <cstdint>

namespace dseek {

using bf16_t = uint16_t;

}  // namespace dseek
