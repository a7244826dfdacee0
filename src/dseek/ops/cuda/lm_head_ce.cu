// LM head + cross-entropy in row chunks (contract in lm_head_ce.h). The softmax-CE kernel runs
// one block per row: pass 1 keeps a running (max, sum of exp) per thread (online softmax),
// merged across the block; pass 2 writes dlogits. The logits row (V fp32) is read twice, the
// second time mostly from L2. The GEMMs go through GemmLt.
#include "dseek/ops/cuda/lm_head_ce.h"

#include <cmath>

#include "dseek/ops/cuda/common.cuh"  // st_bf16, sm helpers

namespace dseek::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

namespace {

constexpr int kCeThreads = 512;

__device__ __forceinline__ void softmax_merge(float& m, float& s, float m2, float s2) {
  const float mx = fmaxf(m, m2);
  if (mx == -INFINITY) return;  // both empty
  s = (m == -INFINITY ? 0.0f : s * expf(m - mx)) + (m2 == -INFINITY ? 0.0f : s2 * expf(m2 - mx));
  m = mx;
}

__global__ void ce_kernel(float* loss, bf16_t* dlogits, int64_t ldd, const float* logits,
                          int64_t ldl, const int32_t* targets, int64_t V, float grad_scale) {
  __shared__ float sm_m[32], sm_s[32];
  const int64_t n = blockIdx.x;
  const int32_t tgt = targets[n];
  const float* l = logits + n * ldl;
  bf16_t* d = dlogits ? dlogits + n * ldd : nullptr;
  if (tgt < 0 || tgt >= V) {  // ignored (or invalid) row: no gradient
    if (threadIdx.x == 0) loss[n] = tgt < 0 ? 0.0f : NAN;
    if (d)
      for (int64_t v = threadIdx.x; v < V; v += blockDim.x) d[v] = 0;
    return;
  }
  float m = -INFINITY, s = 0.0f;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
    const float x = l[v];
    if (x > m) {
      s = (m == -INFINITY ? 0.0f : s * expf(m - x)) + 1.0f;
      m = x;
    } else {
      s += expf(x - m);
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
    softmax_merge(m, s, m2, s2);
  }
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
  if (lane == 0) sm_m[wid] = m, sm_s[wid] = s;
  __syncthreads();
  m = lane < nw ? sm_m[lane] : -INFINITY;
  s = lane < nw ? sm_s[lane] : 0.0f;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
    softmax_merge(m, s, m2, s2);
  }
  if (threadIdx.x == 0) loss[n] = (m - l[tgt]) + logf(s);
  if (!d) return;
  const float f = grad_scale / s;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
    const float p = expf(l[v] - m) * f;
    st_bf16(d + v, v == tgt ? p - grad_scale : p);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// launchers

void cross_entropy_forward_backward(float* loss, bf16_t* dlogits, int64_t ldd, const float* logits,
                                    int64_t ldl, const int32_t* targets, int64_t N, int64_t V,
                                    float grad_scale, cudaStream_t stream) {
  if (N <= 0) return;
  if (N > 0x7fffffffLL) cuda_op_fail("cross_entropy: more than 2^31 rows");
  ce_kernel<<<(unsigned)N, kCeThreads, 0, stream>>>(loss, dlogits, ldd, logits, ldl, targets, V,
                                                    grad_scale);
  DSEEK_CUDA_CHECK_LAUNCH();
}

LmHeadCe::LmHeadCe(int64_t V, int64_t chunk_rows) : V_(V), R_(chunk_rows) {
  if (V <= 0 || chunk_rows <= 0) cuda_op_fail("LmHeadCe: V and chunk_rows must be positive");
  ldl_ = (V + 7) / 8 * 8;  // 16-byte rows for cuBLASLt
  DSEEK_CUDA_CHECK(cudaMalloc((void**)&logits_, (size_t)R_ * ldl_ * sizeof(float)));
  DSEEK_CUDA_CHECK(cudaMalloc((void**)&dlogits_, (size_t)R_ * ldl_ * sizeof(bf16_t)));
}

LmHeadCe::~LmHeadCe() {
  cudaFree(logits_);
  cudaFree(dlogits_);
}

void LmHeadCe::forward_backward(GemmLt& g, float* loss_rows, bf16_t* dh, float* dW, const bf16_t* h,
                                int64_t ldh, const bf16_t* W, const int32_t* targets, int64_t N,
                                int64_t C, float grad_scale, cudaStream_t stream) {
  const bool grads = dh || dW;
  for (int64_t r0 = 0; r0 < N; r0 += R_) {
    const int64_t R = N - r0 < R_ ? N - r0 : R_;
    const bf16_t* hc = h + r0 * ldh;
    // logits [R, V] = h W^T (fp32)
    gemm_lt_nt(g, logits_, ldl_, GemmOut::F32, hc, ldh, W, C, R, V_, C, 0.0f, stream);
    cross_entropy_forward_backward(loss_rows + r0, grads ? dlogits_ : nullptr, ldl_, logits_, ldl_,
                                   targets + r0, R, V_, grad_scale, stream);
    if (!grads) continue;
    // dh [R, C] = dlogits [R, V] W [V, C]
    if (dh)
      gemm_lt_nn(g, dh + r0 * C, C, GemmOut::BF16, dlogits_, ldl_, W, C, R, C, V_, 0.0f, stream);
    // dW [V, C] += dlogits^T [V, R] h [R, C]
    if (dW) gemm_lt_tn(g, dW, C, GemmOut::F32, dlogits_, ldl_, hc, ldh, V_, C, R, 1.0f, stream);
  }
}

}  // namespace dseek::cuda
