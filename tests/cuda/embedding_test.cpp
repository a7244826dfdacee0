// CUDA embedding (ops/cuda/embedding.h) against the CPU op (ops/cpu/embedding.h).
// Forward is a copy: bit-exact. Backward sums fp32 atomics in any order: repeated ids (a few per
// row here) differ from the CPU's in-order sum by a few fp32 roundings: rtol 1e-6, atol 1e-6.
#include <gtest/gtest.h>

#include <cmath>

#include "cuda/cuda_test_util.h"
#include "dseek/ops/cpu/embedding.h"

#ifdef DSEEK_HAVE_CUDA
#include "dseek/ops/cuda/embedding.h"
#endif

namespace dseek {
namespace {

#ifdef DSEEK_HAVE_CUDA
void run_case(int64_t N, int64_t V, int64_t C, uint64_t seed) {
  const std::string name =
      "embedding N" + std::to_string(N) + " V" + std::to_string(V) + " C" + std::to_string(C);
  test::Bf16Vec table = test::random_bf16(V * C, seed);
  test::Bf16Vec dout = test::random_bf16(N * C, seed + 1);
  std::vector<float> dt0 = test::random_f32(V * C, seed + 2);
  std::vector<int32_t> ids(N);
  for (int64_t n = 0; n < N; n++) ids[n] = (int32_t)((n * 2654435761u + seed) % V);  // repeats

  std::vector<float> out_ref(N * C), dt_ref = dt0;
  embedding_forward(out_ref.data(), table.f.data(), ids.data(), N, C);
  embedding_backward(dt_ref.data(), dout.f.data(), ids.data(), N, C);

  DeviceBuffer<uint16_t> dtab(table.bits), ddout(dout.bits), dout_(N * C);
  DeviceBuffer<int32_t> dids(ids);
  DeviceBuffer<float> ddt(dt0);
  test::poison(dout_);
  cuda::embedding_forward(dout_.get(), dtab.get(), dids.get(), N, C, V, nullptr);
  cuda::embedding_backward(ddt.get(), ddout.get(), dids.get(), N, C, V, nullptr);
  test::device_sync();
  test::expect_close(name + " fwd", test::to_f32(dout_.download()), out_ref, 0.0, 0.0, 0.0);
  const double e = test::expect_close(name + " bwd", ddt.download(), dt_ref, 1e-6, 1e-6, 1e-6);
  std::printf("  %-35s bwd nrm err %.2e\n", name.c_str(), e);
}
#endif

TEST(CudaEmbedding, ForwardBackwardMatchCpu) {
#ifndef DSEEK_HAVE_CUDA
  GTEST_SKIP() << "no CUDA device: this build has no CUDA backend (test skipped)";
#else
  DSEEK_REQUIRE_CUDA();
  run_case(300, 50, 136, 1);  // 16-byte copies, ids repeat ~6 times
  run_case(300, 50, 77, 2);   // odd width: element copies
  run_case(64, 1000, 7168, 3);
#endif
}

TEST(CudaEmbedding, OutOfRangeIdGivesNanRowAndNoGradient) {
#ifndef DSEEK_HAVE_CUDA
  GTEST_SKIP() << "no CUDA device: this build has no CUDA backend (test skipped)";
#else
  DSEEK_REQUIRE_CUDA();
  const int64_t V = 4, C = 16;
  test::Bf16Vec table = test::random_bf16(V * C, 9);
  std::vector<int32_t> ids = {1, 4, -1};
  DeviceBuffer<uint16_t> dtab(table.bits), dout(3 * C), ddout(std::vector<uint16_t>(3 * C, 0x3f80));
  DeviceBuffer<int32_t> dids(ids);
  DeviceBuffer<float> ddt(std::vector<float>(V * C, 0.0f));
  cuda::embedding_forward(dout.get(), dtab.get(), dids.get(), 3, C, V, nullptr);
  cuda::embedding_backward(ddt.get(), ddout.get(), dids.get(), 3, C, V, nullptr);
  test::device_sync();
  std::vector<float> out = test::to_f32(dout.download()), dt = ddt.download();
  for (int64_t j = 0; j < C; j++) {
    EXPECT_EQ(out[j], table.f[C + j]);
    EXPECT_TRUE(std::isnan(out[C + j]));
    EXPECT_TRUE(std::isnan(out[2 * C + j]));
    EXPECT_EQ(dt[C + j], 1.0f);  // only id 1 got a gradient (1.0 = bf16 0x3f80)
    EXPECT_EQ(dt[j] + dt[2 * C + j] + dt[3 * C + j], 0.0f);
  }
#endif
}

}  // namespace
}  // namespace dseek
