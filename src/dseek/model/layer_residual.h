// One decoder layer's two residual updates on the CPU (fp32), shared by every forward that runs
// the blocks (Model::forward, Model::forward_cached, the MTP draft):
//   attn_residual: h += Attn(RMSNorm_attn(h))   (the attention is the caller's: naive or cached)
//   ffn_residual:  h += FFN_l(RMSNorm_ffn(h))   (MoE when cfg.is_moe_layer(l), else dense SwiGLU)
// h is [N, C] row-major.
#pragma once

#include <cstdint>
#include <vector>

#include "dseek/model/config.h"
#include "dseek/model/weights.h"
#include "dseek/ops/cpu/rmsnorm.h"

namespace dseek {

template <typename AttnFn>  // attn(float* out [N, C], const float* x [N, C])
void attn_residual(float* h, const LayerWeights& L, const ModelConfig& cfg, int64_t N,
                   AttnFn&& attn) {
  const int64_t C = cfg.hidden_size;
  std::vector<float> x(N * C), y(N * C);
  rmsnorm_forward(x.data(), C, nullptr, h, C, L.attn_norm.ptr(), N, C, (float)cfg.rms_norm_eps);
  attn(y.data(), x.data());
  for (int64_t i = 0; i < N * C; i++) h[i] += y[i];
}

void ffn_residual(float* h, const LayerWeights& L, const ModelConfig& cfg, int64_t l, int64_t N);

}  // namespace dseek
