// Supervised fine-tuning data: chat conversations rendered with a DeepSeek chat template and
// tokenized with a loss mask that is 1 exactly on the assistant turns' tokens (their content
// and the end-of-sentence token that closes them), 0 on the system/user text and the
// `<｜Assistant｜>` marker (and R1's `<think>\n` generation prefix): the model learns to answer,
// not to predict the user.
// Construction, per assistant turn i: P = render(messages[:i], add_generation_prompt = true),
// F = render(messages[:i+1]); F must start with P, and F[len(P):] is the turn's trained text.
// Each piece is encoded on its own (special tokens recognized), so piece boundaries are token
// boundaries. A template that rewrites past assistant turns (deepseek-r1 drops the reasoning
// before </think>) fails this check for turns with reasoning: use deepseek-v3 to train it.
//
// JSONL, one example a line, either
//   {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
//   {"prompt": "...", "response": "..."}   (a user turn and an assistant turn)
// Blank lines are skipped; anything else malformed throws dseek::Error naming file:line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dseek/tokenizer/chat_template.h"
#include "dseek/tokenizer/tokenizer.h"

namespace dseek {

struct SftExample {
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;  // [ids.size()] 1 = ids[i] is a trained target (predicted from
                              //   ids[0..i)); mask[0] is always 0
  int64_t trained() const;    // number of 1s
};

SftExample sft_encode(const std::vector<ChatMessage>& messages, const Tokenizer& tok,
                      ChatTemplate t);

std::vector<SftExample> sft_load_jsonl(const std::string& path, const Tokenizer& tok,
                                       ChatTemplate t);

// One JSONL line {"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}.
std::string sft_jsonl_line(const std::string& user, const std::string& assistant);

}  // namespace dseek
