// GpuModel (gpu_model.h): the training step on the device. The forward and backward below are
// model_train.cpp's list of calls (with mla.cpp's and moe.cpp's inside), each CPU op replaced by
// its ops/cuda twin; residual adds are fused into the next RMSNorm (rmsnorm_forward's residual
// input), and the LM head's backward runs inside the forward (lm_head_ce is fused), so the head
// gradient dh of the main model and of each MTP depth is ready before the backward starts.
#include "dseek/model/gpu_model.h"

#include "dseek/core/error.h"

#ifdef DSEEK_HAVE_CUDA

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "dseek/core/device.h"
#include "dseek/core/dtype.h"
#include "dseek/model/gpu_model_kernels.h"
#include "dseek/ops/cpu/rope.h"
#include "dseek/ops/cuda/adamw.h"
#include "dseek/ops/cuda/cuda_check.h"
#include "dseek/ops/cuda/device_buffer.h"
#include "dseek/ops/cuda/embedding.h"
#include "dseek/ops/cuda/flash_attn.h"
#include "dseek/ops/cuda/gemm_lt.h"
#include "dseek/ops/cuda/lm_head_ce.h"
#include "dseek/ops/cuda/moe_ffn.h"
#include "dseek/ops/cuda/moe_router.h"
#include "dseek/ops/cuda/rmsnorm.h"
#include "dseek/ops/cuda/rope.h"
#include "dseek/ops/cuda/swiglu.h"
#include "dseek/train/adamw.h"

namespace dseek {

bool gpu_available(std::string* why) {
  std::string w;
  const bool ok = !cuda_devices(&w).empty();
  if (why) *why = ok ? "" : w;
  return ok;
}

namespace {

using cuda::GemmOut;
constexpr float kLoraNormEps = 1e-6f;  // q_a_layernorm / kv_a_layernorm (as mla.cpp)
constexpr int64_t kAlign = 8;          // elements: 16 bytes of bf16, 32 of fp32

// Offsets (elements) of one decoder layer's tensors in the flat buffers; -1 = absent.
struct DevLayer {
  int64_t attn_norm = -1, q_proj = -1, q_a = -1, q_a_norm = -1, q_b = -1, kv_a = -1,
          kv_a_norm = -1, kv_b = -1, o = -1, ffn_norm = -1;
  int64_t gate_up = -1, down = -1, I = 0;                  // dense: [2I, C], [C, I]
  int64_t router = -1, router_bias = -1, w1 = -1, w2 = -1;  // MoE: [E, C], [E], [E,2Im,C], [E,C,Im]
  int64_t sh_w1 = -1, sh_w2 = -1, Im = 0, Is = 0;
  bool moe = false;
};

struct DevMtp {
  int64_t enorm = -1, hnorm = -1, eh = -1, head_norm = -1;
  DevLayer block;
};

// Activations one layer keeps for its backward (bf16 unless noted).
struct LayerBuf {
  DeviceBuffer<bf16_t> hin, x1, hmid, x2;      // [N, C]
  DeviceBuffer<float> rstd1, rstd2;            // [N]
  DeviceBuffer<bf16_t> cq, cqn;                // [N, Dq]
  DeviceBuffer<float> rstdq, rstdkv;           // [N]
  DeviceBuffer<bf16_t> q, K;                   // [N, H*Dqk]
  DeviceBuffer<bf16_t> kva, c, kv, o;          // [N, Dc+Dr], [N, Dc], [N, H*(Dn+Dv)], [N, H*Dv]
  DeviceBuffer<float> lse;                     // [B, H, T]
  DeviceBuffer<bf16_t> hgu, a;                 // dense: [N, 2I], [N, I]
  DeviceBuffer<int32_t> idx;                   // MoE: [N, K]
  DeviceBuffer<float> w, scores;               // [N, K], [N, E]
  cuda::MoeFfnActs moe;
};

struct MtpBuf {
  DeviceBuffer<int32_t> tok, tgt;           // [N]
  DeviceBuffer<bf16_t> emb, cat, hout, hn;  // [N, C], [N, 2C], [N, C], [N, C]
  DeviceBuffer<bf16_t> dhn;                 // [N, C] head gradient
  DeviceBuffer<float> rstd_e, rstd_h, rstd_out, loss_rows;  // [N]
  LayerBuf block;
  std::vector<int32_t> h_tok, h_tgt;
};

}  // namespace

struct GpuModel::Impl {
  ModelConfig cfg;
  int64_t B = 0, T = 0, N = 0;
  int64_t C = 0, H = 0, Dn = 0, Dr = 0, Dv = 0, Dqk = 0, Dc = 0, Dq = 0, V = 0, E = 0, K = 0;
  float eps = 1e-6f, scale = 1.0f;
  cudaStream_t st = nullptr;
  int64_t bytes = 0;

  // flat parameter storage
  int64_t total = 0;
  std::vector<int64_t> off, numel;  // per model_params entry
  std::vector<bool> trainable, decay;
  std::vector<std::string> names;
  DeviceBuffer<float> master, grad, m1, m2;
  DeviceBuffer<bf16_t> wbf;
  int64_t embed = -1, norm = -1, head = -1;
  std::vector<DevLayer> layers;
  std::vector<DevMtp> mtp;
  std::unique_ptr<cuda::AdamWMultiTensor> adam;
  int64_t t_adam = 0;

  // activations and scratch
  cuda::GemmLt gemm;
  std::unique_ptr<cuda::LmHeadCe> lmhead;
  DeviceBuffer<float> cos_t, sin_t;  // [N, Dr/2]
  DeviceBuffer<int32_t> ids, tgts;   // [N]
  std::vector<LayerBuf> lb;
  std::vector<MtpBuf> mb;
  DeviceBuffer<bf16_t> hfinal, hn, dhn;  // [N, C]
  DeviceBuffer<float> rstd_f, loss_rows;
  DeviceBuffer<bf16_t> y, dh, dxs, dmtp, dcat, demb;
  DeviceBuffer<bf16_t> d_o, dq, dK, dkv, dc, dkva, dcqn, dcq, dhgu, da, dlog_bf;
  DeviceBuffer<float> rlogits, dwc;
  DeviceBuffer<double> tok_sum, bal, sumsq;
  DeviceBuffer<int32_t> counts;  // [nl, E]
  DeviceBuffer<uint8_t> flash_ws;
  cuda::MoeFfnWorkspace moe_ws;

  template <class T_>
  DeviceBuffer<T_> alloc(int64_t n) {
    bytes += n * (int64_t)sizeof(T_);
    return DeviceBuffer<T_>((size_t)std::max<int64_t>(n, 0));
  }

  // ---- pointers into the flat buffers
  const bf16_t* W(int64_t o) const { return o < 0 ? nullptr : wbf.get() + o; }
  float* G(int64_t o) { return o < 0 ? nullptr : grad.get() + o; }
  const float* F(int64_t o) const { return o < 0 ? nullptr : master.get() + o; }

