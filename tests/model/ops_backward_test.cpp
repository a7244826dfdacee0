// Backward passes of the CPU ops against finite differences.
//
// Kit: every op has a naive double-precision reference forward written here; the scalar loss is
// L = sum(out * R) with a fixed random R, so the upstream gradient fed to the fp32 backward is
// dy = R. Central differences of the double loss (eps 1e-6, inputs are the fp32 values widened
// to double) give the reference gradient; grad_close() compares the analytic fp32 gradient to it
// norm-wise (rel < 1e-4) and per element (|got - want| <= 1e-4 (|want| + rms(want))).
// OpsBackward.KitDetectsWrongGradient checks that the comparison does fail on a wrong gradient.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

#include "dseek/core/error.h"
#include "dseek/ops/cpu/attention.h"
#include "dseek/ops/cpu/cross_entropy.h"
#include "dseek/ops/cpu/embedding.h"
#include "dseek/ops/cpu/linear.h"
#include "dseek/ops/cpu/moe_router.h"
#include "dseek/ops/cpu/rmsnorm.h"
#include "dseek/ops/cpu/rope.h"
#include "dseek/ops/cpu/swiglu.h"

using namespace dseek;

namespace {

using VecF = std::vector<float>;
using VecD = std::vector<double>;

VecF randn(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  VecF v(n);
  for (auto& x : v) x = scale * d(g);
  return v;
}

VecD to_d(const VecF& v) {
  return VecD(v.begin(), v.end());
}

// got - base, elementwise in double (gradients that were accumulated onto a prefilled buffer)
VecD minus(const VecF& got, const VecF& base) {
  VecD d(got.size());
  for (size_t i = 0; i < got.size(); i++) d[i] = (double)got[i] - base[i];
  return d;
}

// Central-difference gradient of loss() w.r.t. every element of x (perturbed in place).
VecD fd_grad(VecD& x, const std::function<double()>& loss, double eps = 1e-6) {
  VecD g(x.size());
  for (size_t i = 0; i < x.size(); i++) {
    const double x0 = x[i];
    x[i] = x0 + eps;
    const double lp = loss();
    x[i] = x0 - eps;
    const double lm = loss();
    x[i] = x0;
    g[i] = (lp - lm) / (2 * eps);
  }
  return g;
}

::testing::AssertionResult grad_close(const VecD& got, const VecD& want, double rtol = 1e-4) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  double nd = 0, nw = 0;
  for (size_t i = 0; i < got.size(); i++) {
    if (!std::isfinite(got[i])) return ::testing::AssertionFailure() << "non-finite at " << i;
    nd += (got[i] - want[i]) * (got[i] - want[i]);
    nw += want[i] * want[i];
  }
  const double rms = std::sqrt(nw / std::max<size_t>(1, want.size()));
  if (nw == 0.0) {
    if (nd != 0.0) return ::testing::AssertionFailure() << "want all zero, |got| = " << nd;
    return ::testing::AssertionSuccess();
  }
  if (std::sqrt(nd / nw) > rtol)
    return ::testing::AssertionFailure() << "norm-wise rel error " << std::sqrt(nd / nw);
  for (size_t i = 0; i < got.size(); i++)
    if (std::fabs(got[i] - want[i]) > rtol * (std::fabs(want[i]) + rms))
      return ::testing::AssertionFailure()
             << "element " << i << ": got " << got[i] << " want " << want[i];
  return ::testing::AssertionSuccess();
}
::testing::AssertionResult grad_close(const VecF& got, const VecD& want, double rtol = 1e-4) {
  return grad_close(to_d(got), want, rtol);
}

double dot(const VecD& a, const VecD& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += a[i] * b[i];
  return s;
}

// ---- double reference forwards ------------------------------------------------------------

VecD ref_linear(const VecD& x, const VecD& W, const VecD& b, int N, int IN, int OUT) {
  VecD y(N * OUT);
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OUT; o++) {
      double a = b.empty() ? 0.0 : b[o];
      for (int i = 0; i < IN; i++) a += x[n * IN + i] * W[o * IN + i];
      y[n * OUT + o] = a;
    }
  return y;
}

