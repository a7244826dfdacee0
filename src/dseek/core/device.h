// CUDA devices visible to this build. Without the CUDA backend (no nvcc at build time) the list
// is empty and cuda_built() is false; with it, the list comes from the CUDA runtime (empty when
// the machine has no GPU or no driver).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dseek {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int64_t memory_bytes = 0;
  int cc_major = 0, cc_minor = 0, sm_count = 0;
};

bool cuda_built();
std::vector<DeviceInfo> cuda_devices(std::string* why_none = nullptr);

}  // namespace dseek
