// MoE permutation kernels (contract in moe_permute.h).
// Sort: pairs cut into chunks of kChunk; (1) per-chunk expert histograms (shared-memory atomics:
// counts are order-free), (2) one block turns them into per-chunk exclusive bases and the expert
// counts, then grouped_gemm_schedule makes offsets and the tile schedule, (3) one warp per chunk
// walks its pairs in order, 32 at a time: __match_any_sync finds the lanes with the same expert,
// the rank among them is the popcount of the lower lanes, so positions are stable.
// Row kernels (gather, combine, their backward): one warp per row, 16-byte accesses.
#include "dseek/ops/cuda/moe_permute.h"

#include "dseek/ops/cuda/common.cuh"      // load_vec, store_vec, warp_sum, vec8_ok
#include "dseek/ops/cuda/grouped_gemm.h"  // grouped_gemm_schedule

#include <initializer_list>
#include <utility>

namespace dseek::cuda {

namespace {

constexpr int kChunk = 1024;

__device__ __forceinline__ int expert_of(const int32_t* idx, int64_t p, int K, int Kp, int E) {
  const int64_t n = p / Kp;
  const int k = (int)(p - n * Kp);
  return k < K ? idx[n * K + k] : E;
}

__global__ void hist_kernel(int32_t* chunk_counts, const int32_t* idx, int64_t P, int K, int Kp,
                            int E, int G) {
  extern __shared__ int hist[];
  for (int e = threadIdx.x; e < G; e += blockDim.x) hist[e] = 0;
  __syncthreads();
  const int64_t p0 = (int64_t)blockIdx.x * kChunk;
  for (int i = threadIdx.x; i < kChunk; i += blockDim.x) {
    const int64_t p = p0 + i;
    if (p < P) atomicAdd(&hist[expert_of(idx, p, K, Kp, E)], 1);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < G; e += blockDim.x)
    chunk_counts[blockIdx.x * (int64_t)G + e] = hist[e];
}

__global__ void chunk_scan_kernel(int32_t* chunk_counts, int32_t* counts, int64_t nchunks, int G) {
  for (int e = threadIdx.x; e < G; e += blockDim.x) {
    int run = 0;
    for (int64_t c = 0; c < nchunks; c++) {
      const int v = chunk_counts[c * G + e];
      chunk_counts[c * G + e] = run;
      run += v;
    }
    counts[e] = run;
  }
}

__global__ void rank_kernel(int32_t* row_of_pair, int32_t* pair_of_row, const int32_t* chunk_base,
                            const int32_t* offsets, const int32_t* idx, int64_t P, int K, int Kp,
                            int E, int G) {
  extern __shared__ int next[];  // next free row of each group in this chunk
  const int lane = threadIdx.x;
  for (int e = lane; e < G; e += 32) next[e] = offsets[e] + chunk_base[blockIdx.x * (int64_t)G + e];
  __syncwarp();
  const int64_t p0 = (int64_t)blockIdx.x * kChunk;
  for (int i = 0; i < kChunk; i += 32) {
    const int64_t p = p0 + i + lane;
    const int e = p < P ? expert_of(idx, p, K, Kp, E) : -1;
    const unsigned same = __match_any_sync(0xffffffffu, e);
    const int rank = __popc(same & ((1u << lane) - 1u));
    int row = 0;
    if (e >= 0) row = next[e] + rank;
    __syncwarp();
    if (e >= 0) {
      row_of_pair[p] = row;
      pair_of_row[row] = (int32_t)p;
      if (rank == 0) next[e] += __popc(same);  // the lowest lane of the set advances the counter
    }
    __syncwarp();
  }
}

constexpr int kRowsPerBlock = 8;  // warps per block, one row each

__global__ void gather_kernel(bf16_t* xp, const bf16_t* x, int64_t ldx, const int32_t* pair_of_row,
                              int64_t P, int Kp, int C) {
  const int64_t r = (int64_t)blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5);
  if (r >= P) return;
  const int lane = threadIdx.x & 31;
  const bf16_t* src = x + (int64_t)(pair_of_row[r] / Kp) * ldx;
  bf16_t* dst = xp + r * C;
  for (int c = lane * 8; c < C; c += 256)
    *reinterpret_cast<uint4*>(dst + c) = *reinterpret_cast<const uint4*>(src + c);
}

__global__ void combine_kernel(bf16_t* out, int64_t ldo, const bf16_t* y, const float* w,
                               const int32_t* row_of_pair, const bf16_t* add, int64_t N, int K,
                               int Kp, int C) {
  const int64_t n = (int64_t)blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5);
  if (n >= N) return;
  const int lane = threadIdx.x & 31;
  for (int c = lane * 8; c < C; c += 256) {
    float acc[8];
#pragma unroll
    for (int i = 0; i < 8; i++) acc[i] = 0.0f;
    for (int k = 0; k < Kp; k++) {
      const float wk = k < K ? w[n * K + k] : 1.0f;
      float v[8];
      load_vec<8>(v, y + (int64_t)row_of_pair[n * Kp + k] * C + c);
#pragma unroll
      for (int i = 0; i < 8; i++) acc[i] = __fmaf_rn(wk, v[i], acc[i]);  // fixed: one rounding
    }
    if (add) {
      float v[8];
      load_vec<8>(v, add + n * C + c);
#pragma unroll
      for (int i = 0; i < 8; i++) acc[i] += v[i];
    }
    store_vec<8>(out + n * ldo + c, acc);
  }
}

