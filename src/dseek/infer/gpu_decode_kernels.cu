// Kernels of the GPU decoder; contracts in gpu_decode_kernels.h.
#include <cuda_bf16.h>

#include <cfloat>
#include <cmath>
#include <cstdint>

#include "dseek/infer/gpu_decode_kernels.h"
#include "dseek/ops/cuda/cuda_check.h"

namespace dseek::cuda {

namespace {

using bf16 = __nv_bfloat16;

constexpr int kGemvThreads = 128;  // 4 warps
constexpr int kGemvUnroll = 4;     // 16-byte weight loads in flight per lane and row

__device__ __forceinline__ uint4 ld_stream(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

__device__ __forceinline__ float dot8(const uint4& w, const float4& a, const float4& b,
                                      float acc) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&w);
  const float2 f0 = __bfloat1622float2(h[0]), f1 = __bfloat1622float2(h[1]);
  const float2 f2 = __bfloat1622float2(h[2]), f3 = __bfloat1622float2(h[3]);
  acc = fmaf(f0.x, a.x, acc);
  acc = fmaf(f0.y, a.y, acc);
  acc = fmaf(f1.x, a.z, acc);
  acc = fmaf(f1.y, a.w, acc);
  acc = fmaf(f2.x, b.x, acc);
  acc = fmaf(f2.y, b.y, acc);
  acc = fmaf(f3.x, b.z, acc);
  acc = fmaf(f3.y, b.w, acc);
  return acc;
}

// Each group of LPR lanes computes two weight rows (a pair) against one input, 16 bytes of each
// row per lane and step, kGemvUnroll steps of loads issued before their FMAs.
template <int LPR>
__global__ void __launch_bounds__(kGemvThreads) gemv_kernel(GemvArgs a) {
  constexpr int GPW = 32 / LPR;  // groups per warp
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int sub = lane / LPR, sl = lane % LPR;
  const int64_t z = blockIdx.x;
  const int64_t g = ((int64_t)blockIdx.y * (kGemvThreads / 32) + warp) * GPW + sub;
  const int64_t n_pairs = a.swiglu ? a.N / 2 : (a.N + 1) / 2;
  const bool valid = g < n_pairs;
  const int64_t gg = valid ? g : n_pairs - 1;
  int64_t r0, r1;
  if (a.swiglu) {
    r0 = gg;
    r1 = gg + a.N / 2;
  } else {
    r0 = 2 * gg;
    r1 = 2 * gg + 1 < a.N ? 2 * gg + 1 : 2 * gg;
  }
  const bf16_t* W = a.W + (a.idx ? (int64_t)a.idx[z] * a.w_stride : 0);
  const float* x = a.x + (z / a.x_div) * a.ldx;
  if (a.rows_per_group) x += (r0 / a.rows_per_group) * a.group_stride;
  const uint4* w0 = reinterpret_cast<const uint4*>(W + r0 * a.K);
  const uint4* w1 = reinterpret_cast<const uint4*>(W + r1 * a.K);
  const float4* x4 = reinterpret_cast<const float4*>(x);
  const int64_t nch = a.K / 8;
  float acc0 = 0.0f, acc1 = 0.0f;
  for (int64_t base = sl; base < nch; base += kGemvUnroll * LPR) {
    uint4 wa[kGemvUnroll], wb[kGemvUnroll];
#pragma unroll
    for (int u = 0; u < kGemvUnroll; u++) {
      const int64_t c = base + u * LPR;
      if (c < nch) {
        wa[u] = ld_stream(w0 + c);
        wb[u] = ld_stream(w1 + c);
      } else {
        wa[u] = make_uint4(0, 0, 0, 0);
        wb[u] = wa[u];
      }
    }
#pragma unroll
    for (int u = 0; u < kGemvUnroll; u++) {
      const int64_t c = base + u * LPR;
      if (c < nch) {
        const float4 xa = __ldg(x4 + 2 * c), xb = __ldg(x4 + 2 * c + 1);
        acc0 = dot8(wa[u], xa, xb, acc0);
        acc1 = dot8(wb[u], xa, xb, acc1);
      }
    }
  }
#pragma unroll
  for (int o = LPR / 2; o > 0; o >>= 1) {
    acc0 += __shfl_xor_sync(0xffffffffu, acc0, o);
    acc1 += __shfl_xor_sync(0xffffffffu, acc1, o);
  }
  if (!valid || sl != 0) return;
  float* y = a.y + z * a.ldy;
  if (a.swiglu) {
    const float s = acc0 / (1.0f + expf(-acc0));
    y[r0] = s * acc1;
  } else {
    y[r0] = a.accumulate ? y[r0] + acc0 : acc0;
    if (r1 != r0) y[r1] = a.accumulate ? y[r1] + acc1 : acc1;
  }
}

template <int LPR>
void launch_gemv(const GemvArgs& a, cudaStream_t st) {
  const int64_t n_pairs = a.swiglu ? a.N / 2 : (a.N + 1) / 2;
  const int64_t per_block = (kGemvThreads / 32) * (32 / LPR);
  dim3 grid((unsigned)a.Z, (unsigned)((n_pairs + per_block - 1) / per_block));
  gemv_kernel<LPR><<<grid, kGemvThreads, 0, st>>>(a);
}

__device__ __forceinline__ float block_sum(float v, float* sh) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
  __syncthreads();  // sh may be in use by a previous reduction
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  float t = 0.0f;
  for (int w = 0; w < nw; w++) t += sh[w];
  return t;
}

