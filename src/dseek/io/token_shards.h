// Tokenized training data on disk: token shard files, a data set folder of shards, and
// TokenLoader, which cuts [B, T+1] batches out of a split for LM training and validation.
// Not here: reading text and tokenizing it (cli/cmd_data.cpp, `dseek data prepare`), meta.json
// (written and read by cmd_data.cpp; the loader needs only the shards).
//
// Shard file `<split>_NNN.bin`, little-endian:
//   offset   0  u8[8]  magic "DSEEKTOK"
//   offset   8  u32    version (1)
//   offset  12  u32    dtype code = bytes per token: 2 (uint16, vocab_size <= 65536) or 4 (uint32)
//   offset  16  u64    n_tokens
//   offset  24  u32    vocab_size (every token id is < vocab_size)
//   offset  28  ...    zero up to byte 256
//   offset 256  n_tokens token ids of the width above
// The file size is exactly 256 + n_tokens * width. Documents are concatenated; `dseek data
// prepare` writes each one as [BOS] tokens [EOS] (BOS when the tokenizer has one, EOS when it has
// one) and lets a document run on across a shard boundary: the shards of a split, in number
// order, are one token stream.
//
// Data set folder: train_000.bin, train_001.bin, ..., val_000.bin, ..., meta.json.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace dseek {

// ---------------------------------------------------------------------------------------------
// constants

constexpr char kTokenShardMagic[8] = {'D', 'S', 'E', 'E', 'K', 'T', 'O', 'K'};
constexpr uint32_t kTokenShardVersion = 1;
constexpr size_t kTokenShardHeaderBytes = 256;
// Appended to every shard and data set error: how to get a good file back.
constexpr const char* kTokenShardHint = "(re-run `dseek data prepare`)";

enum class TokenWidth : uint32_t {
  TOKEN_WIDTH_U16 = 2,  // vocab_size <= 65536
  TOKEN_WIDTH_U32 = 4,
};

// The narrowest width that holds ids 0 .. vocab_size-1.
TokenWidth token_width_for_vocab(uint32_t vocab_size);

// ---------------------------------------------------------------------------------------------
// one shard: writer and reader

// Streams tokens into PATH.tmp; finish() writes the header, fsyncs and renames over PATH. A
// writer destroyed before finish() removes its temporary file.
class TokenShardWriter {
 public:
  TokenShardWriter(const std::string& path, uint32_t vocab_size);
  ~TokenShardWriter();
  TokenShardWriter(const TokenShardWriter&) = delete;
  TokenShardWriter& operator=(const TokenShardWriter&) = delete;

  // ids: [n]; each must be in [0, vocab_size), else dseek::Error.
  void append(const int32_t* ids, size_t n);
  void finish();
  uint64_t n_tokens() const { return n_tokens_; }
  const std::string& path() const { return path_; }

 private:
  void abandon();
  std::string path_, tmp_;
  FILE* fp_ = nullptr;
  uint32_t vocab_size_;
  TokenWidth width_;
  uint64_t n_tokens_ = 0;
  std::vector<uint8_t> buf_;  // staging for the narrowing copy
};

// Writes a whole shard at once (tests, small data).
void token_shard_write(const std::string& path, const std::vector<int32_t>& ids,
                       uint32_t vocab_size);

// A validated, read-only mmap of one shard. Opening checks magic, version, dtype code, vocab
// size and that the file size matches the header; token values are checked by check_ids() only.
class TokenShard {
 public:
  static std::unique_ptr<TokenShard> open(const std::string& path);
  ~TokenShard();
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;

  uint64_t n_tokens() const { return n_tokens_; }
  uint32_t vocab_size() const { return vocab_size_; }
  TokenWidth width() const { return width_; }
  const std::string& path() const { return path_; }

  int32_t at(uint64_t i) const;  // no bounds check
  // out: [n] <- tokens [start, start + n); throws if the range is outside the shard.
  void read(int32_t* out, uint64_t start, uint64_t n) const;
  // Throws naming the first position whose id is >= vocab_size.
  void check_ids() const;
  // counts: [vocab_size] += occurrences of each id (throws like check_ids on a bad id).
  void count_ids(std::vector<uint64_t>* counts) const;

