// `dseek data prepare`: text (.txt, .jsonl) -> token shards + meta.json (format in
// io/token_shards.h); `dseek data info DIR`: the meta, the token counts read back from the shards,
// and the unigram entropy of the train split (the loss of a model that learned only token
// frequencies: compare the training loss with it).
//
// Documents: in a text file, one document per block of non-blank lines (blocks are separated by
// one or more blank lines, i.e. 2+ newlines), or the whole file with --doc-per-file; in a .jsonl
// file, the string field --jsonl-field of each line's object (blank lines skipped). Each document
// is encoded with allow_special = false (special-token text in the data stays plain text) and
// written as [BOS] ids [EOS], BOS/EOS where the tokenizer has them. A document goes to val when a
// seeded 64-bit hash of its text falls below --val-fraction: the split depends on the text alone,
// not on file order, thread count or the other documents. Output is identical for any --threads.
// Not here: the shard format and the loader (io/token_shards.cpp), tokenizer training.
#include <omp.h>  // omp_get_max_threads

#include <cctype>      // toupper
#include <chrono>      // progress timing
#include <cmath>       // log2
#include <cstdio>      // printing
#include <cstring>     // memcpy, memmove
#include <exception>   // exception_ptr out of the OpenMP loop
#include <filesystem>  // sizes, listing, rename
#include <fstream>     // reading inputs and meta.json
#include <optional>    // no progress bar with -q

#include <nlohmann/json.hpp>  // .jsonl lines, meta.json

#include "dseek/cli/command.h"
#include "dseek/core/error.h"
#include "dseek/core/rng.h"
#include "dseek/core/progress.h"
#include "dseek/io/token_shards.h"
#include "dseek/tokenizer/tokenizer.h"

namespace {

using namespace dseek;
namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// constants

constexpr size_t kBatchBytesPerThread = 1 << 20;  // text encoded per parallel step, per thread
constexpr size_t kLargeDocBytes = 1 << 20;        // encoded alone, with the tokenizer's own threads
constexpr int kMetaVersion = 1;

// ---------------------------------------------------------------------------------------------
// small helpers: sha256, hashing, sizes

// SHA-256 (FIPS 180-4) of a file, lowercase hex: identifies the tokenizer in meta.json.
std::string sha256_file(const std::string& path) {
  static const uint32_t K[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
      0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
      0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
      0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
      0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
      0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
      0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
      0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
      0xc67178f2};
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
  auto block = [&](const uint8_t* p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
      w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
             p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
      uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
      uint32_t t1 =
          k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
      uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      k = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
  };
  std::ifstream in(path, std::ios::binary);
  DSEEK_CHECK(in.good(), "cannot read {}", path);
  std::vector<uint8_t> buf(1 << 16);
  uint64_t total = 0;
  size_t have = 0;  // bytes of a partial block at the front of buf
  while (true) {
    in.read((char*)buf.data() + have, (std::streamsize)(buf.size() - have));
    size_t got = (size_t)in.gcount();
    total += got;
    have += got;
    size_t full = have / 64 * 64;
    for (size_t i = 0; i < full; i += 64) block(&buf[i]);
    std::memmove(buf.data(), buf.data() + full, have - full);
    have -= full;
    if (got == 0) break;
  }
  // padding: 0x80, zeros, 64-bit big-endian bit length
  uint8_t tail[128] = {};
  std::memcpy(tail, buf.data(), have);
  tail[have] = 0x80;
  size_t len = have + 9 <= 64 ? 64 : 128;
  for (int i = 0; i < 8; i++) tail[len - 1 - i] = (uint8_t)((total * 8) >> (8 * i));
  for (size_t i = 0; i < len; i += 64) block(tail + i);
  std::string hex;
  for (uint32_t v : h) hex += fmt::format("{:08x}", v);
  return hex;
}

// Which split a document goes to: FNV-1a of the text, keyed by the seed.
bool doc_is_val(std::string_view text, uint64_t seed, double val_fraction) {
  uint64_t h = 0xcbf29ce484222325ull ^ splitmix64_finalize(seed + kSplitmix64Gamma);
  for (unsigned char c : text) h = (h ^ c) * 0x100000001b3ull;
  return (double)(splitmix64_finalize(h) >> 11) * 0x1.0p-53 < val_fraction;
}

// "100M" -> 100000000 (K, M, G: powers of 1000; plain numbers too).
uint64_t parse_count(const std::string& s, const char* flag) {
  double mult = 1;
  std::string num = s;
  if (!num.empty() && std::string("kKmMgG").find(num.back()) != std::string::npos) {
    char c = (char)std::toupper(num.back());
    mult = c == 'K' ? 1e3 : c == 'M' ? 1e6 : 1e9;
    num.pop_back();
  }
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(num, &used);
  } catch (const std::logic_error&) {
    used = 0;
  }
  DSEEK_CHECK(used > 0 && used == num.size() && v * mult >= 1 && v * mult < 1e15,
              "{} {}: expected a positive count such as 100M, 5000000 or 1.5G", flag, s);
  return (uint64_t)(v * mult);
}

