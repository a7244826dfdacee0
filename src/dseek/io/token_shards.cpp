// Token shards: the atomic streaming writer, the validating mmap reader, data set folders and
// TokenLoader (format and semantics in token_shards.h). Little-endian hosts only (checked at
// compile time). Not here: tokenizing text and meta.json (cli/cmd_data.cpp).
#include "dseek/io/token_shards.h"

#include <fcntl.h>     // ::open, O_RDONLY
#include <sys/mman.h>  // mmap, munmap
#include <sys/stat.h>  // fstat
#include <unistd.h>    // ::close, fsync

#include <algorithm>   // sort, upper_bound
#include <bit>         // std::endian
#include <cerrno>      // errno
#include <cstring>     // memcpy, memcmp, strerror
#include <filesystem>  // directory listing

#include <nlohmann/json.hpp>  // loader state

#include "dseek/core/error.h"
#include "dseek/core/rng.h"

namespace dseek {

namespace fs = std::filesystem;
using json = nlohmann::json;

static_assert(std::endian::native == std::endian::little,
              "token shards are little-endian; a big-endian host would need byte swaps");

// ---------------------------------------------------------------------------------------------
// constants

constexpr size_t kWriteChunk = 1 << 16;  // tokens per fwrite
constexpr uint32_t kStateVersion = 1;    // of TokenLoader::state()
constexpr const char* kStateKind = "dseek.token_loader";

// ---------------------------------------------------------------------------------------------
// helpers

namespace {

std::string errno_str(int err) {
  return std::strerror(err);
}

template <typename T>
T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
void store_le(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

const char* mode_name(TokenLoaderMode m) {
  return m == TokenLoaderMode::TOKEN_LOADER_MODE_RANDOM ? "random" : "sequential";
}

// (random mode draws with splitmix64_next, core/rng.h: one u64 of state, so the loader state
// stays tiny)

}  // namespace

TokenWidth token_width_for_vocab(uint32_t vocab_size) {
  return vocab_size <= 65536u ? TokenWidth::TOKEN_WIDTH_U16 : TokenWidth::TOKEN_WIDTH_U32;
}

// ---------------------------------------------------------------------------------------------
// writer

TokenShardWriter::TokenShardWriter(const std::string& path, uint32_t vocab_size)
    : path_(path), tmp_(path + ".tmp"), vocab_size_(vocab_size) {
  DSEEK_CHECK(vocab_size > 0, "cannot write {}: vocab_size must be positive", path);
  width_ = token_width_for_vocab(vocab_size);
  fp_ = std::fopen(tmp_.c_str(), "wb");
  if (!fp_) fail("cannot write {}: {}", tmp_, errno_str(errno));
  uint8_t header[kTokenShardHeaderBytes] = {};  // filled in by finish()
  if (std::fwrite(header, 1, sizeof(header), fp_) != sizeof(header)) {
    int err = errno;
    abandon();
    fail("cannot write {}: {}", tmp_, errno_str(err));
  }
}

TokenShardWriter::~TokenShardWriter() {
  abandon();
}

void TokenShardWriter::abandon() {
  if (!fp_) return;
  std::fclose(fp_);
  fp_ = nullptr;
  std::remove(tmp_.c_str());
}

void TokenShardWriter::append(const int32_t* ids, size_t n) {
  DSEEK_CHECK(fp_ != nullptr, "cannot write {}: the shard is already finished", path_);
  const size_t w = (size_t)width_;
  for (size_t done = 0; done < n;) {
    size_t m = std::min(n - done, kWriteChunk);
    buf_.resize(m * w);
    for (size_t i = 0; i < m; i++) {
      int32_t id = ids[done + i];
      DSEEK_CHECK(id >= 0 && (uint32_t)id < vocab_size_,
                  "cannot write {}: token id {} is outside the vocabulary [0, {})", path_, id,
                  vocab_size_);
      if (width_ == TokenWidth::TOKEN_WIDTH_U16)
        store_le<uint16_t>(&buf_[i * 2], (uint16_t)id);
      else
        store_le<uint32_t>(&buf_[i * 4], (uint32_t)id);
    }
    if (std::fwrite(buf_.data(), 1, buf_.size(), fp_) != buf_.size()) {
      int err = errno;
      abandon();
      fail("cannot write {}: {}", tmp_, errno_str(err));
    }
    done += m;
    n_tokens_ += m;
  }
}

void TokenShardWriter::finish() {
  DSEEK_CHECK(fp_ != nullptr, "cannot write {}: the shard is already finished", path_);
  uint8_t header[kTokenShardHeaderBytes] = {};
  std::memcpy(header, kTokenShardMagic, sizeof(kTokenShardMagic));
  store_le<uint32_t>(header + 8, kTokenShardVersion);
  store_le<uint32_t>(header + 12, (uint32_t)width_);
  store_le<uint64_t>(header + 16, n_tokens_);
  store_le<uint32_t>(header + 24, vocab_size_);
  auto check = [&](bool ok, const char* what) {
    if (ok) return;
    int err = errno;
    abandon();
    fail("cannot write {}: {} failed: {}", tmp_, what, errno_str(err));
  };
  check(std::fseek(fp_, 0, SEEK_SET) == 0, "fseek");
  check(std::fwrite(header, 1, sizeof(header), fp_) == sizeof(header), "fwrite");
  check(std::fflush(fp_) == 0, "fflush");
  check(fsync(fileno(fp_)) == 0, "fsync");
  int rc = std::fclose(fp_);
  fp_ = nullptr;
  if (rc != 0) {
    int err = errno;
    std::remove(tmp_.c_str());
    fail("cannot write {}: fclose failed: {}", tmp_, errno_str(err));
  }
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    int err = errno;
    std::remove(tmp_.c_str());
    fail("cannot rename {} to {}: {}", tmp_, path_, errno_str(err));
  }
  // Make the rename durable (best effort: some filesystems refuse fsync on a directory).
  std::string dir = fs::path(path_).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY);
  if (dfd >= 0) {
    fsync(dfd);
    ::close(dfd);
  }
}

