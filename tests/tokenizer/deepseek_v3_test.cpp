// The real DeepSeek-V3 tokenizer (.cache/deepseek_v3/tokenizer.json from scripts/npm_deps.sh):
// every row of SPEC §7.1's test-vector table, its added tokens, and the chat row.
#include "dseek/tokenizer/chat_template.h"
#include "dseek/tokenizer/stream_decoder.h"
#include "tokenizer_kit.h"

namespace dseek::test {

struct V3Vector {
  const char* text;
  std::vector<int32_t> ids;
};

static const std::vector<V3Vector>& v3_vectors() {
  static const std::vector<V3Vector> v = {
      {"Hello, world!", {19923, 14, 2058, 3}},
      {"你好", {30594}},
      {"The quick brown fox jumps over the lazy dog.",
       {671, 4787, 13769, 46012, 54994, 1060, 270, 41638, 6397, 16}},
      {"12345 apples", {6895, 1883, 37679}},
      {"1234567", {6895, 18009, 25}},
      {" leading space", {6646, 3987}},
      {"line1\nline2\n\n  indented", {1836, 19, 201, 1836, 20, 271, 223, 1126, 19686}},
      {"a\n\nb", {67, 271, 68}},
      {"こんにちは世界", {4549, 7245, 2298, 12457, 2841, 3427}},
      {"我爱北京天安门", {60147, 6127, 954, 117826}},
      {"don't stop", {20385, 1664, 6409}},
      {"visit example.com now", {65573, 2511, 2193, 1928}},
      {"def f(x):\n    return x+1\n", {3465, 285, 4042, 3395, 361, 1354, 1527, 13, 19, 201}},
      {"emoji 😀!", {18872, 7063, 53769, 225, 3}},
      {"\t tab", {200, 12826}},
      {"<｜User｜>hi<｜Assistant｜>", {128803, 6366, 128804}},
  };
  return v;
}

TEST(TokenizerDeepseekV3, SpecVectors) {
  DSEEK_REQUIRE(have_v3(), "the DeepSeek-V3 tokenizer.json");
  const Tokenizer& tok = v3_tokenizer();
  for (const V3Vector& v : v3_vectors()) {
    EXPECT_EQ(tok.encode(v.text), v.ids) << "text: " << v.text;
    EXPECT_EQ(tok.decode(v.ids), v.text);
  }
}

TEST(TokenizerDeepseekV3, ChatRow) {
  DSEEK_REQUIRE(have_v3(), "the DeepSeek-V3 tokenizer.json");
  const Tokenizer& tok = v3_tokenizer();
  std::vector<ChatMessage> msgs = {{"system", "You are helpful.", {}}, {"user", "Hi", {}}};
  std::string text = chat_render(ChatTemplate::CHAT_DEEPSEEK_V3, msgs, true);
  EXPECT_EQ(tok.encode(text),
            (std::vector<int32_t>{0, 3476, 477, 11502, 16, 128803, 23166, 128804}));
}

TEST(TokenizerDeepseekV3, Vocabulary) {
  DSEEK_REQUIRE(have_v3(), "the DeepSeek-V3 tokenizer.json");
  const Tokenizer& tok = v3_tokenizer();
  EXPECT_EQ(tok.model().vocab_count(), 128000u);
  EXPECT_EQ(tok.model().merge_count(), 127741u);
  EXPECT_EQ(tok.added().tokens().size(), 818u);
  size_t special = 0;
  for (const AddedToken& a : tok.added().tokens()) special += a.special;
  EXPECT_EQ(special, 804u);
  EXPECT_EQ(tok.vocab_size(), 128815);
  EXPECT_EQ(tok.bos_id(), 0);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.token_id("<｜place▁holder▁no▁17｜>"), 128017);
  EXPECT_EQ(tok.token_id("<|EOT|>"), 128805);
  EXPECT_TRUE(tok.is_special(128805));
  EXPECT_FALSE(tok.is_special(128803));
  EXPECT_EQ(tok.token_id("<｜tool▁sep｜>"), 128814);
  EXPECT_EQ(tok.encode("<｜place▁holder▁no▁5｜><|EOT|>x"),
            (std::vector<int32_t>{128005, 128805, tok.token_id("x")}));
  EXPECT_TRUE(tok.pretokenizer().parallel_safe());
  // A folder works too.
  EXPECT_EQ(Tokenizer::load(std::filesystem::path(v3_path()).parent_path().string()).vocab_size(),
            128815);
}

TEST(TokenizerDeepseekV3, StreamDecodeCjkAndEmoji) {
  DSEEK_REQUIRE(have_v3(), "the DeepSeek-V3 tokenizer.json");
  const Tokenizer& tok = v3_tokenizer();
  std::string text = "emoji 😀! 深度求索 ひらがな ok";
  auto ids = tok.encode(text);
  StreamDecoder sd(tok);
  std::string got;
  for (int32_t id : ids) {
    std::string part = sd.feed(id);
    // Every chunk is complete UTF-8 on its own (re-encoding it round-trips).
    EXPECT_EQ(tok.decode(tok.encode(part)), part);
    got += part;
  }
  got += sd.flush();
  EXPECT_EQ(got, text);
}

}  // namespace dseek::test
