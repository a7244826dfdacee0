// Tests for io/safetensors: write/read round trips for every dtype, the on-disk byte layout, the
// real v3_tiny fixtures, checkpoint folders (single file, index.json shards, *.safetensors glob),
// every malformed-file case the reader must reject (each message must name the file), and the
// atomic writer (PATH.tmp then rename).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dseek/core/error.h"
#include "dseek/io/safetensors.h"

namespace dseek {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// helpers

struct TempDir {  // a fresh directory, removed with everything in it at scope exit
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "dseek_st_XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), (std::streamsize)bytes.size());
}

// A raw safetensors file: u64 length `n` (the header's own length unless given), header, data.
void write_raw(const std::string& path, const std::string& header, const std::string& data,
               int64_t n = -1) {
  uint64_t len = n < 0 ? header.size() : (uint64_t)n;
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &len, 8);
  spit(path, bytes + header + data);
}

// Runs fn, expects a dseek::Error whose message contains every one of `parts`.
void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
    for (const std::string& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << p << " not in: " << msg;
    return;
  }
  ADD_FAILURE() << "no dseek::Error thrown; expected one mentioning " << parts.at(0);
}

void write_f32(const std::string& path, const std::vector<std::pair<std::string, float>>& ts) {
  std::vector<TensorToWrite> w;
  for (const auto& [name, v] : ts) w.push_back({name, DType::F32, {1}, &v});
  safetensors_write(path, w);
}

// ---------------------------------------------------------------------------------------------
// round trip and layout

TEST(SafeTensors, WriteReadEveryDTypeWithMetadata) {
  TempDir dir;
  std::string path = dir / "all.safetensors";
  const DType all[] = {DType::F64,     DType::F32,     DType::F16, DType::BF16,
                       DType::F8_E4M3, DType::F8_E5M2, DType::I64, DType::I32,
                       DType::I16,     DType::I8,      DType::U8,  DType::BOOL};
  std::vector<std::vector<uint8_t>> bufs;
  std::vector<TensorToWrite> ts;
  int k = 0;
  for (DType t : all) {
    std::vector<int64_t> shape = {3, k % 3 + 1};  // odd sizes: later tensors land unaligned
    size_t bytes = (size_t)(shape[0] * shape[1]) * dtype_size(t);
    std::vector<uint8_t> b(bytes);
    for (size_t i = 0; i < bytes; i++) b[i] = (uint8_t)(i * 7 + k);
    if (t == DType::BOOL)
      for (auto& x : b) x &= 1;
    bufs.push_back(std::move(b));
    ts.push_back({std::string("t.") + dtype_name(t), t, shape, nullptr});
    k++;
  }
  for (size_t i = 0; i < ts.size(); i++) ts[i].data = bufs[i].data();
  float scalar = 2.5f;
  ts.push_back({"scalar", DType::F32, {}, &scalar});
  ts.push_back({"empty", DType::BF16, {0, 4}, nullptr});
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "hello \"world\""}};
  safetensors_write(path, ts, meta);

  auto f = SafeTensorsFile::open(path);
  EXPECT_EQ(f->path(), path);
  EXPECT_EQ(f->metadata(), meta);
  std::vector<std::string> names = f->names();
  EXPECT_EQ(names.size(), ts.size());
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  for (size_t i = 0; i + 2 < ts.size(); i++) {
    const TensorInfo& t = f->get(ts[i].name);
    EXPECT_EQ(t.name, ts[i].name);
    EXPECT_EQ(t.dtype, ts[i].dtype);
    EXPECT_EQ(t.shape, ts[i].shape);
    ASSERT_EQ(t.nbytes, bufs[i].size());
    EXPECT_EQ(std::memcmp(t.data, bufs[i].data(), t.nbytes), 0) << t.name;
  }
  EXPECT_EQ(read_f32(f->get("scalar")).data, std::vector<float>{2.5f});
  EXPECT_EQ(f->get("scalar").shape, std::vector<int64_t>{});
  EXPECT_EQ(f->get("empty").nbytes, 0u);
  EXPECT_EQ(read_f32(f->get("empty")).numel(), 0);
  EXPECT_EQ(f->find("nope"), nullptr);
  expect_error([&] { f->get("nope"); }, {path, "nope"});

  // values: the I16 tensor by value via both readers
  const TensorInfo& i16 = f->get("t.I16");
  std::vector<int64_t> iv = read_i64(i16);
  Tensor fv = read_f32(i16);
  for (size_t i = 0; i < iv.size(); i++) {
    int16_t want;
    std::memcpy(&want, bufs[8].data() + 2 * i, 2);
    EXPECT_EQ(iv[i], want);
    EXPECT_EQ(fv.data[i], (float)want);
  }
  expect_error([&] { read_i64(f->get("t.F32")); }, {"t.F32", "F32"});
}

