// StopStringMatcher implementation: the contract is in stop_strings.h. Straightforward search
// over the held tail plus the new chunk; no automaton (stop lists are a few short strings).
#include "dseek/infer/stop_strings.h"

#include <algorithm>  // max, min

#include "dseek/core/error.h"

namespace dseek {

// ---------------------------------------------------------------------------------------------
// helpers

size_t utf8_incomplete_tail(std::string_view s) {
  // Walk back over at most 3 continuation bytes (10xxxxxx) to the lead byte that owns them.
  const size_t n = s.size();
  size_t cont = 0;
  while (cont < 3 && cont < n && ((unsigned char)s[n - 1 - cont] & 0xC0) == 0x80) cont++;
  if (cont == n) return 0;  // only continuation bytes (or empty): nothing to wait for
  const unsigned char lead = (unsigned char)s[n - 1 - cont];
  size_t need = 0;  // continuation bytes the lead byte announces
  if ((lead & 0xE0) == 0xC0) {
    need = 1;
  } else if ((lead & 0xF0) == 0xE0) {
    need = 2;
  } else if ((lead & 0xF8) == 0xF0) {
    need = 3;
  } else {
    return 0;  // ASCII or an invalid byte: nothing can complete it
  }
  return cont < need ? cont + 1 : 0;
}

namespace {

// Longest suffix of text that is a proper prefix of stop.
size_t suffix_prefix_len(std::string_view text, std::string_view stop) {
  for (size_t len = std::min(text.size(), stop.size() - 1); len > 0; len--) {
    if (text.substr(text.size() - len) == stop.substr(0, len)) return len;
  }
  return 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// public entry points

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (size_t i = 0; i < stops_.size(); i++) {
    DSEEK_CHECK(!stops_[i].empty(), "stop strings: stop string {} is empty", i);
  }
}

void StopStringMatcher::reset() {
  held_.clear();
  stop_index_ = -1;
}

StopStringsStep StopStringMatcher::feed(std::string_view chunk) {
  StopStringsStep step;
  if (stopped()) {
    step.stopped = true;
    step.stop_index = stop_index_;
    return step;
  }
  held_.append(chunk);

  // Earliest completed stop string. Any stop that completes in held_ + chunk starts inside
  // held_ + chunk, because every proper prefix of a stop at the end of S was held back.
  size_t best_end = std::string::npos, best_start = 0;
  int best = -1;
  for (size_t i = 0; i < stops_.size(); i++) {
    const size_t start = held_.find(stops_[i]);
    if (start == std::string::npos) continue;
    const size_t end = start + stops_[i].size();
    if (best < 0 || end < best_end || (end == best_end && start < best_start)) {
      best = (int)i;
      best_end = end;
      best_start = start;
    }
  }
  if (best >= 0) {
    step.text = held_.substr(0, best_start);
    step.stopped = true;
    step.stop_index = best;
    stop_index_ = best;
    held_.clear();
    return step;
  }

  size_t hold = 0;
  for (const std::string& s : stops_) hold = std::max(hold, suffix_prefix_len(held_, s));
  hold = std::max(hold, utf8_incomplete_tail(held_));
  step.text = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return step;
}

std::string StopStringMatcher::finish() {
  std::string rest;
  rest.swap(held_);
  return rest;
}

}  // namespace dseek
