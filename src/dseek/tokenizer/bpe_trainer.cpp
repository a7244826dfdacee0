// Byte-level BPE training (see bpe_trainer.h). The bookkeeping follows the usual incremental
// scheme (as in huggingface/tokenizers models/bpe/trainer.rs, written independently): pair
// counts weighted by word frequency, a pair -> words index that only grows, and a max-heap whose
// stale entries are re-pushed with their current count when popped.
#include "dseek/tokenizer/bpe_trainer.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <queue>
#include <sstream>

#include <nlohmann/json.hpp>

#include "dseek/core/error.h"
#include "dseek/tokenizer/byte_level.h"
#include "dseek/tokenizer/utf8.h"

namespace dseek {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// constants

std::vector<std::string> bpe_trainer_default_specials() {
  return {"<｜begin▁of▁sentence｜>",
          "<｜end▁of▁sentence｜>",
          "<｜▁pad▁｜>",
          "<｜User｜>",
          "<｜Assistant｜>",
          "<think>",
          "</think>"};
}

static constexpr size_t kCountChunk = 1u << 20;  // bytes per counting task

// ---------------------------------------------------------------------------------------------
// counting words

namespace {

struct CountSink final : PieceSink {
  std::unordered_map<std::string, int64_t>* words;
  void piece(std::string_view b) override { (*words)[std::string(b)]++; }
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

BpeTrainer::BpeTrainer(BpeTrainOptions opt) : opt_(std::move(opt)) {
  pre_ = PreTokenizer::deepseek_v3(opt_.individual_digits);
  std::vector<AddedToken> sp;
  for (size_t i = 0; i < opt_.special_tokens.size(); i++) {
    const std::string& s = opt_.special_tokens[i];
    DSEEK_CHECK(!s.empty() && utf8_is_valid(s), "special token {} is empty or not UTF-8", i);
    for (size_t k = 0; k < i; k++)
      DSEEK_CHECK(opt_.special_tokens[k] != s, "special token '{}' is listed twice", s);
    sp.push_back({.id = (int32_t)i, .content = s, .special = true});
  }
  specials_.build(std::move(sp));
  DSEEK_CHECK(opt_.vocab_size >= (int32_t)opt_.special_tokens.size() + 256,
              "vocab size {} is too small: it must hold the {} special tokens and the 256 bytes",
              opt_.vocab_size, opt_.special_tokens.size());
}

void BpeTrainer::count_range(std::string_view text,
                             std::unordered_map<std::string, int64_t>* words) {
  PreTokenizer::Session session(pre_);
  CountSink sink;
  sink.words = words;
  pre_.split(session, text, sink);
}

void BpeTrainer::add_text(std::string_view text) {
  // Special tokens are cut out (never learned from); the text between them is cut into chunks at
  // exact pre-tokenizer boundaries (PreTokenizer::find_cut) and counted on all threads.
  std::vector<TextSegment> segs;
  specials_.split(text, true, &segs);
  std::vector<std::pair<size_t, size_t>> chunks;
  for (const TextSegment& s : segs) {
    if (s.id >= 0) continue;
    size_t pos = s.start;
    while (s.end - pos > kCountChunk) {
      size_t cut = PreTokenizer::find_cut(text, pos + kCountChunk, s.end);
      if (cut == 0) break;
      chunks.push_back({pos, cut});
      pos = cut;
    }
    chunks.push_back({pos, s.end});
  }
  auto t0 = std::chrono::steady_clock::now();
  int threads = opt_.threads > 0 ? opt_.threads : omp_get_max_threads();
  size_t done = 0;
  std::exception_ptr err;
#pragma omp parallel num_threads(threads)
  {
    std::unordered_map<std::string, int64_t> local;
#pragma omp for schedule(dynamic, 1)
    for (long k = 0; k < (long)chunks.size(); k++) {
      try {
        count_range(text.substr(chunks[k].first, chunks[k].second - chunks[k].first), &local);
      } catch (...) {
#pragma omp critical(dseek_trainer_err)
        if (!err) err = std::current_exception();
      }
#pragma omp critical(dseek_trainer_progress)
      {
        done += chunks[k].second - chunks[k].first;
        if (opt_.progress) opt_.progress({"count", done, text.size(), seconds_since(t0)});
      }
    }
#pragma omp critical(dseek_trainer_merge)
    for (auto& [w, c] : local) words_[w] += c;
  }
  if (err) std::rethrow_exception(err);
}

void BpeTrainer::add_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open training file '{}'", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  add_text(ss.str());
}

// ---------------------------------------------------------------------------------------------
// learning merges

json BpeTrainer::train() {
  auto t0 = std::chrono::steady_clock::now();
  // Vocabulary: specials, then the byte alphabet by code point.
  std::vector<std::string> id_to_str;
  std::unordered_map<std::string, int32_t> str_to_id;
  auto add_token = [&](const std::string& s) {
    auto it = str_to_id.find(s);
    if (it != str_to_id.end()) return it->second;
    int32_t id = (int32_t)id_to_str.size();
    id_to_str.push_back(s);
    str_to_id.emplace(s, id);
    return id;
  };
  for (const std::string& s : opt_.special_tokens) add_token(s);
  std::vector<std::pair<uint32_t, int>> alphabet;  // (code point, byte)
  for (int b = 0; b < 256; b++) alphabet.push_back({byte_level_char((uint8_t)b), b});
  std::sort(alphabet.begin(), alphabet.end());
  int32_t byte_to_id[256];
  for (const auto& [cp, b] : alphabet) {
    std::string s;
    utf8_append(&s, cp);
    byte_to_id[b] = add_token(s);
  }

  // Words as symbol ids, in a deterministic order.
  std::vector<std::pair<std::string, int64_t>> sorted(words_.begin(), words_.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::vector<int32_t>> sym(sorted.size());
  std::vector<int64_t> count(sorted.size());
  for (size_t w = 0; w < sorted.size(); w++) {
    for (char c : sorted[w].first) sym[w].push_back(byte_to_id[(uint8_t)c]);
    count[w] = sorted[w].second;
  }
  sorted.clear();

  // Pair statistics.
  auto key = [](int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; };
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<uint32_t>> where;
  for (size_t w = 0; w < sym.size(); w++) {
    for (size_t i = 0; i + 1 < sym[w].size(); i++) {
      uint64_t k = key(sym[w][i], sym[w][i + 1]);
      pair_count[k] += count[w];
      auto& v = where[k];
      if (v.empty() || v.back() != w) v.push_back((uint32_t)w);
    }
  }
  struct Entry {
    int64_t count;
    uint64_t pair;
    bool operator<(const Entry& o) const {  // max count first, then the smaller pair
      return count != o.count ? count < o.count : pair > o.pair;
    }
  };
  std::priority_queue<Entry> heap;
  for (const auto& [k, c] : pair_count) heap.push({c, k});

  json merges = json::array();
  size_t want = (size_t)opt_.vocab_size - id_to_str.size(), made = 0;
  std::vector<uint64_t> touched;
  auto last_report = std::chrono::steady_clock::now();
  while ((int32_t)id_to_str.size() < opt_.vocab_size && !heap.empty()) {
    Entry top = heap.top();
    heap.pop();
    auto pc = pair_count.find(top.pair);
    int64_t cur = pc == pair_count.end() ? 0 : pc->second;
    if (cur != top.count) {
      if (cur > 0) heap.push({cur, top.pair});
      continue;
    }
    if (cur < std::max<int64_t>(1, opt_.min_frequency)) break;
    int32_t a = (int32_t)(top.pair >> 32), b = (int32_t)(top.pair & 0xFFFFFFFFu);
    int32_t nid = add_token(id_to_str[a] + id_to_str[b]);
    merges.push_back(json::array({id_to_str[a], id_to_str[b]}));
    made++;

    std::vector<uint32_t> list = std::move(where[top.pair]);
    where.erase(top.pair);
    std::sort(list.begin(), list.end());
    list.erase(std::unique(list.begin(), list.end()), list.end());
    touched.clear();
    auto change = [&](int32_t x, int32_t y, int64_t delta, uint32_t w) {
      uint64_t k = key(x, y);
      pair_count[k] += delta;
      if (delta > 0) {
        auto& v = where[k];
        if (v.empty() || v.back() != w) v.push_back(w);
        touched.push_back(k);
      }
    };
    for (uint32_t w : list) {
      std::vector<int32_t>& s = sym[w];
      int64_t c = count[w];
      for (size_t i = 0; i + 1 < s.size(); i++) {
        if (s[i] != a || s[i + 1] != b) continue;
        if (i > 0) {
          change(s[i - 1], a, -c, w);
          change(s[i - 1], nid, c, w);
        }
        if (i + 2 < s.size()) {
          change(b, s[i + 2], -c, w);
          change(nid, s[i + 2], c, w);
        }
        s[i] = nid;
        s.erase(s.begin() + (long)i + 1);
      }
    }
    pair_count.erase(top.pair);
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (uint64_t k : touched) {
      int64_t c = pair_count[k];
      if (c > 0) heap.push({c, k});
    }
    auto now = std::chrono::steady_clock::now();
    if (opt_.progress && std::chrono::duration<double>(now - last_report).count() > 0.5) {
      last_report = now;
      opt_.progress({"merge", made, want, seconds_since(t0)});
    }
  }
  if (opt_.progress) opt_.progress({"merge", made, want, seconds_since(t0)});

  // The tokenizer.json document.
  json vocab = json::object();
  for (size_t id = 0; id < id_to_str.size(); id++) vocab[id_to_str[id]] = id;
  json added = json::array();
  for (size_t i = 0; i < opt_.special_tokens.size(); i++) {
    added.push_back({{"id", i},
                     {"content", opt_.special_tokens[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  json model = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", false},
                {"vocab", vocab},
                {"merges", merges}};
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer", PreTokenizer::deepseek_v3_json(opt_.individual_digits)},
          {"post_processor",
           {{"type", "ByteLevel"},
            {"add_prefix_space", true},
            {"trim_offsets", false},
            {"use_regex", true}}},
          {"decoder",
           {{"type", "ByteLevel"},
            {"add_prefix_space", true},
            {"trim_offsets", true},
            {"use_regex", true}}},
          {"model", model}};
}

// ---------------------------------------------------------------------------------------------
// output

void bpe_trainer_write(const json& doc, const std::string& path) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    if (!f) fail("cannot write '{}'", tmp);
    f << doc.dump(1) << "\n";
    if (!f) fail("error writing '{}'", tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail("cannot rename '{}' to '{}': {}", tmp, path, ec.message());
}

}  // namespace dseek
