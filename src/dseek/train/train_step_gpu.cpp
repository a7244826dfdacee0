// The CUDA backend of the training loop (train_step.h) over GpuModel (model/gpu_model.h): the
// whole step on the device; the host sees the losses and expert loads of each micro-batch, the
// gradient norm, and the weights / AdamW moments when a checkpoint or a sample needs them.
// Validation batches shorter than the model's fixed batch are padded with ignored rows.
// Builds without CUDA compile this too: GpuModel's constructor then throws "built without CUDA"
// (train_device_resolve refuses "cuda" before that).
#include <algorithm>

#include "dseek/core/error.h"
#include "dseek/model/gpu_model.h"
#include "dseek/train/train_step.h"

namespace dseek {

namespace {

class GpuTrainStep final : public TrainStep {
 public:
  GpuTrainStep(Model& m, int64_t batch, int64_t seq, const AdamWConfig& opt)
      : m_(m),
        B_(batch),
        T_(seq),
        opt_(opt),
        gm_(m, batch, seq, GpuAdamW{opt.beta1, opt.beta2, opt.eps, opt.weight_decay}) {}
  const char* device() const override { return "cuda"; }
  void zero_grads() override { gm_.zero_grads(); }
  MicroBatchStats forward_backward(const int32_t* in, const int32_t* tgt,
                                   const TrainOptions& o) override {
    GpuStepStats g = gm_.forward_backward(in, tgt, o);
    MicroBatchStats s;
    s.ce_loss = g.ce_loss;
    s.balance_loss = g.balance_loss;
    s.mtp_loss = std::move(g.mtp_loss);
    s.expert_load = std::move(g.expert_load);
    return s;
  }
  double clip_and_step(float lr, float max_norm) override {
    return gm_.clip_and_step(lr, max_norm);
  }
  void router_biases_changed() override { gm_.upload_router_biases(m_.w); }
  double eval_loss_sum(const int32_t* in, const int32_t* tgt, int64_t rows,
                       int64_t* count) override {
    DSEEK_CHECK(rows > 0 && rows <= B_, "eval batch of {} rows, the GPU model holds {}", rows, B_);
    const int32_t* pin = in;
    const int32_t* ptgt = tgt;
    if (rows < B_) {  // pad with ignored rows
      pin_.assign(B_ * T_, 0);
      ptgt_.assign(B_ * T_, -1);
      std::copy(in, in + rows * T_, pin_.begin());
      std::copy(tgt, tgt + rows * T_, ptgt_.begin());
      pin = pin_.data();
      ptgt = ptgt_.data();
    }
    const GpuStepStats s = gm_.evaluate(pin, ptgt);
    *count = s.n_targets;
    return s.ce_loss * (double)s.n_targets;
  }
  void sync_weights_to_host() override { gm_.download_weights(m_.w); }
  void save_optimizer(const std::string& path) override {
    ModelWeights mw, vw;
    gm_.download_adam_state(mw, vw);
    std::vector<ParamRef> pm = model_params(m_.cfg, mw), pv = model_params(m_.cfg, vw);
    std::vector<const Tensor*> m(pm.size()), v(pv.size());
    for (size_t i = 0; i < pm.size(); i++) {
      m[i] = pm[i].tensor;
      v[i] = pv[i].tensor;
    }
    adamw_state_save(path, model_params(m_.cfg, m_.w), m, v, gm_.adam_step_count(), opt_);
  }
  void load_optimizer(const std::string& path) override {
    std::vector<Tensor> m, v;
    const int64_t t = adamw_state_load(path, model_params(m_.cfg, m_.w), &m, &v);
    ModelWeights mw, vw;
    weights_allocate(m_.cfg, mw);
    weights_allocate(m_.cfg, vw);
    std::vector<ParamRef> pm = model_params(m_.cfg, mw), pv = model_params(m_.cfg, vw);
    for (size_t i = 0; i < pm.size(); i++) {
      if (m[i].empty()) continue;  // not trainable: zero
      *pm[i].tensor = std::move(m[i]);
      *pv[i].tensor = std::move(v[i]);
    }
    gm_.upload_adam_state(mw, vw, t);
  }

 private:
  Model& m_;
  int64_t B_, T_;
  AdamWConfig opt_;
  GpuModel gm_;
  std::vector<int32_t> pin_, ptgt_;
};

}  // namespace

std::unique_ptr<TrainStep> train_step_gpu(Model& m, int64_t batch, int64_t seq,
                                          const AdamWConfig& opt) {
  return std::make_unique<GpuTrainStep>(m, batch, seq, opt);
}

}  // namespace dseek
