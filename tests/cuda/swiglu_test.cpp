// CUDA SwiGLU (ops/cuda/swiglu.h) against the CPU op (ops/cpu/swiglu.h) on the same bf16 values.
// Tolerances: both sides compute in fp32 with exp good to ~1-2 ulp (CPU exp_fast, GPU expf), so
// before rounding they agree to ~1e-6 relative; the bf16 outputs add one rounding: kBf16Rtol,
// with atol 1e-6 * rms(ref) for the values that land near zero.
#include <gtest/gtest.h>

#include "cuda/cuda_test_util.h"
#include "dseek/ops/cpu/swiglu.h"

#ifdef DSEEK_HAVE_CUDA
#include "dseek/ops/cuda/swiglu.h"
#endif

namespace dseek {
namespace {

#ifdef DSEEK_HAVE_CUDA
// gate and up are the two halves of one [N, 2I] buffer (the fused gate_up GEMM output) when
// halves, else two separate [N, I] buffers.
void run_case(int64_t N, int64_t I, bool halves, uint64_t seed) {
  const std::string name =
      "swiglu N" + std::to_string(N) + " I" + std::to_string(I) + (halves ? " halves" : "");
  const int64_t ld_in = halves ? 2 * I : I;
  test::Bf16Vec gu = test::random_bf16(N * 2 * I, seed, -6.0f, 6.0f);
  test::Bf16Vec dout = test::random_bf16(N * I, seed + 1);
  // dense fp32 copies of gate and up for the CPU
  std::vector<float> g(N * I), u(N * I);
  std::vector<uint16_t> gb(N * I), ub(N * I);
  for (int64_t n = 0; n < N; n++)
    for (int64_t i = 0; i < I; i++) {
      const int64_t gi = halves ? n * 2 * I + i : n * I + i;
      const int64_t ui = halves ? n * 2 * I + I + i : N * I + n * I + i;
      g[n * I + i] = gu.f[gi];
      u[n * I + i] = gu.f[ui];
    }
  std::vector<float> out_ref(N * I), dg_ref(N * I), du_ref(N * I);
  swiglu_forward(out_ref.data(), g.data(), u.data(), N * I);
  swiglu_backward(dg_ref.data(), du_ref.data(), dout.f.data(), g.data(), u.data(), N * I);

  DeviceBuffer<uint16_t> dgu(gu.bits), ddout(dout.bits), dout_(N * I), ddgu(N * 2 * I);
  test::poison(dout_);
  test::poison(ddgu);
  const uint16_t* gate = dgu.get();
  const uint16_t* up = halves ? dgu.get() + I : dgu.get() + N * I;
  uint16_t* dgate = ddgu.get();
  uint16_t* dup = halves ? ddgu.get() + I : ddgu.get() + N * I;
  cuda::swiglu_forward(dout_.get(), I, gate, up, ld_in, N, I, nullptr);
  cuda::swiglu_backward(dgate, dup, ld_in, ddout.get(), I, gate, up, N, I, nullptr);
  test::device_sync();
  std::vector<float> dgu_got = test::to_f32(ddgu.download()), dg(N * I), du(N * I);
  for (int64_t n = 0; n < N; n++)
    for (int64_t i = 0; i < I; i++) {
      dg[n * I + i] = dgu_got[halves ? n * 2 * I + i : n * I + i];
      du[n * I + i] = dgu_got[halves ? n * 2 * I + I + i : N * I + n * I + i];
    }
  const double e0 = test::expect_close(name + " out", test::to_f32(dout_.download()), out_ref,
                                       test::kBf16Rtol, 1e-6 * test::rms(out_ref), 4e-3);
  const double e1 = test::expect_close(name + " dgate", dg, dg_ref, test::kBf16Rtol,
                                       1e-6 * test::rms(dg_ref), 4e-3);
  const double e2 = test::expect_close(name + " dup", du, du_ref, test::kBf16Rtol,
                                       1e-6 * test::rms(du_ref), 4e-3);
  std::printf("  %-30s nrm err out %.2e dgate %.2e dup %.2e\n", name.c_str(), e0, e1, e2);
}
#endif

TEST(CudaSwiglu, ForwardBackwardMatchCpu) {
#ifndef DSEEK_HAVE_CUDA
  GTEST_SKIP() << "no CUDA device: this build has no CUDA backend (test skipped)";
#else
  DSEEK_REQUIRE_CUDA();
  run_case(37, 256, true, 1);   // halves of [N, 2I], 16-byte vectors
  run_case(37, 100, true, 2);   // I % 8 != 0: element path
  run_case(1, 1001, false, 3);  // one flat vector, odd length
  run_case(64, 2048, false, 4);
#endif
}

}  // namespace
}  // namespace dseek
