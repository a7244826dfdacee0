// Chat templates of DeepSeek-V3 and R1, rendered in C++ (no Jinja engine). Each renders exactly
// the string the Jinja template of its tokenizer_config.json renders (SPEC §7.2), tool calls and
// tool outputs included, quirks included (V3 closes `<｜tool▁calls▁end｜>` only after a second tool
// call, because its Jinja does). Encode the result with Tokenizer::encode(text, true): the BOS is
// part of the text, so do not prepend another one.
//   "deepseek-v3"       V3 original (Dec 2024), generation prompt `<｜Assistant｜>`
//   "deepseek-r1"       R1: reasoning before `</think>` dropped from past assistant turns,
//                       generation prompt `<｜Assistant｜><think>\n`
//   "deepseek-v3-0324"  the R1 skeleton without `<think>\n` (DeepSeek API tokenizer, later V3)
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace dseek {

enum class ChatTemplate { CHAT_DEEPSEEK_V3, CHAT_DEEPSEEK_R1, CHAT_DEEPSEEK_V3_0324 };

inline constexpr const char* kDeepseekBos = "<｜begin▁of▁sentence｜>";

struct ChatToolCall {
  std::string type = "function";
  std::string name;
  std::string arguments;  // JSON text, written verbatim
};

struct ChatMessage {
  std::string role;                    // "system", "user", "assistant", "tool"
  std::optional<std::string> content;  // none: an assistant turn made only of tool calls
  std::optional<std::vector<ChatToolCall>> tool_calls;  // present = the key exists (R1 checks it)
};

// Throws dseek::Error listing the known names.
ChatTemplate chat_template_from_name(std::string_view name);
const char* chat_template_name(ChatTemplate t);

std::string chat_render(ChatTemplate t, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt, std::string_view bos_token = kDeepseekBos);

// OpenAI-style messages: [{"role": ..., "content": ..., "tool_calls": [{"type": "function",
// "function": {"name": ..., "arguments": ...}}]}]. Throws dseek::Error on a malformed list.
std::vector<ChatMessage> chat_messages_from_json(const nlohmann::json& j);

}  // namespace dseek
