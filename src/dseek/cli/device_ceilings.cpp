// Measured GEMM and copy ceilings of the CUDA device (see device_ceilings.h).
#include "dseek/cli/device_ceilings.h"

#ifdef DSEEK_HAVE_CUDA
#include <cuda_runtime_api.h>

#include <algorithm>
#include <vector>

#include "dseek/ops/cuda/bf16.h"
#include "dseek/ops/cuda/cuda_check.h"
#include "dseek/ops/cuda/device_buffer.h"
#include "dseek/ops/cuda/gemm_lt.h"

namespace dseek::cli {

namespace {

// Median milliseconds of run() over 10 timed calls after 3 warm-ups.
template <class F>
double median_ms(F run) {
  cudaEvent_t e0, e1;
  DSEEK_CUDA_CHECK(cudaEventCreate(&e0));
  DSEEK_CUDA_CHECK(cudaEventCreate(&e1));
  std::vector<float> ms;
  for (int i = 0; i < 13; i++) {
    DSEEK_CUDA_CHECK(cudaEventRecord(e0, 0));
    run();
    DSEEK_CUDA_CHECK(cudaEventRecord(e1, 0));
    DSEEK_CUDA_CHECK(cudaEventSynchronize(e1));
    float t = 0;
    DSEEK_CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
    if (i >= 3) ms.push_back(t);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

double gemm_ceiling_tflops(int64_t n) {
  DeviceBuffer<bf16_t> a(n * n), b(n * n), d(n * n);
  DSEEK_CUDA_CHECK(cudaMemset(a.get(), 0x3c, a.bytes()));  // ~0.0115 everywhere (finite)
  DSEEK_CUDA_CHECK(cudaMemset(b.get(), 0x3c, b.bytes()));
  cuda::GemmLt g;
  const double ms = median_ms([&] {
    cuda::gemm_lt_nt(g, d.get(), n, cuda::GemmOut::BF16, a.get(), n, b.get(), n, n, n, n, 0.0f, 0);
  });
  return 2.0 * n * n * n / (ms * 1e-3) / 1e12;
}

double copy_bandwidth_gbs() {
  const size_t n = size_t(1) << 30;
  DeviceBuffer<uint8_t> a(n), b(n);
  DSEEK_CUDA_CHECK(cudaMemset(a.get(), 1, n));
  const double ms = median_ms(
      [&] { DSEEK_CUDA_CHECK(cudaMemcpyAsync(b.get(), a.get(), n, cudaMemcpyDeviceToDevice, 0)); });
  return 2.0 * (double)n / (ms * 1e-3) / 1e9;
}

}  // namespace dseek::cli
#endif
