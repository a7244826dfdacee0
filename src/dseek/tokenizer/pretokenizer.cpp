// Pre-tokenization as Hugging Face `tokenizers` does it (see pretokenizer.h).
// Reference: huggingface/tokenizers, tokenizers/src/utils/pattern.rs (find_matches: matches and
// the gaps between them, in order), tokenizers/src/tokenizer/normalizer.rs
// (NormalizedString::split: the five SplitDelimiterBehavior cases), pre_tokenizers/split.rs and
// pre_tokenizers/byte_level.rs (prefix space added to every piece that does not start with ' ';
// then the GPT-2 regex when use_regex). Each stage re-splits every piece of the stage before it,
// and a regex only sees its own piece (lookaheads stop at the piece's end). Empty pieces are
// dropped.
#include "dseek/tokenizer/pretokenizer.h"

#include <algorithm>
#include <cstring>

#include <nlohmann/json.hpp>

#include "dseek/core/error.h"
#include "dseek/tokenizer/utf8.h"

namespace dseek {

// ---------------------------------------------------------------------------------------------
// constants

// DeepSeek-V3 / R1 pre-tokenizer regexes (tokenizer.json, SPEC §7.1), JSON-unescaped.
static constexpr const char* kDeepseekDigits = R"re(\p{N}{1,3})re";
static constexpr const char* kSingleDigits = R"re(\p{N})re";  // one digit a piece (Llama style)
static constexpr const char* kDeepseekCjk = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+";
static constexpr const char* kDeepseekMain =
    R"re([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

// The regex of ByteLevel with use_regex (GPT-2).
static constexpr const char* kGpt2Regex =
    R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)re";

static const char* behavior_name(SplitBehavior b) {
  switch (b) {
    case SplitBehavior::SPLIT_ISOLATED:
      return "Isolated";
    case SplitBehavior::SPLIT_REMOVED:
      return "Removed";
    case SplitBehavior::SPLIT_MERGED_WITH_PREVIOUS:
      return "MergedWithPrevious";
    case SplitBehavior::SPLIT_MERGED_WITH_NEXT:
      return "MergedWithNext";
    case SplitBehavior::SPLIT_CONTIGUOUS:
      return "Contiguous";
  }
  return "?";
}

// Equivalent spellings of one regex: literal CR/LF vs their escapes, and `\"` vs `"`.
static std::string normalize_spelling(std::string_view p) {
  std::string r;
  for (size_t i = 0; i < p.size(); i++) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      if (p[i + 1] != '"') r += c;
      r += p[++i];
    } else if (c == '\r') {
      r += "\\r";
    } else if (c == '\n') {
      r += "\\n";
    } else {
      r += c;
    }
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// loading

static void parse_stage(const nlohmann::json& j, const std::string& file,
                        std::vector<SplitStage>* splits, bool* byte_level, bool* prefix,
                        bool* use_regex) {
  DSEEK_CHECK(j.is_object() && j.contains("type") && j["type"].is_string(),
              "tokenizer file '{}': pre_tokenizer entry without a \"type\"", file);
  std::string type = j["type"];
  if (type == "Sequence") {
    DSEEK_CHECK(j.contains("pretokenizers") && j["pretokenizers"].is_array(),
                "tokenizer file '{}': pre_tokenizer Sequence without \"pretokenizers\"", file);
    for (const auto& e : j["pretokenizers"])
      parse_stage(e, file, splits, byte_level, prefix, use_regex);
    return;
  }
  if (type == "Split") {
    DSEEK_CHECK(!*byte_level,
                "tokenizer file '{}': pre_tokenizer Split after ByteLevel is not supported", file);
    SplitStage st;
    const auto& pat = j.value("pattern", nlohmann::json());
    std::string text;
    if (pat.is_object() && pat.contains("Regex") && pat["Regex"].is_string()) {
      text = pat["Regex"];
    } else if (pat.is_object() && pat.contains("String") && pat["String"].is_string()) {
      text = pat["String"];
      st.literal = true;
    } else {
      fail(
          "tokenizer file '{}': pre_tokenizer Split needs a pattern {{\"Regex\": ...}} or "
          "{{\"String\": ...}}",
          file);
    }
    std::string b = j.value("behavior", std::string("Isolated"));
    if (b == "Isolated")
      st.behavior = SplitBehavior::SPLIT_ISOLATED;
    else if (b == "Removed")
      st.behavior = SplitBehavior::SPLIT_REMOVED;
    else if (b == "MergedWithPrevious")
      st.behavior = SplitBehavior::SPLIT_MERGED_WITH_PREVIOUS;
    else if (b == "MergedWithNext")
      st.behavior = SplitBehavior::SPLIT_MERGED_WITH_NEXT;
    else if (b == "Contiguous")
      st.behavior = SplitBehavior::SPLIT_CONTIGUOUS;
    else
      fail("tokenizer file '{}': pre_tokenizer Split behavior '{}' is not supported", file, b);
    st.invert = j.value("invert", false);
    try {
      st.regex = std::make_shared<Regex>(text, st.literal);
    } catch (const Error& e) {
      fail("tokenizer file '{}': pre_tokenizer Split: {}", file, e.what());
    }
    splits->push_back(std::move(st));
    return;
  }
  if (type == "ByteLevel") {
    DSEEK_CHECK(!*byte_level, "tokenizer file '{}': two ByteLevel pre-tokenizers", file);
    *byte_level = true;
    *prefix = j.value("add_prefix_space", true);
    *use_regex = j.value("use_regex", true);
    return;
  }
  fail(
      "tokenizer file '{}': pre_tokenizer type '{}' is not supported (supported: Sequence, "
      "Split, ByteLevel)",
      file, type);
}

