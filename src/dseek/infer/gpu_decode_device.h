// Device helpers of the GPU decoder's kernels (included by infer/gpu_decode_*.cu only, never by
// .cpp code): programmatic dependent launch, the launch wrapper, streaming 16-byte weight loads
// and the GEMV core every projection kernel is built from.
//
// GEMV core: a subgroup of LPR lanes computes NR weight rows (bf16, K elements) against up to RB
// fp32 input rows: lane sl reads the 16-byte chunks sl, sl + LPR, ... of each weight row, kU
// chunks per row in flight before their FMAs, each input chunk loaded once for the NR rows; then
// a butterfly sum over the subgroup leaves every lane with the dot products. The first batch of
// weight loads can be issued before pdl_wait() (weights never change), so a kernel's blocks fetch
// weights while the previous kernel finishes. With a fused RMSNorm the core also sums the squares
// of the raw inputs (each subgroup sees whole input rows) and multiplies them by the norm weight;
// the caller scales the dot products by rstd.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "dseek/infer/gpu_decode_kernels.h"
#include "dseek/ops/cuda/common.cuh"  // warp_sum, warp_max, block_sum
#include "dseek/ops/cuda/cuda_check.h"

namespace dseek::cuda::dec {

using bf16 = __nv_bfloat16;

constexpr int kWarps = 8;  // warps per projection block
constexpr int kThreads = kWarps * 32;
constexpr int kU = 4;          // 16-byte weight loads in flight per lane and weight row
constexpr int kU1 = 8;         // the same for one input row: a 2048-wide row slice in one batch
constexpr int kFusedRows = 8;  // MoE down + combine in one launch up to this many rows
constexpr int kTile = 16;      // attention: cache tokens per shared-memory tile

// ---- programmatic dependent launch ---------------------------------------------------------

// Waits until the kernel before this one (in stream order) has completed and its writes are
// visible; a no-op when this kernel was not launched as a programmatic dependent.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
// Lets the next kernel's blocks start (they still wait for this kernel's completion).
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

template <typename... KArgs, typename... Args>
void launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, const DecLaunch& L,
            Args... args) {
  if (smem > 48 * 1024)
    DSEEK_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = L.stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = L.pdl ? 1 : 0;
  DSEEK_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, args...));
}

// ---- small helpers --------------------------------------------------------------------------

__device__ __forceinline__ uint4 ld_stream(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// Asks L2 to fetch [p, p + bytes) (16-byte aligned, bytes % 16 == 0) without waiting for it.
__device__ __forceinline__ void prefetch_l2(const void* p, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes) : "memory");
#endif
}

__device__ __forceinline__ float dot8(const uint4& w, const float4& a, const float4& b, float acc) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&w);
  const float2 f0 = __bfloat1622float2(h[0]), f1 = __bfloat1622float2(h[1]);
  const float2 f2 = __bfloat1622float2(h[2]), f3 = __bfloat1622float2(h[3]);
  acc = fmaf(f0.x, a.x, acc);
  acc = fmaf(f0.y, a.y, acc);
  acc = fmaf(f1.x, a.z, acc);
  acc = fmaf(f1.y, a.w, acc);
  acc = fmaf(f2.x, b.x, acc);
  acc = fmaf(f2.y, b.y, acc);
  acc = fmaf(f3.x, b.z, acc);
  acc = fmaf(f3.y, b.w, acc);
  return acc;
}

__device__ __forceinline__ float sumsq8(const float4& a, const float4& b, float s) {
  s = fmaf(a.x, a.x, s);
  s = fmaf(a.y, a.y, s);
  s = fmaf(a.z, a.z, s);
  s = fmaf(a.w, a.w, s);
  s = fmaf(b.x, b.x, s);
  s = fmaf(b.y, b.y, s);
  s = fmaf(b.z, b.z, s);
  s = fmaf(b.w, b.w, s);
  return s;
}

__device__ __forceinline__ float4 mul4(const float4& a, const float4& b) {
  return make_float4(a.x * b.x, a.y * b.y, a.z * b.z, a.w * b.w);
}

// Attention splits: chunk = ceil(len / n_splits) raised to min_chunk and to a multiple of kTile;
// active = ceil(len / chunk) <= n_splits.
__host__ __device__ inline void split_plan(int64_t len, int64_t n_splits, int64_t min_chunk,
                                           int64_t& active, int64_t& chunk) {
  int64_t c = (len + n_splits - 1) / n_splits;
  if (c < min_chunk) c = min_chunk;
  c = (c + kTile - 1) / kTile * kTile;
  chunk = c;
  active = (len + c - 1) / c;
}