__global__ void combine_bwd_kernel(bf16_t* dy, float* dw, const bf16_t* dout, int64_t ldd,
                                   const bf16_t* y, const float* w, const int32_t* pair_of_row,
                                   int64_t P, int K, int Kp, int C) {
  const int64_t r = (int64_t)blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5);
  if (r >= P) return;
  const int lane = threadIdx.x & 31;
  const int64_t p = pair_of_row[r], n = p / Kp;
  const int k = (int)(p - n * Kp);
  const float wk = k < K ? w[n * K + k] : 1.0f;
  float dot = 0.0f;
  for (int c = lane * 8; c < C; c += 256) {
    float d[8], v[8], o[8];
    load_vec<8>(d, dout + n * ldd + c);
    load_vec<8>(v, y + r * C + c);
#pragma unroll
    for (int i = 0; i < 8; i++) {
      dot += d[i] * v[i];
      o[i] = wk * d[i];
    }
    store_vec<8>(dy + r * C + c, o);
  }
  dot = warp_sum(dot);
  if (dw && k < K && lane == 0) dw[n * K + k] = dot;
}

__global__ void gather_bwd_kernel(bf16_t* dx, int64_t ldx, const bf16_t* dxp,
                                  const int32_t* row_of_pair, const bf16_t* add, int64_t N, int Kp,
                                  int C, bool accumulate) {
  const int64_t n = (int64_t)blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5);
  if (n >= N) return;
  const int lane = threadIdx.x & 31;
  for (int c = lane * 8; c < C; c += 256) {
    float acc[8], v[8];
#pragma unroll
    for (int i = 0; i < 8; i++) acc[i] = 0.0f;
    for (int k = 0; k < Kp; k++) {
      load_vec<8>(v, dxp + (int64_t)row_of_pair[n * Kp + k] * C + c);
#pragma unroll
      for (int i = 0; i < 8; i++) acc[i] += v[i];
    }
    if (add) {
      load_vec<8>(v, add + n * C + c);
#pragma unroll
      for (int i = 0; i < 8; i++) acc[i] += v[i];
    }
    if (accumulate) {
      load_vec<8>(v, dx + n * ldx + c);
#pragma unroll
      for (int i = 0; i < 8; i++) acc[i] += v[i];
    }
    store_vec<8>(dx + n * ldx + c, acc);
  }
}

unsigned row_blocks(int64_t rows) {
  const int64_t b = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  if (b > 0x7fffffffLL) cuda_op_fail("moe_permute: too many rows for one launch");
  return (unsigned)b;
}
void check_c(const char* what, int64_t C,
             std::initializer_list<std::pair<const void*, int64_t>> ps) {
  if (C % 8 != 0 || C > 0x7fffffff) cuda_op_fail(what);
  for (const auto& p : ps)
    if (!vec8_ok(p.first, p.second)) cuda_op_fail(what);
}

}  // namespace

int64_t moe_permute_chunks(int64_t P) {
  return (P + kChunk - 1) / kChunk;
}

