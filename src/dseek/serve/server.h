// Server: the OpenAI-compatible HTTP front of `dseek serve` (cpp-httplib). It loads each model
// (+ tokenizer), gives each its own Scheduler, and maps the routes:
//   POST /v1/chat/completions, POST /v1/completions   (streaming with server-sent events or not)
//   GET  /v1/models, GET /v1/models/{id}, GET /health, GET /metrics (Prometheus text)
// Every error is an OpenAI-style body {"error": {"message", "type", "param", "code"}}: 400 for
// invalid requests, 404 for an unknown model (code "model_not_found") or route, 405 for a
// wrong method, 500 for an internal error. A streaming client that disconnects cancels its
// request, so its slot and cache free at the engine's next step. No handler ever exits the
// process: a bad request costs only its own response.
// Not here: request parsing (openai_protocol.h), batching (scheduler.h), text (completion_text.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dseek/serve/scheduler.h"
#include "dseek/serve/serve_metrics.h"

namespace dseek::serve {

struct ModelSpec {
  std::string id;              // the "model" clients name; empty = the folder's name
  std::string model_dir;       // config.json + *.safetensors
  std::string tokenizer_path;  // empty = MODEL/tokenizer.json when it exists, else none
  std::string chat_template = "deepseek-v3";  // deepseek-r1 => reasoning_content split
};

struct ServerOptions {
  int max_seqs = 8;               // running requests per model
  int64_t max_cache_tokens = 0;   // per model; 0 = max_seqs * max_model_len
  int64_t max_model_len = 0;      // 0 = the model's max_position_embeddings
  int threads = 0;                // OpenMP threads per engine; 0 = OpenMP's default
  int http_threads = 0;           // connection threads; 0 = max(32, 4 * max_seqs)
  std::function<void()> on_step;  // passed to every engine (tests slow it down); may be null
};

class Server {
 public:
  // Loads every model; throws dseek::Error (bad folder, no config.json, unknown template, a
  // duplicate model id, ...).
  Server(const std::vector<ModelSpec>& models, const ServerOptions& opt);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds host:port (port 0 = any free port) and returns the port; throws dseek::Error.
  int bind(const std::string& host, int port);
  void listen();  // serves until stop(); call after bind()
  void stop();    // from any thread: ends listen() after the requests in flight end

  std::vector<std::string> model_ids() const;
  Scheduler& engine(const std::string& id);  // throws dseek::Error for an unknown id
  const ServeMetrics& metrics() const;
  std::string describe() const;  // the resolved configuration, one "[serve]" line per fact

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dseek::serve
