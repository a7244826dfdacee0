// Device helpers shared by the .cu kernels of ops/cuda (never included by .cpp code): bf16
// loads and stores as fp32, 16-byte vector access, warp and block reductions, launch sizes.
#pragma once

#include <cuda_bf16.h>         // __nv_bfloat16, conversions
#include <cuda_runtime_api.h>  // cudaStream_t

#include <cstdint>

#include "dseek/ops/cuda/bf16.h"        // bf16_t
#include "dseek/ops/cuda/cuda_check.h"  // DSEEK_CUDA_CHECK

namespace dseek::cuda {

using bf16 = __nv_bfloat16;

__device__ __forceinline__ float ld_bf16(const bf16_t* p) {
  return __bfloat162float(*reinterpret_cast<const bf16*>(p));
}
__device__ __forceinline__ void st_bf16(bf16_t* p, float v) {
  *reinterpret_cast<bf16*>(p) = __float2bfloat16_rn(v);
}
__device__ __forceinline__ float bf16_round(float v) {
  return __bfloat162float(__float2bfloat16_rn(v));
}

// VEC consecutive bf16 (VEC = 8: one 16-byte access; VEC = 1: one element) to / from fp32.
template <int VEC>
__device__ __forceinline__ void load_vec(float (&out)[VEC], const bf16_t* p) {
  if constexpr (VEC == 8) {
    const uint4 raw = *reinterpret_cast<const uint4*>(p);
    const bf16* h = reinterpret_cast<const bf16*>(&raw);
#pragma unroll
    for (int i = 0; i < 8; i++) out[i] = __bfloat162float(h[i]);
  } else {
#pragma unroll
    for (int i = 0; i < VEC; i++) out[i] = ld_bf16(p + i);
  }
}
template <int VEC>
__device__ __forceinline__ void store_vec(bf16_t* p, const float (&v)[VEC]) {
  if constexpr (VEC == 8) {
    uint4 raw;
    bf16* h = reinterpret_cast<bf16*>(&raw);
#pragma unroll
    for (int i = 0; i < 8; i++) h[i] = __float2bfloat16_rn(v[i]);
    *reinterpret_cast<uint4*>(p) = raw;
  } else {
#pragma unroll
    for (int i = 0; i < VEC; i++) st_bf16(p + i, v[i]);
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// `red` is __shared__ float[32]; the call ends with a barrier, so `red` may be reused at once.
__device__ __forceinline__ float block_sum(float v, float* red) {
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) red[wid] = v;
  __syncthreads();
  float t = lane < nw ? red[lane] : 0.0f;
  t = warp_sum(t);
  __syncthreads();
  return t;
}

// True when p is 16-byte aligned and rows of ld elements keep it so (VEC = 8 bf16 access).
inline bool vec8_ok(const void* p, int64_t ld) {
  return p == nullptr || (((uintptr_t)p & 15) == 0 && ld % 8 == 0);
}

inline int sm_count() {
  static int n = [] {
    int dev = 0, c = 0;
    DSEEK_CUDA_CHECK(cudaGetDevice(&dev));
    DSEEK_CUDA_CHECK(cudaDeviceGetAttribute(&c, cudaDevAttrMultiProcessorCount, dev));
    return c;
  }();
  return n;
}

}  // namespace dseek::cuda
