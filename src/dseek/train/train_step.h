// TrainStep: the backend of the training loop (train/trainer.cpp). The loop owns the data, the
// LR schedule, aux-loss-free bias balancing (on the host Model's router biases), metrics,
// evaluation and checkpoints; a backend owns the gradients and the optimizer state:
//   cpu   the fp32 reference: model/model_train.h forward/backward, train/adamw.h (exact resume:
//         the same loss sequence as an unbroken run, bit for bit)
//   cuda  model/gpu_model.h: bf16 storage and GEMMs, fp32 accumulation, fp32 master weights,
//         gradients and AdamW moments on the device. The host Model's weights are stale between
//         sync_weights_to_host() calls, except the router biases, which the loop updates on the
//         host and hands over with router_biases_changed(). Checkpoints hold the fp32 master
//         weights and AdamW moments, in the same files as the CPU's (either backend resumes
//         either's checkpoint).
// One step: zero_grads, forward_backward per micro-batch (gradients accumulate, scaled by
// TrainOptions::loss_scale), clip_and_step.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dseek/io/token_shards.h"    // TokenLoader
#include "dseek/model/model.h"        // Model
#include "dseek/model/model_train.h"  // TrainOptions
#include "dseek/train/adamw.h"        // AdamWConfig

namespace dseek {

struct MicroBatchStats {
  double ce_loss = 0, balance_loss = 0;           // main head's mean CE; balance losses
  std::vector<double> mtp_loss;                   // [mtp depth] mean CE per depth
  std::vector<std::vector<int64_t>> expert_load;  // per main layer ([E] for MoE, else empty)
};

class TrainStep {
 public:
  virtual ~TrainStep() = default;
  virtual const char* device() const = 0;  // "cpu" or "cuda"

  virtual void zero_grads() = 0;
  // in, tgt: [batch, seq] on the host (the shape given at construction; target < 0 ignored)
  virtual MicroBatchStats forward_backward(const int32_t* in, const int32_t* tgt,
                                           const TrainOptions& o) = 0;
  // global-norm clipping (max_norm > 0) and one AdamW step at lr; the norm before clipping
  virtual double clip_and_step(float lr, float max_norm) = 0;
  // The host Model's router biases were updated (bias balancing): use them from now on.
  virtual void router_biases_changed() = 0;
  // Validation: the main head's summed CE over rows x seq tokens (rows <= batch; target < 0
  // ignored); *count = targets counted. No MTP, no balance losses, gradients untouched.
  virtual double eval_loss_sum(const int32_t* in, const int32_t* tgt, int64_t rows,
                               int64_t* count) = 0;
  // The host Model's weights = the backend's (before checkpoints and text samples).
  virtual void sync_weights_to_host() = 0;
  // AdamW state file (train/adamw.h format: m, v, step), written / restored.
  virtual void save_optimizer(const std::string& path) = 0;
  virtual void load_optimizer(const std::string& path) = 0;
};

// m must outlive the backend (the backend keeps a reference; the loop updates its biases).
std::unique_ptr<TrainStep> train_step_cpu(Model& m, int64_t batch, int64_t seq,
                                          const AdamWConfig& opt);
std::unique_ptr<TrainStep> train_step_gpu(Model& m, int64_t batch, int64_t seq,
                                          const AdamWConfig& opt);  // train_step_gpu.cpp

// "cpu" | "cuda" | "auto" -> "cpu" or "cuda" ("auto": cuda when gpu_available()). "cuda" without
// a usable device (or a CUDA build) is a dseek::Error saying why.
std::string train_device_resolve(const std::string& device);

// Mean CE of the main head over the first `batches` batches of the loader (reset first): the
// validation loss the loop logs. NaN when the loader yields nothing.
double train_eval_loss(TrainStep& s, TokenLoader& val, int64_t batch, int64_t seq, int64_t batches);

// rows [n, seq + 1] -> inputs, targets [n, seq] (the next token)
void train_split_rows(const std::vector<int32_t>& rows, int64_t n, int64_t seq,
                      std::vector<int32_t>* in, std::vector<int32_t>* tgt);

}  // namespace dseek
