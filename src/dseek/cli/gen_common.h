// Shared by `dseek generate` and `dseek chat` (and later `serve`): one table of sampling
// flags, the model + tokenizer loading, and a streaming loop that decodes tokens to UTF-8 as
// they come, holds back text that may become a stop string, and prints speed to stderr.
#pragma once

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "dseek/infer/generate.h"
#include "dseek/model/model.h"
#include "dseek/tokenizer/tokenizer.h"

namespace dseek::cli {

struct GenFlags {
  std::string model_dir;
  std::string tokenizer_path;  // default MODEL/tokenizer.json
  int64_t max_tokens = 256;
  float temperature = 0.6f;
  int top_k = 0;
  float top_p = 0.95f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  uint64_t seed = 0;
  bool greedy = false;
  bool ignore_eos = false;
  bool stats = false;
  std::vector<std::string> stop;
  int64_t mtp_draft_tokens = 0;  // > 0: MTP speculative decoding (set by `generate --speculative`)
};

void add_gen_flags(CLI::App* sub, GenFlags* f);
GenerateOptions gen_options(const GenFlags& f, const Model& m, const Tokenizer* tok);
// tokenizer.json from --tokenizer or the model folder; nullopt when neither exists and the
// caller can do without one (required = false).
std::optional<Tokenizer> load_tokenizer(const GenFlags& f, bool required);

struct StreamResult {
  std::vector<int32_t> ids;  // every generated id (the stop token included, if any)
  std::string text;          // the text shown (stop strings and stop tokens excluded)
  GenerateStats stats;
};

// Generate after feeding `new_tokens` to the cache, printing text to `out` as it comes (or
// token ids when tok is null).
StreamResult generate_streaming(const Model& m, const Tokenizer* tok, LatentCache& cache,
                                const std::vector<int32_t>& new_tokens, const GenFlags& f,
                                FILE* out);

void print_stats(const GenerateStats& s);

}  // namespace dseek::cli
