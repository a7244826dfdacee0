// MoE of the GPU decoder (contracts in gpu_decode_kernels.h): the router GEMV whose last block
// routes every row and builds the plan of slots / pairs / items, the expert gate|up projection
// over the plan's slots, and the down projection with the weighted combine.
//
// Routing (one warp per row) follows ops/cuda/moe_router.cu, which mirrors the CPU: scores
// (sigmoid, or softmax with an fp64 sum in expert order), choice = score + bias, optional group
// limit (group score = sum of top-2 (sigmoid) or max), top-k arg-max rounds (ties to the lower
// index), the winners sorted by id, weights = scores (/ fp64 sum + 1e-20 if norm_topk) * scaling.
#include <cfloat>
#include <cmath>
#include <cstdint>

#include "dseek/infer/gpu_decode_device.h"
#include "dseek/ops/cuda/router_topk.cuh"

namespace dseek::cuda {

namespace {

using namespace dec;

constexpr int kMaxE = 1024, kMaxK = 32, kMaxG = 32;

// Routes row r (one warp): idx / w to global, the choices also to s_idx [R, K] and the per
// expert counts cnt (shared). s, choice: [E] shared scratch of this warp; sel: [kMaxK].
__device__ void route_row(int64_t r, const DecRouter& ro, float* s, float* choice, int* sel,
                          int* s_idx, int* cnt) {
  const int lane = threadIdx.x & 31;
  const RouterParams& p = ro.p;
  const int E = (int)p.n_experts, K = (int)p.top_k, G = (int)p.n_group;
  const float* lg = ro.logits + r * E;  // written by other blocks of this launch: read from L2
  if (p.sigmoid) {
    for (int e = lane; e < E; e += 32) s[e] = 1.0f / (1.0f + expf(-__ldcg(lg + e)));
  } else {
    float mx = -INFINITY;
    for (int e = lane; e < E; e += 32) mx = fmaxf(mx, __ldcg(lg + e));
    mx = warp_max(mx);
    double part = 0.0;
    for (int e = lane; e < E; e += 32) {
      s[e] = expf(__ldcg(lg + e) - mx);
      part += s[e];
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) part += __shfl_xor_sync(0xffffffffu, part, o);
    __syncwarp();
    for (int e = lane; e < E; e += 32) s[e] = (float)(s[e] / part);
  }
  for (int e = lane; e < E; e += 32) choice[e] = s[e] + (ro.bias ? ro.bias[e] : 0.0f);
  __syncwarp();
  warp_group_topk(choice, sel, E, K, G, (int)p.topk_group, p.group_limited, p.sigmoid);
  double sum = 0.0;  // fp64 sum of the chosen scores in id order, as the CPU
  for (int k = 0; k < K; k++) sum += s[sel[k]];
  if (lane < K) {
    const int e = sel[lane];
    float wk = s[e];
    if (p.norm_topk) wk = wk / ((float)sum + 1e-20f);
    ro.idx[r * K + lane] = e;
    ro.w[r * K + lane] = wk * p.scaling;
    s_idx[r * K + lane] = e;
    atomicAdd(&cnt[e], 1);
  }
  __syncwarp();
}

// Exclusive prefix sums over v[0, n) by one warp (lane l sums a contiguous segment); returns
// the total to every lane.
__device__ int warp_exscan(const int* v, int* out, int n) {
  const int lane = threadIdx.x & 31, per = (n + 31) / 32;
  const int b = lane * per, e1 = b + per < n ? b + per : n;
  int sum = 0;
  for (int e = b; e < e1; e++) sum += v[e];
  int incl = sum;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int t = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += t;
  }
  int run = incl - sum;
  for (int e = b; e < e1; e++) {
    out[e] = run;
    run += v[e];
  }
  return __shfl_sync(0xffffffffu, incl, 31);
}

// Routing and the plan for R rows, in one block. sm: shared scratch (see dec_moe_router).
__device__ void route_and_plan(int64_t R, const DecRouter& ro, const DecMoePlan& pl, float* sm,
                               int* sel_all) {
  const int E = (int)ro.p.n_experts, K = (int)ro.p.top_k, nsh = (int)ro.n_sh;
  const int rb = (int)ro.rb, warp = threadIdx.x >> 5;
  int* cnt = reinterpret_cast<int*>(sm + kWarps * 2 * E);  // [E] pairs per expert
  int* act = cnt + E;                                      // [E] 1 if chosen, then items per expert
  int* pos = act + E;                                      // [E] first pair
  int* slot = pos + E;                                     // [E] slot index - nsh
  int* item = slot + E;                                    // [E] first item - nsh * G
  int* s_idx = item + E;                                   // [R, K]
  __shared__ int s_tot[3];
  for (int e = threadIdx.x; e < E; e += blockDim.x) cnt[e] = 0;
  __syncthreads();
  for (int64_t r = warp; r < R; r += kWarps)
    route_row(r, ro, sm + warp * 2 * E, sm + warp * 2 * E + E, sel_all + warp * kMaxK, s_idx, cnt);
  __syncthreads();
  if (warp == 0) {
    const int total_pairs = warp_exscan(cnt, pos, E);
    for (int e = threadIdx.x; e < E; e += 32) act[e] = cnt[e] > 0;
    __syncwarp();
    const int n_act = warp_exscan(act, slot, E);
    for (int e = threadIdx.x; e < E; e += 32) act[e] = (cnt[e] + rb - 1) / rb;
    __syncwarp();
    const int n_it = warp_exscan(act, item, E);
    if (threadIdx.x == 0) {
      s_tot[0] = total_pairs;
      s_tot[1] = n_act;
      s_tot[2] = n_it;
    }
  }
  __syncthreads();
  const int64_t G = (R + rb - 1) / rb;  // items per shared slot
  const int64_t p_r = nsh * R, i_r = nsh * G;
  for (int64_t i = threadIdx.x; i < nsh * R; i += blockDim.x) {  // shared pairs
    pl.pair_row[i] = (int32_t)(i % R);
    pl.pair_w[i] = 1.0f;
  }
  for (int64_t i = threadIdx.x; i < nsh * G; i += blockDim.x) {  // shared items
    const int64_t q = i / G, g = (i % G) * rb;
    pl.item_e[i] = (int32_t)(E + q);
    pl.item_p0[i] = (int32_t)(q * R + g);
    pl.item_np[i] = (int32_t)(R - g < rb ? R - g : rb);
  }
  if (threadIdx.x < nsh) {
    pl.slot_e[threadIdx.x] = E + threadIdx.x;
    pl.slot_p0[threadIdx.x] = (int32_t)(threadIdx.x * R);
    pl.slot_np[threadIdx.x] = (int32_t)R;
  }
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    const int n = cnt[e];
    if (n == 0) continue;
    const int64_t p0 = p_r + pos[e], sl = nsh + slot[e];
    pl.slot_e[sl] = e;
    pl.slot_p0[sl] = (int32_t)p0;
    pl.slot_np[sl] = n;
    for (int g = 0, it = (int)(i_r + item[e]); g < n; g += rb, it++) {
      pl.item_e[it] = e;
      pl.item_p0[it] = (int32_t)(p0 + g);
      pl.item_np[it] = n - g < rb ? n - g : rb;
    }
    int64_t p = p0;  // pairs: the rows that chose e, ascending
    for (int64_t r = 0; r < R; r++)
      for (int k = 0; k < K; k++)
        if (s_idx[r * K + k] == e) {
          pl.pair_row[p] = (int32_t)r;
          pl.pair_w[p] = ro.w[r * K + k];
          pl.pair_of[r * K + k] = (int32_t)p;
          p++;
        }
  }
  if (threadIdx.x == 0) {
    pl.counts[0] = nsh + s_tot[1];
    pl.counts[1] = (int32_t)(i_r + s_tot[2]);
    if (ro.n_routed) *ro.n_routed = s_tot[1];
  }
}