double sigmoid_d(double z) {
  return 1.0 / (1.0 + std::exp(-z));
}

}  // namespace

// ---- the kit itself -------------------------------------------------------------------------

TEST(OpsBackward, KitDetectsWrongGradient) {
  const int N = 3, IN = 4, OUT = 2;
  auto x = randn(N * IN, 1), W = randn(OUT * IN, 2), R = randn(N * OUT, 3);
  VecD xd = to_d(x);
  const VecD Wd = to_d(W), Rd = to_d(R);
  VecD want = fd_grad(xd, [&] { return dot(ref_linear(xd, Wd, {}, N, IN, OUT), Rd); });
  VecF dx(N * IN);
  linear_backward(dx.data(), nullptr, nullptr, R.data(), x.data(), W.data(), N, IN, OUT);
  EXPECT_TRUE(grad_close(dx, want));
  VecF bad = dx;
  bad[5] *= 1.001f;  // one element 1e-3 off
  EXPECT_FALSE(grad_close(bad, want));
  bad = dx;
  for (auto& v : bad) v = -v;
  EXPECT_FALSE(grad_close(bad, want));
  EXPECT_FALSE(grad_close(VecF(N * IN, 0.0f), want));
}

// ---- linear -------------------------------------------------------------------------------

TEST(OpsBackward, LinearWithBiasOverwriteAndAccumulate) {
  const int N = 5, IN = 7, OUT = 4;
  auto x = randn(N * IN, 11), W = randn(OUT * IN, 12), b = randn(OUT, 13), R = randn(N * OUT, 14);
  VecD xd = to_d(x), Wd = to_d(W), bd = to_d(b);
  const VecD Rd = to_d(R);
  auto loss = [&] { return dot(ref_linear(xd, Wd, bd, N, IN, OUT), Rd); };
  const VecD gx = fd_grad(xd, loss), gW = fd_grad(Wd, loss), gb = fd_grad(bd, loss);

  // accumulate = false: dx overwritten (garbage before), dW / db accumulate onto prefills
  VecF dx(N * IN, 777.0f), dW0 = randn(OUT * IN, 15), db0 = randn(OUT, 16);
  VecF dW = dW0, db = db0;
  linear_backward(dx.data(), dW.data(), db.data(), R.data(), x.data(), W.data(), N, IN, OUT);
  EXPECT_TRUE(grad_close(dx, gx));
  EXPECT_TRUE(grad_close(minus(dW, dW0), gW));
  EXPECT_TRUE(grad_close(minus(db, db0), gb));

  // accumulate = true: dx += ; a second call doubles the parameter grads
  VecF dx0 = randn(N * IN, 17);
  dx = dx0;
  linear_backward(dx.data(), dW.data(), db.data(), R.data(), x.data(), W.data(), N, IN, OUT,
                  /*accumulate=*/true);
  EXPECT_TRUE(grad_close(minus(dx, dx0), gx));
  VecD g2W(gW), g2b(gb);
  for (auto& v : g2W) v *= 2;
  for (auto& v : g2b) v *= 2;
  EXPECT_TRUE(grad_close(minus(dW, dW0), g2W));
  EXPECT_TRUE(grad_close(minus(db, db0), g2b));

  // null dx and db: only dW
  VecF dW1(OUT * IN, 0.0f);
  linear_backward(nullptr, dW1.data(), nullptr, R.data(), x.data(), W.data(), N, IN, OUT);
  EXPECT_TRUE(grad_close(dW1, gW));
}

TEST(OpsBackward, LinearBlasMatchesNaive) {
  const int N = 33, IN = 65, OUT = 300;  // OUT > one db column block
  auto x = randn(N * IN, 21), W = randn(OUT * IN, 22), R = randn(N * OUT, 23);
  VecF dx(N * IN), dW(OUT * IN, 0.5f), db(OUT, -0.25f);
  VecF dxr(N * IN), dWr = dW, dbr = db;
  linear_backward(dx.data(), dW.data(), db.data(), R.data(), x.data(), W.data(), N, IN, OUT);
  linear_backward_naive(dxr.data(), dWr.data(), dbr.data(), R.data(), x.data(), W.data(), N, IN,
                        OUT);
  EXPECT_TRUE(grad_close(dx, to_d(dxr), 1e-5));
  EXPECT_TRUE(grad_close(dW, to_d(dWr), 1e-5));
  EXPECT_TRUE(grad_close(db, to_d(dbr), 1e-5));
}

