// BpeTrainer: learns a byte-level BPE vocabulary from text, with DeepSeek-V3's pre-tokenizer, and
// writes a Hugging Face tokenizer.json that `tokenizers` loads and encodes exactly as our
// Tokenizer does. Ids: the special tokens first (0, 1, ... in the order given), then the 256
// byte-level characters sorted by code point, then one token per merge. Training: words
// (pre-tokenized pieces, special tokens cut out first) are counted once; then each step merges
// the most frequent adjacent pair (ties: the smaller pair of ids), updating pair counts only in
// the words that contain the pair (a pair -> words index and a lazy max-heap), never recounting.
// Not here: min_frequency per word, dropout, continuing-subword prefixes, Unigram/WordPiece.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "dseek/tokenizer/added_vocab.h"
#include "dseek/tokenizer/pretokenizer.h"

namespace dseek {

// DeepSeek's special tokens, in id order (`<｜begin▁of▁sentence｜>` = 0, `<｜end▁of▁sentence｜>` =
// 1).
std::vector<std::string> bpe_trainer_default_specials();

struct BpeTrainProgress {
  const char* stage;   // "count" (reading words) or "merge"
  size_t done = 0;     // bytes read, or merges made
  size_t total = 0;    // bytes to read, or merges wanted
  double seconds = 0;  // since the stage started
};

struct BpeTrainOptions {
  int32_t vocab_size = 32000;  // total, special tokens and the 256 bytes included
  std::vector<std::string> special_tokens = bpe_trainer_default_specials();
  int64_t min_frequency = 2;       // stop when the best pair occurs fewer times
  int threads = 0;                 // for counting words; 0 = OpenMP default
  bool individual_digits = false;  // pre-tokenize every digit alone (PreTokenizer::deepseek_v3)
  std::function<void(const BpeTrainProgress&)> progress;  // may be empty
};

class BpeTrainer {
 public:
  explicit BpeTrainer(BpeTrainOptions opt);

  // Counts the words of `text` (may be called many times).
  void add_text(std::string_view text);
  void add_file(const std::string& path);  // throws dseek::Error when unreadable

  // Learns the merges; returns the tokenizer.json document.
  nlohmann::json train();
  size_t distinct_words() const { return words_.size(); }

 private:
  void count_range(std::string_view text, std::unordered_map<std::string, int64_t>* words);

  BpeTrainOptions opt_;
  PreTokenizer pre_;
  AddedVocab specials_;
  std::unordered_map<std::string, int64_t> words_;  // raw-byte piece -> count
};

// Writes `doc` to `path` (via a temporary file and rename). Throws dseek::Error on failure.
void bpe_trainer_write(const nlohmann::json& doc, const std::string& path);

}  // namespace dseek
