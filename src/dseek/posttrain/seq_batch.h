// Masked token sequences (SFT examples, prompt + completion rollouts) packed into a padded
// [B, T] training batch: row b holds sequence b's ids[0 .. len-1) as inputs and, as targets,
// ids[t+1] where mask[t+1] = 1 and -1 (ignored) elsewhere; T = the longest (len - 1), rows padded
// with pad_id inputs and -1 targets (causal attention: padding after a sequence never changes
// its logits). Sequences longer than max_len tokens are cut to their first max_len.
#pragma once

#include <cstdint>
#include <vector>

#include "dseek/posttrain/sft_data.h"

namespace dseek {

struct SeqBatch {
  int64_t B = 0, T = 0;
  std::vector<int32_t> inputs, targets;  // [B, T]
  int64_t n_targets = 0;                 // targets >= 0
};

SeqBatch seq_batch(const std::vector<const SftExample*>& seqs, int32_t pad_id, int64_t max_len);

}  // namespace dseek
