// CUDA flash attention (ops/cuda/flash_attn.h) against the CPU attention op (ops/cpu/attention.h,
// fp32 on the exact values of the bf16 inputs, P materialized), forward and backward.
//
// Tolerances, elementwise |got - ref| <= 2^-8 |ref| + atol(element), from where the GPU rounds
// (u = 2^-9, one bf16 rounding; fp32 accumulation and exp2/log2 errors are ~1e-6 relative, so
// each bound below carries a factor 2 for them and for accumulation-order boundary flips):
//   every bf16 output is rounded once at the end: the 2^-8 |ref| term (kBf16Rtol).
//   o:  P is rounded to bf16 before P V (the row sum l uses the fp32 P), so
//       |err| <= u sum_t P[s,t] |v[t]| <= u max|v|:                       atol = 2u max|v|.
//   dv: dv[t] = sum_s P[s,t] dout[s] with bf16 P:  |err| <= u max|dout| sum_s P[s,t]:
//                                                   atol = 2u max|dout| colsum_P[t].
//   dq, dk: dS = P (dP - D) is rounded to bf16 (u |dS|), and D = dout . o uses the bf16 o
//       (|dD| <= u sum_j |dout_j o_j|), so per (s, t) the error of dS is at most
//       G[s,t] = u |dS[s,t]| + P[s,t] u sum_j |dout[s,j] o[s,j]|, and
//       dq[s]: atol = 2 scale max|k| sum_t G[s,t];  dk[t]: atol = 2 scale max|q| sum_s G[s,t].
//   lse (fp32, vs a float64 loop): rtol 1e-5, atol 1e-5.
// Normwise errors (printed) are bounded by 1e-2 (bf16 operands: 1e-3 .. 1e-2).
// Every output is poisoned with NaN first (and the backward workspace too: its contents on entry
// must not matter); strided cases also check that the gaps between the view's rows stay
// untouched.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "cuda/cuda_test_util.h"
#include "dseek/ops/cpu/attention.h"

#ifdef DSEEK_HAVE_CUDA
#include "dseek/ops/cuda/flash_attn.h"
#endif

