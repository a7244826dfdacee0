// Causal attention per (sequence, head) through single-threaded sgemm on strided head slices:
// S = Q_h K_h^T, causal softmax by rows, O_h = P V_h; the backward mirrors it with
// dP = dO_h V_h^T, dV_h = P^T dO_h, dS = P (dP - rowsum(P dP)) scale, dQ_h = dS K_h,
// dK_h = dS^T Q_h. The products skip the blocks above the diagonal (row blocks of kRB queries
// see keys 0 .. block end). (sequence, head) pairs run in parallel when called from outside a
// parallel region; each is computed by one thread, so results do not depend on the schedule.
#include "dseek/ops/cpu/attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "dseek/ops/cpu/cpu_parallel.h"

namespace dseek {

namespace {

constexpr int64_t kRB = 64;  // query rows per causal block

// C[M, N] = op(A) op(B) (beta 0), one thread.
void mm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
        const float* B, int64_t ldb, float* C, int64_t ldc, float beta = 0.0f) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (beta == 0.0f)
      for (int64_t i = 0; i < M; i++) std::fill(C + i * ldc, C + i * ldc + N, 0.0f);
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M,
              (int)N, (int)K, 1.0f, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

std::vector<float>& scratch(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf;
}

// One head of one sequence. q/k rows stride ldq (= H*Dqk), v/out rows stride ldv (= H*Dv).
// P [T, T] receives the probabilities (zeros above the diagonal).
void head_forward(float* out, float* P, const float* q, const float* k, const float* v, int64_t T,
                  int64_t Dqk, int64_t Dv, int64_t ldq, int64_t ldv, float scale) {
  for (int64_t r0 = 0; r0 < T; r0 += kRB) {  // S[r0:r1, 0:r1] = Q K^T
    const int64_t r1 = std::min(T, r0 + kRB);
    mm(false, true, r1 - r0, r1, Dqk, q + r0 * ldq, ldq, k, ldq, P + r0 * T, T);
  }
  for (int64_t s = 0; s < T; s++) {
    float* p = P + s * T;
    const int64_t n = s + 1;
    for (int64_t t = 0; t < n; t++) p[t] *= scale;
    exp_sub_inplace(p, max_f(p, n), n);
    const float inv = (float)(1.0 / sum_d(p, n));
    for (int64_t t = 0; t < n; t++) p[t] *= inv;
    std::fill(p + n, p + T, 0.0f);
  }
  for (int64_t r0 = 0; r0 < T; r0 += kRB) {  // O[r0:r1] = P[r0:r1, 0:r1] V[0:r1]
    const int64_t r1 = std::min(T, r0 + kRB);
    mm(false, false, r1 - r0, Dv, r1, P + r0 * T, T, v, ldv, out + r0 * ldv, ldv);
  }
}

// One head of one sequence; dP is [T, T] scratch. Null outputs are skipped.
void head_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                   const float* k, const float* v, const float* P, float* dP, int64_t T,
                   int64_t Dqk, int64_t Dv, int64_t ldq, int64_t ldv, float scale) {
  // dv[c0:c1] = P[c0:T, c0:c1]^T dO[c0:T]  (keys c see queries s >= c)
  if (dv)
    for (int64_t c0 = 0; c0 < T; c0 += kRB) {
      const int64_t c1 = std::min(T, c0 + kRB);
      mm(true, false, c1 - c0, Dv, T - c0, P + c0 * T + c0, T, dout + c0 * ldv, ldv, dv + c0 * ldv,
         ldv);
    }
  if (!dq && !dk) return;
  for (int64_t r0 = 0; r0 < T; r0 += kRB) {  // dP[r0:r1, 0:r1] = dO V^T
    const int64_t r1 = std::min(T, r0 + kRB);
    mm(false, true, r1 - r0, r1, Dv, dout + r0 * ldv, ldv, v, ldv, dP + r0 * T, T);
  }
  for (int64_t s = 0; s < T; s++) {  // dS = P (dP - D) scale, D = sum_t P dP (fp64)
    const float* p = P + s * T;
    float* d = dP + s * T;
    const int64_t n = s + 1;
    const double D = dot_d(p, d, n);
    for (int64_t t = 0; t < n; t++) d[t] = p[t] * (float)(d[t] - D) * scale;
    std::fill(d + n, d + std::min(T, (s / kRB + 1) * kRB), 0.0f);  // rest of the computed block
  }
  if (dq)
    for (int64_t r0 = 0; r0 < T; r0 += kRB) {  // dq[r0:r1] = dS[r0:r1, 0:r1] K[0:r1]
      const int64_t r1 = std::min(T, r0 + kRB);
      mm(false, false, r1 - r0, Dqk, r1, dP + r0 * T, T, k, ldq, dq + r0 * ldq, ldq);
    }
  if (dk)
    for (int64_t c0 = 0; c0 < T; c0 += kRB) {  // dk[c0:c1] = dS[c0:T, c0:c1]^T Q[c0:T]
      const int64_t c1 = std::min(T, c0 + kRB);
      mm(true, false, c1 - c0, Dqk, T - c0, dP + c0 * T + c0, T, q + c0 * ldq, ldq, dk + c0 * ldq,
         ldq);
    }
}

}  // namespace