// ---- rmsnorm ------------------------------------------------------------------------------

TEST(OpsBackward, RmsNormStrided) {
  const int N = 4, C = 16, ldx = C + 3, lddy = C + 5, lddx = C + 2;
  const float eps = 1e-5f;
  auto xs = randn(N * ldx, 31), w = randn(C, 32), Rs = randn(N * lddy, 33);
  // the gaps of the strided inputs hold huge values: reading them would wreck the result
  for (int n = 0; n < N; n++) {
    for (int j = C; j < ldx; j++) xs[n * ldx + j] = 1e6f;
    for (int j = C; j < lddy; j++) Rs[n * lddy + j] = 1e6f;
  }
  VecF y(N * C), rstd(N);
  rmsnorm_forward(y.data(), C, rstd.data(), xs.data(), ldx, w.data(), N, C, eps);

  VecD xd(N * C), wd = to_d(w), Rd(N * C);
  for (int n = 0; n < N; n++)
    for (int j = 0; j < C; j++) {
      xd[n * C + j] = xs[n * ldx + j];
      Rd[n * C + j] = Rs[n * lddy + j];
    }
  auto loss = [&] {
    double L = 0;
    for (int n = 0; n < N; n++) {
      double ss = 0;
      for (int j = 0; j < C; j++) ss += xd[n * C + j] * xd[n * C + j];
      const double r = 1.0 / std::sqrt(ss / C + eps);
      for (int j = 0; j < C; j++) L += xd[n * C + j] * r * wd[j] * Rd[n * C + j];
    }
    return L;
  };
  const VecD gx = fd_grad(xd, loss), gw = fd_grad(wd, loss);

  auto compact = [&](const VecF& a, int ld) {
    VecD c(N * C);
    for (int n = 0; n < N; n++)
      for (int j = 0; j < C; j++) c[n * C + j] = a[n * ld + j];
    return c;
  };
  const float sentinel = -4242.0f;
  VecF dx(N * lddx, sentinel), dw0 = randn(C, 34), dw = dw0;
  rmsnorm_backward(dx.data(), lddx, dw.data(), Rs.data(), lddy, xs.data(), ldx, w.data(),
                   rstd.data(), N, C);
  EXPECT_TRUE(grad_close(compact(dx, lddx), gx));
  EXPECT_TRUE(grad_close(minus(dw, dw0), gw));
  for (int n = 0; n < N; n++)
    for (int j = C; j < lddx; j++) EXPECT_EQ(dx[n * lddx + j], sentinel) << "gap written";

  // accumulate = true, and dw null
  VecF dx0 = randn(N * lddx, 35), dxa = dx0;
  rmsnorm_backward(dxa.data(), lddx, nullptr, Rs.data(), lddy, xs.data(), ldx, w.data(),
                   rstd.data(), N, C, /*accumulate=*/true);
  VecD inc = compact(dxa, lddx), base = compact(dx0, lddx);
  for (size_t i = 0; i < inc.size(); i++) inc[i] -= base[i];
  EXPECT_TRUE(grad_close(inc, gx));

  // in place: dx aliases dy (same stride) gives the same dx and dw
  VecF dyx = Rs, dw2 = dw0;
  rmsnorm_backward(dyx.data(), lddy, dw2.data(), dyx.data(), lddy, xs.data(), ldx, w.data(),
                   rstd.data(), N, C);
  for (int n = 0; n < N; n++)
    for (int j = 0; j < C; j++) EXPECT_EQ(dyx[n * lddy + j], dx[n * lddx + j]);
  for (int j = 0; j < C; j++) EXPECT_EQ(dw2[j], dw[j]);
}

