// Linear / GEMM on the CPU through CBLAS (OpenBLAS), with a naive reference.
//
// Threading: a large product called outside a parallel region is cut into row (or column)
// chunks run by an `omp for` over the team, each chunk one single-threaded sgemm (OpenBLAS does
// not thread inside an active region). Chunk boundaries do not depend on the thread count, and
// each output element is computed by one sgemm over the whole K, so results are the same run to
// run. Small products (M*N*K below OpenBLAS's own threading threshold) and calls from inside a
// parallel region are one direct sgemm.
#include "dseek/ops/cpu/linear.h"

#include <cblas.h>

#include <algorithm>
#include <vector>

#include "dseek/ops/cpu/cpu_parallel.h"

namespace dseek {

namespace {

// OpenBLAS 0.3.21 threads sgemm above M*N*K = 65536 * 4; from there on we split ourselves.
constexpr double kSplitMNK = 262144.0;
constexpr int64_t kAlign = 16;  // chunk edges on multiples of the sgemm kernel's M unroll

struct Gemm {  // C[M, N] = beta C + op(A) op(B) (+ bias[j0 + j] on each row)
  bool ta = false, tb = false;
  int64_t M = 0, N = 0, K = 0;
  const float* A = nullptr;
  int64_t lda = 0;
  const float* B = nullptr;
  int64_t ldb = 0;
  float beta = 0.0f;
  float* C = nullptr;
  int64_t ldc = 0;
  const float* bias = nullptr;  // [N] added to every row after the product (may be null)
};

void run_gemm(const Gemm& g) {
  if (g.M <= 0 || g.N <= 0) return;
  if (g.K <= 0) {  // empty contraction: C = beta C, which BLAS may skip
    if (g.beta == 0.0f)
      for (int64_t i = 0; i < g.M; i++) std::fill(g.C + i * g.ldc, g.C + i * g.ldc + g.N, 0.0f);
  } else {
    cblas_sgemm(CblasRowMajor, g.ta ? CblasTrans : CblasNoTrans, g.tb ? CblasTrans : CblasNoTrans,
                (int)g.M, (int)g.N, (int)g.K, 1.0f, g.A, (int)g.lda, g.B, (int)g.ldb, g.beta, g.C,
                (int)g.ldc);
  }
  if (g.bias)
    for (int64_t i = 0; i < g.M; i++) {
      float* r = g.C + i * g.ldc;
      for (int64_t j = 0; j < g.N; j++) r[j] += g.bias[j];
    }
}

// Rows [m0, m0 + mc) of g.
Gemm rows_of(const Gemm& g, int64_t m0, int64_t mc) {
  Gemm s = g;
  s.M = mc;
  s.A = g.ta ? g.A + m0 : g.A + m0 * g.lda;
  s.C = g.C + m0 * g.ldc;
  return s;
}
// Columns [n0, n0 + nc) of g.
Gemm cols_of(const Gemm& g, int64_t n0, int64_t nc) {
  Gemm s = g;
  s.N = nc;
  s.B = g.tb ? g.B + n0 * g.ldb : g.B + n0;
  s.C = g.C + n0;
  if (g.bias) s.bias = g.bias + n0;
  return s;
}

// Appends g cut into about `parts` chunks along its larger output dimension.
void split_gemm(std::vector<Gemm>& out, const Gemm& g, int parts) {
  const bool by_rows = g.M >= g.N || g.N < 2 * kAlign;
  const int64_t D = by_rows ? g.M : g.N;
  int64_t step = (D + parts - 1) / parts;
  step = std::max<int64_t>(2 * kAlign, (step + kAlign - 1) / kAlign * kAlign);
  for (int64_t d0 = 0; d0 < D; d0 += step) {
    const int64_t dc = std::min(step, D - d0);
    out.push_back(by_rows ? rows_of(g, d0, dc) : cols_of(g, d0, dc));
  }
}

double mnk(const Gemm& g) {
  return (double)g.M * (double)g.N * (double)std::max<int64_t>(g.K, 1);
}

// Runs the products, split over the team when they are large enough. Chunks are a fixed
// function of the shapes (not of the thread count): 8 per product (a few per thread, so a
// thread slowed by another process on its core hands work to the others).
void run_gemms(const Gemm* gs, int n) {
  double total = 0.0;
  for (int i = 0; i < n; i++) total += mnk(gs[i]);
  const int nt = par_threads(total, kSplitMNK);
  if (nt == 1) {
    for (int i = 0; i < n; i++) run_gemm(gs[i]);
    return;
  }
  std::vector<Gemm> tasks;
  for (int i = 0; i < n; i++)
    if (gs[i].M > 0 && gs[i].N > 0) split_gemm(tasks, gs[i], 8);
  std::stable_sort(tasks.begin(), tasks.end(),
                   [](const Gemm& a, const Gemm& b) { return mnk(a) > mnk(b); });
  const int64_t nt_tasks = (int64_t)tasks.size();
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
  for (int64_t i = 0; i < nt_tasks; i++) run_gemm(tasks[i]);
}

// One GEMM, out (+)= op(A) op(B), with op = transpose where ta / tb.
void gemm_one(bool ta, bool tb, float* out, int64_t ldo, const float* A, int64_t lda,
              const float* B, int64_t ldb, int64_t M, int64_t N, int64_t K, float beta) {
  Gemm g{.ta = ta,
         .tb = tb,
         .M = M,
         .N = N,
         .K = K,
         .A = A,
         .lda = lda,
         .B = B,
         .ldb = ldb,
         .beta = beta,
         .C = out,
         .ldc = ldo};
  run_gemms(&g, 1);
}

}  // namespace

void gemm_nt(float* out, int64_t ldo, const float* A, int64_t lda, const float* B, int64_t ldb,
             int64_t M, int64_t N, int64_t K, float beta) {
  gemm_one(false, true, out, ldo, A, lda, B, ldb, M, N, K, beta);
}

void gemm_nn(float* out, int64_t ldo, const float* A, int64_t lda, const float* B, int64_t ldb,
             int64_t M, int64_t N, int64_t K, float beta) {
  gemm_one(false, false, out, ldo, A, lda, B, ldb, M, N, K, beta);
}

void gemm_tn(float* out, int64_t ldo, const float* A, int64_t lda, const float* B, int64_t ldb,
             int64_t M, int64_t N, int64_t K, float beta) {
  gemm_one(true, false, out, ldo, A, lda, B, ldb, M, N, K, beta);
}

void linear_forward(float* out, const float* in, const float* W, const float* bias, int64_t N,
                    int64_t IN, int64_t OUT) {
  Gemm g{.ta = false,
         .tb = true,
         .M = N,
         .N = OUT,
         .K = IN,
         .A = in,
         .lda = IN,
         .B = W,
         .ldb = IN,
         .beta = 0.0f,
         .C = out,
         .ldc = OUT,
         .bias = bias};
  run_gemms(&g, 1);
}

void linear_forward_naive(float* out, const float* in, const float* W, const float* bias, int64_t N,
                          int64_t IN, int64_t OUT) {
  for (int64_t n = 0; n < N; n++)
    for (int64_t o = 0; o < OUT; o++) {
      double acc = bias ? bias[o] : 0.0;
      for (int64_t i = 0; i < IN; i++) acc += (double)in[n * IN + i] * W[o * IN + i];
      out[n * OUT + o] = (float)acc;
    }
}

// ---- backward ------------------------------------------------------------------------------

void linear_backward(float* dx, float* dW, float* db, const float* dy, const float* x,
                     const float* W, int64_t N, int64_t IN, int64_t OUT, bool accumulate) {
  Gemm gs[2];
  int n = 0;
  if (dx)  // dx = dy W
    gs[n++] = Gemm{.ta = false,
                   .tb = false,
                   .M = N,
                   .N = IN,
                   .K = OUT,
                   .A = dy,
                   .lda = OUT,
                   .B = W,
                   .ldb = IN,
                   .beta = accumulate ? 1.0f : 0.0f,
                   .C = dx,
                   .ldc = IN};
  if (dW && N > 0)  // dW += dy^T x
    gs[n++] = Gemm{.ta = true,
                   .tb = false,
                   .M = OUT,
                   .N = IN,
                   .K = N,
                   .A = dy,
                   .lda = OUT,
                   .B = x,
                   .ldb = IN,
                   .beta = 1.0f,
                   .C = dW,
                   .ldc = IN};
  run_gemms(gs, n);
  if (db) {
    // column blocks: each thread owns whole columns, rows summed in order (deterministic)
    constexpr int64_t kB = 256;
    const int64_t nblk = (OUT + kB - 1) / kB;
#pragma omp parallel for schedule(static) if (N * OUT > 65536 && nblk > 1)
    for (int64_t b = 0; b < nblk; b++) {
      const int64_t o0 = b * kB, o1 = std::min(OUT, o0 + kB);
      double acc[kB] = {};
      for (int64_t n = 0; n < N; n++) {
        const float* r = dy + n * OUT;
        for (int64_t o = o0; o < o1; o++) acc[o - o0] += r[o];
      }
      for (int64_t o = o0; o < o1; o++) db[o] += (float)acc[o - o0];
    }
  }
}

void weight_grad_blocks(std::vector<WeightGradBlock>& out, float* dW, float* db, const float* dy,
                        const float* x, int64_t N, int64_t IN, int64_t OUT, int64_t rows) {
  if (N <= 0 || (!dW && !db)) return;
  for (int64_t o0 = 0; o0 < OUT; o0 += rows)
    out.push_back({dW, db, dy, x, N, IN, OUT, o0, std::min(OUT, o0 + rows)});
}

void run_weight_grad_block(const WeightGradBlock& b) {
  if (b.N <= 0 || b.o1 <= b.o0) return;
  if (b.dW)
    run_gemm(Gemm{.ta = true,
                  .tb = false,
                  .M = b.o1 - b.o0,
                  .N = b.IN,
                  .K = b.N,
                  .A = b.dy + b.o0,
                  .lda = b.OUT,
                  .B = b.x,
                  .ldb = b.IN,
                  .beta = 1.0f,
                  .C = b.dW + b.o0 * b.IN,
                  .ldc = b.IN});
  if (b.db) {  // rows summed in order in fp64, as linear_backward does
    std::vector<double> acc(b.o1 - b.o0, 0.0);
    for (int64_t n = 0; n < b.N; n++) {
      const float* r = b.dy + n * b.OUT;
      for (int64_t o = b.o0; o < b.o1; o++) acc[o - b.o0] += r[o];
    }
    for (int64_t o = b.o0; o < b.o1; o++) b.db[o] += (float)acc[o - b.o0];
  }
}

void linear_backward_naive(float* dx, float* dW, float* db, const float* dy, const float* x,
                           const float* W, int64_t N, int64_t IN, int64_t OUT, bool accumulate) {
  if (dx)
    for (int64_t n = 0; n < N; n++)
      for (int64_t i = 0; i < IN; i++) {
        double acc = 0.0;
        for (int64_t o = 0; o < OUT; o++) acc += (double)dy[n * OUT + o] * W[o * IN + i];
        dx[n * IN + i] = accumulate ? dx[n * IN + i] + (float)acc : (float)acc;
      }
  if (dW)
    for (int64_t o = 0; o < OUT; o++)
      for (int64_t i = 0; i < IN; i++) {
        double acc = 0.0;
        for (int64_t n = 0; n < N; n++) acc += (double)dy[n * OUT + o] * x[n * IN + i];
        dW[o * IN + i] += (float)acc;
      }
  if (db)
    for (int64_t o = 0; o < OUT; o++) {
      double acc = 0.0;
      for (int64_t n = 0; n < N; n++) acc += dy[n * OUT + o];
      db[o] += (float)acc;
    }
}

}  // namespace dseek