void token_shard_write(const std::string& path, const std::vector<int32_t>& ids,
                       uint32_t vocab_size) {
  TokenShardWriter w(path, vocab_size);
  w.append(ids.data(), ids.size());
  w.finish();
}

// ---------------------------------------------------------------------------------------------
// reader

std::unique_ptr<TokenShard> TokenShard::open(const std::string& path) {
  const char* hint = kTokenShardHint;
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail("cannot open token shard {}: {} {}", path, errno_str(errno), hint);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    fail("cannot stat {}: {}", path, errno_str(err));
  }
  const uint64_t size = (uint64_t)st.st_size;
  if (size < kTokenShardHeaderBytes) {
    ::close(fd);
    fail("{}: truncated token shard: {} bytes, the header alone is {} {}", path, size,
         kTokenShardHeaderBytes, hint);
  }
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);
  if (map == MAP_FAILED) fail("cannot mmap {}: {}", path, errno_str(map_err));
  std::unique_ptr<TokenShard> s(new TokenShard());
  s->path_ = path;
  s->map_ = map;
  s->map_size_ = size;
  const uint8_t* h = (const uint8_t*)map;

  DSEEK_CHECK(std::memcmp(h, kTokenShardMagic, sizeof(kTokenShardMagic)) == 0,
              "{}: not a dseek token shard (bad magic) {}", path, hint);
  uint32_t version = load_le<uint32_t>(h + 8);
  DSEEK_CHECK(version == kTokenShardVersion,
              "{}: token shard version {}, this dseek reads version {} {}", path, version,
              kTokenShardVersion, hint);
  uint32_t code = load_le<uint32_t>(h + 12);
  DSEEK_CHECK(code == 2 || code == 4,
              "{}: token shard dtype code {}, expected 2 (uint16) or 4 (uint32) {}", path, code,
              hint);
  s->width_ = (TokenWidth)code;
  s->n_tokens_ = load_le<uint64_t>(h + 16);
  s->vocab_size_ = load_le<uint32_t>(h + 24);
  DSEEK_CHECK(s->vocab_size_ > 0, "{}: token shard has vocab_size 0 {}", path, hint);
  DSEEK_CHECK(code == 4 || s->vocab_size_ <= 65536u,
              "{}: vocab_size {} does not fit 2-byte tokens (at most 65536) {}", path,
              s->vocab_size_, hint);
  uint64_t body = 0, want = 0;
  bool ok = !__builtin_mul_overflow(s->n_tokens_, (uint64_t)code, &body) &&
            !__builtin_add_overflow(body, (uint64_t)kTokenShardHeaderBytes, &want);
  DSEEK_CHECK(ok && size >= want,
              "{}: truncated token shard: the header says {} tokens ({} bytes in all) but the "
              "file has {} bytes {}",
              path, s->n_tokens_, ok ? fmt::format("{}", want) : std::string("too many"), size,
              hint);
  DSEEK_CHECK(size == want, "{}: {} bytes after the {} tokens the header announces {}", path,
              size - want, s->n_tokens_, hint);
  s->data_ = h + kTokenShardHeaderBytes;
  return s;
}

TokenShard::~TokenShard() {
  if (map_) munmap(map_, map_size_);
}

