// Kernels of model/gpu_model_kernels.h.
#include "dseek/model/gpu_model_kernels.h"

#include "dseek/ops/cuda/common.cuh"  // ld_bf16, st_bf16

namespace dseek::cuda {

namespace {

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n) {
  return (unsigned)((n + kThreads - 1) / kThreads);
}

__global__ void build_k_kernel(bf16_t* K, const bf16_t* kv, const bf16_t* kpe, int64_t ld_pe,
                               int64_t N, int64_t H, int64_t Dn, int64_t Dr, int64_t Dv) {
  const int64_t Dqk = Dn + Dr, Dkv = Dn + Dv;
  const int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= N * H * Dqk) return;
  const int64_t j = e % Dqk, nh = e / Dqk, n = nh / H;
  K[e] = j < Dn ? kv[nh * Dkv + j] : kpe[n * ld_pe + (j - Dn)];
}

__global__ void build_k_bwd_nope_kernel(bf16_t* dkv, const bf16_t* dK, int64_t N, int64_t H,
                                        int64_t Dn, int64_t Dr, int64_t Dv) {
  const int64_t Dqk = Dn + Dr, Dkv = Dn + Dv;
  const int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= N * H * Dn) return;
  const int64_t j = e % Dn, nh = e / Dn;
  dkv[nh * Dkv + j] = dK[nh * Dqk + j];
}

__global__ void build_k_bwd_pe_kernel(bf16_t* dkpe, int64_t ld_pe, const bf16_t* dK, int64_t N,
                                      int64_t H, int64_t Dn, int64_t Dr) {
  const int64_t Dqk = Dn + Dr;
  const int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= N * Dr) return;
  const int64_t j = e % Dr, n = e / Dr;
  float s = 0.0f;
  for (int64_t h = 0; h < H; h++) s += ld_bf16(dK + (n * H + h) * Dqk + Dn + j);
  st_bf16(dkpe + n * ld_pe + j, s);
}

__global__ void cast_kernel(bf16_t* y, const float* x, int64_t n) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) st_bf16(y + i, x[i]);
}

constexpr int64_t kSumsqChunk = 1 << 16;  // elements per block

__global__ void sumsq_kernel(double* partial, const float* x, int64_t n) {
  const int64_t b0 = (int64_t)blockIdx.x * kSumsqChunk;
  const int64_t b1 = b0 + kSumsqChunk < n ? b0 + kSumsqChunk : n;
  double s = 0.0;
  for (int64_t i = b0 + threadIdx.x; i < b1; i += blockDim.x) s += (double)x[i] * x[i];
  __shared__ double red[kThreads];
  red[threadIdx.x] = s;
  __syncthreads();
  for (int o = kThreads / 2; o > 0; o >>= 1) {
    if ((int)threadIdx.x < o) red[threadIdx.x] += red[threadIdx.x + o];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = red[0];
}

// per token: S_t = sum_e s[t, e] (fp64)
__global__ void tok_sum_kernel(double* S, const float* scores, int64_t N, int64_t E) {
  const int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= N) return;
  double s = 0.0;
  for (int64_t e = 0; e < E; e++) s += scores[t * E + e];
  S[t] = s;
}

