// GpuModel's backward (gpu_model.h): the forward's list of calls (gpu_model_forward.cpp) in
// reverse, each with its ops/cuda backward. Activation gradients overwrite, parameter gradients
// accumulate (fp32, scaled by TrainOptions::loss_scale through the heads' gradient scale); the
// stream buffer dh carries d(layer output) in and d(layer input) out of each layer.
#include "dseek/model/gpu_model.h"

#ifdef DSEEK_HAVE_CUDA

#include <cuda_runtime_api.h>

#include "dseek/model/gpu_model_impl.h"
#include "dseek/model/gpu_model_kernels.h"  // mla_build_k_backward, cast, balance losses
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
// MLA. dy = the gradient of the attention output (this->dh); dx1 -> dxs (overwritten)

void GpuModel::Impl::mla_backward(LayerBuf& L, const DevLayer& d) {
  const int64_t HQ = H * Dqk, HV = H * Dv, Dkv = Dn + Dv, half = Dr / 2;
  const bf16_t* dy_ = dh.get();
  lin_dx(d_o.get(), dy_, C, W(d.o), N, HV, C, false);
  lin_dw(G(d.o), dy_, C, L.o.get(), HV, N, HV, C);
  {
    const double pairs = (double)B * H * T * (T + 1) / 2.0;
    auto t_ = tag(Fam::GPU_OP_ATTN_BWD, 2.0 * pairs * (3.0 * Dqk + 2.0 * Dv),
                  2.0 * N * H * (4.0 * Dqk + 4.0 * Dv) + 8.0 * N * H * Dqk + 4.0 * B * H * T);
    const cuda::BthdView v{L.kv.get() + Dn, T * H * Dkv, H * Dkv, Dkv};
    const cuda::BthdOut dv{dkv.get() + Dn, T * H * Dkv, H * Dkv, Dkv};
    cuda::flash_attn_backward(cuda::dense_bthd(dq.get(), T, H, Dqk),
                              cuda::dense_bthd(dK.get(), T, H, Dqk), dv,
                              cuda::dense_bthd((const bf16_t*)d_o.get(), T, H, Dv),
                              cuda::dense_bthd((const bf16_t*)L.q.get(), T, H, Dqk),
                              cuda::dense_bthd((const bf16_t*)L.K.get(), T, H, Dqk), v,
                              cuda::dense_bthd((const bf16_t*)L.o.get(), T, H, Dv), L.lse.get(),
                              fdims(), scale, flash_ws.get(), st);
  }
  {  // K = [k_nope | k_pe shared by the heads]: dk_nope -> dkv, sum_h dk_pe -> dkva[:, Dc:]
    auto t_ = tag_ew(N * H * Dqk, N * H * Dn + N * Dr);
    cuda::mla_build_k_backward(dkv.get(), dkva.get() + Dc, Dc + Dr, dK.get(), N, H, Dn, Dr, Dv, st);
  }
  lin_dx(dc.get(), dkv.get(), H * Dkv, W(d.kv_b), N, Dc, H * Dkv, false);
  lin_dw(G(d.kv_b), dkv.get(), H * Dkv, L.c.get(), Dc, N, Dc, H * Dkv);
  {
    auto t_ = tag_ew(2 * N * Dc + 2 * N * Dr, N * Dc + N * Dr, 4.0 * N);
    cuda::rmsnorm_backward(dkva.get(), Dc + Dr, G(d.kv_a_norm), dc.get(), Dc, L.kva.get(), Dc + Dr,
                           W(d.kv_a_norm), L.rstdkv.get(), N, Dc, false, st);
    cuda::rope_backward(dkva.get() + Dc, N, 1, Dc + Dr, Dr, cos_t.get(), sin_t.get(), half,
                        cfg.rope_interleave, st);
  }
  lin_dx(dxs.get(), dkva.get(), Dc + Dr, W(d.kv_a), N, C, Dc + Dr, false);
  lin_dw(G(d.kv_a), dkva.get(), Dc + Dr, L.x1.get(), C, N, C, Dc + Dr);
  {
    auto t_ = tag_ew(N * H * Dr, N * H * Dr);
    cuda::rope_backward(dq.get() + Dn, N, H, HQ, Dqk, cos_t.get(), sin_t.get(), half,
                        cfg.rope_interleave, st);
  }
  if (Dq > 0) {
    lin_dx(dcqn.get(), dq.get(), HQ, W(d.q_b), N, Dq, HQ, false);
    lin_dw(G(d.q_b), dq.get(), HQ, L.cqn.get(), Dq, N, Dq, HQ);
    {
      auto t_ = tag_ew(2 * N * Dq, N * Dq, 4.0 * N);
      cuda::rmsnorm_backward(dcq.get(), Dq, G(d.q_a_norm), dcqn.get(), Dq, L.cq.get(), Dq,
                             W(d.q_a_norm), L.rstdq.get(), N, Dq, false, st);
    }
    lin_dx(dxs.get(), dcq.get(), Dq, W(d.q_a), N, C, Dq, true);
    lin_dw(G(d.q_a), dcq.get(), Dq, L.x1.get(), C, N, C, Dq);
  } else {
    lin_dx(dxs.get(), dq.get(), HQ, W(d.q_proj), N, C, HQ, true);
    lin_dw(G(d.q_proj), dq.get(), HQ, L.x1.get(), C, N, C, HQ);
  }
}

