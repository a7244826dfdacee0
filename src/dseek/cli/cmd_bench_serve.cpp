// `dseek bench serve`: a load generator against a running `dseek serve` (any OpenAI-compatible
// server works). `--clients` threads, each with its own keep-alive HTTP connection (opened with a
// GET /health before the clock starts, so connection setup is not timed), take the next
// request of a shared list until `--requests` streaming chat completions are done:
//   POST /v1/chat/completions {"stream": true, "stream_options": {"include_usage": true}, ...}
// and read the server-sent events as they arrive. Per request it records the time to first
// token (TTFT: from sending the request to the first chunk that carries text, content or
// reasoning_content; the finishing chunk if no text ever comes), the end-to-end latency (until
// `data: [DONE]`), and usage.completion_tokens. A request fails on a transport error, a status
// other than 200, or a malformed stream: a payload that is not JSON or has no choices, an
// `error` event, no finish_reason, no usage, or no final [DONE].
// `--bad-requests N` mixes N malformed requests into the list (bad JSON, a wrong type, no
// messages, max_tokens over the context, in turn): each must get HTTP 400 with an OpenAI error
// body ({"error": {"message": ...}}), else it counts as failed too.
// Prints requests/s, output tokens/s (completion tokens over the wall time of the whole run),
// TTFT, latency and time per output token (TPOT = (latency - TTFT) / (tokens - 1)) as p50 /
// p90 / p99 (linear interpolation between order statistics), the failed requests and a last
// line BENCH_SERVE_JSON {...}; --out FILE writes one JSON line per request (text included).
// Exit code 0 when no request failed, 1 otherwise, 2 for bad flags or no server at --url.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <latch>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>          // httplib::Client (cpp-httplib)
#include <nlohmann/json.hpp>  // request bodies, SSE payloads, the report

#include "dseek/cli/command.h"
#include "dseek/core/error.h"

namespace dseek::cli {

namespace {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

struct ServeBenchArgs {
  std::string url = "http://127.0.0.1:8000", model, out;
  std::vector<std::string> prompts;
  int clients = 64, requests = 256, bad_requests = 0, timeout_s = 600;
  int64_t max_tokens = 64;
  double temperature = 0.0;
  uint64_t seed = 0;
  bool ignore_eos = false;
};

const std::vector<std::string> kDefaultPrompts = {"Tell me a story.",
                                                  "What is 17 + 25?",
                                                  "Write a short poem about the sea.",
                                                  "Explain what a cache is in one sentence.",
                                                  "List three colours.",
                                                  "And the king said",
                                                  "Summarize the plot of a detective novel.",
                                                  "How do birds fly?"};

enum class ReqKind { REQ_CHAT, REQ_BAD_JSON, REQ_BAD_TYPE, REQ_NO_MESSAGES, REQ_TOO_LONG };
const char* req_kind_name(ReqKind k) {
  switch (k) {
    case ReqKind::REQ_CHAT:
      return "chat";
    case ReqKind::REQ_BAD_JSON:
      return "bad_json";
    case ReqKind::REQ_BAD_TYPE:
      return "bad_type";
    case ReqKind::REQ_NO_MESSAGES:
      return "no_messages";
    case ReqKind::REQ_TOO_LONG:
      return "too_long";
  }
  return "?";
}

struct Outcome {
  int index = 0;
  ReqKind kind = ReqKind::REQ_CHAT;
  std::string prompt;
  int status = -1;  // HTTP status; -1 = no response
  bool ok = false;
  std::string error;  // why it failed
  double ttft_ms = -1, latency_ms = -1;
  int64_t completion_tokens = 0;
  std::string finish_reason, text;
};

// ---------------------------------------------------------------------------------------------
// the server-sent event stream of one chat completion

class SseReader {
 public:
  explicit SseReader(clock_type::time_point t0) : t0_(t0) {}

  void feed(const char* data, size_t n) {
    raw_.append(data, n);
    size_t end;
    while ((end = buf_find_event_end()) != std::string::npos) {
      std::string event = raw_.substr(pos_, end - pos_);
      pos_ = end;
      while (pos_ < raw_.size() && (raw_[pos_] == '\n' || raw_[pos_] == '\r')) pos_++;
      on_event(event);
    }
  }
  const std::string& raw() const { return raw_; }