TEST(OpsBackward, RmsNormParallelMatchesRows) {
  const int N = 40, C = 2048;  // N * C > the parallel threshold
  auto x = randn(N * C, 41), w = randn(C, 42), R = randn(N * C, 43);
  VecF y(N * C), rstd(N);
  rmsnorm_forward(y.data(), C, rstd.data(), x.data(), C, w.data(), N, C, 1e-6f);
  VecF dx(N * C), dw(C, 0.0f), dxr(N * C), dwr(C, 0.0f);
  rmsnorm_backward(dx.data(), C, dw.data(), R.data(), C, x.data(), C, w.data(), rstd.data(), N, C);
  for (int n = 0; n < N; n++)  // row by row: the serial path
    rmsnorm_backward(dxr.data() + n * C, C, nullptr, R.data() + n * C, C, x.data() + n * C, C,
                     w.data(), rstd.data() + n, 1, C);
  for (int i = 0; i < N * C; i++) ASSERT_EQ(dx[i], dxr[i]) << i;
  VecD want(C, 0.0);
  for (int n = 0; n < N; n++)
    for (int j = 0; j < C; j++) want[j] += (double)R[n * C + j] * x[n * C + j] * rstd[n];
  EXPECT_TRUE(grad_close(dw, want, 1e-5));
}

// ---- rope ---------------------------------------------------------------------------------

namespace {
void rope_case(bool interleaved, float attention_factor) {
  const int N = 4, nh = 2, half = 4, Dr = 2 * half, ld_head = Dr + 2, ld_tok = nh * ld_head + 3;
  const int len = N * ld_tok;
  VecF inv = {1.0f, 0.3f, 0.05f, 0.002f};
  std::vector<int32_t> pos = {0, 3, 7, 12};
  VecF c(N * half), s(N * half);
  rope_tables(c.data(), s.data(), pos.data(), N, inv.data(), half, attention_factor);
  auto x = randn(len, 51), R = randn(len, 52);
  // The op is in place: the loss covers the whole buffer (gaps pass through unchanged).
  VecD xd = to_d(x);
  const VecD Rd = to_d(R);
  auto loss = [&] {
    VecD o = xd;
    for (int n = 0; n < N; n++)
      for (int h = 0; h < nh; h++) {
        double* v = o.data() + n * ld_tok + h * ld_head;
        for (int i = 0; i < half; i++) {
          double* pa = interleaved ? &v[2 * i] : &v[i];
          double* pb = interleaved ? &v[2 * i + 1] : &v[i + half];
          const double a = *pa, b = *pb, cc = c[n * half + i], ss = s[n * half + i];
          *pa = a * cc - b * ss;
          *pb = a * ss + b * cc;
        }
      }
    return dot(o, Rd);
  };
  const VecD gx = fd_grad(xd, loss);
  VecF d = R;
  rope_backward(d.data(), N, nh, ld_tok, ld_head, c.data(), s.data(), half, interleaved);
  EXPECT_TRUE(grad_close(d, gx)) << "interleaved=" << interleaved;
  if (attention_factor == 1.0f) {  // rotations are orthogonal: backward(forward(x)) == x
    VecF y = x;
    rope_forward(y.data(), N, nh, ld_tok, ld_head, c.data(), s.data(), half, interleaved);
    rope_backward(y.data(), N, nh, ld_tok, ld_head, c.data(), s.data(), half, interleaved);
    for (int i = 0; i < len; i++) EXPECT_NEAR(y[i], x[i], 1e-6f) << i;
  }
}
}  // namespace

TEST(OpsBackward, RopeInterleaved) {
  rope_case(true, 1.0f);
}
TEST(OpsBackward, RopeHalfLayout) {
  rope_case(false, 1.0f);
}
TEST(OpsBackward, RopeWithAttentionFactorIsTheTranspose) {
  rope_case(true, 0.8f);
  rope_case(false, 1.3f);
}

// ---- swiglu -------------------------------------------------------------------------------