std::string human_bytes(double b) {
  if (b >= 1e9) return fmt::format("{:.2f} GB", b / 1e9);
  if (b >= 1e6) return fmt::format("{:.1f} MB", b / 1e6);
  return fmt::format("{:.1f} KB", b / 1e3);
}

std::string human_count(double n) {
  if (n >= 1e9) return fmt::format("{:.2f}G", n / 1e9);
  if (n >= 1e6) return fmt::format("{:.2f}M", n / 1e6);
  if (n >= 1e3) return fmt::format("{:.1f}K", n / 1e3);
  return fmt::format("{:.0f}", n);
}

bool is_blank(std::string_view line) {
  return line.find_first_not_of(" \t\r\f\v") == std::string_view::npos;
}

// ---------------------------------------------------------------------------------------------
// reading documents

struct PrepareArgs {
  std::string tokenizer, output, jsonl_field = "text", shard_tokens = "100M";
  std::vector<std::string> inputs;
  double val_fraction = 0.05;
  uint64_t seed = 0;
  int threads = 0;
  bool doc_per_file = false, quiet = false;
};

// Calls emit(text, bytes of the file consumed so far) for each document of `path`.
template <typename Emit>
void read_docs(const std::string& path, const PrepareArgs& a, Emit&& emit) {
  std::ifstream in(path, std::ios::binary);
  DSEEK_CHECK(in.good(), "cannot read input {}", path);
  const bool jsonl = fs::path(path).extension() == ".jsonl";
  if (!jsonl && a.doc_per_file) {
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t n = text.size();
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    if (!is_blank(text)) emit(std::move(text), n);
    return;
  }
  std::string line, doc;
  uint64_t consumed = 0, line_no = 0;
  while (std::getline(in, line)) {
    consumed += line.size() + 1;
    line_no++;
    if (!jsonl) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!is_blank(line)) {
        if (!doc.empty()) doc += '\n';
        doc += line;
      } else if (!doc.empty()) {
        emit(std::move(doc), consumed);
        doc.clear();
      }
      continue;
    }
    if (is_blank(line)) continue;
    json j;
    try {
      j = json::parse(line);
    } catch (const json::parse_error& e) {
      std::string what = e.what();
      size_t cut = what.find("] ");
      fail("{}:{}: invalid JSON: {}", path, line_no,
           cut == std::string::npos ? what : what.substr(cut + 2));
    }
    auto it = j.is_object() ? j.find(a.jsonl_field) : j.end();
    DSEEK_CHECK(j.is_object() && it != j.end(),
                "{}:{}: no field \"{}\" in this line (each line must be a JSON object with the "
                "text in that field; see --jsonl-field)",
                path, line_no, a.jsonl_field);
    DSEEK_CHECK(it->is_string(), "{}:{}: field \"{}\" is a {}, expected a string", path, line_no,
                a.jsonl_field, it->type_name());
    std::string text = it->get<std::string>();
    if (!text.empty()) emit(std::move(text), consumed);
  }
  if (!doc.empty()) emit(std::move(doc), consumed);
}

// ---------------------------------------------------------------------------------------------
// writing one split: shards of at most shard_tokens tokens

struct SplitWriter {
  std::string dir, name;
  uint32_t vocab_size = 0;
  uint64_t shard_tokens = 0;
  std::unique_ptr<TokenShardWriter> w{};
  std::vector<uint64_t> shard_sizes{};
  uint64_t docs = 0, tokens = 0;