  // Fills the stream part of `o` (ok, error, text, ...); latency from t_end.
  void finish(Outcome& o, clock_type::time_point t_end) const {
    o.latency_ms = ms_since(t_end);
    o.text = text_;
    o.finish_reason = finish_reason_;
    o.completion_tokens = completion_tokens_;
    o.ttft_ms = first_text_ms_ >= 0 ? first_text_ms_ : finish_ms_;
    if (!error_.empty()) {
      o.error = error_;
    } else if (pos_ < raw_.size() && raw_.find_first_not_of("\r\n", pos_) != std::string::npos) {
      o.error = "stream ended inside an event";
    } else if (!done_) {
      o.error = "no data: [DONE] at the end of the stream";
    } else if (finish_reason_.empty()) {
      o.error = "no chunk with a finish_reason";
    } else if (!have_usage_) {
      o.error = "no usage chunk (stream_options.include_usage was sent)";
    } else {
      o.ok = true;
    }
  }

 private:
  size_t buf_find_event_end() const {
    const size_t a = raw_.find("\n\n", pos_), b = raw_.find("\r\n\r\n", pos_);
    return std::min(a, b);
  }
  double ms_since(clock_type::time_point t) const {
    return std::chrono::duration<double, std::milli>(t - t0_).count();
  }
  void fail(const std::string& why) {
    if (error_.empty()) error_ = why;
  }
  void on_event(const std::string& event) {
    std::string data;
    size_t at = 0;
    while (at < event.size()) {
      size_t nl = event.find('\n', at);
      if (nl == std::string::npos) nl = event.size();
      std::string line = event.substr(at, nl - at);
      at = nl + 1;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty() || line[0] == ':') continue;  // SSE comment (keep-alive)
      if (line.rfind("data:", 0) == 0) {
        std::string v = line.substr(5);
        if (!v.empty() && v[0] == ' ') v.erase(0, 1);
        data += data.empty() ? v : "\n" + v;
      }
    }
    if (data.empty()) return;
    if (done_) return fail("data after [DONE]");
    if (data == "[DONE]") {
      done_ = true;
      return;
    }
    json j = json::parse(data, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return fail("an SSE payload is not a JSON object");
    if (j.contains("error")) return fail("error event: " + j["error"].dump());
    if (!j.contains("choices") || !j["choices"].is_array())
      return fail("an SSE payload has no choices array");
    if (j.contains("usage") && j["usage"].is_object()) {
      const json& u = j["usage"];
      if (!u.contains("completion_tokens") || !u["completion_tokens"].is_number_integer())
        return fail("usage without an integer completion_tokens");
      completion_tokens_ = u["completion_tokens"].get<int64_t>();
      have_usage_ = true;
    }
    for (const json& c : j["choices"]) {
      if (!c.is_object() || !c.contains("delta") || !c["delta"].is_object())
        return fail("a choice without a delta object");
      for (const char* key : {"content", "reasoning_content"}) {
        if (c["delta"].contains(key) && c["delta"][key].is_string()) {
          const std::string s = c["delta"][key].get<std::string>();
          if (!s.empty() && first_text_ms_ < 0) first_text_ms_ = ms_since(clock_type::now());
          if (std::string(key) == "content") text_ += s;
        }
      }
      if (c.contains("finish_reason") && c["finish_reason"].is_string()) {
        if (!finish_reason_.empty()) return fail("two chunks with a finish_reason");
        finish_reason_ = c["finish_reason"].get<std::string>();
        finish_ms_ = ms_since(clock_type::now());
      }
    }
  }

