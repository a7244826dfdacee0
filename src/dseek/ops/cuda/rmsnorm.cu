// RMSNorm forward / backward kernels (contract in rmsnorm.h). One block per row in the forward
// (two passes over the row: sum of squares, then the scaled output; the second pass hits L1/L2).
// The backward runs a persistent grid: each block walks rows n = b, b + G, ...; each thread owns
// fixed columns, so the block's dw partial lives in shared memory without atomics; a second
// kernel sums the G partials per column in block order. Rows are read in 16-byte vectors when
// every pointer and stride allows, else element by element.
#include "dseek/ops/cuda/rmsnorm.h"

#include "dseek/ops/cuda/common.cuh"  // ld/st bf16, vectors, block_sum, sm_count

namespace dseek::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

namespace {

struct FwdArgs {
  bf16_t* out;
  int64_t ldo;
  float* rstd;
  bf16_t* h_out;
  const bf16_t* x;
  int64_t ldx;
  const bf16_t* residual;
  const bf16_t* w;
  int64_t C;
  float eps;
};

template <int VEC>
__device__ __forceinline__ void load_h(float (&h)[VEC], const FwdArgs& a, int64_t off) {
  load_vec<VEC>(h, a.x + off);
  if (a.residual) {
    float r[VEC];
    load_vec<VEC>(r, a.residual + off);
#pragma unroll
    for (int i = 0; i < VEC; i++) h[i] = bf16_round(h[i] + r[i]);
  }
}

template <int VEC>
__global__ void rmsnorm_fwd_kernel(FwdArgs a) {
  __shared__ float red[32];
  const int64_t n = blockIdx.x;
  const int64_t xo = n * a.ldx;
  float ss = 0.0f;
  for (int64_t j = (int64_t)threadIdx.x * VEC; j < a.C; j += (int64_t)blockDim.x * VEC) {
    float h[VEC];
    load_h<VEC>(h, a, xo + j);
#pragma unroll
    for (int i = 0; i < VEC; i++) ss = fmaf(h[i], h[i], ss);
  }
  ss = block_sum(ss, red);
  const float r = 1.0f / sqrtf(ss / (float)a.C + a.eps);
  if (a.rstd && threadIdx.x == 0) a.rstd[n] = r;
  for (int64_t j = (int64_t)threadIdx.x * VEC; j < a.C; j += (int64_t)blockDim.x * VEC) {
    float h[VEC], w[VEC], o[VEC];
    load_h<VEC>(h, a, xo + j);
    load_vec<VEC>(w, a.w + j);
#pragma unroll
    for (int i = 0; i < VEC; i++) o[i] = (h[i] * r) * w[i];
    if (a.residual) store_vec<VEC>(a.h_out + xo + j, h);  // after every read of x (may alias)
    store_vec<VEC>(a.out + n * a.ldo + j, o);
  }
}

struct BwdArgs {
  bf16_t* dx;
  int64_t lddx;
  float* dw_part;  // [gridDim.x, C] (may be null)
  const bf16_t* dy;
  int64_t lddy;
  const bf16_t* x;
  int64_t ldx;
  const bf16_t* w;
  const float* rstd;
  int64_t N, C;
  bool accumulate;
};

template <int VEC>
__global__ void rmsnorm_bwd_kernel(BwdArgs a) {
  extern __shared__ float sdw[];  // [C] when dw_part, else unused
  __shared__ float red[32];
  const bool want_dw = a.dw_part != nullptr;
  const int64_t stride = (int64_t)blockDim.x * VEC;
  if (want_dw)
    for (int64_t j = threadIdx.x; j < a.C; j += blockDim.x) sdw[j] = 0.0f;
  __syncthreads();
  for (int64_t n = blockIdx.x; n < a.N; n += gridDim.x) {
    const float r = a.rstd[n];
    const bf16_t* xr = a.x + n * a.ldx;
    const bf16_t* gr = a.dy + n * a.lddy;
    float dot = 0.0f;
    for (int64_t j = (int64_t)threadIdx.x * VEC; j < a.C; j += stride) {
      float x[VEC], g[VEC], w[VEC];
      load_vec<VEC>(x, xr + j);
      load_vec<VEC>(g, gr + j);
      load_vec<VEC>(w, a.w + j);
#pragma unroll
      for (int i = 0; i < VEC; i++) {
        dot = fmaf(g[i] * w[i], x[i], dot);
        if (want_dw) sdw[j + i] = fmaf(g[i] * x[i], r, sdw[j + i]);  // column owned by this thread
      }
    }
    if (!a.dx) continue;  // uniform over the block
    dot = block_sum(dot, red);
    const float c = dot * r * r / (float)a.C;
    bf16_t* o = a.dx + n * a.lddx;
    for (int64_t j = (int64_t)threadIdx.x * VEC; j < a.C; j += stride) {
      float x[VEC], g[VEC], w[VEC], d[VEC];
      load_vec<VEC>(x, xr + j);
      load_vec<VEC>(g, gr + j);
      load_vec<VEC>(w, a.w + j);
#pragma unroll
      for (int i = 0; i < VEC; i++) d[i] = r * (g[i] * w[i] - x[i] * c);
      if (a.accumulate) {
        float old[VEC];
        load_vec<VEC>(old, o + j);
#pragma unroll
        for (int i = 0; i < VEC; i++) d[i] += old[i];
      }
      store_vec<VEC>(o + j, d);
    }
  }
  if (want_dw) {
    __syncthreads();
    for (int64_t j = threadIdx.x; j < a.C; j += blockDim.x)
      a.dw_part[(int64_t)blockIdx.x * a.C + j] = sdw[j];
  }
}

// dw[j] += sum_b part[b, j], b in order (deterministic).
__global__ void rmsnorm_dw_reduce_kernel(float* dw, const float* part, int64_t G, int64_t C) {
  const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= C) return;
  float acc = 0.0f;
  for (int64_t b = 0; b < G; b++) acc += part[b * C + j];
  dw[j] += acc;
}

