// Multi-tensor CUDA AdamW (ops/cuda/adamw.h) against the CPU AdamW (train/adamw.h), three steps
// with changing learning rates, on tensors of odd sizes: 2-D (decayed), 1-D (not decayed), views
// into one flat buffer at offsets that break 16-byte alignment (the element path), and one larger
// than a chunk. Both sides do the same fp32 operations in the same order with correctly rounded
// sqrt and division, so the results should agree to the last bit; the tolerance (rtol 1e-6,
// atol 1e-9) only allows for a compiler contracting a multiply-add on the CPU side. The bf16 copy
// must be exactly bf16(p). The same with bf16 moments (AdamWConfig::state_bf16 on the CPU,
// m_bf16 / v_bf16 on the GPU): the stored moments must be bit-identical (both round the same fp32
// value to nearest even), the weights to the same tolerance.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "cuda/cuda_test_util.h"
#include "dseek/model/weights.h"
#include "dseek/train/adamw.h"

#ifdef DSEEK_HAVE_CUDA
#include "dseek/ops/cuda/adamw.h"
#endif

namespace dseek {
namespace {

#ifdef DSEEK_HAVE_CUDA
void multi_tensor_matches_cpu(bool bf16_state) {
  const std::vector<std::vector<int64_t> > shapes = {{37, 29}, {101}, {3}, {130, 300}, {5, 7}, {1}};
  const size_t T = shapes.size();
  std::vector<Tensor> p(T), g(T);
  std::vector<ParamRef> pr, gr;
  for (size_t i = 0; i < T; i++) {
    p[i] = Tensor(shapes[i]);
    g[i] = Tensor(shapes[i]);
    p[i].data = test::random_f32(p[i].numel(), 10 + i);
  }
  for (size_t i = 0; i < T; i++) {
    pr.push_back({fmt::format("p{}", i), &p[i], shapes[i], true});
    gr.push_back({fmt::format("p{}", i), &g[i], shapes[i], true});
  }
  const AdamWConfig cfg{.lr = 1e-3f,
                        .beta1 = 0.9f,
                        .beta2 = 0.95f,
                        .eps = 1e-8f,
                        .weight_decay = 0.1f,
                        .state_bf16 = bf16_state};
  AdamW cpu(pr, cfg);

  // GPU: all tensors packed into flat buffers at offsets of 1 element past a multiple of 4 for
  // the odd-index tensors (misaligned: the element path), aligned for the others
  std::vector<int64_t> off(T);
  int64_t total = 0;
  for (size_t i = 0; i < T; i++) {
    total = (total + 3) / 4 * 4 + (i % 2);
    off[i] = total;
    total += p[i].numel();
  }
  std::vector<float> flat_p(total, 0.0f);
  for (size_t i = 0; i < T; i++)
    std::copy(p[i].data.begin(), p[i].data.end(), flat_p.begin() + off[i]);
  DeviceBuffer<float> dp(flat_p), dm(std::vector<float>(total, 0.0f)),
      dv(std::vector<float>(total, 0.0f)), dg(total);
  DeviceBuffer<uint16_t> dpb(total), dmb(std::vector<uint16_t>(total, 0)),
      dvb(std::vector<uint16_t>(total, 0));
  test::poison(dpb);
  std::vector<cuda::AdamWTensor> list;
  for (size_t i = 0; i < T; i++)
    list.push_back({.param = dp.get() + off[i],
                    .m = bf16_state ? nullptr : dm.get() + off[i],
                    .v = bf16_state ? nullptr : dv.get() + off[i],
                    .grad = dg.get() + off[i],
                    .param_bf16 = dpb.get() + off[i],
                    .n = p[i].numel(),
                    .decay = shapes[i].size() >= 2,
                    .m_bf16 = bf16_state ? dmb.get() + off[i] : nullptr,
                    .v_bf16 = bf16_state ? dvb.get() + off[i] : nullptr});
  cuda::AdamWMultiTensor gpu(
      list,
      {.beta1 = cfg.beta1, .beta2 = cfg.beta2, .eps = cfg.eps, .weight_decay = cfg.weight_decay});
  EXPECT_GT(gpu.chunks(), (int64_t)T);  // the 130 x 300 tensor spans several chunks

  const float lrs[3] = {1e-3f, 3e-3f, 5e-4f};
  for (int step = 1; step <= 3; step++) {
    std::vector<float> flat_g(total, 0.0f);
    for (size_t i = 0; i < T; i++) {
      g[i].data = test::random_f32(g[i].numel(), 1000 * step + i, -0.1f, 0.1f);
      std::copy(g[i].data.begin(), g[i].data.end(), flat_g.begin() + off[i]);
    }
    dg.upload(flat_g);
    cpu.step(gr, lrs[step - 1]);
    gpu.step(lrs[step - 1], step, 1.0f, nullptr);
  }
  test::device_sync();
  std::vector<float> gp = dp.download(), gm = dm.download(), gv = dv.download();
  if (bf16_state) {  // widen the bf16 moments (exact)
    const std::vector<uint16_t> mb = dmb.download(), vb = dvb.download();
    for (int64_t j = 0; j < total; j++) {
      gm[j] = bf16_to_f32(mb[j]);
      gv[j] = bf16_to_f32(vb[j]);
    }
  }
  std::vector<uint16_t> gb = dpb.download();
  for (size_t i = 0; i < T; i++) {
    const int64_t n = p[i].numel();
    auto slice = [&](const std::vector<float>& v) {
      return std::vector<float>(v.begin() + off[i], v.begin() + off[i] + n);
    };
    const std::string name = fmt::format("adamw{} tensor {}", bf16_state ? " bf16" : "", i);
    test::expect_close(name + " p", slice(gp), p[i].data, 1e-6, 1e-9, 1e-6);
    test::expect_close(name + " m", slice(gm), cpu.exp_avg(i).data, 1e-6, 1e-9, 1e-6);
    test::expect_close(name + " v", slice(gv), cpu.exp_avg_sq(i).data, 1e-6, 1e-12, 1e-6);
    int64_t exact = 0, bf_ok = 0;
    for (int64_t j = 0; j < n; j++) {
      exact += gp[off[i] + j] == p[i].data[j];
      bf_ok += gb[off[i] + j] == f32_to_bf16(gp[off[i] + j]);
    }
    EXPECT_EQ(bf_ok, n) << name << ": bf16 copy";
    if (bf16_state) {  // the stored moments: the same rounding of the same fp32 values
      EXPECT_EQ(slice(gm), cpu.exp_avg(i).data) << name << ": bf16 m";
      EXPECT_EQ(slice(gv), cpu.exp_avg_sq(i).data) << name << ": bf16 v";
    }
    std::printf("  %-18s n %6lld  bit-exact p %lld / %lld\n", name.c_str(), (long long)n,
                (long long)exact, (long long)n);
  }
}
#endif

TEST(CudaAdamW, MultiTensorMatchesCpu) {
#ifndef DSEEK_HAVE_CUDA
  GTEST_SKIP() << "no CUDA device: this build has no CUDA backend (test skipped)";
#else
  DSEEK_REQUIRE_CUDA();
  multi_tensor_matches_cpu(false);
#endif
}

TEST(CudaAdamW, MultiTensorBf16StateMatchesCpu) {
#ifndef DSEEK_HAVE_CUDA
  GTEST_SKIP() << "no CUDA device: this build has no CUDA backend (test skipped)";
#else
  DSEEK_REQUIRE_CUDA();
  multi_tensor_matches_cpu(true);
#endif
}

TEST(CudaAdamW, GradScaleEqualsScaledGradients) {
#ifndef DSEEK_HAVE_CUDA
  GTEST_SKIP() << "no CUDA device: this build has no CUDA backend (test skipped)";
#else
  DSEEK_REQUIRE_CUDA();
  // grad_scale s on g must equal an update with the gradients multiplied by s beforehand
  const int64_t n = 5000;
  std::vector<float> p0 = test::random_f32(n, 1), g0 = test::random_f32(n, 2), gs(n);
  const float s = 0.37f;
  for (int64_t i = 0; i < n; i++) gs[i] = g0[i] * s;
  DeviceBuffer<float> pa(p0), pb(p0), ma(std::vector<float>(n, 0.0f)),
      mb(std::vector<float>(n, 0.0f)), va(std::vector<float>(n, 0.0f)),
      vb(std::vector<float>(n, 0.0f)), ga(g0), gb(gs);
  cuda::AdamWMultiTensor a(
      {{.param = pa.get(), .m = ma.get(), .v = va.get(), .grad = ga.get(), .n = n}}, {});
  cuda::AdamWMultiTensor b(
      {{.param = pb.get(), .m = mb.get(), .v = vb.get(), .grad = gb.get(), .n = n}}, {});
  a.step(1e-3f, 1, s, nullptr);
  b.step(1e-3f, 1, 1.0f, nullptr);
  test::device_sync();
  EXPECT_EQ(pa.download(), pb.download());
  EXPECT_EQ(va.download(), vb.download());
#endif
}

}  // namespace
}  // namespace dseek
