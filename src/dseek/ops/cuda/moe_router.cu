// MoE router kernels (contract in moe_router.h). One warp per token; the token's scores and
// choice values live in shared memory. Lane e % 32 owns expert e. Group scores: lane g scans its
// group. Each top-k round is a warp arg-max (value desc, index asc) over the not-yet-taken
// experts; lane 0 then sorts the Ek winners by id and forms the weights (fp64 sum, as the CPU).
#include "dseek/ops/cuda/moe_router.h"

#include "dseek/ops/cuda/common.cuh"  // warp_max, warp_sum, checks
#include "dseek/ops/cuda/router_topk.cuh"

namespace dseek::cuda {

// ---------------------------------------------------------------------------------------------
// constants

namespace {

constexpr int kWarps = 4;  // tokens per block
constexpr int kMaxE = 1024, kMaxK = 32, kMaxG = 32;

struct Args {
  int64_t N, E, K, G, topk_group;
  int sigmoid, group_limited, norm_topk;
  float scaling;
};

// ---------------------------------------------------------------------------------------------
// kernels

__global__ void router_fwd_kernel(int32_t* idx, float* w, float* scores, int32_t* counts,
                                  const float* logits, const float* bias, Args a) {
  extern __shared__ float smem[];  // per warp: s [E], choice [E]
  __shared__ int sel_all[kWarps][kMaxK];
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  const int64_t n = (int64_t)blockIdx.x * kWarps + wid;
  if (n >= a.N) return;  // whole warps leave together
  const int E = (int)a.E, K = (int)a.K;
  float* s = smem + (size_t)wid * 2 * E;
  float* choice = s + E;
  int* sel = sel_all[wid];
  const float* lg = logits + n * a.E;

  // scores
  if (a.sigmoid) {
    for (int e = lane; e < E; e += 32) s[e] = 1.0f / (1.0f + expf(-lg[e]));
  } else {
    float mx = -INFINITY;
    for (int e = lane; e < E; e += 32) mx = fmaxf(mx, lg[e]);
    mx = warp_max(mx);
    for (int e = lane; e < E; e += 32) s[e] = expf(lg[e] - mx);
    __syncwarp();
    double sum = 0.0;  // in expert order, as the CPU does
    if (lane == 0)
      for (int e = 0; e < E; e++) sum += s[e];
    sum = __shfl_sync(0xffffffffu, sum, 0);
    __syncwarp();
    for (int e = lane; e < E; e += 32) s[e] = (float)(s[e] / sum);
  }
  for (int e = lane; e < E; e += 32) {
    if (scores) scores[n * a.E + e] = s[e];
    choice[e] = s[e] + (bias ? bias[e] : 0.0f);
  }
  __syncwarp();

  // group limit, top-K, winners sorted by id (router_topk.cuh)
  warp_group_topk(choice, sel, E, K, (int)a.G, (int)a.topk_group, a.group_limited, a.sigmoid);

  // lane 0: weights (fp64 sum of the chosen s, as the CPU)
  if (lane == 0) {
    double sum = 0.0;
    for (int k = 0; k < K; k++) sum += s[sel[k]];
    for (int k = 0; k < K; k++) {
      float wk = s[sel[k]];
      if (a.norm_topk) wk = wk / ((float)sum + 1e-20f);
      idx[n * K + k] = sel[k];
      w[n * K + k] = wk * a.scaling;
    }
  }
  __syncwarp();
  if (counts && lane < K) atomicAdd(counts + sel[lane], 1);
}

__global__ void router_bwd_kernel(float* dlogits, const float* dw, const int32_t* idx,
                                  const float* scores, Args a) {
  __shared__ double ds_all[kWarps][kMaxK];
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  const int64_t n = (int64_t)blockIdx.x * kWarps + wid;
  if (n >= a.N) return;
  const int E = (int)a.E, K = (int)a.K;
  const float* s = scores + n * a.E;
  const float* g = dw + n * K;
  const int32_t* sel = idx + n * K;
  double* ds = ds_all[wid];  // ds of the k-th selected expert
  const double c = a.scaling;
  double dot = 0.0;
  if (lane == 0) {  // fp64, in the CPU's order
    if (a.norm_topk) {
      double S = 0.0, gs = 0.0;
      for (int k = 0; k < K; k++) {
        S += s[sel[k]];
        gs += (double)g[k] * s[sel[k]];
      }
      S += 1e-20;
      for (int k = 0; k < K; k++) ds[k] = c * (g[k] - gs / S) / S;
    } else {
      for (int k = 0; k < K; k++) ds[k] = c * g[k];
    }
    for (int k = 0; k < K; k++) dot += ds[k] * s[sel[k]];
  }
  dot = __shfl_sync(0xffffffffu, dot, 0);
  __syncwarp();
  float* o = dlogits + n * a.E;
  for (int e = lane; e < E; e += 32) {
    double d = 0.0;
    for (int k = 0; k < K; k++)
      if (sel[k] == e) d += ds[k];
    const double se = s[e];
    o[e] = a.sigmoid ? (float)(d * se * (1.0 - se)) : (float)(se * (d - dot));
  }
}

Args make_args(int64_t N, const RouterParams& p) {
  if (p.n_experts <= 0 || p.n_experts > kMaxE) cuda_op_fail("moe_router: need 1 <= E <= 1024");
  if (p.top_k <= 0 || p.top_k > kMaxK || p.top_k > p.n_experts)
    cuda_op_fail("moe_router: need 1 <= top_k <= min(32, E)");
  const bool grouped = p.group_limited && p.n_group > 1;
  if (grouped && (p.n_group > kMaxG || p.n_experts % p.n_group != 0 || p.topk_group < 1 ||
                  p.topk_group > p.n_group))
    cuda_op_fail("moe_router: need n_group <= 32 dividing E and 1 <= topk_group <= n_group");
  if (grouped && p.sigmoid && p.n_experts / p.n_group < 2)
    cuda_op_fail("moe_router: sigmoid group scores need >= 2 experts per group");
  if ((N + kWarps - 1) / kWarps > 0x7fffffffLL) cuda_op_fail("moe_router: too many tokens");
  return Args{N,
              p.n_experts,
              p.top_k,
              p.n_group,
              p.topk_group,
              p.sigmoid ? 1 : 0,
              grouped ? 1 : 0,
              p.norm_topk ? 1 : 0,
              p.scaling};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// launchers

void moe_router_forward(int32_t* idx, float* w, float* scores, int32_t* counts, const float* logits,
                        const float* bias, int64_t N, const RouterParams& p, cudaStream_t stream) {
  if (N <= 0) return;
  const Args a = make_args(N, p);
  const size_t smem = (size_t)kWarps * 2 * a.E * sizeof(float);
  router_fwd_kernel<<<(unsigned)((N + kWarps - 1) / kWarps), 32 * kWarps, smem, stream>>>(
      idx, w, scores, counts, logits, bias, a);
  DSEEK_CUDA_CHECK_LAUNCH();
}

void moe_router_backward(float* dlogits, const float* dw, const int32_t* idx, const float* scores,
                         int64_t N, const RouterParams& p, cudaStream_t stream) {
  if (N <= 0) return;
  const Args a = make_args(N, p);
  router_bwd_kernel<<<(unsigned)((N + kWarps - 1) / kWarps), 32 * kWarps, 0, stream>>>(
      dlogits, dw, idx, scores, a);
  DSEEK_CUDA_CHECK_LAUNCH();
}

}  // namespace dseek::cuda
