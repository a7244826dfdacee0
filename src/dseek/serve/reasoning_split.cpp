// ReasoningSplitter implementation: the contract is in reasoning_split.h. A string search over
// the held tail plus the new chunk; the tags are short, so nothing cleverer is needed.
#include "dseek/serve/reasoning_split.h"

#include <algorithm>

namespace dseek::serve {

// ---------------------------------------------------------------------------------------------
// constants

namespace {

constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";

// Longest suffix of s that is a proper prefix of tag.
size_t partial_tag_len(std::string_view s, std::string_view tag) {
  for (size_t len = std::min(s.size(), tag.size() - 1); len > 0; len--) {
    if (s.substr(s.size() - len) == tag.substr(0, len)) return len;
  }
  return 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// public entry points

ReasoningPiece ReasoningSplitter::feed(std::string_view text) {
  ReasoningPiece out;
  if (!enabled_) {
    out.content.assign(text);
    return out;
  }
  held_.append(text);
  if (thinking_) {
    if (at_start_) {  // an optional "<think>" the model wrote itself
      if (held_.size() < kOpen.size() && kOpen.substr(0, held_.size()) == held_) return out;
      if (held_.compare(0, kOpen.size(), kOpen) == 0) held_.erase(0, kOpen.size());
      at_start_ = false;
    }
    const size_t close = held_.find(kClose);
    if (close == std::string::npos) {
      const size_t keep = partial_tag_len(held_, kClose);
      out.reasoning = held_.substr(0, held_.size() - keep);
      held_.erase(0, held_.size() - keep);
      return out;
    }
    out.reasoning = held_.substr(0, close);
    held_.erase(0, close + kClose.size());
    thinking_ = false;
    after_close_ = true;
  }
  if (after_close_) {
    const size_t first = held_.find_first_not_of('\n');
    if (first == std::string::npos) {
      held_.clear();
      return out;
    }
    held_.erase(0, first);
    after_close_ = false;
  }
  out.content.append(held_);
  held_.clear();
  return out;
}

ReasoningPiece ReasoningSplitter::finish() {
  ReasoningPiece out;
  if (thinking_) {
    out.reasoning.swap(held_);
  } else if (!after_close_) {
    out.content.swap(held_);
  }
  held_.clear();
  return out;
}

}  // namespace dseek::serve