TEST(OpsBackward, SwigluIncludingLargeGate) {
  VecF g = randn(48, 61, 2.0f);
  const VecF big = {-1000.f, -100.f, -30.f, -20.f, -10.f, -5.f,
                    5.f,     10.f,   20.f,  30.f,  100.f, 1000.f};
  g.insert(g.end(), big.begin(), big.end());
  const int n = (int)g.size();
  auto u = randn(n, 62), R = randn(n, 63);
  // The op is elementwise, so each term of L = sum silu(g) u R is differenced on its own: with
  // |g| = 1000 in the sum, the rounding of L (~1e-13) over eps would swamp the small gradients.
  VecD gg(n), gu(n);
  for (int i = 0; i < n; i++) {
    VecD gd = {(double)g[i]}, ud = {(double)u[i]};
    auto term = [&] { return gd[0] / (1.0 + std::exp(-gd[0])) * ud[0] * R[i]; };
    gg[i] = fd_grad(gd, term)[0];
    gu[i] = fd_grad(ud, term)[0];
  }
  VecF dg(n, 777.f), du(n, 777.f);
  swiglu_backward(dg.data(), du.data(), R.data(), g.data(), u.data(), n);
  EXPECT_TRUE(grad_close(dg, gg));
  EXPECT_TRUE(grad_close(du, gu));
  // per-element relative check at the large gates (where 1 - sigmoid cancels)
  for (int i = 48; i < n; i++) {
    EXPECT_NEAR(dg[i], gg[i], 1e-5 * std::fabs(gg[i]) + 1e-30) << "g=" << g[i];
    EXPECT_NEAR(du[i], gu[i], 1e-5 * std::fabs(gu[i]) + 1e-30) << "g=" << g[i];
  }
  // null outputs are skipped
  VecF dg2(n);
  swiglu_backward(dg2.data(), nullptr, R.data(), g.data(), u.data(), n);
  EXPECT_EQ(dg2, dg);
}

// ---- attention ----------------------------------------------------------------------------

TEST(OpsBackward, AttentionCausal) {
  const int T = 5, H = 3, Dqk = 6, Dv = 4;
  const float scale = 0.4f;
  auto q = randn(T * H * Dqk, 71), k = randn(T * H * Dqk, 72), v = randn(T * H * Dv, 73);
  auto R = randn(T * H * Dv, 74);
  VecF out(T * H * Dv), probs(H * T * T);
  attention_forward(out.data(), probs.data(), q.data(), k.data(), v.data(), T, H, Dqk, Dv, scale);

  VecD qd = to_d(q), kd = to_d(k), vd = to_d(v);
  const VecD Rd = to_d(R);
  auto loss = [&] {
    double L = 0;
    for (int h = 0; h < H; h++)
      for (int s = 0; s < T; s++) {
        VecD sc(s + 1);
        double mx = -1e300;
        for (int t = 0; t <= s; t++) {
          double d = 0;
          for (int i = 0; i < Dqk; i++) d += qd[(s * H + h) * Dqk + i] * kd[(t * H + h) * Dqk + i];
          sc[t] = d * scale;
          mx = std::max(mx, sc[t]);
        }
        double sum = 0;
        for (int t = 0; t <= s; t++) sum += (sc[t] = std::exp(sc[t] - mx));
        for (int i = 0; i < Dv; i++) {
          double o = 0;
          for (int t = 0; t <= s; t++) o += sc[t] / sum * vd[(t * H + h) * Dv + i];
          L += o * Rd[(s * H + h) * Dv + i];
        }
      }
    return L;
  };
  const VecD gq = fd_grad(qd, loss), gk = fd_grad(kd, loss), gv = fd_grad(vd, loss);
  VecF dq(q.size(), 777.f), dk(k.size(), 777.f), dv(v.size(), 777.f);
  attention_backward(dq.data(), dk.data(), dv.data(), R.data(), q.data(), k.data(), v.data(),
                     probs.data(), T, H, Dqk, Dv, scale);
  EXPECT_TRUE(grad_close(dq, gq));
  EXPECT_TRUE(grad_close(dk, gk));
  EXPECT_TRUE(grad_close(dv, gv));
  // the last key is seen only by the last query; each null output is skipped
  VecF dv2(v.size(), 777.f);
  attention_backward(nullptr, nullptr, dv2.data(), R.data(), q.data(), k.data(), v.data(),
                     probs.data(), T, H, Dqk, Dv, scale);
  EXPECT_EQ(dv2, dv);
}

