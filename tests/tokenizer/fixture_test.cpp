// The `tokenizer_v3style` fixture (tests/fixtures/README.md): every encodings.json case (ids,
// token strings, decode) and the 212,078 ids of brown_sample.txt, sequential and multithreaded.
#include "tokenizer_kit.h"

namespace dseek::test {

TEST(TokenizerFixture, EncodingsJsonExact) {
  const Tokenizer& tok = fixture_tokenizer();
  nlohmann::json e = read_json(fixture("encodings.json"));
  ASSERT_GT(e["cases"].size(), 10u);
  for (const auto& c : e["cases"]) {
    std::string text = c["text"];
    auto want = c["ids"].get<std::vector<int32_t>>();
    auto got = tok.encode(text);
    EXPECT_EQ(got, want) << "text: " << text;
    auto tokens = c["tokens"].get<std::vector<std::string>>();
    for (size_t i = 0; i < got.size() && i < tokens.size(); i++)
      EXPECT_EQ(tok.token_str(got[i]), tokens[i]) << "text: " << text << " token " << i;
    EXPECT_EQ(tok.decode(want), c["decoded"].get<std::string>()) << "text: " << text;
    EXPECT_EQ(tok.decode(want), text);
  }
}

TEST(TokenizerFixture, CorpusIdsExact) {
  const Tokenizer& tok = fixture_tokenizer();
  std::string text = read_all(fixture("brown_sample.txt"));
  nlohmann::json c = read_json(fixture("corpus_ids.json"));
  auto want = c["ids"].get<std::vector<int32_t>>();
  ASSERT_EQ(want.size(), 212078u);
  ASSERT_EQ(c["n_ids"].get<size_t>(), want.size());
  auto got = tok.encode(text);  // 700 KB: below the parallel threshold, one thread
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(got, want);
  EXPECT_EQ(tok.decode(got), text);
}

TEST(TokenizerFixture, CorpusIdsExactMultithreaded) {
  Tokenizer tok = Tokenizer::load(fixture("tokenizer.json"));
  tok.set_num_threads(4);
  tok.set_parallel_min_bytes(4096);  // cut the corpus into many small chunks
  std::string text = read_all(fixture("brown_sample.txt"));
  auto want = read_json(fixture("corpus_ids.json"))["ids"].get<std::vector<int32_t>>();
  EXPECT_EQ(tok.encode(text), want);
  // The corpus offers many cut points, so the work really was split.
  size_t cuts = 0;
  for (size_t p = PreTokenizer::find_cut(text, 1, text.size()); p;
       p = PreTokenizer::find_cut(text, p + 1, text.size()))
    cuts++;
  EXPECT_GT(cuts, 1000u);
}

TEST(TokenizerFixture, Basics) {
  const Tokenizer& tok = fixture_tokenizer();
  EXPECT_EQ(tok.vocab_size(), 3000);
  EXPECT_EQ(tok.bos_id(), 0);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_TRUE(tok.is_special(0));
  EXPECT_FALSE(tok.is_special(100));
  EXPECT_EQ(tok.token_id("<｜User｜>"), 3);
  EXPECT_EQ(tok.token_id("Ġworld"), tok.encode(" world").at(0));
  EXPECT_EQ(tok.token_id("no such token"), -1);
  EXPECT_EQ(tok.token_str(-5), "");
  EXPECT_TRUE(tok.pretokenizer().parallel_safe());
  // allow_special = false: special tokens are plain text.
  auto with = tok.encode("<｜User｜>hi");
  auto without = tok.encode("<｜User｜>hi", false);
  EXPECT_EQ(with.front(), 3);
  EXPECT_GT(without.size(), with.size());
  EXPECT_EQ(tok.decode(without), "<｜User｜>hi");
  // skip_special drops special tokens in decode.
  EXPECT_EQ(tok.decode(with, true), "hi");
  EXPECT_TRUE(tok.encode("").empty());
}

}  // namespace dseek::test
