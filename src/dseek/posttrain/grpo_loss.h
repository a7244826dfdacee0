// The GRPO objective (DeepSeekMath §4.1, R1-Zero): group-relative advantages, the per-token
// clipped-ratio loss with a k3 KL penalty to the reference policy, its three aggregations, and
// the hand-written gradient w.r.t. the current policy's per-token log-probs. Reference, CPU,
// plain loops, double accumulation. Not here: sampling, rewards (rewards_*.h), the model's
// log-prob forward/backward, the optimizer step.
//
// Advantages, per group of G consecutive rewards r_1..r_G (the G samples of one prompt):
//   mean = sum(r) / G,  std = sqrt(sum((r - mean)^2) / (G - 1))      (UNBIASED, as TRL's
//                                                                      torch.std; needs G >= 2)
//   GRPO_SCALING_STD:  A_i = (r_i - mean) / (std + eps)               (DeepSeekMath, TRL)
//   GRPO_SCALING_NONE: A_i = r_i - mean                               (Dr. GRPO: no std division)
// All-equal rewards give A = 0 in both (with eps = 0 too: 0 / 0 is defined as 0).
//
// Per completion token t of sequence s (mask_t = 1), with A = A_s:
//   ratio = exp(logp - old_logp)
//   o     = min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A)
//   k3    = exp(ref_logp - logp) - (ref_logp - logp) - 1             (>= 0, unbiased KL estimate)
//   l     = -(o - beta * k3)
// Aggregation (n_s = completion tokens of sequence s, S = sequences, L = max_completion_length):
//   GRPO_LOSS_SEQUENCE_MEAN: loss = 1/S * sum_s (1 / max(n_s, 1)) * sum_{t in s} l_t (DeepSeekMath)
//   GRPO_LOSS_TOKEN_MEAN:    loss = sum_t l_t / max(sum_s n_s, 1)        (DAPO; pair with
//                                                                         eps_high > eps_low)
//   GRPO_LOSS_DR_GRPO:       loss = sum_t l_t / (S * L)                  (Dr. GRPO)
// so loss = sum_t w_t * l_t with a per-token weight w_t fixed by the batch shape.
// Gradient (activation grad: dlogp is overwritten; masked tokens get 0):
//   d ratio / d logp = ratio
//   d o / d logp     = 0 where the clipped branch is active, i.e. (A > 0 and ratio > 1 + eps_high)
//                      or (A < 0 and ratio < 1 - eps_low) (the min picks the constant clipped
//                      term); ratio * A elsewhere (ties at the boundary: both branches have the
//                      same value and slope)
//   d k3 / d logp    = 1 - exp(ref_logp - logp)
//   dloss / dlogp_t  = w_t * (-(d o / d logp) + beta * (1 - exp(ref_logp - logp)))
// Reference: huggingface/trl trl/trainer/grpo_trainer.py `_compute_loss` (loss_type "grpo",
// "bnpo", "dr_grpo"; is_low_clipped / is_high_clipped) and `_generate_and_score_completions`
// (advantages). Same formulas; differences on purpose: std always unbiased (TRL too), a G = 1
// group with std scaling is an error instead of NaN, masks must be 0/1, masked tokens' values
// are never read (may be NaN).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace dseek {

enum class GrpoScaling { GRPO_SCALING_STD, GRPO_SCALING_NONE };

enum class GrpoLossKind { GRPO_LOSS_SEQUENCE_MEAN, GRPO_LOSS_TOKEN_MEAN, GRPO_LOSS_DR_GRPO };

// rewards: [B] with B = num_groups * group_size, each group's samples consecutive. Returns [B].
// Throws dseek::Error if group_size < 1 (< 2 with GRPO_SCALING_STD), group_size does not divide
// B, a reward is not finite, or eps < 0.
std::vector<float> grpo_advantages(const std::vector<float>& rewards, int group_size,
                                   GrpoScaling scaling, float eps = 1e-4f);

struct GrpoLossConfig {
  GrpoLossKind kind = GrpoLossKind::GRPO_LOSS_SEQUENCE_MEAN;
  float eps_low = 0.2f;   // lower clip: ratio >= 1 - eps_low; in [0, 1)
  float eps_high = 0.2f;  // upper clip: ratio <= 1 + eps_high; >= 0 (DAPO clip-higher: 0.28)
  float beta = 0.04f;     // KL weight (DeepSeekMath 0.04); 0 = no KL, ref_logp may be empty
  int64_t max_completion_length = 0;  // L of GRPO_LOSS_DR_GRPO (> 0 there; unused otherwise)
};

// One batch of S ragged sequences packed back to back: N = sum(seq_lens) tokens; the tokens of
// sequence s are [sum(seq_lens[0..s)), sum(seq_lens[0..s])).
struct GrpoLossInputs {
  std::span<const float> logp;        // [N] log-prob of each sampled token, current policy
  std::span<const float> old_logp;    // [N] same, sampling policy (detached)
  std::span<const float> ref_logp;    // [N] same, frozen reference; may be empty if beta == 0
  std::span<const float> mask;        // [N] 1 = completion token in the loss, 0 = not (pad/prompt)
  std::span<const int64_t> seq_lens;  // [S] tokens per sequence (>= 0), sums to N
  std::span<const float> advantages;  // [S] one advantage per sequence (grpo_advantages)
};

struct GrpoLossStats {
  double loss = 0.0;            // the aggregated loss above
  double clip_frac_low = 0.0;   // fraction of completion tokens with A < 0, ratio < 1 - eps_low
  double clip_frac_high = 0.0;  // fraction of completion tokens with A > 0, ratio > 1 + eps_high
  double kl_mean = 0.0;         // mean k3 over completion tokens (0 when ref_logp is empty)
  double ratio_mean = 0.0;      // mean ratio over completion tokens
  int64_t num_tokens = 0;       // completion tokens (sum of mask)
};

// Loss and stats. Throws dseek::Error on size mismatches, negative lengths, seq_lens not summing
// to N, a mask value other than 0/1, bad eps/beta, missing ref_logp with beta > 0, L <= 0 for
// Dr. GRPO or a sequence with more than L completion tokens, a non-finite value on a completion
// token.
GrpoLossStats grpo_loss_forward(const GrpoLossInputs& in, const GrpoLossConfig& cfg);

// dloss/dlogp: [N], overwritten (0 on masked tokens). Same checks as the forward.
void grpo_loss_backward(std::span<float> dlogp, const GrpoLossInputs& in,
                        const GrpoLossConfig& cfg);

}  // namespace dseek
