// The HTTP server in-process on an ephemeral port, driven by httplib::Client (and a raw socket
// for the disconnect): results equal generate(), streaming equals non-streaming, concurrent
// clients each get their solo result, errors are OpenAI-shaped with the right status, a client
// that leaves frees its slot, and the server keeps serving after all of it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

#include "dseek/tokenizer/chat_template.h"
#include "serve/serve_kit.h"

namespace {

using namespace dseek;
using namespace dseek::serve;
using namespace dseek_test;

ServerOptions options(int max_seqs = 4, int64_t cache = 0,
                      std::function<void()> on_step = nullptr) {
  return ServerOptions{.max_seqs = max_seqs,
                       .max_cache_tokens = cache,
                       .max_model_len = 0,
                       .threads = 0,
                       .http_threads = 0,
                       .on_step = std::move(on_step)};
}

std::vector<ModelSpec> both_models() {
  return {
      ModelSpec{
          .id = "", .model_dir = tiny_dir(), .tokenizer_path = "", .chat_template = "deepseek-v3"},
      ModelSpec{.id = "chat",
                .model_dir = text_dir(),
                .tokenizer_path = tok_path(),
                .chat_template = "deepseek-v3"}};
}

// The chat reference: prompt through the template, generate() with EOS, decode visible ids.
std::string reference_chat(ChatTemplate t, const std::string& user, int64_t max_tokens,
                           SamplerConfig s, int64_t* completion_tokens = nullptr) {
  const Tokenizer& tok = cached_tokenizer();
  std::vector<int32_t> p = tok.encode(chat_render(t, {{"user", user, std::nullopt}}, true));
  std::vector<int32_t> ids = reference_ids(text_dir(), p, max_tokens, s, {1});
  if (completion_tokens) *completion_tokens = (int64_t)ids.size();
  if (!ids.empty() && ids.back() == 1) ids.pop_back();
  return tok.decode(ids, true);
}

json chat_body(const std::string& user, int max_tokens, double temperature, int seed) {
  return json{{"model", "chat"},
              {"messages", json::array({json{{"role", "user"}, {"content", user}}})},
              {"max_tokens", max_tokens},
              {"temperature", temperature},
              {"seed", seed}};
}

TEST(Server, HealthModelsRoutesAndMethods) {
  TestServer s(both_models(), options());
  auto c = s.client();
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto models = json::parse(c.Get("/v1/models")->body);
  EXPECT_EQ(models["object"], "list");
  ASSERT_EQ(models["data"].size(), 2u);
  EXPECT_EQ(models["data"][0]["id"], "v3_tiny");
  EXPECT_EQ(models["data"][1]["id"], "chat");
  EXPECT_EQ(models["data"][1]["object"], "model");
  EXPECT_EQ(json::parse(c.Get("/v1/models/chat")->body)["id"], "chat");
  auto missing = c.Get("/v1/models/nope");
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(json::parse(missing->body)["error"]["code"], "model_not_found");
  auto route = c.Get("/v2/whatever");
  EXPECT_EQ(route->status, 404);
  EXPECT_EQ(json::parse(route->body)["error"]["type"], "invalid_request_error");
  auto method = c.Get("/v1/chat/completions");
  EXPECT_EQ(method->status, 405);
  EXPECT_EQ(method->get_header_value("Allow"), "POST");
  EXPECT_TRUE(json::parse(method->body)["error"]["message"].is_string());
  EXPECT_EQ(c.Post("/health", "", "text/plain")->status, 405);
  auto metrics = c.Get("/metrics");
  EXPECT_EQ(metrics->status, 200);
  for (const char* name :
       {"dseek_requests_total", "dseek_requests_running", "dseek_requests_waiting",
        "dseek_generated_tokens_total", "dseek_prompt_tokens_total", "dseek_cache_tokens_used",
        "dseek_cache_tokens_capacity", "dseek_decode_tokens_per_second"}) {
    EXPECT_NE(metrics->body.find(std::string("# TYPE ") + name + " "), std::string::npos) << name;
    EXPECT_NE(metrics->body.find(std::string("# HELP ") + name + " "), std::string::npos) << name;
  }
  EXPECT_EQ(s.metric("dseek_cache_tokens_capacity{model=\"v3_tiny\"}"), 4 * 256);
}

TEST(Server, CompletionWithTokenIdsEqualsGenerateWithoutTokenizer) {
  TestServer s(both_models(), options());
  const std::vector<int32_t> p = {5, 17, 42, 7};
  auto [code, j] = s.post("/v1/completions", json{{"model", "v3_tiny"},
                                                  {"prompt", p},
                                                  {"max_tokens", 12},
                                                  {"temperature", 0.8},
                                                  {"top_k", 50},
                                                  {"seed", 7},
                                                  {"ignore_eos", true}});
  ASSERT_EQ(code, 200) << j.dump();
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(ids_of(j["choices"][0]["dseek_token_ids"]),
            reference_ids(tiny_dir(), p, 12, sampling(0.8f, 7, 50)));
  EXPECT_EQ(j["choices"][0]["text"], "");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 4);
  EXPECT_EQ(j["usage"]["completion_tokens"], 12);
  EXPECT_EQ(j["usage"]["total_tokens"], 16);
  // The nested form [[ids]] is the same prompt.
  auto [code2, j2] = s.post("/v1/completions", json{{"model", "v3_tiny"},
                                                    {"prompt", json::array({p})},
                                                    {"max_tokens", 12},
                                                    {"temperature", 0.8},
                                                    {"top_k", 50},
                                                    {"seed", 7},
                                                    {"ignore_eos", true}});
  EXPECT_EQ(code2, 200);
  EXPECT_EQ(j2["choices"][0]["dseek_token_ids"], j["choices"][0]["dseek_token_ids"]);
  // Chat needs a tokenizer: a clear 400.
  auto [code3, j3] =
      s.post("/v1/chat/completions",
             json{{"model", "v3_tiny"},
                  {"messages", json::array({json{{"role", "user"}, {"content", "x"}}})}});
  EXPECT_EQ(code3, 400);
  EXPECT_NE(j3["error"]["message"].get<std::string>().find("no tokenizer"), std::string::npos);
}

