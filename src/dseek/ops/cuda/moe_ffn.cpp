// MoE expert FFN on the GPU (contract in moe_ffn.h): host orchestration of the permutation, the
// grouped GEMMs, SwiGLU and the combine; no host synchronization (group sizes stay on the
// device, every launch is sized by the bound P = N * Kp rows).
#ifdef DSEEK_HAVE_CUDA
#include "dseek/ops/cuda/moe_ffn.h"

#include "dseek/core/error.h"             // DSEEK_CHECK
#include "dseek/ops/cuda/grouped_gemm.h"  // grouped_gemm_*
#include "dseek/ops/cuda/swiglu.h"        // swiglu_forward, swiglu_backward

namespace dseek::cuda {

namespace {

template <class T>
T* grow(DeviceBuffer<T>& b, int64_t n) {  // at least n elements (contents not kept)
  if ((int64_t)b.size() < n) b = DeviceBuffer<T>((size_t)n);
  return b.get();
}

bool fuse_shared(const MoeFfnWeights& W) {
  return W.sh_w1 != nullptr && W.Is == W.I;
}

GroupLayout layout_of(const MoeFfnActs& a) {
  return GroupLayout{a.plan.offsets, a.plan.tile_off, a.G, a.P};
}

}  // namespace

void moe_ffn_forward(bf16_t* out, const bf16_t* x, const int32_t* idx, const float* w, int64_t N,
                     int64_t K, const MoeFfnWeights& W, MoeFfnActs& a, GemmLt& gemm,
                     cudaStream_t stream) {
  const int64_t C = W.C, I = W.I, Is = W.Is, E = W.E;
  DSEEK_CHECK(N >= 0 && K >= 1 && E >= 1 && C > 0 && I > 0, "moe_ffn_forward: bad shapes");
  DSEEK_CHECK(C % 8 == 0 && I % 8 == 0 && (!W.sh_w1 || Is % 8 == 0),
              "moe_ffn_forward: C, I, Is must be multiples of 8");
  const bool fused = fuse_shared(W);
  a.N = N;
  a.K = K;
  a.fused_shared = fused;
  a.G = E + (fused ? 1 : 0);
  const int64_t Kp = K + (fused ? 1 : 0), P = N * Kp, G = a.G;
  a.P = P;
  if (N == 0) return;

  // plan arrays: row_of_pair, pair_of_row [P]; counts [G]; offsets, tile_off [G + 1]; chunks
  const int64_t nch = moe_permute_chunks(P);
  int32_t* ip = grow(a.ints, 2 * P + G + 2 * (G + 1) + nch * G);
  a.plan = MoePermutePlan{
      ip, ip + P, ip + 2 * P, ip + 2 * P + G, ip + 2 * P + 2 * G + 1, ip + 2 * P + 3 * G + 2};
  moe_permute_plan(a.plan, idx, N, K, E, fused, stream);
  const GroupLayout l = layout_of(a);

  bf16_t* xp = grow(a.xp, P * C);
  bf16_t* h = grow(a.h, P * 2 * I);
  bf16_t* act = grow(a.a, P * I);
  bf16_t* y = grow(a.y, P * C);
  moe_gather(xp, x, C, a.plan.pair_of_row, P, Kp, C, stream);
  grouped_gemm_nt(h, xp, W.w1, fused ? W.sh_w1 : nullptr, l, 2 * I, C, stream);
  swiglu_forward(act, I, h, h + I, 2 * I, P, I, stream);
  grouped_gemm_nt(y, act, W.w2, fused ? W.sh_w2 : nullptr, l, C, I, stream);

  const bf16_t* add = nullptr;
  if (W.sh_w1 && !fused) {  // shared experts over all tokens through cuBLASLt
    bf16_t* sh = grow(a.sh_h, N * 2 * Is);
    bf16_t* sa = grow(a.sh_a, N * Is);
    bf16_t* sy = grow(a.sh_y, N * C);
    gemm_lt_nt(gemm, sh, 2 * Is, GemmOut::BF16, x, C, W.sh_w1, C, N, 2 * Is, C, 0.0f, stream);
    swiglu_forward(sa, Is, sh, sh + Is, 2 * Is, N, Is, stream);
    gemm_lt_nt(gemm, sy, C, GemmOut::BF16, sa, Is, W.sh_w2, Is, N, C, Is, 0.0f, stream);
    add = sy;
  }
  moe_combine(out, C, y, w, a.plan.row_of_pair, add, N, K, fused, C, stream);
}

void moe_ffn_backward(bf16_t* dx, float* dw, const MoeFfnGrads& g, const bf16_t* dout,
                      const bf16_t* x, const float* w, const MoeFfnWeights& W, const MoeFfnActs& a,
                      MoeFfnWorkspace& ws, GemmLt& gemm, cudaStream_t stream, bool accumulate) {
  const int64_t C = W.C, I = W.I, Is = W.Is, N = a.N, K = a.K, P = a.P;
  const bool fused = a.fused_shared;
  DSEEK_CHECK(fused == fuse_shared(W), "moe_ffn_backward: weights differ from the forward's");
  if (N == 0) return;
  const int64_t Kp = K + (fused ? 1 : 0);
  const GroupLayout l = layout_of(a);

  bf16_t* dy = grow(ws.dy, P * C);
  bf16_t* da = grow(ws.da, P * I);
  bf16_t* dh = grow(ws.dh, P * 2 * I);
  bf16_t* dxp = grow(ws.dxp, P * C);
  // combine: dy = w dout, dw = <dout, y>; down: da = dy W2, dW2 += dy^T a
  moe_combine_backward(dy, dw, dout, C, a.y.get(), w, a.plan.pair_of_row, N, K, fused, C, stream);
  grouped_gemm_nn(da, dy, W.w2, fused ? W.sh_w2 : nullptr, l, I, C, stream);
  grouped_gemm_tn(g.dw2, fused ? g.sh_dw2 : nullptr, dy, a.a.get(), l, C, I, stream);
  // SwiGLU, then gate_up: dxp = dh W1, dW1 += dh^T xp
  swiglu_backward(dh, dh + I, 2 * I, da, I, a.h.get(), a.h.get() + I, P, I, stream);
  grouped_gemm_nn(dxp, dh, W.w1, fused ? W.sh_w1 : nullptr, l, C, 2 * I, stream);
  grouped_gemm_tn(g.dw1, fused ? g.sh_dw1 : nullptr, dh, a.xp.get(), l, 2 * I, C, stream);

  const bf16_t* add = nullptr;
  if (W.sh_w1 && !fused) {
    bf16_t* sda = grow(ws.sh_da, N * Is);
    bf16_t* sdh = grow(ws.sh_dh, N * 2 * Is);
    bf16_t* sdx = grow(ws.sh_dx, N * C);
    gemm_lt_nn(gemm, sda, Is, GemmOut::BF16, dout, C, W.sh_w2, Is, N, Is, C, 0.0f, stream);
    gemm_lt_tn(gemm, g.sh_dw2, Is, GemmOut::F32, dout, C, a.sh_a.get(), Is, C, Is, N, 1.0f, stream);
    swiglu_backward(sdh, sdh + Is, 2 * Is, sda, Is, a.sh_h.get(), a.sh_h.get() + Is, N, Is, stream);
    gemm_lt_nn(gemm, sdx, C, GemmOut::BF16, sdh, 2 * Is, W.sh_w1, C, N, C, 2 * Is, 0.0f, stream);
    gemm_lt_tn(gemm, g.sh_dw1, C, GemmOut::F32, sdh, 2 * Is, x, C, 2 * Is, C, N, 1.0f, stream);
    add = sdx;
  }
  moe_gather_backward(dx, C, dxp, a.plan.row_of_pair, add, N, Kp, C, accumulate, stream);
}

}  // namespace dseek::cuda
#endif  // DSEEK_HAVE_CUDA
