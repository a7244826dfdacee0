// Token shards and TokenLoader: the on-disk format round trip (uint16 and uint32 tokens), every
// damaged-file error (bad magic, version, dtype code, truncation, trailing bytes, ids outside the
// vocabulary, a missing shard), reads across shard boundaries, loader determinism for a seed,
// exact resume from a saved state, and a validation pass that covers the split once.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "dseek/core/error.h"
#include "dseek/io/token_shards.h"

namespace fs = std::filesystem;
using namespace dseek;

namespace {

// A fresh, empty folder under the test temp dir.
std::string fresh_dir(const std::string& name) {
  std::string d = testing::TempDir();
  d.append("/dseek_tok_").append(name).append("_").append(std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// ids[i] = (start + i) % vocab: a token tells its stream position.
std::vector<int32_t> ramp(size_t n, uint32_t vocab, size_t start = 0) {
  std::vector<int32_t> v(n);
  for (size_t i = 0; i < n; i++) v[i] = (int32_t)((start + i) % vocab);
  return v;
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_bytes(const std::string& path, const std::string& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(b.data(), (std::streamsize)b.size());
}

// The message of the dseek::Error that f throws ("" when it throws nothing).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_shard_error(const std::string& path, const std::string& needle) {
  std::string msg = error_of([&] { TokenShard::open(path); });
  ASSERT_FALSE(msg.empty()) << "no error for " << needle;
  EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("re-run `dseek data prepare`"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

// A data set folder with `sizes[k]` tokens in train_00k.bin: one ramp across all shards.
std::string make_split(const std::string& name, const std::vector<size_t>& sizes,
                       uint32_t vocab = 100000, const std::string& split = "train") {
  std::string d = fresh_dir(name);
  size_t start = 0;
  for (size_t k = 0; k < sizes.size(); k++) {
    token_shard_write(token_dataset_shard_path(d, split, (int)k), ramp(sizes[k], vocab, start),
                      vocab);
    start += sizes[k];
  }
  return d;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// format

TEST(TokenShards, RoundTripUint16) {
  std::string d = fresh_dir("u16");
  std::string p = d + "/train_000.bin";
  std::vector<int32_t> ids = ramp(1000, 3000, 2500);  // wraps: ids 2500..2999, 0..499
  token_shard_write(p, ids, 3000);
  EXPECT_FALSE(fs::exists(p + ".tmp"));
  EXPECT_EQ(fs::file_size(p), 256u + 2 * 1000);
  std::string b = read_bytes(p);
  EXPECT_EQ(b.substr(0, 8), "DSEEKTOK");
  uint32_t version, code, vocab;
  uint64_t n;
  std::memcpy(&version, &b[8], 4);
  std::memcpy(&code, &b[12], 4);
  std::memcpy(&n, &b[16], 8);
  std::memcpy(&vocab, &b[24], 4);
  EXPECT_EQ(version, 1u);
  EXPECT_EQ(code, 2u);
  EXPECT_EQ(n, 1000u);
  EXPECT_EQ(vocab, 3000u);
  EXPECT_EQ(b.find_first_not_of('\0', 28), 256u);  // rest of the header is zero

  auto s = TokenShard::open(p);
  EXPECT_EQ(s->n_tokens(), 1000u);
  EXPECT_EQ(s->vocab_size(), 3000u);
  EXPECT_EQ(s->width(), TokenWidth::TOKEN_WIDTH_U16);
  std::vector<int32_t> back(1000);
  s->read(back.data(), 0, 1000);
  EXPECT_EQ(back, ids);
  EXPECT_EQ(s->at(499), 2999);
  s->check_ids();
}

TEST(TokenShards, RoundTripUint32AndWidthBoundary) {
  EXPECT_EQ(token_width_for_vocab(65536), TokenWidth::TOKEN_WIDTH_U16);
  EXPECT_EQ(token_width_for_vocab(65537), TokenWidth::TOKEN_WIDTH_U32);
  std::string d = fresh_dir("u32");
  // 65536 ids still fit uint16 (largest id 65535)
  token_shard_write(d + "/a.bin", {0, 65535, 7}, 65536);
  auto a = TokenShard::open(d + "/a.bin");
  EXPECT_EQ(a->width(), TokenWidth::TOKEN_WIDTH_U16);
  EXPECT_EQ(a->at(1), 65535);
  // a DeepSeek-V3-sized vocabulary needs uint32
  std::vector<int32_t> ids = {0, 1, 65535, 65536, 129279, 100000};
  token_shard_write(d + "/b.bin", ids, 129280);
  EXPECT_EQ(fs::file_size(d + "/b.bin"), 256u + 4 * ids.size());
  auto b = TokenShard::open(d + "/b.bin");
  EXPECT_EQ(b->width(), TokenWidth::TOKEN_WIDTH_U32);
  std::vector<int32_t> back(ids.size());
  b->read(back.data(), 0, ids.size());
  EXPECT_EQ(back, ids);
  std::vector<uint64_t> counts;
  b->count_ids(&counts);
  EXPECT_EQ(counts.size(), 129280u);
  EXPECT_EQ(counts[65536], 1u);
}

TEST(TokenShards, EmptyShardIsValid) {
  std::string d = fresh_dir("empty");
  token_shard_write(d + "/val_000.bin", {}, 10);
  auto s = TokenShard::open(d + "/val_000.bin");
  EXPECT_EQ(s->n_tokens(), 0u);
  EXPECT_EQ(fs::file_size(d + "/val_000.bin"), 256u);
}

TEST(TokenShards, WriterRejectsIdsOutsideVocabAndLeavesNoFile) {
  std::string d = fresh_dir("badid");
  std::string msg = error_of([&] { token_shard_write(d + "/x.bin", {1, 2, 10}, 10); });
  EXPECT_NE(msg.find("token id 10 is outside the vocabulary [0, 10)"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { token_shard_write(d + "/x.bin", {-1}, 10); }), "");
  EXPECT_FALSE(fs::exists(d + "/x.bin"));
  EXPECT_FALSE(fs::exists(d + "/x.bin.tmp"));
}

TEST(TokenShards, DamagedFilesGiveOneLineErrorsWithHint) {
  std::string d = fresh_dir("damaged");
  std::string good = d + "/good.bin";
  token_shard_write(good, ramp(100, 50), 50);
  const std::string g = read_bytes(good);
  auto damaged = [&](const std::string& name, std::string bytes) {
    write_bytes(d + "/" + name, bytes);
    return d + "/" + name;
  };
  std::string b = g;
  b[0] = 'X';
  expect_shard_error(damaged("magic.bin", b), "not a dseek token shard (bad magic)");
  b = g;
  b[8] = 2;
  expect_shard_error(damaged("version.bin", b),
                     "token shard version 2, this dseek reads version 1");
  b = g;
  b[12] = 3;
  expect_shard_error(damaged("dtype.bin", b), "dtype code 3");
  expect_shard_error(damaged("cut.bin", g.substr(0, g.size() - 1)),
                     "the header says 100 tokens (456 bytes in all) but the file has 455 bytes");
  expect_shard_error(damaged("short.bin", g.substr(0, 100)),
                     "truncated token shard: 100 bytes, the header alone is 256");
  expect_shard_error(damaged("long.bin", g + "xx"), "2 bytes after the 100 tokens");
  b = g;
  std::memset(&b[16], 0xff, 8);  // n_tokens so large that the size overflows
  expect_shard_error(damaged("huge.bin", b), "truncated token shard");
  b = g;
  std::memset(&b[24], 0, 4);
  expect_shard_error(damaged("vocab0.bin", b), "vocab_size 0");
  expect_shard_error(d + "/missing.bin", "cannot open token shard");
}

TEST(TokenShards, IdsAtOrAboveVocabAreFoundOnDemand) {
  std::string d = fresh_dir("range");
  std::string p = d + "/train_000.bin";
  token_shard_write(p, ramp(100, 50), 50);
  std::string b = read_bytes(p);
  uint16_t bad = 50;
  std::memcpy(&b[256 + 2 * 37], &bad, 2);
  write_bytes(p, b);
  auto s = TokenShard::open(p);  // opening does not scan the tokens
  std::string msg = error_of([&] { s->check_ids(); });
  EXPECT_NE(msg.find("token 37 has id 50, not below vocab_size 50"), std::string::npos) << msg;
  EXPECT_NE(msg.find("re-run `dseek data prepare`"), std::string::npos) << msg;
  std::vector<uint64_t> counts;
  EXPECT_NE(error_of([&] { s->count_ids(&counts); }), "");
}

// ---------------------------------------------------------------------------------------------
// data set folders

TEST(TokenShards, SplitReadsAcrossShardsIncludingEmptyOnes) {
  std::string d = make_split("split", {10, 0, 7, 1, 20});
  TokenSplit s = TokenSplit::open(d, "train");
  ASSERT_EQ(s.n_tokens(), 38u);
  EXPECT_EQ(s.shards().size(), 5u);
  std::vector<int32_t> out(38);
  s.read(out.data(), 0, 38);
  EXPECT_EQ(out, ramp(38, 100000));
  for (uint64_t start = 0; start < 38; start++)
    for (uint64_t n : {0, 1, 2, 9}) {
      if (start + n > 38) continue;
      std::vector<int32_t> o(n);
      s.read(o.data(), start, n);
      EXPECT_EQ(o, ramp(n, 100000, start)) << start << "+" << n;
    }
  EXPECT_NE(error_of([&] { s.read(out.data(), 30, 9); }), "");
}

TEST(TokenShards, FolderErrors) {
  std::string d = make_split("gap", {5, 5, 5});
  fs::remove(d + "/train_001.bin");
  std::string msg = error_of([&] { TokenSplit::open(d, "train"); });
  EXPECT_NE(msg.find("shard train_001.bin is missing"), std::string::npos) << msg;
  msg = error_of([&] { TokenSplit::open(d, "val"); });
  EXPECT_NE(msg.find("no val_*.bin token shards"), std::string::npos) << msg;
  msg = error_of([&] { TokenSplit::open(d + "/nope", "train"); });
  EXPECT_NE(msg.find("no such data set folder"), std::string::npos) << msg;
  token_shard_write(d + "/train_001.bin", {1, 2}, 70000);  // another tokenizer's shard
  msg = error_of([&] { TokenSplit::open(d, "train"); });
  EXPECT_NE(msg.find("shards of two tokenizers mixed"), std::string::npos) << msg;
}

// ---------------------------------------------------------------------------------------------
// loader

TEST(TokenShards, LoaderRandomRowsAreWindowsAndDeterministic) {
  std::string d = make_split("rand", {30, 17, 3});  // 50 tokens
  const int B = 4, T = 4;
  TokenLoader a(d, "train", TokenLoaderMode::TOKEN_LOADER_MODE_RANDOM, 42);
  TokenLoader b(d, "train", TokenLoaderMode::TOKEN_LOADER_MODE_RANDOM, 42);
  TokenLoader c(d, "train", TokenLoaderMode::TOKEN_LOADER_MODE_RANDOM, 43);
  std::vector<int32_t> xa, xb, xc;
  std::set<int32_t> starts;
  bool differs = false;
  for (int step = 0; step < 2000; step++) {
    ASSERT_EQ(a.next_batch(B, T, &xa), B);
    b.next_batch(B, T, &xb);
    c.next_batch(B, T, &xc);
    ASSERT_EQ(xa, xb);
    differs |= xa != xc;
    ASSERT_EQ(xa.size(), (size_t)B * (T + 1));
    for (int r = 0; r < B; r++) {
      int32_t s0 = xa[r * (T + 1)];
      starts.insert(s0);
      for (int t = 0; t <= T; t++) ASSERT_EQ(xa[r * (T + 1) + t], s0 + t);  // a window
    }
  }
  EXPECT_TRUE(differs);
  // every start in [0, 50 - 5] is drawn, none past it
  EXPECT_EQ(starts.size(), 46u);
  EXPECT_EQ(*starts.begin(), 0);
  EXPECT_EQ(*starts.rbegin(), 45);
  a.reset();
  b.reset();
  a.next_batch(B, T, &xa);
  TokenLoader fresh(d, "train", TokenLoaderMode::TOKEN_LOADER_MODE_RANDOM, 42);
  fresh.next_batch(B, T, &xb);
  EXPECT_EQ(xa, xb);
}

TEST(TokenShards, LoaderResumesExactlyFromSavedState) {
  std::string d = make_split("resume", {1000, 333, 2000});
  for (auto mode :
       {TokenLoaderMode::TOKEN_LOADER_MODE_RANDOM, TokenLoaderMode::TOKEN_LOADER_MODE_SEQUENTIAL}) {
    TokenLoader whole(d, "train", mode, 7);
    TokenLoader first(d, "train", mode, 7);
    std::vector<std::vector<int32_t>> ref;
    std::vector<int32_t> x;
    for (int step = 0; step < 12; step++) {
      whole.next_batch(3, 16, &x);
      ref.push_back(x);
    }
    for (int step = 0; step < 5; step++) {
      first.next_batch(3, 16, &x);
      ASSERT_EQ(x, ref[step]);
    }
    std::string saved = first.state();  // "interrupted" here
    EXPECT_LT(saved.size(), 400u);
    // a new process: a fresh loader with another seed, then the saved state
    TokenLoader second(d, "train", mode, 999);
    second.set_state(saved);
    EXPECT_EQ(second.state(), saved);
    for (int step = 5; step < 12; step++) {
      second.next_batch(3, 16, &x);
      EXPECT_EQ(x, ref[step]) << "step " << step;
    }
  }
}

TEST(TokenShards, LoaderStateMismatchesAreErrors) {
  std::string d = make_split("state", {100});
  token_shard_write(token_dataset_shard_path(d, "val", 0), ramp(100, 100000), 100000);
  TokenLoader tr(d, "train", TokenLoaderMode::TOKEN_LOADER_MODE_RANDOM, 1);
  TokenLoader va(d, "val", TokenLoaderMode::TOKEN_LOADER_MODE_SEQUENTIAL);
  TokenLoader tr_seq(d, "train", TokenLoaderMode::TOKEN_LOADER_MODE_SEQUENTIAL);
  EXPECT_NE(error_of([&] { va.set_state(tr.state()); }).find("for split train"), std::string::npos);
  EXPECT_NE(error_of([&] { tr_seq.set_state(tr.state()); }).find("random batches"),
            std::string::npos);
  EXPECT_NE(error_of([&] { tr.set_state("{oops"); }).find("not a dseek token loader state"),
            std::string::npos);
  std::string other = make_split("state2", {101});
  TokenLoader bigger(other, "train", TokenLoaderMode::TOKEN_LOADER_MODE_RANDOM, 1);
  EXPECT_NE(error_of([&] { bigger.set_state(tr.state()); }).find("prepared again"),
            std::string::npos);
  std::vector<int32_t> x;
  EXPECT_NE(error_of([&] { tr.next_batch(1, 100, &x); }).find("fewer than the T+1 = 101"),
            std::string::npos);
  EXPECT_EQ(tr.next_batch(2, 99, &x), 2);  // exactly one window fits
  EXPECT_EQ(x[0], 0);
}

TEST(TokenShards, ValidationPassCoversTheSplitOnce) {
  std::string d = make_split("val", {40, 0, 23, 50}, 100000, "val");  // 113 tokens
  const int B = 3, T = 8;
  TokenLoader v(d, "val", TokenLoaderMode::TOKEN_LOADER_MODE_SEQUENTIAL);
  const uint64_t n = v.n_tokens(), rows_want = v.rows_per_pass(T);
  EXPECT_EQ(rows_want, (n - 1) / T);  // 14 rows, 112 targets
  for (int pass = 0; pass < 2; pass++) {
    std::vector<int> target_seen(n, 0);
    std::vector<int32_t> x;
    uint64_t rows = 0;
    int got;
    while ((got = v.next_batch(B, T, &x)) > 0) {
      ASSERT_EQ(x.size(), (size_t)got * (T + 1));
      for (int r = 0; r < got; r++) {
        ASSERT_EQ(x[r * (T + 1)], (int32_t)(rows * T));  // in order
        for (int t = 1; t <= T; t++) target_seen[x[r * (T + 1) + t]]++;
        rows++;
      }
    }
    EXPECT_EQ(rows, rows_want);
    for (uint64_t i = 1; i < n; i++)
      EXPECT_EQ(target_seen[i], i <= rows_want * T ? 1 : 0) << "token " << i;
    EXPECT_EQ(target_seen[0], 0);
    EXPECT_EQ(v.next_batch(B, T, &x), 0);  // stays over until reset
    v.reset();
  }
  // T divides n - 1: every token but the first is a target
  std::string e = make_split("val_exact", {33}, 100000, "val");
  TokenLoader w(e, "val", TokenLoaderMode::TOKEN_LOADER_MODE_SEQUENTIAL);
  EXPECT_EQ(w.rows_per_pass(8), 4u);
}
