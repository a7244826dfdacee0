#include "dseek/posttrain/sft_data.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "dseek/core/error.h"

namespace dseek {

int64_t SftExample::trained() const {
  int64_t n = 0;
  for (uint8_t x : mask) n += x;
  return n;
}

namespace {
void append(SftExample& e, const Tokenizer& tok, const std::string& text, uint8_t m) {
  if (text.empty()) return;
  std::vector<int32_t> ids = tok.encode(text, true);
  e.ids.insert(e.ids.end(), ids.begin(), ids.end());
  e.mask.insert(e.mask.end(), ids.size(), m);
}

bool starts_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(0, p.size(), p) == 0;
}
}  // namespace

SftExample sft_encode(const std::vector<ChatMessage>& msgs, const Tokenizer& tok, ChatTemplate t) {
  SftExample e;
  std::string done;  // rendered text already encoded
  bool any = false;
  for (size_t i = 0; i < msgs.size(); i++) {
    if (msgs[i].role != "assistant") continue;
    any = true;
    std::vector<ChatMessage> head(msgs.begin(), msgs.begin() + i);
    std::vector<ChatMessage> full(msgs.begin(), msgs.begin() + i + 1);
    const std::string p = chat_render(t, head, true), f = chat_render(t, full, false);
    DSEEK_CHECK(starts_with(p, done) && starts_with(f, p),
                "sft: the {} template does not keep assistant turn {} as written (it rewrites "
                "past turns, e.g. drops reasoning); train with deepseek-v3",
                chat_template_name(t), i);
    append(e, tok, p.substr(done.size()), 0);
    append(e, tok, f.substr(p.size()), 1);
    done = f;
  }
  DSEEK_CHECK(any, "sft: a conversation has no assistant turn (nothing to train)");
  const std::string all = chat_render(t, msgs, false);
  if (starts_with(all, done)) append(e, tok, all.substr(done.size()), 0);
  if (!e.mask.empty()) e.mask[0] = 0;
  return e;
}

std::vector<SftExample> sft_load_jsonl(const std::string& path, const Tokenizer& tok,
                                       ChatTemplate t) {
  std::ifstream f(path);
  DSEEK_CHECK(f.good(), "cannot open SFT data {}", path);
  std::vector<SftExample> out;
  std::string line;
  for (int64_t ln = 1; std::getline(f, line); ln++) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      nlohmann::json j = nlohmann::json::parse(line);
      DSEEK_CHECK(j.is_object(), "expected a JSON object");
      std::vector<ChatMessage> msgs;
      if (j.contains("messages")) {
        msgs = chat_messages_from_json(j["messages"]);
      } else {
        DSEEK_CHECK(j.contains("prompt") && j["prompt"].is_string() && j.contains("response") &&
                        j["response"].is_string(),
                    "expected \"messages\" or string \"prompt\" and \"response\"");
        msgs = {
            {.role = "user", .content = j["prompt"].get<std::string>(), .tool_calls = {}},
            {.role = "assistant", .content = j["response"].get<std::string>(), .tool_calls = {}}};
      }
      out.push_back(sft_encode(msgs, tok, t));
    } catch (const nlohmann::json::exception& e) {
      fail("{}:{}: malformed JSON: {}", path, ln, e.what());
    } catch (const Error& e) {
      fail("{}:{}: {}", path, ln, e.what());
    }
  }
  DSEEK_CHECK(!out.empty(), "{}: no examples", path);
  return out;
}

std::string sft_jsonl_line(const std::string& user, const std::string& assistant) {
  nlohmann::json j = {
      {"messages",
       {{{"role", "user"}, {"content", user}}, {{"role", "assistant"}, {"content", assistant}}}}};
  return j.dump();
}

}  // namespace dseek
