// Server implementation: the routes and their contract are in server.h. A request's life:
// parse (openai_protocol) -> resolve the model -> tokenize and check the limits -> submit to
// the model's Scheduler -> turn token ids into text (CompletionText) -> one JSON body, or SSE
// chunks written from httplib's chunked content provider (a failed write = the client left =
// cancel). Everything that can fail becomes an ApiError and an OpenAI-style error body.
#include "dseek/serve/server.h"

#include <csignal>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <optional>
#include <random>

#include <httplib.h>  // cpp-httplib: Server, Request, Response, DataSink

#include "dseek/core/error.h"
#include "dseek/serve/completion_text.h"
#include "dseek/serve/openai_protocol.h"
#include "dseek/tokenizer/chat_template.h"
#include "dseek/tokenizer/tokenizer.h"

namespace dseek::serve {

using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// constants

namespace {

constexpr auto kPoll = std::chrono::milliseconds(1000);  // stream keep-alive / disconnect probe
constexpr size_t kMaxBodyBytes = 32u << 20;

const json kOmit = json(json::value_t::discarded);  // "no usage key" for the chunk builders

int64_t unix_now() {
  return (int64_t)std::time(nullptr);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// one served model

namespace {

struct Served {
  std::string id, dir;
  Model model;
  std::optional<Tokenizer> tok;
  ChatTemplate tmpl = ChatTemplate::CHAT_DEEPSEEK_V3;
  bool reasoning = false;  // R1: split <think> into reasoning_content
  int64_t max_model_len = 0, max_cache_tokens = 0;
  int32_t eos = -1;
  int64_t created = 0;
  std::unique_ptr<Scheduler> engine;
};

// What a validated request turns into.
struct Job {
  Served* m = nullptr;
  CompletionRequest req;
  SeqRequest seq;
};

}  // namespace

struct Server::Impl {
  std::vector<std::unique_ptr<Served>> models;
  ServerOptions opt;
  ServeMetrics metrics;
  httplib::Server http;
  std::atomic<uint64_t> next_id{0};
  uint64_t id_salt = 0;
  std::atomic<bool> stopping{false};

  Served& find(const std::string& id) {
    for (auto& m : models)
      if (m->id == id) return *m;
    throw ApiError(404,
                   fmt::format("The model `{}` does not exist. Served models: {}.", id,
                               fmt::join(ids(), ", ")),
                   "model", "model_not_found");
  }
  std::vector<std::string> ids() const {
    std::vector<std::string> out;
    for (const auto& m : models) out.push_back(m->id);
    return out;
  }
  std::string new_id(const char* prefix) {
    return fmt::format("{}{:016x}{:08x}", prefix, id_salt, next_id.fetch_add(1));
  }

  Job prepare(const std::string& body, RequestKind kind);
  void complete(const httplib::Request& req, httplib::Response& res, RequestKind kind);
  void respond_full(httplib::Response& res, Job& job, std::shared_ptr<SeqHandle> h);
  void respond_stream(httplib::Response& res, Job& job, std::shared_ptr<SeqHandle> h);
  void routes();
};

// ---------------------------------------------------------------------------------------------
// validation: request -> token ids and limits

namespace {

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(json_dump(api_error_json(e)), "application/json");
}

}  // namespace

Job Server::Impl::prepare(const std::string& body, RequestKind kind) {
  Job job;
  job.req = request_parse(body, kind);
  Served& m = find(job.req.model);
  job.m = &m;
  const CompletionRequest& r = job.req;
  const char* prompt_param = kind == RequestKind::REQUEST_CHAT ? "messages" : "prompt";
  std::vector<int32_t> ids;
  if (kind == RequestKind::REQUEST_CHAT || !r.prompt_is_ids) {
    if (!m.tok)
      throw ApiError(400,
                     fmt::format("model `{}` has no tokenizer loaded (no tokenizer.json in {}; "
                                 "start dseek serve with --tokenizer FILE). Without one, "
                                 "/v1/completions accepts a prompt given as token ids.",
                                 m.id, m.dir),
                     prompt_param);
    if (kind == RequestKind::REQUEST_CHAT) {
      ids = m.tok->encode(chat_render(m.tmpl, r.messages, /*add_generation_prompt=*/true));
    } else {
      ids = m.tok->encode(r.prompt_text);
      if (m.tok->bos_id() >= 0) ids.insert(ids.begin(), m.tok->bos_id());
    }
  } else {
    ids = r.prompt_ids;
  }
  const int64_t V = m.model.cfg.vocab_size;
  for (size_t i = 0; i < ids.size(); i++) {
    if (ids[i] < 0 || ids[i] >= V)
      throw ApiError(400,
                     fmt::format("token id {} at prompt position {} is outside the model's "
                                 "vocabulary [0, {})",
                                 ids[i], i, V),
                     prompt_param);
  }
  if (!r.stop.empty() && !m.tok)
    throw ApiError(400, "'stop' strings need a tokenizer, and this model has none", "stop");
  const int64_t P = (int64_t)ids.size();
  const int64_t limit = std::min(m.max_model_len, m.max_cache_tokens);
  const int64_t max_tokens = r.max_tokens ? *r.max_tokens : limit - P;
  if (max_tokens < 1 || P + max_tokens > m.max_model_len)
    throw ApiError(400,
                   fmt::format("This model's maximum context length is {} tokens. However, you "
                               "requested {} tokens ({} in the {}, {} in the completion). "
                               "Please reduce the length of the {} or completion.",
                               m.max_model_len, P + std::max<int64_t>(max_tokens, 1), P,
                               prompt_param, std::max<int64_t>(max_tokens, 1), prompt_param),
                   prompt_param, "context_length_exceeded");
  if (P + max_tokens > m.max_cache_tokens)
    throw ApiError(400,
                   fmt::format("prompt ({} tokens) + max_tokens ({}) exceeds the server's cache "
                               "budget of {} tokens per request (--max-cache-tokens)",
                               P, max_tokens, m.max_cache_tokens),
                   r.max_tokens ? "max_tokens" : prompt_param, "context_length_exceeded");
  job.seq.prompt = std::move(ids);
  job.seq.max_tokens = max_tokens;
  job.seq.sampler = r.sampler;
  if (!r.seed_given) job.seq.sampler.seed = std::random_device{}() * 0x100000001ull;
  try {
    sampler_config_validate(job.seq.sampler);
  } catch (const Error& e) {
    throw ApiError(400, e.what());
  }
  if (!r.ignore_eos && m.eos >= 0) job.seq.stop_ids.push_back(m.eos);
  return job;
}

// ---------------------------------------------------------------------------------------------
// responses

void Server::Impl::complete(const httplib::Request& req, httplib::Response& res, RequestKind kind) {
  try {
    if (stopping.load())
      throw ApiError(503, "the server is shutting down", std::nullopt, std::nullopt,
                     "server_error");
    Job job = prepare(req.body, kind);
    std::shared_ptr<SeqHandle> h = job.m->engine->submit(job.seq);
    if (job.req.stream) {
      respond_stream(res, job, std::move(h));
    } else {
      respond_full(res, job, std::move(h));
    }
  } catch (const ApiError& e) {
    send_error(res, e);
    metrics.request_done(e.status >= 500 ? "error" : "bad_request");
  } catch (const Error& e) {
    send_error(res, ApiError(400, e.what()));
    metrics.request_done("bad_request");
  } catch (const std::exception& e) {
    send_error(res, ApiError(500, std::string("internal error: ") + e.what(), std::nullopt,
                             std::nullopt, "server_error"));
    metrics.request_done("error");
  }
}

namespace {

// Drops the engine's stop token (EOS), which is never shown.
std::vector<int32_t> visible_tokens(SeqHandle::Update& u) {
  if (u.finished && u.last_is_stop && !u.tokens.empty()) u.tokens.pop_back();
  return std::move(u.tokens);
}

std::string finish_name(const CompletionText& text, FinishReason r) {
  return text.stop_hit() || r == FinishReason::FINISH_STOP ? "stop" : "length";
}

// completion_tokens: the answer's ids, plus the stop token when one ended it.
int64_t completion_tokens(const CompletionText& text, const SeqHandle::Update& last) {
  return text.completion_tokens() + (!text.stop_hit() && last.last_is_stop ? 1 : 0);
}

}  // namespace

void Server::Impl::respond_full(httplib::Response& res, Job& job, std::shared_ptr<SeqHandle> h) {
  Served& m = *job.m;
  CompletionText text(m.tok ? &*m.tok : nullptr, job.req.stop, m.reasoning);
  std::string content, reasoning;
  std::vector<int32_t> ids;
  SeqHandle::Update u;
  while (true) {
    u = h->wait(kPoll);
    if (stopping.load()) m.engine->cancel(h);
    TextDelta d = text.feed(visible_tokens(u));
    content += d.content;
    reasoning += d.reasoning;
    ids.insert(ids.end(), d.ids.begin(), d.ids.end());
    if (text.stop_hit()) {
      m.engine->cancel(h);  // the stop string ends it; free the slot now
      break;
    }
    if (u.finished) break;
  }
  if (!text.stop_hit() && u.reason == FinishReason::FINISH_ERROR)
    throw ApiError(500, "generation failed: " + u.error, std::nullopt, std::nullopt,
                   "server_error");
  if (!text.stop_hit() && u.reason == FinishReason::FINISH_CANCELLED)
    throw ApiError(503, "the request was cancelled (server shutting down)", std::nullopt,
                   std::nullopt, "server_error");
  TextDelta tail = text.finish();
  content += tail.content;
  reasoning += tail.reasoning;
  const std::string finish = finish_name(text, u.reason);
  const json usage = usage_json(h->prompt_tokens(), completion_tokens(text, u));
  const std::string id = new_id(job.req.kind == RequestKind::REQUEST_CHAT ? "chatcmpl-" : "cmpl-");
  json body;
  if (job.req.kind == RequestKind::REQUEST_CHAT) {
    body = chat_response_json(id, unix_now(), m.id, content,
                              m.reasoning ? std::optional<std::string>(reasoning) : std::nullopt,
                              finish, usage);
  } else {
    body = completion_response_json(id, unix_now(), m.id, content, ids, finish, usage);
  }
  res.set_content(json_dump(body), "application/json");
  metrics.request_done("ok");
}

namespace {

// Everything a stream needs after the handler returned (httplib calls the provider later).
struct StreamState {
  Served* m = nullptr;
  CompletionRequest req;
  std::shared_ptr<SeqHandle> h;
  std::string id;
  int64_t created = 0;
  std::optional<CompletionText> text;
  std::string outcome = "cancelled";  // set to ok / error when the stream ends properly
};

}  // namespace

void Server::Impl::respond_stream(httplib::Response& res, Job& job, std::shared_ptr<SeqHandle> h) {
  auto st = std::make_shared<StreamState>();
  st->m = job.m;
  st->req = std::move(job.req);
  st->h = std::move(h);
  st->created = unix_now();
  const bool chat = st->req.kind == RequestKind::REQUEST_CHAT;
  st->id = new_id(chat ? "chatcmpl-" : "cmpl-");
  st->text.emplace(st->m->tok ? &*st->m->tok : nullptr, st->req.stop, st->m->reasoning);
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");

  auto provider = [this, st, chat](size_t, httplib::DataSink& sink) -> bool {
    Served& m = *st->m;
    const json usage_none = st->req.include_usage ? json(nullptr) : kOmit;
    auto send = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
    auto chunk = [&](const TextDelta& d, const std::string& finish) {
      if (chat) {
        json delta = json::object();
        if (!d.reasoning.empty()) delta["reasoning_content"] = d.reasoning;
        if (!d.content.empty()) delta["content"] = d.content;
        return chat_chunk_json(st->id, st->created, m.id, delta, finish, true, usage_none);
      }
      return completion_chunk_json(st->id, st->created, m.id, d.content, d.ids, finish, true,
                                   usage_none);
    };
    if (chat && !send(sse_event(chat_chunk_json(st->id, st->created, m.id,
                                                json{{"role", "assistant"}, {"content", ""}}, "",
                                                true, usage_none)))) {
      m.engine->cancel(st->h);
      return false;
    }
    SeqHandle::Update u;
    while (true) {
      u = st->h->wait(kPoll);
      if (stopping.load()) m.engine->cancel(st->h);
      const bool idle = u.tokens.empty() && !u.finished;
      TextDelta d = st->text->feed(visible_tokens(u));
      bool ok = true;
      if (!d.content.empty() || !d.reasoning.empty() || !d.ids.empty()) {
        ok = send(sse_event(chunk(d, "")));
      } else if (idle) {
        ok = send(": keep-alive\n\n");  // an SSE comment: finds a client that left while queued
      }
      if (!ok) {
        m.engine->cancel(st->h);  // the client disconnected: free its slot
        return false;
      }
      if (st->text->stop_hit()) {
        m.engine->cancel(st->h);
        break;
      }
      if (u.finished) break;
    }
    if (!st->text->stop_hit() &&
        (u.reason == FinishReason::FINISH_ERROR || u.reason == FinishReason::FINISH_CANCELLED)) {
      const bool err = u.reason == FinishReason::FINISH_ERROR;
      ApiError e(err ? 500 : 503, err ? "generation failed: " + u.error : "request cancelled",
                 std::nullopt, std::nullopt, "server_error");
      send(sse_event(api_error_json(e)));
      send(kSseDone);
      sink.done();
      st->outcome = err ? "error" : "cancelled";
      return true;
    }
    TextDelta tail = st->text->finish();
    const std::string finish = finish_name(*st->text, u.reason);
    bool ok = send(sse_event(chunk(tail, finish)));
    if (ok && st->req.include_usage) {
      const json usage = usage_json(st->h->prompt_tokens(), completion_tokens(*st->text, u));
      const json last =
          chat ? chat_chunk_json(st->id, st->created, m.id, json::object(), "", false, usage)
               : completion_chunk_json(st->id, st->created, m.id, "", {}, "", false, usage);
      ok = send(sse_event(last));
    }
    ok = ok && send(kSseDone);
    if (!ok) return false;
    sink.done();
    st->outcome = "ok";
    return true;
  };
  // Runs when the response is destroyed, whatever happened: make sure the engine lets go.
  auto release = [this, st](bool) {
    st->m->engine->cancel(st->h);
    metrics.request_done(st->outcome);
  };
  res.set_chunked_content_provider("text/event-stream", provider, release);
}

// ---------------------------------------------------------------------------------------------
// routes

void Server::Impl::routes() {
  auto json_reply = [](httplib::Response& res, const json& j) {
    res.set_content(json_dump(j), "application/json");
  };
  auto model_card = [](const Served& m) {
    return json{{"id", m.id},
                {"object", "model"},
                {"created", m.created},
                {"owned_by", "dseek"},
                {"max_model_len", m.max_model_len}};
  };
  http.Get("/health", [json_reply](const httplib::Request&, httplib::Response& res) {
    json_reply(res, json{{"status", "ok"}});
  });
  http.Get("/v1/models",
           [this, json_reply, model_card](const httplib::Request&, httplib::Response& res) {
             json data = json::array();
             for (const auto& m : models) data.push_back(model_card(*m));
             json_reply(res, json{{"object", "list"}, {"data", data}});
           });
  http.Get(R"(/v1/models/(.+))",
           [this, json_reply, model_card](const httplib::Request& req, httplib::Response& res) {
             try {
               json_reply(res, model_card(find(req.matches[1].str())));
             } catch (const ApiError& e) {
               send_error(res, e);
             }
           });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    std::vector<std::pair<std::string, EngineStats>> engines;
    for (const auto& m : models) engines.emplace_back(m->id, m->engine->stats());
    res.set_content(metrics.prometheus(engines), "text/plain; version=0.0.4; charset=utf-8");
  });
  http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    complete(req, res, RequestKind::REQUEST_CHAT);
  });
  http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    complete(req, res, RequestKind::REQUEST_COMPLETION);
  });

  // 405 for a known path with the wrong method.
  auto wrong_method = [](const char* allow) {
    return [allow](const httplib::Request& req, httplib::Response& res) {
      res.set_header("Allow", allow);
      send_error(res, ApiError(405, fmt::format("Method {} is not allowed on {} (use {})",
                                                req.method, req.path, allow)));
    };
  };
  for (const char* p : {"/health", "/v1/models", R"(/v1/models/(.+))", "/metrics"}) {
    http.Post(p, wrong_method("GET"));
    http.Put(p, wrong_method("GET"));
    http.Delete(p, wrong_method("GET"));
    http.Patch(p, wrong_method("GET"));
  }
  for (const char* p : {"/v1/chat/completions", "/v1/completions"}) {
    http.Get(p, wrong_method("POST"));
    http.Put(p, wrong_method("POST"));
    http.Delete(p, wrong_method("POST"));
    http.Patch(p, wrong_method("POST"));
  }
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // a handler already wrote its error body
    const std::string msg =
        res.status == 404 ? fmt::format(
                                "Unknown request URL: {} {}. Routes: POST "
                                "/v1/chat/completions, POST /v1/completions, GET "
                                "/v1/models, GET /health, GET /metrics.",
                                req.method, req.path)
                          : fmt::format("HTTP {} for {} {}", res.status, req.method, req.path);
    send_error(res, ApiError(res.status, msg));
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res,
                                std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(
        res, ApiError(500, "internal error: " + what, std::nullopt, std::nullopt, "server_error"));
  });
}