int32_t TokenShard::at(uint64_t i) const {
  if (width_ == TokenWidth::TOKEN_WIDTH_U16) return load_le<uint16_t>(data_ + i * 2);
  return (int32_t)load_le<uint32_t>(data_ + i * 4);
}

void TokenShard::read(int32_t* out, uint64_t start, uint64_t n) const {
  DSEEK_CHECK(start <= n_tokens_ && n <= n_tokens_ - start,
              "{}: read of tokens [{}, {}) is outside the shard's {} tokens", path_, start,
              start + n, n_tokens_);
  if (width_ == TokenWidth::TOKEN_WIDTH_U16) {
    const uint8_t* p = data_ + start * 2;
    for (uint64_t i = 0; i < n; i++) out[i] = load_le<uint16_t>(p + i * 2);
  } else {
    const uint8_t* p = data_ + start * 4;
    for (uint64_t i = 0; i < n; i++) out[i] = (int32_t)load_le<uint32_t>(p + i * 4);
  }
}

void TokenShard::check_ids() const {
  for (uint64_t i = 0; i < n_tokens_; i++) {
    uint32_t id = (uint32_t)at(i);
    DSEEK_CHECK(id < vocab_size_, "{}: token {} has id {}, not below vocab_size {} {}", path_, i,
                id, vocab_size_, kTokenShardHint);
  }
}

void TokenShard::count_ids(std::vector<uint64_t>* counts) const {
  if (counts->size() < vocab_size_) counts->resize(vocab_size_, 0);
  uint64_t* c = counts->data();
  for (uint64_t i = 0; i < n_tokens_; i++) {
    uint32_t id = (uint32_t)at(i);
    DSEEK_CHECK(id < vocab_size_, "{}: token {} has id {}, not below vocab_size {} {}", path_, i,
                id, vocab_size_, kTokenShardHint);
    c[id]++;
  }
}

// ---------------------------------------------------------------------------------------------
// data set folder

std::string token_dataset_shard_path(const std::string& dir, const std::string& split, int index) {
  return (fs::path(dir) / fmt::format("{}_{:03d}.bin", split, index)).string();
}

std::vector<std::string> token_dataset_shards(const std::string& dir, const std::string& split) {
  std::error_code ec;
  DSEEK_CHECK(fs::is_directory(dir, ec),
              "{}: no such data set folder (run `dseek data prepare "
              "--output {}`)",
              dir, dir);
  // split_NNN.bin with NNN all digits
  std::vector<std::pair<long, std::string>> found;
  const std::string prefix = split + "_";
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.size() <= prefix.size() + 4 || name.compare(0, prefix.size(), prefix) != 0) continue;
    if (name.compare(name.size() - 4, 4, ".bin") != 0) continue;
    std::string num = name.substr(prefix.size(), name.size() - prefix.size() - 4);
    if (num.size() > 9 || num.find_first_not_of("0123456789") != std::string::npos) continue;
    found.push_back({std::stol(num), e.path().string()});
  }
  DSEEK_CHECK(!ec, "cannot list {}: {}", dir, ec.message());
  DSEEK_CHECK(!found.empty(), "{}: no {}_*.bin token shards {}", dir, split, kTokenShardHint);
  std::sort(found.begin(), found.end());
  std::vector<std::string> paths;
  for (size_t i = 0; i < found.size(); i++) {
    DSEEK_CHECK(found[i].first == (long)i,
                "{}: shard {} is missing (the {} shards must be "
                "numbered from 000 without gaps) {}",
                dir, fs::path(token_dataset_shard_path(dir, split, (int)i)).filename().string(),
                split, kTokenShardHint);
    paths.push_back(found[i].second);
  }
  return paths;
}

TokenSplit TokenSplit::open(const std::string& dir, const std::string& split) {
  TokenSplit s;
  s.name_ = split;
  for (const std::string& p : token_dataset_shards(dir, split)) {
    s.shards_.push_back(TokenShard::open(p));
    const TokenShard& sh = *s.shards_.back();
    if (s.shards_.size() == 1) s.vocab_size_ = sh.vocab_size();
    DSEEK_CHECK(sh.vocab_size() == s.vocab_size_,
                "{}: vocab_size {} differs from the {} of {} (shards of two tokenizers mixed) {}",
                p, sh.vocab_size(), s.vocab_size_, s.shards_[0]->path(), kTokenShardHint);
    s.offsets_.push_back(s.offsets_.back() + sh.n_tokens());
  }
  return s;
}

