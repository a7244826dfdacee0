// GpuModel's inside (model/gpu_model.h), shared by its files, CUDA builds only:
//   gpu_model.cpp           construction, the step's public entry points, grad norm, AdamW
//   gpu_model_params.cpp    the flat parameter layout, uploads and downloads (weights, grads,
//                           AdamW state)
//   gpu_model_forward.cpp   the forward (MLA, decoder layers, head, MTP) and the step's losses
//   gpu_model_backward.cpp  the backward (the same list reversed)
// Every op enqueued here carries a GpuProfileTag (gpu_model_profile.h): its family, model FLOPs
// and fewest bytes; the tags cost nothing when no profiler is recording.
#pragma once

#ifdef DSEEK_HAVE_CUDA

#include <cuda_runtime_api.h>  // cudaStream_t

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "dseek/model/gpu_model.h"          // GpuModel, GpuStepStats, GpuAdamW
#include "dseek/model/gpu_model_profile.h"  // GpuProfiler, GpuProfileTag, GpuOpFamily
#include "dseek/ops/cuda/adamw.h"           // AdamWMultiTensor
#include "dseek/ops/cuda/device_buffer.h"   // DeviceBuffer
#include "dseek/ops/cuda/flash_attn.h"      // FlashAttnDims
#include "dseek/ops/cuda/gemm_lt.h"         // GemmLt, gemm_lt_*
#include "dseek/ops/cuda/lm_head_ce.h"      // LmHeadCe
#include "dseek/ops/cuda/moe_ffn.h"         // MoeFfnActs, MoeFfnWeights, MoeFfnWorkspace
#include "dseek/model/moe.h"                // router_params
#include "dseek/ops/cpu/moe_router.h"       // RouterParams

namespace dseek {

namespace gpu_model_detail {

constexpr float kLoraNormEps = 1e-6f;  // q_a_layernorm / kv_a_layernorm (as mla.cpp)
constexpr int64_t kAlign = 8;          // elements: 16 bytes of bf16, 32 of fp32

// Offsets (elements) of one decoder layer's tensors in the flat buffers; -1 = absent.
struct DevLayer {
  int64_t attn_norm = -1, q_proj = -1, q_a = -1, q_a_norm = -1, q_b = -1, kv_a = -1, kv_a_norm = -1,
          kv_b = -1, o = -1, ffn_norm = -1;
  int64_t gate_up = -1, down = -1, I = 0;                   // dense: [2I, C], [C, I]
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
  DeviceBuffer<bf16_t> hin, x1, hmid, x2;  // [N, C]
  DeviceBuffer<float> rstd1, rstd2;        // [N]
  DeviceBuffer<bf16_t> cq, cqn;            // [N, Dq]
  DeviceBuffer<float> rstdq, rstdkv;       // [N]
  DeviceBuffer<bf16_t> q, K;               // [N, H*Dqk]
  DeviceBuffer<bf16_t> kva, c, kv, o;      // [N, Dc+Dr], [N, Dc], [N, H*(Dn+Dv)], [N, H*Dv]
  DeviceBuffer<float> lse;                 // [B, H, T]
  DeviceBuffer<bf16_t> hgu, a;             // dense: [N, 2I], [N, I]
  DeviceBuffer<int32_t> idx;               // MoE: [N, K]
  DeviceBuffer<float> w, scores;           // [N, K], [N, E]
  cuda::MoeFfnActs moe;
};

struct MtpBuf {
  DeviceBuffer<int32_t> tok, tgt;                           // [N]
  DeviceBuffer<bf16_t> emb, cat, hout, hn;                  // [N, C], [N, 2C], [N, C], [N, C]
  DeviceBuffer<bf16_t> dhn;                                 // [N, C] head gradient
  DeviceBuffer<float> rstd_e, rstd_h, rstd_out, loss_rows;  // [N]
  LayerBuf block;
  std::vector<int32_t> h_tok, h_tgt;
};

// One micro-batch as the forward needs it: target counts per head (main, MTP depths).
struct BatchInfo {
  int64_t D = 0;                // MTP depths run
  int64_t count = 0;            // main targets >= 0
  std::vector<int64_t> mcount;  // [D]
};

}  // namespace gpu_model_detail

struct GpuModel::Impl {
  using DevLayer = gpu_model_detail::DevLayer;
  using DevMtp = gpu_model_detail::DevMtp;
  using LayerBuf = gpu_model_detail::LayerBuf;
  using MtpBuf = gpu_model_detail::MtpBuf;
  using BatchInfo = gpu_model_detail::BatchInfo;

  ModelConfig cfg;
  int64_t B = 0, T = 0, N = 0;
  int64_t C = 0, H = 0, Dn = 0, Dr = 0, Dv = 0, Dqk = 0, Dc = 0, Dq = 0, V = 0, E = 0, K = 0;
  float eps = 1e-6f, scale = 1.0f;
  cudaStream_t st = nullptr;
  int64_t bytes = 0;
  GpuProfiler* prof = nullptr;  // may be null

  // flat parameter storage
  int64_t total = 0;
  std::vector<int64_t> off, numel;  // per model_params entry
  std::vector<bool> trainable, decay;
  std::vector<std::string> names;
  DeviceBuffer<float> master, grad, m1, m2;  // [total]
  DeviceBuffer<bf16_t> wbf;                  // [total]
  int64_t embed = -1, norm = -1, head = -1;
  std::vector<DevLayer> layers;
  std::vector<DevMtp> mtp;
  std::unique_ptr<cuda::AdamWMultiTensor> adam;
  int64_t t_adam = 0, n_trainable = 0;
  // router biases (updated by the host's bias balancing every step): their slots in layer order
  // (main layers, then MTP blocks), pinned staging for asynchronous uploads, and an event that
  // marks the last upload's copies done (the staging is reused only after it)
  std::vector<int64_t> bias_off, bias_n;
  float* bias_stage = nullptr;        // [sum bias_n] pinned
  uint16_t* bias_stage_bf = nullptr;  // [sum bias_n] pinned
  cudaEvent_t bias_done = nullptr;

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
  DeviceBuffer<double> bal_scratch, bal, sumsq;  // balance-loss scratch, [layers, B + 1], grad norm
  DeviceBuffer<int32_t> counts;                  // [nl, E]
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