  void append(const std::vector<int32_t>& ids) {
    size_t done = 0;
    do {
      if (!w)
        w = std::make_unique<TokenShardWriter>(
            token_dataset_shard_path(dir, name, (int)shard_sizes.size()), vocab_size);
      size_t m = std::min<uint64_t>(ids.size() - done, shard_tokens - w->n_tokens());
      w->append(ids.data() + done, m);
      done += m;
      if (w->n_tokens() == shard_tokens) close();
    } while (done < ids.size());
    docs++;
    tokens += ids.size();
  }
  void close() {
    if (!w)
      w = std::make_unique<TokenShardWriter>(  // an empty split still gets a shard
          token_dataset_shard_path(dir, name, (int)shard_sizes.size()), vocab_size);
    shard_sizes.push_back(w->n_tokens());
    w->finish();
    w.reset();
  }
  json to_json() const {
    json shards = json::array();
    for (size_t i = 0; i < shard_sizes.size(); i++)
      shards.push_back(
          {{"file", fs::path(token_dataset_shard_path(dir, name, (int)i)).filename().string()},
           {"tokens", shard_sizes[i]}});
    return {{"docs", docs}, {"tokens", tokens}, {"shards", shards}};
  }
};

// Shards are written into DIR/.prepare-tmp and moved into DIR only when all went well, so a
// failed run leaves an earlier data set in DIR as it was. The guard removes the staging folder.
struct StagingGuard {
  std::string dir;
  ~StagingGuard() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

// Removes the shards and meta.json of an earlier run, so none outlives this one.
void clear_old_dataset(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string n = e.path().filename().string();
    bool shard = (n.rfind("train_", 0) == 0 || n.rfind("val_", 0) == 0) &&
                 (n.ends_with(".bin") || n.ends_with(".bin.tmp"));
    if (shard || n == "meta.json") fs::remove(e.path());
  }
}

// ---------------------------------------------------------------------------------------------
// data prepare

