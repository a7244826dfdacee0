// Tokenizer: loading tokenizer.json, encode, decode (see tokenizer.h).
// Reference for what is exact: huggingface/tokenizers tokenizers/src/tokenizer/mod.rs
// (encode_single_sequence, decode), serialization.rs (added tokens re-registered after the model:
// a content already in the vocab keeps the vocab id, others get the next id after
// max(vocab size, largest added id)), decoders/byte_level.rs (a token whose characters are not
// all in the byte alphabet is emitted as its own UTF-8 bytes; the whole output goes through
// from_utf8_lossy).
#include "dseek/tokenizer/tokenizer.h"

#include <omp.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "dseek/core/error.h"
#include "dseek/tokenizer/byte_level.h"
#include "dseek/tokenizer/utf8.h"
#include "dseek/tokenizer/word_cache.h"

namespace dseek {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// encode machinery: one context per thread

namespace {

struct EncodeCtx {
  PreTokenizer::Session session;
  WordCache cache;
  explicit EncodeCtx(const PreTokenizer& p) : session(p) {}
};

struct BpeSink final : PieceSink {
  const BpeModel* model;
  WordCache* cache;
  std::vector<int32_t>* out;
  void piece(std::string_view b) override {
    if (b.size() == 1) {
      model->encode_piece(b, out);
      return;
    }
    uint64_t h = word_hash(b);
    uint32_t n = 0;
    if (const int32_t* ids = cache->find(b, h, &n)) {
      out->insert(out->end(), ids, ids + n);
      return;
    }
    size_t before = out->size();
    model->encode_piece(b, out);
    cache->insert(b, h, out->data() + before, (uint32_t)(out->size() - before));
  }
};

std::string read_file(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open {} '{}': {}", what, path, std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Content of a tokenizer_config.json token entry: a string or {"content": ...}.
std::string config_token(const json& cfg, const char* key) {
  if (!cfg.contains(key)) return "";
  const json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return "";
}

void check_normalizer(const json& n, const std::string& file) {
  if (n.is_null()) return;
  std::string type = n.value("type", std::string("?"));
  if (type == "Sequence" && n.contains("normalizers") && n["normalizers"].is_array()) {
    for (const json& e : n["normalizers"]) check_normalizer(e, file);
    return;
  }
  fail("tokenizer file '{}': normalizer '{}' is not supported (only none or an empty Sequence)",
       file, type);
}

void check_decoder(const json& d, const std::string& file) {
  std::string type = d.is_null() ? "null" : d.value("type", std::string("?"));
  if (type == "ByteLevel") return;
  if (type == "Sequence" && d.contains("decoders") && d["decoders"].is_array() &&
      d["decoders"].size() == 1) {
    check_decoder(d["decoders"][0], file);
    return;
  }
  fail("tokenizer file '{}': decoder '{}' is not supported (only ByteLevel)", file, type);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// loading

Tokenizer Tokenizer::load(const std::string& path_in) {
  std::error_code ec;
  std::string path =
      std::filesystem::is_directory(path_in, ec) ? path_in + "/tokenizer.json" : path_in;
  std::string text = read_file(path, "tokenizer file");
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    fail("tokenizer file '{}' is not valid JSON: {}", path, e.what());
  }
  Tokenizer t = from_json(j, path);
  t.path_ = path;
  // bos/eos from tokenizer_config.json beside the file (the tokenizer.json does not name them).
  auto cfg_path = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(cfg_path, ec)) {
    json cfg = json::parse(read_file(cfg_path.string(), "tokenizer config"), nullptr, false);
    if (cfg.is_object()) {
      std::string bos = config_token(cfg, "bos_token"), eos = config_token(cfg, "eos_token");
      if (!bos.empty() && t.token_id(bos) >= 0) t.bos_id_ = t.token_id(bos);
      if (!eos.empty() && t.token_id(eos) >= 0) t.eos_id_ = t.token_id(eos);
    }
  }
  return t;
}

Tokenizer Tokenizer::from_json(const json& j, const std::string& file) {
  Tokenizer t;
  t.path_ = file;
  try {
    DSEEK_CHECK(j.is_object() && j.contains("model") && j["model"].is_object(),
                "tokenizer file '{}' has no \"model\" object (not a Hugging Face tokenizer.json?)",
                file);
    const json& m = j["model"];
    std::string type = m.value("type", std::string(m.contains("merges") ? "BPE" : "?"));
    DSEEK_CHECK(type == "BPE", "tokenizer file '{}': model type '{}' is not supported (only BPE)",
                file, type);
    DSEEK_CHECK(m.contains("vocab") && m["vocab"].is_object() && m.contains("merges") &&
                    m["merges"].is_array(),
                "tokenizer file '{}': BPE model needs \"vocab\" (object) and \"merges\" (array)",
                file);
    if (m.contains("dropout") && !m["dropout"].is_null())
      DSEEK_CHECK(m["dropout"].get<double>() == 0.0,
                  "tokenizer file '{}': BPE dropout is not supported", file);
    for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
      DSEEK_CHECK(!m.contains(k) || m[k].is_null() || m[k].get<std::string>().empty(),
                  "tokenizer file '{}': BPE {} is not supported", file, k);
    DSEEK_CHECK(!m.value("byte_fallback", false),
                "tokenizer file '{}': BPE byte_fallback is not supported (byte-level BPE only)",
                file);
    check_normalizer(j.value("normalizer", json()), file);
    check_decoder(j.value("decoder", json()), file);
    t.pre_ = PreTokenizer::from_json(j.value("pre_tokenizer", json()), file);
    DSEEK_CHECK(t.pre_.has_byte_level(),
                "tokenizer file '{}': pre_tokenizer has no ByteLevel stage (only byte-level BPE "
                "is supported)",
                file);

    std::vector<std::pair<std::string, int32_t>> vocab;
    vocab.reserve(m["vocab"].size());
    for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it)
      vocab.emplace_back(it.key(), it.value().get<int32_t>());
    std::vector<std::pair<std::string, std::string>> merges;
    merges.reserve(m["merges"].size());
    for (const json& e : m["merges"]) {
      if (e.is_string()) {
        const std::string& s = e.get_ref<const std::string&>();
        size_t sp = s.find(' ');
        DSEEK_CHECK(sp != std::string::npos && s.find(' ', sp + 1) == std::string::npos,
                    "tokenizer file '{}': merge \"{}\" is not two tokens separated by one space",
                    file, s);
        merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else {
        DSEEK_CHECK(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string(),
                    "tokenizer file '{}': a merge is neither \"a b\" nor [\"a\", \"b\"]", file);
        merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
      }
    }
    BpeOptions opt;
    opt.fuse_unk = m.value("fuse_unk", false);
    opt.ignore_merges = m.value("ignore_merges", false);
    t.model_.build(vocab, merges, opt, file);
    if (m.contains("unk_token") && m["unk_token"].is_string()) {
      opt.unk_id = t.model_.id_of(m["unk_token"].get<std::string>());
      t.model_.build(vocab, merges, opt, file);
    }

    // Added tokens, with the ids `tokenizers` gives them (see the header comment).
    std::vector<AddedToken> added;
    int32_t next_base = (int32_t)t.model_.vocab_count(), max_added = -1;
    if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
      DSEEK_CHECK(j["added_tokens"].is_array(), "tokenizer file '{}': added_tokens is not a list",
                  file);
      for (const json& e : j["added_tokens"]) {
        AddedToken a;
        a.content = e.at("content").get<std::string>();
        if (a.content.empty()) continue;
        a.special = e.value("special", false);
        a.normalized = e.value("normalized", !a.special);
        a.lstrip = e.value("lstrip", false);
        a.rstrip = e.value("rstrip", false);
        DSEEK_CHECK(!e.value("single_word", false),
                    "tokenizer file '{}': added token '{}' uses single_word, which is not "
                    "supported",
                    file, a.content);
        bool dup = false;
        for (const AddedToken& b : added) dup = dup || b.content == a.content;
        if (dup) continue;
        int32_t vid = t.model_.id_of(a.content);
        if (vid >= 0) {
          a.id = vid;
        } else {
          a.id = max_added < 0 ? next_base : (max_added >= next_base ? max_added + 1 : next_base);
        }
        max_added = std::max(max_added, a.id);
        added.push_back(std::move(a));
      }
    }
    t.added_.build(std::move(added));
  } catch (const json::exception& e) {
    fail("tokenizer file '{}' is malformed: {}", file, e.what());
  }

