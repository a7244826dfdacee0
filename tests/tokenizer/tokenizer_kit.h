// Shared helpers for the tokenizer tests: fixture paths, the real DeepSeek-V3 tokenizer (fetched
// by scripts/npm_deps.sh), the Hugging Face `tokenizers` oracle run through node
// (tests/tokenizer/hf_encode.js), and a generator of adversarial text.
// Tests that need something absent skip, except under CI=true, where they fail.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dseek/core/error.h"
#include "dseek/tokenizer/tokenizer.h"

namespace dseek::test {

inline std::string fixture(const std::string& rel) {
  return std::string(DSEEK_FIXTURES) + "/tokenizer_v3style/" + rel;
}
inline std::string v3_path() {
  return std::string(DSEEK_SOURCE_DIR) + "/.cache/deepseek_v3/tokenizer.json";
}
inline std::string hf_script() {
  return std::string(DSEEK_SOURCE_DIR) + "/tests/tokenizer/hf_encode.js";
}
inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}
inline bool have_v3() {
  return std::filesystem::exists(v3_path());
}
inline bool have_hf() {
  std::string nm = std::string(DSEEK_SOURCE_DIR) + "/.cache/npm/node_modules/";
  return std::filesystem::exists(nm + "tokenizers/package.json") &&
         std::filesystem::exists(nm + "@huggingface/jinja/package.json") &&
         std::system("node --version >/dev/null 2>&1") == 0;
}

// Skip (or fail under CI=true) when `ok` is false. Use at the top of a TEST body.
#define DSEEK_REQUIRE(ok, what)                                                             \
  do {                                                                                      \
    if (!(ok)) {                                                                            \
      if (::dseek::test::in_ci()) {                                                         \
        FAIL() << what << " is missing (CI=true: run scripts/npm_deps.sh first)";           \
      } else {                                                                              \
        GTEST_SKIP() << what << " is missing: run scripts/npm_deps.sh to enable this test"; \
      }                                                                                     \
    }                                                                                       \
  } while (0)

inline std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline nlohmann::json read_json(const std::string& path) {
  return nlohmann::json::parse(read_all(path));
}

// Loaded once per process (the V3 file takes a moment to parse).
inline const Tokenizer& fixture_tokenizer() {
  static const Tokenizer t = Tokenizer::load(fixture("tokenizer.json"));
  return t;
}
inline const Tokenizer& v3_tokenizer() {
  static const Tokenizer t = Tokenizer::load(v3_path());
  return t;
}

