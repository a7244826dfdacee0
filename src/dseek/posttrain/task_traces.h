// Worked solutions for generated task problems: the reasoning a cold-start SFT example shows
// inside <think>, the R1-format completion around it, and the plain-text form that goes into
// pretraining data ("text plus task data"). Deterministic in the problem.
//   add          the operands, then column by column from the right: "347 + 285: 7 + 5 = 12,
//                4 + 8 + 1 = 13, 3 + 2 + 1 = 6, so 632"
//   sub/mul      "347 - 285 = 62"
//   sort         "-3 < 4 < 17" (the sorted values in order)
//   countdown    the reference expression and its value: "(3 + 5) * 2 = 16"
//   exact/numeric/boxed (user data): no trace ("" -> the completion has an empty <think>)
#pragma once

#include <string>

#include "dseek/posttrain/tasks.h"

namespace dseek {

std::string task_trace(const Problem& p);

// "<think>TRACE</think> <answer>ANSWER</answer>": earns both the format and the accuracy reward.
std::string task_completion(const Problem& p);

// One line of pretraining text: "QUESTION TRACE. The answer is ANSWER."
std::string task_text(const Problem& p);

}  // namespace dseek
