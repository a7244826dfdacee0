// GpuModel (gpu_model.h): construction (layout, uploads, AdamW tensor list, RoPE tables,
// activation buffers), the step's public entry points (forward_backward = stage the batch, the
// forward of gpu_model_forward.cpp, the backward of gpu_model_backward.cpp, collect the losses),
// the global gradient norm and the fused AdamW step; and the API's stubs for builds without CUDA.
#include "dseek/model/gpu_model.h"

#include "dseek/core/error.h"

#ifdef DSEEK_HAVE_CUDA

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>

#include "dseek/core/device.h"              // cuda_devices
#include "dseek/model/gpu_model_impl.h"     // GpuModel::Impl
#include "dseek/model/gpu_model_kernels.h"  // grad_sumsq
#include "dseek/ops/cpu/rope.h"             // rope_tables
#include "dseek/ops/cuda/cuda_check.h"

namespace dseek {

using namespace gpu_model_detail;
using Fam = GpuOpFamily;

bool gpu_available(std::string* why) {
  std::string w;
  const bool ok = !cuda_devices(&w).empty();
  if (why) *why = ok ? "" : w;
  return ok;
}

// ---------------------------------------------------------------------------------------------
// construction

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
  int64_t nbias = 0;
  for (int64_t n : I.bias_n) nbias += n;
  DSEEK_CUDA_CHECK(cudaMallocHost((void**)&I.bias_stage, std::max<int64_t>(nbias, 1) * 4));
  DSEEK_CUDA_CHECK(cudaMallocHost((void**)&I.bias_stage_bf, std::max<int64_t>(nbias, 1) * 2));
  DSEEK_CUDA_CHECK(cudaEventCreateWithFlags(&I.bias_done, cudaEventDisableTiming));
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
  I.bal_scratch = I.alloc<double>(I.E > 0 ? cuda::moe_balance_scratch_elems(N, I.E) : 0);
  I.bal = I.alloc<double>((nl + D) * (B + 1));
  I.sumsq = I.alloc<double>(cuda::grad_sumsq_blocks(I.total));
  I.flash_ws = I.alloc<uint8_t>((int64_t)cuda::flash_attn_backward_workspace_bytes(I.fdims()));
  I.lmhead = std::make_unique<cuda::LmHeadCe>(I.V, std::min<int64_t>(N, 1024));
  I.bytes += std::min<int64_t>(N, 1024) * ((I.V + 7) / 8 * 8) * 6;
}

GpuModel::Impl::~Impl() {  // also after a constructor that threw half way
  if (st) {
    cudaStreamSynchronize(st);
    cudaStreamDestroy(st);
  }
  if (bias_done) cudaEventDestroy(bias_done);
  if (bias_stage) cudaFreeHost(bias_stage);
  if (bias_stage_bf) cudaFreeHost(bias_stage_bf);
}

GpuModel::~GpuModel() = default;

// ---------------------------------------------------------------------------------------------
// accessors

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
int64_t GpuModel::n_trainable() const {
  return impl_->n_trainable;
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
void GpuModel::set_profiler(GpuProfiler* p) {
  impl_->prof = p;
}

// ---------------------------------------------------------------------------------------------
// the step

void GpuModel::zero_grads() {
  Impl& I = *impl_;
  auto t_ = I.tag(Fam::GPU_OP_OPTIMIZER, 0, 4.0 * I.total);
  DSEEK_CUDA_CHECK(cudaMemsetAsync(I.grad.get(), 0, I.total * sizeof(float), I.st));
}

GpuStepStats GpuModel::forward_backward(const int32_t* inputs, const int32_t* targets,
                                        const TrainOptions& o) {
  Impl& I = *impl_;
  DSEEK_CHECK(!o.defer_head_grad, "GpuModel: defer_head_grad is not supported on the GPU");
  const Impl::BatchInfo bi = I.stage_batch(inputs, targets, o.run_mtp ? I.cfg.mtp_depth : 0);
  I.forward(bi, o, true);
  I.backward(bi, o);
  return I.collect(bi, o);
}

GpuStepStats GpuModel::evaluate(const int32_t* inputs, const int32_t* targets) {
  Impl& I = *impl_;
  const Impl::BatchInfo bi = I.stage_batch(inputs, targets, 0);
  TrainOptions o;
  o.run_mtp = false;
  o.seq_balance_alpha = 0.0f;
  o.aux_balance_alpha = 0.0f;
  I.forward(bi, o, false);
  return I.collect(bi, o);
}

double GpuModel::grad_norm() {
  Impl& I = *impl_;
  const int nb = cuda::grad_sumsq_blocks(I.total);
  std::vector<double> p(nb);
  {
    auto t_ = I.tag(Fam::GPU_OP_OPTIMIZER, 0, 4.0 * I.total);
    cuda::grad_sumsq(I.sumsq.get(), I.grad.get(), I.total, I.st);
  }
  {
    auto t_ = I.tag(Fam::GPU_OP_TRANSFER);
    DSEEK_CUDA_CHECK(cudaMemcpyAsync(p.data(), I.sumsq.get(), nb * sizeof(double),
                                     cudaMemcpyDeviceToHost, I.st));
    DSEEK_CUDA_CHECK(cudaStreamSynchronize(I.st));
  }
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
  // per trainable element: read p, m, v, g; write p, m, v (fp32) and the bf16 copy
  auto t_ = I.tag(Fam::GPU_OP_OPTIMIZER, 0, 30.0 * I.n_trainable);
  I.adam->step(lr, I.t_adam, scale, I.st);
  return norm;
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
int64_t GpuModel::n_trainable() const {
  return 0;
}
void GpuModel::zero_grads() {}
GpuStepStats GpuModel::forward_backward(const int32_t*, const int32_t*, const TrainOptions&) {
  fail("built without CUDA");
}
GpuStepStats GpuModel::evaluate(const int32_t*, const int32_t*) {
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
void GpuModel::set_profiler(GpuProfiler*) {}

}  // namespace dseek

#endif
