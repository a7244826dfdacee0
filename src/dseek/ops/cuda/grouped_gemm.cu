// Grouped GEMM kernels (contract in grouped_gemm.h). One kernel template covers the three layouts:
// each operand tile is either K-major in memory (rows of K contiguous: A of nt/nn, W of nt) or
// MN-major (rows of M or N contiguous: W of nn, both operands of tn). K-major tiles are stored in
// shared memory as [128][64 + 8] and read with ldmatrix; MN-major as [64][128 + 8] and read with
// ldmatrix.trans. The 16-byte row pads make the 8 addresses of every ldmatrix phase hit 8
// different 4-bank groups (144-byte rows: offsets 0,36,72,... words = 0,4,8,... mod 32; 272-byte
// rows: 0,68,... = 0,4,8,...). 8 warps in a 2 x 4 arrangement, each computing a 64 x 32 block of
// the 128 x 128 tile; 3 stages of 36 KB (2 CTAs per SM). Grid: the N tiles are the fastest index,
// so the CTAs that read one 128-row tile of A run together and A comes from DRAM about once.
#include "dseek/ops/cuda/grouped_gemm.h"

#include "dseek/ops/cuda/common.cuh"  // bf16, sm_count

namespace dseek::cuda {

namespace {

constexpr int BM = 128, BN = 128, BK = 64, kStages = 3, kThreads = 256, kPad = 8;
static_assert(BM == kGroupedGemmBM, "the schedule's tile must be the kernel's");

template <bool KMAJ>
struct Tile {  // one 128 x BK operand tile in shared memory
  static constexpr int ld = KMAJ ? BK + kPad : 128 + kPad;
  static constexpr int elems = KMAJ ? 128 * ld : BK * ld;
};

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
  const int n = valid ? 16 : 0;  // 0: the 16 bytes are zero-filled, nothing is read
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
template <bool TRANS>
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const bf16_t* p) {
  const unsigned s = (unsigned)__cvta_generic_to_shared(p);
  if constexpr (TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], const uint32_t* b) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// One operand (A: MN = M, or B: MN = N). g points at the tile's origin (mn = 0, k = 0).
//   KMAJ:  element (mn, k) at g[mn * ld + k]; valid when mn < mn_valid and k < k_valid
//   !KMAJ: element (k, mn) at g[k * ld + mn]; same validity
// Validity is per 8-element chunk (k_valid of a K-major operand and mn_valid of an MN-major one
// are multiples of 8).
struct Operand {
  const bf16_t* g;
  int64_t ld;
  int mn_valid, k_valid;
};

template <bool KMAJ>
__device__ __forceinline__ void load_tile(bf16_t* s, const Operand& o, int k0, int tid) {
  constexpr int kc_per_row = BK / 8;
#pragma unroll
  for (int it = 0; it < 128 * BK / 8 / kThreads; it++) {  // 16-byte chunks, 4 per thread
    const int i = tid + it * kThreads;
    if constexpr (KMAJ) {
      const int mn = i / kc_per_row, kc = (i % kc_per_row) * 8;
      const bool v = mn < o.mn_valid && k0 + kc < o.k_valid;
      const bf16_t* src = v ? o.g + (int64_t)mn * o.ld + k0 + kc : o.g;
      cp_async16(s + mn * Tile<true>::ld + kc, src, v);
    } else {
      const int k = i >> 4, mc = (i & 15) * 8;
      const bool v = k0 + k < o.k_valid && mc < o.mn_valid;
      const bf16_t* src = v ? o.g + (int64_t)(k0 + k) * o.ld + mc : o.g;
      cp_async16(s + k * Tile<false>::ld + mc, src, v);
    }
  }
}

// acc[mi][ni][4] of the warp's 64 x 32 block += the BK slice held in sA, sB.
template <bool A_KMAJ, bool B_KMAJ>
__device__ __forceinline__ void mma_stage(float (&acc)[4][4][4], const bf16_t* sA, const bf16_t* sB,
                                          int wm, int wn, int lane) {
  const int j = lane >> 3, r = lane & 7;
#pragma unroll
  for (int kk = 0; kk < BK; kk += 16) {
    uint32_t a[4][4], b[4][2];
#pragma unroll
    for (int mi = 0; mi < 4; mi++) {
      const int m0 = wm * 64 + mi * 16;
      if constexpr (A_KMAJ)
        ldsm_x4<false>(a[mi], sA + (m0 + (lane & 15)) * Tile<true>::ld + kk + (lane >> 4) * 8);
      else
        ldsm_x4<true>(a[mi], sA + (kk + r + (j >> 1) * 8) * Tile<false>::ld + m0 + (j & 1) * 8);
    }
#pragma unroll
    for (int nj = 0; nj < 2; nj++) {
      const int n0 = wn * 32 + nj * 16;
      uint32_t t[4];
      if constexpr (B_KMAJ)
        ldsm_x4<false>(t, sB + (n0 + r + (j >> 1) * 8) * Tile<true>::ld + kk + (j & 1) * 8);
      else
        ldsm_x4<true>(t, sB + (kk + r + (j & 1) * 8) * Tile<false>::ld + n0 + (j >> 1) * 8);
      b[2 * nj][0] = t[0];
      b[2 * nj][1] = t[1];
      b[2 * nj + 1][0] = t[2];
      b[2 * nj + 1][1] = t[3];
    }
#pragma unroll
    for (int mi = 0; mi < 4; mi++)
#pragma unroll
      for (int ni = 0; ni < 4; ni++) mma_bf16(acc[mi][ni], a[mi], b[ni]);
  }
}

template <bool A_KMAJ, bool B_KMAJ>
__device__ __forceinline__ void mainloop(float (&acc)[4][4][4], bf16_t* smem, const Operand& A,
                                         const Operand& B, int K) {
  constexpr int sa = Tile<A_KMAJ>::elems, sb = Tile<B_KMAJ>::elems;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp >> 2, wn = warp & 3;
#pragma unroll
  for (int mi = 0; mi < 4; mi++)
#pragma unroll
    for (int ni = 0; ni < 4; ni++)
#pragma unroll
      for (int q = 0; q < 4; q++) acc[mi][ni][q] = 0.0f;
  const int KT = (K + BK - 1) / BK;
#pragma unroll
  for (int s = 0; s < kStages - 1; s++) {
    if (s < KT) {
      load_tile<A_KMAJ>(smem + s * (sa + sb), A, s * BK, tid);
      load_tile<B_KMAJ>(smem + s * (sa + sb) + sa, B, s * BK, tid);
    }
    cp_async_commit();
  }
  for (int kt = 0; kt < KT; kt++) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // stage kt landed for everyone; stage kt - 1 is free to refill
    const int nk = kt + kStages - 1;
    if (nk < KT) {
      bf16_t* s = smem + (nk % kStages) * (sa + sb);
      load_tile<A_KMAJ>(s, A, nk * BK, tid);
      load_tile<B_KMAJ>(s + sa, B, nk * BK, tid);
    }
    cp_async_commit();
    const bf16_t* s = smem + (kt % kStages) * (sa + sb);
    mma_stage<A_KMAJ, B_KMAJ>(acc, s, s + sa, wm, wn, lane);
  }
  cp_async_wait<0>();
}