int prepare(const PrepareArgs& a) {
  DSEEK_CHECK(!a.inputs.empty(), "data prepare: no --input files given (.txt or .jsonl)");
  DSEEK_CHECK(!a.output.empty(), "data prepare: no --output folder given");
  DSEEK_CHECK(!a.tokenizer.empty(), "data prepare: no --tokenizer given (a tokenizer.json)");
  DSEEK_CHECK(a.val_fraction >= 0 && a.val_fraction < 1, "--val-fraction {}: must be in [0, 1)",
              a.val_fraction);
  DSEEK_CHECK(a.threads >= 0, "--threads {}: must be 0 (all cores) or more", a.threads);
  const uint64_t shard_tokens = parse_count(a.shard_tokens, "--shard-tokens");
  uint64_t total_bytes = 0;
  std::error_code ec;
  for (const std::string& p : a.inputs) {
    DSEEK_CHECK(fs::is_regular_file(p, ec), "input {}: no such file", p);
    total_bytes += fs::file_size(p);
  }
  DSEEK_CHECK(fs::is_regular_file(a.tokenizer, ec),
              "tokenizer {}: no such file (train one with `dseek tokenizer train`)", a.tokenizer);
  DSEEK_CHECK(!fs::exists(a.output, ec) || fs::is_directory(a.output, ec),
              "--output {}: exists and is not a folder", a.output);

  Tokenizer tok = Tokenizer::load(a.tokenizer);
  const int threads = a.threads > 0 ? a.threads : omp_get_max_threads();
  tok.set_num_threads(threads);
  const uint32_t vocab = (uint32_t)tok.vocab_size();
  const int32_t bos = tok.bos_id(), eos = tok.eos_id();
  // created_by: rebuilt from the flags that decide the output (not --threads, -q)
  std::string cmdline =
      fmt::format("dseek data prepare --tokenizer {} --output {} --input", a.tokenizer, a.output);
  for (const std::string& p : a.inputs) cmdline.append(" ").append(p);
  cmdline += fmt::format(" --val-fraction {} --seed {} --shard-tokens {} --jsonl-field {}",
                         a.val_fraction, a.seed, a.shard_tokens, a.jsonl_field);
  if (a.doc_per_file) cmdline += " --doc-per-file";

  std::printf("[data] tokenizer     %s (vocab %u, bos %d, eos %d)\n", a.tokenizer.c_str(), vocab,
              bos, eos);
  std::printf("[data] inputs        %zu files, %s\n", a.inputs.size(),
              human_bytes((double)total_bytes).c_str());
  std::printf("[data] documents     %s, each [%s] ids [%s]\n",
              a.doc_per_file ? "one per file (.txt), one per line (.jsonl)"
                             : "blank-line separated blocks (.txt), one per line (.jsonl)",
              bos >= 0 ? "BOS" : "no BOS", eos >= 0 ? "EOS" : "no EOS");
  std::printf("[data] split         val fraction %g, seed %llu\n", a.val_fraction,
              (unsigned long long)a.seed);
  std::printf("[data] output        %s (shards of at most %s tokens, %d bytes/token)\n",
              a.output.c_str(), human_count((double)shard_tokens).c_str(),
              (int)token_width_for_vocab(vocab));
  std::printf("[data] threads       %d\n", threads);
  std::fflush(stdout);

  StagingGuard staging{(fs::path(a.output) / ".prepare-tmp").string()};
  fs::remove_all(staging.dir);
  fs::create_directories(staging.dir);
  SplitWriter train{
      .dir = staging.dir, .name = "train", .vocab_size = vocab, .shard_tokens = shard_tokens};
  SplitWriter val{
      .dir = staging.dir, .name = "val", .vocab_size = vocab, .shard_tokens = shard_tokens};
  json sources = json::array();
  uint64_t bytes_before = 0, tokens_done = 0;
  // progress on stderr (core/progress.h), in input bytes, with throughput
  std::optional<ProgressBar> bar;
  if (!a.quiet) bar.emplace("data", (int64_t)total_bytes);
  const Clock::time_point t0 = Clock::now();
  auto progress = [&](uint64_t bytes, bool done) {
    if (!bar) return;
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    const double mbs = dt > 0 ? (double)bytes / 1e6 / dt : 0;
    const std::string tps = human_count(dt > 0 ? (double)tokens_done / dt : 0);
    if (done) {
      bar->finish(fmt::format("{}, {} tokens ({:.2f} MB/s, {} tokens/s)",
                              human_bytes((double)bytes), human_count((double)tokens_done), mbs,
                              tps));
    } else if (bytes < total_bytes) {  // all read: the "done" line (or an error) comes next
      bar->update((int64_t)bytes,
                  fmt::format("{} / {}  {:.2f} MB/s  {} tok/s", human_bytes((double)bytes),
                              human_bytes((double)total_bytes), mbs, tps));
    }
  };

  std::vector<std::string> batch;
  size_t batch_bytes = 0;
  auto flush = [&](uint64_t bytes_now) {
    std::vector<std::vector<int32_t>> ids(batch.size());
    std::vector<uint8_t> to_val(batch.size());
    std::exception_ptr err;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (size_t i = 0; i < batch.size(); i++) {
      try {
        to_val[i] = doc_is_val(batch[i], a.seed, a.val_fraction);
        if (batch[i].size() >= kLargeDocBytes) continue;  // below
        ids[i] = tok.encode(batch[i], /*allow_special=*/false);
      } catch (...) {
#pragma omp critical
        err = std::current_exception();
      }
    }
    if (err) std::rethrow_exception(err);
    for (size_t i = 0; i < batch.size(); i++) {
      if (batch[i].size() >= kLargeDocBytes) ids[i] = tok.encode(batch[i], false);
      std::vector<int32_t>& d = ids[i];
      if (bos >= 0) d.insert(d.begin(), bos);
      if (eos >= 0) d.push_back(eos);
      (to_val[i] ? val : train).append(d);
      tokens_done += d.size();
    }
    batch.clear();
    batch_bytes = 0;
    progress(bytes_now, false);
  };
  for (const std::string& p : a.inputs) {
    uint64_t docs_before = train.docs + val.docs + batch.size();
    read_docs(p, a, [&](std::string&& text, uint64_t consumed) {
      batch_bytes += text.size();
      batch.push_back(std::move(text));
      if (batch_bytes >= kBatchBytesPerThread * threads) flush(bytes_before + consumed);
    });
    uint64_t size = fs::file_size(p);
    uint64_t docs = train.docs + val.docs + batch.size() - docs_before;
    bytes_before += size;
    sources.push_back({{"path", p}, {"bytes", size}, {"docs", docs}});
  }
  flush(total_bytes);
  DSEEK_CHECK(train.docs + val.docs > 0,
              "data prepare: the inputs hold no documents (empty files or only blank lines)");
  progress(total_bytes, true);
  train.close();
  val.close();

  json meta = {
      {"format", "dseek-token-dataset"},
      {"version", kMetaVersion},
      {"created_by", cmdline},
      {"tokenizer",
       {{"path", fs::absolute(a.tokenizer).lexically_normal().string()},
        {"sha256", sha256_file(a.tokenizer)},
        {"vocab_size", vocab},
        {"bos_id", bos},
        {"eos_id", eos}}},
      {"vocab_size", vocab},
      {"token_bytes", (int)token_width_for_vocab(vocab)},
      {"document", fmt::format("{}ids{}", bos >= 0 ? "[BOS] " : "", eos >= 0 ? " [EOS]" : "")},
      {"doc_per_file", a.doc_per_file},
      {"jsonl_field", a.jsonl_field},
      {"sources", sources},
      {"val_fraction", a.val_fraction},
      {"seed", a.seed},
      {"shard_tokens", shard_tokens},
      {"splits", {{"train", train.to_json()}, {"val", val.to_json()}}}};
  {
    std::ofstream out(fs::path(staging.dir) / "meta.json");
    out << meta.dump(2) << "\n";
    DSEEK_CHECK(out.good(), "cannot write {}/meta.json", staging.dir);
  }
  // all written: replace the earlier data set, meta.json last
  clear_old_dataset(a.output);
  for (const auto& e : fs::directory_iterator(staging.dir))
    if (e.path().filename() != "meta.json")
      fs::rename(e.path(), fs::path(a.output) / e.path().filename());
  std::string meta_path = (fs::path(a.output) / "meta.json").string();
  fs::rename(fs::path(staging.dir) / "meta.json", meta_path);
  for (const SplitWriter* s : {&train, &val})
    std::printf("[data] %-5s         %zu shard%s, %llu docs, %llu tokens\n", s->name.c_str(),
                s->shard_sizes.size(), s->shard_sizes.size() == 1 ? "" : "s",
                (unsigned long long)s->docs, (unsigned long long)s->tokens);
  if (val.docs == 0 && a.val_fraction > 0)
    std::fprintf(stderr, "[data] warning: no document landed in val (too few documents?)\n");
  std::printf("[data] meta          %s\n", meta_path.c_str());
  return 0;
}

