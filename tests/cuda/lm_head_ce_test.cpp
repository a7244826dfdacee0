// Chunked LM head + cross-entropy (ops/cuda/lm_head_ce.h) against the CPU composition: logits =
// gemm_nt(h, W), cross_entropy_forward_backward (ops/cpu/cross_entropy.h), dh = gemm_nn(dlogits,
// W), dW += gemm_tn(dlogits, h), all fp32 on the same bf16 inputs.
// Tolerances: logits agree to fp32 accumulation order (~1e-6 relative), so per-row losses agree
// to rtol 1e-5 (atol 1e-5). dlogits are rounded to bf16 (2^-9 relative) before the two backward
// GEMMs, so dh and dW carry that rounding summed over V (resp. N) terms of both signs plus dh's own
// bf16 rounding: elementwise rtol 2^-6 with atol 1e-2 * rms(ref), and the normwise error must
// stay under 5e-3 (a wrong index or a missed chunk gives errors of order 1).
#include <gtest/gtest.h>

#include "cuda/cuda_test_util.h"
#include "dseek/ops/cpu/cross_entropy.h"
#include "dseek/ops/cpu/linear.h"

#ifdef DSEEK_HAVE_CUDA
#include "dseek/ops/cuda/lm_head_ce.h"
#endif

namespace dseek {
namespace {

#ifdef DSEEK_HAVE_CUDA
void run_case(int64_t N, int64_t C, int64_t V, int64_t chunk, uint64_t seed, bool grads) {
  const std::string name = "lm_head_ce N" + std::to_string(N) + " C" + std::to_string(C) + " V" +
                           std::to_string(V) + " chunk" + std::to_string(chunk) +
                           (grads ? "" : " loss-only");
  test::Bf16Vec h = test::random_bf16(N * C, seed, -2.0f, 2.0f);
  test::Bf16Vec W = test::random_bf16(V * C, seed + 1, -0.2f, 0.2f);
  std::vector<float> dW0 = test::random_f32(V * C, seed + 2, -0.01f, 0.01f);
  std::vector<int32_t> tgt(N);
  for (int64_t n = 0; n < N; n++) tgt[n] = n % 7 == 3 ? -1 : (int32_t)((n * 40503 + seed) % V);
  const float scale = 1.0f / (float)N;

  // CPU reference
  std::vector<float> logits(N * V), dlogits(N * V), dh_ref(N * C), dW_ref = dW0, loss_ref(N);
  gemm_nt(logits.data(), V, h.f.data(), C, W.f.data(), C, N, V, C, 0.0f);
  for (int64_t n = 0; n < N; n++)  // per-row losses: one row at a time
    loss_ref[n] = (float)cross_entropy_forward_backward(nullptr, logits.data() + n * V,
                                                        tgt.data() + n, 1, V, scale, nullptr);
  cross_entropy_forward_backward(dlogits.data(), logits.data(), tgt.data(), N, V, scale, nullptr);
  gemm_nn(dh_ref.data(), C, dlogits.data(), V, W.f.data(), C, N, C, V, 0.0f);
  gemm_tn(dW_ref.data(), C, dlogits.data(), V, h.f.data(), C, V, C, N, 1.0f);

  // GPU
  cuda::GemmLt g;
  cuda::LmHeadCe ce(V, chunk);
  DeviceBuffer<uint16_t> dh_in(h.bits), dWt(W.bits), ddh(N * C);
  DeviceBuffer<int32_t> dtgt(tgt);
  DeviceBuffer<float> dloss(N), ddW(dW0);
  test::poison(dloss);
  test::poison(ddh);
  ce.forward_backward(g, dloss.get(), grads ? ddh.get() : nullptr, grads ? ddW.get() : nullptr,
                      dh_in.get(), C, dWt.get(), dtgt.get(), N, C, scale, nullptr);
  test::device_sync();
  const double el =
      test::expect_close(name + " loss", dloss.download(), loss_ref, 1e-5, 1e-5, 1e-5);
  double e_dh = 0, e_dw = 0;
  if (grads) {
    e_dh = test::expect_close(name + " dh", test::to_f32(ddh.download()), dh_ref, 1.0 / 64,
                              1e-2 * test::rms(dh_ref), 5e-3);
    e_dw = test::expect_close(name + " dW", ddW.download(), dW_ref, 1.0 / 64,
                              1e-2 * test::rms(dW_ref), 5e-3);
  } else {
    EXPECT_EQ(ddW.download(), dW0) << name << ": loss-only must not touch dW";
  }
  double sum = 0, sum_ref = 0;
  std::vector<float> lg = dloss.download();
  for (int64_t n = 0; n < N; n++) sum += lg[n], sum_ref += loss_ref[n];
  std::printf("  %-45s loss sum %.6f (cpu %.6f) nrm err loss %.1e dh %.1e dW %.1e\n", name.c_str(),
              sum, sum_ref, el, e_dh, e_dw);
}
#endif

TEST(CudaLmHeadCe, ChunkedMatchesCpu) {
#ifndef DSEEK_HAVE_CUDA
  GTEST_SKIP() << "no CUDA device: this build has no CUDA backend (test skipped)";
#else
  DSEEK_REQUIRE_CUDA();
  run_case(70, 64, 1000, 32, 1, true);    // 3 chunks, the last partial; V % 8 == 0
  run_case(45, 128, 3001, 16, 2, true);   // odd V (padded chunk rows), 3 chunks
  run_case(45, 128, 3001, 64, 3, false);  // loss only, one chunk
  run_case(256, 256, 32000, 100, 4, true);
#endif
}

}  // namespace
}  // namespace dseek
