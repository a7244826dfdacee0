// MLA attention of the GPU decoder over the paged latent cache (contracts in
// gpu_decode_kernels.h): the cache append + q_pe RoPE fused into the W_UK^T launch, the split
// attention kernel, and the split combine fused into the W_UV projection.
//
// dec_attention: one block (128 threads) per (split, group of HG heads, row). The block copies its
// heads' [q_abs | q_pe] and then kTile cache rows at a time into shared memory as fp32 (rows
// padded by 4 floats: conflict-free 16-byte reads across tokens), computes the HG x kTile scores
// (each split over 128 / (HG kTile) thread parts), updates a running max / sum per head (16 lanes
// per head), and accumulates p . c for its Dc / 4 float4 columns per head in registers. In decode
// steps the first tile's rows of earlier tokens (written by earlier steps) are copied before the
// PDL wait; only q and the current token's row wait for the previous kernels.
#include <cfloat>
#include <cmath>
#include <cstdint>

#include "dseek/infer/gpu_decode_device.h"

namespace dseek::cuda {

namespace {

using namespace dec;

constexpr int kAttnThreads = 128;
constexpr int kMaxDc = 1024;
constexpr int kMaxSplits = 32;

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

// The append of one row (one block of any size).
template <typename T>
__device__ void append_row(const DecAppend& ap, int64_t r) {
  __shared__ float sh[32];
  const DecCacheGeom& g = ap.g;
  const int64_t Dc = g.Dc, Dr = g.Dr, half = Dr / 2;
  const int64_t seq = ap.row_seq[r], pos = ap.row_pos[r];
  const float* kv = ap.kva + r * ap.ldkva;
  float ss = 0.0f;
  for (int64_t j = threadIdx.x; j < Dc; j += blockDim.x) ss = fmaf(kv[j], kv[j], ss);
  ss = block_sum(ss, sh);
  const float rs = 1.0f / sqrtf(ss / (float)Dc + ap.eps);
  const int64_t blk = g.table[seq * g.max_blocks + pos / g.bs];
  T* dst = reinterpret_cast<T*>(g.pool) + (blk * g.bs + pos % g.bs) * (Dc + Dr);
  for (int64_t j = threadIdx.x; j < Dc; j += blockDim.x)
    st_cache(dst + j, (kv[j] * rs) * ap.kv_norm_w[j]);
  const float* ct = ap.cos_t + pos * half;
  const float* st = ap.sin_t + pos * half;
  const bool il = ap.interleaved;
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    const int64_t ia = il ? 2 * i : i, ib = il ? 2 * i + 1 : i + half;
    float a = kv[Dc + ia], b = kv[Dc + ib];
    rope_pair(a, b, ct[i], st[i]);
    st_cache(dst + Dc + ia, a);
    st_cache(dst + Dc + ib, b);
  }
  for (int64_t k = threadIdx.x; k < ap.H * half; k += blockDim.x) {
    const int64_t h = k / half, i = k % half;
    float* v = ap.q + r * ap.ldq + h * ap.Dqk + ap.Dn;
    const int64_t ia = il ? 2 * i : i, ib = il ? 2 * i + 1 : i + half;
    float a = v[ia], b = v[ib];
    rope_pair(a, b, ct[i], st[i]);
    v[ia] = a;
    v[ib] = b;
  }
}

// Blocks [0, nblk): the W_UK^T GEMV (reads q_nope only); blocks nblk + r: the append of row r.
template <int LPR, int RB>
__global__ void __launch_bounds__(kThreads)
    qabs_append_kernel(DecGemv a, DecAppend ap, int64_t nblk) {
  if ((int64_t)blockIdx.x >= nblk) {
    pdl_wait();
    pdl_trigger();
    if (ap.g.f32)
      append_row<float>(ap, (int64_t)blockIdx.x - nblk);
    else
      append_row<bf16>(ap, (int64_t)blockIdx.x - nblk);
    return;
  }
  dense_body<LPR, RB, false>(a, blockIdx.x);
}

// 8 cache elements (one 16-byte bf16 chunk or two fp32 float4) in registers, stored as fp32.
template <typename T>
struct Raw8;
template <>
struct Raw8<bf16> {
  uint4 v;
  __device__ __forceinline__ void ld(const bf16* p) { v = *reinterpret_cast<const uint4*>(p); }
  __device__ __forceinline__ void st(float* dst) const {
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
    const float2 f0 = __bfloat1622float2(h[0]), f1 = __bfloat1622float2(h[1]);
    const float2 f2 = __bfloat1622float2(h[2]), f3 = __bfloat1622float2(h[3]);
    reinterpret_cast<float4*>(dst)[0] = make_float4(f0.x, f0.y, f1.x, f1.y);
    reinterpret_cast<float4*>(dst)[1] = make_float4(f2.x, f2.y, f3.x, f3.y);
  }
};
template <>
struct Raw8<float> {
  float4 a, b;
  __device__ __forceinline__ void ld(const float* p) {
    a = reinterpret_cast<const float4*>(p)[0];
    b = reinterpret_cast<const float4*>(p)[1];
  }
  __device__ __forceinline__ void st(float* dst) const {
    reinterpret_cast<float4*>(dst)[0] = a;
    reinterpret_cast<float4*>(dst)[1] = b;
  }
};

// Copies the tile's rows (element offsets off[t] into pool, t < nt; off < 0: skip) into cs
// (row stride LP) as fp32; 4 chunks per thread in flight.
template <typename T>
__device__ __forceinline__ void load_tile(float* cs, const T* pool, const int64_t* off, int nt,
                                          int L8, int LP) {
  const int n = nt * L8;
  for (int i0 = threadIdx.x; i0 < n; i0 += 4 * kAttnThreads) {
    Raw8<T> raw[4];
    int dst[4];
#pragma unroll
    for (int k = 0; k < 4; k++) {
      const int i = i0 + k * kAttnThreads;
      dst[k] = -1;
      if (i < n) {
        const int t = i / L8, v = i - t * L8;
        if (off[t] >= 0) {
          raw[k].ld(pool + off[t] + 8 * v);
          dst[k] = t * LP + 8 * v;
        }
      }
    }
#pragma unroll
    for (int k = 0; k < 4; k++)
      if (dst[k] >= 0) raw[k].st(cs + dst[k]);
  }
}

// Block blk of nblk prefetches its share of pf's bytes into L2 (16 KiB pieces, one per thread).
__device__ __forceinline__ void prefetch_ranges(const DecPrefetch& pf, int64_t blk, int64_t nblk) {
  constexpr int64_t kPiece = 16384;
  int64_t total = 0;
  for (int i = 0; i < pf.n; i++) total += pf.bytes[i];
  int64_t per = (total + nblk - 1) / nblk;
  per = (per + kPiece - 1) / kPiece * kPiece;
  const int64_t b0 = blk * per, b1 = b0 + per < total ? b0 + per : total;
  for (int64_t lo = b0 + threadIdx.x * kPiece; lo < b1; lo += (int64_t)blockDim.x * kPiece) {
    const int64_t hi = lo + kPiece < b1 ? lo + kPiece : b1;
    int64_t base = 0;
    for (int i = 0; i < pf.n; i++) {
      const int64_t r1 = base + pf.bytes[i];
      const int64_t x = lo > base ? lo : base, y = hi < r1 ? hi : r1;
      if (x < y)
        prefetch_l2(reinterpret_cast<const char*>(pf.p[i]) + (x - base), (uint32_t)(y - x));
      base = r1;
    }
  }
}

__host__ __device__ inline int64_t attn_row_pad(int64_t L) {
  return L + 4;
}
template <int HG>
__host__ __device__ inline int64_t attn_smem_floats(int64_t L) {
  constexpr int NP = HG * kTile, KS = kAttnThreads / NP;
  return (HG + kTile) * attn_row_pad(L) + KS * NP + HG * kTile;
}

template <typename T, int HG>
__global__ void __launch_bounds__(kAttnThreads) mla_attn_kernel(DecAttn a) {
  constexpr int NP = HG * kTile, KS = kAttnThreads / NP, MAXD4 = kMaxDc / 4 / kAttnThreads;
  extern __shared__ float4 sm4[];
  float* sm = reinterpret_cast<float*>(sm4);
  __shared__ float s_m[HG], s_l[HG], s_c[HG];
  __shared__ int64_t s_off[kTile];
  const int Dc = (int)a.g.Dc, Dr = (int)a.g.Dr, L = Dc + Dr, LP = (int)attn_row_pad(L);
  float* qs = sm;               // [HG][LP]
  float* cs = qs + HG * LP;     // [kTile][LP]
  float* sc = cs + kTile * LP;  // [KS][NP]
  float* ph = sc + KS * NP;     // [HG][kTile]
  const int tid = threadIdx.x;
  const int64_t s = blockIdx.x, S = gridDim.x, h0 = (int64_t)blockIdx.y * HG, r = blockIdx.z;
  const int64_t H = a.H;
  if (a.pf.n)
    prefetch_ranges(a.pf, ((int64_t)blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + s,
                    (int64_t)gridDim.x * gridDim.y * gridDim.z);
  // rows, tables and (decode) the cache rows of earlier tokens are not written by this step's
  // kernels: read them before waiting for the previous kernel
  const int64_t seq = a.row_seq[r], pos = a.row_pos[r], len = pos + 1;
  int64_t active, chunk;
  split_plan(len, S, a.min_chunk, active, chunk);
  if (s >= active) {
    pdl_wait();
    pdl_trigger();
    return;
  }
  const int64_t t0 = s * chunk, t1 = t0 + chunk < len ? t0 + chunk : len;
  const T* pool = reinterpret_cast<const T*>(a.g.pool);
  const int32_t* tab = a.g.table + seq * a.g.max_blocks;
  const int64_t bs = a.g.bs;
  const int L8 = L / 8, L4 = L / 4, nd4 = Dc / 4;
  auto row_off = [&](int64_t tok) { return ((int64_t)tab[tok / bs] * bs + tok % bs) * L; };
  const int nt0 = (int)(t1 - t0 < kTile ? t1 - t0 : kTile);
  if (tid < nt0) s_off[tid] = (a.decode && t0 + tid == pos) ? -1 : row_off(t0 + tid);
  __syncthreads();
  if (a.decode) load_tile<T>(cs, pool, s_off, nt0, L8, LP);
  pdl_wait();
  pdl_trigger();
  {  // q: [q_abs | q_pe] of the block's heads, 4 loads per thread in flight
    const int n = HG * L;
    for (int i0 = tid; i0 < n; i0 += 4 * kAttnThreads) {
      float v[4];
#pragma unroll
      for (int k = 0; k < 4; k++) {
        const int i = i0 + k * kAttnThreads;
        v[k] = 0.0f;
        if (i < n) {
          const int hh = i / L, d = i - hh * L;
          v[k] = d < Dc ? a.qabs[(r * H + h0 + hh) * Dc + d]
                        : a.q[r * a.ldq + (h0 + hh) * a.Dqk + a.Dn + (d - Dc)];
        }
      }
#pragma unroll
      for (int k = 0; k < 4; k++) {
        const int i = i0 + k * kAttnThreads;
        if (i < n) qs[(i / L) * LP + (i % L)] = v[k];
      }
    }
  }
  if (tid < HG) {
    s_m[tid] = -INFINITY;
    s_l[tid] = 0.0f;
  }
  if (a.decode) {  // the current token's row, appended by the previous kernel
    if (pos - t0 < nt0) {
      const int t = (int)(pos - t0);
      const int64_t off = row_off(pos);
      for (int v = tid; v < L8; v += kAttnThreads) {
        Raw8<T> raw;
        raw.ld(pool + off + 8 * v);
        raw.st(cs + t * LP + 8 * v);
      }
    }
  } else {
    load_tile<T>(cs, pool, s_off, nt0, L8, LP);
  }
  float4 acc[MAXD4][HG];
#pragma unroll
  for (int j = 0; j < MAXD4; j++)
#pragma unroll
    for (int hh = 0; hh < HG; hh++) acc[j][hh] = make_float4(0, 0, 0, 0);
  for (int64_t ts = t0; ts < t1; ts += kTile) {
    const int nt = (int)(t1 - ts < kTile ? t1 - ts : kTile);
    if (ts != t0) {
      __syncthreads();  // the previous tile is consumed
      if (tid < nt) s_off[tid] = row_off(ts + tid);
      __syncthreads();
      load_tile<T>(cs, pool, s_off, nt, L8, LP);
    }
    __syncthreads();
    {  // scores: pair p = (head p / kTile, token p % kTile), part tid / NP of the L4 float4s
      const int p = tid % NP, part = tid / NP, hh = p / kTile, t = p % kTile;
      float d = 0.0f;
      if (t < nt) {
        const float4* c4 = reinterpret_cast<const float4*>(cs + t * LP);
        const float4* q4 = reinterpret_cast<const float4*>(qs + hh * LP);
#pragma unroll 4
        for (int f = part; f < L4; f += KS) {
          const float4 c = c4[f], q = q4[f];
          d = fmaf(q.x, c.x, d);
          d = fmaf(q.y, c.y, d);
          d = fmaf(q.z, c.z, d);
          d = fmaf(q.w, c.w, d);
        }
      }
      sc[part * NP + p] = d;
    }
    __syncthreads();
    if (tid < 64) {  // online softmax: 16 lanes per head
      const int p = tid, hh = p / kTile, t = p % kTile;
      const bool ok = p < NP;
      float x = -INFINITY;
      if (ok && t < nt) {
        x = 0.0f;
#pragma unroll
        for (int k = 0; k < KS; k++) x += sc[k * NP + p];
        x *= a.scale;
      }
      float mx = x;
#pragma unroll
      for (int o = kTile / 2; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      const float mo = ok ? s_m[hh] : -INFINITY;
      const float mn = fmaxf(mo, mx);
      const float e = (ok && t < nt) ? expf(x - mn) : 0.0f;
      float sum = e;
#pragma unroll
      for (int o = kTile / 2; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      if (ok) ph[hh * kTile + t] = e;
      if (ok && t == 0) {
        const float corr = expf(mo - mn);
        s_c[hh] = corr;
        s_l[hh] = s_l[hh] * corr + sum;
        s_m[hh] = mn;
      }
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < MAXD4; j++) {
      const int d4 = tid + j * kAttnThreads;
      if (d4 >= nd4) continue;
#pragma unroll
      for (int hh = 0; hh < HG; hh++) {
        const float c = s_c[hh];
        acc[j][hh] =
            make_float4(acc[j][hh].x * c, acc[j][hh].y * c, acc[j][hh].z * c, acc[j][hh].w * c);
      }
      for (int t = 0; t < nt; t++) {
        const float4 cv = reinterpret_cast<const float4*>(cs + t * LP)[d4];
#pragma unroll
        for (int hh = 0; hh < HG; hh++) {
          const float p = ph[hh * kTile + t];
          acc[j][hh].x = fmaf(p, cv.x, acc[j][hh].x);
          acc[j][hh].y = fmaf(p, cv.y, acc[j][hh].y);
          acc[j][hh].z = fmaf(p, cv.z, acc[j][hh].z);
          acc[j][hh].w = fmaf(p, cv.w, acc[j][hh].w);
        }
      }
    }
  }
#pragma unroll
  for (int j = 0; j < MAXD4; j++) {
    const int d4 = tid + j * kAttnThreads;
    if (d4 >= nd4) continue;
#pragma unroll
    for (int hh = 0; hh < HG; hh++)
      reinterpret_cast<float4*>(a.part_acc + ((r * H + h0 + hh) * S + s) * Dc)[d4] = acc[j][hh];
  }
  if (tid < HG) {
    const int64_t base = (r * H + h0 + tid) * S + s;
    a.part_ml[base * 2] = s_m[tid];
    a.part_ml[base * 2 + 1] = s_l[tid];
  }
}

// Blocks (row-pair block, head h, row group): combine the splits of head h for the group's rows
// into shared memory, then the W_UV rows of the block against them.
template <int LPR, int RB>
__global__ void __launch_bounds__(kThreads)
    wuv_kernel(const bf16_t* wuv, int64_t Dv, DecAttn a, float* o) {
  constexpr int NR = 2, GPW = 32 / LPR;
  extern __shared__ float4 xs4[];
  float* xs = reinterpret_cast<float*>(xs4);  // [RB][Dc]
  __shared__ float ws[RB][kMaxSplits];
  __shared__ float winv[RB];
  __shared__ int wact[RB];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, sub = lane / LPR, sl = lane % LPR;
  const int64_t H = a.H, Dc = a.g.Dc, S = a.n_splits;
  const int64_t h = blockIdx.y, rg = (int64_t)blockIdx.z * RB;
  const int64_t n_pairs = Dv / 2;
  const int64_t g = ((int64_t)blockIdx.x * kWarps + warp) * GPW + sub;
  const bool valid = g < n_pairs;
  const int64_t j0 = 2 * (valid ? g : n_pairs - 1);
  const uint4* w[NR] = {reinterpret_cast<const uint4*>(wuv + (h * Dv + j0) * Dc),
                        reinterpret_cast<const uint4*>(wuv + (h * Dv + j0 + 1) * Dc)};
  const int64_t nch = Dc / 8;
  WBatch<NR, kU> wb;
  load_w<LPR, NR, kU>(wb, w, sl, nch);
  pdl_wait();
  pdl_trigger();
  const int nb = (int)(a.R - rg < RB ? a.R - rg : RB);
  if (warp < nb) {
    const int64_t r = rg + warp, len = (int64_t)a.row_pos[r] + 1;
    int64_t active, chunk;
    split_plan(len, S, a.min_chunk, active, chunk);
    const int64_t base = (r * H + h) * S;
    const float m = lane < active ? a.part_ml[(base + lane) * 2] : -INFINITY;
    const float l = lane < active ? a.part_ml[(base + lane) * 2 + 1] : 0.0f;
    const float M = warp_max(m);
    const float wt = lane < active && m != -INFINITY ? expf(m - M) : 0.0f;
    const float Ls = warp_sum(wt * l);
    ws[warp][lane] = wt;
    if (lane == 0) {
      winv[warp] = 1.0f / Ls;
      wact[warp] = (int)active;
    }
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < nb * Dc; i += kThreads) {
    const int64_t b = i / Dc, d = i % Dc, r = rg + b;
    const float* pa = a.part_acc + ((r * H + h) * S) * Dc + d;
    float v = 0.0f;
#pragma unroll 4
    for (int s = 0; s < wact[b]; s++) v = fmaf(ws[b][s], pa[s * Dc], v);
    xs[b * Dc + d] = v * winv[b];
  }
  __syncthreads();
  float acc[NR][RB], ss[RB];
  gemv_pass<LPR, NR, RB, false>(acc, ss, w, nch, sl, nb, XRows{xs, Dc}, nullptr, wb, true);
  if (!valid || sl != 0) return;
#pragma unroll
  for (int b = 0; b < RB; b++) {
    if (b >= nb) continue;
    float* y = o + (rg + b) * H * Dv + h * Dv;
    y[j0] = acc[0][b];
    y[j0 + 1] = acc[1][b];
  }
}

}  // namespace

void dec_split_plan(int64_t len, int64_t n_splits, int64_t min_chunk, int64_t* active,
                    int64_t* chunk) {
  split_plan(len, n_splits, min_chunk, *active, *chunk);
}

void dec_qabs_append(const DecGemv& a, const DecAppend& ap, const DecLaunch& L) {
  if (a.R <= 0) return;
  check_gemv(a);
  if (ap.g.Dr % 2 != 0) cuda_op_fail("dec_qabs_append: odd rope dim");
  const int lpr = lanes_per_row(a.K);
  const int64_t nblk = dense_blocks(a, lpr);
  const dim3 grid((unsigned)(nblk + ap.R));
  dispatch_lpr_rb(lpr, dec_rows_per_pass(a.R), [&](auto lpr_c, auto rb_c) {
    constexpr int LPR = decltype(lpr_c)::value, RB = decltype(rb_c)::value;
    launch(qabs_append_kernel<LPR, RB>, grid, dim3(kThreads), 0, L, a, ap, nblk);
  });
}

void dec_attention(const DecAttn& a, const DecLaunch& L) {
  if (a.R <= 0) return;
  const int64_t Dc = a.g.Dc, Lr = a.g.Dc + a.g.Dr;
  const int64_t HG = a.heads_per_block;
  if (Dc % 4 != 0 || Dc > kMaxDc || Lr % 8 != 0 || a.n_splits < 1 || a.n_splits > kMaxSplits ||
      a.min_chunk < 1 || (HG != 1 && HG != 2 && HG != 4) || a.H % HG != 0)
    cuda_op_fail(
        "dec_attention: needs Dc % 4 == 0, Dc <= 1024, (Dc + Dr) % 8 == 0, 1..32 splits and "
        "1, 2 or 4 heads per block dividing H");
  const dim3 grid((unsigned)a.n_splits, (unsigned)(a.H / HG), (unsigned)a.R);
  auto go = [&](auto kern, int64_t floats) {
    launch(kern, grid, dim3(kAttnThreads), (size_t)floats * sizeof(float), L, a);
  };
  if (a.g.f32) {
    if (HG == 4)
      go(mla_attn_kernel<float, 4>, attn_smem_floats<4>(Lr));
    else if (HG == 2)
      go(mla_attn_kernel<float, 2>, attn_smem_floats<2>(Lr));
    else
      go(mla_attn_kernel<float, 1>, attn_smem_floats<1>(Lr));
  } else {
    if (HG == 4)
      go(mla_attn_kernel<bf16, 4>, attn_smem_floats<4>(Lr));
    else if (HG == 2)
      go(mla_attn_kernel<bf16, 2>, attn_smem_floats<2>(Lr));
    else
      go(mla_attn_kernel<bf16, 1>, attn_smem_floats<1>(Lr));
  }
}

void dec_wuv_combine(const bf16_t* wuv, int64_t Dv, const DecAttn& a, float* o,
                     const DecLaunch& L) {
  if (a.R <= 0) return;
  if (Dv % 2 != 0 || a.g.Dc % 8 != 0 || ((uintptr_t)wuv & 15) != 0)
    cuda_op_fail("dec_wuv_combine: needs an even Dv and Dc % 8 == 0");
  const int lpr = lanes_per_row(a.g.Dc);
  const int64_t rb = dec_rows_per_pass(a.R);
  const int64_t per = (int64_t)kWarps * (32 / lpr);
  const dim3 grid((unsigned)((Dv / 2 + per - 1) / per), (unsigned)a.H,
                  (unsigned)((a.R + rb - 1) / rb));
  const size_t smem = (size_t)rb * a.g.Dc * sizeof(float);
  dispatch_lpr_rb(lpr, rb, [&](auto lpr_c, auto rb_c) {
    constexpr int LPR = decltype(lpr_c)::value, RB = decltype(rb_c)::value;
    launch(wuv_kernel<LPR, RB>, grid, dim3(kThreads), smem, L, wuv, Dv, a, o);
  });
}

}  // namespace dseek::cuda
