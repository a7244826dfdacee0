// Tests for train/lr_schedule: lr at step 0, the end of warmup, the middle, the end and after the
// end for cosine, wsd and constant (values from the formulas in lr_schedule.h worked by hand),
// JSON parsing with its errors, and validation.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <string>

#include <nlohmann/json.hpp>

#include "dseek/core/error.h"
#include "dseek/train/lr_schedule.h"

namespace dseek {
namespace {

using json = nlohmann::json;

std::string error_of(const json& j) {
  try {
    LrSchedule::from_json(j);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(LrSchedule, Cosine) {
  // W = 10, N = 110: warmup 0..9, cosine over 100 steps, min from 110 on
  LrSchedule s = LrSchedule::from_json({{"kind", "cosine"},
                                        {"max_lr", 1e-3},
                                        {"min_lr", 1e-4},
                                        {"warmup_steps", 10},
                                        {"total_steps", 110}});
  EXPECT_FLOAT_EQ(s.lr(0), 1e-4f);     // max * 1/10
  EXPECT_FLOAT_EQ(s.lr(4), 5e-4f);     // max * 5/10
  EXPECT_FLOAT_EQ(s.lr(9), 1e-3f);     // end of warmup: max
  EXPECT_FLOAT_EQ(s.lr(10), 1e-3f);    // r = 0: max
  EXPECT_FLOAT_EQ(s.lr(60), 5.5e-4f);  // r = 1/2: (max + min) / 2
  const double q = 1e-4 + 0.5 * (1 + std::cos(std::numbers::pi * 0.25)) * 9e-4;
  EXPECT_FLOAT_EQ(s.lr(35), (float)q);  // r = 1/4
  EXPECT_NEAR(s.lr(109), 1e-4 + 0.5 * (1 + std::cos(std::numbers::pi * 0.99)) * 9e-4, 1e-9);
  EXPECT_FLOAT_EQ(s.lr(110), 1e-4f);                                        // end: min
  EXPECT_FLOAT_EQ(s.lr(5000), 1e-4f);                                       // after the end: min
  EXPECT_FLOAT_EQ(s.lr(-3), 1e-4f);                                         // negative = step 0
  for (int64_t t = 10; t < 110; t++) EXPECT_LE(s.lr(t + 1), s.lr(t)) << t;  // monotone decay
}

TEST(LrSchedule, CosineWithoutWarmup) {
  LrSchedule s{.kind = LrScheduleKind::LR_SCHEDULE_COSINE,
               .max_lr = 2.0,
               .min_lr = 0.0,
               .warmup_steps = 0,
               .total_steps = 4};
  s.validate();
  EXPECT_FLOAT_EQ(s.lr(0), 2.0f);
  EXPECT_FLOAT_EQ(s.lr(2), 1.0f);
  EXPECT_FLOAT_EQ(s.lr(4), 0.0f);
}

TEST(LrSchedule, Wsd) {
  // W = 10, N = 100, decay_fraction 0.2: D = 20 decay steps from S = 80
  LrSchedule s = LrSchedule::from_json({{"kind", "wsd"},
                                        {"max_lr", 1e-3},
                                        {"min_lr", 1e-5},
                                        {"warmup_steps", 10},
                                        {"total_steps", 100},
                                        {"decay_fraction", 0.2}});
  EXPECT_EQ(s.wsd_decay_steps(), 20);
  EXPECT_FLOAT_EQ(s.lr(0), 1e-4f);
  EXPECT_FLOAT_EQ(s.lr(9), 1e-3f);                                 // end of warmup
  EXPECT_FLOAT_EQ(s.lr(10), 1e-3f);                                // stable
  EXPECT_FLOAT_EQ(s.lr(50), 1e-3f);                                // middle: stable
  EXPECT_FLOAT_EQ(s.lr(79), 1e-3f);                                // last stable step
  EXPECT_FLOAT_EQ(s.lr(80), 1e-3f);                                // decay starts at max
  EXPECT_FLOAT_EQ(s.lr(90), (float)(1e-3 + (1e-5 - 1e-3) * 0.5));  // halfway down
  EXPECT_FLOAT_EQ(s.lr(99), (float)(1e-3 + (1e-5 - 1e-3) * 19.0 / 20.0));
  EXPECT_FLOAT_EQ(s.lr(100), 1e-5f);  // end: min
  EXPECT_FLOAT_EQ(s.lr(250), 1e-5f);  // after
}

TEST(LrSchedule, WsdWithoutDecayStaysAtMaxUntilEnd) {
  LrSchedule s = LrSchedule::from_json({{"kind", "wsd"},
                                        {"max_lr", 1.0},
                                        {"min_lr", 0.5},
                                        {"total_steps", 10},
                                        {"decay_fraction", 0}});
  EXPECT_FLOAT_EQ(s.lr(0), 1.0f);
  EXPECT_FLOAT_EQ(s.lr(9), 1.0f);
  EXPECT_FLOAT_EQ(s.lr(10), 0.5f);
}

TEST(LrSchedule, Constant) {
  LrSchedule s =
      LrSchedule::from_json({{"kind", "constant"}, {"max_lr", 3e-4}, {"warmup_steps", 3}});
  EXPECT_FLOAT_EQ(s.lr(0), 1e-4f);
  EXPECT_FLOAT_EQ(s.lr(2), 3e-4f);  // end of warmup
  EXPECT_FLOAT_EQ(s.lr(3), 3e-4f);
  EXPECT_FLOAT_EQ(s.lr(1000000), 3e-4f);  // total_steps is not needed
}

TEST(LrSchedule, JsonRoundTripAndDefaults) {
  LrSchedule s = LrSchedule::from_json({{"total_steps", 1000}});
  EXPECT_EQ(s.kind, LrScheduleKind::LR_SCHEDULE_COSINE);
  json j = s.to_json();
  EXPECT_EQ(j["kind"], "cosine");
  EXPECT_EQ(j["total_steps"], 1000);
  LrSchedule t = LrSchedule::from_json(j);
  EXPECT_EQ(t.total_steps, 1000);
  EXPECT_DOUBLE_EQ(t.max_lr, s.max_lr);
  EXPECT_DOUBLE_EQ(t.min_lr, s.min_lr);
  // integers written as 1000.0 are accepted
  EXPECT_EQ(LrSchedule::from_json({{"total_steps", 1000.0}}).total_steps, 1000);
}

TEST(LrSchedule, ErrorsNameTheField) {
  EXPECT_NE(
      error_of({{"kind", "linear"}, {"total_steps", 10}}).find("unknown lr schedule 'linear'"),
      std::string::npos);
  EXPECT_NE(error_of({{"total_step", 10}}).find("unknown key 'total_step'"), std::string::npos);
  EXPECT_NE(error_of({{"max_lr", "big"}, {"total_steps", 10}}).find("max_lr must be a number"),
            std::string::npos);
  EXPECT_NE(error_of({{"warmup_steps", 1.5}, {"total_steps", 10}}).find("integer"),
            std::string::npos);
  EXPECT_NE(error_of({{"kind", "cosine"}}).find("total_steps must be > 0"), std::string::npos);
  EXPECT_NE(error_of({{"max_lr", 1e-4}, {"min_lr", 1e-3}, {"total_steps", 10}}).find("min_lr"),
            std::string::npos);
  EXPECT_NE(error_of({{"warmup_steps", 20}, {"total_steps", 10}}).find("warmup_steps 20"),
            std::string::npos);
  EXPECT_NE(
      error_of({{"kind", "wsd"}, {"warmup_steps", 5}, {"total_steps", 10}, {"decay_fraction", 0.6}})
          .find("exceed total_steps"),
      std::string::npos);
  EXPECT_NE(error_of({{"kind", "wsd"}, {"total_steps", 10}, {"decay_fraction", 1.5}})
                .find("decay_fraction"),
            std::string::npos);
  EXPECT_NE(error_of(json::array()).find("expected a JSON object"), std::string::npos);
}

}  // namespace
}  // namespace dseek