PreTokenizer PreTokenizer::from_json(const nlohmann::json& j, const std::string& file) {
  PreTokenizer p;
  if (j.is_null()) return p;
  parse_stage(j, file, &p.splits_, &p.has_byte_level_, &p.add_prefix_space_, &p.use_regex_);
  if (p.use_regex_) p.gpt2_regex_ = std::make_shared<Regex>(kGpt2Regex, false);
  // Cutting text at the points find_cut() returns and pre-tokenizing the parts separately gives
  // the same pieces, for exactly DeepSeek's three stages (why: neither point touches a digit or a
  // CJK character, so stages 1 and 2 leave it inside one gap; in stage 3 ...):
  //  * "\n" | letter: every alternative that can contain '\n' ends at the last newline of its
  //    whitespace run (alt 3/4) or before a non-space (alt 5/6); none continues from '\n' into a
  //    letter. The only end-of-subject-sensitive alternative, `\s+(?!\S)`, comes after
  //    `\s*[\r\n]+`, which always matches first on a run that ends in '\n'.
  //  * letter | " " letter: the match covering the letter (alt 1 or 2, letters only after its first
  //    character) ends at the space, which no letter-matching alternative can include; the space
  //    then starts alt 2 (" " + letters) whether or not the text was cut there.
  // No alternative looks behind. tests/tokenizer checks this on the corpus and on fuzz text.
  const char* known[3] = {kDeepseekDigits, kDeepseekCjk, kDeepseekMain};
  bool same = p.splits_.size() == 3 && p.has_byte_level_ && !p.add_prefix_space_ && !p.use_regex_;
  for (size_t i = 0; same && i < 3; i++) {
    const SplitStage& s = p.splits_[i];
    same = !s.literal && !s.invert && s.behavior == SplitBehavior::SPLIT_ISOLATED &&
           normalize_spelling(s.regex->pattern()) == known[i];
  }
  p.parallel_safe_ = same;
  return p;
}

nlohmann::json PreTokenizer::deepseek_v3_json(bool individual_digits) {
  nlohmann::json seq = nlohmann::json::array();
  for (const char* pat :
       {individual_digits ? kSingleDigits : kDeepseekDigits, kDeepseekCjk, kDeepseekMain}) {
    seq.push_back({{"type", "Split"},
                   {"pattern", {{"Regex", pat}}},
                   {"behavior", "Isolated"},
                   {"invert", false}});
  }
  seq.push_back({{"type", "ByteLevel"},
                 {"add_prefix_space", false},
                 {"trim_offsets", true},
                 {"use_regex", false}});
  return {{"type", "Sequence"}, {"pretokenizers", seq}};
}

PreTokenizer PreTokenizer::deepseek_v3(bool individual_digits) {
  return from_json(deepseek_v3_json(individual_digits), "<built-in deepseek-v3>");
}

nlohmann::json PreTokenizer::to_json() const {
  nlohmann::json seq = nlohmann::json::array();
  for (const SplitStage& s : splits_) {
    seq.push_back({{"type", "Split"},
                   {"pattern", {{s.literal ? "String" : "Regex", s.regex->pattern()}}},
                   {"behavior", behavior_name(s.behavior)},
                   {"invert", s.invert}});
  }
  if (has_byte_level_) {
    seq.push_back({{"type", "ByteLevel"},
                   {"add_prefix_space", add_prefix_space_},
                   {"trim_offsets", true},
                   {"use_regex", use_regex_}});
  }
  return {{"type", "Sequence"}, {"pretokenizers", seq}};
}

// ---------------------------------------------------------------------------------------------
// splitting

PreTokenizer::Session::Session(const PreTokenizer& p) {
  matchers.reserve(p.splits_.size());
  for (const SplitStage& s : p.splits_) matchers.emplace_back(*s.regex);
  if (p.gpt2_regex_) gpt2 = std::make_unique<RegexMatcher>(*p.gpt2_regex_);
}

