// The OpenAI wire format of `dseek serve`: request bodies parsed and type-checked into plain
// structs, error bodies, and the JSON of responses and server-sent-event chunks.
//
// Contract.
//   - request_parse() throws ApiError (HTTP 400, type "invalid_request_error", `param` naming
//     the offending field) for bad JSON, a missing or wrongly typed field, a value out of range
//     or an option dseek does not implement (n > 1, logprobs, tools, non-zero presence /
//     frequency penalties, echo, suffix, best_of > 1, logit_bias). Unknown fields are ignored.
//   - Checks that need the model (is the model served, does the prompt fit, is there a
//     tokenizer) are the server's; it reports them with the same ApiError.
//   - Every JSON this file writes is dumped with invalid UTF-8 replaced by U+FFFD, so a
//     response never fails to serialize.
// Extensions beyond OpenAI: top_k, min_p, repetition_penalty, ignore_eos (request);
// dseek_token_ids (the generated ids, in completions choices and chunks).
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dseek/infer/sampler.h"
#include "dseek/tokenizer/chat_template.h"

namespace dseek::serve {

// ---------------------------------------------------------------------------------------------
// errors

struct ApiError : std::runtime_error {
  int status = 400;
  std::string type = "invalid_request_error";
  std::optional<std::string> param, code;

  ApiError(int status_, std::string message, std::optional<std::string> param_ = std::nullopt,
           std::optional<std::string> code_ = std::nullopt,
           std::string type_ = "invalid_request_error")
      : std::runtime_error(std::move(message)),
        status(status_),
        type(std::move(type_)),
        param(std::move(param_)),
        code(std::move(code_)) {}
};

// {"error": {"message", "type", "param", "code"}}
nlohmann::json api_error_json(const ApiError& e);

// ---------------------------------------------------------------------------------------------
// requests

enum class RequestKind { REQUEST_CHAT, REQUEST_COMPLETION };

struct CompletionRequest {
  RequestKind kind = RequestKind::REQUEST_CHAT;
  std::string model;
  std::vector<ChatMessage> messages;  // chat only
  std::string prompt_text;            // completions with a text prompt
  std::vector<int32_t> prompt_ids;    // completions with a token-id prompt
  bool prompt_is_ids = false;
  std::optional<int64_t> max_tokens;  // max_tokens or max_completion_tokens; none = fill context
  SamplerConfig sampler = {.temperature = 1.0f,  // OpenAI's defaults
                           .top_k = 0,
                           .top_p = 1.0f,
                           .min_p = 0.0f,
                           .repetition_penalty = 1.0f,
                           .seed = 0};
  bool seed_given = false;
  std::vector<std::string> stop;
  bool stream = false, include_usage = false;
  bool ignore_eos = false;
};

// body: the raw HTTP body. Throws ApiError.
CompletionRequest request_parse(const std::string& body, RequestKind kind);

// ---------------------------------------------------------------------------------------------
// responses

nlohmann::json usage_json(int64_t prompt_tokens, int64_t completion_tokens);

// Non-streaming chat completion ("object": "chat.completion"). reasoning: R1 models only.
nlohmann::json chat_response_json(const std::string& id, int64_t created, const std::string& model,
                                  const std::string& content,
                                  const std::optional<std::string>& reasoning,
                                  const std::string& finish_reason, const nlohmann::json& usage);
// One "chat.completion.chunk". finish_reason empty => null. usage: null unless the final
// usage chunk (then choices is empty: pass an empty delta and include_choice = false).
nlohmann::json chat_chunk_json(const std::string& id, int64_t created, const std::string& model,
                               const nlohmann::json& delta, const std::string& finish_reason,
                               bool include_choice, const nlohmann::json& usage);

// Non-streaming completion ("object": "text_completion").
nlohmann::json completion_response_json(const std::string& id, int64_t created,
                                        const std::string& model, const std::string& text,
                                        const std::vector<int32_t>& token_ids,
                                        const std::string& finish_reason,
                                        const nlohmann::json& usage);
nlohmann::json completion_chunk_json(const std::string& id, int64_t created,
                                     const std::string& model, const std::string& text,
                                     const std::vector<int32_t>& token_ids,
                                     const std::string& finish_reason, bool include_choice,
                                     const nlohmann::json& usage);

// JSON text with invalid UTF-8 replaced (never throws on bytes).
std::string json_dump(const nlohmann::json& j);
// "data: <json>\n\n"
std::string sse_event(const nlohmann::json& j);
inline constexpr const char* kSseDone = "data: [DONE]\n\n";

}  // namespace dseek::serve
