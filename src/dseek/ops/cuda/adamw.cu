// Multi-tensor AdamW kernel (contract in adamw.h). Every tensor is cut into chunks of kChunk
// elements; the chunk map (tensor index, first element) is built once on the host; one block
// per chunk. A tensor whose four pointers are 16-byte aligned is read and written as float4,
// otherwise element by element (the same arithmetic either way).
#include "dseek/ops/cuda/adamw.h"

#include <cmath>

#include "dseek/ops/cuda/common.cuh"  // bf16, cuda checks

namespace dseek::cuda {

// ---------------------------------------------------------------------------------------------
// constants

namespace {

constexpr int kThreads = 256;
constexpr int64_t kChunk = 16384;  // elements per block: 16 per thread

struct Desc {  // one tensor, as the kernel sees it
  float* p;
  float* m;
  float* v;
  bf16* mb;  // bf16 state (then m, v are null)
  bf16* vb;
  const float* g;
  bf16* pb;
  int64_t n;
  int decay;
  int vec4;
};

struct Chunk {
  int32_t t;
  int64_t lo;
};

struct Scalars {    // all rounded to fp32 on the host, as the CPU AdamW does
  float decay_mul;  // 1 - lr * wd
  float one_m_b1, b2, one_m_b2;
  float step_size;  // lr / bc1
  float bc2_sqrt;   // sqrt(bc2)
  float eps;
  float grad_scale;
};

// ---------------------------------------------------------------------------------------------
// kernels

__device__ __forceinline__ void adamw_elem(float& p, float& m, float& v, float g, float decay_mul,
                                           const Scalars& k) {
  g = g * k.grad_scale;
  const float pi = p * decay_mul;
  const float mi = __fmaf_rn(k.one_m_b1, __fsub_rn(g, m), m);
  const float vi = __fmaf_rn(v, k.b2, __fmul_rn(__fmul_rn(k.one_m_b2, g), g));
  const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), k.bc2_sqrt), k.eps);
  m = mi;
  v = vi;
  p = __fsub_rn(pi, __fdiv_rn(__fmul_rn(k.step_size, mi), denom));
}

// element i of tensor d, fp32 or bf16 state
__device__ __forceinline__ void elem_at(const Desc& d, int64_t i, float dm, const Scalars& k) {
  float p = d.p[i];
  float m = d.mb ? __bfloat162float(d.mb[i]) : d.m[i];
  float v = d.vb ? __bfloat162float(d.vb[i]) : d.v[i];
  adamw_elem(p, m, v, d.g[i], dm, k);
  d.p[i] = p;
  if (d.mb) {
    d.mb[i] = __float2bfloat16_rn(m);
    d.vb[i] = __float2bfloat16_rn(v);
  } else {
    d.m[i] = m;
    d.v[i] = v;
  }
  if (d.pb) d.pb[i] = __float2bfloat16_rn(p);
}

__device__ __forceinline__ float4 load4(const bf16* x) {
  return make_float4(__bfloat162float(x[0]), __bfloat162float(x[1]), __bfloat162float(x[2]),
                     __bfloat162float(x[3]));
}

__device__ __forceinline__ void store4(bf16* x, float4 f) {
  x[0] = __float2bfloat16_rn(f.x);
  x[1] = __float2bfloat16_rn(f.y);
  x[2] = __float2bfloat16_rn(f.z);
  x[3] = __float2bfloat16_rn(f.w);
}

__global__ void adamw_kernel(const Desc* descs, const Chunk* chunks, Scalars k) {
  const Chunk c = chunks[blockIdx.x];
  const Desc d = descs[c.t];
  const float dm = d.decay ? k.decay_mul : 1.0f;
  const int64_t hi = c.lo + kChunk < d.n ? c.lo + kChunk : d.n;
  if (d.vec4) {
    const int64_t hi4 = c.lo + ((hi - c.lo) & ~int64_t(3));
    for (int64_t i = c.lo + 4 * (int64_t)threadIdx.x; i < hi4; i += 4 * kThreads) {
      float4 p = *reinterpret_cast<const float4*>(d.p + i);
      float4 m = d.mb ? load4(d.mb + i) : *reinterpret_cast<const float4*>(d.m + i);
      float4 v = d.vb ? load4(d.vb + i) : *reinterpret_cast<const float4*>(d.v + i);
      const float4 g = *reinterpret_cast<const float4*>(d.g + i);
      adamw_elem(p.x, m.x, v.x, g.x, dm, k);
      adamw_elem(p.y, m.y, v.y, g.y, dm, k);
      adamw_elem(p.z, m.z, v.z, g.z, dm, k);
      adamw_elem(p.w, m.w, v.w, g.w, dm, k);
      *reinterpret_cast<float4*>(d.p + i) = p;
      if (d.mb) {
        store4(d.mb + i, m);
        store4(d.vb + i, v);
      } else {
        *reinterpret_cast<float4*>(d.m + i) = m;
        *reinterpret_cast<float4*>(d.v + i) = v;
      }
      if (d.pb) {
        d.pb[i] = __float2bfloat16_rn(p.x);
        d.pb[i + 1] = __float2bfloat16_rn(p.y);
        d.pb[i + 2] = __float2bfloat16_rn(p.z);
        d.pb[i + 3] = __float2bfloat16_rn(p.w);
      }
    }
    for (int64_t i = hi4 + threadIdx.x; i < hi; i += kThreads)  // the tail (< 4 elements)
      elem_at(d, i, dm, k);
  } else {
    for (int64_t i = c.lo + threadIdx.x; i < hi; i += kThreads) elem_at(d, i, dm, k);
  }
}

