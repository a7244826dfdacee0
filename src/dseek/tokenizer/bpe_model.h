// BpeModel: the byte-level BPE model of a Hugging Face tokenizer.json ("model": {"type": "BPE"}).
// Holds the vocabulary (token strings in the byte-level alphabet -> ids) and the ranked merges,
// and encodes one pre-tokenized piece (raw bytes) into ids exactly as `tokenizers` does: every
// byte becomes its single-character token, then the adjacent pair with the lowest merge rank is
// merged (leftmost first on ties) until no pair has a merge. Words up to kSmallWord symbols use
// a flat array (rank per adjacent pair, rescanned per merge); longer ones a min-heap over a
// linked list of symbols, as in tokenizers/src/models/bpe/word.rs. Not here: added tokens,
// pre-tokenization, caching (see tokenizer.h, pretokenizer.h, word_cache.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace dseek {

struct BpeOptions {
  int32_t unk_id = -1;         // id for bytes with no token (byte-level vocabularies have all 256)
  bool fuse_unk = false;       // consecutive unknowns become one unk
  bool ignore_merges = false;  // a piece that is itself a token is emitted directly
};

class BpeModel {
 public:
  static constexpr size_t kSmallWord = 48;

  // `vocab`: (token, id) pairs; `merges`: (left, right) in rank order. A later duplicate merge
  // replaces an earlier one (as in `tokenizers`). Throws dseek::Error (naming `file`) when a
  // merge uses a token that is not in the vocabulary.
  void build(const std::vector<std::pair<std::string, int32_t>>& vocab,
             const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions opt,
             const std::string& file);

  // Appends the ids of the raw-byte piece `bytes`.
  void encode_piece(std::string_view bytes, std::vector<int32_t>* out) const;
  // The specification: merge the lowest-rank leftmost pair, rescanning everything each time
  // (O(n^2) per word). Kept for tests of both fast paths.
  void encode_piece_naive(std::string_view bytes, std::vector<int32_t>* out) const;

  int32_t id_of(std::string_view token) const;                                // -1 when absent
  int32_t id_end() const { return (int32_t)id_to_token_.size(); }             // max id + 1
  const std::string& token_of(int32_t id) const { return id_to_token_[id]; }  // "" when absent
  bool has_id(int32_t id) const { return id >= 0 && id < id_end() && has_[id]; }
  size_t vocab_count() const { return token_to_id_.size(); }
  size_t merge_count() const { return merge_count_; }
  int32_t byte_id(uint8_t b) const { return byte_id_[b]; }
  const BpeOptions& options() const { return opt_; }

 private:
  struct MergeSlot {
    uint64_t key = ~0ull;  // (left << 32) | right; ~0 = empty
    int32_t rank = 0, new_id = 0;
  };
  // Rank and result of merging (a, b), or false.
  bool merge_of(int32_t a, int32_t b, int32_t* rank, int32_t* new_id) const {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t mask = merges_.size() - 1;
    for (size_t i = (key * 0x9E3779B97F4A7C15ull) >> shift_;; i = (i + 1) & mask) {
      const MergeSlot& s = merges_[i];
      if (s.key == key) {
        *rank = s.rank;
        *new_id = s.new_id;
        return true;
      }
      if (s.key == ~0ull) return false;
    }
  }
  // Byte ids of `bytes` (unknown bytes: unk or dropped); returns their count.
  size_t initial_ids(std::string_view bytes, int32_t* ids) const;
  void merge_small(int32_t* ids, size_t n, std::vector<int32_t>* out) const;
  void merge_large(const int32_t* ids, size_t n, std::vector<int32_t>* out) const;

  std::unordered_map<std::string, int32_t> token_to_id_;
  std::unordered_map<std::string, int32_t> bytes_to_id_;  // raw bytes -> id (ignore_merges only)
  std::vector<std::string> id_to_token_;
  std::vector<uint8_t> has_;
  std::vector<MergeSlot> merges_;
  int shift_ = 64;
  size_t merge_count_ = 0;
  int32_t byte_id_[256];
  BpeOptions opt_;
};

}  // namespace dseek