namespace dseek {
namespace {

#ifdef DSEEK_HAVE_CUDA
constexpr double kU = 1.0 / 512.0;  // one bf16 rounding, relative

double max_abs(const std::vector<float>& v) {
  double m = 0.0;
  for (float x : v) m = std::max(m, (double)std::fabs(x));
  return m;
}

// Elementwise |got - ref| <= rtol |ref| + atol[i], NaN never passes; returns the normwise error.
double expect_close_bound(const std::string& what, const std::vector<float>& got,
                          const std::vector<float>& ref, const std::vector<double>& atol,
                          double nrm_tol) {
  EXPECT_EQ(got.size(), ref.size()) << what;
  size_t bad = 0, worst = 0;
  double worst_ratio = 0.0, num = 0.0, den = 0.0;
  for (size_t i = 0; i < got.size() && i < ref.size(); i++) {
    const double g = got[i], r = ref[i], err = std::fabs(g - r);
    const double lim = test::kBf16Rtol * std::fabs(r) + atol[i];
    num += std::isfinite(err) ? err * err : 0.0;
    den += r * r;
    const double ratio = std::isfinite(g) ? err / lim : 1e300;
    if (!(err <= lim)) bad++;
    if (ratio > worst_ratio) worst_ratio = ratio, worst = i;
  }
  const double nrm = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size()
                     << " elements out of tolerance; worst at [" << worst << "]: got "
                     << got[worst] << " ref " << ref[worst] << " bound "
                     << test::kBf16Rtol * std::fabs(ref[worst]) + atol[worst];
  EXPECT_LE(nrm, nrm_tol) << what << ": normwise relative error " << nrm;
  std::printf("    %-6s nrm err %.2e  worst err/bound %.2f\n", what.c_str(), nrm, worst_ratio);
  return nrm;
}

// A [B, T, H, D] tensor stored with head stride D + pad (pad 0: dense), as bf16 on the device.
struct Strided {
  int64_t B, T, H, D, pad;
  int64_t sh() const { return D + pad; }
  int64_t st() const { return H * sh(); }
  int64_t sb() const { return T * st(); }
  size_t size() const { return (size_t)(B * sb()); }
  size_t at(int64_t b, int64_t t, int64_t h, int64_t j) const {
    return (size_t)(b * sb() + t * st() + h * sh() + j);
  }
  // dense fp32 [B, T, H, D] -> strided bf16 bits (gaps hold 0xFFFF)
  std::vector<uint16_t> scatter(const std::vector<uint16_t>& dense) const {
    std::vector<uint16_t> out(size(), 0xFFFF);
    for (int64_t r = 0; r < B * T * H; r++)
      for (int64_t j = 0; j < D; j++) out[at(0, 0, r, j)] = dense[r * D + j];
    return out;
  }
  // strided bf16 bits -> dense fp32; counts gap elements that are not 0xFFFF any more
  std::vector<float> gather(const std::vector<uint16_t>& s, size_t* touched) const {
    std::vector<float> out((size_t)(B * T * H * D));
    for (int64_t r = 0; r < B * T * H; r++)
      for (int64_t j = 0; j < D; j++) out[r * D + j] = bf16_to_f32(s[at(0, 0, r, j)]);
    if (touched) {
      *touched = 0;
      for (int64_t r = 0; r < B * T * H; r++)
        for (int64_t j = D; j < D + pad; j++) *touched += s[at(0, 0, r, j)] != 0xFFFF;
    }
    return out;
  }
};

// group_pairs > 0: the backward's block groups hold that many (b, h) pairs (else the default).
void run_case(int64_t B, int64_t T, int64_t H, int64_t Dqk, int64_t Dv, int64_t pad, float scale,
              uint64_t seed, int64_t group_pairs = 0) {
  const std::string name = "flash_attn B" + std::to_string(B) + " T" + std::to_string(T) + " H" +
                           std::to_string(H) + " D" + std::to_string(Dqk) + "/" +
                           std::to_string(Dv) + (pad ? " strided" : "") +
                           (group_pairs ? " groups of " + std::to_string(group_pairs) : "");
  std::printf("  %s\n", name.c_str());
  const int64_t nq = B * T * H * Dqk, nv = B * T * H * Dv;
  // q, k in [-2, 2): scores of a few units, so the softmax is far from uniform
  test::Bf16Vec q = test::random_bf16(nq, seed, -2.0f, 2.0f);
  test::Bf16Vec k = test::random_bf16(nq, seed + 1, -2.0f, 2.0f);
  test::Bf16Vec v = test::random_bf16(nv, seed + 2);
  test::Bf16Vec dout = test::random_bf16(nv, seed + 3);

  // CPU reference
  std::vector<float> out(nv), probs((size_t)(B * H * T * T)), dq(nq), dk(nq), dv(nv);
  attention_forward_batch(out.data(), probs.data(), q.f.data(), k.f.data(), v.f.data(), B, T, H,
                          Dqk, Dv, scale);
  attention_backward_batch(dq.data(), dk.data(), dv.data(), dout.f.data(), q.f.data(), k.f.data(),
                           v.f.data(), probs.data(), B, T, H, Dqk, Dv, scale);
  // lse in float64; the bounds' per-row / per-column sums (see the top of the file)
  std::vector<float> lse((size_t)(B * H * T));
  std::vector<double> colP((size_t)(B * H * T), 0.0), Gq((size_t)(B * H * T), 0.0),
      Gk((size_t)(B * H * T), 0.0);
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++) {
      const int64_t bh = b * H + h;
      const float* P = probs.data() + bh * T * T;
      for (int64_t s = 0; s < T; s++) {
        const size_t qs = ((b * T + s) * H + h), vs = qs;
        std::vector<double> sc(s + 1);
        double mx = -1e300;
        for (int64_t t = 0; t <= s; t++) {
          const size_t kt = (b * T + t) * H + h;
          double a = 0.0;
          for (int64_t j = 0; j < Dqk; j++) a += (double)q.f[qs * Dqk + j] * k.f[kt * Dqk + j];
          sc[t] = a * scale;
          mx = std::max(mx, sc[t]);
        }
        double sum = 0.0, D = 0.0, Dabs = 0.0;
        for (int64_t t = 0; t <= s; t++) sum += std::exp(sc[t] - mx);
        lse[bh * T + s] = (float)(mx + std::log(sum));
        for (int64_t j = 0; j < Dv; j++) {
          D += (double)dout.f[vs * Dv + j] * out[vs * Dv + j];
          Dabs += std::fabs((double)dout.f[vs * Dv + j] * out[vs * Dv + j]);
        }
        for (int64_t t = 0; t <= s; t++) {
          const size_t vt = (b * T + t) * H + h;
          double dp = 0.0;
          for (int64_t j = 0; j < Dv; j++) dp += (double)dout.f[vs * Dv + j] * v.f[vt * Dv + j];
          const double p = P[s * T + t];
          const double G = kU * std::fabs(p * (dp - D)) + p * kU * Dabs;
          colP[bh * T + t] += p;
          Gq[bh * T + s] += G;
          Gk[bh * T + t] += G;
        }
      }
    }
  const double mv = max_abs(v.f), mdo = max_abs(dout.f), mq = max_abs(q.f), mk = max_abs(k.f);
  std::vector<double> at_o(nv, 2 * kU * mv), at_dv(nv), at_dq(nq), at_dk(nq);
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < T; t++)
      for (int64_t h = 0; h < H; h++) {
        const size_t r = (b * T + t) * H + h, bht = (b * H + h) * T + t;
        for (int64_t j = 0; j < Dv; j++) at_dv[r * Dv + j] = 2 * kU * mdo * colP[bht];
        for (int64_t j = 0; j < Dqk; j++) {
          at_dq[r * Dqk + j] = 2 * scale * mk * Gq[bht];
          at_dk[r * Dqk + j] = 2 * scale * mq * Gk[bht];
        }
      }

