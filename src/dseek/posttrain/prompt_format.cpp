#include "dseek/posttrain/prompt_format.h"

#include "dseek/core/error.h"

namespace dseek {

PromptStyle prompt_style_from_name(std::string_view name) {
  if (name == "r1zero") return PromptStyle::PROMPT_R1ZERO;
  if (name == "chat") return PromptStyle::PROMPT_CHAT;
  throw Error(fmt::format("unknown prompt style '{}' (expected chat or r1zero)", name));
}

std::vector<int32_t> prompt_ids(const Problem& p, const Tokenizer& tok, const PromptFormat& f) {
  if (f.style == PromptStyle::PROMPT_R1ZERO) {
    std::vector<int32_t> ids = tok.encode(p.prompt, true);
    if (tok.bos_id() >= 0) ids.insert(ids.begin(), tok.bos_id());
    return ids;
  }
  const std::string q = p.question.empty() ? p.prompt : p.question;
  std::vector<ChatMessage> msgs = {{.role = "user", .content = q, .tool_calls = std::nullopt}};
  return tok.encode(chat_render(f.chat, msgs, true), true);
}

std::string completion_text(const std::vector<int32_t>& ids, const Tokenizer& tok) {
  if (!ids.empty() && tok.eos_id() >= 0 && ids.back() == tok.eos_id())
    return tok.decode(std::vector<int32_t>(ids.begin(), ids.end() - 1), false);
  return tok.decode(ids, false);
}

}  // namespace dseek
