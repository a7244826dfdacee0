// Kernels of the GPU decoder (infer/gpu_decoder.h): bf16 weights, fp32 activations. Decoding is
// memory bound (every weight is read once per step for a handful of rows), so activations stay
// fp32 at no bandwidth cost and the decoder follows the CPU's fp32 arithmetic closely; only the
// weights and the latent cache are bf16. Plain C++ header (built only with CUDA).
//
// Paged latent cache: per layer a pool of blocks, block b holding `bs` tokens, each token a row
// [c_kv (Dc) | k_pe (Dr)] in bf16 (row = Dc + Dr elements). A sequence's token t lives in block
// table[seq * max_blocks + t / bs] at row t % bs. "Rows" of a forward are query tokens: row r
// belongs to sequence row_seq[r] at position row_pos[r] (and attends to positions 0..row_pos[r]).
// Everything a decode step reads that changes per step (ids, positions, tables, lengths) is in
// device memory, so one captured CUDA graph replays every step.
//
// Launches (DecLaunch): with pdl, each kernel is launched as a programmatic dependent of the one
// before it (griddepcontrol): its blocks start while the previous kernel drains, load their first
// weights (which no kernel writes) and only then wait for the previous kernel's results. Every
// kernel here waits before touching activations, so the stream order is kept exactly.
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <cstdint>

#include "dseek/ops/cpu/moe_router.h"  // RouterParams
#include "dseek/ops/cuda/bf16.h"       // bf16_t

