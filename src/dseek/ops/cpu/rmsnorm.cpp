#include "dseek/ops/cpu/rmsnorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "dseek/ops/cpu/cpu_parallel.h"

namespace dseek {

namespace {
constexpr double kParElems = 65536.0;
constexpr int64_t kRowBlock = 64;  // rows per task; the dw partials are per block (fixed order)
}  // namespace

void rmsnorm_forward(float* out, int64_t ldo, float* rstd, const float* x, int64_t ldx,
                     const float* w, int64_t N, int64_t C, float eps) {
  const int nt = par_threads((double)N * C, kParElems);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
  for (int64_t n = 0; n < N; n++) {
    const float* xr = x + n * ldx;
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < C; j++) ss += (double)xr[j] * xr[j];
    float r = 1.0f / std::sqrt((float)(ss / C) + eps);
    if (rstd) rstd[n] = r;
    float* o = out + n * ldo;
#pragma omp simd
    for (int64_t j = 0; j < C; j++) o[j] = (xr[j] * r) * w[j];
  }
}

void rmsnorm_backward(float* dx, int64_t lddx, float* dw, const float* dy, int64_t lddy,
                      const float* x, int64_t ldx, const float* w, const float* rstd, int64_t N,
                      int64_t C, bool accumulate) {
  if (N <= 0 || C <= 0 || (!dx && !dw)) return;
  const int64_t nblk = (N + kRowBlock - 1) / kRowBlock;
  // dw partials per fixed row block, summed in block order: the same for any thread count
  thread_local std::vector<double> part;
  if (dw) part.assign((size_t)nblk * C, 0.0);
  double* parts = part.data();
  const int nt = par_threads((double)N * C, kParElems);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
  for (int64_t b = 0; b < nblk; b++) {
    double* pw = dw ? parts + (size_t)b * C : nullptr;
    for (int64_t n = b * kRowBlock; n < std::min(N, (b + 1) * kRowBlock); n++) {
      const float* xr = x + n * ldx;
      const float* gr = dy + n * lddy;
      const float r = rstd[n];
      // pass 1 (reads only): dot = sum_k dy_k w_k x_k and the dw contribution
      double dot = 0.0;
#pragma omp simd reduction(+ : dot)
      for (int64_t k = 0; k < C; k++) dot += (double)gr[k] * xr[k] * w[k];
      if (pw)
#pragma omp simd
        for (int64_t k = 0; k < C; k++) pw[k] += (double)gr[k] * xr[k] * r;
      if (!dx) continue;
      // pass 2: elementwise, so dx may alias dy or x
      const float c = (float)(dot * r * r / C);
      float* o = dx + n * lddx;
      if (accumulate) {
#pragma omp simd
        for (int64_t k = 0; k < C; k++) o[k] += r * (gr[k] * w[k] - xr[k] * c);
      } else {
#pragma omp simd
        for (int64_t k = 0; k < C; k++) o[k] = r * (gr[k] * w[k] - xr[k] * c);
      }
    }
  }
  if (dw)
    for (int64_t k = 0; k < C; k++) {
      double acc = 0.0;
      for (int64_t b = 0; b < nblk; b++) acc += parts[(size_t)b * C + k];
      dw[k] += (float)acc;
    }
}

}  // namespace dseek