// ---- GEMV core ------------------------------------------------------------------------------

template <int NR, int KU = kU>
struct WBatch {
  uint4 v[NR][KU];
};

template <int LPR, int NR, int KU>
__device__ __forceinline__ void load_w(WBatch<NR, KU>& b, const uint4* const (&w)[NR], int64_t base,
                                       int64_t nch) {
#pragma unroll
  for (int u = 0; u < KU; u++) {
    const int64_t c = base + (int64_t)u * LPR;
#pragma unroll
    for (int i = 0; i < NR; i++) b.v[i][u] = c < nch ? ld_stream(w[i] + c) : make_uint4(0, 0, 0, 0);
  }
}

// Input row b is p + b * ld.
struct XRows {
  const float* p;
  int64_t ld;
  __device__ __forceinline__ void get(int b, int64_t c, float4& lo, float4& hi) const {
    const float4* q = reinterpret_cast<const float4*>(p + b * ld) + 2 * c;
    lo = q[0];
    hi = q[1];
  }
};
// Input row b is p + rows[b] * ld.
template <int RB>
struct XGather {
  const float* p;
  int64_t ld;
  int32_t rows[RB];
  __device__ __forceinline__ void get(int b, int64_t c, float4& lo, float4& hi) const {
    const float4* q = reinterpret_cast<const float4*>(p + (int64_t)rows[b] * ld) + 2 * c;
    lo = q[0];
    hi = q[1];
  }
};

// acc[i][b] = W_i . x_b (x_b * nw if NORM, then ss[b] = sum of the raw x_b^2) for b < nb, summed
// over the subgroup: every lane returns the totals. wb holds the first batch when have_first.
template <int LPR, int NR, int RB, bool NORM, int KU, class X>
__device__ __forceinline__ void gemv_pass(float (&acc)[NR][RB], float (&ss)[RB],
                                          const uint4* const (&w)[NR], int64_t nch, int sl, int nb,
                                          const X& x, const float* nw, WBatch<NR, KU>& wb,
                                          bool have_first) {
#pragma unroll
  for (int b = 0; b < RB; b++) {
    ss[b] = 0.0f;
#pragma unroll
    for (int i = 0; i < NR; i++) acc[i][b] = 0.0f;
  }
  for (int64_t base = sl; base < nch; base += (int64_t)KU * LPR) {
    if (!have_first) load_w<LPR, NR, KU>(wb, w, base, nch);
    have_first = false;
#pragma unroll
    for (int u = 0; u < KU; u++) {
      const int64_t c = base + (int64_t)u * LPR;
      if (c < nch) {
        float4 na = make_float4(0, 0, 0, 0), nb4 = na;
        if constexpr (NORM) {
          const float4* q = reinterpret_cast<const float4*>(nw) + 2 * c;
          na = q[0];
          nb4 = q[1];
        }
#pragma unroll
        for (int b = 0; b < RB; b++) {
          if (b < nb) {
            float4 lo, hi;
            x.get(b, c, lo, hi);
            if constexpr (NORM) {
              ss[b] = sumsq8(lo, hi, ss[b]);
              lo = mul4(lo, na);
              hi = mul4(hi, nb4);
            }
#pragma unroll
            for (int i = 0; i < NR; i++) acc[i][b] = dot8(wb.v[i][u], lo, hi, acc[i][b]);
          }
        }
      }
    }
  }
#pragma unroll
  for (int o = LPR / 2; o > 0; o >>= 1) {
#pragma unroll
    for (int b = 0; b < RB; b++) {
      if constexpr (NORM) ss[b] += __shfl_xor_sync(0xffffffffu, ss[b], o);
#pragma unroll
      for (int i = 0; i < NR; i++) acc[i][b] += __shfl_xor_sync(0xffffffffu, acc[i][b], o);
    }
  }
}

__device__ __forceinline__ float rms_scale(float ss, int64_t K, float eps) {
  return 1.0f / sqrtf(ss / (float)K + eps);
}

// Lanes per weight row for K inputs: whole warps for long rows, fewer for short ones.
inline int lanes_per_row(int64_t K) {
  const int64_t nch = K / 8;
  return nch >= 32 ? 32 : nch >= 8 ? 8 : 2;
}