  clock_type::time_point t0_;
  std::string raw_;
  size_t pos_ = 0;
  bool done_ = false, have_usage_ = false;
  std::string error_, text_, finish_reason_;
  int64_t completion_tokens_ = 0;
  double first_text_ms_ = -1, finish_ms_ = -1;
};

// ---------------------------------------------------------------------------------------------
// one request

struct Url {
  std::string host;
  int port = 80;
};

Url parse_url(const std::string& s) {
  DSEEK_CHECK(s.rfind("http://", 0) == 0,
              "--url must look like http://HOST:PORT (plain http), got '{}'", s);
  std::string rest = s.substr(7);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  DSEEK_CHECK(rest.find('/') == std::string::npos,
              "--url takes no path (the API is under /v1 of HOST:PORT), got '{}'", s);
  Url u;
  const size_t colon = rest.rfind(':');
  u.host = rest.substr(0, colon);
  if (colon != std::string::npos) {
    const std::string p = rest.substr(colon + 1);
    DSEEK_CHECK(!p.empty() && p.find_first_not_of("0123456789") == std::string::npos &&
                    p.size() <= 5 && std::stoi(p) <= 65535,
                "--url: bad port '{}'", p);
    u.port = std::stoi(p);
  }
  DSEEK_CHECK(!u.host.empty(), "--url: no host in '{}'", s);
  return u;
}

std::string request_body(const ServeBenchArgs& a, const std::string& model, ReqKind kind,
                         const std::string& prompt, int index) {
  json msgs = json::array({json{{"role", "user"}, {"content", prompt}}});
  json j = {{"model", model},
            {"messages", msgs},
            {"max_tokens", a.max_tokens},
            {"temperature", a.temperature},
            {"seed", a.seed + (uint64_t)index},
            {"stream", true},
            {"stream_options", {{"include_usage", true}}}};
  if (a.ignore_eos) j["ignore_eos"] = true;
  switch (kind) {
    case ReqKind::REQ_CHAT:
      break;
    case ReqKind::REQ_BAD_JSON:
      return j.dump().substr(0, 24);  // cut off mid-object
    case ReqKind::REQ_BAD_TYPE:
      j["max_tokens"] = "many";
      break;
    case ReqKind::REQ_NO_MESSAGES:
      j.erase("messages");
      break;
    case ReqKind::REQ_TOO_LONG:
      j["max_tokens"] = 1000000000;
      break;
  }
  return j.dump();
}

Outcome send_one(httplib::Client& cli, const std::string& body, Outcome o) {
  const auto t0 = clock_type::now();
  SseReader sse(t0);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.headers = {{"Accept", "text/event-stream"}};
  req.body = body;
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
    sse.feed(d, n);
    return true;
  };
  httplib::Result r = cli.send(req);
  const auto t1 = clock_type::now();
  if (!r) {
    o.error = "transport error: " + httplib::to_string(r.error());
    o.latency_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    return o;
  }
  o.status = r->status;
  if (o.kind != ReqKind::REQ_CHAT) {  // must be a 400 with an OpenAI error body
    o.latency_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    json j = json::parse(sse.raw(), nullptr, false);
    const bool shaped = !j.is_discarded() && j.is_object() && j.contains("error") &&
                        j["error"].is_object() && j["error"].contains("message") &&
                        j["error"]["message"].is_string();
    if (r->status != 400) {
      o.error = "malformed request answered " + std::to_string(r->status) + ", not 400";
    } else if (!shaped) {
      o.error = "400 without an OpenAI error body";
    } else {
      o.ok = true;
    }
    return o;
  }
  if (r->status != 200) {
    o.error = "HTTP " + std::to_string(r->status) + ": " + sse.raw().substr(0, 200);
    return o;
  }
  sse.finish(o, t1);
  return o;
}

// ---------------------------------------------------------------------------------------------
// the run and the report

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const double x = q * (double)(v.size() - 1);
  const size_t i = (size_t)x;
  if (i + 1 >= v.size()) return v.back();
  return v[i] + (x - (double)i) * (v[i + 1] - v[i]);
}

json pct_json(const std::vector<double>& v) {
  return {{"p50", percentile(v, 0.50)}, {"p90", percentile(v, 0.90)}, {"p99", percentile(v, 0.99)}};
}

