// GRPO training loop (`dseek grpo`; DeepSeekMath §4.1, R1-Zero), on verifiable tasks with the
// rule-based rewards. Per step:
//   1. P prompts from the task's TRAIN split (seeded by step), G samples each from the current
//      policy (latent-cache sampler, temperature T)  -> the rollout batch, whose sampling policy
//      is pi_old
//   2. rewards (rewards.h) and group-relative advantages (grpo_advantages)
//   3. the frozen reference policy's log-probs of the sampled tokens (when beta > 0)
//   4. `updates` optimizer steps on that batch: per micro-batch a training forward gives the
//      per-token log-probs, grpo_loss_* the loss and dloss/dlogp (old_logp = the first update's
//      log-probs, detached, as pi_old == pi_theta there), token_logprobs_backward and the model
//      backward accumulate the gradient; clip; AdamW
//   5. metrics: reward mean/std, accuracy, format rate, completion length, KL (k3), clip
//      fractions, entropy, loss, grad norm; every eval_every steps the held-out TEST split:
//      pass@1 (greedy), format; pass@k at the first and the last evaluation
// OUT/metrics.jsonl, OUT/samples.jsonl (a few completions per eval), OUT/final/ (+ tokenizer).
// Micro-batching is exact: each micro-batch's loss is scaled by its share of the batch's
// normalizer (sequences, or tokens for the token-mean loss), so the gradient equals the full
// batch's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dseek/posttrain/grpo_loss.h"
#include "dseek/posttrain/prompt_format.h"
#include "dseek/posttrain/rewards.h"
#include "dseek/posttrain/tasks.h"
#include "dseek/train/adamw.h"

namespace dseek {

struct GrpoConfig {
  std::string model;  // policy to start from (also the frozen reference)
  std::string out_dir = "runs/grpo";
  std::string tokenizer;  // default: the model folder's
  std::string task = "add";
  TaskOptions task_options;
  PromptFormat prompt;
  uint64_t seed = 0;
  int64_t steps = 100;
  double time_limit_s = 0;  // > 0: stop after this much time (final checkpoint and eval kept)
  int prompts_per_step = 16;
  int group_size = 8;
  int64_t max_new_tokens = 64;
  float temperature = 1.0f, top_p = 1.0f;
  int updates = 1;           // optimizer steps per rollout batch (mu)
  int64_t micro_batch = 32;  // sequences per forward/backward
  double lr = 1e-4;
  int64_t warmup_steps = 0;
  AdamWConfig optimizer = {
      .lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.0f};
  float grad_clip = 1.0f;
  GrpoLossConfig loss;
  GrpoScaling scaling = GrpoScaling::GRPO_SCALING_STD;
  RewardWeights rewards;
  int64_t eval_every = 10;
  int eval_n = 200;
  int eval_k = 8;
  float eval_temperature = -1.0f;  // < 0: the rollout temperature
  int64_t checkpoint_every = 0;    // 0 = only at the end
  int threads = 0;
};

struct GrpoEvalPoint {
  int64_t step = 0;
  double pass1 = 0, format = 0, passk = -1;
  std::vector<std::string> questions, completions;  // the first few greedy answers
  std::vector<bool> correct;
};

struct GrpoResult {
  int64_t steps = 0;
  GrpoEvalPoint first, last;
  std::string final_dir;
};

GrpoResult grpo_run(const GrpoConfig& c);

}  // namespace dseek
