// MoE experts on the GPU against the CPU: the permutation (ops/cuda/moe_permute.h) against a host
// sort, the grouped GEMM (ops/cuda/grouped_gemm.h) against a CPU loop of per-group GEMMs, and the
// whole routed + shared expert FFN (ops/cuda/moe_ffn.h) forward and backward against the CPU MoE
// (model/moe.h) on random bf16 weights, with the CPU's routing fed to the GPU.
// Outputs are poisoned with NaN first (an unwritten element fails). Tolerances:
// - permutation, counts, offsets, tile schedule, gather, dy = bf16(w dout): exact (integers,
// copies,
//   one fp32 product rounded once on both sides).
// - combine (fp32 fma chain over the slots in slot order, one bf16 rounding) and gather backward
//   (fp32 sum in slot order): the host does the same operations in the same order, so they are
//   bit-identical in practice (printed); the bound allows one bf16 ulp (rtol 2^-7) in case the
//   compiler reassociates.
// - dw = <dout, y> (fp32 over C terms, different order): rtol 1e-5, atol 1e-5 * rms.
// - grouped GEMM, bf16 outputs: one rounding of an fp32 sum (order differs from the CPU's sgemm:
//   ~K 2^-24 sum|ab|): rtol 2^-8, atol 1e-3 * rms(ref) for sums that cancel; fp32 weight grads:
//   rtol 1e-5, atol 1e-5 * rms(ref).
// - whole FFN vs the fp32 CPU MoE: the GPU rounds every intermediate to bf16 (gate/up h, SwiGLU a,
//   expert output y, the output; in the backward dy, da, dh, dx per slot), each a relative error
//   <= 2^-9 of its element that the next GEMM turns into an error ~2^-9 of the output's SCALE
//   (sums of C or I terms whose errors do not cancel with the value), so the bound is normwise:
//   ||got - ref|| / ||ref|| <= 1e-2 (bf16 operands land between 1e-3 and 1e-2; seen ~3e-3), and
//   elementwise |err| <= 2^-5 * rms(ref) + 2^-7 |ref| (about 8 sigma of the accumulated
//   roundings: it catches wrong rows, slots or experts, which err by O(rms)).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "cuda/cuda_test_util.h"
#include "dseek/model/config.h"
#include "dseek/model/moe.h"
#include "dseek/model/weights.h"
#include "dseek/ops/cpu/linear.h"

#ifdef DSEEK_HAVE_CUDA
#include "dseek/ops/cuda/gemm_lt.h"
#include "dseek/ops/cuda/grouped_gemm.h"
#include "dseek/ops/cuda/moe_ffn.h"
#include "dseek/ops/cuda/moe_permute.h"
#endif

