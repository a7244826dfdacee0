// The routed-expert FFN of a MoE layer on the GPU (training), forward and backward: the GPU side
// of model/moe.h's moe_forward / moe_backward after the router (ops/cuda/moe_router.h gives idx
// and w; routed_scaling_factor is already inside w, as on the CPU).
//   out[n] = sum_k w[n, k] Expert_{idx[n, k]}(x[n])  (slot order)  +  Shared(x[n])
//   Expert_e(x) = W2_e (silu(W1g_e x) * (W1u_e x)),  no token dropping
// Forward: moe_permute_plan -> gather -> grouped gate_up GEMM [P, 2I] -> swiglu -> grouped down
// GEMM [P, C] -> weighted combine (one launch per step, whatever the expert loads).
// Shared experts: when Is == I they run as one more always-selected group (weight 1) of the same
// grouped GEMMs (W_last of grouped_gemm.h), so they cost no extra launch; otherwise (e.g. V2's
// n_shared_experts = 2) through gemm_lt over all tokens, added in the combine.
// Weights (bf16, device), the checkpoint's matrices stacked per expert:
//   w1 [E, 2I, C]: expert e's gate_proj [I, C] then up_proj [I, C]
//   w2 [E, C, I]:  expert e's down_proj
//   sh_w1 [2Is, C] (gate then up), sh_w2 [C, Is]; null when the model has no shared experts.
// Gradients (fp32, accumulate +=) have the same layouts. dx is overwritten (or += with
// accumulate) and covers the experts only: the router's part (dlogits W_router) is the caller's,
// from dw (the gradient of the combine weights, fp32 [N, K], overwritten) through
// moe_router_backward. x, out, dout, dx are dense [N, C]; C, I, Is multiples of 8.
// Activations kept for the backward live in MoeFfnActs (device buffers grown on demand, reused);
// the backward's scratch in MoeFfnWorkspace. The caller keeps x and w alive until the backward.
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <cstdint>

#include "dseek/ops/cuda/bf16.h"           // bf16_t
#include "dseek/ops/cuda/device_buffer.h"  // DeviceBuffer
#include "dseek/ops/cuda/gemm_lt.h"        // GemmLt
#include "dseek/ops/cuda/moe_permute.h"    // MoePermutePlan

namespace dseek::cuda {

struct MoeFfnWeights {
  const bf16_t* w1 = nullptr;     // [E, 2I, C]
  const bf16_t* w2 = nullptr;     // [E, C, I]
  const bf16_t* sh_w1 = nullptr;  // [2Is, C] or null
  const bf16_t* sh_w2 = nullptr;  // [C, Is] or null
  int64_t E = 0, C = 0, I = 0, Is = 0;
};

struct MoeFfnGrads {  // fp32, +=
  float* dw1 = nullptr;
  float* dw2 = nullptr;
  float* sh_dw1 = nullptr;
  float* sh_dw2 = nullptr;
};

struct MoeFfnActs {
  int64_t N = 0, K = 0, P = 0, G = 0;  // tokens, slots, permuted rows, groups
  bool fused_shared = false;
  MoePermutePlan plan;                    // points into `ints`
  DeviceBuffer<int32_t> ints;             // the plan's arrays
  DeviceBuffer<bf16_t> xp, h, a, y;       // [P, C], [P, 2I] (gate | up), [P, I], [P, C]
  DeviceBuffer<bf16_t> sh_h, sh_a, sh_y;  // shared experts, unfused: [N, 2Is], [N, Is], [N, C]
};

struct MoeFfnWorkspace {
  DeviceBuffer<bf16_t> dy, da, dh, dxp;      // [P, C], [P, I], [P, 2I], [P, C]
  DeviceBuffer<bf16_t> sh_da, sh_dh, sh_dx;  // unfused shared: [N, Is], [N, 2Is], [N, C]
};

// idx [N, K] int32, w [N, K] fp32 (device): the router's choices and combine weights.
void moe_ffn_forward(bf16_t* out, const bf16_t* x, const int32_t* idx, const float* w, int64_t N,
                     int64_t K, const MoeFfnWeights& W, MoeFfnActs& acts, GemmLt& gemm,
                     cudaStream_t stream);
void moe_ffn_backward(bf16_t* dx, float* dw, const MoeFfnGrads& grads, const bf16_t* dout,
                      const bf16_t* x, const float* w, const MoeFfnWeights& W,
                      const MoeFfnActs& acts, MoeFfnWorkspace& ws, GemmLt& gemm,
                      cudaStream_t stream, bool accumulate = false);

}  // namespace dseek::cuda