  // ---- GEMM shorthands (row-major, as ops/cpu/linear.h)
  // y [n, out] = x [n, in] W [out, in]^T
  void lin(bf16_t* y_, const bf16_t* x, int64_t ldx, const bf16_t* w, int64_t n, int64_t in,
           int64_t out, int64_t ldy = -1) {
    cuda::gemm_lt_nt(gemm, y_, ldy < 0 ? out : ldy, GemmOut::BF16, x, ldx, w, in, n, out, in, 0.0f,
                     st);
  }
  // dx [n, in] (=|+=) dy [n, out] W [out, in]
  void lin_dx(bf16_t* dx, const bf16_t* dy_, int64_t lddy, const bf16_t* w, int64_t n, int64_t in,
              int64_t out, bool acc, int64_t lddx = -1) {
    cuda::gemm_lt_nn(gemm, dx, lddx < 0 ? in : lddx, GemmOut::BF16, dy_, lddy, w, in, n, in, out,
                     acc ? 1.0f : 0.0f, st);
  }
  // dW [out, in] += dy [n, out]^T x [n, in]
  void lin_dw(float* dw, const bf16_t* dy_, int64_t lddy, const bf16_t* x, int64_t ldx, int64_t n,
              int64_t in, int64_t out) {
    cuda::gemm_lt_tn(gemm, dw, in, GemmOut::F32, dy_, lddy, x, ldx, out, in, n, 1.0f, st);
  }

  RouterParams router_params() const {
    return RouterParams{.n_experts = cfg.n_routed_experts,
                        .top_k = cfg.num_experts_per_tok,
                        .n_group = cfg.n_group,
                        .topk_group = cfg.topk_group,
                        .sigmoid = cfg.scoring == RouterScoring::SIGMOID,
                        .group_limited = cfg.topk_method != TopkMethod::GREEDY,
                        .norm_topk = cfg.norm_topk_prob,
                        .scaling = (float)cfg.routed_scaling_factor};
  }
  cuda::MoeFfnWeights moe_weights(const DevLayer& d) const {
    return cuda::MoeFfnWeights{W(d.w1), W(d.w2), W(d.sh_w1), W(d.sh_w2), E, C, d.Im, d.Is};
  }
  cuda::FlashAttnDims fdims() const { return {B, T, H, Dqk, Dv}; }

  void init_layout(const Model& m);
  void alloc_layer(LayerBuf& L, const DevLayer& d);
  void upload(const ModelWeights& w, bool only_router_bias);

