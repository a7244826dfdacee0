// Shared kit for the CUDA-vs-CPU op tests (tests/cuda/*_test.cpp): the skip rule, seeded bf16
// inputs, NaN poisoning of outputs, and one comparison that reports the worst element.
//
// Comparison rule: |got - ref| <= atol + rtol * |ref| for every element, no NaN/inf where the
// reference is finite (a NaN left by the poisoning means an element was never written), plus the
// normwise error ||got - ref|| / ||ref|| printed (and bounded by nrm_tol).
// bf16 keeps 8 significant bits: rounding one fp32 value to bf16 moves it by at most 2^-9
// relative; kBf16Rtol = 2^-8 allows one such rounding plus a flip at a rounding boundary caused by
// fp32 differences in how the value was accumulated.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dseek/core/device.h"  // cuda_devices
#include "dseek/core/dtype.h"   // f32_to_bf16, bf16_to_f32

#ifdef DSEEK_HAVE_CUDA
#include <cuda_runtime_api.h>  // cudaMemset

#include "dseek/ops/cuda/device_buffer.h"  // DeviceBuffer
#endif

namespace dseek::test {

constexpr double kBf16Rtol = 1.0 / 256.0;

// GTEST_SKIP()s, saying why, when this build has no CUDA backend or the machine no device.
#define DSEEK_REQUIRE_CUDA()                                           \
  do {                                                                 \
    std::string why_;                                                  \
    if (::dseek::cuda_devices(&why_).empty())                          \
      GTEST_SKIP() << "no CUDA device: " << why_ << " (test skipped)"; \
  } while (0)

// n values, each a bf16 (bits) and the same value as fp32 (f), uniform in [lo, hi).
struct Bf16Vec {
  std::vector<uint16_t> bits;
  std::vector<float> f;
};
inline Bf16Vec random_bf16(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  Bf16Vec v;
  v.bits.resize(n);
  v.f.resize(n);
  for (size_t i = 0; i < n; i++) {
    v.bits[i] = f32_to_bf16(d(rng));
    v.f[i] = bf16_to_f32(v.bits[i]);
  }
  return v;
}
inline std::vector<float> random_f32(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
inline std::vector<float> to_f32(const std::vector<uint16_t>& bits) {
  std::vector<float> f(bits.size());
  for (size_t i = 0; i < bits.size(); i++) f[i] = bf16_to_f32(bits[i]);
  return f;
}
inline double rms(const std::vector<float>& v) {
  double s = 0.0;
  for (float x : v) s += (double)x * x;
  return v.empty() ? 0.0 : std::sqrt(s / (double)v.size());
}

// Compares two dense vectors elementwise; returns the normwise relative error.
inline double expect_close(const std::string& what, const std::vector<float>& got,
                           const std::vector<float>& ref, double rtol, double atol,
                           double nrm_tol = 1.0) {
  EXPECT_EQ(got.size(), ref.size()) << what;
  size_t bad = 0, worst = 0, nonfinite = 0;
  double worst_excess = -1.0, num = 0.0, den = 0.0;
  for (size_t i = 0; i < got.size() && i < ref.size(); i++) {
    const double g = got[i], r = ref[i];
    if (!std::isfinite(r)) {  // the reference's non-finite values must be reproduced
      if (!(std::isnan(r) ? std::isnan(g) : g == r)) bad++;
      continue;
    }
    if (!std::isfinite(g)) {
      if (nonfinite++ == 0 && worst_excess < 1e300) worst = i, worst_excess = 1e300;
      bad++;
      continue;
    }
    const double err = std::fabs(g - r), lim = atol + rtol * std::fabs(r);
    num += err * err;
    den += r * r;
    if (err > lim) {
      bad++;
      if (err - lim > worst_excess) worst_excess = err - lim, worst = i;
    }
  }
  const double nrm = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size() << " elements out of tolerance"
                     << " (rtol " << rtol << ", atol " << atol << "; " << nonfinite
                     << " non-finite, e.g. never written); worst at [" << worst << "]: got "
                     << (worst < got.size() ? got[worst] : 0.0f) << " ref "
                     << (worst < ref.size() ? ref[worst] : 0.0f);
  EXPECT_LE(nrm, nrm_tol) << what << ": normwise relative error " << nrm;
  return nrm;
}

#ifdef DSEEK_HAVE_CUDA
// Fills a device buffer with 0xFF bytes: NaN as bf16 (0xFFFF) and as fp32 (0xFFFFFFFF), so an
// element a kernel forgets to write fails the comparison.
template <class T>
inline void poison(DeviceBuffer<T>& b) {
  if (b.size()) {
    ASSERT_EQ(cudaMemset(b.get(), 0xFF, b.bytes()), cudaSuccess);
  }
}
inline void device_sync() {
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}
#endif

}  // namespace dseek::test
