// GpuModel: the whole model's training step on one CUDA device (bf16 storage, fp32 accumulation,
// fp32 master weights, gradients and AdamW state), the GPU twin of model/model_train.h +
// train/adamw.h. Same graph and op order as the CPU: embedding, per layer RMSNorm -> MLA ->
// residual -> RMSNorm -> dense FFN or MoE -> residual, final norm, LM head + cross-entropy
// (chunked, ops/cuda/lm_head_ce), the MTP modules (depth D), the MoE balance losses
// (sequence-wise and expert-level, on the device), the router's per-expert load counts, the
// global gradient norm, clipping and the fused AdamW step.
//   Weights: one flat fp32 buffer (master) + its bf16 copy (what the GEMMs read) + fp32 grads,
//   m and v, every tensor at a fixed 16-byte-aligned offset; each layer's expert matrices are
//   laid out stacked ([E, 2I, C] gate|up, [E, C, I] down) so the grouped GEMMs read them in place.
//   Names and order are model_params(cfg, w)'s: upload/download go through a CPU Model.
//   Activations: sized for B x T tokens at construction (the batch shape is fixed).
// Limits (dseek::Error otherwise): no attention/MLP biases; flash_attn's head dims
// ((Dn+Dr, Dv) in flash_attn_supported); C, I, moe I multiples of 8.
// Without CUDA (build or device) the header still compiles: gpu_available() is false and the
// constructor throws "built without CUDA".
// Files: gpu_model.cpp (construction, the step, AdamW), gpu_model_params.cpp (layout, uploads,
// downloads), gpu_model_forward.cpp, gpu_model_backward.cpp, gpu_model_impl.h (the inside they
// share), gpu_model_kernels.cu (glue kernels), gpu_model_profile.h (per-family device time).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dseek/model/model.h"
#include "dseek/model/model_train.h"  // TrainOptions

namespace dseek {

// A usable CUDA device (and a CUDA build); why (may be null) says why not.
bool gpu_available(std::string* why = nullptr);

struct GpuStepStats {
  double loss = 0.0;             // ce + balance + mtp_total (what model_train_forward returns)
  double ce_loss = 0.0;          // mean CE of the main head
  double balance_loss = 0.0;     // sum over MoE layers (weighted by alpha)
  std::vector<double> mtp_loss;  // per depth: mean CE
  double mtp_loss_total = 0.0;   // (lambda / D) sum_k mtp_loss[k]
  int64_t n_targets = 0;
  std::vector<std::vector<int64_t>> expert_load;  // per main layer ([E] for MoE, else empty)
};

struct GpuAdamW {
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.1f;
};

class GpuProfiler;  // gpu_model_profile.h

class GpuModel {
 public:
  // Uploads m's weights (fp32 master + bf16 copy) and allocates activations for B x T tokens.
  GpuModel(const Model& m, int64_t B, int64_t T, const GpuAdamW& hyper = {});
  ~GpuModel();
  GpuModel(const GpuModel&) = delete;
  GpuModel& operator=(const GpuModel&) = delete;

  const ModelConfig& config() const;
  int64_t batch() const;
  int64_t seq_len() const;
  int64_t n_params() const;     // trainable + non-trainable elements (main + MTP)
  int64_t n_trainable() const;  // trainable elements (what AdamW updates)

  void zero_grads();
  // One micro-batch (inputs, targets on the host, [B, T]; target < 0 ignored): forward and
  // backward, parameter gradients ACCUMULATE (scaled by opt.loss_scale). Blocks until the step's
  // losses are on the host. opt.defer_head_grad is not supported.
  GpuStepStats forward_backward(const int32_t* inputs, const int32_t* targets,
                                const TrainOptions& opt = {});
  // Loss only (validation): the main model's forward on one [B, T] batch (targets < 0 ignored,
  // e.g. padding rows), no MTP, no balance losses; gradients and AdamW state are not touched.
  // Returns ce_loss (mean over the n_targets targets) and the expert loads.
  GpuStepStats evaluate(const int32_t* inputs, const int32_t* targets);
  // sqrt(sum of g^2) over every trainable gradient (fp64 partials summed in a fixed order).
  double grad_norm();
  // clip_grad_norm (max_norm > 0: scale = max_norm / (norm + 1e-6) when < 1, as the CPU) folded
  // into the AdamW step; lr for this step; the step count t advances. Returns the norm before
  // clipping. A non-finite norm skips the update (returns it; the caller should stop).
  double clip_and_step(float lr, float max_norm);
  int64_t adam_step_count() const;

  // Weights and gradients back to the host, into tensors of the same config (allocated when
  // empty). download_weights writes the fp32 master copies.
  void download_weights(ModelWeights& w) const;
  void download_grads(ModelWeights& g) const;
  // AdamW state (m, v: fp32, laid out as the weights: model_params order; non-trainable tensors
  // are zero) for checkpoints, and its restore with the step count t (resume).
  void download_adam_state(ModelWeights& m, ModelWeights& v) const;
  void upload_adam_state(const ModelWeights& m, const ModelWeights& v, int64_t t);
  // Re-upload every router's e_score_correction_bias (after the host's bias balancing):
  // asynchronous on the step's stream (pinned staging), in effect from the next forward.
  void upload_router_biases(const ModelWeights& w);
  // Re-upload all weights (master + bf16); AdamW state untouched.
  void upload_weights(const ModelWeights& w);

  // Tag every op enqueued from now on for p (null: stop); see gpu_model_profile.h.
  void set_profiler(GpuProfiler* p);

  // Bytes this object holds on the device (weights, optimizer state, activations, workspaces).
  int64_t device_bytes() const;
  void synchronize() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace dseek