// nt / nn: a CTA per (128-row tile of the schedule, 128-column tile of N).
template <bool B_KMAJ>
__global__ void __launch_bounds__(kThreads)
    grouped_rows_kernel(bf16_t* __restrict__ Y, const bf16_t* __restrict__ A,
                        const bf16_t* __restrict__ W, const bf16_t* __restrict__ W_last,
                        const int32_t* __restrict__ offsets, const int32_t* __restrict__ tile_off,
                        int G, int N, int K) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int t = blockIdx.y;  // n tiles run fastest: the CTAs that share an A tile run together
  if (t >= tile_off[G]) return;
  int lo = 0, hi = G - 1;  // the last g with tile_off[g] <= t (skips empty groups)
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (tile_off[mid] <= t)
      lo = mid;
    else
      hi = mid - 1;
  }
  const int g = lo;
  const int64_t row0 = offsets[g] + (int64_t)(t - tile_off[g]) * BM;
  const int rows = min(BM, (int)(offsets[g + 1] - row0));
  const int n0 = blockIdx.x * BN;
  const bf16_t* Wg = (W_last && g == G - 1) ? W_last : W + (int64_t)g * N * K;
  const Operand a{A + row0 * K, K, rows, K};
  const Operand b = B_KMAJ ? Operand{Wg + (int64_t)n0 * K, K, N - n0, K}  // W_g [N, K]
                           : Operand{Wg + n0, N, N - n0, K};              // W_g [K, N]
  float acc[4][4][4];
  mainloop<true, B_KMAJ>(acc, reinterpret_cast<bf16_t*>(smem_raw), a, b, K);

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, wm = warp >> 2, wn = warp & 3;
#pragma unroll
  for (int mi = 0; mi < 4; mi++)
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int r = wm * 64 + mi * 16 + (lane >> 2) + h * 8;
      if (r >= rows) continue;
      bf16_t* yr = Y + (row0 + r) * N + n0;
