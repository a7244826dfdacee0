// Tensor: an owned, contiguous, row-major fp32 array with a shape. The CPU backend's only
// activation/weight container (fp32 everywhere; other dtypes are converted on load).
// Deliberately minimal: no strides, no views, no autograd.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dseek/core/error.h"

namespace dseek {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;

  Tensor() = default;
  explicit Tensor(std::vector<int64_t> s) : shape(std::move(s)), data(numel_of(shape), 0.0f) {}

  static int64_t numel_of(const std::vector<int64_t>& s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
  }
  int64_t numel() const { return (int64_t)data.size(); }
  int64_t dim(int i) const { return shape.at(i < 0 ? shape.size() + i : i); }
  int ndim() const { return (int)shape.size(); }
  float* ptr() { return data.data(); }
  const float* ptr() const { return data.data(); }
  bool empty() const { return data.empty(); }
};

inline std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace dseek
