// MoE router on the GPU (mirror of ops/cpu/moe_router.h, same RouterParams, same semantics):
// V3 (sigmoid, noaux_tc): s = sigmoid(logits); choice = s + bias (selection only); group score =
// sum of the top-2 choices in each of n_group groups; keep topk_group groups, mask the rest to
// -inf; idx = top-Ek of choice; w = s[idx] (no bias), / (sum + 1e-20) if norm_topk,
// * scaling. V2 (softmax): s = softmax(logits); group score = max (masked to 0); no renorm.
// Ties go to the lower index; each token's Ek choices come out sorted by expert id.
// Also counts the tokens routed to each expert (load, for the bias balancing and MaxVio):
// counts[e] += #{(n, k): idx[n, k] = e} (int32 atomics: exact, order-free).
// Backward: gradients of the combine weights w.r.t. the logits through the selected experts only
// (as moe_router_backward on the CPU; fp64 sums per token).
// Limits: E <= 1024, n_group <= 32 (group_limited), top_k <= 32, E % n_group == 0.
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <cstdint>

#include "dseek/ops/cpu/moe_router.h"  // RouterParams

namespace dseek::cuda {

// logits [N, E] fp32 (the router GEMM in fp32); bias [E] fp32 or null. Out: idx [N, Ek] int32,
// w [N, Ek] fp32, scores [N, E] fp32 (s, may be null, needed by the backward), counts [E] int32
// (+=, may be null).
void moe_router_forward(int32_t* idx, float* w, float* scores, int32_t* counts, const float* logits,
                        const float* bias, int64_t N, const RouterParams& p, cudaStream_t stream);

// dlogits [N, E] fp32 (overwrite); dw [N, Ek]; idx [N, Ek]; scores [N, E] from the forward.
void moe_router_backward(float* dlogits, const float* dw, const int32_t* idx, const float* scores,
                         int64_t N, const RouterParams& p, cudaStream_t stream);

}  // namespace dseek::cuda
