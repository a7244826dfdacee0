// SwiGLU kernels (contract in swiglu.h): elementwise over [N, I]; each thread handles VEC = 8
// consecutive columns of a row with 16-byte accesses when every pointer and stride allows it,
// otherwise one element.
#include "dseek/ops/cuda/swiglu.h"

#include "dseek/ops/cuda/common.cuh"  // load_vec, store_vec, vec8_ok

namespace dseek::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

namespace {

// sigmoid(g) and 1 - sigmoid(g) from e = exp(-|g|) in (0, 1]
__device__ __forceinline__ void sig_pair(float g, float* sig, float* oms) {
  const float e = expf(-fabsf(g));
  const float inv = 1.0f / (1.0f + e);
  *sig = g >= 0.0f ? inv : e * inv;
  *oms = g >= 0.0f ? e * inv : inv;
}

template <int VEC>
__global__ void swiglu_fwd_kernel(bf16_t* out, int64_t ld_out, const bf16_t* gate, const bf16_t* up,
                                  int64_t ld_in, int64_t N, int64_t I) {
  const int64_t per_row = I / VEC;
  const int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= N * per_row) return;
  const int64_t n = e / per_row, i = (e % per_row) * VEC;
  float g[VEC], u[VEC], o[VEC];
  load_vec<VEC>(g, gate + n * ld_in + i);
  load_vec<VEC>(u, up + n * ld_in + i);
#pragma unroll
  for (int k = 0; k < VEC; k++) {
    float sig, oms;
    sig_pair(g[k], &sig, &oms);
    o[k] = g[k] * sig * u[k];
  }
  store_vec<VEC>(out + n * ld_out + i, o);
}

template <int VEC>
__global__ void swiglu_bwd_kernel(bf16_t* dgate, bf16_t* dup, int64_t ld_in, const bf16_t* dout,
                                  int64_t ld_out, const bf16_t* gate, const bf16_t* up, int64_t N,
                                  int64_t I) {
  const int64_t per_row = I / VEC;
  const int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= N * per_row) return;
  const int64_t n = e / per_row, i = (e % per_row) * VEC;
  float g[VEC], u[VEC], d[VEC], dg[VEC], du[VEC];
  load_vec<VEC>(g, gate + n * ld_in + i);
  load_vec<VEC>(u, up + n * ld_in + i);
  load_vec<VEC>(d, dout + n * ld_out + i);
#pragma unroll
  for (int k = 0; k < VEC; k++) {
    float sig, oms;
    sig_pair(g[k], &sig, &oms);
    du[k] = d[k] * (g[k] * sig);
    dg[k] = d[k] * u[k] * (sig * (1.0f + g[k] * oms));
  }
  if (dup) store_vec<VEC>(dup + n * ld_in + i, du);
  if (dgate) store_vec<VEC>(dgate + n * ld_in + i, dg);
}

unsigned blocks_for(int64_t items, int threads) {
  const int64_t b = (items + threads - 1) / threads;
  if (b > 0x7fffffffLL) cuda_op_fail("swiglu: too many elements for one launch");
  return (unsigned)b;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// launchers

void swiglu_forward(bf16_t* out, int64_t ld_out, const bf16_t* gate, const bf16_t* up,
                    int64_t ld_in, int64_t N, int64_t I, cudaStream_t stream) {
  if (N <= 0 || I <= 0) return;
  const int threads = 256;
  if (I % 8 == 0 && vec8_ok(out, ld_out) && vec8_ok(gate, ld_in) && vec8_ok(up, ld_in))
    swiglu_fwd_kernel<8><<<blocks_for(N * I / 8, threads), threads, 0, stream>>>(out, ld_out, gate,
                                                                                 up, ld_in, N, I);
  else
    swiglu_fwd_kernel<1>
        <<<blocks_for(N * I, threads), threads, 0, stream>>>(out, ld_out, gate, up, ld_in, N, I);
  DSEEK_CUDA_CHECK_LAUNCH();
}

void swiglu_backward(bf16_t* dgate, bf16_t* dup, int64_t ld_in, const bf16_t* dout, int64_t ld_out,
                     const bf16_t* gate, const bf16_t* up, int64_t N, int64_t I,
                     cudaStream_t stream) {
  if (N <= 0 || I <= 0 || (!dgate && !dup)) return;
  const int threads = 256;
  if (I % 8 == 0 && vec8_ok(dgate, ld_in) && vec8_ok(dup, ld_in) && vec8_ok(dout, ld_out) &&
      vec8_ok(gate, ld_in) && vec8_ok(up, ld_in))
    swiglu_bwd_kernel<8><<<blocks_for(N * I / 8, threads), threads, 0, stream>>>(
        dgate, dup, ld_in, dout, ld_out, gate, up, N, I);
  else
    swiglu_bwd_kernel<1><<<blocks_for(N * I, threads), threads, 0, stream>>>(
        dgate, dup, ld_in, dout, ld_out, gate, up, N, I);
  DSEEK_CUDA_CHECK_LAUNCH();
}

}  // namespace dseek::cuda
