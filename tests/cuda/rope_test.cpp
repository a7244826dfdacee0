// CUDA RoPE (ops/cuda/rope.h) against the CPU op (ops/cpu/rope.h), in place on bf16 values laid
// out as MLA heads [nope | pe] with padding between tokens: only the pe values may change.
// Tolerances: each output is a c - b s in fp32 on both sides (same tables), then one bf16
// rounding: kBf16Rtol, atol 1e-5 * rms(ref) for the sums that cancel to near zero.
#include <gtest/gtest.h>

#include <cmath>

#include "cuda/cuda_test_util.h"
#include "dseek/ops/cpu/rope.h"

#ifdef DSEEK_HAVE_CUDA
#include "dseek/ops/cuda/rope.h"
#endif

namespace dseek {
namespace {

#ifdef DSEEK_HAVE_CUDA
void run_case(int64_t N, int64_t nh, int64_t nope, int64_t half, bool interleaved, bool backward,
              float factor, uint64_t seed) {
  const std::string name = "rope N" + std::to_string(N) + " nh" + std::to_string(nh) + " half" +
                           std::to_string(half) + (interleaved ? " interleaved" : " halves") +
                           (backward ? " bwd" : " fwd");
  const int64_t ld_head = nope + 2 * half, ld_tok = nh * ld_head + 5;  // 5 padding values
  test::Bf16Vec x = test::random_bf16(N * ld_tok, seed, -3.0f, 3.0f);
  std::vector<int32_t> pos(N);
  for (int64_t n = 0; n < N; n++) pos[n] = (int32_t)((n * 7919 + seed) % 4096);
  std::vector<float> inv_freq(half);
  for (int64_t i = 0; i < half; i++)
    inv_freq[i] = (float)(1.0 / std::pow(10000.0, (double)(2 * i) / (double)(2 * half)));
  std::vector<float> cos_t(N * half), sin_t(N * half);
  rope_tables(cos_t.data(), sin_t.data(), pos.data(), N, inv_freq.data(), half, factor);

  std::vector<float> ref = x.f;
  (backward ? rope_backward : rope_forward)(ref.data() + nope, N, nh, ld_tok, ld_head, cos_t.data(),
                                            sin_t.data(), half, interleaved);
  DeviceBuffer<uint16_t> dx(x.bits);
  DeviceBuffer<float> dc(cos_t), ds(sin_t);
  (backward ? cuda::rope_backward : cuda::rope_forward)(
      dx.get() + nope, N, nh, ld_tok, ld_head, dc.get(), ds.get(), half, interleaved, nullptr);
  test::device_sync();
  std::vector<uint16_t> got = dx.download();
  std::vector<float> gp, rp;  // the pe values
  for (int64_t n = 0; n < N; n++)
    for (int64_t j = 0; j < ld_tok; j++) {
      const int64_t h = j / ld_head, k = j % ld_head;
      const size_t e = n * ld_tok + j;
      if (h < nh && k >= nope) {
        gp.push_back(bf16_to_f32(got[e]));
        rp.push_back(ref[e]);
      } else {
        ASSERT_EQ(got[e], x.bits[e])
            << name << ": value outside the pe dims changed at " << n << "," << j;
      }
    }
  const double e = test::expect_close(name, gp, rp, test::kBf16Rtol, 1e-5 * test::rms(rp), 4e-3);
  std::printf("  %-45s nrm err %.2e\n", name.c_str(), e);
}
#endif

TEST(CudaRope, ForwardBackwardMatchCpu) {
#ifndef DSEEK_HAVE_CUDA
  GTEST_SKIP() << "no CUDA device: this build has no CUDA backend (test skipped)";
#else
  DSEEK_REQUIRE_CUDA();
  uint64_t seed = 1;
  for (bool inter : {true, false})
    for (bool bwd : {false, true}) {
      run_case(19, 3, 16, 4, inter, bwd, 1.0f, seed++);  // small, odd token count
      run_case(45, 16, 128, 32, inter, bwd, 1.3f,
               seed++);                                  // V3 q head: Dn 128 + Dr 64, YaRN factor
      run_case(77, 1, 0, 32, inter, bwd, 1.0f, seed++);  // the shared k_pe head
    }
#endif
}

}  // namespace
}  // namespace dseek