__global__ void embed_kernel(float* out, const bf16_t* table, const int32_t* ids, int64_t C) {
  const int64_t r = blockIdx.x;
  const bf16* row = reinterpret_cast<const bf16*>(table) + (int64_t)ids[r] * C;
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x)
    out[r * C + j] = __bfloat162float(row[j]);
}

__global__ void rmsnorm_kernel(float* out, int64_t ldo, const float* x, int64_t ldx,
                               const float* w, int64_t C, float eps) {
  __shared__ float sh[32];
  const int64_t r = blockIdx.x;
  const float* xr = x + r * ldx;
  float ss = 0.0f;
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) ss = fmaf(xr[j], xr[j], ss);
  ss = block_sum(ss, sh);
  const float rs = 1.0f / sqrtf(ss / (float)C + eps);
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) out[r * ldo + j] = (xr[j] * rs) * w[j];
}

__device__ __forceinline__ void rope_pair(float& a, float& b, float c, float s) {
  const float a2 = a * c - b * s, b2 = b * c + a * s;
  a = a2;
  b = b2;
}

__device__ __forceinline__ void st_cache(bf16* p, float v) {
  *p = __float2bfloat16_rn(v);
}
__device__ __forceinline__ void st_cache(float* p, float v) {
  *p = v;
}
__device__ __forceinline__ float ld_cache(const bf16* p) {
  return __bfloat162float(*p);
}
__device__ __forceinline__ float ld_cache(const float* p) {
  return *p;
}

template <typename T>
__global__ void kv_append_rope_kernel(DecCacheGeom g, float* q, const float* kva,
                                      const float* kv_norm_w, float eps, const float* cos_t,
                                      const float* sin_t, bool interleaved, const int32_t* row_seq,
                                      const int32_t* row_pos, int64_t H, int64_t Dn, int64_t Dqk) {
  __shared__ float sh[32];
  const int64_t r = blockIdx.x, Dc = g.Dc, Dr = g.Dr, half = Dr / 2;
  const int64_t seq = row_seq[r], pos = row_pos[r];
  const float* kv = kva + r * (Dc + Dr);
  float ss = 0.0f;
  for (int64_t j = threadIdx.x; j < Dc; j += blockDim.x) ss = fmaf(kv[j], kv[j], ss);
  ss = block_sum(ss, sh);
  const float rs = 1.0f / sqrtf(ss / (float)Dc + eps);
  const int64_t blk = g.table[seq * g.max_blocks + pos / g.bs];
  T* dst = reinterpret_cast<T*>(g.pool) + (blk * g.bs + pos % g.bs) * (Dc + Dr);
  for (int64_t j = threadIdx.x; j < Dc; j += blockDim.x)
    st_cache(dst + j, (kv[j] * rs) * kv_norm_w[j]);
  const float* ct = cos_t + pos * half;
  const float* st = sin_t + pos * half;
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    const int64_t ia = interleaved ? 2 * i : i, ib = interleaved ? 2 * i + 1 : i + half;
    float a = kv[Dc + ia], b = kv[Dc + ib];
    rope_pair(a, b, ct[i], st[i]);
    st_cache(dst + Dc + ia, a);
    st_cache(dst + Dc + ib, b);
  }
  for (int64_t k = threadIdx.x; k < H * half; k += blockDim.x) {
    const int64_t h = k / half, i = k % half;
    float* v = q + r * H * Dqk + h * Dqk + Dn;
    const int64_t ia = interleaved ? 2 * i : i, ib = interleaved ? 2 * i + 1 : i + half;
    float a = v[ia], b = v[ib];
    rope_pair(a, b, ct[i], st[i]);
    v[ia] = a;
    v[ib] = b;
  }
}

