// CUDA device discovery through the runtime API (built only when nvcc is found).
#include <cuda_runtime.h>

#include "dseek/core/device.h"

namespace dseek {

bool cuda_built() {
  return true;
}

std::vector<DeviceInfo> cuda_devices(std::string* why_none) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why_none) *why_none = std::string("CUDA runtime: ") + cudaGetErrorString(e);
    return {};
  }
  std::vector<DeviceInfo> out;
  for (int i = 0; i < n; i++) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    out.push_back({i, p.name, (int64_t)p.totalGlobalMem, p.major, p.minor, p.multiProcessorCount});
  }
  if (out.empty() && why_none) *why_none = "no CUDA device found";
  return out;
}

}  // namespace dseek
