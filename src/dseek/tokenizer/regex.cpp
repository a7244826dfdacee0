// PCRE2 wrapper with Oniguruma-compatible classes (see regex.h).
//
// Why the translation: HF `tokenizers` uses Oniguruma, where (Unicode mode) \s is
// [\t-\r\x{85}\p{Zs}\p{Zl}\p{Zp}], \w is [\p{Alphabetic}\p{M}\p{Nd}\p{Pc}] plus the Latin-1
// superscripts and fractions (its ISO-8859-1 ctype table; checked against `tokenizers`), and \h is
// a hex digit.
// PCRE2 with PCRE2_UCP has \s = \p{Z} + \h + \v (which adds U+180E), \w = [\p{L}\p{N}_] and
// \h = horizontal space. We spell out Oniguruma's meaning explicitly.
#include "dseek/tokenizer/regex.h"

#include <pcre2.h>

#include "dseek/core/error.h"

namespace dseek {

// ---------------------------------------------------------------------------------------------
// translation

static constexpr const char* kOnigSpace = "\\t-\\r\\x{85}\\p{Z}";
static constexpr const char* kOnigWord =
    "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{b2}\\x{b3}\\x{b9}\\x{bc}-\\x{be}";
static constexpr const char* kOnigHex = "0-9a-fA-F";

std::string regex_translate_onig(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 32);
  bool in_class = false;
  size_t i = 0, n = p.size();
  auto add_set = [&](const char* set, bool negated, char esc) {
    if (in_class && negated)
      fail("regex construct \\{} inside a character class is not supported", esc);
    if (in_class) {
      out += set;
    } else {
      out += negated ? "[^" : "[";
      out += set;
      out += "]";
    }
  };
  while (i < n) {
    char c = p[i];
    if (c == '\\' && i + 1 < n) {
      char e = p[i + 1];
      switch (e) {
        case 's':
          add_set(kOnigSpace, false, e);
          break;
        case 'S':
          add_set(kOnigSpace, true, e);
          break;
        case 'w':
          add_set(kOnigWord, false, e);
          break;
        case 'W':
          add_set(kOnigWord, true, e);
          break;
        case 'h':
          add_set(kOnigHex, false, e);
          break;
        case 'H':
          add_set(kOnigHex, true, e);
          break;
        default:
          out += c;
          out += e;
      }
      i += 2;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      i++;
      if (i < n && p[i] == '^') out += p[i++];
      if (i < n && p[i] == ']') out += p[i++];  // a leading ']' is literal
      continue;
    }
    if (in_class) {
      if (c == '[') {
        if (i + 1 < n && p[i + 1] == ':') {  // POSIX class [:alpha:]: copy through ":]"
          size_t close = p.find(":]", i + 2);
          if (close == std::string_view::npos) fail("regex: unterminated POSIX class");
          out.append(p.substr(i, close + 2 - i));
          i = close + 2;
          continue;
        }
        fail("regex: nested character classes are not supported");
      }
      if (c == '&' && i + 1 < n && p[i + 1] == '&')
        fail("regex: character class intersection (&&) is not supported");
      if (c == ']') in_class = false;
    }
    out += c;
    i++;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Regex

Regex::Regex(std::string_view pattern, bool literal) : pattern_(pattern) {
  std::string translated = literal ? std::string(pattern) : regex_translate_onig(pattern);
  uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
  if (literal) opts = PCRE2_LITERAL | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
  pcre2_compile_context* cctx = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(cctx, PCRE2_NEWLINE_LF);  // Oniguruma: '.' excludes only \n
  int err = 0;
  PCRE2_SIZE err_off = 0;
  pcre2_code* code =
      pcre2_compile((PCRE2_SPTR)translated.data(), translated.size(), opts, &err, &err_off, cctx);
  pcre2_compile_context_free(cctx);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail("regex '{}' does not compile (PCRE2, at offset {}): {}", std::string(pattern),
         (size_t)err_off, (const char*)msg);
  }
  code_ = code;
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() {
  if (code_) pcre2_code_free((pcre2_code*)code_);
}

Regex::Regex(Regex&& o) noexcept : pattern_(std::move(o.pattern_)), code_(o.code_), jit_(o.jit_) {
  o.code_ = nullptr;
}

Regex& Regex::operator=(Regex&& o) noexcept {
  if (this != &o) {
    if (code_) pcre2_code_free((pcre2_code*)code_);
    pattern_ = std::move(o.pattern_);
    code_ = o.code_;
    jit_ = o.jit_;
    o.code_ = nullptr;
  }
  return *this;
}

// ---------------------------------------------------------------------------------------------
// RegexMatcher

RegexMatcher::RegexMatcher(const Regex& re) : re_(&re) {
  match_data_ = pcre2_match_data_create_from_pattern((pcre2_code*)re.code(), nullptr);
  DSEEK_CHECK(match_data_, "regex: out of memory creating match data");
}

RegexMatcher::~RegexMatcher() {
  if (match_data_) pcre2_match_data_free((pcre2_match_data*)match_data_);
  if (match_ctx_) pcre2_match_context_free((pcre2_match_context*)match_ctx_);
  if (jit_stack_) pcre2_jit_stack_free((pcre2_jit_stack*)jit_stack_);
}

RegexMatcher::RegexMatcher(RegexMatcher&& o) noexcept
    : re_(o.re_), match_data_(o.match_data_), match_ctx_(o.match_ctx_), jit_stack_(o.jit_stack_) {
  o.match_data_ = o.match_ctx_ = o.jit_stack_ = nullptr;
}

bool RegexMatcher::find(std::string_view subject, size_t from, size_t* start, size_t* end) {
  auto* code = (pcre2_code*)re_->code();
  auto* md = (pcre2_match_data*)match_data_;
  auto* subj = (PCRE2_SPTR)subject.data();
  for (int attempt = 0; attempt < 2; attempt++) {
    auto* mctx = (pcre2_match_context*)match_ctx_;
    int rc = re_->jit() ? pcre2_jit_match(code, subj, subject.size(), from, 0, md, mctx)
                        : pcre2_match(code, subj, subject.size(), from, 0, md, mctx);
    if (rc >= 0) {
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      *start = ov[0];
      *end = ov[1];
      return true;
    }
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !jit_stack_) {
      // Long runs can need more than the default 32 KiB JIT stack: retry with up to 64 MiB.
      jit_stack_ = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, nullptr);
      match_ctx_ = pcre2_match_context_create(nullptr);
      DSEEK_CHECK(jit_stack_ && match_ctx_, "regex: out of memory creating a JIT stack");
      pcre2_jit_stack_assign((pcre2_match_context*)match_ctx_, nullptr,
                             (pcre2_jit_stack*)jit_stack_);
      continue;
    }
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    fail("regex '{}' failed on a {}-byte input: {}", re_->pattern(), subject.size(),
         (const char*)msg);
  }
  fail("regex '{}' failed on a {}-byte input: JIT stack limit", re_->pattern(), subject.size());
}

}  // namespace dseek