// ---------------------------------------------------------------------------------------------
// data info

struct InfoArgs {
  std::string dir;
  bool json_out = false;
};

int info(const InfoArgs& a) {
  DSEEK_CHECK(!a.dir.empty(), "data info: give the data set folder (`dseek data info DIR`)");
  std::string meta_path = (fs::path(a.dir) / "meta.json").string();
  json meta;
  std::error_code ec;
  if (fs::exists(meta_path, ec)) {
    std::ifstream in(meta_path);
    meta = json::parse(in, nullptr, /*allow_exceptions=*/false);
    DSEEK_CHECK(!meta.is_discarded() && meta.is_object(), "{}: not valid JSON {}", meta_path,
                kTokenShardHint);
  }
  json out = {{"dir", a.dir}, {"meta", meta}, {"splits", json::object()}};
  for (const char* name : {"train", "val"}) {
    TokenSplit s = TokenSplit::open(a.dir, name);
    std::vector<uint64_t> counts(s.vocab_size(), 0);
    for (const auto& sh : s.shards()) sh->count_ids(&counts);
    const uint64_t n = s.n_tokens();
    if (meta.is_object() && meta.contains("splits") && meta["splits"].contains(name)) {
      uint64_t want = meta["splits"][name].value("tokens", (uint64_t)0);
      DSEEK_CHECK(want == n, "{}: meta.json says {} {} tokens but the shards hold {} {}", a.dir,
                  want, name, n, kTokenShardHint);
    }
    double h_bits = 0;
    uint64_t used = 0;
    for (uint64_t c : counts) {
      if (!c) continue;
      used++;
      double p = (double)c / (double)n;
      h_bits -= p * std::log2(p);
    }
    out["vocab_size"] = s.vocab_size();
    out["splits"][name] = {{"shards", s.shards().size()},
                           {"tokens", n},
                           {"distinct_ids", used},
                           {"unigram_entropy_bits", h_bits},
                           {"unigram_entropy_nats", h_bits * std::log(2.0)}};
    if (meta.is_object() && meta.contains("splits") && meta["splits"].contains(name))
      out["splits"][name]["docs"] = meta["splits"][name].value("docs", (uint64_t)0);
  }
  if (a.json_out) {
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("[data] dir           %s\n", a.dir.c_str());
  if (meta.is_object()) {
    const json& t = meta.value("tokenizer", json::object());
    std::printf("[data] tokenizer     %s (sha256 %s)\n", t.value("path", "?").c_str(),
                t.value("sha256", "?").c_str());
    std::printf("[data] created by    %s\n", meta.value("created_by", "?").c_str());
    for (const json& src : meta.value("sources", json::array()))
      std::printf("[data] source        %s (%s, %llu docs)\n", src.value("path", "?").c_str(),
                  human_bytes(src.value("bytes", 0.0)).c_str(),
                  (unsigned long long)src.value("docs", (uint64_t)0));
    std::printf("[data] split         val fraction %g, seed %llu; documents %s\n",
                meta.value("val_fraction", 0.0), (unsigned long long)meta.value("seed", 0ull),
                meta.value("document", "?").c_str());
  } else {
    std::printf("[data] meta          none (%s is missing)\n", meta_path.c_str());
  }
  const uint32_t vocab = out["vocab_size"].get<uint32_t>();
  std::printf(
      "[data] vocab         %u (%d bytes/token); a uniform guess scores ln(V) = %.4f "
      "nats/token\n",
      vocab, (int)token_width_for_vocab(vocab), std::log((double)vocab));
  for (const char* name : {"train", "val"}) {
    const json& s = out["splits"][name];
    std::string docs = s.contains("docs") ? fmt::format("{}", s["docs"].get<uint64_t>()) : "?";
    std::printf("[data] %-5s         %llu shard(s), %s docs, %llu tokens, %llu distinct ids\n",
                name, (unsigned long long)s["shards"].get<uint64_t>(), docs.c_str(),
                (unsigned long long)s["tokens"].get<uint64_t>(),
                (unsigned long long)s["distinct_ids"].get<uint64_t>());
    std::printf("[data] %-5s entropy %.4f bits/token = %.4f nats/token (unigram)\n", name,
                s["unigram_entropy_bits"].get<double>(), s["unigram_entropy_nats"].get<double>());
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// registration

const bool reg = dseek::cli::add_command(
    {"data", "Prepare token shards for training (prepare) and inspect them (info)",
     [](CLI::App* sub, int* rc) {
       sub->require_subcommand(1);
       static PrepareArgs p;
       CLI::App* prep = sub->add_subcommand("prepare", "Tokenize text files into token shards");
       prep->add_option("--tokenizer", p.tokenizer, "tokenizer.json to encode with");
       prep->add_option("-i,--input", p.inputs,
                        "input files: .jsonl (one JSON object per line), anything else is text");
       prep->add_option("-o,--output", p.output, "data set folder to write (old shards go)");
       prep->add_option("--val-fraction", p.val_fraction, "share of documents for val")
           ->capture_default_str();
       prep->add_option("--seed", p.seed, "seed of the document-level train/val split")
           ->capture_default_str();
       prep->add_option("--shard-tokens", p.shard_tokens, "tokens per shard (K, M, G = 1e3..1e9)")
           ->capture_default_str();
       prep->add_option("--jsonl-field", p.jsonl_field, "field holding the text in .jsonl")
           ->capture_default_str();
       prep->add_flag("--doc-per-file", p.doc_per_file,
                      "a text file is one document (default: blank lines separate documents)");
       prep->add_option("--threads", p.threads, "encoding threads (0 = all cores)")
           ->capture_default_str();
       prep->add_flag("-q,--quiet", p.quiet, "no progress on stderr");
       prep->footer(
           "Example:\n"
           "  dseek data prepare --tokenizer data/corpus/tokenizer.json \\\n"
           "      --input data/corpus/brown.txt data/corpus/kjv.txt --output data/tinyshards\n");
       prep->callback([rc] { *rc = prepare(p); });

       static InfoArgs i;
       CLI::App* inf =
           sub->add_subcommand("info", "Show a data set's meta, token counts and unigram entropy");
       inf->add_option("dir", i.dir, "data set folder (from `dseek data prepare`)");
       inf->add_flag("--json", i.json_out, "print JSON");
       inf->callback([rc] { *rc = info(i); });
     },
     60});

}  // namespace