bool aligned16(const void* p) {
  return ((uintptr_t)p & 15) == 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// public entry points

AdamWMultiTensor::AdamWMultiTensor(std::vector<AdamWTensor> tensors, AdamWHyper hyper)
    : tensors_(std::move(tensors)), hyper_(hyper) {
  std::vector<Desc> descs;
  std::vector<Chunk> chunks;
  for (size_t t = 0; t < tensors_.size(); t++) {
    const AdamWTensor& a = tensors_[t];
    if (a.n < 0) cuda_op_fail("AdamWMultiTensor: negative tensor size");
    const bool bf_state = a.m_bf16 || a.v_bf16;
    if (bf_state && !(a.m_bf16 && a.v_bf16 && !a.m && !a.v))
      cuda_op_fail("AdamWMultiTensor: bf16 state needs m_bf16 and v_bf16 set and m, v null");
    if (!bf_state && !(a.m && a.v) && a.n > 0)
      cuda_op_fail("AdamWMultiTensor: fp32 state needs m and v set");
    const bool v4 =
        aligned16(a.param) && aligned16(a.grad) && (bf_state || (aligned16(a.m) && aligned16(a.v)));
    descs.push_back({a.param, a.m, a.v, reinterpret_cast<bf16*>(a.m_bf16),
                     reinterpret_cast<bf16*>(a.v_bf16), a.grad,
                     reinterpret_cast<bf16*>(a.param_bf16), a.n, a.decay ? 1 : 0, v4 ? 1 : 0});
    for (int64_t lo = 0; lo < a.n; lo += kChunk) chunks.push_back({(int32_t)t, lo});
  }
  n_chunks_ = (int64_t)chunks.size();
  if (n_chunks_ > 0x7fffffffLL) cuda_op_fail("AdamWMultiTensor: too many chunks");
  if (!descs.empty()) {
    DSEEK_CUDA_CHECK(cudaMalloc(&d_tensors_, descs.size() * sizeof(Desc)));
    DSEEK_CUDA_CHECK(
        cudaMemcpy(d_tensors_, descs.data(), descs.size() * sizeof(Desc), cudaMemcpyHostToDevice));
  }
  if (!chunks.empty()) {
    DSEEK_CUDA_CHECK(cudaMalloc(&d_chunks_, chunks.size() * sizeof(Chunk)));
    DSEEK_CUDA_CHECK(cudaMemcpy(d_chunks_, chunks.data(), chunks.size() * sizeof(Chunk),
                                cudaMemcpyHostToDevice));
  }
}

AdamWMultiTensor::~AdamWMultiTensor() {
  cudaFree(d_tensors_);
  cudaFree(d_chunks_);
}

void AdamWMultiTensor::step(float lr, int64_t t, float grad_scale, cudaStream_t stream) {
  if (t < 1) cuda_op_fail("AdamWMultiTensor::step: the step number t starts at 1");
  if (n_chunks_ == 0) return;
  // the per-step scalars, exactly as AdamW::step (train/adamw.cpp) forms them
  const double b1 = hyper_.beta1, b2 = hyper_.beta2;
  const double bc1 = 1.0 - std::pow(b1, (double)t);
  const double bc2 = 1.0 - std::pow(b2, (double)t);
  const Scalars k{(float)(1.0 - (double)lr * (double)hyper_.weight_decay),
                  (float)(1.0 - b1),
                  (float)b2,
                  (float)(1.0 - b2),
                  (float)((double)lr / bc1),
                  (float)std::sqrt(bc2),
                  hyper_.eps,
                  grad_scale};
  adamw_kernel<<<(unsigned)n_chunks_, kThreads, 0, stream>>>(
      static_cast<const Desc*>(d_tensors_), static_cast<const Chunk*>(d_chunks_), k);
  DSEEK_CUDA_CHECK_LAUNCH();
}

}  // namespace dseek::cuda
