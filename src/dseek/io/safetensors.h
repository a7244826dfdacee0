// safetensors reader (mmap) and writer, plus sharded checkpoints (model.safetensors.index.json).
// Format: u64 little-endian header length N, then N bytes of JSON {name: {dtype, shape,
// data_offsets:[begin,end]}, "__metadata__": {str: str}}, then the raw little-endian data.
// Every malformed input (truncated file, bad JSON, offsets out of range or overlapping, size not
// matching dtype x shape, unknown dtype) throws dseek::Error naming the file and the tensor.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dseek/core/dtype.h"
#include "dseek/core/tensor.h"

namespace dseek {

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // points into the mmap; valid while the file object lives
  size_t nbytes = 0;
  int64_t numel() const { return Tensor::numel_of(shape); }
};

class SafeTensorsFile {
 public:
  static std::unique_ptr<SafeTensorsFile> open(const std::string& path);
  ~SafeTensorsFile();
  const std::string& path() const { return path_; }
  const TensorInfo* find(const std::string& name) const;  // nullptr if absent
  const TensorInfo& get(const std::string& name) const;   // throws if absent
  std::vector<std::string> names() const;                 // sorted
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafeTensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint folder: model.safetensors, or model.safetensors.index.json with its shards
// (or, failing both, every *.safetensors in the folder). Lookups go across all shards.
class Checkpoint {
 public:
  static std::unique_ptr<Checkpoint> open(const std::string& dir);
  const TensorInfo* find(const std::string& name) const;
  const TensorInfo& get(const std::string& name) const;
  bool has(const std::string& name) const { return find(name) != nullptr; }
  std::vector<std::string> names() const;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafeTensorsFile>> files_;
  std::map<std::string, const TensorInfo*> index_;
};

// Read a tensor into fp32 (any float/int dtype), checking its shape when `expect` is non-empty:
// a mismatch throws "tensor NAME has shape [a, b], expected [c, d]".
Tensor read_f32(const TensorInfo& t, const std::vector<int64_t>& expect = {});
std::vector<int64_t> read_i64(const TensorInfo& t);  // integer tensors (I64/I32/...) by value

struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;  // dtype_size(dtype) * numel bytes, little-endian
};

// Writes atomically: to PATH.tmp, fsync, rename over PATH. Tensors are stored sorted by name.
void safetensors_write(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace dseek
