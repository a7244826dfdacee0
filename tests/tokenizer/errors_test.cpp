// Bad input: every failure is one dseek::Error whose message names the file and the problem.
#include "tokenizer_kit.h"

namespace dseek::test {

// Expects `fn` to throw dseek::Error with all of `parts` in its message.
template <typename Fn>
static void expect_error(Fn fn, std::vector<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no dseek::Error thrown (wanted: " << parts.at(0) << ")";
  } catch (const Error& e) {
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
          << "message: " << e.what() << "\nwanted: " << p;
  }
}

static Tokenizer from(const nlohmann::json& j) {
  return Tokenizer::from_json(j, "t.json");
}

TEST(TokenizerErrors, MissingAndMalformedFiles) {
  expect_error([] { Tokenizer::load("/nonexistent/tokenizer.json"); },
               {"cannot open tokenizer file", "/nonexistent/tokenizer.json"});
  auto p = std::filesystem::temp_directory_path() /
           ("dseek_bad_" + std::to_string(::getpid()) + ".json");
  std::ofstream(p) << "{\"model\": {\"type\": \"BPE\", \"vocab\": {";
  expect_error([&] { Tokenizer::load(p.string()); }, {"not valid JSON", p.string()});
  std::ofstream(p) << "[1, 2, 3]";
  expect_error([&] { Tokenizer::load(p.string()); }, {"no \"model\"", p.string()});
  std::filesystem::remove(p);
}

TEST(TokenizerErrors, UnsupportedFeatures) {
  const nlohmann::json base = read_json(fixture("tokenizer.json"));
  auto with = [&](auto edit) {
    nlohmann::json j = base;
    edit(j);
    return j;
  };
  expect_error([&] { from(with([](auto& j) { j["model"]["type"] = "WordPiece"; })); },
               {"model type 'WordPiece'", "t.json"});
  expect_error([&] { from(with([](auto& j) { j["model"]["type"] = "Unigram"; })); }, {"Unigram"});
  expect_error([&] { from(with([](auto& j) {
                       j["normalizer"] = {{"type", "NFKC"}};
                     })); },
               {"normalizer 'NFKC'", "t.json"});
  expect_error([&] { from(with([](auto& j) {
                       j["pre_tokenizer"] = {{"type", "Whitespace"}};
                     })); },
               {"pre_tokenizer type 'Whitespace'"});
  expect_error([&] { from(with([](auto& j) { j["pre_tokenizer"] = nullptr; })); },
               {"no ByteLevel"});
  expect_error([&] { from(with([](auto& j) {
                       j["decoder"] = {{"type", "WordPiece"}};
                     })); },
               {"decoder 'WordPiece'"});
  expect_error([&] { from(with([](auto& j) { j["model"]["byte_fallback"] = true; })); },
               {"byte_fallback"});
  expect_error([&] { from(with([](auto& j) { j["model"]["dropout"] = 0.1; })); }, {"dropout"});
  expect_error([&] { from(with([](auto& j) { j["model"]["continuing_subword_prefix"] = "##"; })); },
               {"continuing_subword_prefix"});
  expect_error([&] { from(with([](auto& j) { j["added_tokens"][0]["single_word"] = true; })); },
               {"single_word"});
  expect_error(
      [&] {
        from(with([](auto& j) {
          j["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {{"Regex", "[a-z&&e]"}};
        }));
      },
      {"intersection (&&) is not supported", "t.json"});
  expect_error(
      [&] {
        from(with([](auto& j) {
          j["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {{"Regex", "[a[bc]]"}};
        }));
      },
      {"nested character classes"});
  expect_error(
      [&] {
        from(with([](auto& j) {
          j["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {{"Regex", "(("}};
        }));
      },
      {"does not compile"});
  expect_error([&] { from(with([](auto& j) { j["model"]["merges"].push_back("Ġ nosuch"); })); },
               {"not in the vocab"});
  expect_error([&] { from(with([](auto& j) { j["model"]["merges"].push_back("a b c"); })); },
               {"one space"});
  expect_error([&] { from(with([](auto& j) { j["model"]["merges"].push_back(3); })); },
               {"neither"});
  expect_error([&] { from(with([](auto& j) { j["model"]["vocab"]["x"] = "seven"; })); },
               {"malformed", "t.json"});
}

TEST(TokenizerErrors, AcceptedVariants) {
  nlohmann::json j = read_json(fixture("tokenizer.json"));
  // Merges in the "a b" string form give the same tokenizer as the [a, b] form.
  nlohmann::json s = j;
  for (auto& m : s["model"]["merges"]) m = m[0].get<std::string>() + " " + m[1].get<std::string>();
  s["normalizer"] = {{"type", "Sequence"}, {"normalizers", nlohmann::json::array()}};
  Tokenizer a = from(j), b = from(s);
  std::string text = read_all(fixture("brown_sample.txt")).substr(0, 20000);
  EXPECT_EQ(a.encode(text), b.encode(text));
}

}  // namespace dseek::test
