// StopStringMatcher tests: hand cases (split stops, overlapping prefixes, several stops, a stop
// at the start, UTF-8), and a property test: every chunking of a string gives the same emitted
// text and stop as a one-shot reference search.
#include "dseek/infer/stop_strings.h"

#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "dseek/core/error.h"

namespace dseek {
namespace {

// ---------------------------------------------------------------------------------------------
// helpers

struct StopRun {
  std::string text;                 // everything emitted, finish() included when not stopped
  std::vector<std::string> pieces;  // each feed's text
  int stop_index = -1;
};

StopRun run_chunks(StopStringMatcher& m, const std::vector<std::string>& chunks) {
  StopRun r;
  for (const std::string& c : chunks) {
    StopStringsStep step = m.feed(c);
    r.text += step.text;
    r.pieces.push_back(step.text);
    if (step.stopped) {
      r.stop_index = step.stop_index;
      return r;
    }
  }
  r.text += m.finish();
  return r;
}

std::vector<std::string> bytes_of(const std::string& s) {
  std::vector<std::string> out;
  for (char c : s) out.emplace_back(1, c);
  return out;
}

// One-shot reference: the stop with the smallest end, then the longest, then the lowest index.
StopRun reference(const std::string& s, const std::vector<std::string>& stops) {
  StopRun r;
  size_t best_end = std::string::npos, best_start = 0;
  for (size_t i = 0; i < stops.size(); i++) {
    const size_t at = s.find(stops[i]);
    if (at == std::string::npos) continue;
    const size_t end = at + stops[i].size();
    if (r.stop_index < 0 || end < best_end || (end == best_end && at < best_start)) {
      r.stop_index = (int)i, best_end = end, best_start = at;
    }
  }
  r.text = r.stop_index < 0 ? s : s.substr(0, best_start);
  return r;
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    const size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; k++)
      if (((unsigned char)s[i + k] & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// cases

TEST(StopStrings, NoStopsPassesThrough) {
  StopStringMatcher m({});
  EXPECT_EQ(m.feed("hello ").text, "hello ");
  EXPECT_EQ(m.feed("world").text, "world");
  EXPECT_EQ(m.finish(), "");
}

TEST(StopStrings, StopSplitAcrossChunks) {
  StopStringMatcher m({"</s>"});
  StopStringsStep a = m.feed("Hello <");
  EXPECT_EQ(a.text, "Hello ");
  EXPECT_FALSE(a.stopped);
  EXPECT_EQ(m.held(), "<");
  StopStringsStep b = m.feed("/s");
  EXPECT_EQ(b.text, "");
  EXPECT_EQ(m.held(), "</s");
  StopStringsStep c = m.feed("> world");
  EXPECT_EQ(c.text, "");
  EXPECT_TRUE(c.stopped);
  EXPECT_EQ(c.stop_index, 0);
  // After the hit, input is ignored.
  StopStringsStep d = m.feed("more");
  EXPECT_EQ(d.text, "");
  EXPECT_TRUE(d.stopped);
  EXPECT_EQ(m.finish(), "");
}

TEST(StopStrings, FalseStartIsReleased) {
  StopStringMatcher m({"</s>"});
  EXPECT_EQ(m.feed("a </").text, "a ");
  EXPECT_EQ(m.feed("p> b").text, "</p> b");
}

TEST(StopStrings, OverlappingPrefixes) {
  StopStringMatcher m({"abac"});
  EXPECT_EQ(m.feed("abab").text, "ab");  // "ab" may still become "abac"
  EXPECT_EQ(m.held(), "ab");
  StopStringsStep s = m.feed("ac!");
  EXPECT_TRUE(s.stopped);
  EXPECT_EQ(s.text, "");  // total "ab" + "" before "abac"

  StopStringMatcher m2({"abac"});
  EXPECT_EQ(m2.feed("aba").text, "");
  EXPECT_EQ(m2.feed("bab").text, "abab");  // "ababab": "ab" is the longest live prefix
  StopStringsStep t = m2.feed("ac");
  EXPECT_TRUE(t.stopped);
  EXPECT_EQ(t.text, "");  // "ababac": "abab" (all emitted already) before the stop
}

TEST(StopStrings, MultipleStopsFirstToComplete) {
  {  // "bc" completes before "abcd": fed at once or byte by byte, the same answer
    StopStringMatcher m({"abcd", "bc"});
    StopStringsStep s = m.feed("xabcd");
    EXPECT_TRUE(s.stopped);
    EXPECT_EQ(s.stop_index, 1);
    EXPECT_EQ(s.text, "xa");
    StopStringMatcher b({"abcd", "bc"});
    StopRun r = run_chunks(b, bytes_of("xabcd"));
    EXPECT_EQ(r.text, "xa");
    EXPECT_EQ(r.stop_index, 1);
  }
  {  // same end: the longer one starts first and wins
    StopStringMatcher m({"c", "abc"});
    StopStringsStep s = m.feed("xabc");
    EXPECT_EQ(s.stop_index, 1);
    EXPECT_EQ(s.text, "x");
  }
  {  // the hold is the longest live prefix over all stops
    StopStringMatcher m({"###", "#END"});
    EXPECT_EQ(m.feed("a##").text, "a");
    StopStringsStep s = m.feed("END");
    EXPECT_TRUE(s.stopped);
    EXPECT_EQ(s.stop_index, 1);
    EXPECT_EQ(s.text, "#");
  }
}

TEST(StopStrings, StopAtVeryStart) {
  StopStringMatcher m({"<|end|>"});
  StopStringsStep s = m.feed("<|end|>tail");
  EXPECT_TRUE(s.stopped);
  EXPECT_EQ(s.text, "");
  StopStringMatcher b({"<|end|>"});
  StopRun r = run_chunks(b, bytes_of("<|end|>tail"));
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(r.stop_index, 0);
}

TEST(StopStrings, FinishReleasesHeldText) {
  StopStringMatcher m({"END"});
  EXPECT_EQ(m.feed("the EN").text, "the ");
  EXPECT_EQ(m.finish(), "EN");
  m.reset();
  EXPECT_FALSE(m.stopped());
  EXPECT_TRUE(m.feed("xEND").stopped);
  m.reset();
  EXPECT_EQ(m.feed("fresh").text, "fresh");
}

TEST(StopStrings, Unicode) {
  const std::string text = "你好。世界";  // stop on the ideographic full stop U+3002
  StopStringMatcher m({"。"});
  StopRun r = run_chunks(m, bytes_of(text));
  EXPECT_EQ(r.text, "你好");
  EXPECT_EQ(r.stop_index, 0);
  for (const std::string& piece : r.pieces) EXPECT_TRUE(valid_utf8(piece)) << piece;

  // An emoji stop vs a neighbour sharing its first three bytes: held, then released whole.
  StopStringMatcher e({"😀"});
  StopRun q = run_chunks(e, bytes_of("a😁b😀c"));
  EXPECT_EQ(q.text, "a😁b");
  for (const std::string& piece : q.pieces) EXPECT_TRUE(valid_utf8(piece)) << piece;

  // Without stops, a split code point is held until complete.
  StopStringMatcher n({});
  const std::string e_acute = "é";
  EXPECT_EQ(n.feed("caf" + e_acute.substr(0, 1)).text, "caf");
  EXPECT_EQ(n.feed(e_acute.substr(1)).text, e_acute);
  EXPECT_EQ(utf8_incomplete_tail("ab"), 0u);
  EXPECT_EQ(utf8_incomplete_tail("\xF0\x9F\x98"), 3u);
  EXPECT_EQ(utf8_incomplete_tail("\xF0\x9F\x98\x80"), 0u);
  EXPECT_EQ(utf8_incomplete_tail("\x80\x80"), 0u);  // stray continuation bytes: nothing to wait
}

TEST(StopStrings, EmptyStopThrows) {
  EXPECT_THROW(StopStringMatcher({"ok", ""}), Error);
}

TEST(StopStrings, AnyChunkingMatchesReference) {
  const std::vector<std::string> stops = {"abc", "bca", "cc", "abab", "ba"};
  std::mt19937 gen(11);
  for (int trial = 0; trial < 2000; trial++) {
    std::string s;
    const size_t len = gen() % 24;
    for (size_t i = 0; i < len; i++) s += "abcd"[gen() % 4];
    // a random split into chunks (empty chunks included)
    std::vector<std::string> chunks;
    for (size_t at = 0; at < s.size();) {
      const size_t n = std::min<size_t>(gen() % 5, s.size() - at);
      chunks.push_back(s.substr(at, n));
      at += n;
    }
    // Stop sets vary: all five, or one of them.
    std::vector<std::string> set = stops;
    if (trial % 2) set = {stops[trial / 2 % stops.size()]};
    StopStringMatcher m(set);
    const StopRun got = run_chunks(m, chunks);
    const StopRun want = reference(s, set);
    ASSERT_EQ(got.text, want.text) << "string " << s;
    ASSERT_EQ(got.stop_index, want.stop_index) << "string " << s;
  }
}

}  // namespace
}  // namespace dseek
