// The CPU backend of the training loop (train_step.h): model_train_forward / _backward into fp32
// host gradients, global-norm clipping and AdamW on the host (train/adamw.h). Also the pieces
// the loop shares across backends: device resolution, the validation loss, splitting rows.
#include "dseek/train/train_step.h"

#include <cmath>

#include "dseek/core/error.h"
#include "dseek/model/gpu_model.h"        // gpu_available
#include "dseek/ops/cpu/cross_entropy.h"  // cross_entropy_forward_backward

namespace dseek {

// ---------------------------------------------------------------------------------------------
// the CPU backend

namespace {

class CpuTrainStep final : public TrainStep {
 public:
  CpuTrainStep(Model& m, int64_t batch, int64_t seq, const AdamWConfig& opt)
      : m_(m), B_(batch), T_(seq), opt_(model_params(m.cfg, m.w), opt) {
    weights_allocate(m.cfg, g_);
    grads_ = model_params(m.cfg, g_);
  }
  const char* device() const override { return "cpu"; }
  void zero_grads() override { grads_zero(grads_); }
  MicroBatchStats forward_backward(const int32_t* in, const int32_t* tgt,
                                   const TrainOptions& o) override {
    model_train_forward(m_, in, tgt, B_, T_, acts_, o);
    model_train_backward(m_, acts_, g_);
    MicroBatchStats s;
    s.ce_loss = acts_.ce_loss;
    s.balance_loss = acts_.balance_loss;
    for (const auto& k : acts_.mtp) s.mtp_loss.push_back(k.loss);
    s.expert_load = acts_.expert_load;
    return s;
  }
  double clip_and_step(float lr, float max_norm) override {
    const float gnorm =
        max_norm > 0 ? clip_grad_norm(grads_, max_norm) : (float)grad_global_norm(grads_);
    opt_.step(grads_, lr);
    return gnorm;
  }
  void router_biases_changed() override {}  // the forward reads m.w directly
  double eval_loss_sum(const int32_t* in, const int32_t* tgt, int64_t rows,
                       int64_t* count) override {
    Tensor logits = m_.forward(in, rows, T_);
    return cross_entropy_forward_backward(nullptr, logits.ptr(), tgt, logits.dim(0), logits.dim(1),
                                          0.0f, count);
  }
  void sync_weights_to_host() override {}
  void save_optimizer(const std::string& path) override { opt_.save(path); }
  void load_optimizer(const std::string& path) override { opt_.load(path); }

 private:
  Model& m_;
  int64_t B_, T_;
  ModelWeights g_;
  std::vector<ParamRef> grads_;
  AdamW opt_;
  TrainActs acts_;
};

}  // namespace

std::unique_ptr<TrainStep> train_step_cpu(Model& m, int64_t batch, int64_t seq,
                                          const AdamWConfig& opt) {
  return std::make_unique<CpuTrainStep>(m, batch, seq, opt);
}

// ---------------------------------------------------------------------------------------------
// shared pieces

std::string train_device_resolve(const std::string& device) {
  if (device == "cpu") return "cpu";
  std::string why;
  const bool gpu = gpu_available(&why);
  if (device == "auto") return gpu ? "cuda" : "cpu";
  DSEEK_CHECK(device == "cuda", "device must be cpu, cuda or auto, got '{}'", device);
  DSEEK_CHECK(gpu, "--device cuda: no usable CUDA device ({})", why);
  return "cuda";
}

void train_split_rows(const std::vector<int32_t>& rows, int64_t n, int64_t seq,
                      std::vector<int32_t>* in, std::vector<int32_t>* tgt) {
  in->resize(n * seq);
  tgt->resize(n * seq);
  for (int64_t b = 0; b < n; b++)
    for (int64_t t = 0; t < seq; t++) {
      (*in)[b * seq + t] = rows[b * (seq + 1) + t];
      (*tgt)[b * seq + t] = rows[b * (seq + 1) + t + 1];
    }
}

double train_eval_loss(TrainStep& s, TokenLoader& val, int64_t batch, int64_t seq,
                       int64_t batches) {
  val.reset();
  std::vector<int32_t> rows, in, tgt;
  double sum = 0;
  int64_t count = 0;
  for (int64_t i = 0; i < batches; i++) {
    const int got = val.next_batch((int)batch, (int)seq, &rows);
    if (got == 0) break;
    train_split_rows(rows, got, seq, &in, &tgt);
    int64_t n = 0;
    sum += s.eval_loss_sum(in.data(), tgt.data(), got, &n);
    count += n;
  }
  return count ? sum / count : NAN;
}

}  // namespace dseek
