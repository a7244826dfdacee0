// CUDA MoE router (ops/cuda/moe_router.h) against the CPU router (ops/cpu/moe_router.h): V3
// sigmoid + bias + group-limited top-k (toy and real DeepSeek-V3 sizes), sigmoid without groups,
// V2 softmax greedy and group-limited greedy; then the per-expert load counts and the backward.
// Tolerances: scores differ only by expf vs std::exp (<= 2 ulp): rtol 2e-6. The selected experts
// must be identical (random fp32 logits leave no ties at that level). Weights use the same fp64
// sum as the CPU over those scores: rtol 1e-5. The backward is fp64 on both sides from the same
// saved scores and indices: rtol 1e-6, atol 1e-12 (unselected experts of V3 must be exactly 0).
#include <gtest/gtest.h>

#include "cuda/cuda_test_util.h"
#include "dseek/ops/cpu/moe_router.h"

#ifdef DSEEK_HAVE_CUDA
#include "dseek/ops/cuda/moe_router.h"
#endif

namespace dseek {
namespace {

#ifdef DSEEK_HAVE_CUDA
void run_case(const std::string& name, int64_t N, const RouterParams& p, bool with_bias,
              uint64_t seed) {
  const int64_t E = p.n_experts, K = p.top_k;
  std::vector<float> logits = test::random_f32(N * E, seed, -3.0f, 3.0f);
  std::vector<float> bias = test::random_f32(E, seed + 1, -0.1f, 0.1f);
  std::vector<float> dw = test::random_f32(N * K, seed + 2);
  std::vector<int32_t> counts0(E);
  for (int64_t e = 0; e < E; e++) counts0[e] = (int32_t)(e % 5);  // counts accumulate

  std::vector<int32_t> idx_ref(N * K);
  std::vector<float> w_ref(N * K), s_ref(N * E), dl_ref(N * E);
  moe_router_forward(idx_ref.data(), w_ref.data(), s_ref.data(), logits.data(),
                     with_bias ? bias.data() : nullptr, N, p);
  moe_router_backward(dl_ref.data(), dw.data(), idx_ref.data(), s_ref.data(), N, p);
  std::vector<int32_t> counts_ref = counts0;
  for (int32_t e : idx_ref) counts_ref[e]++;

  DeviceBuffer<float> dlog(logits), dbias(bias), ddw(dw), dw_out(N * K), ds(N * E), ddl(N * E),
      ds_ref(s_ref);
  DeviceBuffer<int32_t> didx(N * K), dcounts(counts0), didx_ref(idx_ref);
  test::poison(dw_out);
  test::poison(ds);
  test::poison(didx);
  test::poison(ddl);
  cuda::moe_router_forward(didx.get(), dw_out.get(), ds.get(), dcounts.get(), dlog.get(),
                           with_bias ? dbias.get() : nullptr, N, p, nullptr);
  // the backward from the CPU's selection and scores, so it is tested on its own
  cuda::moe_router_backward(ddl.get(), ddw.get(), didx_ref.get(), ds_ref.get(), N, p, nullptr);
  test::device_sync();

  std::vector<int32_t> idx = didx.download();
  int64_t diff_tokens = 0;
  for (int64_t n = 0; n < N; n++)
    for (int64_t k = 0; k < K; k++)
      if (idx[n * K + k] != idx_ref[n * K + k]) {
        if (diff_tokens++ < 3)
          ADD_FAILURE() << name << ": token " << n << " choice " << k << " is expert "
                        << idx[n * K + k] << ", CPU chose " << idx_ref[n * K + k];
        break;
      }
  EXPECT_EQ(diff_tokens, 0) << name << ": tokens routed differently";
  test::expect_close(name + " scores", ds.download(), s_ref, 2e-6, 0.0, 2e-6);
  test::expect_close(name + " w", dw_out.download(), w_ref, 1e-5, 0.0, 1e-5);
  EXPECT_EQ(dcounts.download(), counts_ref) << name << ": expert load counts";
  const double e = test::expect_close(name + " dlogits", ddl.download(), dl_ref, 1e-6, 1e-12, 1e-6);
  std::printf("  %-32s N %4lld E %3lld K %lld  routed identically; dlogits nrm err %.1e\n",
              name.c_str(), (long long)N, (long long)E, (long long)K, e);
}
#endif

TEST(CudaMoeRouter, MatchesCpu) {
#ifndef DSEEK_HAVE_CUDA
  GTEST_SKIP() << "no CUDA device: this build has no CUDA backend (test skipped)";
#else
  DSEEK_REQUIRE_CUDA();
  RouterParams v3{.n_experts = 64,
                  .top_k = 6,
                  .n_group = 8,
                  .topk_group = 3,
                  .sigmoid = true,
                  .group_limited = true,
                  .norm_topk = true,
                  .scaling = 2.5f};
  run_case("v3 sigmoid groups", 333, v3, true, 1);
  RouterParams v3_full = v3;  // DeepSeek-V3: 256 experts, 8 groups, 4 kept, top-8
  v3_full.n_experts = 256;
  v3_full.top_k = 8;
  v3_full.topk_group = 4;
  run_case("v3 full size", 257, v3_full, true, 2);
  RouterParams flat{.n_experts = 16,
                    .top_k = 2,
                    .n_group = 1,
                    .topk_group = 1,
                    .sigmoid = true,
                    .group_limited = false,
                    .norm_topk = false,
                    .scaling = 1.0f};
  run_case("sigmoid no groups, no bias", 101, flat, false, 3);
  RouterParams v2{.n_experts = 64,
                  .top_k = 6,
                  .n_group = 1,
                  .topk_group = 1,
                  .sigmoid = false,
                  .group_limited = false,
                  .norm_topk = false,
                  .scaling = 1.0f};
  run_case("v2 softmax greedy", 129, v2, false, 4);
  RouterParams v2g{.n_experts = 160,
                   .top_k = 6,
                   .n_group = 8,
                   .topk_group = 3,
                   .sigmoid = false,
                   .group_limited = true,
                   .norm_topk = false,
                   .scaling = 16.0f};
  run_case("v2 softmax group-limited", 77, v2g, false, 5);
#endif
}

}  // namespace
}  // namespace dseek