constexpr int kAttnWarps = 4;
constexpr int kMaxDc = 1024;

template <int PER>
__device__ __forceinline__ void load_lat(float (&c)[PER], const bf16* p) {
  if constexpr (PER % 8 == 0) {
#pragma unroll
    for (int v = 0; v < PER / 8; v++) {
      const uint4 raw = *reinterpret_cast<const uint4*>(p + 8 * v);
      const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
      for (int i = 0; i < 4; i++) {
        const float2 f = __bfloat1622float2(h[i]);
        c[8 * v + 2 * i] = f.x;
        c[8 * v + 2 * i + 1] = f.y;
      }
    }
  } else {
#pragma unroll
    for (int i = 0; i < PER; i++) c[i] = __bfloat162float(p[i]);
  }
}

template <int PER>
__device__ __forceinline__ void load_lat(float (&c)[PER], const float* p) {
  if constexpr (PER % 4 == 0) {
#pragma unroll
    for (int v = 0; v < PER / 4; v++) {
      const float4 f = *reinterpret_cast<const float4*>(p + 4 * v);
      c[4 * v] = f.x;
      c[4 * v + 1] = f.y;
      c[4 * v + 2] = f.z;
      c[4 * v + 3] = f.w;
    }
  } else {
#pragma unroll
    for (int i = 0; i < PER; i++) c[i] = p[i];
  }
}

// One CTA per (row, head, split): 4 warps walk the split's tokens (warp w takes t0 + w, + 4, ...),
// each lane holding PER = Dc / 32 latent dims of q_abs and of its running output; online softmax
// per warp, then the warps merge in shared memory into one partial (m, l, acc) of the split.
template <int PER, typename T>
__global__ void __launch_bounds__(kAttnWarps * 32)
    mla_split_kernel(float* part_acc, float* part_ml, DecCacheGeom g, const float* qabs,
                     const float* q, int64_t Dn, int64_t Dqk, const int32_t* row_seq,
                     const int32_t* row_pos, int64_t H, int64_t min_chunk, float scale) {
  __shared__ float s_acc[kAttnWarps][PER * 32];
  __shared__ float s_m[kAttnWarps], s_l[kAttnWarps];
  const int64_t r = blockIdx.x, h = blockIdx.y, s = blockIdx.z, S = gridDim.z;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t Dc = g.Dc, Dr = g.Dr, row_len = Dc + Dr;
  const int64_t seq = row_seq[r], len = (int64_t)row_pos[r] + 1;
  int64_t active = (len + min_chunk - 1) / min_chunk;
  if (active > S) active = S;
  const int64_t chunk = (len + active - 1) / active;
  const int64_t t0 = s * chunk, t1 = t0 + chunk < len ? t0 + chunk : len;
  float qa[PER], acc[PER];
  const float* qr = qabs + (r * H + h) * Dc + lane * PER;
#pragma unroll
  for (int i = 0; i < PER; i++) {
    qa[i] = qr[i];
    acc[i] = 0.0f;
  }
  const float* qpe = q + r * H * Dqk + h * Dqk + Dn;
  const float qp0 = lane < Dr ? qpe[lane] : 0.0f, qp1 = lane + 32 < Dr ? qpe[lane + 32] : 0.0f;
  float m = -INFINITY, l = 0.0f;
  const T* pool = reinterpret_cast<const T*>(g.pool);
  const int32_t* tab = g.table + seq * g.max_blocks;
  for (int64_t t = t0 + warp; t < t1; t += kAttnWarps) {
    const int64_t blk = tab[t / g.bs];
    const T* row = pool + (blk * g.bs + t % g.bs) * row_len;
    float c[PER];
    load_lat<PER>(c, row + lane * PER);
    float d = 0.0f;
#pragma unroll
    for (int i = 0; i < PER; i++) d = fmaf(qa[i], c[i], d);
    if (lane < Dr) d = fmaf(qp0, ld_cache(row + Dc + lane), d);
    if (lane + 32 < Dr) d = fmaf(qp1, ld_cache(row + Dc + lane + 32), d);
    for (int o = 16; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
    const float sc = d * scale;
    const float mn = fmaxf(m, sc);
    const float corr = expf(m - mn), p = expf(sc - mn);
    l = l * corr + p;
#pragma unroll
    for (int i = 0; i < PER; i++) acc[i] = fmaf(p, c[i], acc[i] * corr);
    m = mn;
  }
#pragma unroll
  for (int i = 0; i < PER; i++) s_acc[warp][lane * PER + i] = acc[i];
  if (lane == 0) {
    s_m[warp] = m;
    s_l[warp] = l;
  }
  __syncthreads();
  float M = -INFINITY;
  for (int w = 0; w < kAttnWarps; w++) M = fmaxf(M, s_m[w]);
  float wt[kAttnWarps];
  for (int w = 0; w < kAttnWarps; w++) wt[w] = s_m[w] == -INFINITY ? 0.0f : expf(s_m[w] - M);
  const int64_t base = ((r * H + h) * S + s);
  for (int64_t d = threadIdx.x; d < Dc; d += blockDim.x) {
    float v = 0.0f;
    for (int w = 0; w < kAttnWarps; w++) v = fmaf(wt[w], s_acc[w][d], v);
    part_acc[base * Dc + d] = v;
  }
  if (threadIdx.x == 0) {
    float L = 0.0f;
    for (int w = 0; w < kAttnWarps; w++) L = fmaf(wt[w], s_l[w], L);
    part_ml[base * 2] = M;
    part_ml[base * 2 + 1] = L;
  }
}

__global__ void mla_combine_kernel(float* x_lat, const float* part_acc, const float* part_ml,
                                   int64_t H, int64_t S, int64_t Dc) {
  extern __shared__ float s_w[];  // [S] weights, then the sum at [S]
  const int64_t r = blockIdx.x, h = blockIdx.y;
  const int64_t base = (r * H + h) * S;
  if (threadIdx.x == 0) {
    float M = -INFINITY;
    for (int64_t s = 0; s < S; s++) M = fmaxf(M, part_ml[(base + s) * 2]);
    float L = 0.0f;
    for (int64_t s = 0; s < S; s++) {
      const float ms = part_ml[(base + s) * 2];
      const float w = ms == -INFINITY ? 0.0f : expf(ms - M);
      s_w[s] = w;
      L = fmaf(w, part_ml[(base + s) * 2 + 1], L);
    }
    s_w[S] = 1.0f / L;
  }
  __syncthreads();
  const float inv = s_w[S];
  for (int64_t d = threadIdx.x; d < Dc; d += blockDim.x) {
    float v = 0.0f;
    for (int64_t s = 0; s < S; s++)
      if (s_w[s] != 0.0f) v = fmaf(s_w[s], part_acc[(base + s) * Dc + d], v);
    x_lat[(r * H + h) * Dc + d] = v * inv;
  }
}

__global__ void moe_combine_kernel(float* h, const float* y, const float* w, const float* shared,
                                   int64_t Ek, int64_t C) {
  const int64_t r = blockIdx.x;
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
    float o = 0.0f;
    for (int64_t k = 0; k < Ek; k++) o += w[r * Ek + k] * y[(r * Ek + k) * C + j];
    if (shared) o += shared[r * C + j];
    h[r * C + j] += o;
  }
}

