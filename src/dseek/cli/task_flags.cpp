#include "dseek/cli/task_flags.h"

namespace dseek::cli {

void TaskFlags::add(CLI::App* sub, bool allow_file) {
  sub->add_option("--task", task, "add, sub, mul, arith (a mix), countdown, sort")
      ->capture_default_str();
  if (allow_file)
    sub->add_option("--problems", problems,
                    "JSONL of problems ({\"prompt\", \"answer\", \"checker\"}) instead of --task");
  sub->add_option("--digits", opts.arith_digits, "digits per operand (arithmetic)")
      ->capture_default_str();
  sub->add_option("--countdown-numbers", opts.countdown_numbers, "3 or 4 (0 = either)")
      ->capture_default_str();
  sub->add_option("--sort-len-max", opts.sort_len_max, "longest list (sort)")
      ->capture_default_str();
  sub->add_option("--prompt-style", style,
                  "chat (the chat template, after SFT) or r1zero (R1-Zero's plain template)")
      ->capture_default_str();
  sub->add_option("--template", chat_template,
                  "chat template: deepseek-v3, deepseek-r1, deepseek-v3-0324")
      ->capture_default_str();
}

PromptFormat TaskFlags::format() const {
  return {.style = prompt_style_from_name(style), .chat = chat_template_from_name(chat_template)};
}

}  // namespace dseek::cli
