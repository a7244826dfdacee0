// `dseek bench serve` (src/dseek/cli/cmd_bench_serve.cpp) as a user runs it, against the server
// in-process on an ephemeral port: 16 streaming clients, 32 chat requests through a batch of 4
// (so requests queue), 4 malformed requests mixed in. No request fails, each request's text is
// its solo greedy completion (generate() on a separately loaded model), the malformed ones got
// 400s, and the server keeps serving. Then the failure paths: every request 404 (an unknown
// model) is reported as failed with exit code 1; a bad --url is a one-line error, exit code 2.
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "cli/cli_kit.h"
#include "dseek/tokenizer/chat_template.h"
#include "serve/serve_kit.h"

namespace {

using namespace dseek;
using namespace dseek::serve;
using namespace dseek_test;

// The solo greedy completion of one user message: template, generate() with EOS, visible text.
std::string solo_chat(const std::string& user, int64_t max_tokens) {
  const Tokenizer& tok = cached_tokenizer();
  std::vector<int32_t> p =
      tok.encode(chat_render(ChatTemplate::CHAT_DEEPSEEK_V3, {{"user", user, std::nullopt}}, true));
  std::vector<int32_t> ids = reference_ids(text_dir(), p, max_tokens, sampling(0.0f, 0), {1});
  if (!ids.empty() && ids.back() == 1) ids.pop_back();
  return tok.decode(ids, true);
}

std::vector<ModelSpec> chat_model() {
  return {ModelSpec{.id = "chat",
                    .model_dir = text_dir(),
                    .tokenizer_path = tok_path(),
                    .chat_template = "deepseek-v3"}};
}

ServerOptions batch_of(int max_seqs) {
  return ServerOptions{.max_seqs = max_seqs,
                       .max_cache_tokens = 0,
                       .max_model_len = 0,
                       .threads = 0,
                       .http_threads = 0,
                       .on_step = nullptr};
}

json bench_json(const std::string& out) {
  const size_t at = out.find("BENCH_SERVE_JSON ");
  if (at == std::string::npos) return json();
  return json::parse(out.substr(at + 17, out.find('\n', at) - at - 17));
}

TEST(BenchServe, SixteenClientsNoFailureSoloTextsAndMalformedGet400) {
  TestServer s(chat_model(), batch_of(4));
  const std::string out_file =
      testing::TempDir() + "/bench_serve_" + std::to_string(getpid()) + ".jsonl";
  const std::vector<std::string> prompts = {"Tell me a story.", "What is 2 + 2?", "Name a colour.",
                                            "Hello there"};
  std::string args = "bench serve --url http://127.0.0.1:" + std::to_string(s.port) +
                     " --model chat --clients 16 --requests 32 --bad-requests 4 -n 12 --out " +
                     out_file;
  for (const auto& p : prompts) args += " --prompt '" + p + "'";
  CliResult r = dseek_cli(args);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("failed requests     0\n"), std::string::npos) << r.out;
  json j = bench_json(r.out);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_EQ(j["failed"], 0);
  EXPECT_EQ(j["ok"], 32);
  EXPECT_EQ(j["bad_rejected"], 4);
  EXPECT_GT(j["output_tokens"].get<int64_t>(), 0);
  EXPECT_GT(j["ttft_ms"]["p50"].get<double>(), 0.0);
  EXPECT_LE(j["ttft_ms"]["p50"].get<double>(), j["latency_ms"]["p50"].get<double>());
  EXPECT_LE(j["latency_ms"]["p50"].get<double>(), j["latency_ms"]["p99"].get<double>());

  std::map<std::string, std::string> want;
  for (const auto& p : prompts) want[p] = solo_chat(p, 12);
  std::ifstream f(out_file);
  std::string line;
  int chats = 0, bad = 0;
  int64_t tokens = 0;
  while (std::getline(f, line)) {
    json o = json::parse(line);
    ASSERT_TRUE(o["ok"].get<bool>()) << line;
    if (o["kind"] == "chat") {
      chats++;
      tokens += o["completion_tokens"].get<int64_t>();
      EXPECT_EQ(o["status"], 200);
      EXPECT_EQ(o["text"], want.at(o["prompt"].get<std::string>())) << line;
    } else {
      bad++;
      EXPECT_EQ(o["status"], 400) << line;
    }
  }
  std::filesystem::remove(out_file);
  EXPECT_EQ(chats, 32);
  EXPECT_EQ(bad, 4);
  EXPECT_EQ(tokens, j["output_tokens"].get<int64_t>());
  // the server counted them the same way and still serves
  EXPECT_EQ(s.metric("dseek_requests_total{status=\"ok\"}"), 32);
  EXPECT_EQ(s.metric("dseek_requests_total{status=\"bad_request\"}"), 4);
  auto [code, body] =
      s.post("/v1/chat/completions",
             json{{"model", "chat"},
                  {"messages", json::array({json{{"role", "user"}, {"content", prompts[0]}}})},
                  {"max_tokens", 12},
                  {"temperature", 0}});
  ASSERT_EQ(code, 200) << body.dump();
  EXPECT_EQ(body["choices"][0]["message"]["content"], want[prompts[0]]);
}

TEST(BenchServe, FailuresAreCountedAndBadFlagsAreOneLine) {
  TestServer s(chat_model(), batch_of(2));
  CliResult r = dseek_cli("bench serve --url http://127.0.0.1:" + std::to_string(s.port) +
                          " --model no-such-model --clients 3 --requests 5 -n 4");
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  json j = bench_json(r.out);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_EQ(j["failed"], 5);
  EXPECT_EQ(j["ok"], 0);
  EXPECT_NE(r.err.find("HTTP 404"), std::string::npos) << r.err;

  CliResult bad = dseek_cli("bench serve --url ftp://x:1");
  EXPECT_EQ(bad.code, 2);
  EXPECT_EQ(bad.err,
            "dseek: --url must look like http://HOST:PORT (plain http), got 'ftp://x:1'\n");
  CliResult none = dseek_cli("bench serve --url http://127.0.0.1:1 --requests 1");
  EXPECT_EQ(none.code, 2);
  EXPECT_EQ(none.err.rfind("dseek: no server answers GET http://127.0.0.1:1/health", 0), 0u)
      << none.err;
  CliResult clients = dseek_cli("bench serve --clients 0");
  EXPECT_EQ(clients.code, 2);
  EXPECT_EQ(clients.err, "dseek: --clients must be in [1, 1024], got 0\n");
}

}  // namespace
