// FP8 block weights (SPEC §5.4): dequantize e4m3fn [out, in] with per-128x128-block fp32 scale_inv
// straight to fp32, and the matching quantizer (amax / 448 per block, saturating RNE encode).
// Reference: deepseek-ai/DeepSeek-V3 inference/kernel.py weight_dequant_kernel (same formula;
// theirs stores bf16, we keep fp32 on purpose). Plain loops with OpenMP over rows.
#include "dseek/ops/fp8_block.h"

#include <algorithm>  // min, max
#include <cmath>      // fabs, isfinite

#include "dseek/core/dtype.h"
#include "dseek/core/error.h"

namespace dseek {

// ---------------------------------------------------------------------------------------------
// constants

constexpr float kFp8E4M3Max = 448.0f;  // largest finite e4m3fn value

// ---------------------------------------------------------------------------------------------
// public entry points

Tensor fp8_block_dequant(const TensorInfo& w, const TensorInfo& scale_inv, int block) {
  DSEEK_CHECK(block > 0, "FP8 weight {}: block size {} must be positive", w.name, block);
  DSEEK_CHECK(w.dtype == DType::F8_E4M3, "FP8 weight {} has dtype {}, expected F8_E4M3", w.name,
              dtype_name(w.dtype));
  DSEEK_CHECK(w.shape.size() == 2, "FP8 weight {} has shape {}, expected 2 dims [out, in]", w.name,
              shape_str(w.shape));
  DSEEK_CHECK(scale_inv.dtype == DType::F32 || scale_inv.dtype == DType::BF16,
              "FP8 weight {}: scale {} has dtype {}, expected F32 or BF16", w.name, scale_inv.name,
              dtype_name(scale_inv.dtype));
  const int64_t rows = w.shape[0], cols = w.shape[1];
  const int64_t srows = (rows + block - 1) / block, scols = (cols + block - 1) / block;
  const std::vector<int64_t> sshape = {srows, scols};
  DSEEK_CHECK(scale_inv.shape == sshape, "FP8 weight {}: scale {} has shape {}, expected {}",
              w.name, scale_inv.name, shape_str(scale_inv.shape), shape_str(sshape));
  DSEEK_CHECK(w.nbytes == (size_t)(rows * cols) &&
                  scale_inv.nbytes == (size_t)(srows * scols) * dtype_size(scale_inv.dtype),
              "FP8 weight {}: byte sizes do not match the shapes", w.name);

  std::vector<float> s((size_t)(srows * scols));  // [srows, scols]
  convert_to_f32(s.data(), scale_inv.data, scale_inv.dtype, s.size());
  float lut[256];  // e4m3 code -> value
  for (int c = 0; c < 256; c++) lut[c] = fp8_e4m3_to_f32((uint8_t)c);

  Tensor out({rows, cols});
  const uint8_t* q = w.data;  // [rows, cols]
  float* o = out.ptr();       // [rows, cols]
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; i++) {
    const float* srow = s.data() + (i / block) * scols;
    for (int64_t j = 0; j < cols; j++) o[i * cols + j] = lut[q[i * cols + j]] * srow[j / block];
  }
  return out;
}

void fp8_block_quantize(const Tensor& w, std::vector<uint8_t>* q, Tensor* scale_inv, int block) {
  DSEEK_CHECK(block > 0, "fp8_block_quantize: block size {} must be positive", block);
  DSEEK_CHECK(w.ndim() == 2, "fp8_block_quantize: weight has shape {}, expected 2 dims [out, in]",
              shape_str(w.shape));
  const int64_t rows = w.shape[0], cols = w.shape[1];
  const int64_t srows = (rows + block - 1) / block, scols = (cols + block - 1) / block;
  q->assign((size_t)(rows * cols), 0);
  *scale_inv = Tensor({srows, scols});
  const float* x = w.ptr();  // [rows, cols]

  for (int64_t bi = 0; bi < srows; bi++) {
    for (int64_t bj = 0; bj < scols; bj++) {
      const int64_t i0 = bi * block, i1 = std::min(rows, i0 + block);
      const int64_t j0 = bj * block, j1 = std::min(cols, j0 + block);
      float amax = 0.0f;
      for (int64_t i = i0; i < i1; i++) {
        for (int64_t j = j0; j < j1; j++) {
          float v = x[i * cols + j];
          DSEEK_CHECK(std::isfinite(v), "fp8_block_quantize: non-finite value {} at [{}, {}]", v, i,
                      j);
          amax = std::max(amax, std::fabs(v));
        }
      }
      // amax == 0 (an all-zero block) gets scale 1; so does an amax so tiny that amax/448
      // underflows.
      const float s = amax / kFp8E4M3Max > 0.0f ? amax / kFp8E4M3Max : 1.0f;
      scale_inv->data[bi * scols + bj] = s;
      for (int64_t i = i0; i < i1; i++) {
        for (int64_t j = j0; j < j1; j++) (*q)[i * cols + j] = f32_to_fp8_e4m3(x[i * cols + j] / s);
      }
    }
  }
}

}  // namespace dseek
