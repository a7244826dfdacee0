// safetensors: a validating mmap reader, an atomic writer, and checkpoint folders (one file,
// an index.json with shards, or every *.safetensors in the folder).
// Layout: u64 little-endian N | N bytes of JSON header | data section. Each entry is
// {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]} with offsets relative to the data
// section; "__metadata__" maps strings to strings. The writer stores tensors contiguously, sorted
// by name, and pads the header with spaces so the data section starts at a multiple of 8 (as the
// reference implementation, huggingface/safetensors, does). The reader tolerates gaps and trailing
// bytes but rejects overlaps. Not here: dtype conversion (core/dtype.cpp), FP8 scales (ops/).
#include "dseek/io/safetensors.h"

#include <fcntl.h>     // ::open, O_RDONLY
#include <sys/mman.h>  // mmap, munmap
#include <sys/stat.h>  // fstat
#include <unistd.h>    // ::close, fsync

#include <algorithm>   // sort
#include <cerrno>      // errno
#include <cstdio>      // FILE, fopen, fwrite, rename
#include <cstring>     // memcpy, strerror
#include <filesystem>  // directory listing, existence checks
#include <fstream>     // reading index.json
#include <limits>      // numeric_limits
#include <sstream>     // ostringstream
#include <tuple>       // overlap check spans

#include <nlohmann/json.hpp>  // header parsing and writing

namespace dseek {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// constants

constexpr uint64_t kHeaderMax = 100'000'000;  // bytes; huggingface/safetensors uses the same limit
constexpr size_t kDataAlign = 8;              // the data section starts at a multiple of this

// ---------------------------------------------------------------------------------------------
// header validation

namespace {

std::string errno_str(int err) {
  return std::strerror(err);
}

// a * b with overflow detection (false on overflow).
bool mul_ok(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}

// Parse and check one tensor entry of file `path`; `data`/`data_size` is the data section.
TensorInfo header_entry_parse(const std::string& path, const std::string& name, const json& e,
                              const uint8_t* data, uint64_t data_size, uint64_t* begin_out) {
  DSEEK_CHECK(e.is_object(), "{}: tensor {}: header entry is not a JSON object", path, name);
  TensorInfo t;
  t.name = name;

  auto dt = e.find("dtype");
  DSEEK_CHECK(dt != e.end(), "{}: tensor {}: header entry has no \"dtype\"", path, name);
  DSEEK_CHECK(dt->is_string(), "{}: tensor {}: \"dtype\" is not a string", path, name);
  DSEEK_CHECK(dtype_from_name(dt->get<std::string>(), &t.dtype), "{}: tensor {}: unknown dtype {}",
              path, name, dt->get<std::string>());

  auto sh = e.find("shape");
  DSEEK_CHECK(sh != e.end(), "{}: tensor {}: header entry has no \"shape\"", path, name);
  DSEEK_CHECK(sh->is_array(), "{}: tensor {}: \"shape\" is not an array", path, name);
  uint64_t numel = 1;
  for (const json& d : *sh) {
    DSEEK_CHECK(d.is_number_integer(), "{}: tensor {}: shape {} has a non-integer dimension", path,
                name, sh->dump());
    DSEEK_CHECK(d.is_number_unsigned(), "{}: tensor {}: shape {} has a negative dimension", path,
                name, sh->dump());
    uint64_t v = d.get<uint64_t>();
    DSEEK_CHECK(v <= (uint64_t)std::numeric_limits<int64_t>::max() && mul_ok(numel, v, &numel),
                "{}: tensor {}: shape {} is too large", path, name, sh->dump());
    t.shape.push_back((int64_t)v);
  }

  auto off = e.find("data_offsets");
  DSEEK_CHECK(off != e.end(), "{}: tensor {}: header entry has no \"data_offsets\"", path, name);
  DSEEK_CHECK(off->is_array() && off->size() == 2 && (*off)[0].is_number_unsigned() &&
                  (*off)[1].is_number_unsigned(),
              "{}: tensor {}: \"data_offsets\" {} is not two non-negative integers", path, name,
              off->dump());
  uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
  DSEEK_CHECK(begin <= end, "{}: tensor {}: data_offsets [{}, {}] end before begin", path, name,
              begin, end);
  DSEEK_CHECK(end <= data_size,
              "{}: tensor {}: data_offsets [{}, {}] beyond the data section ({} bytes)", path, name,
              begin, end, data_size);
  uint64_t nbytes = 0;
  DSEEK_CHECK(mul_ok(numel, dtype_size(t.dtype), &nbytes) && nbytes == end - begin,
              "{}: tensor {}: data_offsets [{}, {}] hold {} bytes, but {} {} needs {}", path, name,
              begin, end, end - begin, dtype_name(t.dtype), shape_str(t.shape),
              (double)numel * (double)dtype_size(t.dtype));
  t.data = data + begin;
  t.nbytes = (size_t)nbytes;
  *begin_out = begin;
  return t;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// SafeTensorsFile

std::unique_ptr<SafeTensorsFile> SafeTensorsFile::open(const std::string& path) {
  std::unique_ptr<SafeTensorsFile> f(new SafeTensorsFile());
  f->path_ = path;

  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open {}: {}", path, errno_str(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    fail("cannot open {}: {}", path, errno_str(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("cannot open {}: {}", path, errno_str(S_ISDIR(st.st_mode) ? EISDIR : EINVAL));
  }
  uint64_t size = (uint64_t)st.st_size;
  if (size < 8) {
    ::close(fd);
    fail("{}: file is {} bytes, too short for a safetensors header (8-byte length + JSON)", path,
         size);
  }
  void* m = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);
  if (m == MAP_FAILED) fail("cannot map {}: {}", path, errno_str(map_err));
  f->map_ = m;  // from here on the destructor unmaps, also when a check below throws
  f->map_size_ = size;
  const uint8_t* base = static_cast<const uint8_t*>(m);

