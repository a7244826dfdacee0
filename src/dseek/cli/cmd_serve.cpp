// `dseek serve --model DIR`: an OpenAI-compatible HTTP server (chat completions, completions,
// models, health, Prometheus metrics) with continuous batching on the CPU backend. The work is
// in src/dseek/serve/; this file only maps flags to ModelSpec / ServerOptions, prints the
// resolved configuration once and serves until killed. docs/serving.md is the user's guide.
#include <cstdio>
#include <filesystem>

#include "dseek/cli/command.h"
#include "dseek/core/error.h"
#include "dseek/serve/server.h"

namespace {

using namespace dseek;
using namespace dseek::cli;

struct Args {
  std::vector<std::string> model_dirs, names;
  std::string tokenizer, chat_template = "deepseek-v3", host = "127.0.0.1";
  int port = 8000;
  serve::ServerOptions opt;
};

int run(const Args& a) {
  namespace fs = std::filesystem;
  DSEEK_CHECK(!a.model_dirs.empty(), "give a model folder with --model DIR");
  DSEEK_CHECK(a.names.empty() || a.names.size() == a.model_dirs.size(),
              "--served-model-name was given {} times for {} --model folders (give it once per "
              "model, or not at all)",
              a.names.size(), a.model_dirs.size());
  DSEEK_CHECK(a.tokenizer.empty() || a.model_dirs.size() == 1,
              "--tokenizer applies to a single --model; with several models put a "
              "tokenizer.json in each folder");
  DSEEK_CHECK(a.port >= 0 && a.port <= 65535, "--port must be in [0, 65535], got {}", a.port);
  std::vector<serve::ModelSpec> specs;
  for (size_t i = 0; i < a.model_dirs.size(); i++) {
    const std::string& dir = a.model_dirs[i];
    DSEEK_CHECK(fs::is_directory(dir), "--model {}: no such folder", dir);
    DSEEK_CHECK(fs::exists(fs::path(dir) / "config.json"),
                "--model {}: no config.json in that folder (expected a Hugging Face checkpoint: "
                "config.json + *.safetensors)",
                dir);
    specs.push_back({.id = a.names.empty() ? "" : a.names[i],
                     .model_dir = dir,
                     .tokenizer_path = a.tokenizer,
                     .chat_template = a.chat_template});
  }
  serve::Server server(specs, a.opt);
  const int port = server.bind(a.host, a.port);
  std::fputs(server.describe().c_str(), stderr);
  std::fprintf(stderr, "[serve] listening on http://%s:%d (OpenAI API under /v1)\n", a.host.c_str(),
               port);
  std::fflush(stderr);
  server.listen();
  return 0;
}

const bool reg = add_command(
    {"serve", "OpenAI-compatible HTTP server with continuous batching",
     [](CLI::App* sub, int* rc) {
       static Args a;
       sub->add_option("-m,--model", a.model_dirs,
                       "model folder (config.json + *.safetensors); repeat to serve several")
           ->required();
       sub->add_option("--served-model-name", a.names,
                       "the model id clients use (default: the folder name); once per --model");
       sub->add_option("--tokenizer", a.tokenizer,
                       "tokenizer.json (default: the one in the model folder; without any, only "
                       "/v1/completions with token-id prompts works)");
       sub->add_option("--template", a.chat_template,
                       "chat template: deepseek-v3, deepseek-r1 (splits <think> into "
                       "reasoning_content), deepseek-v3-0324")
           ->capture_default_str();
       sub->add_option("--host", a.host, "address to listen on")->capture_default_str();
       sub->add_option("--port", a.port, "port (0 = any free port)")->capture_default_str();
       sub->add_option("--max-seqs", a.opt.max_seqs, "requests decoded together per step")
           ->capture_default_str();
       sub->add_option("--max-cache-tokens", a.opt.max_cache_tokens,
                       "latent-cache budget in tokens; each running request holds prompt + "
                       "max_tokens of it, others wait (default: max-seqs * max-model-len)");
       sub->add_option("--max-model-len", a.opt.max_model_len,
                       "longest prompt + completion of one request (default: the model's "
                       "max_position_embeddings)");
       sub->add_option("--threads", a.opt.threads,
                       "OpenMP threads of the engine (default: OMP_NUM_THREADS or all cores)");
       sub->footer(
           "Endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models,\n"
           "GET /health, GET /metrics. See docs/serving.md.\n"
           "Examples:\n"
           "  dseek serve -m tests/fixtures/dseek_yarn_tied --tokenizer "
           "tests/fixtures/tokenizer_v3style/tokenizer.json\n"
           "  curl localhost:8000/v1/chat/completions -H 'Content-Type: application/json' \\\n"
           "    -d '{\"model\": \"dseek_yarn_tied\", \"messages\": [{\"role\": \"user\", "
           "\"content\": \"Hi\"}]}'\n");
       sub->callback([rc] { *rc = run(a); });
     },
     13});

}  // namespace
