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

// Balance losses (moe_balance_loss_gpu): chunks of kBalChunk tokens inside one group.
constexpr int64_t kBalChunk = 64;
constexpr int kBalThreads = 256;

__device__ __forceinline__ double warp_sum_f64(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Per chunk c of group g (grid: chunks per group x groups): S_t = sum_e s[t, e] for its tokens
// (fp64, one warp per token), and per expert the chunk's sum_t s[t, e] / S_t and its count of
// selections.
__global__ void balance_chunk_kernel(double* S, double* part_p, double* part_c, const float* scores,
                                     const int32_t* idx, int64_t E, int64_t K, int64_t group_T) {
  __shared__ double sS[kBalChunk];
  __shared__ unsigned cnt[1024];
  const int64_t t0 = (int64_t)blockIdx.y * group_T + (int64_t)blockIdx.x * kBalChunk;
  const int64_t t_end = (int64_t)blockIdx.y * group_T + group_T;
  const int64_t nt = t0 + kBalChunk < t_end ? kBalChunk : t_end - t0;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t e = threadIdx.x; e < E; e += blockDim.x) cnt[e] = 0;
  for (int64_t i = warp; i < nt; i += kBalThreads / 32) {
    const float* s = scores + (t0 + i) * E;
    double v = 0.0;
    for (int64_t e = lane; e < E; e += 32) v += s[e];
    v = warp_sum_f64(v);
    if (lane == 0) sS[i] = S[t0 + i] = v;
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < nt * K; i += blockDim.x) atomicAdd(&cnt[idx[t0 * K + i]], 1u);
  __syncthreads();
  const int64_t chunk = (int64_t)blockIdx.y * gridDim.x + blockIdx.x;
  for (int64_t e = threadIdx.x; e < E; e += blockDim.x) {
    double p = 0.0;
    for (int64_t i = 0; i < nt; i++) p += scores[(t0 + i) * E + e] / sS[i];
    part_p[chunk * E + e] = p;
    part_c[chunk * E + e] = (double)cnt[e];
  }
}

// Per group (one block each): P_e and f_e from its chunks in order, the group's sum_e f_e P_e,
// and g_e = gscale f_e for the gradient.
__global__ void balance_group_kernel(double* group_loss, double* ge, const double* part_p,
                                     const double* part_c, int64_t E, int64_t K, int64_t group_T,
                                     int64_t chunks, double gscale) {
  __shared__ double fp[1024];
  const int64_t g = blockIdx.x;
  for (int64_t e = threadIdx.x; e < E; e += blockDim.x) {
    double p = 0.0, c = 0.0;
    for (int64_t j = 0; j < chunks; j++) {
      p += part_p[(g * chunks + j) * E + e];
      c += part_c[(g * chunks + j) * E + e];
    }
    const double f = c * (double)E / (double)(K * group_T);
    fp[e] = f * (p / (double)group_T);
    ge[g * E + e] = gscale * f;
  }
  __syncthreads();
  if (group_loss && threadIdx.x == 0) {
    double l = 0.0;
    for (int64_t e = 0; e < E; e++) l += fp[e];
    group_loss[g] = l;
  }
}

// dlogits[t, :] += the balance loss gradient (one warp per token); gs = sum_e g_e s_e / S_t.
__global__ void balance_grad_kernel(float* dlogits, const float* scores, const double* S,
                                    const double* ge, int64_t N, int64_t E, int64_t group_T,
                                    bool sigmoid) {
  const int64_t t = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (t >= N) return;
  const float* s = scores + t * E;
  const double* g = ge + (t / group_T) * E;
  const double St = S[t];
  double gs = 0.0;
  for (int64_t e = lane; e < E; e += 32) gs += g[e] * s[e] / St;
  gs = warp_sum_f64(gs);
  float* d = dlogits + t * E;
  for (int64_t e = lane; e < E; e += 32) {
    if (sigmoid)
      d[e] += (float)(s[e] * (1.0 - s[e]) * (g[e] - gs) / St);
    else
      d[e] += (float)(s[e] * (g[e] - gs));
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

int64_t moe_balance_scratch_elems(int64_t N, int64_t E) {
  return N + 2 * ((N + kBalChunk - 1) / kBalChunk + N) * E + N * E;  // generous in the chunks
}

void moe_balance_loss_gpu(double* group_loss, float* dlogits, const float* scores,
                          const int32_t* idx, int64_t N, int64_t E, int64_t K, int64_t group_T,
                          bool sigmoid, float alpha, double* scratch, cudaStream_t stream) {
  if (N == 0 || group_T <= 0) return;
  if (E > 1024) cuda_op_fail("moe_balance_loss_gpu: E > 1024");
  if (N % group_T != 0) cuda_op_fail("moe_balance_loss_gpu: N not a multiple of group_T");
  const int64_t n_groups = N / group_T, cpg = (group_T + kBalChunk - 1) / kBalChunk;
  double* S = scratch;                           // [N]
  double* part_p = S + N;                        // [n_groups * cpg, E]
  double* part_c = part_p + n_groups * cpg * E;  // [n_groups * cpg, E]
  double* ge = part_c + n_groups * cpg * E;      // [n_groups, E]
  balance_chunk_kernel<<<dim3((unsigned)cpg, (unsigned)n_groups), kBalThreads, 0, stream>>>(
      S, part_p, part_c, scores, idx, E, K, group_T);
  DSEEK_CUDA_CHECK_LAUNCH();
  const double gscale = (double)alpha / ((double)group_T * (double)n_groups);
  balance_group_kernel<<<(unsigned)n_groups, kBalThreads, 0, stream>>>(
      group_loss, ge, part_p, part_c, E, K, group_T, cpg, gscale);
  DSEEK_CUDA_CHECK_LAUNCH();
  if (!dlogits) return;
  balance_grad_kernel<<<(unsigned)((N * 32 + kBalThreads - 1) / kBalThreads), kBalThreads, 0,
                        stream>>>(dlogits, scores, S, ge, N, E, group_T, sigmoid);
  DSEEK_CUDA_CHECK_LAUNCH();
}

}  // namespace dseek::cuda