  void layer_forward(LayerBuf& L, const DevLayer& d, const bf16_t* res_x, const bf16_t* res_y,
                     int32_t* cnt, double* bal_slot, const TrainOptions& o);
  void layer_backward(LayerBuf& L, const DevLayer& d, const TrainOptions& o);
  void mla_forward(LayerBuf& L, const DevLayer& d);
  void mla_backward(LayerBuf& L, const DevLayer& d);
};

// ---------------------------------------------------------------------------------------------
// layout

void GpuModel::Impl::init_layout(const Model& m) {
  ModelWeights& w = const_cast<ModelWeights&>(m.w);  // model_params only takes addresses
  std::unordered_map<const Tensor*, int64_t> at;
  int64_t cur = 0;
  auto place = [&](const Tensor& t) -> int64_t {
    if (t.empty()) return -1;
    const int64_t o = cur;
    at[&t] = o;
    cur += (t.numel() + kAlign - 1) / kAlign * kAlign;
    return o;
  };
  auto contiguous = [&](int64_t a, const Tensor& ta, int64_t b, const char* what) {
    DSEEK_CHECK(b == a + ta.numel(), "GpuModel: {} not contiguous (numel {} not a multiple of {})",
                what, ta.numel(), kAlign);
  };
  auto place_layer = [&](const LayerWeights& L, bool moe) {
    DevLayer d;
    d.moe = moe;
    d.attn_norm = place(L.attn_norm);
    d.q_proj = place(L.q_proj);
    d.q_a = place(L.q_a_proj);
    d.q_a_norm = place(L.q_a_norm);
    d.q_b = place(L.q_b_proj);
    d.kv_a = place(L.kv_a_proj);
    d.kv_a_norm = place(L.kv_a_norm);
    d.kv_b = place(L.kv_b_proj);
    d.o = place(L.o_proj);
    d.ffn_norm = place(L.ffn_norm);
    if (!moe) {
      d.gate_up = place(L.gate_proj);
      contiguous(d.gate_up, L.gate_proj, place(L.up_proj), "gate_proj|up_proj");
      d.down = place(L.down_proj);
      d.I = L.gate_proj.dim(0);
    } else {
      d.router = place(L.router);
      d.router_bias = place(L.router_bias);
      const int64_t ne = (int64_t)L.exp_gate.size();
      d.Im = L.exp_gate[0].dim(0);
      int64_t prev = -1;
      const Tensor* pt = nullptr;
      for (int64_t e = 0; e < ne; e++) {
        const int64_t g = place(L.exp_gate[e]);
        if (pt) contiguous(prev, *pt, g, "experts gate|up");
        const int64_t u = place(L.exp_up[e]);
        contiguous(g, L.exp_gate[e], u, "experts gate|up");
        if (e == 0) d.w1 = g;
        prev = u;
        pt = &L.exp_up[e];
      }
      pt = nullptr;
      for (int64_t e = 0; e < ne; e++) {
        const int64_t o = place(L.exp_down[e]);
        if (pt) contiguous(prev, *pt, o, "experts down");
        if (e == 0) d.w2 = o;
        prev = o;
        pt = &L.exp_down[e];
      }
      if (!L.sh_gate.empty()) {
        d.sh_w1 = place(L.sh_gate);
        contiguous(d.sh_w1, L.sh_gate, place(L.sh_up), "shared gate|up");
        d.sh_w2 = place(L.sh_down);
        d.Is = L.sh_gate.dim(0);
      }
    }
    return d;
  };

  embed = place(w.embed);
  const int64_t nl = cfg.num_hidden_layers;
  for (int64_t l = 0; l < nl; l++) layers.push_back(place_layer(w.layers[l], cfg.is_moe_layer(l)));
  norm = place(w.norm);
  head = w.lm_head.empty() ? embed : place(w.lm_head);
  for (int64_t k = 0; k < cfg.mtp_depth; k++) {
    const MtpWeights& M = w.mtp[k];
    DevMtp d;
    d.enorm = place(M.enorm);
    d.hnorm = place(M.hnorm);
    d.eh = place(M.eh_proj);
    d.block = place_layer(M.block, cfg.is_moe_layer(nl + k));
    d.head_norm = place(M.head_norm);
    mtp.push_back(d);
  }
  total = cur;
  std::vector<ParamRef> ps = model_params(cfg, w);
  for (const ParamRef& p : ps) {
    auto it = at.find(p.tensor);
    DSEEK_CHECK(it != at.end() || p.tensor->empty(), "GpuModel: parameter {} has no device slot",
                p.name);
    off.push_back(it == at.end() ? -1 : it->second);
    numel.push_back(p.tensor->numel());
    trainable.push_back(p.trainable);
    decay.push_back(adamw_decay_default(p));
    names.push_back(p.name);
  }
}

void GpuModel::Impl::alloc_layer(LayerBuf& L, const DevLayer& d) {
  L.hin = alloc<bf16_t>(N * C);
  L.x1 = alloc<bf16_t>(N * C);
  L.hmid = alloc<bf16_t>(N * C);
  L.x2 = alloc<bf16_t>(N * C);
  L.rstd1 = alloc<float>(N);
  L.rstd2 = alloc<float>(N);
  if (Dq > 0) {
    L.cq = alloc<bf16_t>(N * Dq);
    L.cqn = alloc<bf16_t>(N * Dq);
    L.rstdq = alloc<float>(N);
  }
  L.rstdkv = alloc<float>(N);
  L.q = alloc<bf16_t>(N * H * Dqk);
  L.K = alloc<bf16_t>(N * H * Dqk);
  L.kva = alloc<bf16_t>(N * (Dc + Dr));
  L.c = alloc<bf16_t>(N * Dc);
  L.kv = alloc<bf16_t>(N * H * (Dn + Dv));
  L.o = alloc<bf16_t>(N * H * Dv);
  L.lse = alloc<float>(B * H * T);
  if (d.moe) {
    L.idx = alloc<int32_t>(N * K);
    L.w = alloc<float>(N * K);
    L.scores = alloc<float>(N * E);
  } else {
    L.hgu = alloc<bf16_t>(N * 2 * d.I);
    L.a = alloc<bf16_t>(N * d.I);
  }
}

void GpuModel::Impl::upload(const ModelWeights& w_in, bool only_router_bias) {
  ModelWeights& w = const_cast<ModelWeights&>(w_in);
  std::vector<ParamRef> ps = model_params(cfg, w);
  DSEEK_CHECK(ps.size() == off.size(), "GpuModel: {} parameters, expected {}", ps.size(),
              off.size());
  std::vector<uint16_t> hb;
  for (size_t i = 0; i < ps.size(); i++) {
    if (off[i] < 0) continue;
    if (only_router_bias && ps[i].trainable) continue;
    const Tensor& t = *ps[i].tensor;
    DSEEK_CHECK(t.numel() == numel[i], "GpuModel: {} has {} elements, expected {}", ps[i].name,
                t.numel(), numel[i]);
    DSEEK_CUDA_CHECK(cudaMemcpy(master.get() + off[i], t.ptr(), t.numel() * sizeof(float),
                                cudaMemcpyHostToDevice));
    hb.resize(t.numel());
    for (int64_t j = 0; j < t.numel(); j++) hb[j] = f32_to_bf16(t.data[j]);
    DSEEK_CUDA_CHECK(cudaMemcpy(wbf.get() + off[i], hb.data(), hb.size() * sizeof(uint16_t),
                                cudaMemcpyHostToDevice));
  }
}

// ---------------------------------------------------------------------------------------------
// MLA (mla.cpp's naive path)

void GpuModel::Impl::mla_forward(LayerBuf& L, const DevLayer& d) {
  const int64_t HQ = H * Dqk, HV = H * Dv, Dkv = Dn + Dv, half = Dr / 2;
  if (Dq > 0) {
    lin(L.cq.get(), L.x1.get(), C, W(d.q_a), N, C, Dq);
    cuda::rmsnorm_forward(L.cqn.get(), Dq, L.rstdq.get(), nullptr, L.cq.get(), Dq, nullptr,
                          W(d.q_a_norm), N, Dq, kLoraNormEps, st);
    lin(L.q.get(), L.cqn.get(), Dq, W(d.q_b), N, Dq, HQ);
  } else {
    lin(L.q.get(), L.x1.get(), C, W(d.q_proj), N, C, HQ);
  }
  cuda::rope_forward(L.q.get() + Dn, N, H, HQ, Dqk, cos_t.get(), sin_t.get(), half,
                     cfg.rope_interleave, st);
  lin(L.kva.get(), L.x1.get(), C, W(d.kv_a), N, C, Dc + Dr);
  cuda::rmsnorm_forward(L.c.get(), Dc, L.rstdkv.get(), nullptr, L.kva.get(), Dc + Dr, nullptr,
                        W(d.kv_a_norm), N, Dc, kLoraNormEps, st);
  cuda::rope_forward(L.kva.get() + Dc, N, 1, Dc + Dr, Dr, cos_t.get(), sin_t.get(), half,
                     cfg.rope_interleave, st);
  lin(L.kv.get(), L.c.get(), Dc, W(d.kv_b), N, Dc, H * Dkv);
  cuda::mla_build_k(L.K.get(), L.kv.get(), L.kva.get() + Dc, Dc + Dr, N, H, Dn, Dr, Dv, st);
  const cuda::BthdView v{L.kv.get() + Dn, T * H * Dkv, H * Dkv, Dkv};
  cuda::flash_attn_forward(cuda::dense_bthd(L.o.get(), T, H, Dv), L.lse.get(),
                           cuda::dense_bthd((const bf16_t*)L.q.get(), T, H, Dqk),
                           cuda::dense_bthd((const bf16_t*)L.K.get(), T, H, Dqk), v, fdims(), scale,
                           st);
  lin(y.get(), L.o.get(), HV, W(d.o), N, HV, C);
}

// dy = the gradient of the attention output (this->dh); dx1 -> dxs (overwritten)
void GpuModel::Impl::mla_backward(LayerBuf& L, const DevLayer& d) {
  const int64_t HQ = H * Dqk, HV = H * Dv, Dkv = Dn + Dv, half = Dr / 2;
  const bf16_t* dy_ = dh.get();
  lin_dx(d_o.get(), dy_, C, W(d.o), N, HV, C, false);
  lin_dw(G(d.o), dy_, C, L.o.get(), HV, N, HV, C);
  const cuda::BthdView v{L.kv.get() + Dn, T * H * Dkv, H * Dkv, Dkv};
  const cuda::BthdOut dv{dkv.get() + Dn, T * H * Dkv, H * Dkv, Dkv};
  cuda::flash_attn_backward(cuda::dense_bthd(dq.get(), T, H, Dqk),
                            cuda::dense_bthd(dK.get(), T, H, Dqk), dv,
                            cuda::dense_bthd((const bf16_t*)d_o.get(), T, H, Dv),
                            cuda::dense_bthd((const bf16_t*)L.q.get(), T, H, Dqk),
                            cuda::dense_bthd((const bf16_t*)L.K.get(), T, H, Dqk), v,
                            cuda::dense_bthd((const bf16_t*)L.o.get(), T, H, Dv), L.lse.get(),
                            fdims(), scale, flash_ws.get(), st);
  // K = [k_nope | k_pe shared by the heads]: dk_nope -> dkv, sum_h dk_pe -> dkva[:, Dc:]
  cuda::mla_build_k_backward(dkv.get(), dkva.get() + Dc, Dc + Dr, dK.get(), N, H, Dn, Dr, Dv, st);
  lin_dx(dc.get(), dkv.get(), H * Dkv, W(d.kv_b), N, Dc, H * Dkv, false);
  lin_dw(G(d.kv_b), dkv.get(), H * Dkv, L.c.get(), Dc, N, Dc, H * Dkv);
  cuda::rmsnorm_backward(dkva.get(), Dc + Dr, G(d.kv_a_norm), dc.get(), Dc, L.kva.get(), Dc + Dr,
                         W(d.kv_a_norm), L.rstdkv.get(), N, Dc, false, st);
  cuda::rope_backward(dkva.get() + Dc, N, 1, Dc + Dr, Dr, cos_t.get(), sin_t.get(), half,
                      cfg.rope_interleave, st);
  lin_dx(dxs.get(), dkva.get(), Dc + Dr, W(d.kv_a), N, C, Dc + Dr, false);
  lin_dw(G(d.kv_a), dkva.get(), Dc + Dr, L.x1.get(), C, N, C, Dc + Dr);
  cuda::rope_backward(dq.get() + Dn, N, H, HQ, Dqk, cos_t.get(), sin_t.get(), half,
                      cfg.rope_interleave, st);
  if (Dq > 0) {
    lin_dx(dcqn.get(), dq.get(), HQ, W(d.q_b), N, Dq, HQ, false);
    lin_dw(G(d.q_b), dq.get(), HQ, L.cqn.get(), Dq, N, Dq, HQ);
    cuda::rmsnorm_backward(dcq.get(), Dq, G(d.q_a_norm), dcqn.get(), Dq, L.cq.get(), Dq,
                           W(d.q_a_norm), L.rstdq.get(), N, Dq, false, st);
    lin_dx(dxs.get(), dcq.get(), Dq, W(d.q_a), N, C, Dq, true);
    lin_dw(G(d.q_a), dcq.get(), Dq, L.x1.get(), C, N, C, Dq);
  } else {
    lin_dx(dxs.get(), dq.get(), HQ, W(d.q_proj), N, C, HQ, true);
    lin_dw(G(d.q_proj), dq.get(), HQ, L.x1.get(), C, N, C, HQ);
  }
}

// ---------------------------------------------------------------------------------------------
// one decoder layer. Input: L.hin already written (res_y null), or hin = res_x + res_y fused
// into the first norm. Output: the layer's stream is L.hmid + this->y (fused by the caller).

void GpuModel::Impl::layer_forward(LayerBuf& L, const DevLayer& d, const bf16_t* res_x,
                                   const bf16_t* res_y, int32_t* cnt, double* bal_slot,
                                   const TrainOptions& o) {
  if (res_y)
    cuda::rmsnorm_forward(L.x1.get(), C, L.rstd1.get(), L.hin.get(), res_x, C, res_y,
                          W(d.attn_norm), N, C, eps, st);
  else
    cuda::rmsnorm_forward(L.x1.get(), C, L.rstd1.get(), nullptr, L.hin.get(), C, nullptr,
                          W(d.attn_norm), N, C, eps, st);
  mla_forward(L, d);
  cuda::rmsnorm_forward(L.x2.get(), C, L.rstd2.get(), L.hmid.get(), L.hin.get(), C, y.get(),
                        W(d.ffn_norm), N, C, eps, st);
  if (!d.moe) {
    lin(L.hgu.get(), L.x2.get(), C, W(d.gate_up), N, C, 2 * d.I);
    cuda::swiglu_forward(L.a.get(), d.I, L.hgu.get(), L.hgu.get() + d.I, 2 * d.I, N, d.I, st);
    lin(y.get(), L.a.get(), d.I, W(d.down), N, d.I, C);
    return;
  }
  cuda::gemm_lt_nt(gemm, rlogits.get(), E, GemmOut::F32, L.x2.get(), C, W(d.router), C, N, E, C,
                   0.0f, st);
  const RouterParams rp = router_params();
  cuda::moe_router_forward(L.idx.get(), L.w.get(), L.scores.get(), cnt, rlogits.get(),
                           F(d.router_bias), N, rp, st);
  if (o.seq_balance_alpha != 0.0f)
    cuda::moe_balance_loss_gpu(bal_slot, nullptr, L.scores.get(), L.idx.get(), N, E, K, T,
                               rp.sigmoid, o.seq_balance_alpha, tok_sum.get(), st);
  if (o.aux_balance_alpha != 0.0f)
    cuda::moe_balance_loss_gpu(bal_slot + B, nullptr, L.scores.get(), L.idx.get(), N, E, K, N,
                               rp.sigmoid, o.aux_balance_alpha, tok_sum.get(), st);
  cuda::moe_ffn_forward(y.get(), L.x2.get(), L.idx.get(), L.w.get(), N, K, moe_weights(d), L.moe,
                        gemm, st);
}

// dh: gradient w.r.t. the layer output on entry, w.r.t. its input on return (bf16, in place).
void GpuModel::Impl::layer_backward(LayerBuf& L, const DevLayer& d, const TrainOptions& o) {
  if (!d.moe) {
    lin_dx(da.get(), dh.get(), C, W(d.down), N, d.I, C, false);
    lin_dw(G(d.down), dh.get(), C, L.a.get(), d.I, N, d.I, C);
    cuda::swiglu_backward(dhgu.get(), dhgu.get() + d.I, 2 * d.I, da.get(), d.I, L.hgu.get(),
                          L.hgu.get() + d.I, N, d.I, st);
    lin_dx(dxs.get(), dhgu.get(), 2 * d.I, W(d.gate_up), N, C, 2 * d.I, false);
    lin_dw(G(d.gate_up), dhgu.get(), 2 * d.I, L.x2.get(), C, N, C, 2 * d.I);
  } else {
    const cuda::MoeFfnGrads gr{G(d.w1), G(d.w2), G(d.sh_w1), G(d.sh_w2)};
    cuda::moe_ffn_backward(dxs.get(), dwc.get(), gr, dh.get(), L.x2.get(), L.w.get(),
                           moe_weights(d), L.moe, moe_ws, gemm, st, false);
    const RouterParams rp = router_params();
    cuda::moe_router_backward(rlogits.get(), dwc.get(), L.idx.get(), L.scores.get(), N, rp, st);
    if (o.seq_balance_alpha != 0.0f)
      cuda::moe_balance_loss_gpu(nullptr, rlogits.get(), L.scores.get(), L.idx.get(), N, E, K, T,
                                 rp.sigmoid, o.seq_balance_alpha * o.loss_scale, tok_sum.get(), st);
    if (o.aux_balance_alpha != 0.0f)
      cuda::moe_balance_loss_gpu(nullptr, rlogits.get(), L.scores.get(), L.idx.get(), N, E, K, N,
                                 rp.sigmoid, o.aux_balance_alpha * o.loss_scale, tok_sum.get(),
                                 st);
    cuda::cast_f32_bf16(dlog_bf.get(), rlogits.get(), N * E, st);
    lin_dx(dxs.get(), dlog_bf.get(), E, W(d.router), N, C, E, true);
    lin_dw(G(d.router), dlog_bf.get(), E, L.x2.get(), C, N, C, E);
  }
  cuda::rmsnorm_backward(dh.get(), C, G(d.ffn_norm), dxs.get(), C, L.hmid.get(), C,
                         W(d.ffn_norm), L.rstd2.get(), N, C, true, st);
  mla_backward(L, d);
  cuda::rmsnorm_backward(dh.get(), C, G(d.attn_norm), dxs.get(), C, L.hin.get(), C,
                         W(d.attn_norm), L.rstd1.get(), N, C, true, st);
}

// ---------------------------------------------------------------------------------------------
// GpuModel

GpuModel::GpuModel(const Model& m, int64_t B, int64_t T, const GpuAdamW& hyper)
    : impl_(std::make_unique<Impl>()) {
  std::string why;
  DSEEK_CHECK(gpu_available(&why), "GpuModel: no CUDA device ({})", why);
  Impl& I = *impl_;
  const ModelConfig& c = m.cfg;
  I.cfg = c;
  I.B = B;
  I.T = T;
  I.N = B * T;
  I.C = c.hidden_size;
  I.H = c.num_attention_heads;
  I.Dn = c.qk_nope_head_dim;
  I.Dr = c.qk_rope_head_dim;
  I.Dv = c.v_head_dim;
  I.Dqk = c.qk_head_dim();
  I.Dc = c.kv_lora_rank;
  I.Dq = c.q_lora_rank;
  I.V = c.vocab_size;
  I.E = c.n_routed_experts;
  I.K = c.num_experts_per_tok;
  I.eps = (float)c.rms_norm_eps;
  I.scale = c.softmax_scale();
  DSEEK_CHECK(B > 0 && T > 0, "GpuModel: batch {}x{}", B, T);
  DSEEK_CHECK(!c.attention_bias && !c.mlp_bias, "GpuModel: attention / MLP biases not supported");
  DSEEK_CHECK(cuda::flash_attn_supported(I.Dqk, I.Dv),
              "GpuModel: head dims (qk {}, v {}) not supported by flash_attn", I.Dqk, I.Dv);
  DSEEK_CHECK(I.C % 8 == 0 && I.Dn % 8 == 0 && I.Dc % 8 == 0 && I.Dq % 8 == 0,
              "GpuModel: hidden size, nope dim, kv/q lora ranks must be multiples of 8");
  DSEEK_CHECK((int64_t)m.w.mtp.size() == c.mtp_depth, "GpuModel: {} MTP modules, depth {}",
              m.w.mtp.size(), c.mtp_depth);
  DSEEK_CUDA_CHECK(cudaStreamCreate(&I.st));

  I.init_layout(m);
  I.master = I.alloc<float>(I.total);
  I.wbf = I.alloc<bf16_t>(I.total);
  I.grad = I.alloc<float>(I.total);
  I.m1 = I.alloc<float>(I.total);
  I.m2 = I.alloc<float>(I.total);
  DSEEK_CUDA_CHECK(cudaMemset(I.master.get(), 0, I.total * sizeof(float)));
  DSEEK_CUDA_CHECK(cudaMemset(I.wbf.get(), 0, I.total * sizeof(bf16_t)));
  DSEEK_CUDA_CHECK(cudaMemset(I.grad.get(), 0, I.total * sizeof(float)));
  DSEEK_CUDA_CHECK(cudaMemset(I.m1.get(), 0, I.total * sizeof(float)));
  DSEEK_CUDA_CHECK(cudaMemset(I.m2.get(), 0, I.total * sizeof(float)));
  I.upload(m.w, false);
  std::vector<cuda::AdamWTensor> ts;
  for (size_t i = 0; i < I.off.size(); i++) {
    if (!I.trainable[i] || I.off[i] < 0) continue;
    const int64_t o = I.off[i];
    ts.push_back(cuda::AdamWTensor{I.master.get() + o, I.m1.get() + o, I.m2.get() + o,
                                   I.grad.get() + o, I.wbf.get() + o, I.numel[i],
                                   (bool)I.decay[i]});
  }
  I.adam = std::make_unique<cuda::AdamWMultiTensor>(
      ts, cuda::AdamWHyper{hyper.beta1, hyper.beta2, hyper.eps, hyper.weight_decay});

  // rope tables per token (positions 0..T-1 in every sequence)
  const int64_t half = I.Dr / 2, N = I.N;
  std::vector<int32_t> pos(T);
  for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)t;
  std::vector<float> ct(T * half), stt(T * half), cb(N * half), sb(N * half);
  rope_tables(ct.data(), stt.data(), pos.data(), T, m.inv_freq.data(), half, m.rope_attn_factor);
  for (int64_t b = 0; b < B; b++) {
    std::copy(ct.begin(), ct.end(), cb.begin() + b * T * half);
    std::copy(stt.begin(), stt.end(), sb.begin() + b * T * half);
  }
  I.cos_t = DeviceBuffer<float>(cb);
  I.sin_t = DeviceBuffer<float>(sb);
  I.bytes += 2 * N * half * 4;

