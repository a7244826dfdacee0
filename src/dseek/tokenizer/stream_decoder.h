// StreamDecoder: decodes generated ids one at a time for streaming output. feed() returns only
// complete UTF-8 text: a multi-byte character split across tokens (common for CJK and emoji in
// byte-level BPE) is held back until its last byte arrives. Bytes that can never become valid
// are emitted as U+FFFD right away, so the concatenation of every feed() and the final flush()
// equals Tokenizer::decode of the same ids. Not thread-safe (one per stream); the Tokenizer must
// outlive it.
#pragma once

#include <cstdint>
#include <string>

#include "dseek/tokenizer/tokenizer.h"

namespace dseek {

class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = false)
      : tok_(&tok), skip_special_(skip_special) {}

  std::string feed(int32_t id);
  std::string flush();  // end of stream: the held-back bytes, lossily
  void reset() { pending_.clear(); }
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer* tok_;
  bool skip_special_;
  std::string pending_;  // at most 3 bytes of an incomplete character between calls
};

}  // namespace dseek
