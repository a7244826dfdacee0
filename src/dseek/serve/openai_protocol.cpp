// OpenAI wire format: the contract is in openai_protocol.h. Field names and defaults follow the
// OpenAI API reference (Chat Completions and legacy Completions); where a value is out of range
// the message names the field, the allowed range and what was sent.
#include "dseek/serve/openai_protocol.h"

#include <cmath>
#include <limits>

#include "dseek/core/error.h"

namespace dseek::serve {

using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// helpers: typed field access that fails with the field's name

namespace {

const char* type_name(const json& v) {
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_object()) return "an object";
  if (v.is_array()) return "an array";
  return "null";
}

[[noreturn]] void bad(const std::string& param, const std::string& message) {
  throw ApiError(400, message, param);
}

const json* field(const json& b, const char* key) {  // null when absent or JSON null
  auto it = b.find(key);
  if (it == b.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<double> get_number(const json& b, const char* key) {
  const json* v = field(b, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) bad(key, fmt::format("'{}' must be a number, got {}", key, type_name(*v)));
  return v->get<double>();
}

std::optional<int64_t> get_int(const json& b, const char* key) {
  const json* v = field(b, key);
  if (!v) return std::nullopt;
  if (v->is_number_integer()) return v->get<int64_t>();
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return (int64_t)d;
  }
  bad(key, fmt::format("'{}' must be an integer, got {}", key,
                       v->is_number() ? v->dump() : type_name(*v)));
}

std::optional<bool> get_bool(const json& b, const char* key) {
  const json* v = field(b, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) bad(key, fmt::format("'{}' must be a boolean, got {}", key, type_name(*v)));
  return v->get<bool>();
}

void check_range(const char* key, double v, double lo, double hi, bool lo_open, bool hi_open) {
  const bool ok = (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  if (!ok)
    bad(key, fmt::format("'{}' must be in {}{}, {}{}, got {}", key, lo_open ? "(" : "[", lo, hi,
                         hi_open ? ")" : "]", v));
}

// "Not supported" for options that change results when set to a non-default value.
void reject_unsupported(const json& b) {
  if (auto n = get_int(b, "n"); n && *n != 1)
    bad("n", fmt::format("'n' must be 1 (several choices per request are not supported yet), "
                         "got {}",
                         *n));
  if (auto bo = get_int(b, "best_of"); bo && *bo != 1)
    bad("best_of", "'best_of' other than 1 is not supported");
  for (const char* key : {"presence_penalty", "frequency_penalty"}) {
    if (auto p = get_number(b, key)) {
      check_range(key, *p, -2.0, 2.0, false, false);
      if (*p != 0.0)
        bad(key, fmt::format("'{}' is not supported (use the repetition_penalty extension); "
                             "only 0 is accepted",
                             key));
    }
  }
  if (const json* lp = field(b, "logprobs")) {
    if (!(lp->is_boolean() || lp->is_number_integer()))
      bad("logprobs",
          fmt::format("'logprobs' must be a boolean or an integer, got {}", type_name(*lp)));
    if ((lp->is_boolean() && lp->get<bool>()) || (lp->is_number_integer() && lp->get<int>() > 0))
      bad("logprobs", "'logprobs' is not supported yet");
  }
  if (field(b, "top_logprobs")) bad("top_logprobs", "'top_logprobs' is not supported yet");
  if (const json* t = field(b, "tools"); t && !(t->is_array() && t->empty()))
    bad("tools", "'tools' (function calling) is not supported yet");
  if (const json* lb = field(b, "logit_bias"); lb && !(lb->is_object() && lb->empty()))
    bad("logit_bias", "'logit_bias' is not supported yet");
  if (auto echo = get_bool(b, "echo"); echo && *echo) bad("echo", "'echo' is not supported");
  if (const json* s = field(b, "suffix"); s && !(s->is_string() && s->get<std::string>().empty()))
    bad("suffix", "'suffix' (insertion) is not supported");
  if (const json* rf = field(b, "response_format")) {
    if (!rf->is_object() || rf->value("type", std::string()) != "text")
      bad("response_format", "only 'response_format' {\"type\": \"text\"} is supported");
  }
}

std::vector<ChatMessage> parse_messages(const json& b) {
  const json* m = field(b, "messages");
  if (!m) bad("messages", "'messages' is required");
  if (!m->is_array())
    bad("messages", fmt::format("'messages' must be an array, got {}", type_name(*m)));
  if (m->empty()) bad("messages", "'messages' must contain at least one message");
  json norm = json::array();
  for (size_t i = 0; i < m->size(); i++) {
    const json& e = (*m)[i];
    const std::string where = fmt::format("messages[{}]", i);
    if (!e.is_object()) bad(where, fmt::format("'{}' must be an object", where));
    if (!e.contains("role") || !e["role"].is_string())
      bad(where + ".role", fmt::format("'{}.role' must be a string", where));
    json n = e;
    std::string role = e["role"].get<std::string>();
    if (role == "developer") role = "system";  // OpenAI's newer name for the system role
    if (role != "system" && role != "user" && role != "assistant" && role != "tool")
      bad(where + ".role",
          fmt::format("'{}.role' must be one of system, developer, user, assistant, tool; got "
                      "'{}'",
                      where, role));
    n["role"] = role;
    if (e.contains("content") && e["content"].is_array()) {  // content parts: text only
      std::string text;
      for (const json& part : e["content"]) {
        if (!part.is_object() || part.value("type", std::string()) != "text" ||
            !part.contains("text") || !part["text"].is_string())
          bad(where + ".content",
              "only text content parts ({\"type\": \"text\", \"text\": ...}) "
              "are supported");
        text += part["text"].get<std::string>();
      }
      n["content"] = text;
    } else if (e.contains("content") && !e["content"].is_string() && !e["content"].is_null()) {
      bad(where + ".content", fmt::format("'{}.content' must be a string, an array of text "
                                          "parts or null, got {}",
                                          where, type_name(e["content"])));
    }
    norm.push_back(std::move(n));
  }
  try {
    return chat_messages_from_json(norm);
  } catch (const Error& err) {
    bad("messages", err.what());
  }
}

void parse_ids(const json& arr, std::vector<int32_t>* out) {
  for (const json& v : arr) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 ||
        v.get<int64_t>() > std::numeric_limits<int32_t>::max())
      bad("prompt",
          fmt::format("token ids in 'prompt' must be non-negative integers, got {}", v.dump()));
    out->push_back((int32_t)v.get<int64_t>());
  }
}

void parse_prompt(const json& b, CompletionRequest* r) {
  const json* p = field(b, "prompt");
  if (!p) bad("prompt", "'prompt' is required");
  auto all_ints = [](const json& a) {
    for (const json& v : a)
      if (!v.is_number()) return false;
    return true;
  };
  if (p->is_string()) {
    r->prompt_text = p->get<std::string>();
  } else if (p->is_array() && !p->empty() && all_ints(*p)) {
    r->prompt_is_ids = true;
    parse_ids(*p, &r->prompt_ids);
  } else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
    r->prompt_text = (*p)[0].get<std::string>();
  } else if (p->is_array() && p->size() == 1 && (*p)[0].is_array() && !(*p)[0].empty() &&
             all_ints((*p)[0])) {
    r->prompt_is_ids = true;
    parse_ids((*p)[0], &r->prompt_ids);
  } else if (p->is_array() && p->size() > 1) {
    bad("prompt", "only one prompt per request is supported (send one request per prompt)");
  } else {
    bad("prompt", fmt::format("'prompt' must be a string, an array of token ids, or an array "
                              "holding one of those; got {}",
                              p->is_array() ? "an empty or mixed array" : type_name(*p)));
  }
  if (!r->prompt_is_ids && r->prompt_text.empty()) bad("prompt", "'prompt' must not be empty");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// public entry points: errors and requests

json api_error_json(const ApiError& e) {
  json err = {{"message", e.what()}, {"type", e.type}, {"param", nullptr}, {"code", nullptr}};
  if (e.param) err["param"] = *e.param;
  if (e.code) err["code"] = *e.code;
  return json{{"error", err}};
}

CompletionRequest request_parse(const std::string& body, RequestKind kind) {
  json b;
  try {
    b = json::parse(body);
  } catch (const json::parse_error& e) {
    throw ApiError(400, fmt::format("We could not parse the JSON body of your request ({}). The "
                                    "body must be a JSON object.",
                                    e.what()));
  }
  if (!b.is_object())
    throw ApiError(400,
                   fmt::format("the request body must be a JSON object, got {}", type_name(b)));
  CompletionRequest r;
  r.kind = kind;
  const json* model = field(b, "model");
  if (!model) bad("model", "'model' is required");
  if (!model->is_string())
    bad("model", fmt::format("'model' must be a string, got {}", type_name(*model)));
  r.model = model->get<std::string>();
  reject_unsupported(b);
  if (kind == RequestKind::REQUEST_CHAT) {
    r.messages = parse_messages(b);
  } else {
    parse_prompt(b, &r);
  }

  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    if (auto v = get_int(b, key)) {
      if (*v < 1) bad(key, fmt::format("'{}' must be >= 1, got {}", key, *v));
      r.max_tokens = r.max_tokens ? std::min(*r.max_tokens, *v) : *v;
    }
  }
  if (auto t = get_number(b, "temperature")) {
    check_range("temperature", *t, 0.0, 2.0, false, false);
    r.sampler.temperature = (float)*t;
  }
  if (auto p = get_number(b, "top_p")) {
    check_range("top_p", *p, 0.0, 1.0, true, false);
    r.sampler.top_p = (float)*p;
  }
  if (auto k = get_int(b, "top_k")) {
    if (*k < -1 || *k > std::numeric_limits<int>::max())
      bad("top_k", fmt::format("'top_k' must be >= 0 (0 or -1 = off), got {}", *k));
    r.sampler.top_k = *k < 0 ? 0 : (int)*k;
  }
  if (auto m = get_number(b, "min_p")) {
    check_range("min_p", *m, 0.0, 1.0, false, true);
    r.sampler.min_p = (float)*m;
  }
  if (auto rp = get_number(b, "repetition_penalty")) {
    if (!(*rp > 0.0 && std::isfinite(*rp)))
      bad("repetition_penalty", fmt::format("'repetition_penalty' must be > 0, got {}", *rp));
    r.sampler.repetition_penalty = (float)*rp;
  }
  if (auto s = get_int(b, "seed")) {
    r.sampler.seed = (uint64_t)*s;
    r.seed_given = true;
  }
  if (const json* st = field(b, "stop")) {
    if (st->is_string()) {
      r.stop.push_back(st->get<std::string>());
    } else if (st->is_array()) {
      for (const json& s : *st) {
        if (!s.is_string())
          bad("stop", fmt::format("'stop' must be a string or an array of strings, found {}",
                                  type_name(s)));
        r.stop.push_back(s.get<std::string>());
      }
      if (r.stop.size() > 16) bad("stop", "'stop' may hold at most 16 strings");
    } else {
      bad("stop",
          fmt::format("'stop' must be a string or an array of strings, got {}", type_name(*st)));
    }
    for (const std::string& s : r.stop)
      if (s.empty()) bad("stop", "stop strings must not be empty");
  }
  r.stream = get_bool(b, "stream").value_or(false);
  if (const json* so = field(b, "stream_options")) {
    if (!so->is_object())
      bad("stream_options",
          fmt::format("'stream_options' must be an object, got {}", type_name(*so)));
    if (!r.stream) bad("stream_options", "'stream_options' is only allowed when 'stream' is true");
    if (auto iu = get_bool(*so, "include_usage")) r.include_usage = *iu;
  }
  r.ignore_eos = get_bool(b, "ignore_eos").value_or(false);
  return r;
}

