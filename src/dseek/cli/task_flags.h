// Command-line flags shared by the post-training commands (tasks, eval, sample, grpo): which
// task, its options, and the prompt format.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "dseek/posttrain/prompt_format.h"
#include "dseek/posttrain/tasks.h"

namespace dseek::cli {

struct TaskFlags {
  std::string task = "add";
  std::string problems;  // JSONL of problems instead of a generated task (eval / sample)
  TaskOptions opts;
  std::string style = "chat", chat_template = "deepseek-v3";

  void add(CLI::App* sub, bool allow_file);
  PromptFormat format() const;
};

}  // namespace dseek::cli