// ---- MoE router ---------------------------------------------------------------------------

namespace {
// FD on the logits with the selection idx held fixed; also checks that the selection really is
// locally constant (re-running the fp32 forward on logits perturbed by +-1e-3 keeps idx).
void router_case(const RouterParams& p, const VecF& logits, const VecF& bias, int N,
                 uint64_t seed) {
  const int64_t E = p.n_experts, K = p.top_k;
  std::vector<int32_t> idx(N * K);
  VecF w(N * K), scores(N * E);
  const float* bp = bias.empty() ? nullptr : bias.data();
  moe_router_forward(idx.data(), w.data(), scores.data(), logits.data(), bp, N, p);

  for (size_t i = 0; i < logits.size(); i++)
    for (float delta : {-1e-3f, 1e-3f}) {
      VecF lp = logits;
      lp[i] += delta;
      std::vector<int32_t> idx2(N * K);
      VecF w2(N * K);
      moe_router_forward(idx2.data(), w2.data(), nullptr, lp.data(), bp, N, p);
      ASSERT_EQ(idx2, idx) << "selection not stable at logit " << i << "; pick other logits";
    }

  VecD ld = to_d(logits);
  auto weights = [&] {
    VecD wd(N * K);
    for (int n = 0; n < N; n++) {
      VecD s(E);
      if (p.sigmoid) {
        for (int e = 0; e < E; e++) s[e] = sigmoid_d(ld[n * E + e]);
      } else {
        double mx = -1e300, sum = 0;
        for (int e = 0; e < E; e++) mx = std::max(mx, ld[n * E + e]);
        for (int e = 0; e < E; e++) sum += (s[e] = std::exp(ld[n * E + e] - mx));
        for (int e = 0; e < E; e++) s[e] /= sum;
      }
      double S = 0;
      for (int k = 0; k < K; k++) S += s[idx[n * K + k]];
      for (int k = 0; k < K; k++) {
        const double sk = s[idx[n * K + k]];
        wd[n * K + k] = p.scaling * (p.norm_topk ? sk / (S + 1e-20) : sk);
      }
    }
    return wd;
  };
  // the reference reproduces the forward's weights
  const VecD w_ref = weights();
  for (int i = 0; i < N * K; i++) EXPECT_NEAR(w[i], w_ref[i], 1e-6 * (1 + std::fabs(w_ref[i])));

  const VecF R = randn(N * K, seed);
  const VecD Rd = to_d(R);
  const VecD gl = fd_grad(ld, [&] { return dot(weights(), Rd); });
  VecF dl(N * E, 777.f);
  moe_router_backward(dl.data(), R.data(), idx.data(), scores.data(), N, p);
  EXPECT_TRUE(grad_close(dl, gl)) << "sigmoid=" << p.sigmoid << " norm_topk=" << p.norm_topk;
  if (p.sigmoid) {  // unselected experts get exactly zero
    for (int n = 0; n < N; n++)
      for (int e = 0; e < E; e++) {
        const bool sel = std::find(idx.begin() + n * K, idx.begin() + (n + 1) * K, e) !=
                         idx.begin() + (n + 1) * K;
        if (!sel) {
          EXPECT_EQ(dl[n * E + e], 0.0f);
        }
      }
  } else {  // softmax: every logit gets a gradient
    for (int i = 0; i < N * E; i++) EXPECT_NE(dl[i], 0.0f) << i;
  }
}

// Rows of well separated logits: a seeded shuffle of an evenly spaced ladder.
VecF ladder_logits(int N, int E, float lo, float step, uint64_t seed) {
  std::mt19937_64 g(seed);
  VecF l;
  for (int n = 0; n < N; n++) {
    VecF row(E);
    for (int e = 0; e < E; e++) row[e] = lo + step * e;
    std::shuffle(row.begin(), row.end(), g);
    l.insert(l.end(), row.begin(), row.end());
  }
  return l;
}
}  // namespace

