// DeepSeek-V3 FP8 block-scaled weights (SPEC §5.4): an e4m3fn matrix W_fp8 [out, in] and an fp32
// scale_inv [ceil(out/128), ceil(in/128)], one scale per 128x128 block (the last row/column of
// blocks may be partial). Dequant: W[i, j] = float(W_fp8[i, j]) * scale_inv[i / 128, j / 128],
// straight to fp32 (no bf16 rounding, unlike the official bf16 path). CPU reference only.
#pragma once

#include <cstdint>
#include <vector>

#include "dseek/core/tensor.h"
#include "dseek/io/safetensors.h"

namespace dseek {

// w: F8_E4M3 [out, in]; scale_inv: F32 (or BF16) [ceil(out/block), ceil(in/block)].
// Returns fp32 [out, in]. Throws dseek::Error naming both tensors on a dtype or shape mismatch.
Tensor fp8_block_dequant(const TensorInfo& w, const TensorInfo& scale_inv, int block = 128);

// The inverse, as the official checkpoints were made: per block amax = max |w|,
// scale_inv = amax / 448 (1 when amax == 0), q = f32_to_fp8_e4m3(w / scale_inv).
// w: fp32 [out, in], finite. q: out*in e4m3 codes (row-major, resized);
// scale_inv: fp32 [ceil(out/block), ceil(in/block)] (reshaped).
void fp8_block_quantize(const Tensor& w, std::vector<uint8_t>* q, Tensor* scale_inv,
                        int block = 128);

}  // namespace dseek
