// Grouped GEMM over G groups (the MoE experts) in ONE launch, bf16 operands, fp32 accumulation
// (mma.sync m16n8k16 tensor cores, 128x128x64 CTA tiles, 3-stage cp.async pipeline).
//
// Rows layout ("contiguous groups", as DeepGEMM's m-grouped contiguous layout): the activations of
// all groups are stacked in one row-major buffer, group g owning rows [offsets[g], offsets[g+1]).
// Group sizes are data dependent (read on the device, never copied to the host) and may be 0.
// The schedule tile_off[g] = sum_{h < g} ceil(n_h / 128) maps each 128-row tile of the grid to
// its group (the padding to whole tiles lives in the schedule, not in memory): a CTA looks its
// group up by binary search over tile_off. Both arrays come from grouped_gemm_schedule (or from
// moe_permute, which calls it).
//
// Weights of the groups are stacked too: W_g = W + g * (rows * cols of one weight). `W_last`, when
// not null, replaces the LAST group's weight (and `dW_last` its gradient): the MoE layer uses it
// to run the shared expert as one more always-selected group in the same launch.
//
//   nt (forward):         Y[r, :N]  = A[r, :K] W_g^T          W_g [N, K]  (checkpoint [out, in])
//   nn (activation grad): dA[r, :N] = dY[r, :K] W_g            W_g [K, N]
//   tn (weight grad):     dW_g[M, N] += dY_g^T A_g   fp32 +=   dY [rows, M], A [rows, N]
// for every row r of group g. bf16 outputs are one rounding of the fp32 sum; the weight gradient
// is read, added and written by one CTA per tile (deterministic, no atomics).
// Requirements (checked, dseek::Error otherwise): N, K, M multiples of 8 and every pointer 16-byte
// aligned (16-byte cp.async rows). Rows beyond a group and columns beyond N are zero-filled in
// shared memory and never stored.
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <cstdint>

#include "dseek/ops/cuda/bf16.h"  // bf16_t

namespace dseek::cuda {

constexpr int kGroupedGemmBM = 128;  // rows per tile of the schedule

struct GroupLayout {
  const int32_t* offsets = nullptr;   // [G+1] device: first row of each group, offsets[G] = total
  const int32_t* tile_off = nullptr;  // [G+1] device: first 128-row tile of each group
  int64_t G = 0;                      // groups
  int64_t max_rows = 0;               // host-side bound on offsets[G] (sizes the grid)
};

// counts [G] (device) -> offsets [G+1] and tile_off [G+1] (device). One block, G <= 8192.
void grouped_gemm_schedule(int32_t* offsets, int32_t* tile_off, const int32_t* counts, int64_t G,
                           cudaStream_t stream);

void grouped_gemm_nt(bf16_t* Y, const bf16_t* A, const bf16_t* W, const bf16_t* W_last,
                     const GroupLayout& l, int64_t N, int64_t K, cudaStream_t stream);
void grouped_gemm_nn(bf16_t* dA, const bf16_t* dY, const bf16_t* W, const bf16_t* W_last,
                     const GroupLayout& l, int64_t N, int64_t K, cudaStream_t stream);
void grouped_gemm_tn(float* dW, float* dW_last, const bf16_t* dY, const bf16_t* A,
                     const GroupLayout& l, int64_t M, int64_t N, cudaStream_t stream);

}  // namespace dseek::cuda
