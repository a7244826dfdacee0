// ReasoningSplitter: splits the streamed completion of an R1-style model into `reasoning_content`
// (the thinking, before `</think>`) and `content` (the answer after it), as the DeepSeek API
// and vLLM's deepseek_r1 parser do. The `<think>\n` that opens the thinking is part of the R1
// generation prompt, so the completion starts inside it.
//
// Contract. Let S = the concatenation of every chunk fed so far.
//   - Enabled: text before the first "</think>" is reasoning; text after it is content, with
//     the newlines that directly follow "</think>" dropped; "</think>" itself is never emitted.
//     A suffix of S that is a proper prefix of "</think>" is held back until it is decided, so
//     the split never depends on how S was cut into chunks. A "<think>" at the very start of
//     S (a model that opens its own thinking) is dropped too. Without any "</think>" all of S
//     is reasoning (the thinking was cut off by a limit).
//   - Disabled: everything is content, nothing is held.
//   - finish() returns what is held (reasoning if still thinking; a partial tag is text).
// Not here: token decoding, stop strings.
#pragma once

#include <string>
#include <string_view>

namespace dseek::serve {

struct ReasoningPiece {
  std::string reasoning, content;  // either may be empty
};

class ReasoningSplitter {
 public:
  explicit ReasoningSplitter(bool enabled) : thinking_(enabled), enabled_(enabled) {}

  ReasoningPiece feed(std::string_view text);
  ReasoningPiece finish();
  bool thinking() const { return thinking_; }  // no "</think>" seen yet (enabled only)

 private:
  bool thinking_;
  bool enabled_;
  bool at_start_ = true;      // nothing emitted yet (for the optional leading "<think>")
  bool after_close_ = false;  // content so far is only newlines after "</think>"
  std::string held_;          // undecided tail of S
};

}  // namespace dseek::serve