TEST(SafeTensors, ByteLayout) {
  TempDir dir;
  std::string path = dir / "tiny.safetensors";
  float a[3] = {1.0f, -2.0f, 0.5f};
  uint16_t b[1] = {0x3F80};
  safetensors_write(path, {{"b", DType::BF16, {1}, b}, {"a", DType::F32, {3}, a}});
  std::string bytes = slurp(path);
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(bytes.size(), 8 + n + 14);
  EXPECT_EQ(bytes[8], '{');
  EXPECT_EQ((8 + n) % 8, 0u);
  std::string header = bytes.substr(8, n);
  size_t close = header.rfind('}');
  EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos);  // space padding only
  json h = json::parse(header);
  EXPECT_FALSE(h.contains("__metadata__"));  // omitted when empty
  EXPECT_EQ(h["a"]["dtype"], "F32");
  EXPECT_EQ(h["a"]["shape"], json::array({3}));
  EXPECT_EQ(h["a"]["data_offsets"], json::array({0, 12}));  // sorted by name: a before b
  EXPECT_EQ(h["b"]["data_offsets"], json::array({12, 14}));
  EXPECT_EQ(std::memcmp(bytes.data() + 8 + n, a, 12), 0);
  EXPECT_EQ(std::memcmp(bytes.data() + 8 + n + 12, b, 2), 0);

  safetensors_write(path, {{"a", DType::F32, {3}, a}}, {{"k", "v"}});
  bytes = slurp(path);
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
  h = json::parse(bytes.substr(8, n));
  EXPECT_EQ(h["__metadata__"], json({{"k", "v"}}));
}