  // ---- profiling tags: family, FLOPs, bytes (bf16 elements count 2 bytes)
  GpuProfileTag tag(GpuOpFamily f, double flops = 0, double bytes_ = 0) const {
    return GpuProfileTag(prof, f, flops, bytes_);
  }
  // an elementwise op reading r and writing w bf16 elements (plus extra bytes)
  GpuProfileTag tag_ew(double r, double w, double extra = 0) const {
    return GpuProfileTag(prof, GpuOpFamily::GPU_OP_ELEMENTWISE, 0, 2 * (r + w) + extra);
  }

  // ---- GEMM shorthands (row-major, as ops/cpu/linear.h), tagged GEMM unless inside a tag
  // y [n, out] = x [n, in] W [out, in]^T
  void lin(bf16_t* y_, const bf16_t* x, int64_t ldx, const bf16_t* w, int64_t n, int64_t in,
           int64_t out, int64_t ldy = -1) {
    auto t_ =
        tag(GpuOpFamily::GPU_OP_GEMM, 2.0 * n * in * out, 2.0 * (n * in + in * out + n * out));
    cuda::gemm_lt_nt(gemm, y_, ldy < 0 ? out : ldy, cuda::GemmOut::BF16, x, ldx, w, in, n, out, in,
                     0.0f, st);
  }
  // dx [n, in] (=|+=) dy [n, out] W [out, in]
  void lin_dx(bf16_t* dx, const bf16_t* dy_, int64_t lddy, const bf16_t* w, int64_t n, int64_t in,
              int64_t out, bool acc, int64_t lddx = -1) {
    auto t_ = tag(GpuOpFamily::GPU_OP_GEMM, 2.0 * n * in * out,
                  2.0 * (n * out + in * out + (acc ? 2 : 1) * n * in));
    cuda::gemm_lt_nn(gemm, dx, lddx < 0 ? in : lddx, cuda::GemmOut::BF16, dy_, lddy, w, in, n, in,
                     out, acc ? 1.0f : 0.0f, st);
  }
  // dW [out, in] += dy [n, out]^T x [n, in]
  void lin_dw(float* dw, const bf16_t* dy_, int64_t lddy, const bf16_t* x, int64_t ldx, int64_t n,
              int64_t in, int64_t out) {
    auto t_ = tag(GpuOpFamily::GPU_OP_GEMM, 2.0 * n * in * out,
                  2.0 * (n * out + n * in) + 8.0 * in * out);
    cuda::gemm_lt_tn(gemm, dw, in, cuda::GemmOut::F32, dy_, lddy, x, ldx, out, in, n, 1.0f, st);
  }

  RouterParams router_params() const { return dseek::router_params(cfg); }
  cuda::MoeFfnWeights moe_weights(const DevLayer& d) const {
    return cuda::MoeFfnWeights{W(d.w1), W(d.w2), W(d.sh_w1), W(d.sh_w2), E, C, d.Im, d.Is};
  }
  cuda::FlashAttnDims fdims() const { return {B, T, H, Dqk, Dv}; }
  // the MoE expert FFN's work over N tokens: forward (mult 1) or backward (mult 2)
  double moe_flops(const DevLayer& d, double mult) const {
    return mult * 6.0 * (double)N * C * ((double)K * d.Im + (double)d.Is);
  }
  double moe_bytes(const DevLayer& d, double mult) const {
    const double wts = 2.0 * 3.0 * C * ((double)E * d.Im + d.Is);
    const double acts = 2.0 * (double)N * (K + (d.Is > 0 ? 1 : 0)) * (2.0 * C + 3.0 * d.Im);
    return mult * (wts + acts) + (mult > 1 ? 2.0 * wts : 0.0);  // backward: fp32 dW +=
  }

  Impl() = default;
  ~Impl();
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // gpu_model_params.cpp
  void init_layout(const Model& m);
  void alloc_layer(LayerBuf& L, const DevLayer& d);
  void upload(const ModelWeights& w, bool only_router_bias);
  void upload_router_biases(const ModelWeights& w);
  void flat_to_host(const float* src, ModelWeights& w) const;
  void host_to_flat(float* dst, const ModelWeights& w);

  // gpu_model_forward.cpp
  BatchInfo stage_batch(const int32_t* inputs, const int32_t* targets, int64_t D);
  void forward(const BatchInfo& bi, const TrainOptions& o, bool with_grads);
  GpuStepStats collect(const BatchInfo& bi, const TrainOptions& o);
  void layer_forward(LayerBuf& L, const DevLayer& d, const bf16_t* res_x, const bf16_t* res_y,
                     int32_t* cnt, double* bal_slot, const TrainOptions& o);
  void mla_forward(LayerBuf& L, const DevLayer& d);

  // gpu_model_backward.cpp
  void backward(const BatchInfo& bi, const TrainOptions& o);
  void layer_backward(LayerBuf& L, const DevLayer& d, const TrainOptions& o);
  void mla_backward(LayerBuf& L, const DevLayer& d);
};

}  // namespace dseek

#endif  // DSEEK_HAVE_CUDA