  uint64_t n;
  std::memcpy(&n, base, 8);
  DSEEK_CHECK(n <= kHeaderMax, "{}: header length {} is absurd (limit {}): not a safetensors file?",
              path, n, kHeaderMax);
  DSEEK_CHECK(n <= size - 8, "{}: header length {} runs past the end of the file ({} bytes)", path,
              n, size);
  json h;
  const char* hb = reinterpret_cast<const char*>(base + 8);
  try {
    h = json::parse(hb, hb + n);
  } catch (const json::exception& e) {
    fail("{}: header is not valid JSON: {}", path, e.what());
  }
  DSEEK_CHECK(h.is_object(), "{}: header is not a JSON object", path);

  const uint8_t* data = base + 8 + n;
  uint64_t data_size = size - 8 - n;
  std::vector<std::tuple<uint64_t, uint64_t, std::string>> spans;  // begin, end, name
  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key() == "__metadata__") {
      DSEEK_CHECK(it->is_object(), "{}: __metadata__ is not a JSON object", path);
      for (auto m2 = it->begin(); m2 != it->end(); ++m2) {
        DSEEK_CHECK(m2->is_string(), "{}: __metadata__ value for {} is not a string", path,
                    m2.key());
        f->metadata_[m2.key()] = m2->get<std::string>();
      }
      continue;
    }
    uint64_t begin = 0;
    TensorInfo t = header_entry_parse(path, it.key(), *it, data, data_size, &begin);
    if (t.nbytes > 0) spans.emplace_back(begin, begin + t.nbytes, t.name);
    f->tensors_.emplace(it.key(), std::move(t));
  }

  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); i++) {
    auto& [b0, e0, n0] = spans[i - 1];
    auto& [b1, e1, n1] = spans[i];
    DSEEK_CHECK(b1 >= e0, "{}: tensor {}: data_offsets [{}, {}] overlap tensor {} [{}, {}]", path,
                n1, b1, e1, n0, b0, e0);
  }
  return f;
}

SafeTensorsFile::~SafeTensorsFile() {
  if (map_) munmap(map_, map_size_);
}

const TensorInfo* SafeTensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const TensorInfo& SafeTensorsFile::get(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) fail("{}: no tensor named {}", path_, name);
  return *t;
}