namespace dseek {
namespace {

#ifdef DSEEK_HAVE_CUDA
using test::Bf16Vec;

// Router-like choices: per token K distinct experts in ascending order, skewed so that some
// experts get many tokens and some none (experts >= E - empty_tail are never chosen).
std::vector<int32_t> random_choices(int64_t N, int64_t K, int64_t E, int64_t empty_tail,
                                    uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> idx(N * K);
  const int64_t Eu = E - empty_tail;
  for (int64_t n = 0; n < N; n++) {
    std::vector<int32_t> pick;
    while ((int64_t)pick.size() < K) {
      const double u = std::uniform_real_distribution<double>(0, 1)(rng);
      const int32_t e = (int32_t)std::min<int64_t>(Eu - 1, (int64_t)(Eu * u * u));  // skewed
      if (std::find(pick.begin(), pick.end(), e) == pick.end()) pick.push_back(e);
    }
    std::sort(pick.begin(), pick.end());
    std::copy(pick.begin(), pick.end(), idx.begin() + n * K);
  }
  return idx;
}

float bf16_round_host(float v) {
  return bf16_to_f32(f32_to_bf16(v));
}

void run_permute_case(const std::string& name, int64_t N, int64_t K, int64_t E, int64_t C,
                      bool extra, uint64_t seed) {
  const int64_t Kp = K + extra, G = E + extra, P = N * Kp;
  std::vector<int32_t> idx = random_choices(N, K, E, 3, seed);
  std::vector<float> w = test::random_f32(N * K, seed + 1, 0.0f, 2.5f);
  Bf16Vec x = test::random_bf16(N * C, seed + 2);
  Bf16Vec y = test::random_bf16(P * C, seed + 3);
  Bf16Vec add = test::random_bf16(N * C, seed + 4);
  Bf16Vec dout = test::random_bf16(N * C, seed + 5);
  Bf16Vec dxp = test::random_bf16(P * C, seed + 6);

  // host reference: stable sort of pairs by group
  std::vector<std::vector<int32_t>> rows(G);
  for (int64_t p = 0; p < P; p++) {
    const int64_t n = p / Kp, k = p % Kp;
    rows[k < K ? idx[n * K + k] : E].push_back((int32_t)p);
  }
  std::vector<int32_t> counts(G), offsets(G + 1, 0), tile_off(G + 1, 0), row_of_pair(P),
      pair_of_row(P);
  for (int64_t g = 0; g < G; g++) {
    counts[g] = (int32_t)rows[g].size();
    offsets[g + 1] = offsets[g] + counts[g];
    tile_off[g + 1] = tile_off[g] + (counts[g] + cuda::kGroupedGemmBM - 1) / cuda::kGroupedGemmBM;
    for (int32_t i = 0; i < counts[g]; i++) {
      row_of_pair[rows[g][i]] = offsets[g] + i;
      pair_of_row[offsets[g] + i] = rows[g][i];
    }
  }
  auto wt = [&](int64_t n, int64_t k) { return k < K ? w[n * K + k] : 1.0f; };
  std::vector<float> xp_ref(P * C), out_ref(N * C), dy_ref(P * C), dw_ref(N * K), dx_ref(N * C);
  for (int64_t r = 0; r < P; r++)
    for (int64_t c = 0; c < C; c++) xp_ref[r * C + c] = x.f[(pair_of_row[r] / Kp) * C + c];
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++) {
      float o = 0.0f, d = 0.0f;
      for (int64_t k = 0; k < Kp; k++) {
        o = std::fma(wt(n, k), y.f[row_of_pair[n * Kp + k] * C + c], o);
        d += dxp.f[row_of_pair[n * Kp + k] * C + c];
      }
      out_ref[n * C + c] = bf16_round_host(o + add.f[n * C + c]);
      dx_ref[n * C + c] = bf16_round_host(d + add.f[n * C + c]);
    }
  for (int64_t r = 0; r < P; r++) {
    const int64_t p = pair_of_row[r], n = p / Kp, k = p % Kp;
    double dot = 0.0;
    for (int64_t c = 0; c < C; c++) {
      dy_ref[r * C + c] = bf16_round_host(wt(n, k) * dout.f[n * C + c]);
      dot += (double)dout.f[n * C + c] * y.f[r * C + c];
    }
    if (k < K) dw_ref[n * K + k] = (float)dot;
  }

  const int64_t nch = cuda::moe_permute_chunks(P);
  DeviceBuffer<int32_t> d_idx(idx), d_rop(P), d_por(P), d_cnt(G), d_off(G + 1), d_tile(G + 1),
      d_chunk(nch * G);
  DeviceBuffer<float> d_w(w), d_dw(N * K);
  DeviceBuffer<uint16_t> d_x(x.bits), d_y(y.bits), d_add(add.bits), d_dout(dout.bits),
      d_dxp(dxp.bits), d_xp(P * C), d_out(N * C), d_dy(P * C), d_dx(N * C);
  for (auto* b : {&d_rop, &d_por, &d_cnt, &d_off, &d_tile}) test::poison(*b);
  for (auto* b : {&d_xp, &d_out, &d_dy, &d_dx}) test::poison(*b);
  test::poison(d_dw);
  const cuda::MoePermutePlan plan{d_rop.get(), d_por.get(),  d_cnt.get(),
                                  d_off.get(), d_tile.get(), d_chunk.get()};
  cuda::moe_permute_plan(plan, d_idx.get(), N, K, E, extra, nullptr);
  cuda::moe_gather(d_xp.get(), d_x.get(), C, d_por.get(), P, Kp, C, nullptr);
  cuda::moe_combine(d_out.get(), C, d_y.get(), d_w.get(), d_rop.get(), d_add.get(), N, K, extra, C,
                    nullptr);
  cuda::moe_combine_backward(d_dy.get(), d_dw.get(), d_dout.get(), C, d_y.get(), d_w.get(),
                             d_por.get(), N, K, extra, C, nullptr);
  cuda::moe_gather_backward(d_dx.get(), C, d_dxp.get(), d_rop.get(), d_add.get(), N, Kp, C, false,
                            nullptr);
  test::device_sync();

