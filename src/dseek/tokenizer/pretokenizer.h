// PreTokenizer: splits raw text (between added tokens) into the pieces that byte-level BPE
// encodes one at a time, as Hugging Face `tokenizers` does for a `pre_tokenizer` made of
// `Split` stages (regex or literal pattern; every SplitDelimiterBehavior; invert) followed by a
// final `ByteLevel` (add_prefix_space, use_regex with the GPT-2 regex). Pieces come out as raw
// bytes; the byte-level character mapping happens in the BPE model. Other pre-tokenizer types
// (Whitespace, Metaspace, Digits, ...) and a ByteLevel that is not last are refused.
// A PreTokenizer is immutable and shareable; a PreTokenizer::Session holds one thread's regex
// match state.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "dseek/tokenizer/regex.h"

namespace dseek {

enum class SplitBehavior {
  SPLIT_ISOLATED,
  SPLIT_REMOVED,
  SPLIT_MERGED_WITH_PREVIOUS,
  SPLIT_MERGED_WITH_NEXT,
  SPLIT_CONTIGUOUS,
};

struct SplitStage {
  std::shared_ptr<Regex> regex;
  SplitBehavior behavior = SplitBehavior::SPLIT_ISOLATED;
  bool invert = false;
  bool literal = false;  // pattern was {"String": ...} rather than {"Regex": ...}
};

// Receives the pieces, in order. Called once per non-empty piece.
struct PieceSink {
  virtual ~PieceSink() = default;
  virtual void piece(std::string_view bytes) = 0;
};

class PreTokenizer {
 public:
  class Session;

  // From the `pre_tokenizer` value of tokenizer.json (null: the whole text is one piece, but a
  // byte-level BPE needs ByteLevel, so the caller decides). `file` names the file in errors.
  static PreTokenizer from_json(const nlohmann::json& j, const std::string& file);
  // The pre-tokenizer of DeepSeek-V3 / R1 (SPEC §7.1): three Isolated splits + ByteLevel.
  // individual_digits: the digit split is \p{N} (every digit its own piece, as Llama) instead
  // of \p{N}{1,3}; for small models learning arithmetic digit by digit.
  static PreTokenizer deepseek_v3(bool individual_digits = false);
  // The JSON that `tokenizers` reads back as this pre-tokenizer.
  nlohmann::json to_json() const;
  static nlohmann::json deepseek_v3_json(bool individual_digits = false);

  bool has_byte_level() const { return has_byte_level_; }
  // True when the points find_cut() returns are always piece boundaries, so text may be cut there
  // and the parts encoded independently (argued for DeepSeek-V3's stages in the .cpp).
  bool parallel_safe() const { return parallel_safe_; }

  // A cut point in text[from, end) for parallel work: the first position p >= from with
  // text[p-1] == '\n' and text[p] an ASCII letter, or text[p] == ' ' between two ASCII letters;
  // 0 when there is none. Only meaningful when parallel_safe().
  static size_t find_cut(std::string_view text, size_t from, size_t end);

  // Splits `text` and sends every piece to `sink`.
  void split(Session& s, std::string_view text, PieceSink& sink) const;

 private:
  void run(Session& s, size_t stage, std::string_view text, PieceSink& sink) const;
  void byte_level(Session& s, std::string_view text, PieceSink& sink) const;

  std::vector<SplitStage> splits_;
  bool has_byte_level_ = false;
  bool add_prefix_space_ = false;
  bool use_regex_ = false;
  std::shared_ptr<Regex> gpt2_regex_;  // when use_regex
  bool parallel_safe_ = false;
};

class PreTokenizer::Session {
 public:
  explicit Session(const PreTokenizer& p);

 private:
  friend class PreTokenizer;
  std::vector<RegexMatcher> matchers;  // one per split stage
  std::unique_ptr<RegexMatcher> gpt2;  // may be null
  std::string prefixed;                // scratch for add_prefix_space
};

}  // namespace dseek
