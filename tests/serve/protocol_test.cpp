// Unit tests of the text and wire layers: request parsing and its 400s (with `param`), the
// R1 reasoning split under every chunking, and the token -> text pipeline (UTF-8, stop strings,
// </think> as a special token).
#include "dseek/serve/completion_text.h"
#include "dseek/serve/openai_protocol.h"
#include "dseek/serve/reasoning_split.h"
#include "serve/serve_kit.h"

namespace {

using namespace dseek;
using namespace dseek::serve;
using namespace dseek_test;

// ---- request parsing ------------------------------------------------------------------------

ApiError parse_error(const std::string& body, RequestKind k = RequestKind::REQUEST_CHAT) {
  try {
    request_parse(body, k);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "no error for " << body;
  return ApiError(0, "");
}

TEST(OpenAIProtocol, ParsesChatWithDefaultsAndExtensions) {
  CompletionRequest r = request_parse(
      R"({"model": "m", "messages": [{"role": "developer", "content": "be brief"},
          {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}],
          "max_completion_tokens": 7, "temperature": 0.5, "top_k": 40, "min_p": 0.1, "seed": 3,
          "stop": "END", "stream": true, "stream_options": {"include_usage": true}, "n": 1,
          "presence_penalty": 0, "user": "x", "unknown_field": [1]})",
      RequestKind::REQUEST_CHAT);
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(*r.messages[1].content, "Hi there");
  EXPECT_EQ(*r.max_tokens, 7);
  EXPECT_FLOAT_EQ(r.sampler.temperature, 0.5f);
  EXPECT_EQ(r.sampler.top_k, 40);
  EXPECT_FLOAT_EQ(r.sampler.min_p, 0.1f);
  EXPECT_FLOAT_EQ(r.sampler.top_p, 1.0f);
  EXPECT_EQ(r.sampler.seed, 3u);
  EXPECT_TRUE(r.seed_given);
  EXPECT_EQ(r.stop, std::vector<std::string>{"END"});
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  CompletionRequest d =
      request_parse(R"({"model": "m", "messages": [{"role": "user", "content": "x"}]})",
                    RequestKind::REQUEST_CHAT);
  EXPECT_FLOAT_EQ(d.sampler.temperature, 1.0f);  // OpenAI's default
  EXPECT_FALSE(d.max_tokens.has_value());
  EXPECT_FALSE(d.stream);
}

TEST(OpenAIProtocol, PromptForms) {
  auto p = [](const std::string& prompt) {
    return request_parse(R"({"model": "m", "prompt": )" + prompt + "}",
                         RequestKind::REQUEST_COMPLETION);
  };
  EXPECT_EQ(p(R"("hello")").prompt_text, "hello");
  EXPECT_EQ(p(R"(["hello"])").prompt_text, "hello");
  EXPECT_EQ(p("[1, 2, 3]").prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_TRUE(p("[[4, 5]]").prompt_is_ids);
  EXPECT_EQ(p("[[4, 5]]").prompt_ids, (std::vector<int32_t>{4, 5}));
}

TEST(OpenAIProtocol, ErrorsNameTheField) {
  struct Case {
    std::string body;
    RequestKind kind;
    std::string param;  // "" = null
  };
  const RequestKind C = RequestKind::REQUEST_CHAT, P = RequestKind::REQUEST_COMPLETION;
  const std::string msgs = R"("messages": [{"role": "user", "content": "x"}])";
  std::vector<Case> cases = {
      {"{not json", C, ""},
      {"[1, 2]", C, ""},
      {R"({"messages": []})", C, "model"},
      {R"({"model": 5, )" + msgs + "}", C, "model"},
      {R"({"model": "m"})", C, "messages"},
      {R"({"model": "m", "messages": []})", C, "messages"},
      {R"({"model": "m", "messages": "hi"})", C, "messages"},
      {R"({"model": "m", "messages": [{"role": "wizard", "content": "x"}]})", C,
       "messages[0].role"},
      {R"({"model": "m", "messages": [{"role": "user", "content": 5}]})", C, "messages[0].content"},
      {R"({"model": "m", )" + msgs + R"(, "temperature": "hot"})", C, "temperature"},
      {R"({"model": "m", )" + msgs + R"(, "temperature": 3})", C, "temperature"},
      {R"({"model": "m", )" + msgs + R"(, "top_p": 0})", C, "top_p"},
      {R"({"model": "m", )" + msgs + R"(, "max_tokens": 0})", C, "max_tokens"},
      {R"({"model": "m", )" + msgs + R"(, "max_tokens": 2.5})", C, "max_tokens"},
      {R"({"model": "m", )" + msgs + R"(, "max_tokens": "10"})", C, "max_tokens"},
      {R"({"model": "m", )" + msgs + R"(, "n": 2})", C, "n"},
      {R"({"model": "m", )" + msgs + R"(, "stream": "yes"})", C, "stream"},
      {R"({"model": "m", )" + msgs + R"(, "stream_options": {"include_usage": true}})", C,
       "stream_options"},
      {R"({"model": "m", )" + msgs + R"(, "stop": 5})", C, "stop"},
      {R"({"model": "m", )" + msgs + R"(, "stop": [""]})", C, "stop"},
      {R"({"model": "m", )" + msgs + R"(, "logprobs": true})", C, "logprobs"},
      {R"({"model": "m", )" + msgs + R"(, "presence_penalty": 0.5})", C, "presence_penalty"},
      {R"({"model": "m", )" + msgs + R"(, "tools": [{"type": "function"}]})", C, "tools"},
      {R"({"model": "m", )" + msgs + R"(, "seed": "x"})", C, "seed"},
      {R"({"model": "m"})", P, "prompt"},
      {R"({"model": "m", "prompt": ""})", P, "prompt"},
      {R"({"model": "m", "prompt": 5})", P, "prompt"},
      {R"({"model": "m", "prompt": [1, -2]})", P, "prompt"},
      {R"({"model": "m", "prompt": ["a", "b"]})", P, "prompt"},
      {R"({"model": "m", "prompt": "x", "echo": true})", P, "echo"},
  };
  for (const Case& c : cases) {
    ApiError e = parse_error(c.body, c.kind);
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.param.value_or(""), c.param) << c.body << " -> " << e.what();
    json j = api_error_json(e);
    EXPECT_EQ(j["error"]["type"], "invalid_request_error");
    EXPECT_TRUE(j["error"]["message"].is_string() &&
                !j["error"]["message"].get<std::string>().empty());
    EXPECT_TRUE(j["error"].contains("code"));
    EXPECT_EQ(j["error"]["param"].is_null(), c.param.empty()) << c.body;
  }
}

