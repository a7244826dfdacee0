// Agreement with Hugging Face `tokenizers` 0.23.2 (its Rust core, through node and
// tests/tokenizer/hf_encode.js): thousands of generated strings, encoded by both, must give
// identical ids. Run on the fixture tokenizer, on the real DeepSeek-V3 tokenizer, and on variants
// of the fixture that exercise the other supported features (GPT-2 ByteLevel regex with prefix
// space, every Split behavior, invert, literal patterns, lstrip/rstrip, ignore_merges).
#include "tokenizer_kit.h"

namespace dseek::test {

// DSEEK_FUZZ_SCALE=k multiplies the number of generated texts (for long manual runs).
static std::vector<std::string> fuzz_texts(uint32_t seed, size_t n,
                                           const std::vector<std::string>& specials) {
  if (const char* k = std::getenv("DSEEK_FUZZ_SCALE")) n *= std::max(1, std::atoi(k));
  TextGen gen(seed, specials);
  std::vector<std::string> texts;
  for (size_t i = 0; i < n; i++) texts.push_back(gen.text(1 + i % 60));
  // Corners: long runs (JIT stack, the heap merge path), empty, lone specials.
  texts.push_back(std::string(20000, ' ') + "x");
  texts.push_back(std::string(5000, '\n') + std::string(300, ' '));
  texts.push_back(std::string(3000, 'a'));
  std::string mixed(1, 'z');
  mixed.append(777, 'x').append("!!").append(400, '9');
  texts.push_back(mixed);
  texts.push_back("");
  for (const auto& s : specials) texts.push_back(s + s + " " + s);
  return texts;
}

static std::vector<std::string> specials_of(const Tokenizer& tok, size_t max_n) {
  std::vector<std::string> s;
  for (const AddedToken& a : tok.added().tokens()) {
    if (s.size() >= max_n) break;
    s.push_back(a.content);
  }
  s.push_back("<|EOT|>");
  return s;
}

// Compares our ids with the oracle's for every text; reports the first few mismatches.
static void expect_agreement(const Tokenizer& tok, const std::string& path,
                             const std::vector<std::string>& texts) {
  auto want = hf_encode(path, texts);
  ASSERT_EQ(want.size(), texts.size()) << "hf_encode.js failed on " << path;
  int bad = 0;
  for (size_t i = 0; i < texts.size(); i++) {
    auto got = tok.encode(texts[i]);
    if (got != want[i] && bad++ < 5)
      ADD_FAILURE() << "mismatch on text " << i << ": " << nlohmann::json(texts[i]).dump()
                    << "\n ours: " << nlohmann::json(got).dump()
                    << "\n   hf: " << nlohmann::json(want[i]).dump();
  }
  EXPECT_EQ(bad, 0) << "of " << texts.size() << " texts";
}

TEST(TokenizerHfAgreement, FixtureFuzz) {
  DSEEK_REQUIRE(have_hf(), "node + npm tokenizers (.cache/npm)");
  const Tokenizer& tok = fixture_tokenizer();
  expect_agreement(tok, fixture("tokenizer.json"), fuzz_texts(1234, 2000, specials_of(tok, 9)));
}

TEST(TokenizerHfAgreement, DeepseekV3Fuzz) {
  DSEEK_REQUIRE(have_hf(), "node + npm tokenizers (.cache/npm)");
  DSEEK_REQUIRE(have_v3(), "the DeepSeek-V3 tokenizer.json");
  const Tokenizer& tok = v3_tokenizer();
  std::vector<std::string> specials = {
      "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>",   "<｜User｜>", "<｜Assistant｜>",
      "<｜tool▁sep｜>",          "<｜place▁holder▁no▁7｜>", "<|EOT|>",    "<think>"};
  expect_agreement(tok, v3_path(), fuzz_texts(99, 3000, specials));
}

// Large inputs are cut at "\n"+letter and encoded on several threads: same ids as HF.
TEST(TokenizerHfAgreement, DeepseekV3FuzzMultithreaded) {
  DSEEK_REQUIRE(have_hf(), "node + npm tokenizers (.cache/npm)");
  DSEEK_REQUIRE(have_v3(), "the DeepSeek-V3 tokenizer.json");
  Tokenizer tok = Tokenizer::load(v3_path());
  tok.set_num_threads(3);
  tok.set_parallel_min_bytes(256);
  TextGen gen(7, {"<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>"});
  std::vector<std::string> texts;
  int n = 40;
  if (const char* k = std::getenv("DSEEK_FUZZ_SCALE")) n *= std::max(1, std::atoi(k));
  for (int i = 0; i < n; i++) {
    std::string t;
    for (int k = 0; k < 60; k++) t += gen.text(20) + (k % 3 ? "\nLine" : "\n\n  A");
    texts.push_back(t);
  }
  expect_agreement(tok, v3_path(), texts);
}

// ---------------------------------------------------------------------------------------------
// variants of the fixture

static std::string write_variant(const nlohmann::json& j, const std::string& name) {
  auto p = std::filesystem::temp_directory_path() /
           ("dseek_tok_variant_" + std::to_string(::getpid()) + "_" + name + ".json");
  std::ofstream(p, std::ios::binary) << j.dump();
  return p.string();
}

static void variant_agreement(const nlohmann::json& j, const std::string& name, uint32_t seed) {
  std::string path = write_variant(j, name);
  Tokenizer tok = Tokenizer::from_json(j, path);
  std::vector<std::string> specials;
  for (const AddedToken& a : tok.added().tokens()) specials.push_back(a.content);
  expect_agreement(tok, path, fuzz_texts(seed, 600, specials));
  std::filesystem::remove(path);
}

TEST(TokenizerHfAgreement, VariantGpt2ByteLevel) {
  DSEEK_REQUIRE(have_hf(), "node + npm tokenizers (.cache/npm)");
  nlohmann::json j = read_json(fixture("tokenizer.json"));
  j["pre_tokenizer"] = {{"type", "ByteLevel"},
                        {"add_prefix_space", true},
                        {"trim_offsets", true},
                        {"use_regex", true}};
  variant_agreement(j, "gpt2", 11);
}

TEST(TokenizerHfAgreement, VariantSplitBehaviors) {
  DSEEK_REQUIRE(have_hf(), "node + npm tokenizers (.cache/npm)");
  nlohmann::json j = read_json(fixture("tokenizer.json"));
  auto split = [](nlohmann::json pattern, const char* behavior, bool invert) {
    return nlohmann::json{
        {"type", "Split"}, {"pattern", pattern}, {"behavior", behavior}, {"invert", invert}};
  };
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers",
                         {split({{"Regex", "[\\t\\n]+"}}, "Removed", false),
                          split({{"Regex", "[aeiou]"}}, "MergedWithPrevious", false),
                          split({{"Regex", "\\p{N}"}}, "MergedWithNext", false),
                          split({{"Regex", "[A-Z]+"}}, "Contiguous", true),
                          split({{"String", "th"}}, "Isolated", false),
                          split({{"Regex", "\\w+|\\s+"}}, "MergedWithNext", true),
                          {{"type", "ByteLevel"},
                           {"add_prefix_space", true},
                           {"trim_offsets", true},
                           {"use_regex", false}}}}};
  variant_agreement(j, "splits", 12);
}

TEST(TokenizerHfAgreement, VariantAddedTokensAndIgnoreMerges) {
  DSEEK_REQUIRE(have_hf(), "node + npm tokenizers (.cache/npm)");
  nlohmann::json j = read_json(fixture("tokenizer.json"));
  j["model"]["ignore_merges"] = true;
  auto added = [](int id, const char* s, bool special, bool normalized, bool l, bool r) {
    return nlohmann::json{{"id", id},          {"content", s}, {"single_word", false},
                          {"lstrip", l},       {"rstrip", r},  {"normalized", normalized},
                          {"special", special}};
  };
  j["added_tokens"].push_back(added(3000, "<mask>", true, false, true, true));
  j["added_tokens"].push_back(added(3001, "<ma", false, true, false, false));
  j["added_tokens"].push_back(added(3002, " the", false, true, false, false));
  j["added_tokens"].push_back(added(3003, "[SEP]", false, false, false, true));
  variant_agreement(j, "added", 13);
}

}  // namespace dseek::test
