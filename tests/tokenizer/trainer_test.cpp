// BPE trainer: train on brown_sample.txt, then the written tokenizer.json must load in Hugging
// Face `tokenizers` and encode held-out text to the same ids as our encoder; our encoder must
// round-trip; the training must be deterministic and respect the vocab size and special tokens.
#include "dseek/tokenizer/bpe_trainer.h"
#include "tokenizer_kit.h"

namespace dseek::test {

static std::string train_small(int32_t vocab_size, const std::string& name,
                               bool individual_digits = false) {
  BpeTrainOptions opt;
  opt.vocab_size = vocab_size;
  opt.individual_digits = individual_digits;
  BpeTrainer tr(opt);
  tr.add_file(fixture("brown_sample.txt"));
  tr.add_text(
      "深度求索发布模型 ひらがな 1234567 emoji 🤖 <｜User｜>hi<｜Assistant｜>\n");
  auto path = (std::filesystem::temp_directory_path() /
               ("dseek_trained_" + std::to_string(::getpid()) + "_" + name + ".json"))
                  .string();
  bpe_trainer_write(tr.train(), path);
  return path;
}

static std::vector<std::string> held_out() {
  std::vector<std::string> texts;
  for (const auto& c : read_json(fixture("encodings.json"))["cases"]) texts.push_back(c["text"]);
  TextGen gen(4242, bpe_trainer_default_specials());
  for (int i = 0; i < 300; i++) texts.push_back(gen.text(1 + i % 40));
  texts.push_back("A wholly new paragraph, never seen in training: tokenization 2024-12-26.\n");
  return texts;
}

TEST(TokenizerTrainer, TrainedFileLoadsAndRoundTrips) {
  std::string path = train_small(1000, "a");
  Tokenizer tok = Tokenizer::load(path);
  EXPECT_EQ(tok.vocab_size(), 1000);
  EXPECT_EQ(tok.token_id("<｜begin▁of▁sentence｜>"), 0);
  EXPECT_EQ(tok.token_id("<｜end▁of▁sentence｜>"), 1);
  EXPECT_EQ(tok.token_id("</think>"), 6);
  EXPECT_EQ(tok.bos_id(), 0);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_TRUE(tok.is_special(5));
  EXPECT_TRUE(tok.pretokenizer().parallel_safe());
  for (int b = 0; b < 256; b++) EXPECT_GE(tok.model().byte_id((uint8_t)b), 7);
  for (const std::string& t : held_out()) EXPECT_EQ(tok.decode(tok.encode(t)), t);
  // It compresses English: fewer tokens than bytes by a good margin.
  std::string text = read_all(fixture("brown_sample.txt"));
  EXPECT_LT(tok.encode(text).size() * 2, text.size());
  // Training is deterministic.
  std::string again = train_small(1000, "b");
  EXPECT_EQ(read_all(path), read_all(again));
  std::filesystem::remove(path);
  std::filesystem::remove(again);
}

TEST(TokenizerTrainer, AgreesWithHfTokenizers) {
  DSEEK_REQUIRE(have_hf(), "node + npm tokenizers (.cache/npm)");
  std::string path = train_small(1000, "hf");
  Tokenizer tok = Tokenizer::load(path);
  auto texts = held_out();
  auto want = hf_encode(path, texts);
  ASSERT_EQ(want.size(), texts.size()) << "tokenizers could not load " << path;
  for (size_t i = 0; i < texts.size(); i++) EXPECT_EQ(tok.encode(texts[i]), want[i]) << texts[i];
  std::filesystem::remove(path);
}

// --individual-digits: every digit is its own token (no merges can join digits), and HF
// `tokenizers` reads the file and encodes the same ids.
TEST(TokenizerTrainer, IndividualDigits) {
  std::string path = train_small(1000, "digits", true);
  Tokenizer tok = Tokenizer::load(path);
  const std::string nums = "In 1987 they paid 12345 for 678 + 90 = 768 items.";
  std::vector<int32_t> ids = tok.encode(nums);
  std::string digits;
  for (int32_t id : ids) {
    const std::string& b = tok.token_bytes(id);
    const bool has_digit = b.find_first_of("0123456789") != std::string::npos;
    if (has_digit) {
      EXPECT_EQ(b.size(), 1u) << "token '" << b << "' holds more than one digit";
      digits += b;
    }
  }
  EXPECT_EQ(digits, "19871234567890768");
  EXPECT_EQ(tok.decode(ids), nums);
  if (have_hf()) {
    auto texts = held_out();
    texts.push_back(nums);
    auto want = hf_encode(path, texts);
    ASSERT_EQ(want.size(), texts.size()) << "tokenizers could not load " << path;
    for (size_t i = 0; i < texts.size(); i++) EXPECT_EQ(tok.encode(texts[i]), want[i]) << texts[i];
  }
  std::filesystem::remove(path);
}

TEST(TokenizerTrainer, RejectsBadOptions) {
  BpeTrainOptions opt;
  opt.vocab_size = 100;  // < 7 specials + 256 bytes
  EXPECT_THROW(BpeTrainer{opt}, Error);
  opt.vocab_size = 1000;
  opt.special_tokens = {"<a>", "<a>"};
  EXPECT_THROW(BpeTrainer{opt}, Error);
  opt.special_tokens = {"<a>"};
  BpeTrainer tr(opt);
  EXPECT_THROW(tr.add_file("/nonexistent/corpus.txt"), Error);
}

}  // namespace dseek::test
