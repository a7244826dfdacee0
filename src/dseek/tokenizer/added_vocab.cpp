// Added-token matching (see added_vocab.h). Reference: huggingface/tokenizers
// tokenizers/src/tokenizer/added_vocabulary.rs (find_matches, split_with_indices,
// extract_and_normalize). The aho-corasick automaton there is LeftmostLongest; a byte trie walked
// from each candidate position, scanning left to right, gives the same matches.
#include "dseek/tokenizer/added_vocab.h"

#include <cstring>

#include "dseek/tokenizer/utf8.h"

namespace dseek {

// ---------------------------------------------------------------------------------------------
// helpers

// Rust's char::is_whitespace (Unicode White_Space).
static bool is_white_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Length of the valid character ending at text[end) (0 if none).
static size_t char_len_before(std::string_view text, size_t end) {
  for (size_t k = 1; k <= 4 && k <= end; k++) {
    uint8_t b = (uint8_t)text[end - k];
    if (b >= 0x80 && b < 0xC0) continue;
    return utf8_valid_char_len(text.substr(end - k, k)) == k ? k : 0;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// trie

void AddedVocab::Trie::add(std::string_view s, int32_t token) {
  if (s.empty()) return;
  bool had_any = nodes[0].next.size() > 0;
  first[(uint8_t)s[0]] = true;
  if (!had_any)
    only_first = (uint8_t)s[0];
  else if (only_first != (uint8_t)s[0])
    only_first = -1;
  int32_t node = 0;
  for (char ch : s) {
    uint8_t c = (uint8_t)ch;
    int32_t child = -1;
    for (const auto& [b, n] : nodes[node].next)
      if (b == c) child = n;
    if (child < 0) {
      child = (int32_t)nodes.size();
      nodes[node].next.push_back({c, child});
      nodes.emplace_back();
    }
    node = child;
  }
  if (nodes[node].token < 0) nodes[node].token = token;  // first listed wins on duplicates
}

int32_t AddedVocab::Trie::longest(std::string_view text, size_t i, size_t* len) const {
  int32_t node = 0, best = -1;
  for (size_t j = i; j < text.size(); j++) {
    uint8_t c = (uint8_t)text[j];
    int32_t child = -1;
    for (const auto& [b, n] : nodes[node].next)
      if (b == c) {
        child = n;
        break;
      }
    if (child < 0) break;
    node = child;
    if (nodes[node].token >= 0) {
      best = nodes[node].token;
      *len = j + 1 - i;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// AddedVocab

void AddedVocab::build(std::vector<AddedToken> tokens) {
  tokens_ = std::move(tokens);
  by_id_.clear();
  by_content_.clear();
  raw_ = Trie{};
  normalized_ = Trie{};
  for (size_t i = 0; i < tokens_.size(); i++) {
    const AddedToken& t = tokens_[i];
    by_id_.emplace(t.id, i);
    by_content_.emplace(t.content, i);
    (t.normalized ? normalized_ : raw_).add(t.content, (int32_t)i);
  }
}

const AddedToken* AddedVocab::by_id(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedVocab::by_content(std::string_view s) const {
  auto it = by_content_.find(std::string(s));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

void AddedVocab::split(std::string_view text, bool allow_special,
                       std::vector<TextSegment>* out) const {
  out->clear();
  if (tokens_.empty()) {
    if (!text.empty()) out->push_back({0, text.size(), -1});
    return;
  }
  std::vector<TextSegment> first;
  split_pass(raw_, text, 0, allow_special, &first);
  for (const TextSegment& s : first) {
    if (s.id >= 0)
      out->push_back(s);
    else
      split_pass(normalized_, text.substr(s.start, s.end - s.start), s.start, allow_special, out);
  }
}

void AddedVocab::split_pass(const Trie& trie, std::string_view text, size_t base,
                            bool allow_special, std::vector<TextSegment>* out) const {
  size_t start_offset = 0, i = 0, n = text.size();
  while (i < n) {
    if (trie.only_first >= 0) {  // e.g. DeepSeek: every added token starts with '<'
      const void* p = std::memchr(text.data() + i, trie.only_first, n - i);
      if (!p) break;
      i = (const char*)p - text.data();
    } else if (!trie.first[(uint8_t)text[i]]) {
      i++;
      continue;
    }
    size_t len = 0;
    int32_t k = trie.longest(text, i, &len);
    if (k < 0) {
      i++;
      continue;
    }
    const AddedToken& t = tokens_[k];
    size_t start = i, stop = i + len;
    i = stop;
    if (t.special && !allow_special) continue;
    if (t.lstrip) {
      while (start > start_offset) {
        size_t cl = char_len_before(text, start);
        if (cl == 0 || !is_white_space(utf8_decode_char(text.substr(start - cl), cl))) break;
        start -= cl;
      }
    }
    if (t.rstrip) {
      while (stop < n) {
        size_t cl = utf8_valid_char_len(text.substr(stop));
        if (cl == 0 || !is_white_space(utf8_decode_char(text.substr(stop), cl))) break;
        stop += cl;
      }
      i = stop;
    }
    if (start > start_offset) out->push_back({base + start_offset, base + start, -1});
    out->push_back({base + start, base + stop, t.id});
    start_offset = stop;
  }
  if (start_offset < n) out->push_back({base + start_offset, base + n, -1});
}

}  // namespace dseek
