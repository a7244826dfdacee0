// Causal flash attention for MLA training (contract in flash_attn.h), FlashAttention-2 style on
// mma.sync (bf16 m16n8k16, fp32 accumulators), ldmatrix fragment loads and cp.async tile copies.
//
// Forward: one block per (b, h, 16 MT NW query rows); each of the NW warps owns 16 MT rows
// (MT = 2: every K / V fragment read from shared memory feeds two m16 products). Q stays in
// shared memory; K/V tiles of BN keys stream through two shared-memory buffers (the copy of tile
// j+1 overlaps the products of tile j). Per tile: S = Q K^T (fp32), causal / length mask, online
// softmax in the exp2 domain (running max m and sum l per row; the O accumulator is rescaled by
// exp2(m_old - m_new)), P rounded to bf16 and O += P V with P taken straight from the S
// registers (the m16n8 accumulator layout of two adjacent key tiles is the A-operand layout).
// Key tiles past a warp's diagonal are skipped. Blocks run heaviest (last query block) first.
//
// Backward: (1) D = rowsum(dout * o) per row, dq_acc (fp32) zeroed; (2) one block (8 warps) per
// (b, h, 64 keys) keeps K, V in shared memory and walks the 64-query tiles at or after the
// diagonal (Q, dout, lse, D double-buffered by cp.async). Per tile the warps split S = Q K^T
// and dP = dout V^T as 4 (query rows) x 2 (key halves), compute P = exp2(S scale log2e -
// lse log2e) and dS = P (dP - D), and exchange P and dS through shared memory (bf16); then
// dq_tile = dS K goes to dq_acc with fp32 float2 atomics (red.global.add.v2.f32), and
// dV += P^T dout, dK += dS^T Q accumulate in registers (warp tiles 16 MT rows x D / (2 MT)).
// (3) dq = bf16(scale dq_acc). Key blocks go heaviest first inside groups of (b, h) pairs whose
// dq_acc fits in L2 (the atomics are L2-bound).
//
// Shared-memory rows are padded by 8 elements (16 bytes): every row stride is then an odd number
// of 16-byte chunks, so the 8 row addresses of each ldmatrix phase hit 8 different bank groups.
#include "dseek/ops/cuda/flash_attn.h"

#include <algorithm>
#include <cmath>

#include "dseek/ops/cuda/common.cuh"  // bf16, sm_count

namespace dseek::cuda {

namespace {

constexpr float kLog2e = 1.4426950408889634f;

// ---------------------------------------------------------------------------------------------
// PTX wrappers

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return (uint32_t)__cvta_generic_to_shared(p);
}

// 16 bytes global -> shared, zero-filled when !pred (src must still be a valid address).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool pred) {
  const int n = pred ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n));
}
__device__ __forceinline__ void cp_async4(uint32_t dst, const void* src, bool pred) {
  const int n = pred ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.wait_group 0;\n" ::: "memory");
}

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm_x2(uint32_t (&r)[2], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm_x2_t(uint32_t (&r)[2], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(addr));
}

// c += a b: a 16x16 (4 regs), b 16x8 (2 regs), bf16 inputs, fp32 accumulators.
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low half) = lo
  return *reinterpret_cast<uint32_t*>(&v);
}

// ---------------------------------------------------------------------------------------------
// Warp-level products on shared-memory tiles. Fragment layouts (PTX m16n8k16): lane = 4 g + c;
// accumulator acc[n8 tile][0..1] = row g, cols 2c, 2c+1; [2..3] = row g + 8, same cols.
// Operand storage (element addresses in bytes from the given origin):
//   A_MK: A(m, k) at 2 (m lda + k)   (rows of A contiguous)      -> ldmatrix
//   A_KM: A(m, k) at 2 (k lda + m)   (A stored transposed)       -> ldmatrix.trans
//   B_NK: B(k, n) at 2 (n ldb + k)   (e.g. K for S = Q K^T)      -> ldmatrix
//   B_KN: B(k, n) at 2 (k ldb + n)   (e.g. V for O = P V)        -> ldmatrix.trans

template <bool A_MK>
__device__ __forceinline__ int a_lane_off(int lane, int lda) {
  return A_MK ? (lane & 15) * lda + (lane >> 4) * 8
              : ((lane & 7) + ((lane >> 4) & 1) * 8) * lda + ((lane >> 3) & 1) * 8;
}
template <bool B_NK>
__device__ __forceinline__ int b_lane_off(int lane, int ldb) {  // x4: two n8 tiles, one k16
  return B_NK ? ((lane & 7) + ((lane >> 4) & 1) * 8) * ldb + ((lane >> 3) & 1) * 8
              : (lane & 15) * ldb + (lane >> 4) * 8;
}
template <bool B_NK>
__device__ __forceinline__ int b_lane_off2(int lane, int ldb) {  // x2: one n8 tile (lanes 0-15)
  return B_NK ? (lane & 7) * ldb + ((lane >> 3) & 1) * 8 : (lane & 15) * ldb;
}

