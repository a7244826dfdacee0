// Writing a model in the Hugging Face hub layout, so transformers (and dseek) load it:
//   DIR/config.json         the config (transformers-5 `rope_parameters` form), fp32
//   DIR/model.safetensors   every parameter under its hub name; MTP modules at layer index
//                           num_hidden_layers + k with the shared embedding and head written as
//                           copies (model.layers.{L+k}.embed_tokens / shared_head.head), as
//                           DeepSeek-V3's checkpoint does
// Atomic per file (temp + rename); save_model_dir writes into DIR.tmp and renames the folder,
// so a crash leaves either the previous DIR or the new one, never a mix.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "dseek/model/model.h"

namespace dseek {

void save_model_files(const std::string& dir, const Model& m,
                      const std::map<std::string, std::string>& metadata = {});

// Replace `dir` atomically with a fresh copy of the model plus any extra files already written
// by `extra` into the staging folder (optimizer state, trainer state, ...).
void save_model_dir(const std::string& dir, const Model& m,
                    const std::map<std::string, std::string>& metadata,
                    const std::function<void(const std::string& staging)>& extra = nullptr);

// A model folder that ships its tokenizer (what `dseek sft` / `dseek grpo` write, what `dseek
// generate / eval / serve` read): save_model_dir plus a copy of tokenizer_path as tokenizer.json.
void save_model_dir_with_tokenizer(const std::string& dir, const Model& m,
                                   const std::map<std::string, std::string>& metadata,
                                   const std::string& tokenizer_path);

// The tokenizer of a model folder: explicit_path when given, else DIR/tokenizer.json, which must
// exist (dseek::Error "DIR has no tokenizer.json: pass --tokenizer" otherwise).
std::string model_tokenizer_path(const std::string& explicit_path, const std::string& model_dir);

// fsync a file or folder (best effort on folders); used by atomic writers.
void fsync_path(const std::string& path);

}  // namespace dseek