TEST(Server, ChatEqualsGenerateAndStreamingEqualsNonStreaming) {
  TestServer s(both_models(), options());
  int64_t ref_tokens = 0;
  const std::string want = reference_chat(ChatTemplate::CHAT_DEEPSEEK_V3, "Tell me a story.", 24,
                                          sampling(0.0f, 0), &ref_tokens);
  ASSERT_FALSE(want.empty());
  json body = chat_body("Tell me a story.", 24, 0.0, 1);
  auto [code, j] = s.post("/v1/chat/completions", body);
  ASSERT_EQ(code, 200) << j.dump();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "chat");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], want);
  EXPECT_FALSE(j["choices"][0]["message"].contains("reasoning_content"));
  EXPECT_EQ(j["usage"]["completion_tokens"], ref_tokens);

  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  auto r = s.client().Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  std::vector<std::string> ev = sse_payloads(r->body);
  ASSERT_GE(ev.size(), 4u);
  EXPECT_EQ(ev.back(), "[DONE]");
  std::string streamed, finish;
  json first = json::parse(ev[0]);
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  for (size_t i = 0; i + 2 < ev.size(); i++) {
    json c = json::parse(ev[i]);
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    EXPECT_TRUE(c["usage"].is_null());
    const json& d = c["choices"][0]["delta"];
    if (d.contains("content")) streamed += d["content"].get<std::string>();
    if (!c["choices"][0]["finish_reason"].is_null()) finish = c["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(streamed, want);
  EXPECT_EQ(finish, j["choices"][0]["finish_reason"]);
  json usage = json::parse(ev[ev.size() - 2]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"], j["usage"]);
}

TEST(Server, StopStringCutsTheText) {
  TestServer s(both_models(), options());
  const std::string full =
      reference_chat(ChatTemplate::CHAT_DEEPSEEK_V3, "Once upon a time", 40, sampling(0.0f, 0));
  ASSERT_GE(full.size(), 12u);
  const std::string stop = full.substr(full.size() / 2, 3);
  const std::string want = full.substr(0, full.find(stop));
  json body = chat_body("Once upon a time", 40, 0.0, 0);
  body["stop"] = json::array({stop, "never-appears-xyz"});
  auto [code, j] = s.post("/v1/chat/completions", body);
  ASSERT_EQ(code, 200);
  EXPECT_EQ(j["choices"][0]["message"]["content"], want);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  body["stream"] = true;
  auto r = s.client().Post("/v1/chat/completions", body.dump(), "application/json");
  std::string streamed;
  for (const std::string& e : sse_payloads(r->body)) {
    if (e == "[DONE]") continue;
    json d = json::parse(e)["choices"][0]["delta"];
    if (d.contains("content")) streamed += d["content"].get<std::string>();
  }
  EXPECT_EQ(streamed, want);
}

TEST(Server, R1TemplateReturnsReasoningContent) {
  std::vector<ModelSpec> spec = {ModelSpec{.id = "r1",
                                           .model_dir = text_dir(),
                                           .tokenizer_path = tok_path(),
                                           .chat_template = "deepseek-r1"}};
  TestServer s(spec, options());
  // The random model never writes </think>: everything is reasoning (cut off by the limit).
  const std::string want =
      reference_chat(ChatTemplate::CHAT_DEEPSEEK_R1, "What is 2+2?", 16, sampling(0.0f, 0));
  json body = chat_body("What is 2+2?", 16, 0.0, 0);
  body["model"] = "r1";
  auto [code, j] = s.post("/v1/chat/completions", body);
  ASSERT_EQ(code, 200) << j.dump();
  EXPECT_EQ(j["choices"][0]["message"]["reasoning_content"], want);
  EXPECT_EQ(j["choices"][0]["message"]["content"], "");
  body["stream"] = true;
  auto r = s.client().Post("/v1/chat/completions", body.dump(), "application/json");
  std::string reasoning;
  for (const std::string& e : sse_payloads(r->body)) {
    if (e == "[DONE]") continue;
    json d = json::parse(e)["choices"][0]["delta"];
    if (d.contains("reasoning_content")) reasoning += d["reasoning_content"].get<std::string>();
    if (d.contains("content")) {
      EXPECT_EQ(d["content"], "");
    }
  }
  EXPECT_EQ(reasoning, want);
}

TEST(Server, EightConcurrentClientsEachGetTheirSoloResult) {
  TestServer s(both_models(),
               options(4, 0, [] { std::this_thread::sleep_for(std::chrono::microseconds(500)); }));
  constexpr int kClients = 8;
  std::vector<json> got(kClients);
  std::vector<int> codes(kClients);
  std::vector<std::thread> th;
  auto prompt = [](int i) {
    std::vector<int32_t> p;
    for (int k = 0; k < 2 + i; k++) p.push_back((i * 37 + k * 11) % 500 + 3);
    return p;
  };
  for (int i = 0; i < kClients; i++) {
    th.emplace_back([&, i] {
      json body = {{"model", "v3_tiny"},       {"prompt", prompt(i)},
                   {"max_tokens", 10 + 2 * i}, {"temperature", i % 2 ? 0.0 : 1.0},
                   {"seed", 1000 + i},         {"ignore_eos", true},
                   {"stream", i % 3 == 0}};
      auto r = s.client().Post("/v1/completions", body.dump(), "application/json");
      codes[i] = r ? r->status : -1;
      if (!r) return;
      if (i % 3 != 0) {
        got[i] = json::parse(r->body)["choices"][0]["dseek_token_ids"];
        return;
      }
      got[i] = json::array();
      for (const std::string& e : sse_payloads(r->body)) {
        if (e == "[DONE]") continue;
        const json chunk = json::parse(e);
        for (const auto& id : chunk["choices"][0]["dseek_token_ids"]) got[i].push_back(id);
      }
    });
  }
  for (auto& t : th) t.join();
  for (int i = 0; i < kClients; i++) {
    ASSERT_EQ(codes[i], 200) << i;
    EXPECT_EQ(ids_of(got[i]), reference_ids(tiny_dir(), prompt(i), 10 + 2 * i,
                                            sampling(i % 2 ? 0.0f : 1.0f, 1000 + i)))
        << "client " << i;
  }
  EngineStats st = s.srv->engine("v3_tiny").stats();
  for (int i = 0; i < 500 && st.running > 0; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    st = s.srv->engine("v3_tiny").stats();
  }
  EXPECT_GE(st.max_running_seen, 2);  // they were batched
  EXPECT_LE(st.max_running_seen, 4);
  EXPECT_EQ(st.running, 0);
}

TEST(Server, TinyCacheBudgetQueuesInsteadOfFailing) {
  // 20 cache tokens: one request of 4 + 12 at a time; the others wait and all complete.
  TestServer s(both_models(), options(8, 20));
  std::vector<std::thread> th;
  std::vector<json> got(5);
  for (int i = 0; i < 5; i++) {
    th.emplace_back([&, i] {
      auto [code, j] = s.post("/v1/completions", json{{"model", "v3_tiny"},
                                                      {"prompt", {9, 9, 9, 9 + i}},
                                                      {"max_tokens", 12},
                                                      {"temperature", 0},
                                                      {"ignore_eos", true}});
      if (code == 200) got[i] = j["choices"][0]["dseek_token_ids"];
    });
  }
  for (auto& t : th) t.join();
  for (int i = 0; i < 5; i++)
    EXPECT_EQ(ids_of(got[i]), reference_ids(tiny_dir(), {9, 9, 9, 9 + i}, 12, sampling(0, 0)));
  EXPECT_EQ(s.srv->engine("v3_tiny").stats().max_running_seen, 1);
  // What can never fit is refused up front, not queued.
  auto [code, j] = s.post("/v1/completions",
                          json{{"model", "v3_tiny"}, {"prompt", {1, 2, 3, 4}}, {"max_tokens", 17}});
  EXPECT_EQ(code, 400);
  EXPECT_EQ(j["error"]["code"], "context_length_exceeded");
}

TEST(Server, InvalidRequestsGetOpenAIErrorsAndTheServerKeepsServing) {
  TestServer s(both_models(), options());
  struct Case {
    std::string body;
    int status;
    std::string param;  // "" = null
  };
  const std::string msgs = R"("messages": [{"role": "user", "content": "hi"}])";
  std::vector<Case> cases = {
      {"{\"model\": ", 400, ""},
      {R"({"model": "gpt-4o", )" + msgs + "}", 404, "model"},
      {R"({"model": "chat", )" + msgs + R"(, "max_tokens": 100000})", 400, "messages"},
      {R"({"model": "chat", )" + msgs + R"(, "temperature": "warm"})", 400, "temperature"},
      {R"({"model": "chat", )" + msgs + R"(, "n": 3})", 400, "n"},
      {R"({"model": "chat", "messages": [{"role": "user"}], "top_k": -5})", 400, "top_k"},
  };
  for (const Case& c : cases) {
    auto [code, j] = s.post("/v1/chat/completions", c.body);
    EXPECT_EQ(code, c.status) << c.body;
    ASSERT_TRUE(j.contains("error")) << j.dump();
    EXPECT_EQ(j["error"]["type"], "invalid_request_error");
    EXPECT_EQ(j["error"]["param"].is_null() ? "" : j["error"]["param"].get<std::string>(), c.param)
        << c.body;
  }
  auto [code, j] = s.post(
      "/v1/chat/completions",
      std::string(
          R"({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000})"));
  EXPECT_EQ(code, 400);
  EXPECT_EQ(j["error"]["code"], "context_length_exceeded");
  auto [code2, j2] = s.post("/v1/completions", json{{"model", "v3_tiny"}, {"prompt", {1, 600}}});
  EXPECT_EQ(code2, 400);
  EXPECT_NE(j2["error"]["message"].get<std::string>().find("vocabulary"), std::string::npos);
  auto [code3, j3] = s.post("/v1/completions", json{{"model", "v3_tiny"}, {"prompt", "text"}});
  EXPECT_EQ(code3, 400);  // a text prompt needs a tokenizer
  EXPECT_GE(s.srv->metrics().requests("bad_request"), 9);
  // Still serving.
  auto [ok, r] = s.post("/v1/chat/completions", chat_body("hi", 4, 0.0, 0));
  EXPECT_EQ(ok, 200) << r.dump();
  EXPECT_EQ(s.srv->metrics().requests("ok"), 1);
}

// Sends a streaming request on a raw socket, reads until the first event, and hangs up.
void stream_and_hang_up(int port, const std::string& body) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, (sockaddr*)&addr, sizeof addr), 0);
  std::string req =
      "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\n"
      "Content-Type: application/json\r\nContent-Length: ";
  req.append(std::to_string(body.size())).append("\r\n\r\n").append(body);
  ASSERT_EQ(::send(fd, req.data(), req.size(), 0), (ssize_t)req.size());
  std::string got;
  char buf[512];
  while (got.find("data: ") == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, (size_t)n);
  }
  EXPECT_NE(got.find("200 OK"), std::string::npos) << got;
  ::close(fd);
}