// ---------------------------------------------------------------------------------------------
// public entry points

Server::Server(const std::vector<ModelSpec>& specs, const ServerOptions& opt)
    : impl_(std::make_unique<Impl>()) {
  namespace fs = std::filesystem;
  DSEEK_CHECK(!specs.empty(), "no model given (pass --model DIR)");
  DSEEK_CHECK(opt.max_seqs >= 1, "--max-seqs must be >= 1, got {}", opt.max_seqs);
  impl_->opt = opt;
  impl_->id_salt = ((uint64_t)std::random_device{}() << 32) ^ std::random_device{}();
  for (const ModelSpec& s : specs) {
    DSEEK_CHECK(fs::is_directory(s.model_dir), "model folder {} does not exist", s.model_dir);
    DSEEK_CHECK(fs::exists(fs::path(s.model_dir) / "config.json"),
                "model folder {} has no config.json", s.model_dir);
    auto m = std::make_unique<Served>();
    m->dir = s.model_dir;
    m->id = s.id;
    if (m->id.empty()) m->id = fs::path(s.model_dir).lexically_normal().filename().string();
    if (m->id.empty() || m->id == ".")
      m->id = fs::absolute(s.model_dir).lexically_normal().parent_path().filename().string();
    for (const auto& other : impl_->models)
      DSEEK_CHECK(other->id != m->id,
                  "two models are served as `{}` (give one --served-model-name per --model)",
                  m->id);
    m->tmpl = chat_template_from_name(s.chat_template);
    m->reasoning = m->tmpl == ChatTemplate::CHAT_DEEPSEEK_R1;
    m->model = Model::load(s.model_dir);
    std::string tp = s.tokenizer_path;
    if (tp.empty() && fs::exists(fs::path(s.model_dir) / "tokenizer.json"))
      tp = (fs::path(s.model_dir) / "tokenizer.json").string();
    if (!tp.empty()) {
      DSEEK_CHECK(fs::exists(tp), "tokenizer {} does not exist", tp);
      m->tok = Tokenizer::load(tp);
    }
    const ModelConfig& c = m->model.cfg;
    m->eos = m->tok && m->tok->eos_id() >= 0 ? m->tok->eos_id() : (int32_t)c.eos_token_id;
    m->max_model_len = opt.max_model_len > 0 ? opt.max_model_len : c.max_position_embeddings;
    m->max_cache_tokens =
        opt.max_cache_tokens > 0 ? opt.max_cache_tokens : opt.max_seqs * m->max_model_len;
    DSEEK_CHECK(m->max_model_len >= 2, "--max-model-len must be >= 2, got {}", m->max_model_len);
    DSEEK_CHECK(m->max_cache_tokens >= 2, "--max-cache-tokens must be >= 2, got {}",
                m->max_cache_tokens);
    m->created = unix_now();
    m->engine =
        std::make_unique<Scheduler>(m->model, EngineLimits{.max_seqs = opt.max_seqs,
                                                           .max_cache_tokens = m->max_cache_tokens,
                                                           .max_model_len = m->max_model_len,
                                                           .threads = opt.threads,
                                                           .on_step = opt.on_step});
    impl_->models.push_back(std::move(m));
  }
  const int threads = opt.http_threads > 0 ? opt.http_threads : std::max(32, 4 * opt.max_seqs);
  impl_->http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  impl_->http.set_payload_max_length(kMaxBodyBytes);
  impl_->routes();
  std::signal(SIGPIPE, SIG_IGN);  // a client that leaves must not kill the server
}

