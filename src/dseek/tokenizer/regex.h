// Regex: a PCRE2 pattern (8-bit, UTF + Unicode properties, JIT-compiled) that behaves like the
// Oniguruma regexes Hugging Face `tokenizers` runs for `Split` pre-tokenizers. The pattern is
// translated where the two engines disagree (\s, \S, \w, \W, \h, \H; see regex_translate_onig)
// and refused where translation is not supported (nested classes, class intersection `&&`).
// RegexMatcher holds the per-thread match state: create one per thread, never share it.
// Subjects may hold invalid UTF-8 (such bytes never match).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace dseek {

// Rewrites an Oniguruma pattern into an equivalent PCRE2 pattern. Throws dseek::Error naming
// the construct when it cannot.
std::string regex_translate_onig(std::string_view pattern);

class Regex {
 public:
  // `literal`: the pattern is a plain string (HF `{"String": ...}`), matched as is.
  Regex(std::string_view pattern, bool literal);
  ~Regex();
  Regex(Regex&& o) noexcept;
  Regex& operator=(Regex&& o) noexcept;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  const std::string& pattern() const { return pattern_; }  // as given (before translation)
  void* code() const { return code_; }                     // pcre2_code_8*
  bool jit() const { return jit_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;
  bool jit_ = false;
};

class RegexMatcher {
 public:
  explicit RegexMatcher(const Regex& re);
  ~RegexMatcher();
  RegexMatcher(RegexMatcher&& o) noexcept;
  RegexMatcher(const RegexMatcher&) = delete;
  RegexMatcher& operator=(const RegexMatcher&) = delete;
  RegexMatcher& operator=(RegexMatcher&&) = delete;

  // Finds the leftmost match in `subject` starting at or after byte `from`. On success sets
  // [*start, *end) and returns true. Lookarounds see only `subject`.
  bool find(std::string_view subject, size_t from, size_t* start, size_t* end);

 private:
  const Regex* re_;
  void* match_data_ = nullptr;  // pcre2_match_data_8*
  void* match_ctx_ = nullptr;   // pcre2_match_context_8*, created with a big JIT stack on demand
  void* jit_stack_ = nullptr;   // pcre2_jit_stack_8*
};

}  // namespace dseek