#pragma unroll
      for (int ni = 0; ni < 4; ni++) {
        const int c = wn * 32 + ni * 8 + (lane & 3) * 2;
        if (n0 + c < N)
          *reinterpret_cast<__nv_bfloat162*>(yr + c) =
              __floats2bfloat162_rn(acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1]);
      }
    }
}

// tn: a CTA per (128-column tile of N, 128-row tile of M, group); reduces over the group's rows.
// The groups are launched in reverse order (blockIdx.z = 0 is the LAST group): in the MoE layer the
// last group is the shared expert, with all the step's rows (8192 against ~768 per routed expert),
// so its few long CTAs must start first and overlap the many short ones instead of running alone
// as a tail after them. Each tile's arithmetic is unchanged (same result bits).
__global__ void __launch_bounds__(kThreads)
    grouped_wgrad_kernel(float* __restrict__ dW, float* __restrict__ dW_last,
                         const bf16_t* __restrict__ dY, const bf16_t* __restrict__ A,
                         const int32_t* __restrict__ offsets, int G, int M, int N) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int g = G - 1 - (int)blockIdx.z;
  const int64_t r0 = offsets[g];
  const int rows = (int)(offsets[g + 1] - r0);
  if (rows <= 0) return;  // dW_g += 0
  const int n0 = blockIdx.x * BN, m0 = blockIdx.y * BM;
  const Operand a{dY + r0 * M + m0, M, M - m0, rows};  // (k = row, m)
  const Operand b{A + r0 * N + n0, N, N - n0, rows};   // (k = row, n)
  float acc[4][4][4];
  mainloop<false, false>(acc, reinterpret_cast<bf16_t*>(smem_raw), a, b, rows);

  float* D = (dW_last && g == G - 1) ? dW_last : dW + (int64_t)g * M * N;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, wm = warp >> 2, wn = warp & 3;
#pragma unroll
  for (int mi = 0; mi < 4; mi++)
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int r = m0 + wm * 64 + mi * 16 + (lane >> 2) + h * 8;
      if (r >= M) continue;
      float* dr = D + (int64_t)r * N + n0;
#pragma unroll
      for (int ni = 0; ni < 4; ni++) {
        const int c = wn * 32 + ni * 8 + (lane & 3) * 2;
        if (n0 + c < N) {
          float2 v = *reinterpret_cast<float2*>(dr + c);
          v.x += acc[mi][ni][2 * h];
          v.y += acc[mi][ni][2 * h + 1];
          *reinterpret_cast<float2*>(dr + c) = v;
        }
      }
    }
}

// counts -> offsets, tile_off: one block of 1024 threads, each scanning a contiguous chunk.
__global__ void schedule_kernel(int32_t* offsets, int32_t* tile_off, const int32_t* counts, int G) {
  __shared__ int s_rows[1024], s_tiles[1024];
  const int tid = threadIdx.x, per = (G + 1023) / 1024;
  const int b = min(G, tid * per), e = min(G, b + per);
  int rs = 0, ts = 0;
  for (int i = b; i < e; i++) {
    rs += counts[i];
    ts += (counts[i] + BM - 1) / BM;
  }
  s_rows[tid] = rs;
  s_tiles[tid] = ts;
  __syncthreads();
  for (int d = 1; d < 1024; d <<= 1) {  // Hillis-Steele inclusive scan
    const int vr = tid >= d ? s_rows[tid - d] : 0, vt = tid >= d ? s_tiles[tid - d] : 0;
    __syncthreads();
    s_rows[tid] += vr;
    s_tiles[tid] += vt;
    __syncthreads();
  }
  rs = s_rows[tid] - rs;  // exclusive
  ts = s_tiles[tid] - ts;
  for (int i = b; i < e; i++) {
    offsets[i] = rs;
    tile_off[i] = ts;
    rs += counts[i];
    ts += (counts[i] + BM - 1) / BM;
  }
  if (tid == 1023) {
    offsets[G] = s_rows[1023];
    tile_off[G] = s_tiles[1023];
  }
}