// acc[NT] += A[16 x 16 KT] * B[16 KT x 8 NT] (one k16 step of B in b_step), from shared memory.
template <int KT, int NT, bool B_NK>
__device__ __forceinline__ void b_step(float (&acc)[NT][4], const uint32_t (&af)[4], uint32_t b,
                                       int ldb, int boff, int boff2, int kt) {
#pragma unroll
  for (int np = 0; np < NT / 2; np++) {
    uint32_t bf[4];
    if constexpr (B_NK)
      ldsm_x4(bf, b + 2 * (boff + np * 16 * ldb + kt * 16));
    else
      ldsm_x4_t(bf, b + 2 * (boff + kt * 16 * ldb + np * 16));
    mma_bf16(acc[2 * np], af, bf[0], bf[1]);
    mma_bf16(acc[2 * np + 1], af, bf[2], bf[3]);
  }
  if constexpr (NT % 2 == 1) {
    uint32_t bf[2];
    if constexpr (B_NK)
      ldsm_x2(bf, b + 2 * (boff2 + (NT - 1) * 8 * ldb + kt * 16));
    else
      ldsm_x2_t(bf, b + 2 * (boff2 + kt * 16 * ldb + (NT - 1) * 8));
    mma_bf16(acc[NT - 1], af, bf[0], bf[1]);
  }
}

template <int KT, int NT, bool A_MK, bool B_NK>
__device__ __forceinline__ void gemm_ss(float (&acc)[NT][4], uint32_t a, int lda, uint32_t b,
                                        int ldb, int lane) {
  const int aoff = a_lane_off<A_MK>(lane, lda);
  const int boff = b_lane_off<B_NK>(lane, ldb), boff2 = b_lane_off2<B_NK>(lane, ldb);
#pragma unroll
  for (int kt = 0; kt < KT; kt++) {
    uint32_t af[4];
    if constexpr (A_MK)
      ldsm_x4(af, a + 2 * (aoff + kt * 16));
    else
      ldsm_x4_t(af, a + 2 * (aoff + kt * 16 * lda));
    b_step<KT, NT, B_NK>(acc, af, b, ldb, boff, boff2, kt);
  }
}

// acc[MT][NT] += A[16 MT x 16 KT] * B[16 KT x 8 NT], both from shared memory: each B fragment
// serves MT m16 tiles (fewer ldmatrix per mma than MT = 1).
template <int KT, int MT, int NT, bool A_MK, bool B_NK>
__device__ __forceinline__ void gemm_ss_m(float (&acc)[MT][NT][4], uint32_t a, int lda,
                                          uint32_t b, int ldb, int lane) {
  const int aoff = a_lane_off<A_MK>(lane, lda);
  const int boff = b_lane_off<B_NK>(lane, ldb), boff2 = b_lane_off2<B_NK>(lane, ldb);
#pragma unroll
  for (int kt = 0; kt < KT; kt++) {
    uint32_t af[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
      if constexpr (A_MK)
        ldsm_x4(af[mt], a + 2 * (aoff + mt * 16 * lda + kt * 16));
      else
        ldsm_x4_t(af[mt], a + 2 * (aoff + kt * 16 * lda + mt * 16));
    }
#pragma unroll
    for (int np = 0; np < NT / 2; np++) {
      uint32_t bf[4];
      if constexpr (B_NK)
        ldsm_x4(bf, b + 2 * (boff + np * 16 * ldb + kt * 16));
      else
        ldsm_x4_t(bf, b + 2 * (boff + kt * 16 * ldb + np * 16));
#pragma unroll
      for (int mt = 0; mt < MT; mt++) {
        mma_bf16(acc[mt][2 * np], af[mt], bf[0], bf[1]);
        mma_bf16(acc[mt][2 * np + 1], af[mt], bf[2], bf[3]);
      }
    }
    if constexpr (NT % 2 == 1) {
      uint32_t bf[2];
      if constexpr (B_NK)
        ldsm_x2(bf, b + 2 * (boff2 + (NT - 1) * 8 * ldb + kt * 16));
      else
        ldsm_x2_t(bf, b + 2 * (boff2 + kt * 16 * ldb + (NT - 1) * 8));
#pragma unroll
      for (int mt = 0; mt < MT; mt++) mma_bf16(acc[mt][NT - 1], af[mt], bf[0], bf[1]);
    }
  }
}