int threads_for(int64_t C, int vec) {
  int64_t t = (C / vec + 31) / 32 * 32;
  return (int)(t < 32 ? 32 : t > 256 ? 256 : t);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// launchers

void rmsnorm_forward(bf16_t* out, int64_t ldo, float* rstd, bf16_t* h_out, const bf16_t* x,
                     int64_t ldx, const bf16_t* residual, const bf16_t* w, int64_t N, int64_t C,
                     float eps, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  if (residual && !h_out) cuda_op_fail("rmsnorm_forward: a residual needs h_out");
  if (N > 0x7fffffffLL) cuda_op_fail("rmsnorm_forward: more than 2^31 rows");
  const FwdArgs a{out, ldo, rstd, h_out, x, ldx, residual, w, C, eps};
  const bool v8 = C % 8 == 0 && vec8_ok(out, ldo) && vec8_ok(x, ldx) && vec8_ok(residual, ldx) &&
                  vec8_ok(h_out, ldx) && vec8_ok(w, 8);
  if (v8)
    rmsnorm_fwd_kernel<8><<<(unsigned)N, threads_for(C, 8), 0, stream>>>(a);
  else
    rmsnorm_fwd_kernel<1><<<(unsigned)N, threads_for(C, 1), 0, stream>>>(a);
  DSEEK_CUDA_CHECK_LAUNCH();
}

void rmsnorm_backward(bf16_t* dx, int64_t lddx, float* dw, const bf16_t* dy, int64_t lddy,
                      const bf16_t* x, int64_t ldx, const bf16_t* w, const float* rstd, int64_t N,
                      int64_t C, bool accumulate, cudaStream_t stream) {
  if (N <= 0 || C <= 0 || (!dx && !dw)) return;
  const int64_t G = N < 2 * (int64_t)sm_count() ? N : 2 * (int64_t)sm_count();
  float* part = nullptr;
  const size_t smem = dw ? (size_t)C * sizeof(float) : 0;
  if (dw) DSEEK_CUDA_CHECK(cudaMallocAsync((void**)&part, (size_t)G * C * sizeof(float), stream));
  const BwdArgs a{dx, lddx, part, dy, lddy, x, ldx, w, rstd, N, C, accumulate};
  const bool v8 =
      C % 8 == 0 && vec8_ok(dx, lddx) && vec8_ok(dy, lddy) && vec8_ok(x, ldx) && vec8_ok(w, 8);
  if (v8) {
    if (smem > 48 * 1024)
      DSEEK_CUDA_CHECK(cudaFuncSetAttribute(
          rmsnorm_bwd_kernel<8>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    rmsnorm_bwd_kernel<8><<<(unsigned)G, threads_for(C, 8), smem, stream>>>(a);
  } else {
    if (smem > 48 * 1024)
      DSEEK_CUDA_CHECK(cudaFuncSetAttribute(
          rmsnorm_bwd_kernel<1>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    rmsnorm_bwd_kernel<1><<<(unsigned)G, threads_for(C, 1), smem, stream>>>(a);
  }
  DSEEK_CUDA_CHECK_LAUNCH();
  if (dw) {
    rmsnorm_dw_reduce_kernel<<<(unsigned)((C + 255) / 256), 256, 0, stream>>>(dw, part, G, C);
    DSEEK_CUDA_CHECK_LAUNCH();
    DSEEK_CUDA_CHECK(cudaFreeAsync(part, stream));
  }
}

}  // namespace dseek::cuda