void moe_permute_plan(const MoePermutePlan& plan, const int32_t* idx, int64_t N, int64_t K,
                      int64_t E, bool extra, cudaStream_t stream) {
  const int64_t Kp = K + (extra ? 1 : 0), G = E + (extra ? 1 : 0), P = N * Kp;
  if (N < 0 || K < 0 || E <= 0 || G > 8192 || P > 0x7fffffffLL)
    cuda_op_fail("moe_permute_plan: need N, K >= 0, 1 <= E, E + extra <= 8192, N * Kp < 2^31");
  const int64_t nchunks = moe_permute_chunks(P);
  const size_t smem = (size_t)G * sizeof(int);
  if (nchunks > 0) {
    hist_kernel<<<(unsigned)nchunks, 256, smem, stream>>>(plan.chunk_counts, idx, P, (int)K,
                                                          (int)Kp, (int)E, (int)G);
    DSEEK_CUDA_CHECK_LAUNCH();
    chunk_scan_kernel<<<1, 1024, 0, stream>>>(plan.chunk_counts, plan.counts, nchunks, (int)G);
    DSEEK_CUDA_CHECK_LAUNCH();
  } else {
    DSEEK_CUDA_CHECK(cudaMemsetAsync(plan.counts, 0, G * sizeof(int32_t), stream));
  }
  grouped_gemm_schedule(plan.offsets, plan.tile_off, plan.counts, G, stream);
  if (nchunks > 0) {
    rank_kernel<<<(unsigned)nchunks, 32, smem, stream>>>(plan.row_of_pair, plan.pair_of_row,
                                                         plan.chunk_counts, plan.offsets, idx, P,
                                                         (int)K, (int)Kp, (int)E, (int)G);
    DSEEK_CUDA_CHECK_LAUNCH();
  }
}

void moe_gather(bf16_t* xp, const bf16_t* x, int64_t ldx, const int32_t* pair_of_row, int64_t P,
                int64_t Kp, int64_t C, cudaStream_t stream) {
  if (P <= 0 || C <= 0) return;
  check_c("moe_gather: C % 8 == 0 and 16-byte aligned rows needed", C, {{xp, C}, {x, ldx}});
  gather_kernel<<<row_blocks(P), 32 * kRowsPerBlock, 0, stream>>>(xp, x, ldx, pair_of_row, P,
                                                                  (int)Kp, (int)C);
  DSEEK_CUDA_CHECK_LAUNCH();
}

void moe_combine(bf16_t* out, int64_t ldo, const bf16_t* y, const float* w,
                 const int32_t* row_of_pair, const bf16_t* add, int64_t N, int64_t K, bool extra,
                 int64_t C, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  check_c("moe_combine: C % 8 == 0 and 16-byte aligned rows needed", C,
          {{out, ldo}, {y, C}, {add, C}});
  combine_kernel<<<row_blocks(N), 32 * kRowsPerBlock, 0, stream>>>(
      out, ldo, y, w, row_of_pair, add, N, (int)K, (int)(K + (extra ? 1 : 0)), (int)C);
  DSEEK_CUDA_CHECK_LAUNCH();
}

void moe_combine_backward(bf16_t* dy, float* dw, const bf16_t* dout, int64_t ldd, const bf16_t* y,
                          const float* w, const int32_t* pair_of_row, int64_t N, int64_t K,
                          bool extra, int64_t C, cudaStream_t stream) {
  const int64_t Kp = K + (extra ? 1 : 0), P = N * Kp;
  if (P <= 0 || C <= 0) return;
  check_c("moe_combine_backward: C % 8 == 0 and 16-byte aligned rows needed", C,
          {{dy, C}, {dout, ldd}, {y, C}});
  combine_bwd_kernel<<<row_blocks(P), 32 * kRowsPerBlock, 0, stream>>>(
      dy, dw, dout, ldd, y, w, pair_of_row, P, (int)K, (int)Kp, (int)C);
  DSEEK_CUDA_CHECK_LAUNCH();
}

void moe_gather_backward(bf16_t* dx, int64_t ldx, const bf16_t* dxp, const int32_t* row_of_pair,
                         const bf16_t* add, int64_t N, int64_t Kp, int64_t C, bool accumulate,
                         cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  check_c("moe_gather_backward: C % 8 == 0 and 16-byte aligned rows needed", C,
          {{dx, ldx}, {dxp, C}, {add, C}});
  gather_bwd_kernel<<<row_blocks(N), 32 * kRowsPerBlock, 0, stream>>>(
      dx, ldx, dxp, row_of_pair, add, N, (int)Kp, (int)C, accumulate);
  DSEEK_CUDA_CHECK_LAUNCH();
}

}  // namespace dseek::cuda