  // activations
  const int64_t C = I.C, nl = c.num_hidden_layers, D = c.mtp_depth;
  I.ids = I.alloc<int32_t>(N);
  I.tgts = I.alloc<int32_t>(N);
  I.lb.resize(nl);
  for (int64_t l = 0; l < nl; l++) I.alloc_layer(I.lb[l], I.layers[l]);
  I.hfinal = I.alloc<bf16_t>(N * C);
  I.hn = I.alloc<bf16_t>(N * C);
  I.dhn = I.alloc<bf16_t>(N * C);
  I.rstd_f = I.alloc<float>(N);
  I.loss_rows = I.alloc<float>(N);
  I.mb.resize(D);
  for (int64_t k = 0; k < D; k++) {
    MtpBuf& M = I.mb[k];
    M.tok = I.alloc<int32_t>(N);
    M.tgt = I.alloc<int32_t>(N);
    M.emb = I.alloc<bf16_t>(N * C);
    M.cat = I.alloc<bf16_t>(N * 2 * C);
    M.hout = I.alloc<bf16_t>(N * C);
    M.hn = I.alloc<bf16_t>(N * C);
    M.dhn = I.alloc<bf16_t>(N * C);
    M.rstd_e = I.alloc<float>(N);
    M.rstd_h = I.alloc<float>(N);
    M.rstd_out = I.alloc<float>(N);
    M.loss_rows = I.alloc<float>(N);
    I.alloc_layer(M.block, I.mtp[k].block);
  }
  int64_t Imax = 1;
  for (const DevLayer& d : I.layers) Imax = std::max(Imax, d.I);
  for (const DevMtp& d : I.mtp) Imax = std::max(Imax, d.block.I);
  I.y = I.alloc<bf16_t>(N * C);
  I.dh = I.alloc<bf16_t>(N * C);
  I.dxs = I.alloc<bf16_t>(N * C);
  if (D > 0) {
    I.dmtp = I.alloc<bf16_t>(N * C);
    I.dcat = I.alloc<bf16_t>(N * 2 * C);
    I.demb = I.alloc<bf16_t>(N * C);
  }
  I.d_o = I.alloc<bf16_t>(N * I.H * I.Dv);
  I.dq = I.alloc<bf16_t>(N * I.H * I.Dqk);
  I.dK = I.alloc<bf16_t>(N * I.H * I.Dqk);
  I.dkv = I.alloc<bf16_t>(N * I.H * (I.Dn + I.Dv));
  I.dc = I.alloc<bf16_t>(N * I.Dc);
  I.dkva = I.alloc<bf16_t>(N * (I.Dc + I.Dr));
  if (I.Dq > 0) {
    I.dcqn = I.alloc<bf16_t>(N * I.Dq);
    I.dcq = I.alloc<bf16_t>(N * I.Dq);
  }
  I.dhgu = I.alloc<bf16_t>(N * 2 * Imax);
  I.da = I.alloc<bf16_t>(N * Imax);
  if (I.E > 0) {
    I.rlogits = I.alloc<float>(N * I.E);
    I.dlog_bf = I.alloc<bf16_t>(N * I.E);
    I.dwc = I.alloc<float>(N * I.K);
    I.counts = I.alloc<int32_t>(nl * I.E);
  }
  I.tok_sum = I.alloc<double>(N);
  I.bal = I.alloc<double>((nl + D) * (B + 1));
  I.sumsq = I.alloc<double>(cuda::grad_sumsq_blocks(I.total));
  I.flash_ws = I.alloc<uint8_t>((int64_t)cuda::flash_attn_backward_workspace_bytes(I.fdims()));
  I.lmhead = std::make_unique<cuda::LmHeadCe>(I.V, std::min<int64_t>(N, 1024));
  I.bytes += std::min<int64_t>(N, 1024) * ((I.V + 7) / 8 * 8) * 6;
}