template <int NT>
__device__ __forceinline__ void zero(float (&acc)[NT][4]) {
#pragma unroll
  for (int i = 0; i < NT; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
}

// R rows of D bf16 from global (row stride st elements) into shared (row stride D + 8), rows
// >= nvalid zero-filled. Issued by all NTHR threads; the caller commits.
template <int R, int D, int NTHR>
__device__ __forceinline__ void load_tile(uint32_t s, const bf16* g, int64_t st, int nvalid,
                                          int tid) {
  constexpr int CH = D / 8, LD = D + 8;
#pragma unroll
  for (int i0 = 0; i0 < R * CH; i0 += NTHR) {
    const int i = i0 + tid;
    if (R * CH % NTHR == 0 || i < R * CH) {
      const int r = i / CH, c = i % CH;
      const bool ok = r < nvalid;
      cp_async16(s + 2 * (r * LD + c * 8), ok ? g + r * st + c * 8 : g, ok);
    }
  }
}

struct FwdParams {
  bf16* o;
  int64_t osb, ost, osh;
  float* lse;
  const bf16 *q, *k, *v;
  int64_t qsb, qst, qsh, ksb, kst, ksh, vsb, vst, vsh;
  int T, H;
  float scale_log2;  // scale * log2(e)
  int nmb;           // query blocks per (b, h)
  int group;         // (b, h) pairs per block group (see launch_fwd)
};

// MT: each warp owns 16 MT query rows, so every K / V fragment read from shared memory feeds MT
// products (MT = 2 halves the ldmatrix traffic per mma; the price is 2x the O registers).
template <int DQK, int DV, int NW, int BN, int MT>
struct FwdCfg {
  static constexpr int BM = 16 * MT * NW, NTHR = 32 * NW, LDQ = DQK + 8, LDV = DV + 8;
  static constexpr int kSmem = 2 * (BM * LDQ + 2 * BN * LDQ + 2 * BN * LDV);
};

// acc[MT][NT] += A[MT][16 x 16 KT] (registers, A-fragment layout) * B (shared memory).
template <int KT, int MT, int NT, bool B_NK>
__device__ __forceinline__ void gemm_rs_m(float (&acc)[MT][NT][4], const uint32_t (&af)[MT][KT][4],
                                          uint32_t b, int ldb, int lane) {
  const int boff = b_lane_off<B_NK>(lane, ldb), boff2 = b_lane_off2<B_NK>(lane, ldb);
#pragma unroll
  for (int kt = 0; kt < KT; kt++) {
#pragma unroll
    for (int np = 0; np < NT / 2; np++) {
      uint32_t bf[4];
      if constexpr (B_NK)
        ldsm_x4(bf, b + 2 * (boff + np * 16 * ldb + kt * 16));
      else
        ldsm_x4_t(bf, b + 2 * (boff + kt * 16 * ldb + np * 16));
#pragma unroll
      for (int mt = 0; mt < MT; mt++) {
        mma_bf16(acc[mt][2 * np], af[mt][kt], bf[0], bf[1]);
        mma_bf16(acc[mt][2 * np + 1], af[mt][kt], bf[2], bf[3]);
      }
    }
    if constexpr (NT % 2 == 1) {
      uint32_t bf[2];
      if constexpr (B_NK)
        ldsm_x2(bf, b + 2 * (boff2 + (NT - 1) * 8 * ldb + kt * 16));
      else
        ldsm_x2_t(bf, b + 2 * (boff2 + kt * 16 * ldb + (NT - 1) * 8));
#pragma unroll
      for (int mt = 0; mt < MT; mt++) mma_bf16(acc[mt][NT - 1], af[mt][kt], bf[0], bf[1]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// forward

template <int DQK, int DV, int NW, int BN, int MT>
__global__ void __launch_bounds__(32 * NW) fwd_kernel(FwdParams p) {
  using C = FwdCfg<DQK, DV, NW, BN, MT>;
  constexpr int BM = C::BM, NTHR = C::NTHR, LDQ = C::LDQ, LDV = C::LDV;
  constexpr int KQ = DQK / 16, NS = BN / 8, KP = BN / 16, NO = DV / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
  // block order: groups of p.group (b, h) pairs; inside a group the last query block (the
  // longest walk) of every pair first, then the one before, ...
  const int per_group = p.group * p.nmb, gi = (int)blockIdx.x / per_group;
  const int within = (int)blockIdx.x - gi * per_group;
  const int gsize = min(p.group, (int)(gridDim.x / p.nmb) - gi * p.group);
  const int bh = gi * p.group + within % gsize, b = bh / p.H, h = bh % p.H;
  const int q0 = (p.nmb - 1 - within / gsize) * BM;
  const int T = p.T;

  const uint32_t sQ = smem_addr(smem);
  const uint32_t sK = sQ + 2 * BM * LDQ;      // 2 buffers of BN x LDQ
  const uint32_t sV = sK + 2 * 2 * BN * LDQ;  // 2 buffers of BN x LDV
  const bf16* qg = p.q + b * p.qsb + (int64_t)q0 * p.qst + h * p.qsh;
  const bf16* kg = p.k + b * p.ksb + h * p.ksh;
  const bf16* vg = p.v + b * p.vsb + h * p.vsh;

  const int kend = min(T, q0 + BM), ntile = (kend + BN - 1) / BN;
  load_tile<BM, DQK, NTHR>(sQ, qg, p.qst, T - q0, tid);
  load_tile<BN, DQK, NTHR>(sK, kg, p.kst, T, tid);
  load_tile<BN, DV, NTHR>(sV, vg, p.vst, T, tid);
  cp_async_commit();

  float o[MT][NO][4];
  float m[MT][2], l[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
    zero(o[mt]);
    m[mt][0] = m[mt][1] = -INFINITY;
    l[mt][0] = l[mt][1] = 0.0f;
  }
  const int g = lane >> 2, c2 = 2 * (lane & 3);
  const int wrow = q0 + w * 16 * MT;  // this warp's first row; the thread's rows are
                                      // wrow + 16 mt + g + 8 r

  for (int j = 0; j < ntile; j++) {
    cp_async_wait_all();
    __syncthreads();  // tile j visible; every warp is done with tile j - 1's buffers
    if (j + 1 < ntile) {
      const int k1 = (j + 1) * BN, buf = (j + 1) & 1;
      load_tile<BN, DQK, NTHR>(sK + 2 * buf * BN * LDQ, kg + (int64_t)k1 * p.kst, p.kst, T - k1,
                               tid);
      load_tile<BN, DV, NTHR>(sV + 2 * buf * BN * LDV, vg + (int64_t)k1 * p.vst, p.vst, T - k1,
                              tid);
      cp_async_commit();
    }
    const int k0 = j * BN;
    if (k0 > wrow + 16 * MT - 1) continue;  // the whole tile is above this warp's diagonal
    float s[MT][NS][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) zero(s[mt]);
    gemm_ss_m<KQ, MT, NS, true, true>(s, sQ + 2 * (w * 16 * MT * LDQ), LDQ,
                                      sK + 2 * (j & 1) * BN * LDQ, LDQ, lane);
    if (k0 + BN - 1 > wrow || k0 + BN > T) {  // tile crosses the diagonal or the end
#pragma unroll
      for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < NS; nt++)
#pragma unroll
          for (int e = 0; e < 4; e++) {
            const int col = k0 + nt * 8 + c2 + (e & 1), row = wrow + mt * 16 + g + (e >> 1) * 8;
            if (col > row || col >= T) s[mt][nt][e] = -INFINITY;
          }
    }
    // online softmax (exp2 domain); key 0 is in tile 0 and seen by every row, so m is finite
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
      for (int r = 0; r < 2; r++) {
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < NS; nt++)
          mx = fmaxf(mx, fmaxf(s[mt][nt][2 * r], s[mt][nt][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mnew = fmaxf(m[mt][r], mx * p.scale_log2);
        const float alpha = exp2f(m[mt][r] - mnew);  // 0 on the first tile (m = -inf)
        m[mt][r] = mnew;
        float sum = 0.0f;
#pragma unroll
        for (int nt = 0; nt < NS; nt++)
#pragma unroll
          for (int e = 2 * r; e < 2 * r + 2; e++) {
            s[mt][nt][e] = exp2f(fmaf(s[mt][nt][e], p.scale_log2, -mnew));
            sum += s[mt][nt][e];
          }
        l[mt][r] = l[mt][r] * alpha + sum;  // per-thread partial; the quad is summed at the end
#pragma unroll
        for (int nt = 0; nt < NO; nt++) {
          o[mt][nt][2 * r] *= alpha;
          o[mt][nt][2 * r + 1] *= alpha;
        }
      }
    uint32_t pf[MT][KP][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
      for (int kk = 0; kk < KP; kk++) {
        pf[mt][kk][0] = pack_bf16(s[mt][2 * kk][0], s[mt][2 * kk][1]);
        pf[mt][kk][1] = pack_bf16(s[mt][2 * kk][2], s[mt][2 * kk][3]);
        pf[mt][kk][2] = pack_bf16(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
        pf[mt][kk][3] = pack_bf16(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
      }
    gemm_rs_m<KP, MT, NO, false>(o, pf, sV + 2 * (j & 1) * BN * LDV, LDV, lane);
  }

  // epilogue: O / l (bf16), lse = (m + log2 l) ln 2
#pragma unroll
  for (int mt = 0; mt < MT; mt++)
#pragma unroll
    for (int r = 0; r < 2; r++) {
      float sum = l[mt][r];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      const float inv = 1.0f / sum;
      const int row = wrow + mt * 16 + g + 8 * r;
      if (row < T) {
        bf16* op = p.o + b * p.osb + (int64_t)row * p.ost + h * p.osh + c2;
#pragma unroll
        for (int nt = 0; nt < NO; nt++)
          *reinterpret_cast<uint32_t*>(op + nt * 8) =
              pack_bf16(o[mt][nt][2 * r] * inv, o[mt][nt][2 * r + 1] * inv);
        if ((lane & 3) == 0)
          p.lse[(int64_t)bh * T + row] = (m[mt][r] + log2f(sum)) * 0.69314718055994531f;
      }
    }
}

// ---------------------------------------------------------------------------------------------
// backward

struct BwdParams {
  bf16 *dk, *dv;
  int64_t dksb, dkst, dksh, dvsb, dvst, dvsh;
  const bf16 *q, *k, *v, *dout;
  int64_t qsb, qst, qsh, ksb, kst, ksh, vsb, vst, vsh, dosb, dost, dosh;
  const float* lse;  // [B, H, T]
  const float* D;    // [B, H, T]
  float* dq_acc;     // [B, H, T, DQK]
  int T, H;
  float scale, scale_log2;
  int nkb;    // key blocks per (b, h)
  int group;  // (b, h) pairs per block group (see launch_bwd)
};

template <int DQK, int DV>
struct BwdCfg {
  static constexpr int BM = 64, BN = 64, NTHR = 256;  // 8 warps
  static constexpr int LDQ = DQK + 8, LDV = DV + 8, LDP = BN + 8;
  // bf16: K, V, Q x2, dO x2, P, dS; fp32: lse x2, D x2
  static constexpr int kSmem =
      2 * (BN * LDQ + BN * LDV + 2 * BM * LDQ + 2 * BM * LDV + 2 * BM * LDP) + 4 * 4 * BM;
};

// MT: the dq / dV / dK products run on warp tiles of 16 MT rows x (D / (2 MT)) columns (warps
// as (4 / MT) row groups x 2 MT column groups); MT = 2 needs fewer ldmatrix per mma (faster for
// Dqk = 192), MT = 1 serves head dims whose quarter is not a multiple of 8 (and measured faster
// for 96 / 64).
template <int DQK, int DV, int MT>
__global__ void __launch_bounds__(256) bwd_kernel(BwdParams p) {
  using C = BwdCfg<DQK, DV>;
  constexpr int BM = C::BM, BN = C::BN, NTHR = C::NTHR, LDQ = C::LDQ, LDV = C::LDV, LDP = C::LDP;
  constexpr int RG = 4 / MT;                          // row groups
  constexpr int HQ = DQK / (2 * MT), HV = DV / (2 * MT);  // each warp's share of the head dims
  static_assert(HQ % 8 == 0 && HV % 8 == 0, "head dims too small for this warp layout");
  extern __shared__ __align__(16) unsigned char smem[];
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, wm = w & 3, wn = w >> 2;
  // block order: groups of p.group (b, h) pairs; inside a group key block 0 (the longest walk)
  // of every pair first, then key block 1, ...
  const int per_group = p.group * p.nkb, gi = (int)blockIdx.x / per_group;
  const int within = (int)blockIdx.x - gi * per_group;
  const int gsize = min(p.group, (int)(gridDim.x / p.nkb) - gi * p.group);
  const int bh = gi * p.group + within % gsize, b = bh / p.H, h = bh % p.H;
  const int k0 = (within / gsize) * BN;
  const int T = p.T;

  const uint32_t sK = smem_addr(smem);
  const uint32_t sV = sK + 2 * BN * LDQ;
  const uint32_t sQ = sV + 2 * BN * LDV;      // 2 buffers BM x LDQ
  const uint32_t sO = sQ + 2 * 2 * BM * LDQ;  // dout, 2 buffers BM x LDV
  const uint32_t sP = sO + 2 * 2 * BM * LDV;
  const uint32_t sS = sP + 2 * BM * LDP;      // dS
  const uint32_t sL = sS + 2 * BM * LDP;      // lse, 2 x BM fp32
  const uint32_t sD = sL + 4 * 2 * BM;        // D, 2 x BM fp32
  const float* sLf = reinterpret_cast<const float*>(smem + (sL - sK));
  const float* sDf = reinterpret_cast<const float*>(smem + (sD - sK));

  const bf16* qg = p.q + b * p.qsb + h * p.qsh;
  const bf16* dog = p.dout + b * p.dosb + h * p.dosh;
  const float* lg = p.lse + (int64_t)bh * T;
  const float* dg = p.D + (int64_t)bh * T;

  auto load_q_tile = [&](int q0, int buf) {
    load_tile<BM, DQK, NTHR>(sQ + 2 * buf * BM * LDQ, qg + (int64_t)q0 * p.qst, p.qst, T - q0, tid);
    load_tile<BM, DV, NTHR>(sO + 2 * buf * BM * LDV, dog + (int64_t)q0 * p.dost, p.dost, T - q0,
                            tid);
    if (tid < BM) {
      const bool ok = q0 + tid < T;
      cp_async4(sL + 4 * (buf * BM + tid), ok ? lg + q0 + tid : lg, ok);
    } else if (tid < 2 * BM) {
      const int i = tid - BM;
      const bool ok = q0 + i < T;
      cp_async4(sD + 4 * (buf * BM + i), ok ? dg + q0 + i : dg, ok);
    }
  };

  load_tile<BN, DQK, NTHR>(sK, p.k + b * p.ksb + (int64_t)k0 * p.kst + h * p.ksh, p.kst, T - k0,
                           tid);
  load_tile<BN, DV, NTHR>(sV, p.v + b * p.vsb + (int64_t)k0 * p.vst + h * p.vsh, p.vst, T - k0,
                          tid);
  const int m_first = k0 / BM, nmt = (T + BM - 1) / BM;
  load_q_tile(m_first * BM, 0);
  cp_async_commit();

  float dk[MT][HQ / 8][4], dv[MT][HV / 8][4];
#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
    zero(dk[mt]);
    zero(dv[mt]);
  }
  const int g = lane >> 2, c2 = 2 * (lane & 3);
  const int wr = w % RG, wc = w / RG;  // second-phase warp tile: rows 16 MT wr, cols wc

  for (int mt = m_first; mt < nmt; mt++) {
    const int buf = (mt - m_first) & 1, q0 = mt * BM;
    cp_async_wait_all();
    __syncthreads();  // tile mt visible; every warp is done with the previous tile
    if (mt + 1 < nmt) {
      load_q_tile(q0 + BM, buf ^ 1);
      cp_async_commit();
    }
    const uint32_t q_s = sQ + 2 * buf * BM * LDQ, o_s = sO + 2 * buf * BM * LDV;
    // S (16 queries x 32 keys) and dP for this warp
    float s[4][4], dp[4][4];
    zero(s);
    zero(dp);
    gemm_ss<DQK / 16, 4, true, true>(s, q_s + 2 * (wm * 16 * LDQ), LDQ, sK + 2 * (wn * 32 * LDQ),
                                     LDQ, lane);
    gemm_ss<DV / 16, 4, true, true>(dp, o_s + 2 * (wm * 16 * LDV), LDV, sV + 2 * (wn * 32 * LDV),
                                    LDV, lane);
    const bool need_mask = q0 + wm * 16 < k0 + wn * 32 + 31 || q0 + BM > T;
#pragma unroll
    for (int r = 0; r < 2; r++) {
      const int qr = wm * 16 + g + 8 * r, q = q0 + qr;
      const float lse2 = sLf[buf * BM + qr] * kLog2e, Dq = sDf[buf * BM + qr];
#pragma unroll
      for (int nt = 0; nt < 4; nt++) {
        float pv[2], ds[2];
#pragma unroll
        for (int e = 0; e < 2; e++) {
          const int key = k0 + wn * 32 + nt * 8 + c2 + e;
          const bool ok = !need_mask || (key <= q && q < T);
          pv[e] = ok ? exp2f(fmaf(s[nt][2 * r + e], p.scale_log2, -lse2)) : 0.0f;
          ds[e] = pv[e] * (dp[nt][2 * r + e] - Dq);
        }
        const int off = 2 * (qr * LDP + wn * 32 + nt * 8 + c2);
        asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(sP + off), "r"(pack_bf16(pv[0], pv[1])));
        asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(sS + off), "r"(pack_bf16(ds[0], ds[1])));
      }
    }
    __syncthreads();  // P, dS complete
    {  // dq_tile (16 MT queries x HQ) = dS K, into dq_acc (fp32 atomics)
      float dq[MT][HQ / 8][4];
#pragma unroll
      for (int mt = 0; mt < MT; mt++) zero(dq[mt]);
      gemm_ss_m<BN / 16, MT, HQ / 8, true, false>(dq, sS + 2 * (wr * 16 * MT * LDP), LDP,
                                                  sK + 2 * (wc * HQ), LDQ, lane);
#pragma unroll
      for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
          const int q = q0 + wr * 16 * MT + mt * 16 + g + 8 * r;
          if (q < T) {
            float* dst = p.dq_acc + ((int64_t)bh * T + q) * DQK + wc * HQ + c2;
#pragma unroll
            for (int nt = 0; nt < HQ / 8; nt++)
              atomicAdd(reinterpret_cast<float2*>(dst + nt * 8),
                        make_float2(dq[mt][nt][2 * r], dq[mt][nt][2 * r + 1]));
          }
        }
    }
    // dV (16 MT keys x HV) += P^T dout;  dK (16 MT keys x HQ) += dS^T Q
    gemm_ss_m<BM / 16, MT, HV / 8, false, false>(dv, sP + 2 * (wr * 16 * MT), LDP,
                                                 o_s + 2 * (wc * HV), LDV, lane);
    gemm_ss_m<BM / 16, MT, HQ / 8, false, false>(dk, sS + 2 * (wr * 16 * MT), LDP,
                                                 q_s + 2 * (wc * HQ), LDQ, lane);
  }

#pragma unroll
  for (int mt = 0; mt < MT; mt++)
#pragma unroll
    for (int r = 0; r < 2; r++) {
      const int key = k0 + wr * 16 * MT + mt * 16 + g + 8 * r;
      if (key < T) {
        bf16* kp = p.dk + b * p.dksb + (int64_t)key * p.dkst + h * p.dksh + wc * HQ + c2;
        bf16* vp = p.dv + b * p.dvsb + (int64_t)key * p.dvst + h * p.dvsh + wc * HV + c2;
#pragma unroll
        for (int nt = 0; nt < HQ / 8; nt++)
          *reinterpret_cast<uint32_t*>(kp + nt * 8) =
              pack_bf16(dk[mt][nt][2 * r] * p.scale, dk[mt][nt][2 * r + 1] * p.scale);
#pragma unroll
        for (int nt = 0; nt < HV / 8; nt++)
          *reinterpret_cast<uint32_t*>(vp + nt * 8) =
              pack_bf16(dv[mt][nt][2 * r], dv[mt][nt][2 * r + 1]);
      }
    }
}

// D[b, h, t] = sum_j dout[b, t, h, j] o[b, t, h, j]; one warp per (b, t, h) row, 8 bf16 a lane.
template <int DV>
__global__ void bwd_pre_kernel(float* D, const bf16* dout, int64_t dosb, int64_t dost,
                               int64_t dosh, const bf16* o, int64_t osb, int64_t ost, int64_t osh,
                               int64_t rows, int T, int H) {
  const int64_t row = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  const int h = (int)(row % H);
  const int64_t bt = row / H;
  const int t = (int)(bt % T);
  const int64_t b = bt / T;
  float acc = 0.0f;
  for (int j = lane * 8; j < DV; j += 32 * 8) {
    float x[8], y[8];
    load_vec<8>(x, reinterpret_cast<const bf16_t*>(dout + b * dosb + t * dost + h * dosh + j));
    load_vec<8>(y, reinterpret_cast<const bf16_t*>(o + b * osb + t * ost + h * osh + j));
#pragma unroll
    for (int i = 0; i < 8; i++) acc = fmaf(x[i], y[i], acc);
  }
  acc = warp_sum(acc);
  if (lane == 0) D[(b * H + h) * T + t] = acc;
}

// dq[b, t, h, :] = bf16(scale * dq_acc[b, h, t, :]); one thread per 8 elements.
template <int DQK>
__global__ void bwd_post_kernel(bf16* dq, int64_t sb, int64_t st, int64_t sh, const float* acc,
                                int64_t n8, int T, int H, float scale) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n8) return;
  constexpr int C8 = DQK / 8;
  const int c = (int)(i % C8);
  const int64_t bht = i / C8;
  const int t = (int)(bht % T);
  const int64_t bh = bht / T;
  const int h = (int)(bh % H);
  const int64_t b = bh / H;
  const float4* src = reinterpret_cast<const float4*>(acc + bht * DQK + c * 8);
  const float4 x = src[0], y = src[1];
  const float v[8] = {x.x * scale, x.y * scale, x.z * scale, x.w * scale,
                      y.x * scale, y.y * scale, y.z * scale, y.w * scale};
  store_vec<8>(reinterpret_cast<bf16_t*>(dq + b * sb + t * st + h * sh + c * 8), v);
}

// ---------------------------------------------------------------------------------------------
// launchers


int64_t g_bwd_group_bytes = 48 << 20;  // flash_attn_set_bwd_group_bytes

template <class K>
void set_smem(K kernel, int bytes) {
  DSEEK_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

template <int DQK, int DV, int NW, int BN, int MT>
void launch_fwd(const FwdParams& p, int64_t BH, cudaStream_t stream) {
  using C = FwdCfg<DQK, DV, NW, BN, MT>;
  static const bool once = (set_smem(fwd_kernel<DQK, DV, NW, BN, MT>, C::kSmem), true);
  (void)once;
  // One block group: heaviest first over all pairs. (Groups of pairs sharing 16 MiB of K/V
  // through L2 measured up to 12% slower on the H100, 48 MiB within 2%: the forward is not
  // memory bound, and small groups leave a longer tail.)
  FwdParams q = p;
  q.nmb = (p.T + C::BM - 1) / C::BM;
  q.group = (int)BH;
  fwd_kernel<DQK, DV, NW, BN, MT><<<(unsigned)(BH * q.nmb), C::NTHR, C::kSmem, stream>>>(q);
  DSEEK_CUDA_CHECK_LAUNCH();
}

template <int DQK, int DV, int MT>
void launch_bwd(const BwdParams& p, bf16* dq, int64_t dqsb, int64_t dqst, int64_t dqsh,
                const bf16* o, int64_t osb, int64_t ost, int64_t osh, int64_t B,
                cudaStream_t stream) {
  using C = BwdCfg<DQK, DV>;
  static const bool once = (set_smem(bwd_kernel<DQK, DV, MT>, C::kSmem), true);
  (void)once;
  const int64_t BH = B * p.H, rows = BH * p.T;
  DSEEK_CUDA_CHECK(
      cudaMemsetAsync(p.dq_acc, 0, (size_t)rows * DQK * sizeof(float), stream));
  bwd_pre_kernel<DV><<<(unsigned)((rows + 7) / 8), 256, 0, stream>>>(
      const_cast<float*>(p.D), p.dout, p.dosb, p.dost, p.dosh, o, osb, ost, osh, rows, p.T, p.H);
  DSEEK_CUDA_CHECK_LAUNCH();
  // The dq atomics are fast only while the dq_acc rows of the (b, h) pairs in flight stay in L2
  // (H100, B 8, T 1024, H 16, D 192/128: 0.91 ms with groups of ~48 MiB of dq_acc, 0.94 ms with
  // 16 MiB, 1.22 ms with one heaviest-first order over all pairs), so blocks go in groups.
  BwdParams q = p;
  q.nkb = (p.T + C::BN - 1) / C::BN;
  q.group = g_bwd_group_bytes <= 0 ? (int)BH
                                   : (int)std::max<int64_t>(
                                         1, std::min<int64_t>(BH, g_bwd_group_bytes /
                                                                      ((int64_t)p.T * DQK * 4)));
  bwd_kernel<DQK, DV, MT><<<(unsigned)(BH * q.nkb), C::NTHR, C::kSmem, stream>>>(q);
  DSEEK_CUDA_CHECK_LAUNCH();
  const int64_t n8 = rows * (DQK / 8);
  bwd_post_kernel<DQK><<<(unsigned)((n8 + 255) / 256), 256, 0, stream>>>(
      dq, dqsb, dqst, dqsh, p.dq_acc, n8, p.T, p.H, p.scale);
  DSEEK_CUDA_CHECK_LAUNCH();
}

bool aligned16(const void* ptr, int64_t sb, int64_t st, int64_t sh) {
  return ((uintptr_t)ptr & 15) == 0 && sb % 8 == 0 && st % 8 == 0 && sh % 8 == 0;
}
template <class V>
bool ok_view(const V& v) {
  return v.p != nullptr && aligned16(v.p, v.sb, v.st, v.sh);
}

void check_dims(const FlashAttnDims& d, const char* who) {
  // 1-D grids of (b, h) pairs x 64-row blocks (32-row for the forward's smallest tiles)
  if (d.B < 0 || d.T < 0 || d.H < 0 || d.T > (1 << 30) ||
      d.B * d.H * ((d.T + 31) / 32) > (int64_t)INT32_MAX)
    cuda_op_fail(who);
  if (!flash_attn_supported(d.Dqk, d.Dv))
    cuda_op_fail("flash_attn: unsupported head dims (Dqk, Dv); supported: (48, 32), (96, 64), "
                 "(192, 128), (64, 64), (128, 128)");
}

}  // namespace

bool flash_attn_supported(int64_t Dqk, int64_t Dv) {
  return (Dqk == 48 && Dv == 32) || (Dqk == 96 && Dv == 64) || (Dqk == 192 && Dv == 128) ||
         (Dqk == 64 && Dv == 64) || (Dqk == 128 && Dv == 128);
}

void flash_attn_forward(BthdOut o, float* lse, BthdView q, BthdView k, BthdView v,
                        const FlashAttnDims& d, float scale, cudaStream_t stream) {
  check_dims(d, "flash_attn_forward: bad sizes");
  if (d.B == 0 || d.T == 0 || d.H == 0) return;
  if (!ok_view(o) || !ok_view(q) || !ok_view(k) || !ok_view(v) || lse == nullptr)
    cuda_op_fail("flash_attn_forward: null pointer, or a pointer not 16-byte aligned / a stride "
                 "not a multiple of 8 elements");
  FwdParams p{};
  p.o = reinterpret_cast<bf16*>(o.p);
  p.osb = o.sb, p.ost = o.st, p.osh = o.sh;
  p.lse = lse;
  p.q = reinterpret_cast<const bf16*>(q.p);
  p.k = reinterpret_cast<const bf16*>(k.p);
  p.v = reinterpret_cast<const bf16*>(v.p);
  p.qsb = q.sb, p.qst = q.st, p.qsh = q.sh;
  p.ksb = k.sb, p.kst = k.st, p.ksh = k.sh;
  p.vsb = v.sb, p.vst = v.st, p.vsh = v.sh;
  p.T = (int)d.T, p.H = (int)d.H;
  p.scale_log2 = scale * kLog2e;
  const int64_t BH = d.B * d.H;
  // <Dqk, Dv, warps, keys per tile, m16 tiles per warp>: the fastest measured on the H100 (B 8,
  // T 1024, H 16): 192/128 0.187 ms with these vs 0.210 ms with 16-row warps and 64-key tiles.
  if (d.Dqk == 48) launch_fwd<48, 32, 4, 64, 2>(p, BH, stream);
  if (d.Dqk == 96) launch_fwd<96, 64, 4, 64, 2>(p, BH, stream);
  if (d.Dqk == 192) launch_fwd<192, 128, 4, 32, 2>(p, BH, stream);
  if (d.Dqk == 64) launch_fwd<64, 64, 4, 64, 2>(p, BH, stream);
  if (d.Dqk == 128) launch_fwd<128, 128, 4, 32, 2>(p, BH, stream);
}

int64_t flash_attn_set_bwd_group_bytes(int64_t bytes) {
  const int64_t old = g_bwd_group_bytes;
  g_bwd_group_bytes = bytes;
  return old;
}

size_t flash_attn_backward_workspace_bytes(const FlashAttnDims& d) {
  const size_t rows = (size_t)(d.B * d.H * d.T);
  return rows * (size_t)d.Dqk * sizeof(float) + ((rows * sizeof(float) + 15) / 16) * 16;
}

void flash_attn_backward(BthdOut dq, BthdOut dk, BthdOut dv, BthdView dout, BthdView q,
                         BthdView k, BthdView v, BthdView o, const float* lse,
                         const FlashAttnDims& d, float scale, void* workspace,
                         cudaStream_t stream) {
  check_dims(d, "flash_attn_backward: bad sizes");
  if (d.B == 0 || d.T == 0 || d.H == 0) return;
  if (!ok_view(dq) || !ok_view(dk) || !ok_view(dv) || !ok_view(dout) || !ok_view(q) ||
      !ok_view(k) || !ok_view(v) || !ok_view(o) || lse == nullptr || workspace == nullptr ||
      ((uintptr_t)workspace & 15) != 0)
    cuda_op_fail("flash_attn_backward: null pointer, or a pointer not 16-byte aligned / a stride "
                 "not a multiple of 8 elements");
  const int64_t rows = d.B * d.H * d.T;
  BwdParams p{};
  p.dk = reinterpret_cast<bf16*>(dk.p);
  p.dv = reinterpret_cast<bf16*>(dv.p);
  p.dksb = dk.sb, p.dkst = dk.st, p.dksh = dk.sh;
  p.dvsb = dv.sb, p.dvst = dv.st, p.dvsh = dv.sh;
  p.q = reinterpret_cast<const bf16*>(q.p);
  p.k = reinterpret_cast<const bf16*>(k.p);
  p.v = reinterpret_cast<const bf16*>(v.p);
  p.dout = reinterpret_cast<const bf16*>(dout.p);
  p.qsb = q.sb, p.qst = q.st, p.qsh = q.sh;
  p.ksb = k.sb, p.kst = k.st, p.ksh = k.sh;
  p.vsb = v.sb, p.vst = v.st, p.vsh = v.sh;
  p.dosb = dout.sb, p.dost = dout.st, p.dosh = dout.sh;
  p.lse = lse;
  p.dq_acc = static_cast<float*>(workspace);
  p.D = p.dq_acc + rows * d.Dqk;
  p.T = (int)d.T, p.H = (int)d.H;
  p.scale = scale;
  p.scale_log2 = scale * kLog2e;
  bf16* dqp = reinterpret_cast<bf16*>(dq.p);
  const bf16* op = reinterpret_cast<const bf16*>(o.p);
#define DSEEK_FA_BWD(DQK, DV, MT)                                                                \
  if (d.Dqk == DQK)                                                                              \
  launch_bwd<DQK, DV, MT>(p, dqp, dq.sb, dq.st, dq.sh, op, o.sb, o.st, o.sh, d.B, stream)
  DSEEK_FA_BWD(48, 32, 1);
  DSEEK_FA_BWD(96, 64, 1);
  DSEEK_FA_BWD(192, 128, 2);
  DSEEK_FA_BWD(64, 64, 1);
  DSEEK_FA_BWD(128, 128, 2);
#undef DSEEK_FA_BWD
}

}  // namespace dseek::cuda
