// Test kit for tests/serve: fixtures, the reference (generate() on a separately loaded model),
// an in-process server on an ephemeral port, and small HTTP helpers.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "dseek/infer/generate.h"
#include "dseek/model/model.h"
#include "dseek/serve/server.h"
#include "dseek/tokenizer/tokenizer.h"

namespace dseek_test {

using nlohmann::json;

inline std::string fixture(const std::string& name) {
  return std::string(DSEEK_FIXTURES) + "/" + name;
}
// v3_tiny: vocab 512, no tokenizer. dseek_yarn_tied: vocab 3000, matches tokenizer_v3style.
inline std::string tiny_dir() {
  return fixture("v3_tiny");
}
inline std::string text_dir() {
  return fixture("dseek_yarn_tied");
}
inline std::string tok_path() {
  return fixture("tokenizer_v3style/tokenizer.json");
}

inline const dseek::Model& cached_model(const std::string& dir) {
  static std::map<std::string, std::unique_ptr<dseek::Model>> models;
  auto& m = models[dir];
  if (!m) m = std::make_unique<dseek::Model>(dseek::Model::load(dir));
  return *m;
}
inline const dseek::Tokenizer& cached_tokenizer() {
  static dseek::Tokenizer t = dseek::Tokenizer::load(tok_path());
  return t;
}

// The tokens generate() makes for this request on its own.
inline std::vector<int32_t> reference_ids(const std::string& dir, const std::vector<int32_t>& p,
                                          int64_t max_tokens, dseek::SamplerConfig s,
                                          std::vector<int32_t> stop_ids = {}) {
  const dseek::Model& m = cached_model(dir);
  dseek::LatentCache cache = m.new_cache();
  dseek::GenerateOptions o;
  o.max_new_tokens = max_tokens;
  o.sampler = s;
  o.stop_ids = std::move(stop_ids);
  return dseek::generate(m, cache, p, o);
}

inline dseek::SamplerConfig sampling(float temperature, uint64_t seed, int top_k = 0,
                                     float top_p = 1.0f) {
  return {.temperature = temperature,
          .top_k = top_k,
          .top_p = top_p,
          .min_p = 0.0f,
          .repetition_penalty = 1.0f,
          .seed = seed};
}

// A Server listening on 127.0.0.1:<ephemeral> in a background thread.
struct TestServer {
  std::unique_ptr<dseek::serve::Server> srv;
  int port = 0;
  std::thread th;

  TestServer(const std::vector<dseek::serve::ModelSpec>& specs,
             const dseek::serve::ServerOptions& opt) {
    srv = std::make_unique<dseek::serve::Server>(specs, opt);
    port = srv->bind("127.0.0.1", 0);
    th = std::thread([this] { srv->listen(); });
    for (int i = 0; i < 200; i++) {
      auto r = client().Get("/health");
      if (r && r->status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "server did not come up";
  }
  ~TestServer() {
    srv->stop();
    th.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    return c;
  }
  // POST JSON; returns (status, parsed body or the raw text as a JSON string).
  std::pair<int, json> post(const std::string& path, const std::string& body) const {
    auto r = client().Post(path.c_str(), body, "application/json");
    if (!r) return {-1, json()};
    json j = json::parse(r->body, nullptr, false);
    return {r->status, j.is_discarded() ? json(r->body) : j};
  }
  std::pair<int, json> post(const std::string& path, const json& body) const {
    return post(path, body.dump());
  }
  // Value of a Prometheus series, e.g. "dseek_requests_running{model=\"v3_tiny\"}"; -1 if absent.
  double metric(const std::string& series) const {
    auto r = client().Get("/metrics");
    if (!r) return -1;
    size_t at = r->body.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(r->body.substr(at + series.size() + 2));
  }
};

// The "data: " payloads of an SSE body, in order ([DONE] included as a string).
inline std::vector<std::string> sse_payloads(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    size_t end = body.find("\n\n", pos);
    out.push_back(body.substr(pos + 6, end - pos - 6));
    pos = end;
  }
  return out;
}

inline std::vector<int32_t> ids_of(const json& j) {
  return j.get<std::vector<int32_t>>();
}

}  // namespace dseek_test
