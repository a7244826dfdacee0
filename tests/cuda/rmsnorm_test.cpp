// CUDA RMSNorm (ops/cuda/rmsnorm.h) against the CPU op (ops/cpu/rmsnorm.h) on the same bf16 values.
// Tolerances: the GPU sums in fp32 (the CPU in fp64): rstd agrees to ~1e-6 relative (rtol 1e-5).
// bf16 outputs (out, dx) carry one rounding: kBf16Rtol; dx = r (g w - x c) can cancel, so an
// atol of 1e-4 * rms(ref) covers the fp32 error of the difference near zero. dw is fp32 sums of
// N terms: rtol 1e-4, atol 1e-5 * rms(ref). The fused residual h = bf16(x + residual) is one
// fp32 add and one rounding on both sides: bit-exact.
#include <gtest/gtest.h>

#include "cuda/cuda_test_util.h"
#include "dseek/ops/cpu/rmsnorm.h"

#ifdef DSEEK_HAVE_CUDA
#include "dseek/ops/cuda/rmsnorm.h"
#endif

namespace dseek {
namespace {

#ifdef DSEEK_HAVE_CUDA
// N rows of C, row stride ld (>= C); residual fused or not; backward with/without accumulate.
void run_case(int64_t N, int64_t C, int64_t ld, bool fused, bool accumulate, uint64_t seed) {
  const std::string name = "rmsnorm N" + std::to_string(N) + " C" + std::to_string(C) + " ld" +
                           std::to_string(ld) + (fused ? " fused" : "") +
                           (accumulate ? " acc" : "");
  const float eps = 1e-6f;
  test::Bf16Vec x = test::random_bf16(N * ld, seed, -2.0f, 2.0f);
  test::Bf16Vec res = test::random_bf16(N * ld, seed + 1, -2.0f, 2.0f);
  test::Bf16Vec w = test::random_bf16(C, seed + 2, 0.5f, 1.5f);
  test::Bf16Vec dy = test::random_bf16(N * ld, seed + 3);
  test::Bf16Vec dx0 = test::random_bf16(N * ld, seed + 4);
  std::vector<float> dw0 = test::random_f32(C, seed + 5);

  // CPU reference: h = bf16(x + res) when fused
  std::vector<float> h = x.f;
  if (fused)
    for (size_t i = 0; i < h.size(); i++) h[i] = bf16_to_f32(f32_to_bf16(x.f[i] + res.f[i]));
  std::vector<float> out_ref(N * C), rstd_ref(N), dx_ref(N * C), dw_ref = dw0;
  rmsnorm_forward(out_ref.data(), C, rstd_ref.data(), h.data(), ld, w.f.data(), N, C, eps);
  if (accumulate)
    for (int64_t n = 0; n < N; n++)
      for (int64_t j = 0; j < C; j++) dx_ref[n * C + j] = dx0.f[n * ld + j];
  rmsnorm_backward(dx_ref.data(), C, dw_ref.data(), dy.f.data(), ld, h.data(), ld, w.f.data(),
                   rstd_ref.data(), N, C, accumulate);

  // GPU
  DeviceBuffer<uint16_t> dxin(x.bits), dres(res.bits), dw_b(w.bits), ddy(dy.bits);
  DeviceBuffer<uint16_t> dout(N * C), dh(N * ld), ddx(N * C);
  DeviceBuffer<float> drstd(N), ddw(dw0);
  test::poison(dout);
  test::poison(drstd);
  test::poison(dh);
  cuda::rmsnorm_forward(dout.get(), C, drstd.get(), fused ? dh.get() : nullptr, dxin.get(), ld,
                        fused ? dres.get() : nullptr, dw_b.get(), N, C, eps, nullptr);
  if (accumulate) {
    std::vector<uint16_t> d0(N * C);
    for (int64_t n = 0; n < N; n++)
      for (int64_t j = 0; j < C; j++) d0[n * C + j] = dx0.bits[n * ld + j];
    ddx.upload(d0);
  } else {
    test::poison(ddx);
  }
  const uint16_t* hin = fused ? dh.get() : dxin.get();
  cuda::rmsnorm_backward(ddx.get(), C, ddw.get(), ddy.get(), ld, hin, ld, dw_b.get(), drstd.get(),
                         N, C, accumulate, nullptr);
  test::device_sync();

  test::expect_close(name + " rstd", drstd.download(), rstd_ref, 1e-5, 0.0);
  test::expect_close(name + " out", test::to_f32(dout.download()), out_ref, test::kBf16Rtol,
                     1e-5 * test::rms(out_ref), 4e-3);
  if (fused) {
    std::vector<uint16_t> hg = dh.download();
    for (int64_t n = 0; n < N; n++)
      for (int64_t j = 0; j < C; j++)
        ASSERT_EQ(bf16_to_f32(hg[n * ld + j]), h[n * ld + j]) << name << " h at " << n << "," << j;
  }
  const double e_dx = test::expect_close(name + " dx", test::to_f32(ddx.download()), dx_ref,
                                         test::kBf16Rtol, 1e-4 * test::rms(dx_ref), 4e-3);
  const double e_dw = test::expect_close(name + " dw", ddw.download(), dw_ref, 1e-4,
                                         1e-5 * test::rms(dw_ref), 1e-4);
  std::printf("  %-40s dx nrm err %.2e  dw nrm err %.2e\n", name.c_str(), e_dx, e_dw);
}
#endif

TEST(CudaRmsnorm, ForwardBackwardMatchCpu) {
#ifndef DSEEK_HAVE_CUDA
  GTEST_SKIP() << "no CUDA device: this build has no CUDA backend (test skipped)";
#else
  DSEEK_REQUIRE_CUDA();
  run_case(67, 200, 200, false, false, 1);        // 16-byte vector path
  run_case(67, 131, 131, false, false, 2);        // odd width: element path
  run_case(33, 7168, 7168, true, false, 3);       // DeepSeek-V3 width, fused residual
  run_case(300, 512, 520, true, true, 4);         // row stride > C (a view), accumulate into dx
  run_case(5, 1536, 1536, false, true, 5);        // fewer rows than blocks
  run_case(1000, 16000, 16000, false, false, 6);  // dw partials beyond 48 KB of shared memory
#endif
}

}  // namespace
}  // namespace dseek