namespace dseek::cuda {

struct DecLaunch {
  cudaStream_t stream = nullptr;
  bool pdl = true;  // programmatic dependent launch (see the file comment)
};

// y[r, n] = (W x_r)[n] for rows r < R; bf16 W [N, K] (row stride K), fp32 x and y, fp32
// accumulation. Weight rows are read once per group of up to 8 input rows.
//   norm_w: fused RMSNorm of each input row first: x_r -> x_r * rstd_r * norm_w, rstd_r =
//           1 / sqrt(mean(x_r^2) + eps) over the K inputs (rstd is applied to the dot product).
//   rows_per_group > 0: weight row n reads the input x_r + (n / rows_per_group) * group_stride
//           (per-head inputs for the absorbed W_UK^T).
//   swiglu: W holds [gate (N/2 rows) ; up (N/2 rows)]; y[j] = silu(gate_j x) * (up_j x), j < N/2.
//   accumulate: y += W x (the residual add), else y = W x.
// Requires K % 8 == 0 and 16-byte aligned W rows and x rows (checked).
struct DecGemv {
  const bf16_t* W = nullptr;
  int64_t N = 0, K = 0;
  const float* x = nullptr;
  int64_t ldx = 0;
  const float* norm_w = nullptr;
  float eps = 0.0f;
  int64_t rows_per_group = 0, group_stride = 0;
  float* y = nullptr;
  int64_t ldy = 0;
  int64_t R = 1;
  bool swiglu = false, accumulate = false;
};
void dec_gemv(const DecGemv& a, const DecLaunch& L);

struct DecCacheGeom {
  void* pool = nullptr;  // this layer's blocks [n_blocks, bs, Dc + Dr], bf16 (or fp32 if f32)
  const int32_t* table = nullptr;
  int64_t max_blocks = 0, bs = 0, Dc = 0, Dr = 0;
  bool f32 = false;  // fp32 cache rows (exact comparisons with the CPU); default bf16
};

// Per row r: c = RMSNorm(kva[r, :Dc]) (kv_a_norm, eps), k_pe = RoPE(kva[r, Dc:]) at row_pos[r];
// both written (bf16 or fp32) to the cache row of (row_seq[r], row_pos[r]); RoPE in place on the
// H q_pe slices of q (row stride ldq, head h's q_pe at h*Dqk + Dn). cos/sin tables [P, Dr/2].
struct DecAppend {
  DecCacheGeom g;
  float* q = nullptr;
  int64_t ldq = 0;
  const float* kva = nullptr;
  int64_t ldkva = 0;
  const float* kv_norm_w = nullptr;
  float eps = 0.0f;
  const float* cos_t = nullptr;
  const float* sin_t = nullptr;
  bool interleaved = false;
  const int32_t* row_seq = nullptr;
  const int32_t* row_pos = nullptr;
  int64_t R = 0, H = 0, Dn = 0, Dqk = 0;
};
// One launch: the GEMV `qabs` (q_abs = W_UK^T q_nope per head; reads only q_nope) and the append
// of `ap` (extra blocks, one per row).
void dec_qabs_append(const DecGemv& qabs, const DecAppend& ap, const DecLaunch& L);

// Absorbed MLA attention over the paged cache, split over the sequence:
//   score_t = scale (q_abs . c_t + q_pe . k_pe_t);  x_lat = softmax(score) . c   (per row, head)
// qabs [R, H, Dc]; q row stride ldq (q_pe of head h at h*Dqk + Dn, rotated). Split s of n_splits
// covers tokens [s*chunk, (s+1)*chunk) (dec_split_plan); blocks of heads_per_block heads each
// write a partial (unnormalised acc [Dc], running max m, sum l) to part_acc [R, H, n_splits, Dc]
// and part_ml [R, H, n_splits, 2]. Dc % 4 == 0, Dc <= 1024, n_splits <= 32.
// Byte ranges of weights a launch asks L2 to prefetch (spread over its blocks), so a later
// launch reads them from L2; used while attention leaves the memory bus idle.
struct DecPrefetch {
  const void* p[4] = {};
  int64_t bytes[4] = {};
  int n = 0;
};
struct DecAttn {
  DecCacheGeom g;
  const float* qabs = nullptr;
  const float* q = nullptr;
  int64_t ldq = 0, Dn = 0, Dqk = 0;
  const int32_t* row_seq = nullptr;
  const int32_t* row_pos = nullptr;
  int64_t R = 0, H = 0, n_splits = 1, min_chunk = 16, heads_per_block = 1;
  float scale = 1.0f;
  float* part_acc = nullptr;
  float* part_ml = nullptr;
  bool decode = false;  // rows' earlier tokens come from earlier forwards (read before the wait)
  DecPrefetch pf;
};
void dec_attention(const DecAttn& a, const DecLaunch& L);
// Active splits and tokens per split (a multiple of 16, >= min_chunk) for a context of len.
void dec_split_plan(int64_t len, int64_t n_splits, int64_t min_chunk, int64_t* active,
                    int64_t* chunk);
// o[r, h*Dv + j] = (W_UV[h] x_lat[r, h])[j], x_lat the combine of a's partials:
//   x_lat = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s.  wuv [H*Dv, Dc]; o row stride H*Dv.
void dec_wuv_combine(const bf16_t* wuv, int64_t Dv, const DecAttn& a, float* o, const DecLaunch& L);

// MoE routing plan, built on the device by dec_moe_router for R rows. Slots are the experts a
// step reads: first the n_sh shared-expert slices (slot q: expert E + q, every row, weight 1; the
// shared expert of width n_sh * Im is stored as n_sh experts of width Im), then each routed
// expert chosen by some row, ascending. A slot's pairs (row, weight) are contiguous, rows
// ascending; pair p's activations are act[p, :Im] (the shared slices' pairs are q R + r). Items
// cut each slot's pairs into groups of at most rb for the down projection (item_e: the slot's
// expert). pair_of[r * Ek + k] is the pair of row r's k-th choice.
struct DecMoePlan {
  int32_t* counts = nullptr;  // [2]: n_slots, n_items
  int32_t *slot_e = nullptr, *slot_p0 = nullptr, *slot_np = nullptr;
  int32_t *item_e = nullptr, *item_p0 = nullptr, *item_np = nullptr;
  int32_t* pair_row = nullptr;
  float* pair_w = nullptr;
  int32_t* pair_of = nullptr;
  int32_t* ticket = nullptr;  // one int, zero between launches (the last router block resets it)
  int64_t max_items = 0;      // capacity of the item arrays
};
// One launch, two kinds of blocks. Router blocks (first): logits = gate x (gate: E rows, fused
// RMSNorm as DecGemv); the last router block to finish computes the top-k per row (as
// ops/cpu/moe_router.h: V3 sigmoid + bias + group limit, V2 softmax; ties to the lower index;
// choices sorted by expert id) into idx / w [R, Ek] and the plan. Shared blocks: gate|up + SwiGLU
// of the n_sh shared slices (sh_w1 = w1 of expert E, [n_sh][2 Im, C]) for every row, into the
// shared pairs' act rows; they do not depend on the routing and overlap its tail.
struct DecRouter {
  RouterParams p;
  const float* bias = nullptr;  // [E] or null
  float* logits = nullptr;      // [R, E] scratch (gate.y)
  int32_t* idx = nullptr;       // [R, Ek]
  float* w = nullptr;           // [R, Ek]
  int64_t n_sh = 0, rb = 1;
  int32_t* n_routed = nullptr;  // if set: the number of distinct routed experts chosen
  const bf16_t* sh_w1 = nullptr;
  int64_t Im = 0;
  float* act = nullptr;
};
void dec_moe_router(const DecGemv& gate, const DecRouter& r, const DecMoePlan& plan,
                    const DecLaunch& L);
// act[p, j] = silu(g) * u for every pair p of every routed slot, g / u = rows j / Im + j of the
// slot's expert of w1 [E + n_sh, 2 Im, C] against RMSNorm(x[row_p]) (norm_w, eps; x row stride
// C). max_routed: the grid's routed slots (min(E, R * Ek)).
struct DecMoeUp {
  const bf16_t* w1 = nullptr;
  int64_t E = 0, n_sh = 0, C = 0, Im = 0, R = 0, max_routed = 0;
  const float* x = nullptr;
  const float* norm_w = nullptr;
  float eps = 0.0f;
  float* act = nullptr;
};
void dec_moe_up(const DecMoeUp& a, const DecMoePlan& plan, const DecLaunch& L);
// Down projections of every item (w2 [E + n_sh, C, Im]) and the combine, with h [R, C]:
//   h[r] += sum_k w[r, k] y[pair_of[r, k]] + sum_q y[q R + r]    (y[p] = w2[e_p] act[p])
// For R <= 8 one launch (sums in shared memory); else y goes to ey [pairs, C] and a second launch
// sums per row in that order.
struct DecMoeDown {
  const bf16_t* w2 = nullptr;
  int64_t E = 0, Ek = 0, n_sh = 0, C = 0, Im = 0, R = 0, rb = 1;
  const float* act = nullptr;
  const float* w = nullptr;  // router weights [R, Ek]
  float* ey = nullptr;       // [pairs, C] scratch for R > 8
  float* h = nullptr;
};
void dec_moe_down(const DecMoeDown& a, const DecMoePlan& plan, const DecLaunch& L);
// Input rows per weight read the GEMVs use for R rows (1, 4 or 8): the router's rb.
int64_t dec_rows_per_pass(int64_t R);

// out[r, :] = bf16->fp32 table[ids[r], :]  (R rows of C)
void dec_embed(float* out, const bf16_t* table, const int32_t* ids, int64_t R, int64_t C,
               const DecLaunch& L);
// ids[r] = argmax_v logits[r, v] (lowest index on ties).
void dec_argmax(int32_t* ids, const float* logits, int64_t R, int64_t V, const DecLaunch& L);
// n values of normal(0, std) (bf16) from (seed, counter): random weights made on the device.
void dec_fill_normal_bf16(bf16_t* p, int64_t n, float std, uint64_t seed, cudaStream_t stream);
void dec_fill_f32(float* p, int64_t n, float v, cudaStream_t stream);

}  // namespace dseek::cuda
