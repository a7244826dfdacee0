// StopStringMatcher: incremental stop-string detection for streamed generation. Decoded text
// arrives in chunks; each feed() says which text is safe to show now and whether a stop string
// was hit. Byte-level matching on UTF-8 (no normalisation, case-sensitive); it does not decode
// tokens, and it does not look for stop token ids (EOS is the engine's job).
//
// Contract. Let S = the concatenation of every chunk fed so far, stops = s_0..s_{n-1} (non-empty).
//   - Hit: the stop string that COMPLETES first in S (smallest end offset); on equal ends the
//     longest one (it starts first), then the lowest index. This equals what feeding S one byte
//     at a time would report, so the result never depends on how S was split into chunks.
//     On a hit, feed() returns the not-yet-emitted text before the stop's first byte, stopped =
//     true and its index; the stop string itself and anything after it are never emitted.
//   - No hit: the emitted text is S minus a held-back tail: the longest suffix of S that is a
//     proper prefix of some stop string (it may still grow into one), extended, if needed, so the
//     emitted text never ends inside an incomplete UTF-8 sequence (a lead byte with fewer
//     continuation bytes than it announces; at most 3 bytes).
//   - Concatenating every returned text (and finish() at the end) gives exactly the prefix of S
//     before the hit, or all of S when there is none.
//   - After a hit, feed() ignores its input and returns {"", true, same index}; finish()
//     returns "". reset() starts a new stream with the same stop strings.
// Cost: each feed is O((held + chunk) * total stop length); held < max stop length + 3.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace dseek {

struct StopStringsStep {
  std::string text;      // safe to emit now (may be empty)
  bool stopped = false;  // a stop string was hit; generation should end
  int stop_index = -1;   // index of the stop string that was hit, -1 if none
};

class StopStringMatcher {
 public:
  // Throws dseek::Error if any stop string is empty. An empty list never stops.
  explicit StopStringMatcher(std::vector<std::string> stops);

  StopStringsStep feed(std::string_view chunk);
  // End of stream without a hit (EOS, length limit): returns the held-back text.
  std::string finish();
  void reset();

  bool stopped() const { return stop_index_ >= 0; }
  const std::string& held() const { return held_; }  // text not emitted yet
  const std::vector<std::string>& stops() const { return stops_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;     // tail of S not emitted yet
  int stop_index_ = -1;  // >= 0 once a stop string was hit
};

// Bytes at the end of s that form an incomplete UTF-8 sequence (0..3). Exposed for tests.
size_t utf8_incomplete_tail(std::string_view s);

}  // namespace dseek