// Blocks [0, nrb): the router GEMV, then the last of them routes and plans. Blocks nrb + b: the
// shared slices' gate|up (bps blocks per slice).
template <int LPR, int RB>
__global__ void __launch_bounds__(kThreads)
    router_kernel(DecGemv a, DecRouter ro, DecMoePlan pl, int64_t nrb, int64_t bps) {
  extern __shared__ float4 rsm4[];
  __shared__ int sel[kWarps * kMaxK];
  __shared__ int s_last;
  if ((int64_t)blockIdx.x >= nrb) {
    const int64_t b = (int64_t)blockIdx.x - nrb, q = b / bps;
    DecGemv sh = a;
    sh.W = ro.sh_w1 + q * 2 * ro.Im * a.K;
    sh.N = 2 * ro.Im;
    sh.swiglu = true;
    sh.y = ro.act + q * a.R * ro.Im;
    sh.ldy = ro.Im;
    dense_body<LPR, RB, true>(sh, b % bps);
    return;
  }
  dense_body<LPR, RB, true>(a, blockIdx.x);
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) s_last = atomicAdd(pl.ticket, 1) == (int)nrb - 1;
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  route_and_plan(a.R, ro, pl, reinterpret_cast<float*>(rsm4), sel);
  if (threadIdx.x == 0) *pl.ticket = 0;
}

