// AddedVocab: the `added_tokens` of a tokenizer.json (special tokens such as
// `<｜begin▁of▁sentence｜>` and non-special ones such as `<｜User｜>`), and the first step of
// encoding: cutting raw text into added-token matches and the plain text between them. As in
// Hugging Face `tokenizers` (tokenizer/added_vocabulary.rs): tokens with `normalized: false`
// are matched first over the whole text, then tokens with `normalized: true` inside the gaps;
// each pass is leftmost-longest and non-overlapping; lstrip/rstrip widen a match over adjacent
// Unicode whitespace. `single_word` is refused at load time (not implemented).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace dseek {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool normalized = false;
  bool lstrip = false;
  bool rstrip = false;
};

// [start, end) of the input; id >= 0 for an added token, -1 for text to pre-tokenize.
struct TextSegment {
  size_t start = 0, end = 0;
  int32_t id = -1;
};

class AddedVocab {
 public:
  void build(std::vector<AddedToken> tokens);

  // Cuts `text`. allow_special = false: tokens marked special are not matched (their text is
  // encoded as ordinary text; `tokenizers`' encode_special_tokens = true).
  void split(std::string_view text, bool allow_special, std::vector<TextSegment>* out) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  const AddedToken* by_id(int32_t id) const;
  const AddedToken* by_content(std::string_view s) const;
  bool empty() const { return tokens_.empty(); }

 private:
  // Byte trie over the contents of one pass.
  struct Trie {
    struct Node {
      std::vector<std::pair<uint8_t, int32_t>> next;  // (byte, child)
      int32_t token = -1;                             // index into tokens_ when a token ends here
    };
    std::vector<Node> nodes{Node{}};
    bool first[256] = {};
    int only_first = -1;  // the single first byte of all tokens (-1: none or several)
    void add(std::string_view s, int32_t token);
    // Longest token matching at text[i..]; returns its index or -1, sets *len.
    int32_t longest(std::string_view text, size_t i, size_t* len) const;
  };
  void split_pass(const Trie& trie, std::string_view text, size_t base, bool allow_special,
                  std::vector<TextSegment>* out) const;

  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  std::unordered_map<std::string, size_t> by_content_;
  Trie raw_, normalized_;
};

}  // namespace dseek