int bench_serve(const ServeBenchArgs& a) {
  DSEEK_CHECK(a.clients >= 1 && a.clients <= 1024, "--clients must be in [1, 1024], got {}",
              a.clients);
  DSEEK_CHECK(a.requests >= 1, "--requests must be >= 1, got {}", a.requests);
  DSEEK_CHECK(a.bad_requests >= 0, "--bad-requests must be >= 0, got {}", a.bad_requests);
  DSEEK_CHECK(a.max_tokens >= 1, "--max-tokens must be >= 1, got {}", a.max_tokens);
  DSEEK_CHECK(a.timeout_s >= 1, "--timeout must be >= 1 second, got {}", a.timeout_s);
  const Url url = parse_url(a.url);
  std::string model = a.model;
  {
    httplib::Client c(url.host, url.port);
    c.set_connection_timeout(5, 0);
    c.set_read_timeout(30, 0);
    auto h = c.Get("/health");
    DSEEK_CHECK(h && h->status == 200, "no server answers GET {}/health ({})", a.url,
                h ? "HTTP " + std::to_string(h->status) : httplib::to_string(h.error()));
    if (model.empty()) {
      auto m = c.Get("/v1/models");
      json j = m ? json::parse(m->body, nullptr, false) : json();
      DSEEK_CHECK(m && m->status == 200 && j.is_object() && j.contains("data") &&
                      j["data"].is_array() && !j["data"].empty(),
                  "GET {}/v1/models did not list a model; pass --model ID", a.url);
      model = j["data"][0]["id"].get<std::string>();
    }
  }
  const std::vector<std::string>& prompts = a.prompts.empty() ? kDefaultPrompts : a.prompts;

  // the list: chat requests with the malformed ones spread evenly among them
  std::vector<Outcome> todo;
  const int total = a.requests + a.bad_requests;
  int bad_done = 0, chat_done = 0;
  for (int i = 0; i < total; i++) {
    Outcome o;
    o.index = i;
    const bool bad = bad_done < a.bad_requests &&
                     (int64_t)(i + 1) * a.bad_requests >= (int64_t)(bad_done + 1) * total;
    if (bad) {
      static const ReqKind kinds[] = {ReqKind::REQ_BAD_JSON, ReqKind::REQ_BAD_TYPE,
                                      ReqKind::REQ_NO_MESSAGES, ReqKind::REQ_TOO_LONG};
      o.kind = kinds[bad_done++ % 4];
    } else {
      o.prompt = prompts[chat_done++ % prompts.size()];
    }
    todo.push_back(o);
  }

  std::fprintf(stderr,
               "[bench] %d streaming chat requests (+%d malformed) from %d clients to %s, model "
               "`%s`, max_tokens %ld, temperature %g\n",
               a.requests, a.bad_requests, a.clients, a.url.c_str(), model.c_str(),
               (long)a.max_tokens, a.temperature);
  std::vector<Outcome> done(total);
  std::atomic<int> next{0}, finished{0};
  std::mutex print_mu;
  const int n_clients = std::min(a.clients, total);
  std::latch connected(n_clients + 1);
  std::vector<std::thread> threads;
  for (int c = 0; c < n_clients; c++) {
    threads.emplace_back([&] {
      httplib::Client cli(url.host, url.port);
      cli.set_keep_alive(true);
      cli.set_tcp_nodelay(true);
      cli.set_connection_timeout(30, 0);
      cli.set_read_timeout(a.timeout_s, 0);
      cli.set_write_timeout(a.timeout_s, 0);
      cli.Get("/health");  // open the connection before the clock starts
      connected.arrive_and_wait();
      for (int i; (i = next.fetch_add(1)) < total;) {
        const Outcome& o = todo[i];
        done[i] = send_one(cli, request_body(a, model, o.kind, o.prompt, i), o);
        const int f = finished.fetch_add(1) + 1;
        if (f % std::max(1, total / 10) == 0 || f == total) {
          std::lock_guard<std::mutex> lk(print_mu);
          std::fprintf(stderr, "[bench] %d/%d requests done\n", f, total);
        }
      }
    });
  }
  connected.arrive_and_wait();
  const auto t_start = clock_type::now();
  for (auto& t : threads) t.join();
  const double wall = std::chrono::duration<double>(clock_type::now() - t_start).count();

  std::vector<double> ttft, lat, tpot;
  int64_t tokens = 0;
  int failed = 0, chat_ok = 0, bad_ok = 0;
  for (const Outcome& o : done) {
    if (!o.ok) {
      failed++;
      if (failed <= 5)
        std::fprintf(stderr, "[bench] request %d (%s) failed: %s\n", o.index, req_kind_name(o.kind),
                     o.error.c_str());
      continue;
    }
    if (o.kind != ReqKind::REQ_CHAT) {
      bad_ok++;
      continue;
    }
    chat_ok++;
    tokens += o.completion_tokens;
    ttft.push_back(o.ttft_ms);
    lat.push_back(o.latency_ms);
    if (o.completion_tokens > 1)
      tpot.push_back((o.latency_ms - o.ttft_ms) / (double)(o.completion_tokens - 1));
  }
  if (!a.out.empty()) {
    std::ofstream f(a.out);
    DSEEK_CHECK(f.good(), "--out {}: cannot write", a.out);
    for (const Outcome& o : done)
      f << json{{"index", o.index},
                {"kind", req_kind_name(o.kind)},
                {"prompt", o.prompt},
                {"status", o.status},
                {"ok", o.ok},
                {"error", o.error},
                {"ttft_ms", o.ttft_ms},
                {"latency_ms", o.latency_ms},
                {"completion_tokens", o.completion_tokens},
                {"finish_reason", o.finish_reason},
                {"text", o.text}}
               .dump()
        << "\n";
  }

  auto row = [](const char* name, const std::vector<double>& v) {
    std::printf("  %-22s p50 %8.1f   p90 %8.1f   p99 %8.1f\n", name, percentile(v, 0.5),
                percentile(v, 0.9), percentile(v, 0.99));
  };
  std::printf("dseek bench serve: %s, model `%s`, %d clients, max_tokens %ld\n", a.url.c_str(),
              model.c_str(), a.clients, (long)a.max_tokens);
  std::printf("  requests            %d ok of %d streaming chat", chat_ok, a.requests);
  if (a.bad_requests > 0) std::printf("; %d of %d malformed answered 400", bad_ok, a.bad_requests);
  std::printf("\n  failed requests     %d\n", failed);
  std::printf("  wall time           %.2f s\n", wall);
  std::printf("  requests/s          %.2f\n", chat_ok / wall);
  std::printf("  output tokens/s     %.1f (%ld tokens)\n", tokens / wall, (long)tokens);
  row("TTFT ms", ttft);
  row("latency ms", lat);
  row("TPOT ms", tpot);
  json j = {{"url", a.url},
            {"model", model},
            {"clients", a.clients},
            {"requests", a.requests},
            {"bad_requests", a.bad_requests},
            {"max_tokens", a.max_tokens},
            {"temperature", a.temperature},
            {"ok", chat_ok},
            {"bad_rejected", bad_ok},
            {"failed", failed},
            {"wall_s", wall},
            {"requests_per_s", chat_ok / wall},
            {"output_tokens", tokens},
            {"output_tokens_per_s", tokens / wall},
            {"ttft_ms", pct_json(ttft)},
            {"latency_ms", pct_json(lat)},
            {"tpot_ms", pct_json(tpot)}};
  std::printf("BENCH_SERVE_JSON %s\n", j.dump().c_str());
  std::fflush(stdout);
  return failed == 0 ? 0 : 1;
}

}  // namespace