// ---------------------------------------------------------------------------------------------
// public entry points: responses

json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  return json{{"prompt_tokens", prompt_tokens},
              {"completion_tokens", completion_tokens},
              {"total_tokens", prompt_tokens + completion_tokens}};
}

json chat_response_json(const std::string& id, int64_t created, const std::string& model,
                        const std::string& content, const std::optional<std::string>& reasoning,
                        const std::string& finish_reason, const json& usage) {
  json msg = {{"role", "assistant"}, {"content", content}};
  if (reasoning) msg["reasoning_content"] = *reasoning;
  return json{{"id", id},
              {"object", "chat.completion"},
              {"created", created},
              {"model", model},
              {"choices", json::array({json{{"index", 0},
                                            {"message", msg},
                                            {"logprobs", nullptr},
                                            {"finish_reason", finish_reason}}})},
              {"usage", usage}};
}

json chat_chunk_json(const std::string& id, int64_t created, const std::string& model,
                     const json& delta, const std::string& finish_reason, bool include_choice,
                     const json& usage) {
  json choices = json::array();
  if (include_choice) {
    choices.push_back(
        json{{"index", 0},
             {"delta", delta},
             {"logprobs", nullptr},
             {"finish_reason", finish_reason.empty() ? json(nullptr) : json(finish_reason)}});
  }
  json j = {{"id", id},
            {"object", "chat.completion.chunk"},
            {"created", created},
            {"model", model},
            {"choices", choices}};
  if (!usage.is_discarded()) j["usage"] = usage;
  return j;
}