TEST(OpsBackward, RouterV3SigmoidNormTopk) {
  RouterParams p{.n_experts = 8,
                 .top_k = 3,
                 .n_group = 4,
                 .topk_group = 2,
                 .sigmoid = true,
                 .group_limited = true,
                 .norm_topk = true,
                 .scaling = 2.5f};
  const int N = 3;
  const VecF bias = randn(8, 81, 0.01f);
  router_case(p, ladder_logits(N, 8, -2.0f, 0.55f, 82), bias, N, 83);
}

TEST(OpsBackward, RouterV3SigmoidNoNorm) {
  RouterParams p{.n_experts = 8,
                 .top_k = 3,
                 .n_group = 4,
                 .topk_group = 2,
                 .sigmoid = true,
                 .group_limited = true,
                 .norm_topk = false,
                 .scaling = 2.5f};
  const int N = 3;
  const VecF bias = randn(8, 84, 0.01f);
  router_case(p, ladder_logits(N, 8, -2.0f, 0.55f, 85), bias, N, 86);
}

TEST(OpsBackward, RouterV2Softmax) {
  RouterParams p{.n_experts = 6,
                 .top_k = 2,
                 .n_group = 1,
                 .topk_group = 1,
                 .sigmoid = false,
                 .group_limited = false,
                 .norm_topk = false,
                 .scaling = 2.0f};
  const int N = 3;
  router_case(p, ladder_logits(N, 6, -1.5f, 0.5f, 91), {}, N, 92);
  // group-limited greedy (3 groups of 2, keep 2) and the renormalized variant
  p.n_group = 3;
  p.topk_group = 2;
  p.group_limited = true;
  router_case(p, ladder_logits(N, 6, -1.5f, 0.5f, 93), {}, N, 94);
  p.norm_topk = true;
  router_case(p, ladder_logits(N, 6, -1.5f, 0.5f, 95), {}, N, 96);
}

// ---- cross-entropy ------------------------------------------------------------------------

namespace {
double ref_ce(const VecD& l, const std::vector<int32_t>& tg, int N, int V) {
  double L = 0;
  for (int n = 0; n < N; n++) {
    if (tg[n] < 0) continue;
    double mx = -1e300, sum = 0;
    for (int v = 0; v < V; v++) mx = std::max(mx, l[n * V + v]);
    for (int v = 0; v < V; v++) sum += std::exp(l[n * V + v] - mx);
    L += mx + std::log(sum) - l[n * V + tg[n]];
  }
  return L;
}
}  // namespace

TEST(OpsBackward, CrossEntropyIgnoredRowsAndAliasing) {
  const int N = 6, V = 11;
  const std::vector<int32_t> tg = {3, -1, 0, 10, -100, 5};
  const float gs = 0.25f;
  auto logits = randn(N * V, 101, 2.0f);
  VecD ld = to_d(logits);
  const double Lref = ref_ce(ld, tg, N, V);
  const VecD gl = fd_grad(ld, [&] { return gs * ref_ce(ld, tg, N, V); });

  VecF d(N * V, 777.f);
  int64_t count = -1;
  const double L =
      cross_entropy_forward_backward(d.data(), logits.data(), tg.data(), N, V, gs, &count);
  EXPECT_EQ(count, 4);
  EXPECT_NEAR(L, Lref, 1e-6 * std::fabs(Lref));
  EXPECT_TRUE(grad_close(d, gl));
  for (int n : {1, 4})
    for (int v = 0; v < V; v++) EXPECT_EQ(d[n * V + v], 0.0f) << "ignored row " << n;

  // in place: dlogits == logits gives the same loss and bitwise the same gradient
  VecF inplace = logits;
  const double L2 =
      cross_entropy_forward_backward(inplace.data(), inplace.data(), tg.data(), N, V, gs, nullptr);
  EXPECT_EQ(L2, L);
  EXPECT_EQ(inplace, d);
  // loss only
  EXPECT_EQ(cross_entropy_forward_backward(nullptr, logits.data(), tg.data(), N, V, gs, nullptr),
            L);
}

