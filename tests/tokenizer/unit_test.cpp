// Building blocks: UTF-8 helpers (lossy conversion as Rust's from_utf8_lossy), the byte-level
// alphabet, Oniguruma -> PCRE2 regex translation, the two BPE merge paths (flat array vs heap)
// agreeing, the streaming decoder, and added-token matching (leftmost-longest, two passes).
#include "dseek/tokenizer/byte_level.h"
#include "dseek/tokenizer/regex.h"
#include "dseek/tokenizer/stream_decoder.h"
#include "dseek/tokenizer/utf8.h"
#include "tokenizer_kit.h"

namespace dseek::test {

static std::string lossy(std::string_view s) {
  std::string out;
  utf8_append_lossy(&out, s);
  return out;
}

TEST(TokenizerUtf8, LossyMatchesRust) {
  const std::string R = "\xEF\xBF\xBD";
  EXPECT_EQ(lossy("abc"), "abc");
  EXPECT_EQ(lossy("\xE2\x82\xAC"), "€");
  EXPECT_EQ(lossy("\xE2\x82"), R);  // truncated 3-byte: one replacement
  EXPECT_EQ(lossy("\xE2\x82"
                  "A"),
            R + "A");
  EXPECT_EQ(lossy("\x80\x80"), R + R);                  // lone continuation bytes: one each
  EXPECT_EQ(lossy("\xC0\xAF"), R + R);                  // overlong lead byte C0 never valid
  EXPECT_EQ(lossy("\xED\xA0\x80"), R + R + R);          // surrogate: ED then A0 is out of range
  EXPECT_EQ(lossy("\xF0\x9F\x98"), R);                  // truncated emoji
  EXPECT_EQ(lossy("\xF4\x90\x80\x80"), R + R + R + R);  // > U+10FFFF
  EXPECT_EQ(lossy("\xFF"
                  "a\xF0\x9F\x98\x80"),
            R + "a😀");
}

TEST(TokenizerUtf8, CompletePrefix) {
  EXPECT_EQ(utf8_complete_prefix_len("ab"), 2u);
  EXPECT_EQ(utf8_complete_prefix_len("a\xE2\x82"), 1u);
  EXPECT_EQ(utf8_complete_prefix_len("a\xF0\x9F\x98"), 1u);
  EXPECT_EQ(utf8_complete_prefix_len("a\xF0"), 1u);
  EXPECT_EQ(utf8_complete_prefix_len("a\x80"), 2u);      // invalid, not incomplete: emit
  EXPECT_EQ(utf8_complete_prefix_len("a\xE2\x28"), 3u);  // bad continuation: emit
  EXPECT_EQ(utf8_complete_prefix_len("\xE2\x82\xAC"), 3u);
  EXPECT_TRUE(utf8_is_valid("ok 😀"));
  EXPECT_FALSE(utf8_is_valid("\xE2\x82"));
}

TEST(TokenizerByteLevel, Alphabet) {
  EXPECT_EQ(byte_level_char(' '), 0x120u);   // 'Ġ'
  EXPECT_EQ(byte_level_char('\n'), 0x10Au);  // 'Ċ'
  EXPECT_EQ(byte_level_char('A'), (uint32_t)'A');
  std::string all;
  for (int b = 0; b < 256; b++) all.push_back((char)b);
  std::string enc, dec;
  byte_level_encode(&enc, all);
  ASSERT_TRUE(byte_level_decode(&dec, enc));
  EXPECT_EQ(dec, all);
  std::string out;
  EXPECT_FALSE(byte_level_decode(&out, "<｜User｜>"));
  EXPECT_TRUE(out.empty());
}

TEST(TokenizerRegex, OnigTranslation) {
  EXPECT_EQ(regex_translate_onig("a\\s+b"), "a[\\t-\\r\\x{85}\\p{Z}]+b");
  EXPECT_EQ(regex_translate_onig("[^\\s\\p{L}]"), "[^\\t-\\r\\x{85}\\p{Z}\\p{L}]");
  EXPECT_EQ(regex_translate_onig("\\\\s"), "\\\\s");  // an escaped backslash then 's'
  EXPECT_EQ(regex_translate_onig("[]a]"), "[]a]");
  EXPECT_THROW(regex_translate_onig("[^\\S]"), Error);
  // U+180E is not \s in Oniguruma (nor since Unicode 6.3), but is in PCRE2's \s.
  Regex re("\\s+", false);
  RegexMatcher m(re);
  size_t a, b;
  EXPECT_FALSE(m.find("\u180E", 0, &a, &b));
  EXPECT_TRUE(m.find("x\u2028\u3000y", 0, &a, &b));
  EXPECT_EQ(a, 1u);
  EXPECT_EQ(b, 7u);
  // Invalid UTF-8 in the subject is tolerated.
  EXPECT_TRUE(m.find("\xFF\xFE \x80", 0, &a, &b));
  EXPECT_EQ(a, 2u);
}

TEST(TokenizerBpe, FastPathsEqualNaive) {
  // Short pieces take the flat-array path, long ones (> kSmallWord bytes) the heap path; both
  // must equal the naive rescanning merge. Skewed alphabets make long merge chains.
  const Tokenizer& tok = fixture_tokenizer();
  std::mt19937 rng(5);
  const std::string alphabets[] = {"etaoinshr ",       "ab",         " \n",
                                   "thequickbrownfox", "0123456789", "\xE6\xB7\xB1\xE5\xBA\xA6"};
  for (int iter = 0; iter < 2000; iter++) {
    const std::string& al = alphabets[iter % std::size(alphabets)];
    size_t n = 1 + rng() % (iter % 2 ? 200 : BpeModel::kSmallWord);
    std::string w;
    for (size_t i = 0; i < n; i++) w.push_back(al[rng() % al.size()]);
    std::vector<int32_t> fast, naive;
    tok.model().encode_piece(w, &fast);
    tok.model().encode_piece_naive(w, &naive);
    ASSERT_EQ(fast, naive) << w;
  }
}

TEST(TokenizerStream, ConcatenationEqualsDecode) {
  const Tokenizer& tok = fixture_tokenizer();
  std::mt19937 rng(3);
  for (int iter = 0; iter < 200; iter++) {
    std::vector<int32_t> ids;
    for (int k = rng() % 40; k-- > 0;) ids.push_back((int32_t)(rng() % tok.vocab_size()));
    StreamDecoder sd(tok);
    std::string got;
    for (int32_t id : ids) {
      std::string part = sd.feed(id);
      EXPECT_TRUE(utf8_is_valid(part));
      got += part;
      EXPECT_LE(sd.pending_bytes(), 3u);
    }
    got += sd.flush();
    EXPECT_EQ(got, tok.decode(ids));
  }
  // A CJK character split over two byte tokens is held back, then emitted whole.
  std::vector<int32_t> ids = tok.encode("深");
  ASSERT_GT(ids.size(), 1u);
  StreamDecoder sd(tok);
  EXPECT_EQ(sd.feed(ids[0]), "");
  std::string rest;
  for (size_t i = 1; i < ids.size(); i++) rest += sd.feed(ids[i]);
  EXPECT_EQ(rest, "深");
}

TEST(TokenizerBpe, InvalidUtf8RoundTripsBytes) {
  // `tokenizers` only sees valid UTF-8; we accept any bytes (invalid ones never match a regex)
  // and byte-level BPE keeps them, so decode gives the lossy form of the input.
  const Tokenizer& tok = fixture_tokenizer();
  std::mt19937 rng(9);
  for (int iter = 0; iter < 200; iter++) {
    std::string s;
    for (int k = rng() % 64; k-- > 0;) s.push_back((char)(rng() % 256));
    std::vector<int32_t> ids = tok.encode(s);
    std::string bytes;
    for (int32_t id : ids) bytes += tok.token_bytes(id);
    EXPECT_EQ(bytes, s);
    EXPECT_EQ(tok.decode(ids), lossy(s));
  }
}

TEST(TokenizerAdded, LeftmostLongestTwoPasses) {
  AddedVocab v;
  v.build({{.id = 10, .content = "<a>", .special = true, .normalized = false},
           {.id = 11, .content = "<a><b>", .special = false, .normalized = false},
           {.id = 12, .content = "b>", .special = false, .normalized = true},
           {.id = 13, .content = "x<a", .special = false, .normalized = true}});
  std::vector<TextSegment> s;
  v.split("x<a><b>b>", true, &s);
  // Pass 1 (normalized: false) takes "<a><b>" (longest at the leftmost start); pass 2 finds
  // "b>" in the gap; "x<a" cannot match because pass 1 already cut "<a".
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].id, -1);
  EXPECT_EQ(s[1].id, 11);
  EXPECT_EQ(s[2].id, 12);
  v.split("<a>", false, &s);  // special tokens off: plain text
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].id, -1);
}

}  // namespace dseek::test
