// cuBLASLt GEMM (ops/cuda/gemm_lt.h) against the CPU gemm_nt / gemm_nn / gemm_tn (ops/cpu/linear.h)
// on the same bf16 inputs (the CPU runs fp32 on their exact values).
// Tolerances: bf16 x bf16 products are exact in fp32, so the two sides differ only in the order
// of fp32 accumulation: |err| ~ K * 2^-24 * sum|a b|, far under atol = 1e-4 * rms(ref) + rtol 1e-5
// for fp32 D. A bf16 D adds one rounding: rtol 2^-8 (kBf16Rtol). Accumulating into a bf16 D
// (beta = 1) rounds twice in cuBLASLt; the reference models that (see run_case).
#include <gtest/gtest.h>

#include <cmath>

#include "cuda/cuda_test_util.h"
#include "dseek/ops/cpu/linear.h"

#ifdef DSEEK_HAVE_CUDA
#include "dseek/ops/cuda/gemm_lt.h"
#endif

namespace dseek {
namespace {

#ifdef DSEEK_HAVE_CUDA
using test::Bf16Vec;

enum class Layout { NT, NN, TN };

struct Case {
  Layout layout;
  int64_t M, N, K;
  cuda::GemmOut d_type;
  float beta;
  int64_t pad = 0;  // extra elements per row of every operand (a view into a wider matrix)
  bool bias = false;
};

void run_case(cuda::GemmLt& g, const Case& c, uint64_t seed) {
  const bool ta = c.layout == Layout::TN, tb = c.layout == Layout::NT;
  const int64_t a_rows = ta ? c.K : c.M, a_cols = ta ? c.M : c.K;
  const int64_t b_rows = tb ? c.N : c.K, b_cols = tb ? c.K : c.N;
  const int64_t lda = a_cols + c.pad, ldb = b_cols + c.pad, ldd = c.N + c.pad;
  Bf16Vec A = test::random_bf16(a_rows * lda, seed);
  Bf16Vec B = test::random_bf16(b_rows * ldb, seed + 1);
  Bf16Vec D0 = test::random_bf16(c.M * ldd, seed + 2);  // initial D (read when beta = 1)
  Bf16Vec bias = test::random_bf16(c.N, seed + 3);
  const bool f32 = c.d_type == cuda::GemmOut::F32;

  // CPU reference on the fp32 values of the bf16 inputs
  std::vector<float> ref = D0.f;
  if (c.layout == Layout::NT)
    gemm_nt(ref.data(), ldd, A.f.data(), lda, B.f.data(), ldb, c.M, c.N, c.K, c.beta);
  if (c.layout == Layout::NN)
    gemm_nn(ref.data(), ldd, A.f.data(), lda, B.f.data(), ldb, c.M, c.N, c.K, c.beta);
  if (c.layout == Layout::TN)
    gemm_tn(ref.data(), ldd, A.f.data(), lda, B.f.data(), ldb, c.M, c.N, c.K, c.beta);
  if (c.bias)
    for (int64_t i = 0; i < c.M; i++)
      for (int64_t j = 0; j < c.N; j++) ref[i * ldd + j] += bias.f[j];

  DeviceBuffer<uint16_t> dA(A.bits), dB(B.bits);
  DeviceBuffer<uint16_t> dDb(f32 ? 0 : D0.bits.size());
  DeviceBuffer<float> dDf(f32 ? D0.f.size() : 0);
  DeviceBuffer<uint16_t> dbias_b(bias.bits);
  DeviceBuffer<float> dbias_f(bias.f);
  // beta = 0: poison D, so unwritten elements show up as NaN; beta = 1: D starts at D0
  if (f32) {
    if (c.beta != 0.0f)
      dDf.upload(D0.f);
    else
      test::poison(dDf);
  } else {
    if (c.beta != 0.0f)
      dDb.upload(D0.bits);
    else
      test::poison(dDb);
  }
  void* D = f32 ? (void*)dDf.get() : (void*)dDb.get();
  const void* bptr = !c.bias ? nullptr
                     : f32   ? (const void*)dbias_f.get()
                             : (const void*)dbias_b.get();
  g.run({.D = D,
         .ldd = ldd,
         .d_type = c.d_type,
         .A = dA.get(),
         .lda = lda,
         .trans_a = ta,
         .B = dB.get(),
         .ldb = ldb,
         .trans_b = tb,
         .M = c.M,
         .N = c.N,
         .K = c.K,
         .beta = c.beta,
         .bias = bptr},
        nullptr);
  test::device_sync();
  std::vector<float> got = f32 ? dDf.download() : test::to_f32(dDb.download());

  // compare the M x N window; padding columns must keep their initial (or poisoned) content
  std::vector<float> gw, rw;
  for (int64_t i = 0; i < c.M; i++)
    for (int64_t j = 0; j < c.N; j++) {
      gw.push_back(got[i * ldd + j]);
      rw.push_back(ref[i * ldd + j]);
    }
  const double atol = 1e-4 * test::rms(rw);
  const double rtol = f32 ? 1e-5 : test::kBf16Rtol;
  if (!f32 && c.beta != 0.0f) {
    // bf16 D accumulated (beta = 1): cuBLASLt rounds the product to bf16 before adding C (seen on
    // the H100: every element equal to bf16(bf16(prod) + C), while single rounding bf16(prod + C)
    // differs by one ulp on ~30% of them). The reference follows that model (gemm_lt.h says so).
    std::vector<float> prod(c.M * ldd, 0.0f);
    if (c.layout == Layout::NT)
      gemm_nt(prod.data(), ldd, A.f.data(), lda, B.f.data(), ldb, c.M, c.N, c.K, 0.0f);
    if (c.layout == Layout::NN)
      gemm_nn(prod.data(), ldd, A.f.data(), lda, B.f.data(), ldb, c.M, c.N, c.K, 0.0f);
    if (c.layout == Layout::TN)
      gemm_tn(prod.data(), ldd, A.f.data(), lda, B.f.data(), ldb, c.M, c.N, c.K, 0.0f);
    int64_t single = 0;
    for (int64_t i = 0; i < c.M; i++)
      for (int64_t j = 0; j < c.N; j++) {
        const int64_t e = i * ldd + j;
        single += got[e] == bf16_to_f32(f32_to_bf16(ref[e]));
        rw[i * c.N + j] = bf16_to_f32(f32_to_bf16(prod[e])) + D0.f[e];
      }
    std::printf("  bf16 beta=1: %lld of %lld equal the single rounding bf16(prod + C)\n",
                (long long)single, (long long)(c.M * c.N));
  }
  const std::string name =
      "gemm layout " + std::to_string((int)c.layout) + " M" + std::to_string(c.M) + " N" +
      std::to_string(c.N) + " K" + std::to_string(c.K) + (f32 ? " f32" : " bf16") + " beta " +
      std::to_string(c.beta) + (c.bias ? " bias" : "") + " pad " + std::to_string(c.pad);
  const double nrm = test::expect_close(name, gw, rw, rtol, atol, f32 ? 1e-5 : 4e-3);
  for (int64_t i = 0; i < c.M; i++)
    for (int64_t j = c.N; j < ldd; j++) {
      const float v = got[i * ldd + j];
      if (c.beta != 0.0f)
        EXPECT_EQ(v, D0.f[i * ldd + j]) << name << ": padding written";
      else
        EXPECT_TRUE(std::isnan(v)) << name << ": padding written";
    }
  std::printf("  %-60s nrm err %.2e\n", name.c_str(), nrm);
}
#endif

TEST(CudaGemmLt, MatchesCpuAllLayouts) {
#ifndef DSEEK_HAVE_CUDA
  GTEST_SKIP() << "no CUDA device: this build has no CUDA backend (test skipped)";
#else
  DSEEK_REQUIRE_CUDA();
  cuda::GemmLt g;
  uint64_t seed = 100;
  for (Layout l : {Layout::NT, Layout::NN, Layout::TN})
    for (cuda::GemmOut dt : {cuda::GemmOut::BF16, cuda::GemmOut::F32}) {
      run_case(g, {l, 100, 72, 136, dt, 0.0f}, seed++);  // not multiples of the tiles
      run_case(g, {l, 257, 384, 520, dt, 0.0f}, seed++);
      run_case(g, {l, 64, 40, 96, dt, 1.0f}, seed++);     // accumulate (dW += ...)
      run_case(g, {l, 50, 24, 72, dt, 0.0f, 8}, seed++);  // views: ld = width + 8
      run_case(g, {l, 37, 29, 53, dt, 0.0f}, seed++);     // odd sizes, 2-byte aligned rows
    }
  run_case(g, {Layout::NT, 96, 80, 64, cuda::GemmOut::BF16, 0.0f, 0, true}, seed++);  // bias
  run_case(g, {Layout::NT, 96, 80, 64, cuda::GemmOut::F32, 0.0f, 0, true}, seed++);
  run_case(g, {Layout::NT, 1, 4096, 512, cuda::GemmOut::BF16, 0.0f}, seed++);  // m = 1 (decode)
  // the plan cache reuses plans: same shape again adds nothing
  const size_t plans = g.plans_cached();
  run_case(g, {Layout::NT, 100, 72, 136, cuda::GemmOut::BF16, 0.0f}, seed++);
  EXPECT_EQ(g.plans_cached(), plans);
#endif
}

TEST(CudaGemmLt, DegenerateShapes) {
#ifndef DSEEK_HAVE_CUDA
  GTEST_SKIP() << "no CUDA device: this build has no CUDA backend (test skipped)";
#else
  DSEEK_REQUIRE_CUDA();
  cuda::GemmLt g;
  // K = 0 with beta 0: D = 0 (an expert that got no tokens still owes a zero gradient block)
  DeviceBuffer<float> D(6 * 5);
  test::poison(D);
  cuda::gemm_lt_tn(g, D.get(), 5, cuda::GemmOut::F32, nullptr, 6, nullptr, 5, 6, 5, 0, 0.0f,
                   nullptr);
  test::device_sync();
  for (float v : D.download()) EXPECT_EQ(v, 0.0f);
  // K = 0 with beta 1: D unchanged
  std::vector<float> init = test::random_f32(30, 7);
  D.upload(init);
  cuda::gemm_lt_tn(g, D.get(), 5, cuda::GemmOut::F32, nullptr, 6, nullptr, 5, 6, 5, 0, 1.0f,
                   nullptr);
  test::device_sync();
  EXPECT_EQ(D.download(), init);
  // M = 0: nothing happens, nothing is read
  cuda::gemm_lt_nt(g, nullptr, 5, cuda::GemmOut::BF16, nullptr, 4, nullptr, 4, 0, 5, 4, 0.0f,
                   nullptr);
  test::device_sync();
#endif
}

}  // namespace
}  // namespace dseek