// One block's share of the DecGemv (weight-row pairs, or gate/up units with swiglu): block blk
// covers kWarps * (32 / LPR) pairs; every input row, RB rows per pass.
template <int LPR, int RB, bool NORM>
__device__ __forceinline__ void dense_body(const DecGemv& a, int64_t blk) {
  constexpr int NR = 2, GPW = 32 / LPR, KU = RB == 1 ? kU1 : kU;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, sub = lane / LPR, sl = lane % LPR;
  const int64_t g = (blk * kWarps + warp) * GPW + sub;
  const int64_t n_units = a.swiglu ? a.N / 2 : (a.N + 1) / 2;
  const bool valid = g < n_units;
  const int64_t gg = valid ? g : n_units - 1;
  const int64_t r0 = a.swiglu ? gg : 2 * gg;
  const int64_t r1 = a.swiglu ? gg + a.N / 2 : (2 * gg + 1 < a.N ? 2 * gg + 1 : 2 * gg);
  const uint4* w[NR] = {reinterpret_cast<const uint4*>(a.W + r0 * a.K),
                        reinterpret_cast<const uint4*>(a.W + r1 * a.K)};
  const int64_t nch = a.K / 8;
  WBatch<NR, KU> wb;
  load_w<LPR, NR, KU>(wb, w, sl, nch);
  pdl_wait();
  pdl_trigger();
  const float* xb = a.x + (a.rows_per_group ? (r0 / a.rows_per_group) * a.group_stride : 0);
  bool first = true;
  for (int64_t rg = 0; rg < a.R; rg += RB) {
    const int nb = (int)(a.R - rg < RB ? a.R - rg : RB);
    float acc[NR][RB], ss[RB];
    gemv_pass<LPR, NR, RB, NORM>(acc, ss, w, nch, sl, nb, XRows{xb + rg * a.ldx, a.ldx}, a.norm_w,
                                 wb, first);
    first = false;
    if (!valid || sl != 0) continue;
#pragma unroll
    for (int b = 0; b < RB; b++) {
      if (b >= nb) continue;
      float v0 = acc[0][b], v1 = acc[1][b];
      if constexpr (NORM) {
        const float rs = rms_scale(ss[b], a.K, a.eps);
        v0 *= rs;
        v1 *= rs;
      }
      float* y = a.y + (rg + b) * a.ldy;
      if (a.swiglu) {
        y[r0] = (v0 / (1.0f + expf(-v0))) * v1;
      } else {
        y[r0] = a.accumulate ? y[r0] + v0 : v0;
        if (r1 != r0) y[r1] = a.accumulate ? y[r1] + v1 : v1;
      }
    }
  }
}

inline int64_t dense_blocks(const DecGemv& a, int lpr) {
  const int64_t n_units = a.swiglu ? a.N / 2 : (a.N + 1) / 2;
  const int64_t per = (int64_t)kWarps * (32 / lpr);
  return (n_units + per - 1) / per;
}

// Checks shared by the GEMV launchers (one-line errors through cuda_op_fail).
inline void check_gemv(const DecGemv& a) {
  if (a.K % 8 != 0 || ((uintptr_t)a.W & 15) != 0 || ((uintptr_t)a.x & 15) != 0 ||
      (a.ldx % 4) != 0 || (a.group_stride % 4) != 0 || (a.swiglu && a.N % 2 != 0) ||
      (a.norm_w && ((uintptr_t)a.norm_w & 15) != 0))
    cuda_op_fail("dec_gemv: K must be a multiple of 8 with 16-byte aligned rows and inputs");
}

// Calls f(integral_constant LPR, integral_constant RB) for the run-time lanes-per-row (32, 8, 2)
// and rows-per-pass (1 or 8).
template <class F>
void dispatch_lpr_rb(int lpr, int64_t rb, F&& f) {
  auto with_rb = [&](auto lpr_c) {
    if (rb == 1)
      f(lpr_c, std::integral_constant<int, 1>{});
    else
      f(lpr_c, std::integral_constant<int, 8>{});
  };
  if (lpr == 32)
    with_rb(std::integral_constant<int, 32>{});
  else if (lpr == 8)
    with_rb(std::integral_constant<int, 8>{});
  else
    with_rb(std::integral_constant<int, 2>{});
}

}  // namespace dseek::cuda::dec