  // GPU: every tensor a strided view (head stride D + pad)
  const Strided Lq{B, T, H, Dqk, pad}, Lv{B, T, H, Dv, pad};
  DeviceBuffer<uint16_t> d_q(Lq.scatter(q.bits)), d_k(Lq.scatter(k.bits)), d_v(Lv.scatter(v.bits));
  DeviceBuffer<uint16_t> d_do(Lv.scatter(dout.bits));
  DeviceBuffer<uint16_t> d_o(std::vector<uint16_t>(Lv.size(), 0xFFFF));  // NaN, gaps included
  DeviceBuffer<uint16_t> d_dq(std::vector<uint16_t>(Lq.size(), 0xFFFF));
  DeviceBuffer<uint16_t> d_dk(std::vector<uint16_t>(Lq.size(), 0xFFFF));
  DeviceBuffer<uint16_t> d_dv(std::vector<uint16_t>(Lv.size(), 0xFFFF));
  DeviceBuffer<float> d_lse((size_t)(B * H * T));
  test::poison(d_lse);
  const cuda::FlashAttnDims dims{B, T, H, Dqk, Dv};
  DeviceBuffer<unsigned char> ws(cuda::flash_attn_backward_workspace_bytes(dims));
  test::poison(ws);
  auto view = [](const DeviceBuffer<uint16_t>& buf, const Strided& L) {
    return cuda::BthdView{buf.get(), L.sb(), L.st(), L.sh()};
  };
  auto outv = [](DeviceBuffer<uint16_t>& buf, const Strided& L) {
    return cuda::BthdOut{buf.get(), L.sb(), L.st(), L.sh()};
  };
  cuda::flash_attn_forward(outv(d_o, Lv), d_lse.get(), view(d_q, Lq), view(d_k, Lq),
                           view(d_v, Lv), dims, scale, nullptr);
  const int64_t old_group =
      group_pairs ? cuda::flash_attn_set_bwd_group_bytes(group_pairs * T * Dqk * 4) : 0;
  cuda::flash_attn_backward(outv(d_dq, Lq), outv(d_dk, Lq), outv(d_dv, Lv), view(d_do, Lv),
                            view(d_q, Lq), view(d_k, Lq), view(d_v, Lv), view(d_o, Lv),
                            d_lse.get(), dims, scale, ws.get(), nullptr);
  if (group_pairs) cuda::flash_attn_set_bwd_group_bytes(old_group);
  test::device_sync();