// Blocks (unit block, routed slot): units (gate row j, up row Im + j) of the slot's expert for
// all of the slot's pairs, RB pairs per pass.
template <int LPR, int RB>
__global__ void __launch_bounds__(kThreads) moe_up_kernel(DecMoeUp a, DecMoePlan pl) {
  constexpr int NR = 2, GPW = 32 / LPR, KU = RB == 1 ? kU1 : kU;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, sub = lane / LPR, sl = lane % LPR;
  const int64_t unit = ((int64_t)blockIdx.x * kWarps + warp) * GPW + sub;
  const bool valid = unit < a.Im;
  const int64_t uu = valid ? unit : a.Im - 1;
  const int slot = (int)(a.n_sh + blockIdx.y);
  const int64_t nch = a.C / 8;
  pdl_wait();
  pdl_trigger();
  const int n_slots = pl.counts[0], e = pl.slot_e[slot];  // loaded together
  const int64_t p0 = pl.slot_p0[slot], np = pl.slot_np[slot];
  if (slot >= n_slots) return;
  const bf16_t* W = a.w1 + (int64_t)e * 2 * a.Im * a.C;
  const uint4* w[NR] = {reinterpret_cast<const uint4*>(W + uu * a.C),
                        reinterpret_cast<const uint4*>(W + (a.Im + uu) * a.C)};
  WBatch<NR, KU> wb;
  for (int64_t pg = 0; pg < np; pg += RB) {
    const int nb = (int)(np - pg < RB ? np - pg : RB);
    XGather<RB> xg{a.x, a.C, {}};
#pragma unroll
    for (int b = 0; b < RB; b++) xg.rows[b] = b < nb ? pl.pair_row[p0 + pg + b] : 0;
    float acc[NR][RB], ss[RB];
    gemv_pass<LPR, NR, RB, true>(acc, ss, w, nch, sl, nb, xg, a.norm_w, wb, false);
    if (!valid || sl != 0) continue;
#pragma unroll
    for (int b = 0; b < RB; b++) {
      if (b >= nb) continue;
      const float rs = rms_scale(ss[b], a.C, a.eps);
      const float gt = acc[0][b] * rs, up = acc[1][b] * rs;
      a.act[(p0 + pg + b) * a.Im + unit] = (gt / (1.0f + expf(-gt))) * up;
    }
  }
}