// ---------------------------------------------------------------------------------------------
// one decoder layer. dh: gradient w.r.t. the layer output on entry, w.r.t. its input on return
// (bf16, in place).

void GpuModel::Impl::layer_backward(LayerBuf& L, const DevLayer& d, const TrainOptions& o) {
  if (!d.moe) {
    lin_dx(da.get(), dh.get(), C, W(d.down), N, d.I, C, false);
    lin_dw(G(d.down), dh.get(), C, L.a.get(), d.I, N, d.I, C);
    {
      auto t_ = tag_ew(3 * N * d.I, 2 * N * d.I);
      cuda::swiglu_backward(dhgu.get(), dhgu.get() + d.I, 2 * d.I, da.get(), d.I, L.hgu.get(),
                            L.hgu.get() + d.I, N, d.I, st);
    }
    lin_dx(dxs.get(), dhgu.get(), 2 * d.I, W(d.gate_up), N, C, 2 * d.I, false);
    lin_dw(G(d.gate_up), dhgu.get(), 2 * d.I, L.x2.get(), C, N, C, 2 * d.I);
  } else {
    {
      auto t_ = tag(Fam::GPU_OP_MOE_EXPERTS, moe_flops(d, 2), moe_bytes(d, 2));
      const cuda::MoeFfnGrads gr{G(d.w1), G(d.w2), G(d.sh_w1), G(d.sh_w2)};
      cuda::moe_ffn_backward(dxs.get(), dwc.get(), gr, dh.get(), L.x2.get(), L.w.get(),
                             moe_weights(d), L.moe, moe_ws, gemm, st, false);
    }
    const RouterParams rp = router_params();
    {
      auto t_ = tag(Fam::GPU_OP_MOE_ROUTER, 0, 14.0 * N * E + 12.0 * N * K);
      cuda::moe_router_backward(rlogits.get(), dwc.get(), L.idx.get(), L.scores.get(), N, rp, st);
      if (o.seq_balance_alpha != 0.0f)
        cuda::moe_balance_loss_gpu(nullptr, rlogits.get(), L.scores.get(), L.idx.get(), N, E, K, T,
                                   rp.sigmoid, o.seq_balance_alpha * o.loss_scale,
                                   bal_scratch.get(), st);
      if (o.aux_balance_alpha != 0.0f)
        cuda::moe_balance_loss_gpu(nullptr, rlogits.get(), L.scores.get(), L.idx.get(), N, E, K, N,
                                   rp.sigmoid, o.aux_balance_alpha * o.loss_scale,
                                   bal_scratch.get(), st);
      cuda::cast_f32_bf16(dlog_bf.get(), rlogits.get(), N * E, st);
    }
    lin_dx(dxs.get(), dlog_bf.get(), E, W(d.router), N, C, E, true);
    lin_dw(G(d.router), dlog_bf.get(), E, L.x2.get(), C, N, C, E);
  }
  {
    auto t_ = tag_ew(3 * N * C, N * C, 4.0 * N);
    cuda::rmsnorm_backward(dh.get(), C, G(d.ffn_norm), dxs.get(), C, L.hmid.get(), C, W(d.ffn_norm),
                           L.rstd2.get(), N, C, true, st);
  }
  mla_backward(L, d);
  auto t_ = tag_ew(3 * N * C, N * C, 4.0 * N);
  cuda::rmsnorm_backward(dh.get(), C, G(d.attn_norm), dxs.get(), C, L.hin.get(), C, W(d.attn_norm),
                         L.rstd1.get(), N, C, true, st);
}

