// Chat templates: the rendered examples of SPEC §7.2 exactly, the R1 differences (reasoning
// stripped from past turns, `<think>\n` generation prompt), tool calls/outputs, message parsing
// from OpenAI-style JSON, and agreement with the real Jinja templates (V3 from
// .cache/deepseek_v3/tokenizer_config.json, R1 from deepseek_r1_chat_template.json) rendered by
// @huggingface/jinja through tests/tokenizer/hf_chat.js on hundreds of random conversations.
#include "dseek/tokenizer/chat_template.h"
#include "tokenizer_kit.h"

namespace dseek::test {

static ChatMessage msg(const char* role, const char* content) {
  return {role, content, {}};
}

static const std::string kB = "<｜begin▁of▁sentence｜>";

TEST(ChatTemplate, V3SpecExamples) {
  auto t = ChatTemplate::CHAT_DEEPSEEK_V3;
  EXPECT_EQ(chat_render(t, {msg("system", "S"), msg("user", "U")}, true),
            kB + "S<｜User｜>U<｜Assistant｜>");
  EXPECT_EQ(chat_render(t, {msg("user", "U1"), msg("assistant", "A1"), msg("user", "U2")}, true),
            kB + "<｜User｜>U1<｜Assistant｜>A1<｜end▁of▁sentence｜><｜User｜>U2<｜Assistant｜>");
  // Several system messages: joined by "\n\n", all right after BOS, wherever they are.
  EXPECT_EQ(chat_render(t, {msg("system", "S1"), msg("user", "U"), msg("system", "S2")}, false),
            kB + "S1\n\nS2<｜User｜>U");
  EXPECT_EQ(chat_render(t, {msg("user", "U")}, false), kB + "<｜User｜>U");
  // V3 keeps reasoning in past turns.
  EXPECT_EQ(chat_render(t, {msg("user", "U"), msg("assistant", "<think>r</think>A")}, false),
            kB + "<｜User｜>U<｜Assistant｜><think>r</think>A<｜end▁of▁sentence｜>");
}

TEST(ChatTemplate, R1) {
  auto t = ChatTemplate::CHAT_DEEPSEEK_R1;
  EXPECT_EQ(chat_render(t, {msg("system", "S"), msg("user", "U")}, true),
            kB + "S<｜User｜>U<｜Assistant｜><think>\n");
  EXPECT_EQ(chat_render(t,
                        {msg("user", "U1"), msg("assistant", "<think>\nplan\n</think>\n\nA1"),
                         msg("user", "U2")},
                        true),
            kB + "<｜User｜>U1<｜Assistant｜>\n\nA1<｜end▁of▁sentence｜><｜User｜>U2<｜Assistant｜>"
                 "<think>\n");
  // Only the text after the last </think> is kept.
  EXPECT_EQ(chat_render(t, {msg("assistant", "a</think>b</think>c")}, false),
            kB + "<｜Assistant｜>c<｜end▁of▁sentence｜>");
  EXPECT_EQ(chat_render(ChatTemplate::CHAT_DEEPSEEK_V3_0324, {msg("user", "U")}, true),
            kB + "<｜User｜>U<｜Assistant｜>");
}

static std::vector<ChatMessage> tool_conversation() {
  ChatMessage call{"assistant", std::nullopt,
                   std::vector<ChatToolCall>{{"function", "get_weather", "{\"city\": \"Paris\"}"},
                                             {"function", "get_time", "{}"}}};
  return {msg("system", "S"), msg("user", "U"),    call,
          msg("tool", "18C"), msg("tool", "noon"), msg("assistant", "It is 18C at noon.")};
}

TEST(ChatTemplate, V3ToolCalls) {
  std::string got = chat_render(ChatTemplate::CHAT_DEEPSEEK_V3, tool_conversation(), true);
  std::string want =
      kB +
      "S<｜User｜>U<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>"
      "get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>"
      "function<｜tool▁sep｜>get_time\n```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
      "<｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18C<｜tool▁output▁end｜>"
      "\n"
      "<｜tool▁output▁begin｜>noon<｜tool▁output▁end｜><｜tool▁outputs▁end｜>It is 18C at noon."
      "<｜end▁of▁sentence｜><｜Assistant｜>";
  EXPECT_EQ(got, want);
  // Ending on a tool output: the outputs are closed and no generation prompt follows.
  auto msgs = tool_conversation();
  msgs.pop_back();
  EXPECT_TRUE(chat_render(ChatTemplate::CHAT_DEEPSEEK_V3, msgs, true)
                  .ends_with("noon<｜tool▁output▁end｜><｜tool▁outputs▁end｜>"));
}

TEST(ChatTemplate, R1ToolCalls) {
  auto msgs = tool_conversation();
  msgs[2].content = "Let me check.";
  std::string got = chat_render(ChatTemplate::CHAT_DEEPSEEK_R1, msgs, true);
  std::string want =
      kB +
      "S<｜User｜>U<｜Assistant｜>Let me check.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function"
      "<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>\n"
      "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n{}\n```<｜tool▁call▁end｜>"
      "<｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18C"
      "<｜tool▁output▁end｜><｜tool▁output▁begin｜>noon<｜tool▁output▁end｜><｜tool▁outputs▁end｜>"
      "It is 18C at noon.<｜end▁of▁sentence｜><｜Assistant｜><think>\n";
  EXPECT_EQ(got, want);
}

TEST(ChatTemplate, NamesAndJson) {
  EXPECT_EQ(chat_template_from_name("deepseek-r1"), ChatTemplate::CHAT_DEEPSEEK_R1);
  EXPECT_STREQ(chat_template_name(ChatTemplate::CHAT_DEEPSEEK_V3), "deepseek-v3");
  EXPECT_THROW(chat_template_from_name("llama-3"), Error);
  auto j = nlohmann::json::parse(R"([
    {"role": "system", "content": "S"}, {"role": "user", "content": "U"},
    {"role": "assistant", "content": null, "tool_calls": [
      {"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]},
    {"role": "tool", "content": "r"}])");
  auto msgs = chat_messages_from_json(j);
  ASSERT_EQ(msgs.size(), 4u);
  EXPECT_FALSE(msgs[2].content.has_value());
  ASSERT_TRUE(msgs[2].tool_calls.has_value());
  EXPECT_EQ((*msgs[2].tool_calls)[0].arguments, "{\"x\":1}");
  EXPECT_THROW(chat_messages_from_json(nlohmann::json::parse(R"({"role": "user"})")), Error);
  EXPECT_THROW(chat_render(ChatTemplate::CHAT_DEEPSEEK_V3, {msg("robot", "x")}, false), Error);
}

// ---------------------------------------------------------------------------------------------
// agreement with the Jinja templates

static nlohmann::json to_json(const ChatMessage& m) {
  nlohmann::json j = {{"role", m.role}};
  j["content"] = m.content ? nlohmann::json(*m.content) : nlohmann::json();
  if (m.tool_calls) {
    j["tool_calls"] = nlohmann::json::array();
    for (const ChatToolCall& c : *m.tool_calls)
      j["tool_calls"].push_back(
          {{"type", c.type}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
  }
  return j;
}

// Random conversations the Jinja accepts (no None where it concatenates strings).
static std::vector<std::vector<ChatMessage>> random_conversations(uint32_t seed, size_t n,
                                                                  bool r1) {
  std::mt19937 rng(seed);
  auto pick = [&](int k) { return (int)(rng() % (uint32_t)k); };
  const char* texts[] = {"Hi",
                         "",
                         "2+2?",
                         "<think>\nhmm\n</think>\n\n4",
                         "a</think>b</think>c",
                         "line\nbreak",
                         "你好",
                         " spaced ",
                         "</think>"};
  std::vector<std::vector<ChatMessage>> out;
  for (size_t i = 0; i < n; i++) {
    std::vector<ChatMessage> conv;
    for (int k = pick(7) + 1; k-- > 0;) {
      std::string t = texts[pick(std::size(texts))];
      switch (pick(6)) {
        case 0:
          conv.push_back({"system", t, {}});
          break;
        case 1:
        case 2:
          conv.push_back({"user", t, {}});
          break;
        case 3:
          conv.push_back({"tool", t, {}});
          break;
        case 4: {
          std::vector<ChatToolCall> calls;
          for (int c = pick(3) + 1; c-- > 0;)
            calls.push_back({"function", "fn" + std::to_string(pick(9)), "{\"a\": 1}"});
          std::optional<std::string> content;
          if (r1 && pick(2)) content = t;
          conv.push_back({"assistant", content, calls});
          break;
        }
        default:
          conv.push_back({"assistant", t, {}});
      }
    }
    out.push_back(std::move(conv));
  }
  return out;
}

static void expect_jinja_agreement(ChatTemplate t, const std::string& template_json, bool r1) {
  auto convs = random_conversations(r1 ? 2 : 1, 400, r1);
  convs.push_back({msg("system", "S"), msg("user", "U")});
  convs.push_back(tool_conversation());
  nlohmann::json cases = nlohmann::json::array();
  for (size_t i = 0; i < convs.size(); i++) {
    nlohmann::json msgs = nlohmann::json::array();
    for (const ChatMessage& m : convs[i]) msgs.push_back(to_json(m));
    cases.push_back({{"messages", msgs}, {"add_generation_prompt", i % 2 == 0}});
  }
  auto dir = std::filesystem::temp_directory_path();
  std::string in = (dir / ("dseek_chat_" + std::to_string(::getpid()) + ".json")).string();
  std::string out = in + ".out";
  std::ofstream(in) << cases.dump();
  std::string cmd = "node '" + std::string(DSEEK_SOURCE_DIR) + "/tests/tokenizer/hf_chat.js' '" +
                    template_json + "' '" + in + "' > '" + out + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto want = read_json(out).get<std::vector<std::string>>();
  std::filesystem::remove(in);
  std::filesystem::remove(out);
  ASSERT_EQ(want.size(), convs.size());
  for (size_t i = 0; i < convs.size(); i++)
    EXPECT_EQ(chat_render(t, convs[i], i % 2 == 0), want[i]) << cases[i].dump();
}

TEST(ChatTemplate, V3MatchesJinja) {
  DSEEK_REQUIRE(have_hf(), "node + npm packages (.cache/npm)");
  DSEEK_REQUIRE(std::filesystem::exists(std::string(DSEEK_SOURCE_DIR) +
                                        "/.cache/deepseek_v3/tokenizer_config.json"),
                "the DeepSeek-V3 tokenizer_config.json");
  expect_jinja_agreement(
      ChatTemplate::CHAT_DEEPSEEK_V3,
      std::string(DSEEK_SOURCE_DIR) + "/.cache/deepseek_v3/tokenizer_config.json", false);
}

TEST(ChatTemplate, R1MatchesJinja) {
  DSEEK_REQUIRE(have_hf(), "node + npm packages (.cache/npm)");
  expect_jinja_agreement(
      ChatTemplate::CHAT_DEEPSEEK_R1,
      std::string(DSEEK_SOURCE_DIR) + "/tests/tokenizer/deepseek_r1_chat_template.json", true);
}

}  // namespace dseek::test