json completion_response_json(const std::string& id, int64_t created, const std::string& model,
                              const std::string& text, const std::vector<int32_t>& token_ids,
                              const std::string& finish_reason, const json& usage) {
  return json{{"id", id},
              {"object", "text_completion"},
              {"created", created},
              {"model", model},
              {"choices", json::array({json{{"index", 0},
                                            {"text", text},
                                            {"logprobs", nullptr},
                                            {"finish_reason", finish_reason},
                                            {"dseek_token_ids", token_ids}}})},
              {"usage", usage}};
}

json completion_chunk_json(const std::string& id, int64_t created, const std::string& model,
                           const std::string& text, const std::vector<int32_t>& token_ids,
                           const std::string& finish_reason, bool include_choice,
                           const json& usage) {
  json choices = json::array();
  if (include_choice) {
    choices.push_back(
        json{{"index", 0},
             {"text", text},
             {"logprobs", nullptr},
             {"finish_reason", finish_reason.empty() ? json(nullptr) : json(finish_reason)},
             {"dseek_token_ids", token_ids}});
  }
  json j = {{"id", id},
            {"object", "text_completion"},
            {"created", created},
            {"model", model},
            {"choices", choices}};
  if (!usage.is_discarded()) j["usage"] = usage;
  return j;
}

std::string json_dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string sse_event(const json& j) {
  std::string s = "data: ";
  s.append(json_dump(j)).append("\n\n");
  return s;
}

}  // namespace dseek::serve