std::vector<std::string> SafeTensorsFile::names() const {
  std::vector<std::string> r;
  r.reserve(tensors_.size());
  for (const auto& kv : tensors_) r.push_back(kv.first);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Checkpoint

namespace {

// The shard files that model.safetensors.index.json names, and its weight_map (tensor -> shard).
std::vector<std::string> checkpoint_index_read(const std::string& index_path,
                                               std::map<std::string, std::string>* weight_map) {
  std::ifstream in(index_path);
  if (!in) fail("cannot open {}: {}", index_path, errno_str(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  json h;
  try {
    h = json::parse(ss.str());
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", index_path, e.what());
  }
  DSEEK_CHECK(h.is_object() && h.contains("weight_map") && h["weight_map"].is_object(),
              "{}: no \"weight_map\" object", index_path);
  std::vector<std::string> shards;
  for (auto it = h["weight_map"].begin(); it != h["weight_map"].end(); ++it) {
    DSEEK_CHECK(it->is_string(), "{}: weight_map entry for {} is not a string", index_path,
                it.key());
    std::string shard = it->get<std::string>();
    (*weight_map)[it.key()] = shard;
    if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
  }
  std::sort(shards.begin(), shards.end());
  return shards;
}

}  // namespace

std::unique_ptr<Checkpoint> Checkpoint::open(const std::string& dir) {
  auto c = std::make_unique<Checkpoint>();
  c->dir_ = dir;
  std::error_code ec;
  fs::file_status st = fs::status(dir, ec);
  if (!fs::exists(st)) {
    fail("cannot open checkpoint {}: {}", dir,
         ec && ec != std::errc::no_such_file_or_directory ? ec.message() : errno_str(ENOENT));
  }

  std::vector<std::string> files;  // paths
  std::string index_path;
  std::map<std::string, std::string> weight_map;  // tensor -> shard file name (from the index)
  if (fs::is_regular_file(st)) {                  // a single .safetensors file given directly
    c->dir_ = fs::path(dir).parent_path().string();
    files.push_back(dir);
  } else if (!fs::is_directory(st)) {
    fail("cannot open checkpoint {}: not a directory or file", dir);
  } else if (fs::exists(fs::path(dir) / "model.safetensors")) {
    files.push_back((fs::path(dir) / "model.safetensors").string());
  } else if (fs::exists(fs::path(dir) / "model.safetensors.index.json")) {
    index_path = (fs::path(dir) / "model.safetensors.index.json").string();
    for (const std::string& shard : checkpoint_index_read(index_path, &weight_map)) {
      std::string p = (fs::path(dir) / shard).string();
      DSEEK_CHECK(fs::exists(p), "{}: weight_map names shard {}, which does not exist", index_path,
                  p);
      files.push_back(p);
    }
  } else {
    for (const auto& de : fs::directory_iterator(dir)) {
      if (de.path().extension() == ".safetensors" && de.is_regular_file()) {
        files.push_back(de.path().string());
      }
    }
    std::sort(files.begin(), files.end());
  }
  DSEEK_CHECK(!files.empty(),
              "{}: no model.safetensors, model.safetensors.index.json or *.safetensors file", dir);

  std::map<std::string, const SafeTensorsFile*> by_path;
  for (const std::string& p : files) {
    c->files_.push_back(SafeTensorsFile::open(p));
    const SafeTensorsFile* f = c->files_.back().get();
    by_path[p] = f;
    for (const std::string& name : f->names()) {
      const TensorInfo* t = f->find(name);
      auto [it, inserted] = c->index_.emplace(name, t);
      if (!inserted) {
        for (const auto& other : c->files_) {
          if (other->find(name) == it->second) {
            fail("{}: tensor {} is in two shards: {} and {}", dir, name, other->path(), p);
          }
        }
      }
    }
  }
  for (const auto& [name, shard] : weight_map) {
    const SafeTensorsFile* f = by_path.at((fs::path(dir) / shard).string());
    DSEEK_CHECK(f->find(name), "{}: tensor {} is mapped to {}, which does not contain it",
                index_path, name, f->path());
  }
  return c;
}

const TensorInfo* Checkpoint::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

const TensorInfo& Checkpoint::get(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) fail("checkpoint {}: no tensor named {}", dir_, name);
  return *t;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> r;
  r.reserve(index_.size());
  for (const auto& kv : index_) r.push_back(kv.first);
  return r;
}

// ---------------------------------------------------------------------------------------------
// reading tensors

Tensor read_f32(const TensorInfo& t, const std::vector<int64_t>& expect) {
  DSEEK_CHECK(expect.empty() || t.shape == expect, "tensor {} has shape {}, expected {}", t.name,
              shape_str(t.shape), shape_str(expect));
  DSEEK_CHECK(t.nbytes == (size_t)t.numel() * dtype_size(t.dtype),
              "tensor {}: {} bytes do not match {} {}", t.name, t.nbytes, dtype_name(t.dtype),
              shape_str(t.shape));
  Tensor r(t.shape);
  convert_to_f32(r.ptr(), t.data, t.dtype, (size_t)r.numel());
  return r;
}

std::vector<int64_t> read_i64(const TensorInfo& t) {
  DSEEK_CHECK(t.nbytes == (size_t)t.numel() * dtype_size(t.dtype),
              "tensor {}: {} bytes do not match {} {}", t.name, t.nbytes, dtype_name(t.dtype),
              shape_str(t.shape));
  size_t n = (size_t)t.numel();
  std::vector<int64_t> r(n);
  const uint8_t* p = t.data;
  auto load = [&]<typename T>(T*) {  // the pointer only carries the type
    for (size_t i = 0; i < n; i++) {
      T v;
      std::memcpy(&v, p + i * sizeof(T), sizeof(T));
      r[i] = (int64_t)v;
    }
  };
  switch (t.dtype) {
    case DType::I64:
      load((int64_t*)nullptr);
      break;
    case DType::I32:
      load((int32_t*)nullptr);
      break;
    case DType::I16:
      load((int16_t*)nullptr);
      break;
    case DType::I8:
      load((int8_t*)nullptr);
      break;
    case DType::U8:
      load((uint8_t*)nullptr);
      break;
    case DType::BOOL:
      for (size_t i = 0; i < n; i++) r[i] = p[i] ? 1 : 0;
      break;
    default:
      fail("tensor {} has dtype {}, expected an integer dtype", t.name, dtype_name(t.dtype));
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// writing

void safetensors_write(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorToWrite*> order;
  for (const TensorToWrite& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](const TensorToWrite* a, const TensorToWrite* b) { return a->name < b->name; });

  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::vector<uint64_t> sizes;
  uint64_t offset = 0;
  for (size_t i = 0; i < order.size(); i++) {
    const TensorToWrite& t = *order[i];
    DSEEK_CHECK(t.name != "__metadata__" && !t.name.empty(), "{}: invalid tensor name \"{}\"", path,
                t.name);
    DSEEK_CHECK(i == 0 || order[i - 1]->name != t.name, "{}: tensor {} given twice", path, t.name);
    uint64_t bytes = dtype_size(t.dtype);
    for (int64_t d : t.shape) {
      DSEEK_CHECK(d >= 0, "{}: tensor {} has a negative dimension in {}", path, t.name,
                  shape_str(t.shape));
      bytes *= (uint64_t)d;
    }
    DSEEK_CHECK(bytes == 0 || t.data, "{}: tensor {} has no data", path, t.name);
    h[t.name] = {{"dtype", dtype_name(t.dtype)},
                 {"shape", t.shape},
                 {"data_offsets", {offset, offset + bytes}}};
    sizes.push_back(bytes);
    offset += bytes;
  }
  std::string header = h.dump();
  header.append((kDataAlign - header.size() % kDataAlign) % kDataAlign, ' ');
  uint64_t n = header.size();

  std::string tmp = path + ".tmp";
  FILE* fp = std::fopen(tmp.c_str(), "wb");
  if (!fp) fail("cannot write {}: {}", tmp, errno_str(errno));
  auto abandon = [&](const char* what) {
    int err = errno;
    std::fclose(fp);
    std::remove(tmp.c_str());
    fail("cannot write {}: {} failed: {}", tmp, what, errno_str(err));
  };
  uint8_t len[8];
  std::memcpy(len, &n, 8);
  if (std::fwrite(len, 1, 8, fp) != 8) abandon("fwrite");
  if (std::fwrite(header.data(), 1, n, fp) != n) abandon("fwrite");
  for (size_t i = 0; i < order.size(); i++) {
    if (sizes[i] && std::fwrite(order[i]->data, 1, sizes[i], fp) != sizes[i]) abandon("fwrite");
  }
  if (std::fflush(fp) != 0) abandon("fflush");
  if (fsync(fileno(fp)) != 0) abandon("fsync");
  if (std::fclose(fp) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    fail("cannot write {}: fclose failed: {}", tmp, errno_str(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    fail("cannot rename {} to {}: {}", tmp, path, errno_str(err));
  }
  // Make the rename itself durable (best effort: some filesystems refuse fsync on a directory).
  std::string parent = fs::path(path).parent_path().string();
  int dfd = ::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace dseek
