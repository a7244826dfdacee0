// Pretraining loop (`dseek train`): DeepSeek-V3's recipe, on the CPU (fp32 reference) or one
// GPU (`--device cuda`: bf16 compute, fp32 master weights; the backend is train/train_step.h).
// Per step: grad_accum micro-batches of batch_size x seq_len tokens (forward, backward,
// gradients accumulated), global-norm clipping, the LR schedule, AdamW, then the
// auxiliary-loss-free bias update from the step's expert loads. Every log_every steps a JSON
// line in OUT/metrics.jsonl (keys documented in cli/cmd_plot.cpp); every eval_every steps the
// validation loss; every checkpoint_every steps OUT/checkpoint/ is replaced atomically (hub
// layout + optimizer.safetensors + trainer_state.json + tokenizer.json). --resume continues
// from it exactly: on the CPU the loss sequence equals that of an unbroken run; on the GPU the
// restored state (weights, AdamW moments, biases, data position) is exact, and the losses agree
// up to the order of the device's fp32 atomic adds (measured on an H100: identical to the bit;
// tests/cuda/gpu_train_test.cpp).
#pragma once

#include <cstdint>
#include <string>

#include "dseek/train/train_config.h"

namespace dseek {

struct TrainResult {
  int64_t steps_done = 0;
  double last_loss = 0, last_val_loss = -1;
  bool stopped_by_time = false;
  std::string device;  // "cpu" or "cuda"
};

TrainResult train_run(const TrainConfig& cfg, bool resume);

// Where a run keeps its latest checkpoint (OUT/checkpoint, or OUT/checkpoint.old if a crash
// interrupted the swap). Empty when there is none.
std::string train_checkpoint_dir(const std::string& out_dir);

}  // namespace dseek