TEST(Server, ClientThatDisconnectsFreesItsSlot) {
  TestServer s(both_models(),
               options(1, 0, [] { std::this_thread::sleep_for(std::chrono::milliseconds(5)); }));
  const std::string body = json{
      {"model", "v3_tiny"},
      {"prompt", {1, 2, 3}},
      {"max_tokens", 200},
      {"stream", true},
      {"ignore_eos", true}}.dump();
  stream_and_hang_up(s.port, body);
  double running = -1;
  for (int i = 0; i < 500; i++) {
    running = s.metric("dseek_requests_running{model=\"v3_tiny\"}");
    if (running == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(running, 0);
  EXPECT_EQ(s.metric("dseek_cache_tokens_used{model=\"v3_tiny\"}"), 0);
  EXPECT_LT(s.metric("dseek_generated_tokens_total{model=\"v3_tiny\"}"), 200);  // cut short
  for (int i = 0; i < 100 && s.srv->metrics().requests("cancelled") == 0; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(s.srv->metrics().requests("cancelled"), 1);
  EXPECT_EQ(s.metric("dseek_requests_total{status=\"cancelled\"}"), 1);
  // The single slot is free again: the next request runs and is right.
  auto [code, j] = s.post("/v1/completions", json{{"model", "v3_tiny"},
                                                  {"prompt", {1, 2, 3}},
                                                  {"max_tokens", 5},
                                                  {"temperature", 0},
                                                  {"ignore_eos", true}});
  ASSERT_EQ(code, 200);
  EXPECT_EQ(ids_of(j["choices"][0]["dseek_token_ids"]),
            reference_ids(tiny_dir(), {1, 2, 3}, 5, sampling(0, 0)));
}

}  // namespace