TEST(OpenAIProtocol, JsonDumpReplacesInvalidUtf8) {
  EXPECT_EQ(json_dump(json("a\xff")), "\"a\xEF\xBF\xBD\"");
  EXPECT_EQ(sse_event(json{{"x", 1}}), "data: {\"x\":1}\n\n");
}

// ---- reasoning split ------------------------------------------------------------------------

ReasoningPiece split_in_chunks(const std::string& s, size_t chunk, bool enabled = true) {
  ReasoningSplitter sp(enabled);
  ReasoningPiece all;
  for (size_t i = 0; i < s.size(); i += chunk) {
    ReasoningPiece p = sp.feed(std::string_view(s).substr(i, chunk));
    all.reasoning += p.reasoning;
    all.content += p.content;
  }
  ReasoningPiece p = sp.finish();
  all.reasoning += p.reasoning;
  all.content += p.content;
  return all;
}

TEST(ReasoningSplit, SameResultForEveryChunking) {
  struct Case {
    std::string in, reasoning, content;
  };
  std::vector<Case> cases = {
      {"Let me think.\n</think>\n\nThe answer is 4.", "Let me think.\n", "The answer is 4."},
      {"<think>\nhmm</think>yes", "\nhmm", "yes"},
      {"cut off while thinking </thi", "cut off while thinking </thi", ""},
      {"a < b </think>x </think> y", "a < b ", "x </think> y"},
      {"</think>", "", ""},
      {"no tags at all", "no tags at all", ""},
  };
  for (const Case& c : cases) {
    for (size_t chunk = 1; chunk <= c.in.size(); chunk++) {
      ReasoningPiece p = split_in_chunks(c.in, chunk);
      EXPECT_EQ(p.reasoning, c.reasoning) << c.in << " chunk " << chunk;
      EXPECT_EQ(p.content, c.content) << c.in << " chunk " << chunk;
    }
  }
  ReasoningPiece off = split_in_chunks("a</think>b", 3, /*enabled=*/false);
  EXPECT_EQ(off.content, "a</think>b");
  EXPECT_EQ(off.reasoning, "");
}

// ---- token -> text ----------------------------------------------------------------------------

TEST(CompletionText, ThinkTokenSplitsAndStopStringsCut) {
  const Tokenizer& tok = cached_tokenizer();
  const int32_t think_end = tok.token_id("</think>");
  ASSERT_GE(think_end, 0);
  ASSERT_TRUE(tok.is_special(think_end));  // skipped by the decoder, still splits
  std::vector<int32_t> thought = tok.encode("I should add them.");
  std::vector<int32_t> answer = tok.encode("\n\nIt is four. Done here.");
  std::vector<int32_t> ids = thought;
  ids.push_back(think_end);
  ids.insert(ids.end(), answer.begin(), answer.end());
  for (size_t chunk : {size_t(1), size_t(3), ids.size()}) {
    CompletionText t(&tok, {"Done"}, /*reasoning=*/true);
    std::string r, c;
    for (size_t i = 0; i < ids.size(); i += chunk) {
      std::vector<int32_t> part(ids.begin() + i, ids.begin() + std::min(ids.size(), i + chunk));
      TextDelta d = t.feed(part);
      r += d.reasoning;
      c += d.content;
    }
    TextDelta d = t.finish();
    r += d.reasoning;
    c += d.content;
    EXPECT_EQ(r, "I should add them.") << chunk;
    EXPECT_EQ(c, "It is four. ") << chunk;
    EXPECT_TRUE(t.stop_hit());
    EXPECT_LT(t.completion_tokens(), (int64_t)ids.size());
  }
}

TEST(CompletionText, MultiByteCharactersAreNeverSplit) {
  const Tokenizer& tok = cached_tokenizer();
  const std::string s = "caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80!";
  std::vector<int32_t> ids = tok.encode(s);
  CompletionText t(&tok, {}, false);
  std::string all;
  for (int32_t id : ids) {
    TextDelta d = t.feed({id});
    EXPECT_EQ(utf8_incomplete_tail(d.content), 0u);
    all += d.content;
  }
  all += t.finish().content;
  EXPECT_EQ(all, tok.decode(ids, true));
  EXPECT_EQ(t.completion_tokens(), (int64_t)ids.size());
}

}  // namespace