// Blocks of J = GPW * 4 output columns; warp w takes items w, w + 8, ... (each: NR = 4 columns
// per subgroup against the item's pairs). FUSED (R <= 8): weighted sums per warp in shared
// memory, routed and shared apart, then h += routed + shared; else y -> ey.
template <int LPR, int RB, bool FUSED>
__global__ void __launch_bounds__(kThreads) moe_down_kernel(DecMoeDown a, DecMoePlan pl) {
  constexpr int NR = 4, GPW = 32 / LPR, J = GPW * NR;
  constexpr int FW = FUSED ? kWarps : 1, FR = FUSED ? kFusedRows : 1;
  __shared__ float accR[FW][FR][J], accS[FW][FR][J];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, sub = lane / LPR, sl = lane % LPR;
  const int64_t C = a.C, Im = a.Im;
  const int64_t col0 = (int64_t)blockIdx.x * J + sub * NR;
  const int64_t nch = Im / 8;
  if constexpr (FUSED) {
    for (int i = threadIdx.x; i < FW * FR * J; i += kThreads) {
      (&accR[0][0][0])[i] = 0.0f;
      (&accS[0][0][0])[i] = 0.0f;
    }
  }
  const uint4* w[NR];
  auto point = [&](int64_t e) {
    const bf16_t* W = a.w2 + e * C * Im;
#pragma unroll
    for (int i = 0; i < NR; i++)
      w[i] = reinterpret_cast<const uint4*>(W + (col0 + i < C ? col0 + i : C - 1) * Im);
  };
  const int64_t G = (a.R + RB - 1) / RB;  // items per shared slot
  const bool pre = warp < a.n_sh * G;     // this warp's first item is a known shared one
  WBatch<NR, kU> wb;
  if (pre) {
    point(a.E + warp / G);
    load_w<LPR, NR, kU>(wb, w, sl, nch);
  }
  pdl_wait();
  pdl_trigger();
  __syncthreads();
  const int n_items = pl.counts[1];
  int e = 0, p0 = 0, np = 0;
  if (warp < pl.max_items) e = pl.item_e[warp], p0 = pl.item_p0[warp], np = pl.item_np[warp];
  for (int it = warp; it < n_items; it += kWarps) {
    if (it != warp) e = pl.item_e[it], p0 = pl.item_p0[it], np = pl.item_np[it];
    const bool first = pre && it == warp;
    if (!first) point(e);
    float acc[NR][RB], ss[RB];
    gemv_pass<LPR, NR, RB, false>(acc, ss, w, nch, sl, np, XRows{a.act + p0 * Im, Im}, nullptr, wb,
                                  first);
    if (sl != 0) continue;
#pragma unroll
    for (int b = 0; b < RB; b++) {
      if (b >= np) continue;
      const int64_t p = p0 + b;
      if constexpr (FUSED) {
        const int r = pl.pair_row[p];
        const float wt = pl.pair_w[p];
        float(*dst)[J] = e >= a.E ? accS[warp] : accR[warp];
#pragma unroll
        for (int i = 0; i < NR; i++) dst[r][sub * NR + i] += wt * acc[i][b];
      } else {
#pragma unroll
        for (int i = 0; i < NR; i++)
          if (col0 + i < C) a.ey[p * C + col0 + i] = acc[i][b];
      }
    }
  }
  if constexpr (FUSED) {
    __syncthreads();
    for (int64_t i = threadIdx.x; i < a.R * J; i += kThreads) {
      const int64_t r = i / J, j = i % J, col = (int64_t)blockIdx.x * J + j;
      if (col >= C) continue;
      float o = 0.0f, sh = 0.0f;
      for (int ww = 0; ww < kWarps; ww++) o += accR[ww][r][j];
      for (int ww = 0; ww < kWarps; ww++) sh += accS[ww][r][j];
      a.h[r * C + col] += o + sh;
    }
  }
}

// h[r] += sum_k w[r, k] ey[pair_of[r, k]] + sum_q ey[q R + r]   (one block per row)
__global__ void moe_combine_kernel(DecMoeDown a, DecMoePlan pl) {
  pdl_wait();
  pdl_trigger();
  const int64_t r = blockIdx.x, C = a.C, Ek = a.Ek;
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
    float o = 0.0f;
    for (int64_t k = 0; k < Ek; k++) o += a.w[r * Ek + k] * a.ey[pl.pair_of[r * Ek + k] * C + j];
    for (int64_t q = 0; q < a.n_sh; q++) o += a.ey[(q * a.R + r) * C + j];
    a.h[r * C + j] += o;
  }
}

}  // namespace

