// How a task problem becomes the token ids a policy continues, and how a completion's ids become
// the text the rewards read. Two prompt styles:
//   PROMPT_R1ZERO  BOS + Problem::prompt (the R1-Zero template: "A conversation between User and
//                  Assistant. ... User: <question> Assistant:"), for base models (R1-Zero).
//   PROMPT_CHAT    chat_render(template, [{user: Problem::question}], add_generation_prompt),
//                  the DeepSeek chat format that `dseek sft` trains (R1's cold start).
// Special tokens written in the text (<think>, </think>, the chat markers) are encoded as the
// special tokens, as in SFT data, so a policy's <think> is one token either way.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dseek/posttrain/tasks.h"
#include "dseek/tokenizer/chat_template.h"
#include "dseek/tokenizer/tokenizer.h"

namespace dseek {

enum class PromptStyle { PROMPT_R1ZERO, PROMPT_CHAT };

struct PromptFormat {
  PromptStyle style = PromptStyle::PROMPT_CHAT;
  ChatTemplate chat = ChatTemplate::CHAT_DEEPSEEK_V3;
};

// "r1zero" or "chat"; throws dseek::Error otherwise.
PromptStyle prompt_style_from_name(std::string_view name);

std::vector<int32_t> prompt_ids(const Problem& p, const Tokenizer& tok, const PromptFormat& f);

// The completion as text for the rewards: a final EOS is dropped, every other id (special
// tokens included) is decoded as written.
std::string completion_text(const std::vector<int32_t>& ids, const Tokenizer& tok);

}  // namespace dseek
