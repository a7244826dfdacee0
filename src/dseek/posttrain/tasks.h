// Verifiable tasks for R1-Zero style post-training: seeded problem generators with exact checkers,
// and a JSONL loader for user datasets. Holds no rewards (see rewards.h) and no sampling.
//
// Tasks (Problem::task):
//   "add", "sub", "mul"  a op b with a, b of TaskOptions::arith_digits digits each; answer an
//                        integer ("arith" generates a random mix of the three).
//   "countdown"          TinyZero Countdown: 3-4 numbers and a target reachable with + - * /,
//                        each number at most once. The reference answer is the expression the
//                        target was built from (it uses every number), so the checker reads the
//                        allowed numbers and the target back from Problem::answer.
//   "sort"               sort a list of integers ascending; answer "1, 2, 3".
//   "exact", "numeric", "boxed"   user datasets (task_load_jsonl), see task_check.
//
// Split: a problem is in SPLIT_TEST iff fnv1a64(canonical problem) % 10 == 0, else SPLIT_TRAIN.
// The canonical form ignores presentation (Countdown numbers are sorted), so the same problem
// never lands in both splits whatever the seed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dseek {

enum class Split { SPLIT_TRAIN, SPLIT_TEST };

struct Problem {
  std::string prompt;         // full prompt, R1-Zero template (<think> </think> <answer> </answer>)
  std::string answer;         // reference answer
  std::string task;           // which checker applies: "add", "countdown", "sort", "exact", ...
  std::string question = {};  // the question alone (the user turn of a chat-formatted prompt)
};

struct TaskOptions {
  int arith_digits = 3;            // digits per operand, 1..9
  int countdown_numbers = 0;       // 3 or 4; 0 = random 3 or 4
  int countdown_number_max = 99;   // numbers drawn from [1, countdown_number_max]
  int countdown_target_max = 999;  // target in [1, countdown_target_max]
  int sort_len_min = 5;            // list length range
  int sort_len_max = 10;
  int sort_value_min = -99;  // value range
  int sort_value_max = 99;
};

// The R1-Zero prompt template around a question.
std::string task_prompt_wrap(const std::string& question);

// n problems of `task` in `split`, deterministic in (task, split, n, seed, opts).
// Throws dseek::Error on an unknown task or bad options.
std::vector<Problem> task_generate(const std::string& task, Split split, int n, uint64_t seed,
                                   const TaskOptions& opts = {});

// Which split a problem belongs to (generated tasks only; by hash of its canonical form).
Split task_split_of(const Problem& p);

// True iff answer_text (already extracted from <answer>) solves p exactly. Never throws on a bad
// answer; throws dseek::Error on an unknown p.task.
//   exact:   trimmed strings equal.
//   numeric: both parse fully as numbers, |a - b| <= 1e-6 * max(1, |a|, |b|).
//   boxed:   content of the last balanced \boxed{...} of answer_text equals the reference (the
//            reference's own last \boxed{...} if it has one), trimmed.
bool task_check(const Problem& p, const std::string& answer_text);

// Content of the last \boxed{...} with balanced braces; false if none (or unbalanced).
bool task_boxed_extract(const std::string& text, std::string* out);

// User dataset: one JSON object a line with string "prompt", "answer" (a number is accepted and
// printed), optional "checker" in {"exact", "numeric", "boxed"} (default "exact") or the name of
// a generated task ("add", "sub", "mul", "countdown", "sort": `dseek tasks generate` writes these).
// Blank lines are skipped. The prompt is used as is. Malformed lines throw dseek::Error naming
// file:line.
std::vector<Problem> task_load_jsonl(const std::string& path);

}  // namespace dseek
