// Held-out evaluation of a policy on task problems, as R1 reports it:
//   pass@1   greedy decoding (temperature 0): the share of problems whose completion earns the
//            accuracy reward (answer in <answer> ... </answer>, checked by the task)
//   format   share of greedy completions that earn the format reward
//   pass@k   k samples per problem at the sampling temperature: the share of problems with at
//            least one correct sample (n = k samples, so the estimate is the plain fraction)
//   sample accuracy / format: the same rewards averaged over all k samples
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dseek/model/model.h"
#include "dseek/posttrain/prompt_format.h"
#include "dseek/posttrain/rewards.h"
#include "dseek/tokenizer/tokenizer.h"

namespace dseek {

struct EvalOptions {
  PromptFormat format;
  int64_t max_new_tokens = 64;
  int k = 0;                 // samples per problem for pass@k (0 = greedy only)
  float temperature = 1.0f;  // for the k samples
  float top_p = 1.0f;
  uint64_t seed = 0;
};

struct EvalResult {
  int64_t n = 0;                 // problems
  double pass1 = 0, format = 0;  // greedy
  double mean_tokens = 0;        // greedy completion length (tokens, EOS included)
  double passk = -1;             // -1 when k == 0
  double sample_accuracy = -1, sample_format = -1;
  std::vector<std::string> greedy;  // greedy completion of each problem (text)
  std::vector<bool> greedy_correct;
};

// The held-out problems every command scores: n problems of the task's TEST split drawn with a
// fixed seed, so `dseek eval`, `dseek grpo` and `dseek sample` agree on them for any --seed.
inline constexpr uint64_t kEvalProblemSeed = 20250122;
std::vector<Problem> task_eval_problems(const std::string& task, int n, const TaskOptions& o);

EvalResult evaluate_tasks(const Model& m, const Tokenizer& tok, const std::vector<Problem>& probs,
                          const EvalOptions& opt);

}  // namespace dseek