TEST(SafeTensors, WriterRejectsBadInput) {
  TempDir dir;
  std::string path = dir / "bad.safetensors";
  float v = 1;
  expect_error(
      [&] {
        safetensors_write(path, {{"x", DType::F32, {1}, &v}, {"x", DType::F32, {1}, &v}});
      },
      {path, "x"});
  expect_error([&] { safetensors_write(path, {{"x", DType::F32, {-1}, &v}}); }, {path, "x"});
  expect_error([&] { safetensors_write(path, {{"__metadata__", DType::F32, {1}, &v}}); }, {path});
  expect_error([&] { safetensors_write(path, {{"x", DType::F32, {2}, nullptr}}); }, {path, "x"});
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(SafeTensors, AtomicWrite) {
  TempDir dir;
  std::string path = dir / "w.safetensors";
  write_f32(path, {{"x", 1.0f}});
  EXPECT_TRUE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  write_f32(path, {{"y", 2.0f}, {"z", 3.0f}});  // replaces the existing file
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  auto f = SafeTensorsFile::open(path);
  EXPECT_EQ(f->names(), (std::vector<std::string>{"y", "z"}));
  EXPECT_EQ(read_f32(f->get("z")).data[0], 3.0f);
  // An unwritable destination throws and leaves nothing behind.
  std::string bad = dir / "no/such/dir/w.safetensors";
  expect_error([&] { write_f32(bad, {{"x", 1.0f}}); }, {bad + ".tmp", "No such file or directory"});
  EXPECT_FALSE(fs::exists(bad + ".tmp"));
}

// ---------------------------------------------------------------------------------------------
// real fixtures

TEST(SafeTensors, FixtureModel) {
  std::string path = DSEEK_FIXTURES "/v3_tiny/model.safetensors";
  auto f = SafeTensorsFile::open(path);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->names().size(), 139u);
  EXPECT_EQ(f->get("lm_head.weight").shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(f->get("model.embed_tokens.weight").dtype, DType::F32);
  EXPECT_EQ(f->get("model.layers.0.self_attn.kv_a_proj_with_mqa.weight").shape,
            (std::vector<int64_t>{40, 64}));
  EXPECT_EQ(f->get("model.layers.1.mlp.experts.0.gate_proj.weight").shape,
            (std::vector<int64_t>{32, 64}));
  const TensorInfo& gate = f->get("model.layers.1.mlp.gate.weight");
  EXPECT_EQ(gate.shape, (std::vector<int64_t>{16, 64}));
  EXPECT_EQ(read_f32(gate, {16, 64}).numel(), 16 * 64);
  expect_error(
      [&] {
        read_f32(gate, {16, 32});
      },
      {"tensor model.layers.1.mlp.gate.weight has shape [16, 64], expected [16, 32]"});
  Tensor norm = read_f32(f->get("model.norm.weight"), {64});
  EXPECT_FLOAT_EQ(norm.data[0], 1.077110767364502f);
  EXPECT_FLOAT_EQ(norm.data[3], 0.9009326100349426f);
}

TEST(SafeTensors, FixtureReferenceInputIds) {
  auto f = SafeTensorsFile::open(DSEEK_FIXTURES "/v3_tiny/reference.safetensors");
  const TensorInfo& ids = f->get("input_ids");
  EXPECT_EQ(ids.dtype, DType::I64);
  EXPECT_EQ(ids.shape, (std::vector<int64_t>{2, 24}));
  std::vector<int64_t> v = read_i64(ids);
  ASSERT_EQ(v.size(), 48u);
  EXPECT_EQ((std::vector<int64_t>(v.begin(), v.begin() + 4)),
            (std::vector<int64_t>{35, 331, 337, 28}));
  EXPECT_EQ(v.back(), 134);
  EXPECT_EQ(read_f32(ids).data[1], 331.0f);
  EXPECT_EQ(f->metadata().at("loss"), "6.4356789589");
}

TEST(Checkpoint, FixtureFolderUsesModelSafetensors) {
  auto c = Checkpoint::open(DSEEK_FIXTURES "/v3_tiny");
  EXPECT_TRUE(c->has("lm_head.weight"));
  EXPECT_FALSE(c->has("input_ids"));  // reference.safetensors is not part of the checkpoint
  EXPECT_EQ(c->names().size(), 139u);
  EXPECT_EQ(c->get("model.norm.weight").shape, (std::vector<int64_t>{64}));
  expect_error([&] { c->get("model.nope"); }, {"v3_tiny", "model.nope"});
}

// ---------------------------------------------------------------------------------------------
// checkpoint folders

void write_index(const std::string& path, const json& weight_map) {
  spit(path, json({{"metadata", {{"total_size", 12}}}, {"weight_map", weight_map}}).dump(2));
}

TEST(Checkpoint, ShardedViaIndex) {
  TempDir dir;
  write_f32(dir / "model-00001-of-00002.safetensors", {{"a", 1.0f}, {"b", 2.0f}});
  write_f32(dir / "model-00002-of-00002.safetensors", {{"c", 3.0f}});
  write_f32(dir / "unrelated.safetensors", {{"a", 9.0f}});  // not in the index: ignored
  write_index(dir / "model.safetensors.index.json", {{"a", "model-00001-of-00002.safetensors"},
                                                     {"b", "model-00001-of-00002.safetensors"},
                                                     {"c", "model-00002-of-00002.safetensors"}});
  auto c = Checkpoint::open(dir.path.string());
  EXPECT_EQ(c->dir(), dir.path.string());
  EXPECT_EQ(c->names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(read_f32(c->get("a")).data[0], 1.0f);
  EXPECT_EQ(read_f32(c->get("c")).data[0], 3.0f);
  EXPECT_FALSE(c->has("d"));
}

TEST(Checkpoint, IndexErrors) {
  TempDir dir;
  std::string index = dir / "model.safetensors.index.json";
  write_f32(dir / "s1.safetensors", {{"a", 1.0f}});
  write_f32(dir / "s2.safetensors", {{"b", 2.0f}, {"a", 5.0f}});
  write_index(index, {{"a", "s1.safetensors"}, {"x", "missing.safetensors"}});
  expect_error([&] { Checkpoint::open(dir.path.string()); }, {index, "missing.safetensors"});
  write_index(index, {{"a", "s1.safetensors"}, {"zz", "s1.safetensors"}});
  expect_error([&] { Checkpoint::open(dir.path.string()); }, {index, "zz", "s1.safetensors"});
  write_index(index, {{"a", "s1.safetensors"}, {"b", "s2.safetensors"}});  // "a" in both shards
  expect_error([&] { Checkpoint::open(dir.path.string()); },
               {"tensor a", "s1.safetensors", "s2.safetensors"});
  spit(index, "{\"weight_map\": ");
  expect_error([&] { Checkpoint::open(dir.path.string()); }, {index, "JSON"});
  spit(index, "{\"metadata\": {}}");
  expect_error([&] { Checkpoint::open(dir.path.string()); }, {index, "weight_map"});
}

TEST(Checkpoint, GlobFallbackAndErrors) {
  TempDir dir;
  expect_error([&] { Checkpoint::open(dir.path.string()); },
               {dir.path.string(), "no model.safetensors"});
  write_f32(dir / "part-b.safetensors", {{"y", 2.0f}});
  write_f32(dir / "part-a.safetensors", {{"x", 1.0f}});
  spit(dir / "notes.txt", "not a shard");
  auto c = Checkpoint::open(dir.path.string());
  EXPECT_EQ(c->names(), (std::vector<std::string>{"x", "y"}));
  write_f32(dir / "part-c.safetensors", {{"x", 3.0f}});
  expect_error([&] { Checkpoint::open(dir.path.string()); }, {"tensor x", "part-a", "part-c"});
  std::string missing = dir / "does-not-exist";
  expect_error([&] { Checkpoint::open(missing); }, {missing, "No such file or directory"});
  // a single file given directly is a one-file checkpoint
  c = Checkpoint::open(dir / "part-a.safetensors");
  EXPECT_EQ(c->names(), (std::vector<std::string>{"x"}));
}

// ---------------------------------------------------------------------------------------------
// malformed files

TEST(SafeTensors, MissingFile) {
  std::string path = "/nonexistent/dir/model.safetensors";
  expect_error([&] { SafeTensorsFile::open(path); },
               {"cannot open " + path + ": No such file or directory"});
  TempDir dir;
  expect_error([&] { SafeTensorsFile::open(dir.path.string()); }, {dir.path.string()});
}

struct Corruption {
  const char* what;
  std::string header;
  std::string data;
  std::vector<std::string> mentions;  // besides the file name
};

TEST(SafeTensors, RejectsEveryCorruption) {
  TempDir dir;
  std::string path = dir / "bad.safetensors";
  const std::string d16(16, '\0');
  const std::vector<Corruption> cases = {
      {"not JSON", "{not json", d16, {"JSON"}},
      {"empty header", "", d16, {"JSON"}},
      {"array", "[1, 2]", d16, {"object"}},
      {"entry not object", R"({"t": 5})", d16, {"t"}},
      {"no dtype", R"({"t": {"shape": [2], "data_offsets": [0, 8]}})", d16, {"t", "dtype"}},
      {"no shape", R"({"t": {"dtype": "F32", "data_offsets": [0, 8]}})", d16, {"t", "shape"}},
      {"no offsets", R"({"t": {"dtype": "F32", "shape": [2]}})", d16, {"t", "data_offsets"}},
      {"dtype type",
       R"({"t": {"dtype": 4, "shape": [2], "data_offsets": [0, 8]}})",
       d16,
       {"t", "dtype"}},
      {"shape type",
       R"({"t": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}})",
       d16,
       {"t", "shape"}},
      {"float dim",
       R"({"t": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}})",
       d16,
       {"t", "shape"}},
      {"offsets type",
       R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": ["0", "8"]}})",
       d16,
       {"t", "data_offsets"}},
      {"offsets len",
       R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})",
       d16,
       {"t", "data_offsets"}},
      {"negative offset",
       R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}})",
       d16,
       {"t", "data_offsets"}},
      {"unknown dtype",
       R"({"t": {"dtype": "F4", "shape": [2], "data_offsets": [0, 8]}})",
       d16,
       {"t", "F4"}},
      {"negative dim",
       R"({"t": {"dtype": "F32", "shape": [-1, 2], "data_offsets": [0, 8]}})",
       d16,
       {"t", "negative"}},
      {"huge shape",
       R"({"t": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})",
       d16,
       {"t"}},
      {"end < begin",
       R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})",
       d16,
       {"t", "[8, 0]"}},
      {"past data",
       R"({"t": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}})",
       d16,
       {"t", "beyond"}},
      {"size mismatch",
       R"({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})",
       d16,
       {"t", "[3]"}},
      {"overlap",
       R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
       d16,
       {"overlap", "a", "b"}},
      {"metadata type", R"({"__metadata__": {"k": 1}})", d16, {"__metadata__"}},
      {"metadata not object", R"({"__metadata__": [1]})", d16, {"__metadata__"}},
  };
  for (const Corruption& c : cases) {
    SCOPED_TRACE(c.what);
    write_raw(path, c.header, c.data);
    std::vector<std::string> parts = c.mentions;
    parts.push_back(path);
    expect_error([&] { SafeTensorsFile::open(path); }, parts);
  }
  // The valid baseline of those cases opens fine (so each case fails for its own reason).
  write_raw(path, R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})",
            d16);
  EXPECT_EQ(SafeTensorsFile::open(path)->names().size(), 2u);
}

TEST(SafeTensors, RejectsBadLengths) {
  TempDir dir;
  std::string path = dir / "bad.safetensors";
  spit(path, "abc");  // shorter than the 8-byte length
  expect_error([&] { SafeTensorsFile::open(path); }, {path, "3 bytes"});
  spit(path, "");
  expect_error([&] { SafeTensorsFile::open(path); }, {path, "0 bytes"});
  write_raw(path, "{}", "", 1000);  // longer than the file
  expect_error([&] { SafeTensorsFile::open(path); }, {path, "1000"});
  write_raw(path, "{}", "", 1LL << 40);  // absurd
  expect_error([&] { SafeTensorsFile::open(path); }, {path, "absurd"});
  write_raw(path, "{}", "");  // the smallest valid file
  EXPECT_TRUE(SafeTensorsFile::open(path)->names().empty());
}

}  // namespace
}  // namespace dseek
