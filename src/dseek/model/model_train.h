// The model's training pass on the CPU: a forward that keeps every activation the backward
// needs, the next-token cross-entropy (fused with its gradient on the logits), and the
// hand-written backward -- the same per-layer list of op calls, reversed (llm.c style).
//   loss = CE(logits, targets) averaged over non-ignored targets (+ MoE balance losses)
// Gradient convention: parameter gradients ACCUMULATE into `grads` (zero them per optimizer
// step; accumulate micro-batches by calling forward+backward repeatedly with loss_scale).
#pragma once

#include <cstdint>
#include <vector>

#include "dseek/model/mla.h"
#include "dseek/model/model.h"
#include "dseek/model/moe.h"

namespace dseek {

struct TrainOptions {
  float loss_scale = 1.0f;  // gradient of (loss_scale * loss); e.g. 1 / grad_accum_steps
  float mtp_lambda = 0.3f;  // L = L_main + (lambda / D) sum_k L_mtp_k (when the model has MTP)
  float seq_balance_alpha = 0.0f;  // V3's complementary sequence-wise balance loss
  float aux_balance_alpha = 0.0f;  // classic expert-level auxiliary loss
  bool run_mtp = true;             // false: skip the MTP modules (no MTP loss, zero MTP gradients)
  // false (default): dlogits = d(loss_scale * mean CE)/dlogits, computed in the forward.
  // true: the forward leaves the raw LOGITS in acts.dlogits and fills acts.token_logp /
  // token_entropy; the caller writes its own gradient into acts.dlogits before the backward
  // (RL objectives, distillation: see posttrain/token_logprobs.h). ce_loss is still reported.
  bool defer_head_grad = false;
  // defer_head_grad only: the logits left in acts.dlogits (and token_logp / token_entropy) are
  // those of softmax(logits / head_temperature), the policy a sampler at that temperature draws
  // from; the caller's gradient is then w.r.t. the scaled logits and must be divided by the
  // temperature before the backward (d/dlogits = (1/T) d/d(logits/T)).
  float head_temperature = 1.0f;
};

struct LayerActs {
  std::vector<float> h_in;   // [N, C] residual stream entering the layer
  std::vector<float> x1;     // [N, C] RMSNorm(h_in)
  std::vector<float> rstd1;  // [N]
  std::vector<float> h_mid;  // [N, C] after the attention residual
  std::vector<float> x2;     // [N, C] RMSNorm(h_mid)
  std::vector<float> rstd2;  // [N]
  MlaActs attn;
  FfnActs ffn;  // dense layers
  MoeActs moe;  // MoE layers
};

// One MTP depth k (1-based): at position i the input token is x_{i+k} (= inputs[i+k]) and the
// target x_{i+k+1} (= targets[i+k]); positions with i + k >= T have no target.
struct MtpActs {
  std::vector<int32_t> tokens, targets;  // [N]
  std::vector<float> h_prev;  // [N, C] h^{k-1}: the main model's post-norm hidden (k = 1) or
                              //         the previous depth's block output
  std::vector<float> emb;     // [N, C] Emb(tokens)
  std::vector<float> cat;     // [N, 2C] [RMSNorm_e(emb) | RMSNorm_h(h_prev)]
  std::vector<float> rstd_e, rstd_h;  // [N]
  LayerActs block;
  std::vector<float> h_out;     // [N, C] block output h^k
  std::vector<float> hn;        // [N, C] RMSNorm_head(h^k)
  std::vector<float> rstd_out;  // [N]
  std::vector<float> dlogits;   // [N, V]
  double loss = 0.0;            // mean CE of this depth
  int64_t n_targets = 0;
};

struct TrainActs {
  int64_t B = 0, T = 0;
  std::vector<int32_t> inputs;  // [B*T]
  std::vector<LayerActs> layers;
  std::vector<float> h_final;        // [N, C] before the final norm
  std::vector<float> hn;             // [N, C] after it
  std::vector<float> rstd_final;     // [N]
  std::vector<float> dlogits;        // [N, V] gradient of the scaled loss w.r.t. the logits
                                     //        (the logits themselves with defer_head_grad)
  std::vector<float> token_logp;     // [N] log p(target) (0 where ignored); defer_head_grad only
  std::vector<float> token_entropy;  // [N] entropy of the predicted distribution; same
  double ce_loss = 0.0;              // mean cross-entropy over counted targets
  double balance_loss = 0.0;         // sum over MoE layers (already weighted by alpha)
  int64_t n_targets = 0;
  std::vector<std::vector<int64_t>> expert_load;  // per layer ([E] for MoE layers, else empty)
  std::vector<MtpActs> mtp;                       // one per MTP depth (empty without MTP)
  double mtp_loss_total = 0.0;                    // (lambda / D) sum_k mtp[k].loss
  TrainOptions opt;
};

// inputs, targets: [B, T]; a target < 0 is ignored. Returns ce_loss + balance_loss +
// mtp_loss_total (the MTP modules run when the weights have them, cfg.mtp_depth > 0, and
// opt.run_mtp).
double model_train_forward(const Model& m, const int32_t* inputs, const int32_t* targets, int64_t B,
                           int64_t T, TrainActs& acts, const TrainOptions& opt = {});
void model_train_backward(const Model& m, const TrainActs& acts, ModelWeights& grads);

}  // namespace dseek