Server::~Server() {
  stop();
  impl_->models.clear();  // engines stop first (they hold references to the models)
}

int Server::bind(const std::string& host, int port) {
  // Small SSE chunks go out at once instead of waiting for the client's delayed ACK (~40 ms).
  impl_->http.set_tcp_nodelay(true);
  int got = -1;
  if (port == 0) {
    got = impl_->http.bind_to_any_port(host);
  } else if (impl_->http.bind_to_port(host, port)) {
    got = port;
  }
  DSEEK_CHECK(got > 0, "cannot listen on {}:{} (address in use, or not a local address?)", host,
              port);
  return got;
}

void Server::listen() {
  impl_->http.listen_after_bind();
}

void Server::stop() {
  impl_->stopping.store(true);
  impl_->http.stop();
}

std::vector<std::string> Server::model_ids() const {
  return impl_->ids();
}

Scheduler& Server::engine(const std::string& id) {
  for (auto& m : impl_->models)
    if (m->id == id) return *m->engine;
  fail("no served model `{}`", id);
}

const ServeMetrics& Server::metrics() const {
  return impl_->metrics;
}

std::string Server::describe() const {
  std::string out;
  for (const auto& m : impl_->models) {
    const ModelConfig& c = m->model.cfg;
    out += fmt::format(
        "[serve] model `{}`: {} ({} layers, hidden {}, vocab {}), tokenizer {}, template {}{}\n",
        m->id, m->dir, c.num_hidden_layers, c.hidden_size, c.vocab_size,
        m->tok ? m->tok->path() : std::string("none (token-id prompts only)"),
        chat_template_name(m->tmpl), m->reasoning ? " (reasoning_content)" : "");
    out += fmt::format(
        "[serve]   max_seqs {}, max_model_len {}, cache budget {} tokens ({:.1f} MiB fp32)\n",
        impl_->opt.max_seqs, m->max_model_len, m->max_cache_tokens,
        m->max_cache_tokens * (double)m->model.new_cache().bytes_per_token_fp32() / (1 << 20));
  }
  return out;
}

}  // namespace dseek::serve
