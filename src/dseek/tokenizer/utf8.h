// UTF-8 helpers for the tokenizer: encode one code point, find where the last complete
// character ends (for streaming decode), and the lossy conversion Hugging Face uses when it
// turns decoded bytes into text (Rust's String::from_utf8_lossy: every maximal invalid
// subsequence becomes one U+FFFD). Byte strings in, byte strings out; no locale, no allocation
// beyond the output string.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dseek {

// Appends the UTF-8 encoding of `cp` (must be a valid scalar value) to `out`.
void utf8_append(std::string* out, uint32_t cp);

// Length in bytes of the valid UTF-8 character starting at s[0], or 0 when s does not start
// with one (invalid lead byte, bad continuation, overlong, surrogate, > U+10FFFF, or truncated).
size_t utf8_valid_char_len(std::string_view s);

// Decodes the valid character at s[0] (caller checked utf8_valid_char_len(s) == n > 0).
uint32_t utf8_decode_char(std::string_view s, size_t n);

// Number of leading bytes of `s` that can be emitted now: everything except a trailing
// incomplete (but so far valid) multi-byte sequence of at most 3 bytes.
size_t utf8_complete_prefix_len(std::string_view s);

// Appends `s` to `out` with every maximal invalid subsequence replaced by U+FFFD.
void utf8_append_lossy(std::string* out, std::string_view s);

// True when all of `s` is valid UTF-8.
bool utf8_is_valid(std::string_view s);

}  // namespace dseek
