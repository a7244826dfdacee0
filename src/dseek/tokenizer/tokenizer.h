// Tokenizer: a Hugging Face `tokenizer.json` with a byte-level BPE model (DeepSeek-V3/R1, GPT-2,
// Llama-3 style), encoding to exactly the ids `tokenizers` produces with
// add_special_tokens = false, and decoding as its ByteLevel decoder does.
//
//   Tokenizer tok = Tokenizer::load("tokenizer.json");
//   std::vector<int32_t> ids = tok.encode("Hello, world!");   // [19923, 14, 2058, 3] for V3
//   std::string text = tok.decode(ids);
//
// Pipeline of encode: added tokens are cut out of the raw text (added_vocab.h), the text between
// them is pre-tokenized (pretokenizer.h), every piece is BPE-encoded (bpe_model.h) through a
// per-thread word cache. No BOS is added: prepend bos_id() yourself where the model wants it (HF's
// LlamaTokenizerFast does for DeepSeek; chat templates write the BOS text themselves, SPEC §7.1).
// Large inputs are encoded on several threads when the pre-tokenizer allows exact cutting.
// Supported tokenizer.json features: normalizer none/empty Sequence; pre_tokenizer Sequence of
// Split + ByteLevel; model BPE (string or array merges, ignore_merges, unk); decoder ByteLevel.
// post_processor, truncation and padding are ignored. Anything else is a dseek::Error naming the
// feature and the file. A Tokenizer is immutable after load: share it between threads freely.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "dseek/tokenizer/added_vocab.h"
#include "dseek/tokenizer/bpe_model.h"
#include "dseek/tokenizer/pretokenizer.h"

namespace dseek {

class Tokenizer {
 public:
  // Reads `path` (a tokenizer.json, or a folder holding one). Also reads bos_token / eos_token
  // from a tokenizer_config.json beside it, if any.
  static Tokenizer load(const std::string& path);
  // From parsed tokenizer.json; `name` is used in error messages.
  static Tokenizer from_json(const nlohmann::json& j, const std::string& name);

  // allow_special = false: special added tokens written in `text` are encoded as plain text.
  std::vector<int32_t> encode(std::string_view text, bool allow_special = true) const;
  // Unknown ids are skipped; invalid UTF-8 becomes U+FFFD (as `tokenizers` does).
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;

  std::string token_str(int32_t id) const;            // token as stored ("Ġworld"); "" if none
  const std::string& token_bytes(int32_t id) const;   // the raw bytes it decodes to; "" if none
  int32_t token_id(std::string_view s) const;         // added token or vocab string; -1 if none
  int32_t vocab_size() const { return vocab_size_; }  // max id + 1, added tokens included
  int32_t bos_id() const { return bos_id_; }          // -1 when unknown
  int32_t eos_id() const { return eos_id_; }          // -1 when unknown
  bool is_special(int32_t id) const;
  bool is_added(int32_t id) const { return added_.by_id(id) != nullptr; }

  const std::string& path() const { return path_; }
  const AddedVocab& added() const { return added_; }
  const BpeModel& model() const { return model_; }
  const PreTokenizer& pretokenizer() const { return pre_; }

  // Threads for large inputs (0 = OpenMP's default) and the input size from which encode splits
  // work across them (tests lower it to exercise the cutting).
  void set_num_threads(int n) { num_threads_ = n; }
  void set_parallel_min_bytes(size_t n) { parallel_min_bytes_ = n; }

 private:
  struct Job {
    size_t start, end;
    int32_t id;  // >= 0: an added token
  };
  void encode_text(std::string_view text, std::vector<int32_t>* out, void* ctx) const;
  void plan_jobs(std::string_view text, const std::vector<TextSegment>& segs, size_t chunk,
                 std::vector<Job>* jobs) const;

  std::string path_;
  AddedVocab added_;
  BpeModel model_;
  PreTokenizer pre_;
  std::vector<std::string> bytes_of_;  // [vocab_size_] decoded bytes of each id
  std::vector<uint8_t> special_;       // [vocab_size_]
  int32_t vocab_size_ = 0;
  int32_t bos_id_ = -1, eos_id_ = -1;
  int num_threads_ = 0;
  size_t parallel_min_bytes_ = 1u << 20;
};

}  // namespace dseek
