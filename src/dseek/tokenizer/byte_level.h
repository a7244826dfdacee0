// The GPT-2 byte-level alphabet used by byte-level BPE (Hugging Face `ByteLevel`): each of the
// 256 byte values is shown as one printable Unicode character (printable Latin-1 bytes as
// themselves, the other 68 as U+0100.. in byte order), so every byte string becomes a string of
// exactly as many characters. Covers only this mapping; regex splitting lives in pretokenizer.h.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dseek {

// Code point that byte b is shown as.
uint32_t byte_level_char(uint8_t b);

// Byte shown by code point cp, or -1 when cp is not in the alphabet.
int byte_level_byte(uint32_t cp);

// Appends the byte-level form (UTF-8 of the mapped characters) of the raw bytes `bytes`.
void byte_level_encode(std::string* out, std::string_view bytes);

// Raw bytes of the byte-level string `token`. Returns false (out untouched) when some character
// is not in the alphabet or `token` is not valid UTF-8. This is the ByteLevel decoder's rule:
// such tokens (e.g. `<｜User｜>`) are emitted as their own UTF-8 bytes instead.
bool byte_level_decode(std::string* out, std::string_view token);

}  // namespace dseek
