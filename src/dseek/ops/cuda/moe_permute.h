// MoE token permutation on the GPU: (token, slot) pairs sorted by expert, the gather of token
// rows into expert-contiguous groups, the weighted combine back to tokens, and their backward.
//
// Pairs: p = n * Kp + k for token n < N and slot k < Kp, Kp = K + (extra ? 1 : 0). Slot k < K is
// routed to expert idx[n, k] (router output, values in [0, E): not checked) with weight w[n, k];
// with `extra`, slot K of every token goes to group E with weight 1 (the shared expert run as one
// more group). G = E + extra groups, P = N * Kp pairs, all rows of the permuted buffers.
// Order: group by group; inside a group by pair index (tokens in order, stable) - the order of
// MoeActs::rows on the CPU. Deterministic (no atomics on the result path).
//   row_of_pair[p]  the permuted row of pair p          [P]
//   pair_of_row[r]  the pair that permuted row r holds  [P]
//   counts[g], offsets[g] (G+1), tile_off[g] (G+1): sizes, first rows and the grouped GEMM's
//   128-row tile schedule (grouped_gemm.h)
// Combine: out[n] = sum_k wt(n, k) y[row_of_pair[n, k]] (+ add[n]), summed in slot order in fp32
// as acc = fma(wt, y, acc) (the CPU's order: ascending expert, then the shared experts), one bf16
// rounding at the end.
// Backward of the combine: dy[r] = bf16(wt dout[n]) and dw[n, k] = dot(dout[n], y[r]) (fp32, k <
// K). Backward of the gather: dx[n] = bf16(sum_k dxp[row_of_pair[n, k]] (+ add[n]) (+ dx[n] when
// accumulate)), slot order.
// C must be a multiple of 8 and row pointers 16-byte aligned (16-byte row accesses).
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <cstdint>

#include "dseek/ops/cuda/bf16.h"  // bf16_t

namespace dseek::cuda {

struct MoePermutePlan {  // device arrays the caller allocates (sizes from the functions below)
  int32_t* row_of_pair = nullptr;   // [P]
  int32_t* pair_of_row = nullptr;   // [P]
  int32_t* counts = nullptr;        // [G]
  int32_t* offsets = nullptr;       // [G + 1]
  int32_t* tile_off = nullptr;      // [G + 1]
  int32_t* chunk_counts = nullptr;  // [moe_permute_chunks(P) * G] scratch
};
int64_t moe_permute_chunks(int64_t P);

// Sorting only (fills every array of the plan).
void moe_permute_plan(const MoePermutePlan& plan, const int32_t* idx, int64_t N, int64_t K,
                      int64_t E, bool extra, cudaStream_t stream);
// xp[r] = x[pair_of_row[r] / Kp]; x [N, C] row stride ldx, xp [P, C] dense.
void moe_gather(bf16_t* xp, const bf16_t* x, int64_t ldx, const int32_t* pair_of_row, int64_t P,
                int64_t Kp, int64_t C, cudaStream_t stream);
// out [N, C] (stride ldo) = combine of y [P, C]; w [N, K] fp32; add [N, C] dense or null.
void moe_combine(bf16_t* out, int64_t ldo, const bf16_t* y, const float* w,
                 const int32_t* row_of_pair, const bf16_t* add, int64_t N, int64_t K, bool extra,
                 int64_t C, cudaStream_t stream);
// dy [P, C] (overwrite), dw [N, K] fp32 (overwrite, may be null); dout [N, C] stride ldd.
void moe_combine_backward(bf16_t* dy, float* dw, const bf16_t* dout, int64_t ldd, const bf16_t* y,
                          const float* w, const int32_t* pair_of_row, int64_t N, int64_t K,
                          bool extra, int64_t C, cudaStream_t stream);
// dx [N, C] (stride ldx) from dxp [P, C]; add [N, C] dense or null.
void moe_gather_backward(bf16_t* dx, int64_t ldx, const bf16_t* dxp, const int32_t* row_of_pair,
                         const bf16_t* add, int64_t N, int64_t Kp, int64_t C, bool accumulate,
                         cudaStream_t stream);

}  // namespace dseek::cuda