template <bool A_KMAJ, bool B_KMAJ>
constexpr int smem_bytes() {
  return kStages * (Tile<A_KMAJ>::elems + Tile<B_KMAJ>::elems) * (int)sizeof(bf16_t);
}

void check_args(const char* what, const void* p0, const void* p1, const void* p2, const void* p3,
                int64_t a, int64_t b) {
  for (const void* p : {p0, p1, p2, p3})
    if (((uintptr_t)p & 15) != 0) cuda_op_fail(what);
  if (a % 8 != 0 || b % 8 != 0 || a > 0x7fffffff || b > 0x7fffffff) cuda_op_fail(what);
}

template <bool B_KMAJ>
void launch_rows(bf16_t* Y, const bf16_t* A, const bf16_t* W, const bf16_t* W_last,
                 const GroupLayout& l, int64_t N, int64_t K, cudaStream_t stream) {
  if (l.G <= 0 || l.max_rows <= 0 || N <= 0) return;
  if (K <= 0) cuda_op_fail("grouped_gemm: K must be positive");
  check_args("grouped_gemm nt/nn: N and K must be multiples of 8, pointers 16-byte aligned", Y, A,
             W, W_last, N, K);
  constexpr int smem = smem_bytes<true, B_KMAJ>();
  static const bool attr_set = [] {
    DSEEK_CUDA_CHECK(cudaFuncSetAttribute(grouped_rows_kernel<B_KMAJ>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    return true;
  }();
  (void)attr_set;
  const int64_t tiles = (l.max_rows + BM - 1) / BM + l.G;  // bound on sum_g ceil(n_g / BM)
  if (tiles > 65535 || (N + BN - 1) / BN > 0x7fffffffLL) cuda_op_fail("grouped_gemm: too large");
  const dim3 grid((unsigned)((N + BN - 1) / BN), (unsigned)tiles);
  grouped_rows_kernel<B_KMAJ><<<grid, kThreads, smem, stream>>>(
      Y, A, W, W_last, l.offsets, l.tile_off, (int)l.G, (int)N, (int)K);
  DSEEK_CUDA_CHECK_LAUNCH();
}

}  // namespace

void grouped_gemm_schedule(int32_t* offsets, int32_t* tile_off, const int32_t* counts, int64_t G,
                           cudaStream_t stream) {
  if (G <= 0 || G > 8192) cuda_op_fail("grouped_gemm_schedule: need 1 <= G <= 8192");
  schedule_kernel<<<1, 1024, 0, stream>>>(offsets, tile_off, counts, (int)G);
  DSEEK_CUDA_CHECK_LAUNCH();
}

void grouped_gemm_nt(bf16_t* Y, const bf16_t* A, const bf16_t* W, const bf16_t* W_last,
                     const GroupLayout& l, int64_t N, int64_t K, cudaStream_t stream) {
  launch_rows<true>(Y, A, W, W_last, l, N, K, stream);
}

void grouped_gemm_nn(bf16_t* dA, const bf16_t* dY, const bf16_t* W, const bf16_t* W_last,
                     const GroupLayout& l, int64_t N, int64_t K, cudaStream_t stream) {
  launch_rows<false>(dA, dY, W, W_last, l, N, K, stream);
}

void grouped_gemm_tn(float* dW, float* dW_last, const bf16_t* dY, const bf16_t* A,
                     const GroupLayout& l, int64_t M, int64_t N, cudaStream_t stream) {
  if (l.G <= 0 || l.max_rows <= 0 || M <= 0 || N <= 0) return;
  check_args("grouped_gemm tn: M and N must be multiples of 8, pointers 16-byte aligned", dY, A, dW,
             dW_last, M, N);
  constexpr int smem = smem_bytes<false, false>();
  static const bool attr_set = [] {
    DSEEK_CUDA_CHECK(cudaFuncSetAttribute(grouped_wgrad_kernel,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    return true;
  }();
  (void)attr_set;
  if (l.G > 65535 || (M + BM - 1) / BM > 65535) cuda_op_fail("grouped_gemm tn: too large");
  const dim3 grid((unsigned)((N + BN - 1) / BN), (unsigned)((M + BM - 1) / BM), (unsigned)l.G);
  grouped_wgrad_kernel<<<grid, kThreads, smem, stream>>>(dW, dW_last, dY, A, l.offsets, (int)l.G,
                                                         (int)M, (int)N);
  DSEEK_CUDA_CHECK_LAUNCH();
}

}  // namespace dseek::cuda
