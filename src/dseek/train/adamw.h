// AdamW with decoupled weight decay, exactly as torch.optim.AdamW (amsgrad=False, maximize=False,
// foreach/fused off: the single-tensor path of torch/optim/adamw.py, which on torch >= 2.2 is
// torch/optim/adam.py `_single_tensor_adam` with decoupled_weight_decay=True). Per parameter,
// at step t (1-based, counted by the optimizer) with learning rate lr:
//   p    *= 1 - lr * wd                       (only for parameters the decay predicate accepts)
//   m    += (1 - b1) * (g - m)                (torch: exp_avg.lerp_(g, 1 - b1))
//   v     = b2 * v + (1 - b2) * g * g
//   p    -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// The per-step scalars (1 - lr*wd, lr / bias_correction1, sqrt(bias_correction2)) are computed in
// double and rounded to fp32 once, as torch does with Python floats; the element math is fp32.
// Also here: the global gradient norm and clip_grad_norm (torch.nn.utils.clip_grad_norm_).
// bf16 state (AdamWConfig::state_bf16): m and v are stored rounded to bf16 (round to nearest
// even) after each update; the math stays fp32 (the stored bf16 values widened exactly). v is
// stored as v itself, not sqrt(v): bf16 has fp32's exponent range, so v underflows no earlier
// than in fp32, and sqrt(v) in bf16 would double v's relative rounding error. Limitation (as for
// torch's bf16 optimizer state): with beta2 > ~0.996 the decay b2*v rounds back to v in bf16, so
// v stops shrinking; use fp32 state there. The CPU keeps the bf16 values in fp32 tensors (no
// memory saved on the CPU; values identical to the GPU kernel's bf16 storage).
// Not here: parameter groups with different hyper-parameters, amsgrad, the learning-rate
// schedule (lr_schedule.h), mixed precision / master weights, sharded optimizer state.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dseek/core/tensor.h"
#include "dseek/model/weights.h"

namespace dseek {

struct AdamWConfig {
  float lr = 3e-4f;  // used by step(grads) without an explicit lr
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;
  bool state_bf16 = false;  // m and v rounded to bf16 on store (see the top comment)
};

// Which parameters get weight decay. The default follows common practice (nanoGPT, llm.c,
// DeepSeek): decay matrices (ndim >= 2: projections, experts, embeddings, lm_head), never 1-D
// tensors (RMSNorm weights, biases, the router correction bias).
using AdamWDecayPredicate = std::function<bool(const ParamRef&)>;
bool adamw_decay_default(const ParamRef& p);  // p.shape.size() >= 2

class AdamW {
 public:
  // `params` are the tensors to update (model_params of the model weights). Parameters with
  // trainable == false get no state and are never touched. Throws if a trainable parameter's
  // tensor does not match its declared shape or two parameters share a name.
  AdamW(std::vector<ParamRef> params, AdamWConfig cfg,
        AdamWDecayPredicate decay = adamw_decay_default);

  // One update. `grads` is parallel to the constructor's `params` (same order, same names, same
  // shapes: model_params of a second ModelWeights holding gradients). Gradients of
  // non-trainable parameters are not read and may be empty tensors.
  void step(const std::vector<ParamRef>& grads, float lr);
  void step(const std::vector<ParamRef>& grads) { step(grads, cfg_.lr); }

  int64_t t() const { return t_; }  // number of step() calls done (torch's state["step"])
  const AdamWConfig& config() const { return cfg_; }
  bool decays(size_t i) const { return decay_[i]; }  // weight decay on params()[i]?
  const std::vector<ParamRef>& params() const { return params_; }
  const Tensor& exp_avg(size_t i) const { return m_[i]; }     // m of params()[i]; empty if frozen
  const Tensor& exp_avg_sq(size_t i) const { return v_[i]; }  // v of params()[i]; empty if frozen
  int64_t state_numel() const;  // elements in m and v together (x4 bytes)

  // State file: safetensors with m.<param>, v.<param> (F32, or BF16 with state_bf16) for every
  // trainable parameter and metadata {format: "dseek.adamw", version: "1", step: t, state_dtype};
  // written atomically (PATH.tmp, rename).
  void save(const std::string& path) const;
  // Restores m, v and t. The file must hold exactly this optimizer's trainable parameters with
  // the same shapes; otherwise throws naming the first missing, extra or mis-shaped tensor.
  // Either dtype loads; with state_bf16 the loaded values are rounded to bf16 (a no-op for a
  // BF16 file, so a bf16-state resume is exact).
  void load(const std::string& path);

 private:
  std::vector<ParamRef> params_;
  AdamWConfig cfg_;
  std::vector<bool> decay_;  // per param
  std::vector<Tensor> m_;    // per param: same shape as the param; empty when not trainable
  std::vector<Tensor> v_;    // per param: same shape as the param; empty when not trainable
  int64_t t_ = 0;
};

// The state file of AdamW::save / AdamW::load for moments held elsewhere (the GPU trainer
// downloads its device moments into host tensors). m[i], v[i] belong to params[i]; only
// trainable parameters are written (their m, v must have the parameter's shape) or read.
// cfg.state_bf16 writes BF16 tensors (the values must already be bf16-representable: they are
// rounded again, exactly).
void adamw_state_save(const std::string& path, const std::vector<ParamRef>& params,
                      const std::vector<const Tensor*>& m, const std::vector<const Tensor*>& v,
                      int64_t t, const AdamWConfig& cfg);
// Fills m, v ([params.size()], empty for non-trainable parameters) and returns the step count t.
// Same checks and errors as AdamW::load.
int64_t adamw_state_load(const std::string& path, const std::vector<ParamRef>& params,
                         std::vector<Tensor>* m, std::vector<Tensor>* v);

// Sets every gradient tensor to 0 (the start of an optimizer step; backward passes accumulate).
void grads_zero(std::vector<ParamRef>& grads);

// sqrt(sum of g^2) over all gradients of trainable parameters, accumulated in double in fixed
// blocks, so the result does not depend on the number of OpenMP threads.
double grad_global_norm(const std::vector<ParamRef>& grads);

// torch.nn.utils.clip_grad_norm_(params, max_norm) (norm_type 2): norm = grad_global_norm;
// scale = max_norm / (norm + 1e-6); the gradients are multiplied by scale only when scale < 1.
// Returns the norm before clipping. On purpose unlike torch: a non-finite norm leaves the
// gradients untouched (torch multiplies them by 0 or NaN); the caller should skip the step.
float clip_grad_norm(std::vector<ParamRef>& grads, float max_norm);

}  // namespace dseek