__global__ void argmax_kernel(int32_t* ids, const float* logits, int64_t V) {
  __shared__ float sv[32];
  __shared__ int64_t si[32];
  const int64_t r = blockIdx.x;
  const float* x = logits + r * V;
  float bv = -INFINITY;
  int64_t bi = V;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x)
    if (x[v] > bv) {  // strided ascending: the first max of this thread is its lowest index
      bv = x[v];
      bi = v;
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

void gemv(const GemvArgs& a, cudaStream_t st) {
  if (a.N <= 0 || a.Z <= 0) return;
  if (a.K % 8 != 0 || ((uintptr_t)a.W & 15) != 0 || ((uintptr_t)a.x & 15) != 0 ||
      (a.ldx % 4) != 0 || (a.w_stride % 8) != 0 || (a.group_stride % 4) != 0 ||
      (a.swiglu && a.N % 2 != 0) || (a.rows_per_group % 2) != 0)
    cuda_op_fail("gemv: K must be a multiple of 8 with 16-byte aligned rows and inputs");
  const int64_t nch = a.K / 8;
  if (nch >= 32) launch_gemv<32>(a, st);
  else if (nch >= 16) launch_gemv<16>(a, st);
  else if (nch >= 8) launch_gemv<8>(a, st);
  else if (nch >= 4) launch_gemv<4>(a, st);
  else if (nch >= 2) launch_gemv<2>(a, st);
  else launch_gemv<1>(a, st);
  DSEEK_CUDA_CHECK_LAUNCH();
}

void dec_embed(float* out, const bf16_t* table, const int32_t* ids, int64_t R, int64_t C,
               cudaStream_t st) {
  if (R <= 0) return;
  embed_kernel<<<(unsigned)R, 256, 0, st>>>(out, table, ids, C);
  DSEEK_CUDA_CHECK_LAUNCH();
}

void dec_rmsnorm(float* out, int64_t ldo, const float* x, int64_t ldx, const float* w, int64_t R,
                 int64_t C, float eps, cudaStream_t st) {
  if (R <= 0) return;
  rmsnorm_kernel<<<(unsigned)R, 256, 0, st>>>(out, ldo, x, ldx, w, C, eps);
  DSEEK_CUDA_CHECK_LAUNCH();
}

void dec_kv_append_rope(const DecCacheGeom& g, float* q, const float* kva, const float* kv_norm_w,
                        float eps, const float* cos_t, const float* sin_t, bool interleaved,
                        const int32_t* row_seq, const int32_t* row_pos, int64_t R, int64_t H,
                        int64_t Dn, int64_t Dqk, cudaStream_t st) {
  if (R <= 0) return;
  if (g.f32)
    kv_append_rope_kernel<float><<<(unsigned)R, 128, 0, st>>>(
        g, q, kva, kv_norm_w, eps, cos_t, sin_t, interleaved, row_seq, row_pos, H, Dn, Dqk);
  else
    kv_append_rope_kernel<bf16><<<(unsigned)R, 128, 0, st>>>(
        g, q, kva, kv_norm_w, eps, cos_t, sin_t, interleaved, row_seq, row_pos, H, Dn, Dqk);
  DSEEK_CUDA_CHECK_LAUNCH();
}

void dec_mla_attention(float* x_lat, float* part_acc, float* part_ml, const DecCacheGeom& g,
                       const float* qabs, const float* q, int64_t Dn, int64_t Dqk,
                       const int32_t* row_seq, const int32_t* row_pos, int64_t R, int64_t H,
                       int64_t n_splits, int64_t min_chunk, float scale, cudaStream_t st) {
  if (R <= 0) return;
  if (g.Dc % 32 != 0 || g.Dc > kMaxDc || g.Dr > 64 || (g.Dc + g.Dr) % 8 != 0 || n_splits < 1 ||
      min_chunk < 1)
    cuda_op_fail("dec_mla_attention: needs Dc % 32 == 0, Dc <= 1024, Dr <= 64, (Dc+Dr) % 8 == 0");
  dim3 grid((unsigned)R, (unsigned)H, (unsigned)n_splits);
  const int per = (int)(g.Dc / 32);
#define DSEEK_MLA_CASE(P)                                                                   \
  case P:                                                                                   \
    if (g.f32)                                                                              \
      mla_split_kernel<P, float><<<grid, kAttnWarps * 32, 0, st>>>(                         \
          part_acc, part_ml, g, qabs, q, Dn, Dqk, row_seq, row_pos, H, min_chunk, scale);   \
    else                                                                                    \
      mla_split_kernel<P, bf16><<<grid, kAttnWarps * 32, 0, st>>>(                          \
          part_acc, part_ml, g, qabs, q, Dn, Dqk, row_seq, row_pos, H, min_chunk, scale);   \
    break;
  switch (per) {
    DSEEK_MLA_CASE(1)
    DSEEK_MLA_CASE(2)
    DSEEK_MLA_CASE(4)
    DSEEK_MLA_CASE(8)
    DSEEK_MLA_CASE(16)
    DSEEK_MLA_CASE(32)
    default:
      cuda_op_fail("dec_mla_attention: Dc / 32 must be a power of two");
  }
#undef DSEEK_MLA_CASE
  DSEEK_CUDA_CHECK_LAUNCH();
  mla_combine_kernel<<<dim3((unsigned)R, (unsigned)H), 128, (n_splits + 1) * sizeof(float), st>>>(
      x_lat, part_acc, part_ml, H, n_splits, g.Dc);
  DSEEK_CUDA_CHECK_LAUNCH();
}

void dec_moe_combine(float* h, const float* y, const float* w, const float* shared, int64_t R,
                     int64_t Ek, int64_t C, cudaStream_t st) {
  if (R <= 0) return;
  moe_combine_kernel<<<(unsigned)R, 256, 0, st>>>(h, y, w, shared, Ek, C);
  DSEEK_CUDA_CHECK_LAUNCH();
}

void dec_argmax(int32_t* ids, const float* logits, int64_t R, int64_t V, cudaStream_t st) {
  if (R <= 0) return;
  argmax_kernel<<<(unsigned)R, 1024, 0, st>>>(ids, logits, V);
  DSEEK_CUDA_CHECK_LAUNCH();
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