 private:
  TokenShard() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* data_ = nullptr;  // [n_tokens_ * width] inside the map; may be null when empty
  uint64_t n_tokens_ = 0;
  uint32_t vocab_size_ = 0;
  TokenWidth width_ = TokenWidth::TOKEN_WIDTH_U16;
};

// ---------------------------------------------------------------------------------------------
// a data set folder

// "DIR/train_007.bin"
std::string token_dataset_shard_path(const std::string& dir, const std::string& split, int index);
// The shard files of `split` in DIR, in number order. Throws when there are none, or when the
// numbering has a gap (a shard missing from the middle).
std::vector<std::string> token_dataset_shards(const std::string& dir, const std::string& split);

// All shards of one split, opened: one token stream. All shards must agree on vocab_size.
class TokenSplit {
 public:
  static TokenSplit open(const std::string& dir, const std::string& split);
  uint64_t n_tokens() const { return offsets_.back(); }
  uint32_t vocab_size() const { return vocab_size_; }
  const std::string& name() const { return name_; }
  const std::vector<std::unique_ptr<TokenShard>>& shards() const { return shards_; }
  // out: [n] <- tokens [start, start + n) of the stream, across shard boundaries.
  void read(int32_t* out, uint64_t start, uint64_t n) const;

 private:
  std::string name_;
  std::vector<std::unique_ptr<TokenShard>> shards_;
  std::vector<uint64_t> offsets_{0};  // [n_shards + 1] first stream position of each shard
  uint32_t vocab_size_ = 0;
};

// ---------------------------------------------------------------------------------------------
// the loader

enum class TokenLoaderMode {
  TOKEN_LOADER_MODE_RANDOM,      // training: each row starts at a uniformly random position
  TOKEN_LOADER_MODE_SEQUENTIAL,  // validation: rows tile the stream once, in order
};

// Batches for next-token training. A row is T+1 consecutive tokens of the split's stream: inputs
// are row[0..T), targets row[1..T+1). Rows may cross document and shard boundaries.
//  - RANDOM: every row starts at a position drawn uniformly from [0, n_tokens - T - 1] by a
//    seeded splitmix64 generator (nanoGPT's get_batch, over all shards at once).
//  - SEQUENTIAL: row k starts at k*T, so every position 1 .. n_tokens-1 is a target exactly once
//    per pass, except the last (n_tokens - 1) mod T, which do not fill a row and are skipped.
//    reset() starts the pass again.
// state() captures everything that decides the next batches (generator, position, mode, the
// split's size); set_state() on a loader of the same split makes it continue exactly there.
class TokenLoader {
 public:
  TokenLoader(const std::string& dir, const std::string& split, TokenLoaderMode mode,
              uint64_t seed = 0);

  // out: [rows, T+1] row-major, resized to rows * (T+1). Returns rows: always B in RANDOM mode;
  // in SEQUENTIAL mode fewer near the end of the pass and 0 once it is over.
  int next_batch(int B, int T, std::vector<int32_t>* out);
  void reset();  // SEQUENTIAL: back to the start; RANDOM: back to the seed's first draw
  // Rows of a full SEQUENTIAL pass with context T.
  uint64_t rows_per_pass(int T) const;

  std::string state() const;                 // a small JSON object
  void set_state(const std::string& state);  // throws when it belongs to another split or mode

  uint64_t n_tokens() const { return split_.n_tokens(); }
  uint32_t vocab_size() const { return split_.vocab_size(); }
  const TokenSplit& split() const { return split_; }

 private:
  uint64_t draw_below(uint64_t n);  // uniform in [0, n)

  TokenSplit split_;
  TokenLoaderMode mode_;
  uint64_t seed_;
  uint64_t rng_;       // splitmix64 state
  uint64_t pos_ = 0;   // SEQUENTIAL: start of the next row
  uint64_t rows_ = 0;  // rows served since construction or reset (both modes)
};

}  // namespace dseek