// Runs the HF oracle on `texts`; returns one id list per text.
inline std::vector<std::vector<int32_t>> hf_encode(const std::string& tokenizer_path,
                                                   const std::vector<std::string>& texts) {
  auto dir = std::filesystem::temp_directory_path() /
             ("dseek_tok_" + std::to_string(::getpid()) + "_" + std::to_string(std::rand()));
  std::filesystem::create_directories(dir);
  std::string in = (dir / "texts.jsonl").string(), out = (dir / "ids.jsonl").string();
  {
    std::ofstream f(in, std::ios::binary);
    for (const auto& t : texts)
      f << nlohmann::json(t).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  std::string cmd =
      "node '" + hf_script() + "' '" + tokenizer_path + "' '" + in + "' > '" + out + "'";
  int rc = std::system(cmd.c_str());
  std::vector<std::vector<int32_t>> ids;
  if (rc == 0) {
    std::ifstream f(out);
    std::string line;
    while (std::getline(f, line))
      if (!line.empty()) ids.push_back(nlohmann::json::parse(line).get<std::vector<int32_t>>());
  }
  std::filesystem::remove_all(dir);
  return ids;
}

// Random text that stresses the pre-tokenizer and BPE: mixes of ASCII words, digit runs, CJK,
// kana, Hangul, Cyrillic, emoji (with ZWJ/skin tones), combining marks, every kind of Unicode
// space and newline run, punctuation/symbols, and inline special tokens. Always valid UTF-8.
class TextGen {
 public:
  explicit TextGen(uint32_t seed, std::vector<std::string> specials = {})
      : rng_(seed), specials_(std::move(specials)) {}

  std::string text(size_t pieces) {
    std::string s;
    for (size_t i = 0; i < pieces; i++) piece(&s);
    return s;
  }

 private:
  static void put(std::string* s, uint32_t cp) {
    if (cp < 0x80) {
      s->push_back((char)cp);
    } else if (cp < 0x800) {
      s->push_back((char)(0xC0 | (cp >> 6)));
      s->push_back((char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      s->push_back((char)(0xE0 | (cp >> 12)));
      s->push_back((char)(0x80 | ((cp >> 6) & 0x3F)));
      s->push_back((char)(0x80 | (cp & 0x3F)));
    } else {
      s->push_back((char)(0xF0 | (cp >> 18)));
      s->push_back((char)(0x80 | ((cp >> 12) & 0x3F)));
      s->push_back((char)(0x80 | ((cp >> 6) & 0x3F)));
      s->push_back((char)(0x80 | (cp & 0x3F)));
    }
  }
  uint32_t pick(uint32_t lo, uint32_t hi) {
    return std::uniform_int_distribution<uint32_t>(lo, hi)(rng_);
  }
  template <size_t N>
  uint32_t one_of(const uint32_t (&a)[N]) {
    return a[pick(0, N - 1)];
  }

  void piece(std::string* s) {
    static const char* words[] = {"the",
                                  "The",
                                  "don't",
                                  "it's",
                                  "I'm",
                                  "you'll",
                                  "we've",
                                  "hello",
                                  "world",
                                  "Tokenizer",
                                  "DeepSeek",
                                  "naïve",
                                  "café",
                                  "x",
                                  "AI",
                                  "GPU",
                                  "http://a.b/c?d=e",
                                  "foo_bar",
                                  "C++",
                                  "a.b"};
    static const uint32_t spaces[] = {
        ' ',    ' ',    ' ',    '\t',   '\n',   '\r',   0x0B,   0x0C,   0x85,   0xA0,   0x1680,
        0x180E, 0x2000, 0x2003, 0x200A, 0x200B, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF};
    static const uint32_t punct[] = {'.',    ',',    '!',    '?',    ';',    ':',    '"',    '\'',
                                     '(',    ')',    '[',    ']',    '{',    '}',    '<',    '>',
                                     '/',    '\\',   '|',    '-',    '_',    '+',    '=',    '*',
                                     '&',    '^',    '%',    '$',    '#',    '@',    '~',    '`',
                                     0xA1,   0xBF,   0x2014, 0x2026, 0x3001, 0x3002, 0xFF0C, 0xFF5C,
                                     0x300C, 0x00A9, 0x2122, 0x2192, 0x2211, 0x20AC, 0x00B0};
    static const uint32_t marks[] = {0x300, 0x301, 0x308,  0x323,  0x35C,
                                     0x64B, 0x93C, 0x200D, 0xFE0F, 0x1F3FB};
    static const uint32_t numbers[] = {0x660,  0x669,  0x966,  0xFF10, 0xFF19, 0x2160,
                                       0x00B2, 0x00BD, 0x2460, 0x3007, 0x0BE7};
    switch (pick(0, 15)) {
      case 0:
      case 1:
        s->append(words[pick(0, std::size(words) - 1)]);
        break;
      case 2:  // ASCII letters with a random case pattern
        for (uint32_t k = pick(1, 12); k-- > 0;)
          put(s, pick(0, 1) ? pick('a', 'z') : pick('A', 'Z'));
        break;
      case 3:  // digit runs, incl. long ones (\p{N}{1,3} chunking)
        for (uint32_t k = pick(1, 11); k-- > 0;) put(s, pick('0', '9'));
        break;
      case 4:  // whitespace runs
        for (uint32_t k = pick(1, 5); k-- > 0;) put(s, one_of(spaces));
        break;
      case 5:  // punctuation / symbols runs
        for (uint32_t k = pick(1, 4); k-- > 0;) put(s, one_of(punct));
        break;
      case 6:  // CJK ideographs (inside and outside the 4E00-9FA5 split range)
        for (uint32_t k = pick(1, 6); k-- > 0;)
          put(s, pick(0, 5) ? pick(0x4E00, 0x9FA5) : pick(0x9FA6, 0x9FFF));
        break;
      case 7:  // kana (hiragana, katakana incl. 30A0/30FF edges), halfwidth katakana
        for (uint32_t k = pick(1, 6); k-- > 0;)
          put(s, pick(0, 3) ? pick(0x3040, 0x30FF) : pick(0xFF66, 0xFF9D));
        break;
      case 8:  // Hangul, Cyrillic, Greek, Arabic, Devanagari, Thai letters
        for (uint32_t k = pick(1, 6); k-- > 0;) {
          static const uint32_t lo[] = {0xAC00, 0x0410, 0x03B1, 0x0627, 0x0915, 0x0E01};
          static const uint32_t hi[] = {0xAD00, 0x044F, 0x03C9, 0x064A, 0x0939, 0x0E2E};
          size_t r = pick(0, 5);
          put(s, pick(lo[r], hi[r]));
        }
        break;
      case 9:  // emoji, with skin tones / ZWJ / variation selectors
        for (uint32_t k = pick(1, 3); k-- > 0;) {
          put(s, pick(0x1F300, 0x1F64F));
          if (pick(0, 3) == 0) put(s, one_of(marks));
        }
        break;
      case 10:  // combining marks after letters or alone
        if (pick(0, 1)) put(s, pick('a', 'z'));
        for (uint32_t k = pick(1, 3); k-- > 0;) put(s, one_of(marks));
        break;
      case 11:  // other numbers (\p{N} but not ASCII)
        for (uint32_t k = pick(1, 4); k-- > 0;) put(s, one_of(numbers));
        break;
      case 12:  // control and format characters
        put(s, one_of({0x01u, 0x07u, 0x1Bu, 0x7Fu, 0xADu, 0x200Eu, 0x2060u, 0xE000u, 0xFFFDu}));
        break;
      case 13:  // newline structures
        s->append(pick(0, 1) ? "\n\n" : "\r\n");
        if (pick(0, 1)) s->append("  ");
        break;
      case 14:  // inline special / added tokens, and broken ones
        if (!specials_.empty()) {
          const std::string& t = specials_[pick(0, specials_.size() - 1)];
          size_t cut = t.size() / 2;  // a broken token, cut at a character boundary
          while (cut > 0 && ((unsigned char)t[cut] & 0xC0) == 0x80) cut--;
          s->append(pick(0, 4) ? t : t.substr(0, cut));
        } else {
          s->append(" ");
        }
        break;
      default:  // a space before the next piece (the " ?" of the regexes)
        s->push_back(' ');
    }
  }
  uint32_t one_of(const std::initializer_list<uint32_t>& l) {
    return *(l.begin() + pick(0, l.size() - 1));
  }

  std::mt19937 rng_;
  std::vector<std::string> specials_;
};

}  // namespace dseek::test