void TokenSplit::read(int32_t* out, uint64_t start, uint64_t n) const {
  DSEEK_CHECK(start <= n_tokens() && n <= n_tokens() - start,
              "split {}: read of tokens [{}, {}) is outside its {} tokens", name_, start, start + n,
              n_tokens());
  // the shard holding `start`: the last offset <= start (skipping empty shards)
  size_t k = std::upper_bound(offsets_.begin(), offsets_.end(), start) - offsets_.begin() - 1;
  while (n > 0) {
    uint64_t local = start - offsets_[k];
    uint64_t m = std::min(n, shards_[k]->n_tokens() - local);
    shards_[k]->read(out, local, m);
    out += m;
    start += m;
    n -= m;
    k++;
  }
}

// ---------------------------------------------------------------------------------------------
// loader

TokenLoader::TokenLoader(const std::string& dir, const std::string& split, TokenLoaderMode mode,
                         uint64_t seed)
    : split_(TokenSplit::open(dir, split)), mode_(mode), seed_(seed), rng_(seed) {}

uint64_t TokenLoader::draw_below(uint64_t n) {
  // Lemire's multiply-shift with rejection: exactly uniform.
  unsigned __int128 m = (unsigned __int128)splitmix64_next(&rng_) * n;
  uint64_t low = (uint64_t)m;
  if (low < n) {
    uint64_t threshold = (0 - n) % n;
    while (low < threshold) {
      m = (unsigned __int128)splitmix64_next(&rng_) * n;
      low = (uint64_t)m;
    }
  }
  return (uint64_t)(m >> 64);
}

uint64_t TokenLoader::rows_per_pass(int T) const {
  uint64_t n = n_tokens();
  return T >= 1 && n >= (uint64_t)T + 1 ? (n - 1) / (uint64_t)T : 0;
}

int TokenLoader::next_batch(int B, int T, std::vector<int32_t>* out) {
  DSEEK_CHECK(B >= 1 && T >= 1, "next_batch: B = {} and T = {} must both be at least 1", B, T);
  const uint64_t n = n_tokens(), row = (uint64_t)T + 1;
  DSEEK_CHECK(n >= row,
              "split {} has {} tokens, fewer than the T+1 = {} one row needs (use a smaller "
              "context or more data) {}",
              split_.name(), n, row, kTokenShardHint);
  out->resize((size_t)B * row);
  int rows = 0;
  for (; rows < B; rows++) {
    uint64_t start;
    if (mode_ == TokenLoaderMode::TOKEN_LOADER_MODE_RANDOM) {
      start = draw_below(n - row + 1);
    } else {
      if (pos_ + row > n) break;
      start = pos_;
      pos_ += (uint64_t)T;
    }
    split_.read(out->data() + (size_t)rows * row, start, row);
    rows_++;
  }
  out->resize((size_t)rows * row);
  return rows;
}

void TokenLoader::reset() {
  rng_ = seed_;
  pos_ = 0;
  rows_ = 0;
}

std::string TokenLoader::state() const {
  json j = {{"kind", kStateKind},
            {"version", kStateVersion},
            {"split", split_.name()},
            {"mode", mode_name(mode_)},
            {"n_tokens", n_tokens()},
            {"vocab_size", vocab_size()},
            {"seed", seed_},
            {"rng", rng_},
            {"pos", pos_},
            {"rows", rows_}};
  return j.dump();
}

void TokenLoader::set_state(const std::string& state) {
  json j = json::parse(state, nullptr, /*allow_exceptions=*/false);
  DSEEK_CHECK(j.is_object() && j.value("kind", "") == kStateKind,
              "loader state is not a dseek token loader state (expected a JSON object with "
              "\"kind\": \"{}\")",
              kStateKind);
  try {
    uint32_t version = j.at("version").get<uint32_t>();
    DSEEK_CHECK(version == kStateVersion, "loader state version {}, this dseek reads version {}",
                version, kStateVersion);
    std::string split = j.at("split").get<std::string>(), mode = j.at("mode").get<std::string>();
    uint64_t n = j.at("n_tokens").get<uint64_t>();
    DSEEK_CHECK(split == split_.name(), "loader state is for split {}, this loader reads {}", split,
                split_.name());
    DSEEK_CHECK(mode == mode_name(mode_), "loader state is for {} batches, this loader draws {}",
                mode, mode_name(mode_));
    DSEEK_CHECK(n == n_tokens(),
                "loader state is for a {} split of {} tokens, this one has {} (was the data set "
                "prepared again?)",
                split, n, n_tokens());
    uint64_t pos = j.at("pos").get<uint64_t>();
    DSEEK_CHECK(pos <= n, "loader state position {} is past the split's {} tokens", pos, n);
    seed_ = j.at("seed").get<uint64_t>();
    rng_ = j.at("rng").get<uint64_t>();
    pos_ = pos;
    rows_ = j.at("rows").get<uint64_t>();
  } catch (const json::exception& e) {
    fail("loader state: {}", e.what());
  }
}

}  // namespace dseek
