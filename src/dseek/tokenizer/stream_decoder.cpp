// Streaming decode (see stream_decoder.h). Splitting the byte stream right before the lead byte of
// an incomplete sequence never changes the lossy conversion: a maximal invalid subpart never
// continues across a lead byte.
#include "dseek/tokenizer/stream_decoder.h"

#include "dseek/tokenizer/utf8.h"

namespace dseek {

std::string StreamDecoder::feed(int32_t id) {
  if (skip_special_ && tok_->is_special(id)) return std::string();
  pending_ += tok_->token_bytes(id);
  size_t k = utf8_complete_prefix_len(pending_);
  std::string out;
  utf8_append_lossy(&out, std::string_view(pending_).substr(0, k));
  pending_.erase(0, k);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  utf8_append_lossy(&out, pending_);
  pending_.clear();
  return out;
}

}  // namespace dseek
