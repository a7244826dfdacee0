#include "dseek/ops/cpu/rmsnorm.h"

#include <cmath>

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

}  // namespace dseek
