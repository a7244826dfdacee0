// RoPE kernels (contract in rope.h): one thread per rotated pair, the pair index fastest so a
// warp covers consecutive values of one head. Forward and backward differ only in the sign of
// sin, so one kernel serves both.
#include "dseek/ops/cuda/rope.h"

#include "dseek/ops/cuda/common.cuh"  // ld/st bf16

namespace dseek::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

namespace {

__global__ void rope_kernel(bf16_t* x, int64_t N, int64_t nh, int64_t ld_tok, int64_t ld_head,
                            const float* cos_t, const float* sin_t, int64_t half, bool interleaved,
                            float sin_sign) {
  const int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= N * nh * half) return;
  const int64_t i = e % half;
  const int64_t h = (e / half) % nh;
  const int64_t n = e / (half * nh);
  bf16_t* v = x + n * ld_tok + h * ld_head;
  bf16_t* pa = interleaved ? v + 2 * i : v + i;
  bf16_t* pb = interleaved ? v + 2 * i + 1 : v + i + half;
  const float c = cos_t[n * half + i], s = sin_sign * sin_t[n * half + i];
  const float a = ld_bf16(pa), b = ld_bf16(pb);
  st_bf16(pa, a * c - b * s);
  st_bf16(pb, b * c + a * s);
}

void rope_launch(bf16_t* x, int64_t N, int64_t nh, int64_t ld_tok, int64_t ld_head,
                 const float* cos_t, const float* sin_t, int64_t half, bool interleaved,
                 float sin_sign, cudaStream_t stream) {
  const int64_t total = N * nh * half;
  if (total <= 0) return;
  const int threads = 256;
  const int64_t blocks = (total + threads - 1) / threads;
  if (blocks > 0x7fffffffLL) cuda_op_fail("rope: too many elements for one launch");
  rope_kernel<<<(unsigned)blocks, threads, 0, stream>>>(x, N, nh, ld_tok, ld_head, cos_t, sin_t,
                                                        half, interleaved, sin_sign);
  DSEEK_CUDA_CHECK_LAUNCH();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// launchers

void rope_forward(bf16_t* x, int64_t N, int64_t nh, int64_t ld_tok, int64_t ld_head,
                  const float* cos_t, const float* sin_t, int64_t half, bool interleaved,
                  cudaStream_t stream) {
  rope_launch(x, N, nh, ld_tok, ld_head, cos_t, sin_t, half, interleaved, 1.0f, stream);
}

void rope_backward(bf16_t* dx, int64_t N, int64_t nh, int64_t ld_tok, int64_t ld_head,
                   const float* cos_t, const float* sin_t, int64_t half, bool interleaved,
                   cudaStream_t stream) {
  rope_launch(dx, N, nh, ld_tok, ld_head, cos_t, sin_t, half, interleaved, -1.0f, stream);
}

}  // namespace dseek::cuda