  // Per-id tables for decode.
  int32_t n = t.model_.id_end();
  for (const AddedToken& a : t.added_.tokens()) n = std::max(n, a.id + 1);
  t.vocab_size_ = n;
  t.bytes_of_.assign(n, std::string());
  t.special_.assign(n, 0);
  for (int32_t id = 0; id < n; id++) {
    const AddedToken* a = t.added_.by_id(id);
    if (!a && !t.model_.has_id(id)) continue;
    const std::string& s = a ? a->content : t.model_.token_of(id);
    if (!byte_level_decode(&t.bytes_of_[id], s)) t.bytes_of_[id] = s;
    t.special_[id] = a && a->special;
  }
  // bos / eos by the usual names; load() may override them from tokenizer_config.json.
  for (const char* s : {"<｜begin▁of▁sentence｜>", "<|begin_of_text|>", "<s>", "<|startoftext|>"})
    if (t.bos_id_ < 0) t.bos_id_ = t.token_id(s);
  for (const char* s : {"<｜end▁of▁sentence｜>", "<|end_of_text|>", "</s>", "<|endoftext|>"})
    if (t.eos_id_ < 0) t.eos_id_ = t.token_id(s);
  return t;
}

// ---------------------------------------------------------------------------------------------
// lookups

std::string Tokenizer::token_str(int32_t id) const {
  if (const AddedToken* a = added_.by_id(id)) return a->content;
  return model_.has_id(id) ? model_.token_of(id) : std::string();
}

const std::string& Tokenizer::token_bytes(int32_t id) const {
  static const std::string empty;
  return id >= 0 && id < vocab_size_ ? bytes_of_[id] : empty;
}

int32_t Tokenizer::token_id(std::string_view s) const {
  if (const AddedToken* a = added_.by_content(s)) return a->id;
  return model_.id_of(s);
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size_ && special_[id];
}

// ---------------------------------------------------------------------------------------------
// encode

void Tokenizer::encode_text(std::string_view text, std::vector<int32_t>* out, void* ctx) const {
  auto* c = (EncodeCtx*)ctx;
  BpeSink sink;
  sink.model = &model_;
  sink.cache = &c->cache;
  sink.out = out;
  pre_.split(c->session, text, sink);
}

// Work items: added tokens, and text cut into chunks of about `chunk` bytes at points where the
// pre-tokenizer is known to split anyway (PreTokenizer::find_cut).
void Tokenizer::plan_jobs(std::string_view text, const std::vector<TextSegment>& segs, size_t chunk,
                          std::vector<Job>* jobs) const {
  for (const TextSegment& s : segs) {
    if (s.id >= 0 || !pre_.parallel_safe()) {
      jobs->push_back({s.start, s.end, s.id});
      continue;
    }
    size_t pos = s.start;
    while (s.end - pos > chunk) {
      size_t cut = PreTokenizer::find_cut(text, pos + chunk, s.end);
      if (cut == 0) break;
      jobs->push_back({pos, cut, -1});
      pos = cut;
    }
    jobs->push_back({pos, s.end, -1});
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool allow_special) const {
  std::vector<TextSegment> segs;
  added_.split(text, allow_special, &segs);
  std::vector<int32_t> out;
  int threads = num_threads_ > 0 ? num_threads_ : omp_get_max_threads();
  std::vector<Job> jobs;
  // Inside a caller's parallel region (e.g. encoding a batch of documents) stay on this thread.
  if (threads > 1 && !omp_in_parallel() && text.size() >= parallel_min_bytes_) {
    size_t chunk = std::max<size_t>(text.size() / ((size_t)threads * 8),
                                    std::max<size_t>(parallel_min_bytes_ / 4, 1));
    plan_jobs(text, segs, chunk, &jobs);
  }
  if (jobs.size() < 2) {
    out.reserve(text.size() / 4 + 16);
    EncodeCtx ctx(pre_);
    for (const TextSegment& s : segs) {
      if (s.id >= 0)
        out.push_back(s.id);
      else
        encode_text(text.substr(s.start, s.end - s.start), &out, &ctx);
    }
    return out;
  }
  std::vector<std::vector<int32_t>> parts(jobs.size());
  std::exception_ptr err;
#pragma omp parallel num_threads(threads)
  {
    try {
      EncodeCtx ctx(pre_);
#pragma omp for schedule(dynamic, 1)
      for (long k = 0; k < (long)jobs.size(); k++) {
        const Job& jb = jobs[k];
        if (jb.id >= 0) {
          parts[k].push_back(jb.id);
          continue;
        }
        try {
          parts[k].reserve((jb.end - jb.start) / 4 + 16);
          encode_text(text.substr(jb.start, jb.end - jb.start), &parts[k], &ctx);
        } catch (...) {
#pragma omp critical(dseek_tokenizer_err)
          if (!err) err = std::current_exception();
        }
      }
    } catch (...) {
#pragma omp critical(dseek_tokenizer_err)
      if (!err) err = std::current_exception();
    }
  }
  if (err) std::rethrow_exception(err);
  size_t total = 0;
  for (const auto& p : parts) total += p.size();
  out.reserve(total);
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// ---------------------------------------------------------------------------------------------
// decode

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size_) continue;
    if (skip_special && special_[id]) continue;
    bytes += bytes_of_[id];
  }
  std::string out;
  out.reserve(bytes.size());
  utf8_append_lossy(&out, bytes);
  return out;
}

}  // namespace dseek
