// Byte-level alphabet (see byte_level.h). Built once into two small tables.
#include "dseek/tokenizer/byte_level.h"

#include <array>

#include "dseek/tokenizer/utf8.h"

namespace dseek {

namespace {

struct Tables {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 324> to_byte{};  // code points < 324 cover the whole alphabet
  std::array<std::string, 256> utf8;   // UTF-8 of to_cp[b]
  Tables() {
    to_byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      to_cp[b] = printable ? (uint32_t)b : next++;
      to_byte[to_cp[b]] = (int16_t)b;
      utf8_append(&utf8[b], to_cp[b]);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

uint32_t byte_level_char(uint8_t b) {
  return tables().to_cp[b];
}

int byte_level_byte(uint32_t cp) {
  return cp < 324 ? tables().to_byte[cp] : -1;
}

void byte_level_encode(std::string* out, std::string_view bytes) {
  const Tables& t = tables();
  for (char c : bytes) out->append(t.utf8[(uint8_t)c]);
}

bool byte_level_decode(std::string* out, std::string_view token) {
  std::string r;
  r.reserve(token.size());
  size_t i = 0;
  while (i < token.size()) {
    size_t n = utf8_valid_char_len(token.substr(i));
    if (n == 0) return false;
    int b = byte_level_byte(utf8_decode_char(token.substr(i), n));
    if (b < 0) return false;
    r.push_back((char)b);
    i += n;
  }
  out->append(r);
  return true;
}

}  // namespace dseek