void attention_forward_batch(float* out, float* probs, const float* q, const float* k,
                             const float* v, int64_t B, int64_t T, int64_t H, int64_t Dqk,
                             int64_t Dv, float scale) {
  if (B <= 0 || T <= 0 || H <= 0) return;
  const int64_t tasks = B * H;
  const int nt = par_threads((double)tasks * T * T * (Dqk + Dv), 1e6);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
  for (int64_t i = 0; i < tasks; i++) {
    const int64_t b = i / H, h = i % H;
    const int64_t off = b * T * H;
    float* P = probs ? probs + i * T * T : scratch(T * T).data();
    head_forward(out + off * Dv + h * Dv, P, q + off * Dqk + h * Dqk, k + off * Dqk + h * Dqk,
                 v + off * Dv + h * Dv, T, Dqk, Dv, H * Dqk, H * Dv, scale);
  }
}

void attention_backward_batch(float* dq, float* dk, float* dv, const float* dout, const float* q,
                              const float* k, const float* v, const float* probs, int64_t B,
                              int64_t T, int64_t H, int64_t Dqk, int64_t Dv, float scale) {
  if (B <= 0 || T <= 0 || H <= 0 || (!dq && !dk && !dv)) return;
  const int64_t tasks = B * H;
  const int nt = par_threads((double)tasks * T * T * (Dqk + Dv), 1e6);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
  for (int64_t i = 0; i < tasks; i++) {
    const int64_t b = i / H, h = i % H;
    const int64_t off = b * T * H;
    const int64_t oq = off * Dqk + h * Dqk, ov = off * Dv + h * Dv;
    head_backward(dq ? dq + oq : nullptr, dk ? dk + oq : nullptr, dv ? dv + ov : nullptr, dout + ov,
                  q + oq, k + oq, v + ov, probs + i * T * T, scratch(T * T).data(), T, Dqk, Dv,
                  H * Dqk, H * Dv, scale);
  }
}

void attention_forward(float* out, float* probs, const float* q, const float* k, const float* v,
                       int64_t T, int64_t H, int64_t Dqk, int64_t Dv, float scale) {
  attention_forward_batch(out, probs, q, k, v, 1, T, H, Dqk, Dv, scale);
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                        const float* k, const float* v, const float* probs, int64_t T, int64_t H,
                        int64_t Dqk, int64_t Dv, float scale) {
  attention_backward_batch(dq, dk, dv, dout, q, k, v, probs, 1, T, H, Dqk, Dv, scale);
}

}  // namespace dseek