void dec_moe_router(const DecGemv& gate, const DecRouter& ro, const DecMoePlan& pl,
                    const DecLaunch& L) {
  if (gate.R <= 0) return;
  check_gemv(gate);
  const RouterParams& p = ro.p;
  const size_t smem =
      (size_t)(kWarps * 2 * p.n_experts + 5 * p.n_experts + gate.R * p.top_k) * sizeof(float);
  if (p.n_experts > kMaxE || p.top_k > kMaxK || p.top_k < 1 || p.top_k > p.n_experts ||
      (p.group_limited && (p.n_group > kMaxG || p.n_experts % p.n_group != 0)) ||
      gate.N != p.n_experts || !gate.norm_w || ro.rb != dec_rows_per_pass(gate.R) ||
      smem > 200 * 1024 || (ro.n_sh > 0 && (!ro.sh_w1 || !ro.act || ro.Im <= 0)))
    cuda_op_fail("dec_moe_router: unsupported router (E <= 1024, top_k <= 32, n_group <= 32)");
  const int lpr = lanes_per_row(gate.K);
  const int64_t nrb = dense_blocks(gate, lpr);
  DecGemv sh = gate;
  sh.N = 2 * ro.Im;
  sh.swiglu = true;
  const int64_t bps = ro.n_sh > 0 ? dense_blocks(sh, lpr) : 0;
  const dim3 grid((unsigned)(nrb + ro.n_sh * bps));
  dispatch_lpr_rb(lpr, ro.rb, [&](auto lpr_c, auto rb_c) {
    constexpr int LPR = decltype(lpr_c)::value, RB = decltype(rb_c)::value;
    launch(router_kernel<LPR, RB>, grid, dim3(kThreads), smem, L, gate, ro, pl, nrb, bps);
  });
}

void dec_moe_up(const DecMoeUp& a, const DecMoePlan& pl, const DecLaunch& L) {
  if (a.R <= 0 || a.max_routed <= 0) return;
  if (a.C % 8 != 0 || ((uintptr_t)a.w1 & 15) != 0 || ((uintptr_t)a.x & 15) != 0)
    cuda_op_fail("dec_moe_up: C must be a multiple of 8 with aligned weights");
  const int lpr = lanes_per_row(a.C);
  const int64_t per = (int64_t)kWarps * (32 / lpr);
  const dim3 grid((unsigned)((a.Im + per - 1) / per), (unsigned)a.max_routed);
  dispatch_lpr_rb(lpr, dec_rows_per_pass(a.R), [&](auto lpr_c, auto rb_c) {
    constexpr int LPR = decltype(lpr_c)::value, RB = decltype(rb_c)::value;
    launch(moe_up_kernel<LPR, RB>, grid, dim3(kThreads), 0, L, a, pl);
  });
}

void dec_moe_down(const DecMoeDown& a, const DecMoePlan& pl, const DecLaunch& L) {
  if (a.R <= 0) return;
  if (a.Im % 8 != 0 || ((uintptr_t)a.w2 & 15) != 0 || ((uintptr_t)a.act & 15) != 0 ||
      a.rb != dec_rows_per_pass(a.R))
    cuda_op_fail("dec_moe_down: Im must be a multiple of 8 with aligned weights");
  const int lpr = lanes_per_row(a.Im);
  const int64_t J = (int64_t)(32 / lpr) * 4;
  const dim3 grid((unsigned)((a.C + J - 1) / J));
  const bool fused = a.R <= kFusedRows;
  dispatch_lpr_rb(lpr, a.rb, [&](auto lpr_c, auto rb_c) {
    constexpr int LPR = decltype(lpr_c)::value, RB = decltype(rb_c)::value;
    if (fused)
      launch(moe_down_kernel<LPR, RB, true>, grid, dim3(kThreads), 0, L, a, pl);
    else
      launch(moe_down_kernel<LPR, RB, false>, grid, dim3(kThreads), 0, L, a, pl);
  });
  if (!fused) launch(moe_combine_kernel, dim3((unsigned)a.R), dim3(256), 0, L, a, pl);
}

}  // namespace dseek::cuda