// ---------------------------------------------------------------------------------------------
// the backward: MTP depths last first (dmtp carries d h^{k-1} from depth k to k-1), then the
// main model

void GpuModel::Impl::backward(const BatchInfo& bi, const TrainOptions& o) {
  const int64_t nl = cfg.num_hidden_layers, D = bi.D;
  for (int64_t k = D; k >= 1; k--) {
    MtpBuf& M = mb[k - 1];
    const DevMtp& d = mtp[k - 1];
    {  // the block's output gradient goes into dh (the layer backward's stream buffer)
      auto t_ = tag_ew(3 * N * C, N * C, 4.0 * N);
      if (k < D)
        DSEEK_CUDA_CHECK(cudaMemcpyAsync(dh.get(), dmtp.get(), N * C * sizeof(bf16_t),
                                         cudaMemcpyDeviceToDevice, st));
      cuda::rmsnorm_backward(dh.get(), C, G(d.head_norm), M.dhn.get(), C, M.hout.get(), C,
                             W(d.head_norm), M.rstd_out.get(), N, C, k < D, st);
    }
    layer_backward(M.block, d.block, o);
    lin_dx(dcat.get(), dh.get(), C, W(d.eh), N, 2 * C, C, false);
    lin_dw(G(d.eh), dh.get(), C, M.cat.get(), 2 * C, N, 2 * C, C);
    {
      auto t_ = tag_ew(2 * N * C, N * C, 4.0 * N);
      cuda::rmsnorm_backward(demb.get(), C, G(d.enorm), dcat.get(), 2 * C, M.emb.get(), C,
                             W(d.enorm), M.rstd_e.get(), N, C, false, st);
    }
    {
      auto t_ = tag(Fam::GPU_OP_EMBEDDING, 0, 2.0 * N * C + 8.0 * N * C);
      cuda::embedding_backward(G(embed), demb.get(), M.tok.get(), N, C, V, st);
    }
    auto t_ = tag_ew(3 * N * C, N * C, 4.0 * N);
    if (k > 1)
      cuda::rmsnorm_backward(dmtp.get(), C, G(d.hnorm), dcat.get() + C, 2 * C, mb[k - 2].hout.get(),
                             C, W(d.hnorm), M.rstd_h.get(), N, C, false, st);
    else
      cuda::rmsnorm_backward(dhn.get(), C, G(d.hnorm), dcat.get() + C, 2 * C, hn.get(), C,
                             W(d.hnorm), M.rstd_h.get(), N, C, true, st);
  }
  {
    auto t_ = tag_ew(2 * N * C, N * C, 4.0 * N);
    cuda::rmsnorm_backward(dh.get(), C, G(norm), dhn.get(), C, hfinal.get(), C, W(norm),
                           rstd_f.get(), N, C, false, st);
  }
  for (int64_t l = nl - 1; l >= 0; l--) layer_backward(lb[l], layers[l], o);
  auto t_ = tag(Fam::GPU_OP_EMBEDDING, 0, 2.0 * N * C + 8.0 * N * C);
  cuda::embedding_backward(G(embed), dh.get(), ids.get(), N, C, V, st);
}

}  // namespace dseek

#endif  // DSEEK_HAVE_CUDA
