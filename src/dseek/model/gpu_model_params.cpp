// GpuModel's parameters (gpu_model.h): the flat layout (every tensor of model_params at a fixed
// 16-byte-aligned offset of one fp32 master buffer, its bf16 copy, the fp32 gradients and AdamW
// moments; each layer's expert matrices stacked so the grouped GEMMs read them in place), and
// the copies between those buffers and host ModelWeights (weights, gradients, AdamW state).
#include "dseek/model/gpu_model.h"

#ifdef DSEEK_HAVE_CUDA

#include <cuda_runtime_api.h>

#include <unordered_map>

#include "dseek/core/dtype.h"  // f32_to_bf16
#include "dseek/core/error.h"
#include "dseek/model/gpu_model_impl.h"
#include "dseek/ops/cuda/cuda_check.h"
#include "dseek/train/adamw.h"  // adamw_decay_default

namespace dseek {

using namespace gpu_model_detail;

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
  for (int64_t l = 0; l < nl; l++)
    if (layers[l].router_bias >= 0) {
      bias_off.push_back(layers[l].router_bias);
      bias_n.push_back(w.layers[l].router_bias.numel());
    }
  for (int64_t k = 0; k < cfg.mtp_depth; k++)
    if (mtp[k].block.router_bias >= 0) {
      bias_off.push_back(mtp[k].block.router_bias);
      bias_n.push_back(w.mtp[k].block.router_bias.numel());
    }
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
    if (p.trainable && it != at.end()) n_trainable += p.tensor->numel();
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

// ---------------------------------------------------------------------------------------------
// host <-> device copies

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

// fp32 flat device buffer -> host tensors of the same config (model_params order)
void GpuModel::Impl::flat_to_host(const float* src, ModelWeights& w) const {
  if (w.embed.empty()) weights_allocate(cfg, w);
  std::vector<ParamRef> ps = model_params(cfg, w);
  DSEEK_CHECK(ps.size() == off.size(), "GpuModel: {} tensors, expected {}", ps.size(), off.size());
  DSEEK_CUDA_CHECK(cudaStreamSynchronize(st));
  for (size_t i = 0; i < ps.size(); i++)
    if (off[i] >= 0)
      DSEEK_CUDA_CHECK(cudaMemcpy(ps[i].tensor->ptr(), src + off[i], numel[i] * sizeof(float),
                                  cudaMemcpyDeviceToHost));
}

void GpuModel::Impl::host_to_flat(float* dst, const ModelWeights& w_in) {
  ModelWeights& w = const_cast<ModelWeights&>(w_in);  // model_params only takes addresses
  std::vector<ParamRef> ps = model_params(cfg, w);
  DSEEK_CHECK(ps.size() == off.size(), "GpuModel: {} tensors, expected {}", ps.size(), off.size());
  DSEEK_CUDA_CHECK(cudaStreamSynchronize(st));
  for (size_t i = 0; i < ps.size(); i++) {
    if (off[i] < 0) continue;
    DSEEK_CHECK(ps[i].tensor->numel() == numel[i], "GpuModel: {} has {} elements, expected {}",
                ps[i].name, ps[i].tensor->numel(), numel[i]);
    DSEEK_CUDA_CHECK(cudaMemcpy(dst + off[i], ps[i].tensor->ptr(), numel[i] * sizeof(float),
                                cudaMemcpyHostToDevice));
  }
}

// ---------------------------------------------------------------------------------------------
// public entry points

void GpuModel::download_weights(ModelWeights& w) const {
  impl_->flat_to_host(impl_->master.get(), w);
}

void GpuModel::download_grads(ModelWeights& g) const {
  impl_->flat_to_host(impl_->grad.get(), g);
}

void GpuModel::download_adam_state(ModelWeights& m, ModelWeights& v) const {
  impl_->flat_to_host(impl_->m1.get(), m);
  impl_->flat_to_host(impl_->m2.get(), v);
}

void GpuModel::upload_adam_state(const ModelWeights& m, const ModelWeights& v, int64_t t) {
  impl_->host_to_flat(impl_->m1.get(), m);
  impl_->host_to_flat(impl_->m2.get(), v);
  impl_->t_adam = t;
}

// The router biases only, without a synchronization: fp32 and bf16 copies staged in pinned
// memory, then asynchronous copies on the step's stream (they land before the next forward).
void GpuModel::Impl::upload_router_biases(const ModelWeights& w) {
  std::vector<const Tensor*> ts;
  for (size_t l = 0; l < layers.size(); l++)
    if (layers[l].router_bias >= 0) ts.push_back(&w.layers[l].router_bias);
  for (size_t k = 0; k < mtp.size(); k++)
    if (mtp[k].block.router_bias >= 0) ts.push_back(&w.mtp[k].block.router_bias);
  DSEEK_CHECK(ts.size() == bias_off.size(), "GpuModel: {} router biases, expected {}", ts.size(),
              bias_off.size());
  DSEEK_CUDA_CHECK(cudaEventSynchronize(bias_done));  // the previous upload has left the staging
  auto t_ = tag(GpuOpFamily::GPU_OP_TRANSFER, 0, 6.0 * (double)bias_off.size() * E);
  int64_t pos = 0;
  for (size_t i = 0; i < ts.size(); i++) {
    const int64_t n = bias_n[i];
    DSEEK_CHECK(ts[i]->numel() == n, "GpuModel: a router bias has {} elements, expected {}",
                ts[i]->numel(), n);
    for (int64_t j = 0; j < n; j++) {
      bias_stage[pos + j] = ts[i]->data[j];
      bias_stage_bf[pos + j] = f32_to_bf16(ts[i]->data[j]);
    }
    DSEEK_CUDA_CHECK(cudaMemcpyAsync(master.get() + bias_off[i], bias_stage + pos,
                                     n * sizeof(float), cudaMemcpyHostToDevice, st));
    DSEEK_CUDA_CHECK(cudaMemcpyAsync(wbf.get() + bias_off[i], bias_stage_bf + pos,
                                     n * sizeof(uint16_t), cudaMemcpyHostToDevice, st));
    pos += n;
  }
  DSEEK_CUDA_CHECK(cudaEventRecord(bias_done, st));
}

void GpuModel::upload_router_biases(const ModelWeights& w) {
  impl_->upload_router_biases(w);
}

void GpuModel::upload_weights(const ModelWeights& w) {
  DSEEK_CUDA_CHECK(cudaStreamSynchronize(impl_->st));
  impl_->upload(w, false);
}

}  // namespace dseek

#endif  // DSEEK_HAVE_CUDA
