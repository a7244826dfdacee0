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
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <cstdint>

#include "dseek/ops/cuda/bf16.h"  // bf16_t

namespace dseek::cuda {

// y = W x for Z items, bf16 W [N, K] (row stride K), fp32 x and y, fp32 accumulation.
//   item z: weights W + (idx ? idx[z] * w_stride : 0) (an expert's matrix);
//           input x + (z / x_div) * ldx (+ (row / rows_per_group) * group_stride: per-head input
//           for the absorbed W_UK / W_UV, rows_per_group = 0: off); output y + z * ldy.
//   swiglu: W holds [gate (n_out rows) ; up (n_out rows)]; y[j] = silu(gate_j x) * (up_j x),
//           j < n_out (N = 2 n_out).
//   accumulate: y += W x (the residual add), else y = W x.
// Requires K % 8 == 0 and 16-byte aligned W rows and x (checked).
struct GemvArgs {
  const bf16_t* W = nullptr;
  int64_t N = 0, K = 0;
  const int32_t* idx = nullptr;
  int64_t w_stride = 0;
  const float* x = nullptr;
  int64_t ldx = 0, x_div = 1;
  int64_t rows_per_group = 0, group_stride = 0;
  float* y = nullptr;
  int64_t ldy = 0;
  int64_t Z = 1;
  bool swiglu = false, accumulate = false;
};
void gemv(const GemvArgs& a, cudaStream_t stream);

// out[r, :] = bf16->fp32 table[ids[r], :]  (R rows of C)
void dec_embed(float* out, const bf16_t* table, const int32_t* ids, int64_t R, int64_t C,
               cudaStream_t stream);
// out[r, :] = (x[r, :] * rstd) * w, rstd = 1 / sqrt(mean x^2 + eps); rows strided ldx / ldo.
void dec_rmsnorm(float* out, int64_t ldo, const float* x, int64_t ldx, const float* w, int64_t R,
                 int64_t C, float eps, cudaStream_t stream);
// Per row r: c = RMSNorm(kva[r, :Dc]) (kv_a_norm, eps), k_pe = RoPE(kva[r, Dc:]) at row_pos[r];
// both written (bf16 or fp32) to the cache row of (row_seq[r], row_pos[r]); RoPE in place on the H q_pe
// slices of q (row stride H*Dqk, head h's q_pe at h*Dqk + Dn). cos/sin tables [P, Dr/2] by
// position.
struct DecCacheGeom {
  void* pool = nullptr;  // this layer's blocks [n_blocks, bs, Dc + Dr], bf16 (or fp32 if f32)
  const int32_t* table = nullptr;
  int64_t max_blocks = 0, bs = 0, Dc = 0, Dr = 0;
  bool f32 = false;  // fp32 cache rows (exact comparisons with the CPU); default bf16
};
void dec_kv_append_rope(const DecCacheGeom& g, float* q, const float* kva, const float* kv_norm_w,
                        float eps, const float* cos_t, const float* sin_t, bool interleaved,
                        const int32_t* row_seq, const int32_t* row_pos, int64_t R, int64_t H,
                        int64_t Dn, int64_t Dqk, cudaStream_t stream);
// Absorbed MLA attention over the paged cache, split over the sequence (n_splits chunks of
// ceil(len / active) tokens, active = min(n_splits, ceil(len / min_chunk))), then a combine:
//   score_t = scale (q_abs . c_t + q_pe . k_pe_t);  x_lat = softmax(score) . c   (per row, head)
// qabs [R, H, Dc]; q [R, H*Dqk] (q_pe at h*Dqk + Dn, rotated); part_acc [R, H, n_splits, Dc],
// part_ml [R, H, n_splits, 2] scratch; x_lat [R, H, Dc] out. Dc % 32 == 0, Dc <= 1024, Dr <= 64.
void dec_mla_attention(float* x_lat, float* part_acc, float* part_ml, const DecCacheGeom& g,
                       const float* qabs, const float* q, int64_t Dn, int64_t Dqk,
                       const int32_t* row_seq, const int32_t* row_pos, int64_t R, int64_t H,
                       int64_t n_splits, int64_t min_chunk, float scale, cudaStream_t stream);
// h[r, :] += sum_k w[r, k] y[r*Ek + k, :] (k in order) + shared[r, :] (shared may be null).
void dec_moe_combine(float* h, const float* y, const float* w, const float* shared, int64_t R,
                     int64_t Ek, int64_t C, cudaStream_t stream);
// ids[r] = argmax_v logits[r, v] (lowest index on ties).
void dec_argmax(int32_t* ids, const float* logits, int64_t R, int64_t V, cudaStream_t stream);
// n values of normal(0, std) (bf16) from (seed, counter): random weights made on the device.
void dec_fill_normal_bf16(bf16_t* p, int64_t n, float std, uint64_t seed, cudaStream_t stream);
void dec_fill_f32(float* p, int64_t n, float v, cudaStream_t stream);

}  // namespace dseek::cuda
