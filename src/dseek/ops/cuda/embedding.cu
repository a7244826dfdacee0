// Embedding kernels (contract in embedding.h): one block per token row; the forward copies in
// 16-byte vectors when C and the pointers allow it; the backward adds each element with one fp32
// atomicAdd (red.global.add: no return value, no retry loop).
#include "dseek/ops/cuda/embedding.h"

#include "dseek/ops/cuda/common.cuh"  // ld_bf16, vec8_ok

namespace dseek::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

namespace {

template <int VEC>
__global__ void embedding_fwd_kernel(bf16_t* out, const bf16_t* table, const int32_t* ids,
                                     int64_t C, int64_t V) {
  const int64_t n = blockIdx.x;
  const int32_t id = ids[n];
  bf16_t* o = out + n * C;
  if (id < 0 || id >= V) {
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) o[j] = 0x7fc0;  // bf16 quiet NaN
    return;
  }
  const bf16_t* r = table + (int64_t)id * C;
  if constexpr (VEC == 8) {
    for (int64_t j = (int64_t)threadIdx.x * 8; j < C; j += (int64_t)blockDim.x * 8)
      *reinterpret_cast<uint4*>(o + j) = *reinterpret_cast<const uint4*>(r + j);
  } else {
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) o[j] = r[j];
  }
}

__global__ void embedding_bwd_kernel(float* dtable, const bf16_t* dout, const int32_t* ids,
                                     int64_t C, int64_t V) {
  const int64_t n = blockIdx.x;
  const int32_t id = ids[n];
  if (id < 0 || id >= V) return;
  float* o = dtable + (int64_t)id * C;
  const bf16_t* g = dout + n * C;
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) atomicAdd(o + j, ld_bf16(g + j));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// launchers

void embedding_forward(bf16_t* out, const bf16_t* table, const int32_t* ids, int64_t N, int64_t C,
                       int64_t V, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  if (N > 0x7fffffffLL) cuda_op_fail("embedding_forward: more than 2^31 tokens");
  if (C % 8 == 0 && vec8_ok(out, C) && vec8_ok(table, C))
    embedding_fwd_kernel<8><<<(unsigned)N, 128, 0, stream>>>(out, table, ids, C, V);
  else
    embedding_fwd_kernel<1><<<(unsigned)N, 256, 0, stream>>>(out, table, ids, C, V);
  DSEEK_CUDA_CHECK_LAUNCH();
}

void embedding_backward(float* dtable, const bf16_t* dout, const int32_t* ids, int64_t N, int64_t C,
                        int64_t V, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  if (N > 0x7fffffffLL) cuda_op_fail("embedding_backward: more than 2^31 tokens");
  embedding_bwd_kernel<<<(unsigned)N, 256, 0, stream>>>(dtable, dout, ids, C, V);
  DSEEK_CUDA_CHECK_LAUNCH();
}

}  // namespace dseek::cuda
