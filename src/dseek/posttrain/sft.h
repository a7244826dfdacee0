// Supervised fine-tuning (`dseek sft`): R1's cold start and the SFT stage after rejection
// sampling. Chat JSONL (sft_data.h) -> loss on assistant tokens only; AdamW with warmup + cosine
// decay, global-norm clipping, epochs over shuffled examples (seeded), a held-out split for the
// validation loss, metrics.jsonl (step, loss, val_loss, lr, grad_norm, tokens_per_s, kl when
// distilling), and OUT/final/ (hub layout + tokenizer.json) written atomically at the end.
// Optional logit distillation: with a teacher model of the same vocabulary the loss becomes
// (1 - alpha) CE + alpha tau^2 KL(teacher || student) on the same tokens (distill_loss.h).
#pragma once

#include <cstdint>
#include <string>

#include "dseek/tokenizer/chat_template.h"
#include "dseek/train/adamw.h"

namespace dseek {

struct SftConfig {
  std::string model;  // model folder to start from
  std::string data;   // chat JSONL
  std::string out_dir = "runs/sft";
  std::string tokenizer;  // default: the model folder's tokenizer.json
  ChatTemplate chat = ChatTemplate::CHAT_DEEPSEEK_V3;
  int64_t epochs = 3;
  int64_t steps = 0;  // > 0: this many optimizer steps instead of epochs
  int64_t batch_size = 16;
  int64_t max_len = 512;
  double lr = 1e-3, min_lr_ratio = 0.1;
  int64_t warmup_steps = 10;
  AdamWConfig optimizer;  // weight_decay etc.
  float grad_clip = 1.0f;
  float mtp_lambda = 0.1f;     // keeps the MTP module trained when the model has one (0 = skip)
  double val_fraction = 0.05;  // examples held out for the validation loss (at least 1 if > 0)
  uint64_t seed = 0;
  std::string teacher;  // model folder; empty = no logit distillation
  float distill_alpha = 0.5f, distill_tau = 1.0f;
  int64_t log_every = 10;
  int threads = 0;
};

struct SftResult {
  int64_t steps = 0, examples = 0, trained_tokens = 0;
  double first_loss = 0, last_loss = 0, val_loss = -1;
  std::string final_dir;
};

SftResult sft_run(const SftConfig& c);

}  // namespace dseek