TEST(OpsBackward, CrossEntropyLargeLogitsAndBadTarget) {
  const int N = 3, V = 7;
  std::vector<int32_t> tg = {1, 6, 0};
  auto logits = randn(N * V, 111, 3.0f);
  for (auto& x : logits) x += 1000.0f;  // exp would overflow without the max subtraction
  VecD ld = to_d(logits);
  const VecD gl = fd_grad(ld, [&] { return ref_ce(ld, tg, N, V); });
  VecF d(N * V);
  const double L =
      cross_entropy_forward_backward(d.data(), logits.data(), tg.data(), N, V, 1.0f, nullptr);
  const double Lref = ref_ce(to_d(logits), tg, N, V);
  EXPECT_TRUE(std::isfinite(L));
  EXPECT_NEAR(L, Lref, 1e-6 * std::fabs(Lref));
  EXPECT_TRUE(grad_close(d, gl));
  tg[2] = V;
  EXPECT_THROW(
      cross_entropy_forward_backward(d.data(), logits.data(), tg.data(), N, V, 1.0f, nullptr),
      dseek::Error);
}

TEST(OpsBackward, CrossEntropyParallelMatchesRows) {
  const int N = 64, V = 2000;  // N * V > the parallel threshold
  auto logits = randn(N * V, 121, 3.0f);
  std::vector<int32_t> tg(N);
  for (int n = 0; n < N; n++) tg[n] = n % 7 == 3 ? -1 : (n * 37) % V;
  VecF d(N * V), dr(N * V);
  int64_t count = 0;
  const double L =
      cross_entropy_forward_backward(d.data(), logits.data(), tg.data(), N, V, 1.0f / 55, &count);
  double Lr = 0;
  for (int n = 0; n < N; n++)
    Lr += cross_entropy_forward_backward(dr.data() + n * V, logits.data() + n * V, tg.data() + n, 1,
                                         V, 1.0f / 55, nullptr);
  EXPECT_EQ(count, 55);
  EXPECT_EQ(L, Lr);
  EXPECT_EQ(d, dr);
}

// ---- embedding ----------------------------------------------------------------------------

TEST(OpsBackward, EmbeddingRepeatedIds) {
  const int Vt = 4, C = 5, N = 7;
  const std::vector<int32_t> ids = {2, 0, 2, 3, 2, 1, 0};
  auto table = randn(Vt * C, 131), R = randn(N * C, 132);
  VecF out(N * C);
  embedding_forward(out.data(), table.data(), ids.data(), N, C);
  for (int n = 0; n < N; n++)
    for (int j = 0; j < C; j++) EXPECT_EQ(out[n * C + j], table[ids[n] * C + j]);

  VecD td = to_d(table);
  const VecD Rd = to_d(R);
  const VecD gt = fd_grad(td, [&] {
    double L = 0;
    for (int n = 0; n < N; n++)
      for (int j = 0; j < C; j++) L += td[ids[n] * C + j] * Rd[n * C + j];
    return L;
  });
  VecF dt0 = randn(Vt * C, 133), dt = dt0;
  embedding_backward(dt.data(), R.data(), ids.data(), N, C);
  EXPECT_TRUE(grad_close(minus(dt, dt0), gt));

  const std::vector<int32_t> bad = {0, -1};
  EXPECT_THROW(embedding_forward(out.data(), table.data(), bad.data(), 2, C), dseek::Error);
  EXPECT_THROW(embedding_backward(dt.data(), R.data(), bad.data(), 2, C), dseek::Error);
}

TEST(OpsBackward, EmbeddingParallel) {
  const int Vt = 10, C = 700, N = 300;  // N * C > the parallel threshold; C spans 3 blocks
  std::vector<int32_t> ids(N);
  for (int n = 0; n < N; n++) ids[n] = (n * n + 3) % Vt;
  auto R = randn(N * C, 141);
  VecF dt(Vt * C, 1.0f);
  embedding_backward(dt.data(), R.data(), ids.data(), N, C);
  VecD want(Vt * C, 0.0);
  for (int n = 0; n < N; n++)
    for (int j = 0; j < C; j++) want[ids[n] * C + j] += R[n * C + j];
  EXPECT_TRUE(grad_close(minus(dt, VecF(Vt * C, 1.0f)), want, 1e-5));
}
