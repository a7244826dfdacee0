// `dseek tokenizer`: encode / decode with a Hugging Face tokenizer.json, render a DeepSeek chat
// template, train a byte-level BPE tokenizer, and benchmark encoding speed.
//   dseek tokenizer encode --tokenizer tokenizer.json --text "Hello, world!"   -> [19923,14,2058,3]
//   dseek tokenizer decode --tokenizer tokenizer.json 19923 14 2058 3
//   dseek tokenizer chat --template deepseek-r1 --messages '[{"role":"user","content":"Hi"}]'
//   dseek tokenizer train --input a.txt b.txt --vocab-size 32000 --output tokenizer.json
//   dseek tokenizer bench --tokenizer tokenizer.json --file corpus.txt
// The library does the work (src/dseek/tokenizer/); this file only parses flags and prints.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dseek/cli/command.h"
#include "dseek/core/error.h"
#include "dseek/tokenizer/bpe_trainer.h"
#include "dseek/tokenizer/chat_template.h"
#include "dseek/tokenizer/tokenizer.h"

namespace {

using namespace dseek;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// helpers

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open '{}'", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A folder means its tokenizer.json.
Tokenizer load_tokenizer(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return Tokenizer::load(path + "/tokenizer.json");
  return Tokenizer::load(path);
}

// Every integer in the arguments ("1 2 3", "[1,2,3]", "1,2"); stdin when there are none.
std::vector<int32_t> parse_ids(const std::vector<std::string>& args) {
  std::string all;
  for (const auto& a : args) all += a + " ";
  if (args.empty()) all.assign(std::istreambuf_iterator<char>(std::cin), {});
  std::vector<int32_t> ids;
  for (size_t i = 0; i < all.size();) {
    char c = all[i];
    if (c == '-' || (c >= '0' && c <= '9')) {
      size_t used = 0;
      long v = std::stol(all.substr(i), &used);
      ids.push_back((int32_t)v);
      i += used;
    } else if (c == '[' || c == ']' || c == ',' || c == ' ' || c == '\n' || c == '\t' ||
               c == '\r') {
      i++;
    } else {
      fail("ids must be integers (e.g. 1 2 3 or [1,2,3]); got '{}'", all.substr(i, 20));
    }
  }
  return ids;
}

std::string json_str(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// ---------------------------------------------------------------------------------------------
// subcommands

struct Opts {
  std::string tokenizer, text, file, output, template_name = "deepseek-v3", messages;
  std::vector<std::string> ids, inputs, specials;
  bool tokens = false, bos = false, no_special = false, skip_special = false, gen_prompt = false,
       as_json = false;
  int32_t vocab_size = 32000;
  int64_t min_frequency = 2;
  bool individual_digits = false;
  int threads = 0, runs = 3;
};

void run_encode(const Opts& o) {
  DSEEK_CHECK(o.text.empty() != o.file.empty(), "encode: give exactly one of --text or --file");
  Tokenizer tok = load_tokenizer(o.tokenizer);
  if (o.threads > 0) tok.set_num_threads(o.threads);
  std::string text = o.file.empty() ? o.text : read_text(o.file);
  std::vector<int32_t> ids = tok.encode(text, !o.no_special);
  if (o.bos) {
    DSEEK_CHECK(tok.bos_id() >= 0, "encode --bos: tokenizer '{}' has no known BOS token",
                o.tokenizer);
    ids.insert(ids.begin(), tok.bos_id());
  }
  std::string out = nlohmann::json(ids).dump();
  if (o.tokens) {
    std::string toks = "[";
    for (size_t i = 0; i < ids.size(); i++)
      toks += (i ? "," : "") + json_str(tok.token_str(ids[i]));
    out = "{\"ids\":" + out + ",\"tokens\":" + toks + "]}";
  }
  std::printf("%s\n", out.c_str());
}

void run_decode(const Opts& o) {
  Tokenizer tok = load_tokenizer(o.tokenizer);
  std::vector<int32_t> ids = parse_ids(o.ids);
  for (int32_t id : ids)
    DSEEK_CHECK(id >= 0 && id < tok.vocab_size(), "decode: id {} is outside the vocabulary (0..{})",
                id, tok.vocab_size() - 1);
  std::string text = tok.decode(ids, o.skip_special);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::printf("\n");
}

void run_chat(const Opts& o) {
  ChatTemplate t = chat_template_from_name(o.template_name);
  std::string src = o.messages;
  std::error_code ec;
  if (!src.empty() && src[0] != '[' && std::filesystem::exists(src, ec)) src = read_text(src);
  nlohmann::json j = nlohmann::json::parse(src, nullptr, false);
  DSEEK_CHECK(!j.is_discarded(), "chat: --messages is neither a JSON list nor a readable file");
  std::string text = chat_render(t, chat_messages_from_json(j), o.gen_prompt);
  if (o.tokenizer.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::printf("\n");
    return;
  }
  Tokenizer tok = load_tokenizer(o.tokenizer);
  std::printf("{\"text\":%s,\"ids\":%s}\n", json_str(text).c_str(),
              nlohmann::json(tok.encode(text)).dump().c_str());
}

void run_train(const Opts& o) {
  BpeTrainOptions opt;
  opt.vocab_size = o.vocab_size;
  opt.min_frequency = o.min_frequency;
  opt.individual_digits = o.individual_digits;
  opt.threads = o.threads;
  if (!o.specials.empty()) opt.special_tokens = o.specials;
  opt.progress = [](const BpeTrainProgress& p) {
    double rate = p.seconds > 0 ? p.done / p.seconds : 0;
    if (std::string(p.stage) == "count") {
      std::fprintf(stderr, "\r[train] counting words %.1f/%.1f MB  %.1f MB/s   ", p.done / 1e6,
                   p.total / 1e6, rate / 1e6);
    } else {
      double eta = rate > 0 ? (p.total - p.done) / rate : 0;
      std::fprintf(stderr, "\r[train] merges %zu/%zu (%.1f%%)  %.0f merges/s  ETA %.0fs   ", p.done,
                   p.total, p.total ? 100.0 * p.done / p.total : 100.0, rate, eta);
    }
    std::fflush(stderr);
  };
  auto t0 = Clock::now();
  BpeTrainer tr(opt);
  size_t bytes = 0;
  for (const std::string& in : o.inputs) {
    std::string text = read_text(in);
    bytes += text.size();
    tr.add_text(text);
    std::fprintf(stderr, "\n");
  }
  std::fprintf(stderr, "[train] %zu distinct words from %zu file(s), %.1f MB\n",
               tr.distinct_words(), o.inputs.size(), bytes / 1e6);
  nlohmann::json doc = tr.train();
  std::fprintf(stderr, "\n");
  bpe_trainer_write(doc, o.output);
  size_t vocab = doc["model"]["vocab"].size(), merges = doc["model"]["merges"].size();
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf(
      "[train] wrote %s: vocab %zu (%zu special + 256 bytes + %zu merges) in %.1fs%s\n",
      o.output.c_str(), vocab, opt.special_tokens.size(), merges, s,
      (int32_t)vocab < o.vocab_size ? " (stopped early: no pair reached --min-frequency)" : "");
}

void run_bench(const Opts& o) {
  Tokenizer tok = load_tokenizer(o.tokenizer);
  if (o.threads > 0) tok.set_num_threads(o.threads);
  std::string text = read_text(o.file);
  DSEEK_CHECK(!text.empty(), "bench: '{}' is empty", o.file);
  double best = 1e30;
  size_t n_ids = 0;
  for (int r = 0; r < std::max(1, o.runs); r++) {
    auto t0 = Clock::now();
    std::vector<int32_t> ids = tok.encode(text);
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
    n_ids = ids.size();
  }
  double mb_s = text.size() / 1e6 / best;
  if (o.as_json) {
    std::printf("%s\n", nlohmann::json({{"bytes", text.size()},
                                        {"ids", n_ids},
                                        {"threads", o.threads},
                                        {"best_s", best},
                                        {"mb_s", mb_s}})
                            .dump()
                            .c_str());
    return;
  }
  std::printf("[bench] %s: %.2f MB, %zu tokens (%.2f bytes/token)\n", o.file.c_str(),
              text.size() / 1e6, n_ids, (double)text.size() / n_ids);
  std::printf("[bench] encode best of %d: %.3f s = %.1f MB/s, %.2f M tokens/s (threads: %s)\n",
              std::max(1, o.runs), best, mb_s, n_ids / 1e6 / best,
              o.threads > 0 ? std::to_string(o.threads).c_str() : "all");
}

// ---------------------------------------------------------------------------------------------
// registration

const bool reg = dseek::cli::add_command(
    {"tokenizer", "Encode, decode, train and benchmark byte-level BPE tokenizers (tokenizer.json)",
     [](CLI::App* sub, int*) {
       static Opts o;
       sub->require_subcommand(1);

       CLI::App* enc = sub->add_subcommand("encode", "Print the ids of a text as a JSON list");
       enc->add_option("--tokenizer", o.tokenizer, "tokenizer.json (or its folder)")->required();
       enc->add_option("--text", o.text, "text to encode");
       enc->add_option("--file", o.file, "file to encode");
       enc->add_flag("--tokens", o.tokens, "also print the token strings ({\"ids\", \"tokens\"})");
       enc->add_flag("--bos", o.bos, "prepend the BOS id (as HF's LlamaTokenizerFast does)");
       enc->add_flag("--no-special", o.no_special, "encode special tokens in the text as text");
       enc->add_option("--threads", o.threads, "threads for large inputs (0 = all)");
       enc->callback([] { run_encode(o); });

       CLI::App* dec = sub->add_subcommand("decode", "Print the text of ids");
       dec->add_option("--tokenizer", o.tokenizer, "tokenizer.json (or its folder)")->required();
       dec->add_option("ids", o.ids, "ids: 1 2 3 or [1,2,3] (stdin when absent)");
       dec->add_flag("--skip-special", o.skip_special, "drop special tokens");
       dec->callback([] { run_decode(o); });

       CLI::App* chat = sub->add_subcommand("chat", "Render a chat with a DeepSeek template");
       chat->add_option("--template", o.template_name,
                        "deepseek-v3 | deepseek-r1 | deepseek-v3-0324")
           ->capture_default_str();
       chat->add_option("--messages", o.messages, "OpenAI-style JSON list, or a file with one")
           ->required();
       chat->add_flag("--generation-prompt", o.gen_prompt, "end with the assistant prompt");
       chat->add_option("--tokenizer", o.tokenizer, "also print the ids with this tokenizer");
       chat->callback([] { run_chat(o); });

       CLI::App* tr = sub->add_subcommand(
           "train", "Train a byte-level BPE tokenizer with DeepSeek-V3's pre-tokenizer");
       tr->add_option("--input", o.inputs, "training text files")->required();
       tr->add_option("--vocab-size", o.vocab_size, "total vocabulary size")->capture_default_str();
       tr->add_option("--output", o.output, "tokenizer.json to write")->required();
       tr->add_option(
             "--special-tokens", o.specials,
             "special tokens, ids 0.. in order (default: DeepSeek's <｜begin▁of▁sentence｜>, "
             "<｜end▁of▁sentence｜>, <｜▁pad▁｜>, <｜User｜>, <｜Assistant｜>, <think>, </think>)")
           ->delimiter(',');
       tr->add_flag("--individual-digits", o.individual_digits,
                    "one token per digit (split \\p{N} instead of DeepSeek's \\p{N}{1,3}): "
                    "helps small models learn arithmetic");
       tr->add_option("--min-frequency", o.min_frequency, "stop when the best pair is rarer")
           ->capture_default_str();
       tr->add_option("--threads", o.threads, "threads for counting words (0 = all)");
       tr->callback([] { run_train(o); });

       CLI::App* b = sub->add_subcommand("bench", "Measure encoding speed (MB/s, best of runs)");
       b->add_option("--tokenizer", o.tokenizer, "tokenizer.json (or its folder)")->required();
       b->add_option("--file", o.file, "text file to encode as one string")->required();
       b->add_option("--runs", o.runs, "runs; the best is reported")->capture_default_str();
       b->add_option("--threads", o.threads, "threads (0 = all)");
       b->add_flag("--json", o.as_json, "print one JSON line");
       b->callback([] { run_bench(o); });
     },
     50});

}  // namespace
