// GpuModel's forward (gpu_model.h): model_train.cpp's list of calls (with mla.cpp's and moe.cpp's
// inside), each CPU op replaced by its ops/cuda twin. Residual adds are fused into the next
// RMSNorm (rmsnorm_forward's residual input), and the LM head's backward runs inside the forward
// (lm_head_ce is fused), so the head gradient of the main model and of each MTP depth is ready
// before the backward (gpu_model_backward.cpp) starts. Also here: staging a micro-batch on the
// device and collecting the step's losses and expert loads.
#include "dseek/model/gpu_model.h"

#ifdef DSEEK_HAVE_CUDA

#include <cuda_runtime_api.h>

#include "dseek/core/error.h"
#include "dseek/model/gpu_model_impl.h"
#include "dseek/model/gpu_model_kernels.h"  // mla_build_k, moe_balance_loss_gpu
#include "dseek/ops/cuda/cuda_check.h"
#include "dseek/ops/cuda/embedding.h"
#include "dseek/ops/cuda/moe_router.h"
#include "dseek/ops/cuda/rmsnorm.h"
#include "dseek/ops/cuda/rope.h"
#include "dseek/ops/cuda/swiglu.h"

namespace dseek {

using namespace gpu_model_detail;
using Fam = GpuOpFamily;

// ---------------------------------------------------------------------------------------------
// MLA (mla.cpp's naive path)

void GpuModel::Impl::mla_forward(LayerBuf& L, const DevLayer& d) {
  const int64_t HQ = H * Dqk, HV = H * Dv, Dkv = Dn + Dv, half = Dr / 2;
  if (Dq > 0) {
    lin(L.cq.get(), L.x1.get(), C, W(d.q_a), N, C, Dq);
    {
      auto t_ = tag_ew(N * Dq, N * Dq, 4.0 * N);
      cuda::rmsnorm_forward(L.cqn.get(), Dq, L.rstdq.get(), nullptr, L.cq.get(), Dq, nullptr,
                            W(d.q_a_norm), N, Dq, kLoraNormEps, st);
    }
    lin(L.q.get(), L.cqn.get(), Dq, W(d.q_b), N, Dq, HQ);
  } else {
    lin(L.q.get(), L.x1.get(), C, W(d.q_proj), N, C, HQ);
  }
  {
    auto t_ = tag_ew(N * H * Dr, N * H * Dr);
    cuda::rope_forward(L.q.get() + Dn, N, H, HQ, Dqk, cos_t.get(), sin_t.get(), half,
                       cfg.rope_interleave, st);
  }
  lin(L.kva.get(), L.x1.get(), C, W(d.kv_a), N, C, Dc + Dr);
  {
    auto t_ = tag_ew(N * (Dc + Dr), N * (Dc + Dr), 4.0 * N);
    cuda::rmsnorm_forward(L.c.get(), Dc, L.rstdkv.get(), nullptr, L.kva.get(), Dc + Dr, nullptr,
                          W(d.kv_a_norm), N, Dc, kLoraNormEps, st);
    cuda::rope_forward(L.kva.get() + Dc, N, 1, Dc + Dr, Dr, cos_t.get(), sin_t.get(), half,
                       cfg.rope_interleave, st);
  }
  lin(L.kv.get(), L.c.get(), Dc, W(d.kv_b), N, Dc, H * Dkv);
  {
    auto t_ = tag_ew(N * H * Dn + N * Dr, N * H * Dqk);
    cuda::mla_build_k(L.K.get(), L.kv.get(), L.kva.get() + Dc, Dc + Dr, N, H, Dn, Dr, Dv, st);
  }
  {
    const double pairs = (double)B * H * T * (T + 1) / 2.0;
    auto t_ = tag(Fam::GPU_OP_ATTN_FWD, 2.0 * pairs * (Dqk + Dv),
                  2.0 * N * H * (2.0 * Dqk + 2.0 * Dv) + 4.0 * B * H * T);
    const cuda::BthdView v{L.kv.get() + Dn, T * H * Dkv, H * Dkv, Dkv};
    cuda::flash_attn_forward(cuda::dense_bthd(L.o.get(), T, H, Dv), L.lse.get(),
                             cuda::dense_bthd((const bf16_t*)L.q.get(), T, H, Dqk),
                             cuda::dense_bthd((const bf16_t*)L.K.get(), T, H, Dqk), v, fdims(),
                             scale, st);
  }
  lin(y.get(), L.o.get(), HV, W(d.o), N, HV, C);
}

// ---------------------------------------------------------------------------------------------
// one decoder layer. Input: L.hin already written (res_y null), or hin = res_x + res_y fused
// into the first norm. Output: the layer's stream is L.hmid + this->y (fused by the caller).

void GpuModel::Impl::layer_forward(LayerBuf& L, const DevLayer& d, const bf16_t* res_x,
                                   const bf16_t* res_y, int32_t* cnt, double* bal_slot,
                                   const TrainOptions& o) {
  {
    auto t_ = tag_ew(N * C * (res_y ? 2 : 1), N * C * (res_y ? 2 : 1), 4.0 * N);
    if (res_y)
      cuda::rmsnorm_forward(L.x1.get(), C, L.rstd1.get(), L.hin.get(), res_x, C, res_y,
                            W(d.attn_norm), N, C, eps, st);
    else
      cuda::rmsnorm_forward(L.x1.get(), C, L.rstd1.get(), nullptr, L.hin.get(), C, nullptr,
                            W(d.attn_norm), N, C, eps, st);
  }
  mla_forward(L, d);
  {
    auto t_ = tag_ew(2 * N * C, 2 * N * C, 4.0 * N);
    cuda::rmsnorm_forward(L.x2.get(), C, L.rstd2.get(), L.hmid.get(), L.hin.get(), C, y.get(),
                          W(d.ffn_norm), N, C, eps, st);
  }
  if (!d.moe) {
    lin(L.hgu.get(), L.x2.get(), C, W(d.gate_up), N, C, 2 * d.I);
    {
      auto t_ = tag_ew(2 * N * d.I, N * d.I);
      cuda::swiglu_forward(L.a.get(), d.I, L.hgu.get(), L.hgu.get() + d.I, 2 * d.I, N, d.I, st);
    }
    lin(y.get(), L.a.get(), d.I, W(d.down), N, d.I, C);
    return;
  }
  {
    auto t_ = tag(Fam::GPU_OP_GEMM, 2.0 * N * C * E, 2.0 * (N * C + E * C) + 4.0 * N * E);
    cuda::gemm_lt_nt(gemm, rlogits.get(), E, cuda::GemmOut::F32, L.x2.get(), C, W(d.router), C, N,
                     E, C, 0.0f, st);
  }
  const RouterParams rp = router_params();
  {
    auto t_ = tag(Fam::GPU_OP_MOE_ROUTER, 0, 8.0 * N * E + 8.0 * N * K);
    cuda::moe_router_forward(L.idx.get(), L.w.get(), L.scores.get(), cnt, rlogits.get(),
                             F(d.router_bias), N, rp, st);
    if (o.seq_balance_alpha != 0.0f)
      cuda::moe_balance_loss_gpu(bal_slot, nullptr, L.scores.get(), L.idx.get(), N, E, K, T,
                                 rp.sigmoid, o.seq_balance_alpha, bal_scratch.get(), st);
    if (o.aux_balance_alpha != 0.0f)
      cuda::moe_balance_loss_gpu(bal_slot + B, nullptr, L.scores.get(), L.idx.get(), N, E, K, N,
                                 rp.sigmoid, o.aux_balance_alpha, bal_scratch.get(), st);
  }
  auto t_ = tag(Fam::GPU_OP_MOE_EXPERTS, moe_flops(d, 1), moe_bytes(d, 1));
  cuda::moe_ffn_forward(y.get(), L.x2.get(), L.idx.get(), L.w.get(), N, K, moe_weights(d), L.moe,
                        gemm, st);
}

// ---------------------------------------------------------------------------------------------
// the micro-batch on the device

GpuModel::Impl::BatchInfo GpuModel::Impl::stage_batch(const int32_t* inputs, const int32_t* targets,
                                                      int64_t D) {
  for (int64_t i = 0; i < N; i++) {
    DSEEK_CHECK(inputs[i] >= 0 && inputs[i] < V, "input token {} outside the vocabulary [0, {})",
                inputs[i], V);
    DSEEK_CHECK(targets[i] < V, "target {} outside the vocabulary [0, {})", targets[i], V);
  }
  BatchInfo bi;
  bi.D = D;
  for (int64_t i = 0; i < N; i++) bi.count += targets[i] >= 0;
  bi.mcount.assign(D, 0);
  auto t_ = tag(Fam::GPU_OP_TRANSFER, 0, 8.0 * N * (1 + D));
  DSEEK_CUDA_CHECK(
      cudaMemcpyAsync(ids.get(), inputs, N * sizeof(int32_t), cudaMemcpyHostToDevice, st));
  DSEEK_CUDA_CHECK(
      cudaMemcpyAsync(tgts.get(), targets, N * sizeof(int32_t), cudaMemcpyHostToDevice, st));
  for (int64_t k = 1; k <= D; k++) {  // depth k predicts token i + k + 1 from tokens up to i + k
    MtpBuf& M = mb[k - 1];
    M.h_tok.assign(N, 0);
    M.h_tgt.assign(N, -1);
    for (int64_t b = 0; b < B; b++)
      for (int64_t i = 0; i + k < T; i++) {
        M.h_tok[b * T + i] = inputs[b * T + i + k];
        M.h_tgt[b * T + i] = targets[b * T + i + k];
      }
    for (int64_t i = 0; i < N; i++) bi.mcount[k - 1] += M.h_tgt[i] >= 0;
    DSEEK_CUDA_CHECK(cudaMemcpyAsync(M.tok.get(), M.h_tok.data(), N * sizeof(int32_t),
                                     cudaMemcpyHostToDevice, st));
    DSEEK_CUDA_CHECK(cudaMemcpyAsync(M.tgt.get(), M.h_tgt.data(), N * sizeof(int32_t),
                                     cudaMemcpyHostToDevice, st));
  }
  return bi;
}

// ---------------------------------------------------------------------------------------------
// the forward (with_grads: the LM heads also write their gradients, else loss only)

void GpuModel::Impl::forward(const BatchInfo& bi, const TrainOptions& o, bool with_grads) {
  const int64_t nl = cfg.num_hidden_layers, D = bi.D;
  {
    auto t_ = tag(Fam::GPU_OP_MOE_ROUTER);
    if (E > 0) DSEEK_CUDA_CHECK(cudaMemsetAsync(counts.get(), 0, nl * E * sizeof(int32_t), st));
    DSEEK_CUDA_CHECK(cudaMemsetAsync(bal.get(), 0, (nl + cfg.mtp_depth) * (B + 1) * 8, st));
  }
  const double head_flops = (with_grads ? 6.0 : 2.0) * N * C * V;
  const double head_bytes =
      2.0 * V * C + 2.0 * N * C + (with_grads ? 2.0 * N * C + 8.0 * V * C : 0);
  // ---- main model
  {
    auto t_ = tag(Fam::GPU_OP_EMBEDDING, 0, 4.0 * N * C);
    cuda::embedding_forward(lb[0].hin.get(), W(embed), ids.get(), N, C, V, st);
  }
  for (int64_t l = 0; l < nl; l++) {
    const bf16_t* rx = l > 0 ? lb[l - 1].hmid.get() : nullptr;
    const bf16_t* ry = l > 0 ? y.get() : nullptr;
    layer_forward(lb[l], layers[l], rx, ry, E > 0 ? counts.get() + l * E : nullptr,
                  bal.get() + l * (B + 1), o);
  }
  {
    auto t_ = tag_ew(2 * N * C, 2 * N * C, 4.0 * N);
    cuda::rmsnorm_forward(hn.get(), C, rstd_f.get(), hfinal.get(), lb[nl - 1].hmid.get(), C,
                          y.get(), W(norm), N, C, eps, st);
  }
  {
    auto t_ = tag(Fam::GPU_OP_LM_HEAD, head_flops, head_bytes);
    lmhead->forward_backward(gemm, loss_rows.get(), with_grads ? dhn.get() : nullptr,
                             with_grads ? G(head) : nullptr, hn.get(), C, W(head), tgts.get(), N, C,
                             bi.count ? o.loss_scale / (float)bi.count : 0.0f, st);
  }
  // ---- MTP depths
  for (int64_t k = 1; k <= D; k++) {
    MtpBuf& M = mb[k - 1];
    const DevMtp& d = mtp[k - 1];
    const bf16_t* hprev = k == 1 ? hn.get() : mb[k - 2].hout.get();
    {
      auto t_ = tag(Fam::GPU_OP_EMBEDDING, 0, 4.0 * N * C);
      cuda::embedding_forward(M.emb.get(), W(embed), M.tok.get(), N, C, V, st);
    }
    {
      auto t_ = tag_ew(2 * N * C, 2 * N * C, 8.0 * N);
      cuda::rmsnorm_forward(M.cat.get(), 2 * C, M.rstd_e.get(), nullptr, M.emb.get(), C, nullptr,
                            W(d.enorm), N, C, eps, st);
      cuda::rmsnorm_forward(M.cat.get() + C, 2 * C, M.rstd_h.get(), nullptr, hprev, C, nullptr,
                            W(d.hnorm), N, C, eps, st);
    }
    lin(M.block.hin.get(), M.cat.get(), 2 * C, W(d.eh), N, 2 * C, C);
    layer_forward(M.block, d.block, nullptr, nullptr, nullptr, bal.get() + (nl + k - 1) * (B + 1),
                  o);
    {
      auto t_ = tag_ew(2 * N * C, 2 * N * C, 4.0 * N);
      cuda::rmsnorm_forward(M.hn.get(), C, M.rstd_out.get(), M.hout.get(), M.block.hmid.get(), C,
                            y.get(), W(d.head_norm), N, C, eps, st);
    }
    const float sc =
        bi.mcount[k - 1] ? o.loss_scale * o.mtp_lambda / (float)D / (float)bi.mcount[k - 1] : 0.0f;
    auto t_ = tag(Fam::GPU_OP_LM_HEAD, head_flops, head_bytes);
    lmhead->forward_backward(gemm, M.loss_rows.get(), with_grads ? M.dhn.get() : nullptr,
                             with_grads ? G(head) : nullptr, M.hn.get(), C, W(head), M.tgt.get(), N,
                             C, sc, st);
  }
}

// ---------------------------------------------------------------------------------------------
// the step's losses and expert loads to the host (one synchronization)

GpuStepStats GpuModel::Impl::collect(const BatchInfo& bi, const TrainOptions& o) {
  const int64_t nl = cfg.num_hidden_layers, D = bi.D;
  GpuStepStats s;
  std::vector<float> rows(N);
  std::vector<double> balh((nl + cfg.mtp_depth) * (B + 1));
  std::vector<int32_t> cnt(E > 0 ? nl * E : 0);
  std::vector<std::vector<float>> mrows(D, std::vector<float>(N));
  {
    auto t_ = tag(Fam::GPU_OP_TRANSFER);
    DSEEK_CUDA_CHECK(cudaMemcpyAsync(rows.data(), loss_rows.get(), N * sizeof(float),
                                     cudaMemcpyDeviceToHost, st));
    DSEEK_CUDA_CHECK(cudaMemcpyAsync(balh.data(), bal.get(), balh.size() * sizeof(double),
                                     cudaMemcpyDeviceToHost, st));
    if (!cnt.empty())
      DSEEK_CUDA_CHECK(cudaMemcpyAsync(cnt.data(), counts.get(), cnt.size() * sizeof(int32_t),
                                       cudaMemcpyDeviceToHost, st));
    for (int64_t k = 0; k < D; k++)
      DSEEK_CUDA_CHECK(cudaMemcpyAsync(mrows[k].data(), mb[k].loss_rows.get(), N * sizeof(float),
                                       cudaMemcpyDeviceToHost, st));
    DSEEK_CUDA_CHECK(cudaStreamSynchronize(st));
  }
  double sum = 0.0;
  for (int64_t i = 0; i < N; i++) sum += rows[i];  // ignored rows hold exactly 0
  s.n_targets = bi.count;
  s.ce_loss = bi.count ? sum / bi.count : 0.0;
  s.mtp_loss.assign(D, 0.0);
  for (int64_t k = 0; k < D; k++) {
    double ms = 0.0;
    for (int64_t i = 0; i < N; i++)
      if (mb[k].h_tgt[i] >= 0) ms += mrows[k][i];
    s.mtp_loss[k] = bi.mcount[k] ? ms / bi.mcount[k] : 0.0;
    s.mtp_loss_total += o.mtp_lambda / D * s.mtp_loss[k];
  }
  for (int64_t l = 0; l < nl + D; l++) {
    const bool moe = l < nl ? layers[l].moe : mtp[l - nl].block.moe;
    if (!moe) continue;
    const double* b = balh.data() + l * (B + 1);
    double seq = 0.0;
    for (int64_t g = 0; g < B; g++) seq += b[g];
    if (o.seq_balance_alpha != 0.0f) s.balance_loss += o.seq_balance_alpha * seq / B;
    if (o.aux_balance_alpha != 0.0f) s.balance_loss += o.aux_balance_alpha * b[B];
  }
  s.expert_load.assign(nl, {});
  for (int64_t l = 0; l < nl; l++) {
    if (!layers[l].moe) continue;
    s.expert_load[l].assign(cnt.begin() + l * E, cnt.begin() + (l + 1) * E);
  }
  s.loss = s.ce_loss + s.balance_loss + s.mtp_loss_total;
  return s;
}

}  // namespace dseek

#endif  // DSEEK_HAVE_CUDA
