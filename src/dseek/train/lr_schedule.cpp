// Learning-rate schedules (formulas in lr_schedule.h), their JSON form and validation.
// Reference for cosine with warmup: karpathy/nanoGPT train.py get_lr (warmup uses it + 1 in
// llm.c train_gpt2.cu); for WSD: MiniCPM (Hu et al. 2024, §4) with its linear-decay variant.
// Not here: the optimizer (adamw.cpp).
#include "dseek/train/lr_schedule.h"

#include <algorithm>  // clamp
#include <cmath>      // cos, llround, isfinite
#include <numbers>    // pi

#include <nlohmann/json.hpp>  // from_json / to_json

#include "dseek/core/error.h"  // DSEEK_CHECK, fail

namespace dseek {

// ---------------------------------------------------------------------------------------------
// names

const char* lr_schedule_kind_name(LrScheduleKind k) {
  switch (k) {
    case LrScheduleKind::LR_SCHEDULE_COSINE:
      return "cosine";
    case LrScheduleKind::LR_SCHEDULE_WSD:
      return "wsd";
    case LrScheduleKind::LR_SCHEDULE_CONSTANT:
      return "constant";
  }
  return "?";
}

LrScheduleKind lr_schedule_kind_parse(const std::string& s) {
  for (auto k : {LrScheduleKind::LR_SCHEDULE_COSINE, LrScheduleKind::LR_SCHEDULE_WSD,
                 LrScheduleKind::LR_SCHEDULE_CONSTANT})
    if (s == lr_schedule_kind_name(k)) return k;
  fail("unknown lr schedule '{}' (expected cosine, wsd or constant)", s);
}

// ---------------------------------------------------------------------------------------------
// schedule

int64_t LrSchedule::wsd_decay_steps() const {
  if (kind != LrScheduleKind::LR_SCHEDULE_WSD) return 0;
  return (int64_t)std::llround(decay_fraction * (double)total_steps);
}

float LrSchedule::lr(int64_t step) const {
  step = std::max<int64_t>(step, 0);
  const int64_t W = warmup_steps, N = total_steps;
  if (step < W) return (float)(max_lr * (double)(step + 1) / (double)W);
  switch (kind) {
    case LrScheduleKind::LR_SCHEDULE_CONSTANT:
      return (float)max_lr;
    case LrScheduleKind::LR_SCHEDULE_COSINE: {
      if (step >= N) return (float)min_lr;
      const double r = (double)(step - W) / (double)(N - W);
      return (float)(min_lr + 0.5 * (1.0 + std::cos(std::numbers::pi * r)) * (max_lr - min_lr));
    }
    case LrScheduleKind::LR_SCHEDULE_WSD: {
      if (step >= N) return (float)min_lr;
      const int64_t D = wsd_decay_steps(), S = N - D;
      if (step < S) return (float)max_lr;
      return (float)(max_lr + (min_lr - max_lr) * (double)(step - S) / (double)D);
    }
  }
  return (float)max_lr;
}

void LrSchedule::validate() const {
  DSEEK_CHECK(std::isfinite(max_lr) && std::isfinite(min_lr) && min_lr >= 0 && min_lr <= max_lr,
              "lr schedule: need 0 <= min_lr <= max_lr, got min_lr {} max_lr {}", min_lr, max_lr);
  DSEEK_CHECK(warmup_steps >= 0, "lr schedule: warmup_steps must be >= 0, got {}", warmup_steps);
  if (kind == LrScheduleKind::LR_SCHEDULE_CONSTANT) return;
  DSEEK_CHECK(total_steps > 0, "lr schedule {}: total_steps must be > 0, got {}",
              lr_schedule_kind_name(kind), total_steps);
  DSEEK_CHECK(warmup_steps <= total_steps,
              "lr schedule {}: warmup_steps {} is larger than total_steps {}",
              lr_schedule_kind_name(kind), warmup_steps, total_steps);
  if (kind == LrScheduleKind::LR_SCHEDULE_WSD) {
    DSEEK_CHECK(decay_fraction >= 0 && decay_fraction <= 1,
                "lr schedule wsd: decay_fraction must be in [0, 1], got {}", decay_fraction);
    DSEEK_CHECK(warmup_steps + wsd_decay_steps() <= total_steps,
                "lr schedule wsd: warmup_steps {} + decay steps {} (decay_fraction {} of {}) "
                "exceed total_steps {}",
                warmup_steps, wsd_decay_steps(), decay_fraction, total_steps, total_steps);
  }
}

// ---------------------------------------------------------------------------------------------
// JSON

LrSchedule LrSchedule::from_json(const nlohmann::json& j) {
  DSEEK_CHECK(j.is_object(), "lr schedule: expected a JSON object, got {}", j.dump());
  LrSchedule s;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const nlohmann::json& v = it.value();
    auto number = [&]() {
      DSEEK_CHECK(v.is_number(), "lr schedule: {} must be a number, got {}", k, v.dump());
      return v.get<double>();
    };
    auto integer = [&]() {
      DSEEK_CHECK(v.is_number_integer() ||
                      (v.is_number() && std::floor(v.get<double>()) == v.get<double>()),
                  "lr schedule: {} must be an integer, got {}", k, v.dump());
      return v.is_number_integer() ? v.get<int64_t>() : (int64_t)v.get<double>();
    };
    if (k == "kind") {
      DSEEK_CHECK(v.is_string(), "lr schedule: kind must be a string, got {}", v.dump());
      s.kind = lr_schedule_kind_parse(v.get<std::string>());
    } else if (k == "max_lr") {
      s.max_lr = number();
    } else if (k == "min_lr") {
      s.min_lr = number();
    } else if (k == "warmup_steps") {
      s.warmup_steps = integer();
    } else if (k == "total_steps") {
      s.total_steps = integer();
    } else if (k == "decay_fraction") {
      s.decay_fraction = number();
    } else {
      fail(
          "lr schedule: unknown key '{}' (known: kind, max_lr, min_lr, warmup_steps, "
          "total_steps, decay_fraction)",
          k);
    }
  }
  s.validate();
  return s;
}

nlohmann::json LrSchedule::to_json() const {
  return {{"kind", lr_schedule_kind_name(kind)},
          {"max_lr", max_lr},
          {"min_lr", min_lr},
          {"warmup_steps", warmup_steps},
          {"total_steps", total_steps},
          {"decay_fraction", decay_fraction}};
}

}  // namespace dseek
