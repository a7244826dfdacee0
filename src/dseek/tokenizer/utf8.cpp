// UTF-8 helpers (see utf8.h). The validity rules are those of the Unicode standard, table 3-7
// (well-formed byte sequences); the lossy replacement follows the "maximal subpart" practice that
// Rust's from_utf8_lossy implements, so decoded text matches Hugging Face `tokenizers` byte for
// byte.
#include "dseek/tokenizer/utf8.h"

namespace dseek {

void utf8_append(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back((char)cp);
  } else if (cp < 0x800) {
    out->push_back((char)(0xC0 | (cp >> 6)));
    out->push_back((char)(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back((char)(0xE0 | (cp >> 12)));
    out->push_back((char)(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back((char)(0x80 | (cp & 0x3F)));
  } else {
    out->push_back((char)(0xF0 | (cp >> 18)));
    out->push_back((char)(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back((char)(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back((char)(0x80 | (cp & 0x3F)));
  }
}

// Expected length of a sequence led by byte b (0 when b cannot lead), and the allowed range of
// the second byte (the only one with a narrower range than 80..BF).
static int lead_len(uint8_t b, uint8_t* lo, uint8_t* hi) {
  *lo = 0x80;
  *hi = 0xBF;
  if (b < 0x80) return 1;
  if (b < 0xC2) return 0;
  if (b < 0xE0) return 2;
  if (b < 0xF0) {
    if (b == 0xE0) *lo = 0xA0;
    if (b == 0xED) *hi = 0x9F;
    return 3;
  }
  if (b < 0xF5) {
    if (b == 0xF0) *lo = 0x90;
    if (b == 0xF4) *hi = 0x8F;
    return 4;
  }
  return 0;
}

// Number of bytes of s (from 0) that form a valid prefix of a sequence, and its full length.
static size_t valid_prefix(std::string_view s, int* full) {
  uint8_t lo, hi;
  int n = lead_len((uint8_t)s[0], &lo, &hi);
  *full = n;
  if (n == 0) return 0;
  size_t k = 1;
  while (k < (size_t)n && k < s.size()) {
    uint8_t c = (uint8_t)s[k];
    uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (c < l || c > h) break;
    k++;
  }
  return k;
}

size_t utf8_valid_char_len(std::string_view s) {
  if (s.empty()) return 0;
  int full;
  size_t k = valid_prefix(s, &full);
  return (full > 0 && k == (size_t)full) ? k : 0;
}

uint32_t utf8_decode_char(std::string_view s, size_t n) {
  const auto* p = (const uint8_t*)s.data();
  switch (n) {
    case 1:
      return p[0];
    case 2:
      return ((p[0] & 0x1Fu) << 6) | (p[1] & 0x3Fu);
    case 3:
      return ((p[0] & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
    default:
      return ((p[0] & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) |
             (p[3] & 0x3Fu);
  }
}

size_t utf8_complete_prefix_len(std::string_view s) {
  // Only the last 3 bytes can hold an incomplete sequence: find a lead byte there whose valid
  // prefix runs to the end of s but is shorter than its full length.
  size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; back++) {
    size_t i = n - back;
    uint8_t b = (uint8_t)s[i];
    if (b >= 0x80 && b < 0xC0) continue;  // continuation byte: look further back
    int full;
    size_t k = valid_prefix(s.substr(i), &full);
    if (full > 1 && k == back && back < (size_t)full) return i;
    break;
  }
  return n;
}

void utf8_append_lossy(std::string* out, std::string_view s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    // Fast path: a run of ASCII.
    size_t j = i;
    while (j < n && (uint8_t)s[j] < 0x80) j++;
    if (j > i) {
      out->append(s.data() + i, j - i);
      i = j;
      continue;
    }
    int full;
    size_t k = valid_prefix(s.substr(i), &full);
    if (full > 0 && k == (size_t)full) {
      out->append(s.data() + i, k);
      i += k;
    } else {
      out->append("\xEF\xBF\xBD");  // U+FFFD for the maximal invalid subpart
      i += k > 0 ? k : 1;
    }
  }
}

bool utf8_is_valid(std::string_view s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    if ((uint8_t)s[i] < 0x80) {
      i++;
      continue;
    }
    size_t k = utf8_valid_char_len(s.substr(i));
    if (k == 0) return false;
    i += k;
  }
  return true;
}

}  // namespace dseek
