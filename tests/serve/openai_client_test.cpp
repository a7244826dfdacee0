// The official OpenAI node client (tests/serve/openai_client.js) against a real `dseek serve`
// process: models list, chat (plain and streamed), completions with token ids on a model that
// has no tokenizer, and errors surfacing as the client's BadRequestError / NotFoundError.
// Needs node and .cache/npm/node_modules/openai (scripts/npm_deps.sh): skipped without them,
// failed without them under CI=true.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "dseek/tokenizer/chat_template.h"
#include "serve/serve_kit.h"

extern char** environ;

namespace {

using namespace dseek;
using namespace dseek_test;
namespace fs = std::filesystem;

bool have_openai_client() {
  return fs::exists(std::string(DSEEK_SOURCE_DIR) +
                    "/.cache/npm/node_modules/openai/package.json") &&
         std::system("node --version >/dev/null 2>&1") == 0;
}

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

std::string read_all(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(OpenAIClient, OfficialNodeClientAgainstDseekServe) {
  if (!have_openai_client()) {
    if (in_ci())
      FAIL() << "node + npm openai (.cache/npm) missing (CI=true: run scripts/npm_deps.sh)";
    GTEST_SKIP() << "node + npm openai missing: run scripts/npm_deps.sh to enable this test";
  }
  // A model folder that carries its own tokenizer.json, as a hub checkpoint does.
  const fs::path dir =
      fs::path(testing::TempDir()) / ("dseek_serve_chat_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(fs::path(text_dir()) / f, dir / f);
  fs::copy_file(tok_path(), dir / "tokenizer.json");
  const std::string log = (dir / "serve.log").string();

  // dseek serve on a free port, stderr to the log (where it prints the port).
  std::vector<std::string> args = {DSEEK_BINARY,          "serve", "--model", dir.string(),
                                   "--served-model-name", "chat",  "--model", tiny_dir(),
                                   "--served-model-name", "tiny",  "--port",  "0",
                                   "--max-seqs",          "2"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  ASSERT_EQ(posix_spawn(&pid, DSEEK_BINARY, &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  std::string base;
  for (int i = 0; i < 600 && base.empty(); i++) {
    const std::string text = read_all(log);
    const size_t at = text.find("listening on http://");
    if (at != std::string::npos && text.find(" ", at + 20) != std::string::npos)
      base = text.substr(at + 13, text.find(" ", at + 20) - at - 13);
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::string out;
  int rc = -1;
  if (!base.empty()) {
    const std::string cmd = "node '" + std::string(DSEEK_SOURCE_DIR) +
                            "/tests/serve/openai_client.js' '" + base + "' chat tiny";
    FILE* p = popen(cmd.c_str(), "r");
    std::array<char, 4096> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
    rc = pclose(p);
  }
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  const std::string server_log = read_all(log);
  fs::remove_all(dir);
  ASSERT_FALSE(base.empty()) << "dseek serve did not start:\n" << server_log;
  ASSERT_EQ(rc, 0) << "node client failed; stdout: " << out << "\nserver log:\n" << server_log;

  json j = json::parse(out);
  EXPECT_EQ(j["models"], json::array({"chat", "tiny"}));
  int64_t ref_tokens = 0;
  const Tokenizer& tok = cached_tokenizer();
  std::vector<int32_t> p =
      tok.encode(chat_render(ChatTemplate::CHAT_DEEPSEEK_V3,
                             {{"user", std::string("Tell me a story."), std::nullopt}}, true));
  std::vector<int32_t> ids = reference_ids(text_dir(), p, 16, sampling(0, 0), {1});
  ref_tokens = (int64_t)ids.size();
  if (!ids.empty() && ids.back() == 1) ids.pop_back();
  const std::string want = tok.decode(ids, true);
  EXPECT_EQ(j["chat"]["content"], want);
  EXPECT_EQ(j["chat"]["usage"]["prompt_tokens"], (int64_t)p.size());
  EXPECT_EQ(j["chat"]["usage"]["completion_tokens"], ref_tokens);
  EXPECT_EQ(j["chat_stream"]["content"], want);
  EXPECT_EQ(j["chat_stream"]["finish_reason"], j["chat"]["finish_reason"]);
  EXPECT_EQ(j["chat_stream"]["usage"], j["chat"]["usage"]);
  EXPECT_EQ(ids_of(j["completion"]["ids"]),
            reference_ids(tiny_dir(), {5, 17, 42, 7}, 8, sampling(0, 0)));
  EXPECT_EQ(j["completion"]["text"], "");
  EXPECT_EQ(j["completion"]["finish_reason"], "length");
  EXPECT_EQ(j["bad_request"]["is_bad_request"], true) << j["bad_request"].dump();
  EXPECT_EQ(j["bad_request"]["status"], 400);
  EXPECT_EQ(j["bad_request"]["param"], "temperature");
  EXPECT_EQ(j["not_found"]["is_not_found"], true) << j["not_found"].dump();
  EXPECT_EQ(j["not_found"]["status"], 404);
  EXPECT_EQ(j["not_found"]["code"], "model_not_found");
  EXPECT_NE(server_log.find("[serve] model `chat`"), std::string::npos) << server_log;
}

TEST(OpenAIClient, ServeFlagErrorsAreOneLine) {
  const std::string cmd = std::string(DSEEK_BINARY) + " serve --model /no/such/dir 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 1024> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = pclose(p);
  EXPECT_EQ(WEXITSTATUS(st), 2);
  EXPECT_EQ(out, "dseek: --model /no/such/dir: no such folder\n");
}

}  // namespace
