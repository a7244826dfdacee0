// Small kernels of the GPU decoder (contracts in gpu_decode_kernels.h): embedding rows, greedy
// argmax, and the random weights of `dseek bench decode`. The projections live in
// gpu_decode_gemv.cu, attention in gpu_decode_attn.cu, the MoE in gpu_decode_moe.cu.
#include <cfloat>
#include <cmath>
#include <cstdint>

#include "dseek/infer/gpu_decode_device.h"

namespace dseek::cuda {

namespace {

using namespace dec;

__global__ void embed_kernel(float* out, const bf16_t* table, const int32_t* ids, int64_t C) {
  pdl_wait();
  pdl_trigger();
  const int64_t r = blockIdx.x;
  const bf16* row = reinterpret_cast<const bf16*>(table) + (int64_t)ids[r] * C;
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) out[r * C + j] = __bfloat162float(row[j]);
}

__global__ void argmax_kernel(int32_t* ids, const float* logits, int64_t V) {
  __shared__ float sv[32];
  __shared__ int64_t si[32];
  pdl_wait();
  pdl_trigger();
  const int64_t r = blockIdx.x;
  const float* x = logits + r * V;
  float bv = -INFINITY;
  int64_t bi = V;
  // each thread scans ascending indices, so its first maximum is its lowest index
  if (V % 4 == 0) {  // 16-byte loads, 4 in flight
    const float4* x4 = reinterpret_cast<const float4*>(x);
    const int64_t n4 = V / 4;
#pragma unroll 4
    for (int64_t i = threadIdx.x; i < n4; i += blockDim.x) {
      const float4 q = x4[i];
      const float e[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
      for (int k = 0; k < 4; k++)
        if (e[k] > bv) {
          bv = e[k];
          bi = 4 * i + k;
        }
    }
  } else {
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x)
      if (x[v] > bv) {
        bv = x[v];
        bi = v;
      }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int64_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (ov > bv || (ov == bv && oi < bi)) {
      bv = ov;
      bi = oi;
    }
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) {
    sv[warp] = bv;
    si[warp] = bi;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < (int)(blockDim.x >> 5); w++)
      if (sv[w] > bv || (sv[w] == bv && si[w] < bi)) {
        bv = sv[w];
        bi = si[w];
      }
    ids[r] = (int32_t)(bi < V ? bi : 0);
  }
}

__device__ __forceinline__ uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

__global__ void fill_normal_kernel(bf16* p, int64_t n, float std, uint64_t seed) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    const uint64_t b = splitmix64(seed * 0x2545F4914F6CDD1Dull + (uint64_t)i);
    const float u1 = ((float)(uint32_t)(b >> 40) + 0.5f) * (1.0f / 16777216.0f);
    const float u2 = (float)(uint32_t)(b & 0xFFFFFFu) * (1.0f / 16777216.0f);
    const float z = sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
    p[i] = __float2bfloat16_rn(z * std);
  }
}

__global__ void fill_f32_kernel(float* p, int64_t n, float v) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    p[i] = v;
}

}  // namespace

void dec_embed(float* out, const bf16_t* table, const int32_t* ids, int64_t R, int64_t C,
               const DecLaunch& L) {
  if (R <= 0) return;
  launch(embed_kernel, dim3((unsigned)R), dim3(256), 0, L, out, table, ids, C);
}

void dec_argmax(int32_t* ids, const float* logits, int64_t R, int64_t V, const DecLaunch& L) {
  if (R <= 0) return;
  launch(argmax_kernel, dim3((unsigned)R), dim3(1024), 0, L, ids, logits, V);
}

void dec_fill_normal_bf16(bf16_t* p, int64_t n, float std, uint64_t seed, cudaStream_t st) {
  if (n <= 0) return;
  fill_normal_kernel<<<1024, 256, 0, st>>>(reinterpret_cast<bf16*>(p), n, std, seed);
  DSEEK_CUDA_CHECK_LAUNCH();
}

void dec_fill_f32(float* p, int64_t n, float v, cudaStream_t st) {
  if (n <= 0) return;
  fill_f32_kernel<<<256, 256, 0, st>>>(p, n, v);
  DSEEK_CUDA_CHECK_LAUNCH();
}

}  // namespace dseek::cuda