GpuModel::~GpuModel() {
  if (impl_ && impl_->st) {
    cudaStreamSynchronize(impl_->st);
    cudaStreamDestroy(impl_->st);
  }
}

const ModelConfig& GpuModel::config() const {
  return impl_->cfg;
}
int64_t GpuModel::batch() const {
  return impl_->B;
}
int64_t GpuModel::seq_len() const {
  return impl_->T;
}
int64_t GpuModel::n_params() const {
  int64_t n = 0;
  for (int64_t x : impl_->numel) n += x;
  return n;
}
int64_t GpuModel::adam_step_count() const {
  return impl_->t_adam;
}
int64_t GpuModel::device_bytes() const {
  return impl_->bytes;
}
void GpuModel::synchronize() const {
  DSEEK_CUDA_CHECK(cudaStreamSynchronize(impl_->st));
}

void GpuModel::zero_grads() {
  DSEEK_CUDA_CHECK(
      cudaMemsetAsync(impl_->grad.get(), 0, impl_->total * sizeof(float), impl_->st));
}

GpuStepStats GpuModel::forward_backward(const int32_t* inputs, const int32_t* targets,
                                        const TrainOptions& o) {
  Impl& I = *impl_;
  DSEEK_CHECK(!o.defer_head_grad, "GpuModel: defer_head_grad is not supported on the GPU");
  const ModelConfig& cfg = I.cfg;
  const int64_t B = I.B, T = I.T, N = I.N, C = I.C, V = I.V, nl = cfg.num_hidden_layers;
  const int64_t D = o.run_mtp ? cfg.mtp_depth : 0;
  const cudaStream_t st = I.st;
  for (int64_t i = 0; i < N; i++) {
    DSEEK_CHECK(inputs[i] >= 0 && inputs[i] < V, "input token {} outside the vocabulary [0, {})",
                inputs[i], V);
    DSEEK_CHECK(targets[i] < V, "target {} outside the vocabulary [0, {})", targets[i], V);
  }
  DSEEK_CUDA_CHECK(
      cudaMemcpyAsync(I.ids.get(), inputs, N * sizeof(int32_t), cudaMemcpyHostToDevice, st));
  DSEEK_CUDA_CHECK(
      cudaMemcpyAsync(I.tgts.get(), targets, N * sizeof(int32_t), cudaMemcpyHostToDevice, st));
  int64_t count = 0;
  for (int64_t i = 0; i < N; i++) count += targets[i] >= 0;
  std::vector<int64_t> mcount(D, 0);
  for (int64_t k = 1; k <= D; k++) {
    MtpBuf& M = I.mb[k - 1];
    M.h_tok.assign(N, 0);
    M.h_tgt.assign(N, -1);
    for (int64_t b = 0; b < B; b++)
      for (int64_t i = 0; i + k < T; i++) {
        M.h_tok[b * T + i] = inputs[b * T + i + k];
        M.h_tgt[b * T + i] = targets[b * T + i + k];
      }
    for (int64_t i = 0; i < N; i++) mcount[k - 1] += M.h_tgt[i] >= 0;
    DSEEK_CUDA_CHECK(cudaMemcpyAsync(M.tok.get(), M.h_tok.data(), N * sizeof(int32_t),
                                     cudaMemcpyHostToDevice, st));
    DSEEK_CUDA_CHECK(cudaMemcpyAsync(M.tgt.get(), M.h_tgt.data(), N * sizeof(int32_t),
                                     cudaMemcpyHostToDevice, st));
  }
  if (I.E > 0)
    DSEEK_CUDA_CHECK(cudaMemsetAsync(I.counts.get(), 0, nl * I.E * sizeof(int32_t), st));
  DSEEK_CUDA_CHECK(cudaMemsetAsync(I.bal.get(), 0, (nl + cfg.mtp_depth) * (B + 1) * 8, st));

  // ---- forward: main model
  cuda::embedding_forward(I.lb[0].hin.get(), I.W(I.embed), I.ids.get(), N, C, V, st);
  for (int64_t l = 0; l < nl; l++) {
    const bf16_t* rx = l > 0 ? I.lb[l - 1].hmid.get() : nullptr;
    const bf16_t* ry = l > 0 ? I.y.get() : nullptr;
    I.layer_forward(I.lb[l], I.layers[l], rx, ry, I.E > 0 ? I.counts.get() + l * I.E : nullptr,
                    I.bal.get() + l * (B + 1), o);
  }
  cuda::rmsnorm_forward(I.hn.get(), C, I.rstd_f.get(), I.hfinal.get(), I.lb[nl - 1].hmid.get(), C,
                        I.y.get(), I.W(I.norm), N, C, I.eps, st);
  I.lmhead->forward_backward(I.gemm, I.loss_rows.get(), I.dhn.get(), I.G(I.head), I.hn.get(), C,
                             I.W(I.head), I.tgts.get(), N, C,
                             count ? o.loss_scale / (float)count : 0.0f, st);
  // ---- forward: MTP depths
  for (int64_t k = 1; k <= D; k++) {
    MtpBuf& M = I.mb[k - 1];
    const DevMtp& d = I.mtp[k - 1];
    const bf16_t* hprev = k == 1 ? I.hn.get() : I.mb[k - 2].hout.get();
    cuda::embedding_forward(M.emb.get(), I.W(I.embed), M.tok.get(), N, C, V, st);
    cuda::rmsnorm_forward(M.cat.get(), 2 * C, M.rstd_e.get(), nullptr, M.emb.get(), C, nullptr,
                          I.W(d.enorm), N, C, I.eps, st);
    cuda::rmsnorm_forward(M.cat.get() + C, 2 * C, M.rstd_h.get(), nullptr, hprev, C, nullptr,
                          I.W(d.hnorm), N, C, I.eps, st);
    I.lin(M.block.hin.get(), M.cat.get(), 2 * C, I.W(d.eh), N, 2 * C, C);
    I.layer_forward(M.block, d.block, nullptr, nullptr, nullptr,
                    I.bal.get() + (nl + k - 1) * (B + 1), o);
    cuda::rmsnorm_forward(M.hn.get(), C, M.rstd_out.get(), M.hout.get(), M.block.hmid.get(), C,
                          I.y.get(), I.W(d.head_norm), N, C, I.eps, st);
    const float sc = mcount[k - 1] ? o.loss_scale * o.mtp_lambda / (float)D / (float)mcount[k - 1]
                                   : 0.0f;
    I.lmhead->forward_backward(I.gemm, M.loss_rows.get(), M.dhn.get(), I.G(I.head), M.hn.get(), C,
                               I.W(I.head), M.tgt.get(), N, C, sc, st);
  }

  // ---- backward: MTP depths, last first (dmtp carries d h^{k-1} from depth k to k-1)
  for (int64_t k = D; k >= 1; k--) {
    MtpBuf& M = I.mb[k - 1];
    const DevMtp& d = I.mtp[k - 1];
    // the block's output gradient goes into dh (the layer backward's stream buffer)
    if (k < D)
      DSEEK_CUDA_CHECK(cudaMemcpyAsync(I.dh.get(), I.dmtp.get(), N * C * sizeof(bf16_t),
                                       cudaMemcpyDeviceToDevice, st));
    cuda::rmsnorm_backward(I.dh.get(), C, I.G(d.head_norm), M.dhn.get(), C, M.hout.get(), C,
                           I.W(d.head_norm), M.rstd_out.get(), N, C, k < D, st);
    I.layer_backward(M.block, d.block, o);
    I.lin_dx(I.dcat.get(), I.dh.get(), C, I.W(d.eh), N, 2 * C, C, false);
    I.lin_dw(I.G(d.eh), I.dh.get(), C, M.cat.get(), 2 * C, N, 2 * C, C);
    cuda::rmsnorm_backward(I.demb.get(), C, I.G(d.enorm), I.dcat.get(), 2 * C, M.emb.get(), C,
                           I.W(d.enorm), M.rstd_e.get(), N, C, false, st);
    cuda::embedding_backward(I.G(I.embed), I.demb.get(), M.tok.get(), N, C, V, st);
    if (k > 1)
      cuda::rmsnorm_backward(I.dmtp.get(), C, I.G(d.hnorm), I.dcat.get() + C, 2 * C,
                             I.mb[k - 2].hout.get(), C, I.W(d.hnorm), M.rstd_h.get(), N, C, false,
                             st);
    else
      cuda::rmsnorm_backward(I.dhn.get(), C, I.G(d.hnorm), I.dcat.get() + C, 2 * C, I.hn.get(), C,
                             I.W(d.hnorm), M.rstd_h.get(), N, C, true, st);
  }
  // ---- backward: main model
  cuda::rmsnorm_backward(I.dh.get(), C, I.G(I.norm), I.dhn.get(), C, I.hfinal.get(), C,
                         I.W(I.norm), I.rstd_f.get(), N, C, false, st);
  for (int64_t l = nl - 1; l >= 0; l--) I.layer_backward(I.lb[l], I.layers[l], o);
  cuda::embedding_backward(I.G(I.embed), I.dh.get(), I.ids.get(), N, C, V, st);

  // ---- losses and loads to the host
  GpuStepStats s;
  std::vector<float> rows(N);
  DSEEK_CUDA_CHECK(cudaMemcpyAsync(rows.data(), I.loss_rows.get(), N * sizeof(float),
                                   cudaMemcpyDeviceToHost, st));
  std::vector<double> bal((nl + cfg.mtp_depth) * (B + 1));
  DSEEK_CUDA_CHECK(cudaMemcpyAsync(bal.data(), I.bal.get(), bal.size() * sizeof(double),
                                   cudaMemcpyDeviceToHost, st));
  std::vector<int32_t> cnt(I.E > 0 ? nl * I.E : 0);
  if (!cnt.empty())
    DSEEK_CUDA_CHECK(cudaMemcpyAsync(cnt.data(), I.counts.get(), cnt.size() * sizeof(int32_t),
                                     cudaMemcpyDeviceToHost, st));
  std::vector<std::vector<float>> mrows(D, std::vector<float>(N));
  for (int64_t k = 0; k < D; k++)
    DSEEK_CUDA_CHECK(cudaMemcpyAsync(mrows[k].data(), I.mb[k].loss_rows.get(), N * sizeof(float),
                                     cudaMemcpyDeviceToHost, st));
  DSEEK_CUDA_CHECK(cudaStreamSynchronize(st));
  double sum = 0.0;
  for (int64_t i = 0; i < N; i++)
    if (targets[i] >= 0) sum += rows[i];
  s.n_targets = count;
  s.ce_loss = count ? sum / count : 0.0;
  s.mtp_loss.assign(D, 0.0);
  for (int64_t k = 0; k < D; k++) {
    double ms = 0.0;
    for (int64_t i = 0; i < N; i++)
      if (I.mb[k].h_tgt[i] >= 0) ms += mrows[k][i];
    s.mtp_loss[k] = mcount[k] ? ms / mcount[k] : 0.0;
    s.mtp_loss_total += o.mtp_lambda / D * s.mtp_loss[k];
  }
  for (int64_t l = 0; l < nl + D; l++) {
    const bool moe = l < nl ? I.layers[l].moe : I.mtp[l - nl].block.moe;
    if (!moe) continue;
    const double* b = bal.data() + l * (B + 1);
    double seq = 0.0;
    for (int64_t g = 0; g < B; g++) seq += b[g];
    if (o.seq_balance_alpha != 0.0f) s.balance_loss += o.seq_balance_alpha * seq / B;
    if (o.aux_balance_alpha != 0.0f) s.balance_loss += o.aux_balance_alpha * b[B];
  }
  s.expert_load.assign(nl, {});
  for (int64_t l = 0; l < nl; l++) {
    if (!I.layers[l].moe) continue;
    s.expert_load[l].assign(cnt.begin() + l * I.E, cnt.begin() + (l + 1) * I.E);
  }
  s.loss = s.ce_loss + s.balance_loss + s.mtp_loss_total;
  return s;
}