static bool ascii_letter(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

size_t PreTokenizer::find_cut(std::string_view text, size_t from, size_t end) {
  for (size_t p = std::max<size_t>(from, 1); p + 1 < end; p++) {
    char c = text[p];
    if (ascii_letter(c) && text[p - 1] == '\n') return p;
    if (c == ' ' && ascii_letter(text[p - 1]) && ascii_letter(text[p + 1])) return p;
  }
  return 0;
}

// Next search position after an empty match at `pos`: one character further.
static size_t after_empty(std::string_view text, size_t pos) {
  if (pos >= text.size()) return text.size() + 1;
  size_t n = utf8_valid_char_len(text.substr(pos));
  return pos + (n ? n : 1);
}

void PreTokenizer::split(Session& s, std::string_view text, PieceSink& sink) const {
  if (text.empty()) return;
  run(s, 0, text, sink);
}

void PreTokenizer::run(Session& s, size_t stage, std::string_view text, PieceSink& sink) const {
  if (stage == splits_.size()) {
    byte_level(s, text, sink);
    return;
  }
  const SplitStage& st = splits_[stage];
  RegexMatcher& m = s.matchers[stage];
  if (st.behavior == SplitBehavior::SPLIT_ISOLATED) {
    // Matches and gaps are all pieces (invert changes nothing here): stream them.
    size_t prev = 0, from = 0, a, b;
    while (from <= text.size() && m.find(text, from, &a, &b)) {
      if (a > prev) run(s, stage + 1, text.substr(prev, a - prev), sink);
      if (b > a) run(s, stage + 1, text.substr(a, b - a), sink);
      prev = b;
      from = b > a ? b : after_empty(text, b);
    }
    if (prev < text.size()) run(s, stage + 1, text.substr(prev), sink);
    return;
  }
  // General case: list (start, end, is_match) then apply the behavior (normalizer.rs split).
  struct Span {
    size_t a, b;
    bool match;
  };
  std::vector<Span> spans;
  {
    size_t prev = 0, from = 0, a, b;
    while (from <= text.size() && m.find(text, from, &a, &b)) {
      if (a > prev) spans.push_back({prev, a, st.invert});
      spans.push_back({a, b, !st.invert});
      prev = b;
      from = b > a ? b : after_empty(text, b);
    }
    if (prev < text.size()) spans.push_back({prev, text.size(), st.invert});
  }
  std::vector<Span> out;
  bool prev_match = false;
  switch (st.behavior) {
    case SplitBehavior::SPLIT_ISOLATED:
      out = spans;
      break;
    case SplitBehavior::SPLIT_REMOVED:
      for (const Span& sp : spans)
        if (!sp.match) out.push_back(sp);
      break;
    case SplitBehavior::SPLIT_CONTIGUOUS:
      for (const Span& sp : spans) {
        if (sp.match == prev_match && !out.empty())
          out.back().b = sp.b;
        else
          out.push_back(sp);
        prev_match = sp.match;
      }
      break;
    case SplitBehavior::SPLIT_MERGED_WITH_PREVIOUS:
      for (const Span& sp : spans) {
        if (sp.match && !prev_match && !out.empty())
          out.back().b = sp.b;
        else
          out.push_back(sp);
        prev_match = sp.match;
      }
      break;
    case SplitBehavior::SPLIT_MERGED_WITH_NEXT:
      for (size_t k = spans.size(); k-- > 0;) {
        const Span& sp = spans[k];
        if (sp.match && !prev_match && !out.empty())
          out.back().a = sp.a;
        else
          out.push_back(sp);
        prev_match = sp.match;
      }
      std::reverse(out.begin(), out.end());
      break;
  }
  for (const Span& sp : out)
    if (sp.b > sp.a) run(s, stage + 1, text.substr(sp.a, sp.b - sp.a), sink);
}

void PreTokenizer::byte_level(Session& s, std::string_view text, PieceSink& sink) const {
  std::string_view t = text;
  if (add_prefix_space_ && text[0] != ' ') {
    s.prefixed.assign(1, ' ');
    s.prefixed.append(text);
    t = s.prefixed;
  }
  if (!use_regex_) {
    sink.piece(t);
    return;
  }
  size_t prev = 0, from = 0, a, b;
  while (from <= t.size() && s.gpt2->find(t, from, &a, &b)) {
    if (a > prev) sink.piece(t.substr(prev, a - prev));
    if (b > a) sink.piece(t.substr(a, b - a));
    prev = b;
    from = b > a ? b : after_empty(t, b);
  }
  if (prev < t.size()) sink.piece(t.substr(prev));
}

}  // namespace dseek
