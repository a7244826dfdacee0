// Pretraining loop (`dseek train`): DeepSeek-V3's recipe at CPU scale.
// Per step: grad_accum micro-batches of batch_size x seq_len tokens (forward, backward,
// gradients accumulated), global-norm clipping, the LR schedule, AdamW, then the
// auxiliary-loss-free bias update from the step's expert loads. Every log_every steps a JSON
// line in OUT/metrics.jsonl (keys documented in cli/cmd_plot.cpp); every eval_every steps the
// validation loss; every checkpoint_every steps OUT/checkpoint/ is replaced atomically (hub
// layout + optimizer.safetensors + trainer_state.json + tokenizer.json). --resume continues
// from it exactly: on the CPU the loss sequence equals that of an unbroken run.
#pragma once

#include <cstdint>
#include <string>

#include "dseek/train/train_config.h"

namespace dseek {

struct TrainResult {
  int64_t steps_done = 0;
  double last_loss = 0, last_val_loss = -1;
  bool stopped_by_time = false;
};

TrainResult train_run(const TrainConfig& cfg, bool resume);

// Where a run keeps its latest checkpoint (OUT/checkpoint, or OUT/checkpoint.old if a crash
// interrupted the swap). Empty when there is none.
std::string train_checkpoint_dir(const std::string& out_dir);

}  // namespace dseek