  size_t touched[4] = {0, 0, 0, 0};
  const std::vector<float> g_o = Lv.gather(d_o.download(), &touched[0]);
  const std::vector<float> g_dq = Lq.gather(d_dq.download(), &touched[1]);
  const std::vector<float> g_dk = Lq.gather(d_dk.download(), &touched[2]);
  const std::vector<float> g_dv = Lv.gather(d_dv.download(), &touched[3]);
  for (size_t i = 0; i < 4; i++) EXPECT_EQ(touched[i], 0u) << name << ": gap writes, output " << i;
  test::expect_close(name + " lse", d_lse.download(), lse, 1e-5, 1e-5);
  expect_close_bound("o", g_o, out, at_o, 1e-2);
  expect_close_bound("dq", g_dq, dq, at_dq, 1e-2);
  expect_close_bound("dk", g_dk, dk, at_dk, 1e-2);
  expect_close_bound("dv", g_dv, dv, at_dv, 1e-2);
}
#endif

TEST(CudaFlashAttn, ForwardBackwardMatchCpu) {
#ifndef DSEEK_HAVE_CUDA
  GTEST_SKIP() << "no CUDA device: this build has no CUDA backend (test skipped)";
#else
  DSEEK_REQUIRE_CUDA();
  const auto sc = [](int64_t d) { return (float)(1.0 / std::sqrt((double)d)); };
  run_case(1, 1, 1, 48, 32, 0, sc(48), 1);              // T = 1
  run_case(2, 1, 3, 96, 64, 0, sc(96), 10);             // T = 1, B * H = 6
  run_case(2, 77, 3, 48, 32, 0, sc(48), 2);             // tiny recipe dims, T < one tile
  run_case(5, 150, 1, 192, 128, 0, sc(192), 11, 2);     // backward block groups 2, 2, 1
  run_case(1, 200, 2, 96, 64, 8, sc(96), 3);            // strided views, partial last tile
  run_case(2, 129, 2, 192, 128, 0, sc(192), 4);         // V3 dims, one row past two tiles
  run_case(1, 64, 1, 192, 128, 16, sc(192), 5);         // exactly one tile, strided
  run_case(1, 300, 2, 96, 64, 0, 0.7f * sc(96), 6);     // YaRN-like scale (mscale^2 factor)
  run_case(1, 520, 1, 192, 128, 0, sc(192), 7);         // 9 key tiles
  run_case(3, 100, 1, 64, 64, 0, sc(64), 8);            // (64, 64)
  run_case(1, 150, 2, 128, 128, 8, sc(128), 9);         // (128, 128), strided
#endif
}

TEST(CudaFlashAttn, RejectsUnsupportedDims) {
#ifndef DSEEK_HAVE_CUDA
  GTEST_SKIP() << "no CUDA device: this build has no CUDA backend (test skipped)";
#else
  EXPECT_TRUE(cuda::flash_attn_supported(192, 128));
  EXPECT_FALSE(cuda::flash_attn_supported(192, 64));
  EXPECT_FALSE(cuda::flash_attn_supported(40, 32));
#endif
}

}  // namespace
}  // namespace dseek
