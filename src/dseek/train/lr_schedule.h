// Learning-rate schedules: lr(step) for step = 0, 1, 2, ... (the index of the optimizer update
// about to be done; the first update uses lr(0)). W = warmup_steps, N = total_steps.
//
//   warmup (all kinds), step < W:   lr = max_lr * (step + 1) / W
//       (nanoGPT / llm.c: the first update already moves; lr(W-1) = max_lr)
//   CONSTANT, step >= W:            lr = max_lr                               (N is not used)
//   COSINE,   W <= step < N:        r = (step - W) / (N - W)
//                                   lr = min_lr + 0.5 * (1 + cos(pi * r)) * (max_lr - min_lr)
//             step >= N:            lr = min_lr
//   WSD (warmup-stable-decay, MiniCPM; DeepSeek-V3 §4.2 uses the same shape with a cosine
//       decay), D = round(decay_fraction * N) decay steps starting at S = N - D:
//             W <= step < S:        lr = max_lr
//             S <= step < N:        lr = max_lr + (min_lr - max_lr) * (step - S) / D  (linear)
//             step >= N:            lr = min_lr
// So cosine and WSD reach min_lr exactly at step N and stay there (training past N is allowed).
// Negative steps are treated as step 0. All arithmetic is in double, rounded to fp32 at the end.
// Not here: per-parameter-group multipliers, batch-size ramps, restarts.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace dseek {

enum class LrScheduleKind { LR_SCHEDULE_COSINE, LR_SCHEDULE_WSD, LR_SCHEDULE_CONSTANT };

const char* lr_schedule_kind_name(LrScheduleKind k);  // "cosine", "wsd", "constant"
// Parses "cosine" | "wsd" | "constant"; throws dseek::Error listing the three otherwise.
LrScheduleKind lr_schedule_kind_parse(const std::string& s);

struct LrSchedule {
  LrScheduleKind kind = LrScheduleKind::LR_SCHEDULE_COSINE;
  double max_lr = 3e-4;
  double min_lr = 3e-5;
  int64_t warmup_steps = 0;     // W; 0 = start at max_lr
  int64_t total_steps = 0;      // N; required (> 0) for cosine and wsd
  double decay_fraction = 0.1;  // WSD only: the final fraction of N that decays to min_lr

  float lr(int64_t step) const;
  int64_t wsd_decay_steps() const;  // D above (0 unless kind is WSD)

  // Throws dseek::Error naming the field: lrs must be finite with 0 <= min_lr <= max_lr;
  // warmup_steps >= 0; total_steps > 0 for cosine/wsd with warmup_steps <= total_steps;
  // WSD: decay_fraction in [0, 1] and warmup_steps + D <= total_steps.
  void validate() const;

  // From a JSON object with any of the keys
  //   {"kind": "cosine"|"wsd"|"constant", "max_lr", "min_lr", "warmup_steps", "total_steps",
  //    "decay_fraction"}
  // (missing keys keep the defaults above). Unknown keys and wrong types are errors, so a typo
  // does not silently fall back to a default. The result is validated.
  static LrSchedule from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;  // every field, for the resolved-config printout
};

}  // namespace dseek
