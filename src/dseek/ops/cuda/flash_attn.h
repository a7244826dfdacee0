// MLA attention for training on the GPU: fused causal flash attention, forward and backward
// (mirror of ops/cpu/attention.h, which materializes P; here no [T, T] matrix ever exists).
//   S[s, t] = scale * q[s] . k[t]  (t <= s);   P = softmax_t(S);   o[s] = sum_t P[s, t] v[t]
//   lse[s]  = log sum_{t<=s} exp(S[s, t])      (natural log, fp32; saved for the backward)
// Backward (same formulas as the CPU op, P recomputed from lse tile by tile):
//   D[s] = dout[s] . o[s]  (fp32 over the bf16 o);   dS = P (dout v^T - D)
//   dq = scale dS k;   dk = scale dS^T q;   dv = P^T dout     (bf16 outputs, overwritten)
// Storage bf16, arithmetic fp32 (bf16 tensor-core products with fp32 accumulation; P and dS are
// rounded to bf16 before their products, as in FlashAttention-2).
//
// Layout: every q/k/v/o-like tensor is a [B, T, H, D] view: element (b, t, h, j) at
// p[b * sb + t * st + h * sh + j], the last dimension contiguous. The model's dense tensors
// ([B*T, H*D] rows) are dense_bthd(p, T, H, D); views into wider rows (v inside the kv_b_proj
// output [N, H, Dn+Dv], say) just pass their strides. Pointers must be 16-byte aligned and
// strides multiples of 8 elements (16-byte loads). lse is dense fp32 [B, H, T].
// Head dims (Dqk, Dv) supported: (48, 32), (96, 64), (192, 128), (64, 64), (128, 128)
// (flash_attn_supported); anything else throws. Any T >= 1, any B * H.
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <cstddef>
#include <cstdint>

#include "dseek/ops/cuda/bf16.h"  // bf16_t

namespace dseek::cuda {

struct BthdView {  // read-only [B, T, H, D] view
  const bf16_t* p;
  int64_t sb, st, sh;
};
struct BthdOut {  // written [B, T, H, D] view
  bf16_t* p;
  int64_t sb, st, sh;
};
inline BthdView dense_bthd(const bf16_t* p, int64_t T, int64_t H, int64_t D) {
  return {p, T * H * D, H * D, D};
}
inline BthdOut dense_bthd(bf16_t* p, int64_t T, int64_t H, int64_t D) {
  return {p, T * H * D, H * D, D};
}

struct FlashAttnDims {
  int64_t B, T, H, Dqk, Dv;
};

bool flash_attn_supported(int64_t Dqk, int64_t Dv);

// o [B, T, H, Dv]; lse [B, H, T] fp32; q, k [B, T, H, Dqk]; v [B, T, H, Dv].
void flash_attn_forward(BthdOut o, float* lse, BthdView q, BthdView k, BthdView v,
                        const FlashAttnDims& d, float scale, cudaStream_t stream);

// Device scratch the backward needs: dq in fp32 [B, H, T, Dqk] and D [B, H, T].
size_t flash_attn_backward_workspace_bytes(const FlashAttnDims& d);

// dq, dk [B, T, H, Dqk] and dv [B, T, H, Dv] overwritten (none may be null); dout, o
// [B, T, H, Dv]; lse from the forward; workspace of flash_attn_backward_workspace_bytes(d)
// bytes (16-byte aligned; its contents on entry do not matter).
void flash_attn_backward(BthdOut dq, BthdOut dk, BthdOut dv, BthdView dout, BthdView q,
                         BthdView k, BthdView v, BthdView o, const float* lse,
                         const FlashAttnDims& d, float scale, void* workspace,
                         cudaStream_t stream);

// Tuning knob (tests, benchmarks): the backward runs its blocks in groups of (b, h) pairs whose
// fp32 dq accumulators take at most this many bytes, so that its dq atomics stay in L2
// (default 48 MiB; <= 0: one group). Returns the previous value. Not thread-safe.
int64_t flash_attn_set_bwd_group_bytes(int64_t bytes);

}  // namespace dseek::cuda
