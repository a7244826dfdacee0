#include "dseek/ops/cpu/rmsnorm.h"

#include <omp.h>

#include <cmath>
#include <vector>

namespace dseek {

void rmsnorm_forward(float* out, int64_t ldo, float* rstd, const float* x, int64_t ldx,
                     const float* w, int64_t N, int64_t C, float eps) {
#pragma omp parallel for if (N * C > 65536)
  for (int64_t n = 0; n < N; n++) {
    const float* xr = x + n * ldx;
    double ss = 0.0;
    for (int64_t j = 0; j < C; j++) ss += (double)xr[j] * xr[j];
    float r = 1.0f / std::sqrt((float)(ss / C) + eps);
    if (rstd) rstd[n] = r;
    float* o = out + n * ldo;
    for (int64_t j = 0; j < C; j++) o[j] = (xr[j] * r) * w[j];
  }
}

void rmsnorm_backward(float* dx, int64_t lddx, float* dw, const float* dy, int64_t lddy,
                      const float* x, int64_t ldx, const float* w, const float* rstd, int64_t N,
                      int64_t C, bool accumulate) {
  if (N <= 0 || C <= 0 || (!dx && !dw)) return;
  const bool par = N * C > 65536;
  const int nt = par ? omp_get_max_threads() : 1;
  std::vector<double> part(dw ? (size_t)nt * C : 0, 0.0);  // per-thread dw partials
#pragma omp parallel num_threads(nt) if (par)
  {
    double* pw = dw ? part.data() + (size_t)omp_get_thread_num() * C : nullptr;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) {
      const float* xr = x + n * ldx;
      const float* gr = dy + n * lddy;
      const float r = rstd[n];
      // pass 1 (reads only): dot = sum_k dy_k w_k x_k and the dw contribution
      double dot = 0.0;
      for (int64_t k = 0; k < C; k++) {
        const double gx = (double)gr[k] * xr[k];
        dot += gx * w[k];
        if (pw) pw[k] += gx * r;
      }
      if (!dx) continue;
      // pass 2: elementwise, so dx may alias dy or x
      const float c = (float)(dot * r * r / C);
      float* o = dx + n * lddx;
      for (int64_t k = 0; k < C; k++) {
        const float v = r * (gr[k] * w[k] - xr[k] * c);
        o[k] = accumulate ? o[k] + v : v;
      }
    }
  }
  if (dw) {
#pragma omp parallel for schedule(static) if (par)
    for (int64_t k = 0; k < C; k++) {
      double acc = 0.0;
      for (int t = 0; t < nt; t++) acc += part[(size_t)t * C + k];
      dw[k] += (float)acc;
    }
  }
}

}  // namespace dseek