// one block per group; shared f[E], P[E] (fp64)
__global__ void balance_kernel(double* group_loss, float* dlogits, const float* scores,
                               const int32_t* idx, const double* S, int64_t E, int64_t K,
                               int64_t group_T, int64_t n_groups, bool sigmoid, float alpha) {
  __shared__ double f[1024], P[1024];
  __shared__ unsigned cnt[1024];
  const int64_t g0 = (int64_t)blockIdx.x * group_T;
  for (int64_t e = threadIdx.x; e < E; e += blockDim.x) cnt[e] = 0;
  __syncthreads();
  for (int64_t i = threadIdx.x; i < group_T * K; i += blockDim.x) atomicAdd(&cnt[idx[g0 * K + i]], 1u);
  for (int64_t e = threadIdx.x; e < E; e += blockDim.x) {
    double p = 0.0;
    for (int64_t t = g0; t < g0 + group_T; t++) p += scores[t * E + e] / S[t];
    P[e] = p / (double)group_T;
  }
  __syncthreads();
  for (int64_t e = threadIdx.x; e < E; e += blockDim.x) f[e] = cnt[e] * (double)E / (double)(K * group_T);
  __syncthreads();
  if (group_loss && threadIdx.x == 0) {
    double l = 0.0;
    for (int64_t e = 0; e < E; e++) l += f[e] * P[e];
    group_loss[blockIdx.x] = l;
  }
  if (!dlogits) return;
  // g_e = alpha f_e / (group_T n_groups); per token gs = sum_e g_e s_e / S_t
  const double gscale = (double)alpha / ((double)group_T * (double)n_groups);
  for (int64_t t = g0 + threadIdx.x; t < g0 + group_T; t += blockDim.x) {
    const float* s = scores + t * E;
    const double St = S[t];
    double gs = 0.0;
    for (int64_t e = 0; e < E; e++) gs += gscale * f[e] * s[e] / St;
    float* d = dlogits + t * E;
    for (int64_t e = 0; e < E; e++) {
      const double ge = gscale * f[e];
      if (sigmoid)
        d[e] += (float)(s[e] * (1.0 - s[e]) * (ge - gs) / St);
      else
        d[e] += (float)(s[e] * (ge - gs));
    }
  }
}

}  // namespace

void mla_build_k(bf16_t* K, const bf16_t* kv, const bf16_t* kpe, int64_t ld_pe, int64_t N,
                 int64_t H, int64_t Dn, int64_t Dr, int64_t Dv, cudaStream_t stream) {
  const int64_t n = N * H * (Dn + Dr);
  if (n == 0) return;
  build_k_kernel<<<blocks_for(n), kThreads, 0, stream>>>(K, kv, kpe, ld_pe, N, H, Dn, Dr, Dv);
  DSEEK_CUDA_CHECK_LAUNCH();
}

void mla_build_k_backward(bf16_t* dkv, bf16_t* dkpe, int64_t ld_pe, const bf16_t* dK, int64_t N,
                          int64_t H, int64_t Dn, int64_t Dr, int64_t Dv, cudaStream_t stream) {
  if (N == 0) return;
  build_k_bwd_nope_kernel<<<blocks_for(N * H * Dn), kThreads, 0, stream>>>(dkv, dK, N, H, Dn, Dr,
                                                                           Dv);
  DSEEK_CUDA_CHECK_LAUNCH();
  build_k_bwd_pe_kernel<<<blocks_for(N * Dr), kThreads, 0, stream>>>(dkpe, ld_pe, dK, N, H, Dn, Dr);
  DSEEK_CUDA_CHECK_LAUNCH();
}

void cast_f32_bf16(bf16_t* y, const float* x, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  cast_kernel<<<blocks_for(n), kThreads, 0, stream>>>(y, x, n);
  DSEEK_CUDA_CHECK_LAUNCH();
}

int grad_sumsq_blocks(int64_t n) {
  return (int)((n + kSumsqChunk - 1) / kSumsqChunk);
}

void grad_sumsq(double* partial, const float* x, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  sumsq_kernel<<<grad_sumsq_blocks(n), kThreads, 0, stream>>>(partial, x, n);
  DSEEK_CUDA_CHECK_LAUNCH();
}

void moe_balance_loss_gpu(double* group_loss, float* dlogits, const float* scores,
                          const int32_t* idx, int64_t N, int64_t E, int64_t K, int64_t group_T,
                          bool sigmoid, float alpha, double* tok_sum, cudaStream_t stream) {
  if (N == 0 || group_T <= 0) return;
  if (E > 1024) cuda_op_fail("moe_balance_loss_gpu: E > 1024");
  tok_sum_kernel<<<blocks_for(N), kThreads, 0, stream>>>(tok_sum, scores, N, E);
  DSEEK_CUDA_CHECK_LAUNCH();
  const int64_t n_groups = N / group_T;
  balance_kernel<<<(unsigned)n_groups, kThreads, 0, stream>>>(group_loss, dlogits, scores, idx,
                                                              tok_sum, E, K, group_T, n_groups,
                                                              sigmoid, alpha);
  DSEEK_CUDA_CHECK_LAUNCH();
}

}  // namespace dseek::cuda