double GpuModel::grad_norm() {
  Impl& I = *impl_;
  const int nb = cuda::grad_sumsq_blocks(I.total);
  cuda::grad_sumsq(I.sumsq.get(), I.grad.get(), I.total, I.st);
  std::vector<double> p(nb);
  DSEEK_CUDA_CHECK(cudaMemcpyAsync(p.data(), I.sumsq.get(), nb * sizeof(double),
                                   cudaMemcpyDeviceToHost, I.st));
  DSEEK_CUDA_CHECK(cudaStreamSynchronize(I.st));
  double s = 0.0;
  for (double x : p) s += x;
  return std::sqrt(s);
}

double GpuModel::clip_and_step(float lr, float max_norm) {
  Impl& I = *impl_;
  const double norm = grad_norm();
  if (!std::isfinite(norm)) return norm;
  float scale = 1.0f;
  if (max_norm > 0.0f) {
    const float s = max_norm / ((float)norm + 1e-6f);
    if (s < 1.0f) scale = s;
  }
  I.t_adam++;
  I.adam->step(lr, I.t_adam, scale, I.st);
  return norm;
}

void GpuModel::download_weights(ModelWeights& w) const {
  const Impl& I = *impl_;
  if (w.embed.empty()) weights_allocate(I.cfg, w);
  std::vector<ParamRef> ps = model_params(I.cfg, w);
  DSEEK_CUDA_CHECK(cudaStreamSynchronize(I.st));
  for (size_t i = 0; i < ps.size(); i++)
    if (I.off[i] >= 0)
      DSEEK_CUDA_CHECK(cudaMemcpy(ps[i].tensor->ptr(), I.master.get() + I.off[i],
                                  I.numel[i] * sizeof(float), cudaMemcpyDeviceToHost));
}

