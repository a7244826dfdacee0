// Fallback when the CUDA backend is not built (see device.cu for the real one).
#include "dseek/core/device.h"

#ifndef DSEEK_HAVE_CUDA
namespace dseek {
bool cuda_built() {
  return false;
}
std::vector<DeviceInfo> cuda_devices(std::string* why_none) {
  if (why_none)
    *why_none = "this dseek was built without the CUDA backend (no nvcc, or -DDSEEK_CUDA=OFF)";
  return {};
}
}  // namespace dseek
#endif
