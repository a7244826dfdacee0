// CompletionText: the text side of one request. Generated token ids go in; out come the pieces
// the client sees: UTF-8-safe text (tokenizer StreamDecoder: a character split across tokens is
// held until complete), cut at the first stop string (StopStringMatcher), and for R1-style
// models split into reasoning and content (ReasoningSplitter). Without a tokenizer only the ids
// pass through. The engine's stop token (EOS) must be removed by the caller before feed().
//
// Special tokens are skipped in the text, except `</think>` when reasoning is split: it is fed
// to the splitter as text, so the split works whether the tokenizer marks it special or not.
// completion_tokens() counts the ids that are part of the answer: every id fed up to and
// including the one that completed a stop string (ids the engine made after it are not).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dseek/infer/stop_strings.h"
#include "dseek/serve/reasoning_split.h"
#include "dseek/tokenizer/stream_decoder.h"
#include "dseek/tokenizer/tokenizer.h"

namespace dseek::serve {

struct TextDelta {
  std::string content, reasoning;
  std::vector<int32_t> ids;  // the ids of this delta (after a stop string: none)
  bool stop_hit = false;     // a stop string was completed: generation should end
};

class CompletionText {
 public:
  // tok may be null (ids only; stops must then be empty). reasoning: split at </think>.
  CompletionText(const Tokenizer* tok, std::vector<std::string> stops, bool reasoning);

  TextDelta feed(const std::vector<int32_t>& ids);
  TextDelta finish();  // end of generation: whatever is held back
  bool stop_hit() const { return stops_.stopped(); }
  int64_t completion_tokens() const { return consumed_; }

 private:
  void add_text(const std::string& text, TextDelta* d);

  const Tokenizer* tok_;
  std::optional<StreamDecoder> dec_;
  StopStringMatcher stops_;
  ReasoningSplitter split_;
  bool reasoning_;
  int32_t think_end_id_ = -1;
  int64_t consumed_ = 0;
};

}  // namespace dseek::serve