namespace {
// fp32 flat device buffer <-> host tensors of the same config (model_params order)
void flat_to_host(const GpuModel::Impl& I, const float* src, ModelWeights& w);
void host_to_flat(GpuModel::Impl& I, float* dst, const ModelWeights& w);
}  // namespace

void GpuModel::download_grads(ModelWeights& g) const {
  flat_to_host(*impl_, impl_->grad.get(), g);
}

void GpuModel::download_adam_state(ModelWeights& m, ModelWeights& v) const {
  flat_to_host(*impl_, impl_->m1.get(), m);
  flat_to_host(*impl_, impl_->m2.get(), v);
}

void GpuModel::upload_adam_state(const ModelWeights& m, const ModelWeights& v, int64_t t) {
  host_to_flat(*impl_, impl_->m1.get(), m);
  host_to_flat(*impl_, impl_->m2.get(), v);
  impl_->t_adam = t;
}

namespace {
void flat_to_host(const GpuModel::Impl& I, const float* src, ModelWeights& w) {
  if (w.embed.empty()) weights_allocate(I.cfg, w);
  std::vector<ParamRef> ps = model_params(I.cfg, w);
  DSEEK_CHECK(ps.size() == I.off.size(), "GpuModel: {} tensors, expected {}", ps.size(),
              I.off.size());
  DSEEK_CUDA_CHECK(cudaStreamSynchronize(I.st));
  for (size_t i = 0; i < ps.size(); i++)
    if (I.off[i] >= 0)
      DSEEK_CUDA_CHECK(cudaMemcpy(ps[i].tensor->ptr(), src + I.off[i], I.numel[i] * sizeof(float),
                                  cudaMemcpyDeviceToHost));
}
void host_to_flat(GpuModel::Impl& I, float* dst, const ModelWeights& w_in) {
  ModelWeights& w = const_cast<ModelWeights&>(w_in);  // model_params only takes addresses
  std::vector<ParamRef> ps = model_params(I.cfg, w);
  DSEEK_CHECK(ps.size() == I.off.size(), "GpuModel: {} tensors, expected {}", ps.size(),
              I.off.size());
  DSEEK_CUDA_CHECK(cudaStreamSynchronize(I.st));
  for (size_t i = 0; i < ps.size(); i++) {
    if (I.off[i] < 0) continue;
    DSEEK_CHECK(ps[i].tensor->numel() == I.numel[i], "GpuModel: {} has {} elements, expected {}",
                ps[i].name, ps[i].tensor->numel(), I.numel[i]);
    DSEEK_CUDA_CHECK(cudaMemcpy(dst + I.off[i], ps[i].tensor->ptr(), I.numel[i] * sizeof(float),
                                cudaMemcpyHostToDevice));
  }
}
}  // namespace