  EXPECT_EQ(d_cnt.download(), counts) << name << ": counts";
  EXPECT_EQ(d_off.download(), offsets) << name << ": offsets";
  EXPECT_EQ(d_tile.download(), tile_off) << name << ": tile schedule";
  EXPECT_EQ(d_rop.download(), row_of_pair) << name << ": row_of_pair";
  EXPECT_EQ(d_por.download(), pair_of_row) << name << ": pair_of_row";
  EXPECT_EQ(test::to_f32(d_xp.download()), xp_ref) << name << ": gathered rows";
  EXPECT_EQ(test::to_f32(d_dy.download()), dy_ref) << name << ": combine backward dy";
  const std::vector<float> out = test::to_f32(d_out.download()), dx = test::to_f32(d_dx.download());
  int64_t same = 0;
  for (size_t i = 0; i < out.size(); i++) same += out[i] == out_ref[i] && dx[i] == dx_ref[i];
  const double e1 = test::expect_close(name + " combine", out, out_ref, 1.0 / 128, 0.0, 2e-3);
  const double e2 = test::expect_close(name + " dw", d_dw.download(), dw_ref, 1e-5,
                                       1e-5 * test::rms(dw_ref), 1e-5);
  const double e3 = test::expect_close(name + " gather backward", dx, dx_ref, 1.0 / 128, 0.0, 2e-3);
  int64_t empty = 0;
  for (int32_t c : counts) empty += c == 0;
  std::printf(
      "  %-22s N %4lld K %lld E %3lld C %4lld: permutation exact (%lld empty groups); "
      "combine + gather-bwd bit-identical %lld of %lld; nrm err dw %.1e\n",
      name.c_str(), (long long)N, (long long)K, (long long)E, (long long)C, (long long)empty,
      (long long)same, (long long)out.size(), e2);
  EXPECT_LE(e1 + e3, 2e-3);
}

// Grouped GEMM: groups of the given sizes, weights [G, D1, D2].
//   nt: Y [rows, D1] = A [rows, D2] W_g^T;  nn: dA [rows, D2] = dY [rows, D1] W_g;
//   tn: dW_g [D1, D2] += dY_g^T A_g.   with_last: the last group's weight / grad are separate.
void run_grouped_case(const std::string& name, const std::vector<int32_t>& sizes, int64_t D1,
                      int64_t D2, bool with_last, uint64_t seed) {
  const int64_t G = (int64_t)sizes.size();
  std::vector<int32_t> off(G + 1, 0);
  for (int64_t g = 0; g < G; g++) off[g + 1] = off[g] + sizes[g];
  const int64_t R = off[G], WS = D1 * D2;
  Bf16Vec A = test::random_bf16(R * D2, seed);       // nt input, tn's A
  Bf16Vec dY = test::random_bf16(R * D1, seed + 1);  // nn input, tn's dY
  Bf16Vec W = test::random_bf16(G * WS, seed + 2, -0.1f, 0.1f);
  std::vector<float> dW0 = test::random_f32(G * WS, seed + 3);

  std::vector<float> y_ref(R * D1), da_ref(R * D2), dw_ref = dW0;
  for (int64_t g = 0; g < G; g++) {
    const int64_t r0 = off[g], n = sizes[g];
    if (n == 0) continue;
    const float* Wg = W.f.data() + g * WS;
    gemm_nt(y_ref.data() + r0 * D1, D1, A.f.data() + r0 * D2, D2, Wg, D2, n, D1, D2, 0.0f);
    gemm_nn(da_ref.data() + r0 * D2, D2, dY.f.data() + r0 * D1, D1, Wg, D2, n, D2, D1, 0.0f);
    gemm_tn(dw_ref.data() + g * WS, D2, dY.f.data() + r0 * D1, D1, A.f.data() + r0 * D2, D2, D1, D2,
            n, 1.0f);
  }

  DeviceBuffer<int32_t> d_cnt(sizes), d_off(G + 1), d_tile(G + 1);
  DeviceBuffer<uint16_t> d_A(A.bits), d_dY(dY.bits), d_W(W.bits), d_y(R * D1), d_da(R * D2);
  DeviceBuffer<float> d_dW(dW0);
  std::vector<uint16_t> wl(W.bits.end() - WS, W.bits.end());
  std::vector<float> dwl(dW0.end() - WS, dW0.end());
  DeviceBuffer<uint16_t> d_Wl(with_last ? wl : std::vector<uint16_t>());
  DeviceBuffer<float> d_dWl(with_last ? dwl : std::vector<float>());
  if (with_last) {  // the stacked copy of the last group must not be used: NaN there
    ASSERT_EQ(cudaMemset(d_W.get() + (G - 1) * WS, 0xFF, WS * 2), cudaSuccess);
  }
  test::poison(d_y);
  test::poison(d_da);
  test::poison(d_off);
  test::poison(d_tile);
  cuda::grouped_gemm_schedule(d_off.get(), d_tile.get(), d_cnt.get(), G, nullptr);
  const cuda::GroupLayout l{d_off.get(), d_tile.get(), G, R};
  const bf16_t* Wl = with_last ? d_Wl.get() : nullptr;
  cuda::grouped_gemm_nt(d_y.get(), d_A.get(), d_W.get(), Wl, l, D1, D2, nullptr);
  cuda::grouped_gemm_nn(d_da.get(), d_dY.get(), d_W.get(), Wl, l, D2, D1, nullptr);
  cuda::grouped_gemm_tn(d_dW.get(), with_last ? d_dWl.get() : nullptr, d_dY.get(), d_A.get(), l, D1,
                        D2, nullptr);
  test::device_sync();
  EXPECT_EQ(d_off.download(), off) << name << ": offsets";

  std::vector<float> dw = d_dW.download();
  if (with_last) {
    for (int64_t i = 0; i < WS; i++)  // the stacked slot of the last group stays untouched
      if (dw[(G - 1) * WS + i] != dW0[(G - 1) * WS + i]) {
        ADD_FAILURE() << name << ": dW of the last group written to the stacked buffer";
        break;
      }
    std::vector<float> l2 = d_dWl.download();
    std::copy(l2.begin(), l2.end(), dw.begin() + (G - 1) * WS);
  }
  const double e1 = test::expect_close(name + " nt", test::to_f32(d_y.download()), y_ref,
                                       test::kBf16Rtol, 1e-3 * test::rms(y_ref), 3e-3);
  const double e2 = test::expect_close(name + " nn", test::to_f32(d_da.download()), da_ref,
                                       test::kBf16Rtol, 1e-3 * test::rms(da_ref), 3e-3);
  const double e3 =
      test::expect_close(name + " tn", dw, dw_ref, 1e-5, 1e-5 * test::rms(dw_ref), 1e-5);
  int64_t empty = 0, big = 0;
  for (int32_t s : sizes) {
    empty += s == 0;
    big = std::max<int64_t>(big, s);
  }
  std::printf(
      "  %-26s G %3lld rows %5lld (max %4lld, %lld empty) D1 %4lld D2 %4lld%s: nrm err "
      "nt %.1e nn %.1e tn %.1e\n",
      name.c_str(), (long long)G, (long long)R, (long long)big, (long long)empty, (long long)D1,
      (long long)D2, with_last ? " W_last" : "", e1, e2, e3);
}

// ---- the whole expert FFN vs model/moe.h ----

std::vector<float> fill(Tensor& t, std::vector<int64_t> shape, uint64_t seed, float scale) {
  t = Tensor(std::move(shape));
  Bf16Vec v = test::random_bf16(t.numel(), seed, -scale, scale);
  std::copy(v.f.begin(), v.f.end(), t.ptr());
  return v.f;
}
std::vector<uint16_t> bits_of(const std::vector<float>& f) {
  std::vector<uint16_t> b(f.size());
  for (size_t i = 0; i < f.size(); i++) b[i] = f32_to_bf16(f[i]);  // exact: values are bf16
  return b;
}
void append(std::vector<float>& v, const Tensor& t) {
  v.insert(v.end(), t.ptr(), t.ptr() + t.numel());
}

void run_ffn_case(const std::string& name, int64_t N, int64_t E, int64_t K, int64_t C, int64_t I,
                  int64_t n_shared, int64_t n_group, int64_t topk_group, uint64_t seed) {
  ModelConfig c;
  c.hidden_size = C;
  c.moe_intermediate_size = I;
  c.n_routed_experts = E;
  c.num_experts_per_tok = K;
  c.n_shared_experts = n_shared;
  c.n_group = n_group;
  c.topk_group = topk_group;
  c.norm_topk_prob = true;
  c.routed_scaling_factor = 2.5;
  c.scoring = RouterScoring::SIGMOID;
  c.topk_method = TopkMethod::NOAUX_TC;
  const int64_t Is = I * n_shared;
  const float sC = std::sqrt(3.0f / (float)C), sI = std::sqrt(3.0f / (float)I),
              sIs = std::sqrt(3.0f / (float)std::max<int64_t>(Is, 1));

  LayerWeights L, G;
  fill(L.router, {E, C}, seed, sC);
  fill(L.router_bias, {E}, seed + 1, 0.1f);
  L.exp_gate.resize(E);
  L.exp_up.resize(E);
  L.exp_down.resize(E);
  for (int64_t e = 0; e < E; e++) {
    fill(L.exp_gate[e], {I, C}, seed + 10 + 3 * e, sC);
    fill(L.exp_up[e], {I, C}, seed + 11 + 3 * e, sC);
    fill(L.exp_down[e], {C, I}, seed + 12 + 3 * e, sI);
  }
  if (n_shared > 0) {
    fill(L.sh_gate, {Is, C}, seed + 2, sC);
    fill(L.sh_up, {Is, C}, seed + 3, sC);
    fill(L.sh_down, {C, Is}, seed + 4, sIs);
  }
  G.router = Tensor({E, C});
  for (int64_t e = 0; e < E; e++) {
    G.exp_gate.push_back(Tensor({I, C}));
    G.exp_up.push_back(Tensor({I, C}));
    G.exp_down.push_back(Tensor({C, I}));
  }
  if (n_shared > 0) {
    G.sh_gate = Tensor({Is, C});
    G.sh_up = Tensor({Is, C});
    G.sh_down = Tensor({C, Is});
  }
  Bf16Vec x = test::random_bf16(N * C, seed + 5);
  Bf16Vec dout = test::random_bf16(N * C, seed + 6);

  // CPU: forward, then backward with a zero router so dx holds the experts' part only
  std::vector<float> out_ref(N * C), dx_ref(N * C);
  MoeActs acts;
  moe_forward(out_ref.data(), x.f.data(), L, c, N, nullptr, &acts);
  LayerWeights L0 = L;
  std::fill(L0.router.data.begin(), L0.router.data.end(), 0.0f);
  moe_backward(dx_ref.data(), G, dout.f.data(), L0, c, acts, N);
  std::vector<float> dw_ref(N * K);
  for (int64_t e = 0; e < E; e++)
    for (size_t i = 0; i < acts.rows[e].size(); i++) {
      const int64_t p = acts.rows[e][i], n = p / K;
      double d = 0.0;
      for (int64_t j = 0; j < C; j++) d += (double)dout.f[n * C + j] * acts.y[e][i * C + j];
      dw_ref[p] = (float)d;
    }
  std::vector<float> w1, w2, dw1_ref, dw2_ref, sh_w1, sh_dw1_ref;
  for (int64_t e = 0; e < E; e++) {
    append(w1, L.exp_gate[e]);
    append(w1, L.exp_up[e]);
    append(w2, L.exp_down[e]);
    append(dw1_ref, G.exp_gate[e]);
    append(dw1_ref, G.exp_up[e]);
    append(dw2_ref, G.exp_down[e]);
  }
  if (n_shared > 0) {
    append(sh_w1, L.sh_gate);
    append(sh_w1, L.sh_up);
    append(sh_dw1_ref, G.sh_gate);
    append(sh_dw1_ref, G.sh_up);
  }
  // the GPU gradients start from random values (they accumulate)
  std::vector<float> g1 = test::random_f32(dw1_ref.size(), seed + 7, -0.01f, 0.01f);
  std::vector<float> g2 = test::random_f32(dw2_ref.size(), seed + 8, -0.01f, 0.01f);
  std::vector<float> gs1 = test::random_f32(sh_dw1_ref.size(), seed + 9, -0.01f, 0.01f);
  std::vector<float> gs2 = test::random_f32(n_shared > 0 ? C * Is : 0, seed + 10, -0.01f, 0.01f);
  std::vector<float> sh_dw2_ref = gs2;
  for (size_t i = 0; i < dw1_ref.size(); i++) dw1_ref[i] += g1[i];
  for (size_t i = 0; i < dw2_ref.size(); i++) dw2_ref[i] += g2[i];
  for (size_t i = 0; i < sh_dw1_ref.size(); i++) sh_dw1_ref[i] += gs1[i];
  for (size_t i = 0; i < sh_dw2_ref.size(); i++) sh_dw2_ref[i] += G.sh_down.data[i];

  DeviceBuffer<uint16_t> d_x(x.bits), d_dout(dout.bits), d_w1(bits_of(w1)), d_w2(bits_of(w2)),
      d_sw1(bits_of(sh_w1)),
      d_sw2(n_shared > 0 ? bits_of(L.sh_down.data) : std::vector<uint16_t>()), d_out(N * C),
      d_dx(N * C);
  DeviceBuffer<int32_t> d_idx(acts.idx);
  DeviceBuffer<float> d_w(acts.w), d_dw(N * K), d_g1(g1), d_g2(g2), d_gs1(gs1), d_gs2(gs2);
  test::poison(d_out);
  test::poison(d_dx);
  test::poison(d_dw);
  cuda::MoeFfnWeights W{d_w1.get(),
                        d_w2.get(),
                        n_shared ? d_sw1.get() : nullptr,
                        n_shared ? d_sw2.get() : nullptr,
                        E,
                        C,
                        I,
                        Is};
  cuda::MoeFfnGrads grads{d_g1.get(), d_g2.get(), n_shared ? d_gs1.get() : nullptr,
                          n_shared ? d_gs2.get() : nullptr};
  cuda::MoeFfnActs a;
  cuda::MoeFfnWorkspace ws;
  cuda::GemmLt gemm;
  cuda::moe_ffn_forward(d_out.get(), d_x.get(), d_idx.get(), d_w.get(), N, K, W, a, gemm, nullptr);
  cuda::moe_ffn_backward(d_dx.get(), d_dw.get(), grads, d_dout.get(), d_x.get(), d_w.get(), W, a,
                         ws, gemm, nullptr);
  test::device_sync();

  constexpr double kRtol = 1.0 / 128, kAtolRms = 1.0 / 32, kNrm = 1e-2;
  auto cmp = [&](const std::string& what, const std::vector<float>& got,
                 const std::vector<float>& ref) {
    return test::expect_close(name + " " + what, got, ref, kRtol, kAtolRms * test::rms(ref), kNrm);
  };
  const double e_out = cmp("out", test::to_f32(d_out.download()), out_ref);
  const double e_dx = cmp("dx", test::to_f32(d_dx.download()), dx_ref);
  const double e_dw = cmp("dw (combine weights)", d_dw.download(), dw_ref);
  const double e_w1 = cmp("d gate|up", d_g1.download(), dw1_ref);
  const double e_w2 = cmp("d down", d_g2.download(), dw2_ref);
  double e_s1 = 0, e_s2 = 0;
  if (n_shared > 0) {
    e_s1 = cmp("d shared gate|up", d_gs1.download(), sh_dw1_ref);
    e_s2 = cmp("d shared down", d_gs2.download(), sh_dw2_ref);
  }
  int64_t empty = 0;
  for (int64_t l : acts.load) empty += l == 0;
  std::printf(
      "  %-16s N %4lld E %3lld K %lld C %4lld I %3lld shared %lld (%s, %lld empty experts)"
      "\n    nrm err: out %.1e dx %.1e dw %.1e d gate|up %.1e d down %.1e d shared %.1e "
      "%.1e\n",
      name.c_str(), (long long)N, (long long)E, (long long)K, (long long)C, (long long)I,
      (long long)n_shared,
      n_shared == 0    ? "none"
      : a.fused_shared ? "fused group"
                       : "gemm_lt",
      (long long)empty, e_out, e_dx, e_dw, e_w1, e_w2, e_s1, e_s2);
}
#endif

TEST(CudaMoe, PermuteCombine) {
#ifndef DSEEK_HAVE_CUDA
  GTEST_SKIP() << "no CUDA device: this build has no CUDA backend (test skipped)";
#else
  DSEEK_REQUIRE_CUDA();
  run_permute_case("E16 k4", 301, 4, 16, 72, false, 1);
  run_permute_case("E16 k4 + shared", 301, 4, 16, 72, true, 2);
  run_permute_case("E64 k6 C1024 + shared", 1500, 6, 64, 1024, true, 3);  // > 1 chunk of pairs
#endif
}

TEST(CudaMoe, GroupedGemm) {
#ifndef DSEEK_HAVE_CUDA
  GTEST_SKIP() << "no CUDA device: this build has no CUDA backend (test skipped)";
#else
  DSEEK_REQUIRE_CUDA();
  const std::vector<int32_t> tiny{0, 1, 5, 130, 0, 17, 256, 3, 0, 0, 64, 129, 7, 0, 40, 2};
  run_grouped_case("E16 tiny", tiny, 72, 40, false, 11);
  run_grouped_case("E16 tiny, last separate", tiny, 136, 24, true, 12);
  std::vector<int32_t> moderate(64);
  std::mt19937_64 rng(13);
  for (int64_t g = 0; g < 64; g++) moderate[g] = (int32_t)(rng() % 200);
  moderate[5] = moderate[40] = 0;
  moderate[17] = 700;
  run_grouped_case("E64 C1024 gate_up (2I 512)", moderate, 512, 1024, false, 14);
  run_grouped_case("E64 C1024 down (I 256)", moderate, 1024, 256, true, 15);
#endif
}

TEST(CudaMoe, FfnMatchesCpuMoe) {
#ifndef DSEEK_HAVE_CUDA
  GTEST_SKIP() << "no CUDA device: this build has no CUDA backend (test skipped)";
#else
  DSEEK_REQUIRE_CUDA();
  run_ffn_case("E16 k4 tiny", 203, 16, 4, 64, 32, 1, 4, 2, 21);
  run_ffn_case("E16 k4 2 shared", 203, 16, 4, 64, 32, 2, 4, 2, 22);  // unfused shared path
  run_ffn_case("E16 k4 no shared", 97, 16, 4, 40, 24, 0, 1, 1, 23);
  run_ffn_case("E64 k6 C1024", 1024, 64, 6, 1024, 256, 1, 8, 4, 24);
#endif
}

}  // namespace
}  // namespace dseek
