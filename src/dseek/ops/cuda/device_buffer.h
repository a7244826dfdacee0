// DeviceBuffer<T>: RAII ownership of n elements of device memory (cudaMalloc / cudaFree), with
// blocking copies to and from host vectors. Move-only. Nothing is initialized on allocation.
// Plain C++ (usable from .cpp tests).
#pragma once

#include <cuda_runtime_api.h>  // cudaMalloc, cudaFree, cudaMemcpy

#include <cstddef>
#include <utility>
#include <vector>

#include "dseek/ops/cuda/cuda_check.h"  // DSEEK_CUDA_CHECK

namespace dseek {

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) : n_(n) {
    if (n > 0) DSEEK_CUDA_CHECK(cudaMalloc((void**)&p_, n * sizeof(T)));
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() {
    if (p_) cudaFree(p_);  // no throw from a destructor
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(o.n_) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }

  T* get() { return p_; }
  const T* get() const { return p_; }
  size_t size() const { return n_; }
  size_t bytes() const { return n_ * sizeof(T); }

  void upload(const std::vector<T>& host) {  // host.size() must equal size()
    if (n_) DSEEK_CUDA_CHECK(cudaMemcpy(p_, host.data(), bytes(), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> h(n_);
    if (n_) DSEEK_CUDA_CHECK(cudaMemcpy(h.data(), p_, bytes(), cudaMemcpyDeviceToHost));
    return h;
  }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace dseek