void GpuModel::upload_router_biases(const ModelWeights& w) {
  DSEEK_CUDA_CHECK(cudaStreamSynchronize(impl_->st));
  impl_->upload(w, true);
}

void GpuModel::upload_weights(const ModelWeights& w) {
  DSEEK_CUDA_CHECK(cudaStreamSynchronize(impl_->st));
  impl_->upload(w, false);
}

}  // namespace dseek

#else  // no CUDA: the API exists and says so

namespace dseek {

bool gpu_available(std::string* why) {
  if (why) *why = "dseek was built without CUDA";
  return false;
}

struct GpuModel::Impl {};

GpuModel::GpuModel(const Model&, int64_t, int64_t, const GpuAdamW&) {
  fail("GpuModel: dseek was built without CUDA (no GPU training)");
}
GpuModel::~GpuModel() = default;
const ModelConfig& GpuModel::config() const {
  fail("built without CUDA");
}
int64_t GpuModel::batch() const {
  return 0;
}
int64_t GpuModel::seq_len() const {
  return 0;
}
int64_t GpuModel::n_params() const {
  return 0;
}
void GpuModel::zero_grads() {}
GpuStepStats GpuModel::forward_backward(const int32_t*, const int32_t*, const TrainOptions&) {
  fail("built without CUDA");
}
double GpuModel::grad_norm() {
  return 0.0;
}
double GpuModel::clip_and_step(float, float) {
  return 0.0;
}
int64_t GpuModel::adam_step_count() const {
  return 0;
}
void GpuModel::download_weights(ModelWeights&) const {}
void GpuModel::download_grads(ModelWeights&) const {}
void GpuModel::download_adam_state(ModelWeights&, ModelWeights&) const {}
void GpuModel::upload_adam_state(const ModelWeights&, const ModelWeights&, int64_t) {}
void GpuModel::upload_router_biases(const ModelWeights&) {}
void GpuModel::upload_weights(const ModelWeights&) {}
int64_t GpuModel::device_bytes() const {
  return 0;
}
void GpuModel::synchronize() const {}

}  // namespace dseek

#endif