void setup_bench_serve(CLI::App* sub, int* exit_code) {
  auto a = std::make_shared<ServeBenchArgs>();
  sub->add_option("--url", a->url, "server address, http://HOST:PORT")->capture_default_str();
  sub->add_option("--model", a->model, "model id to request (default: the first of /v1/models)");
  sub->add_option("--clients", a->clients, "concurrent clients (one connection each)")
      ->capture_default_str();
  sub->add_option("--requests", a->requests, "streaming chat completions to send in all")
      ->capture_default_str();
  sub->add_option("-n,--max-tokens", a->max_tokens, "max_tokens of each request")
      ->capture_default_str();
  sub->add_option("--temperature", a->temperature, "temperature of each request (0 = greedy)")
      ->capture_default_str();
  sub->add_option("--seed", a->seed, "request i sends seed + i")->capture_default_str();
  sub->add_option("--prompt", a->prompts,
                  "user message (repeatable; requests cycle through them; default: 8 built-in)");
  sub->add_flag("--ignore-eos", a->ignore_eos,
                "ask the server to run every request to max_tokens (fixed output lengths)");
  sub->add_option("--bad-requests", a->bad_requests,
                  "malformed requests mixed in; each must be answered 400")
      ->capture_default_str();
  sub->add_option("--timeout", a->timeout_s, "seconds a client waits on a silent connection")
      ->capture_default_str();
  sub->add_option("--out", a->out, "write one JSON line per request (timings, text) to FILE");
  sub->footer(
      "Exit code 0 when every request succeeded, 1 when any failed.\n"
      "Example:\n"
      "  dseek serve -m runs/tiny/checkpoint --port 8000 --max-seqs 64 &\n"
      "  dseek bench serve --url http://127.0.0.1:8000 --clients 64 --requests 256 "
      "--max-tokens 64\n");
  sub->callback([a, exit_code] { *exit_code = bench_serve(*a); });
}

}  // namespace dseek::cli
