#include "dseek/ops/cpu/embedding.h"

#include <algorithm>

#include "dseek/core/error.h"

namespace dseek {

namespace {
void check_ids(const int32_t* ids, int64_t N) {
  for (int64_t n = 0; n < N; n++)
    DSEEK_CHECK(ids[n] >= 0, "embedding: negative token id {} at position {}", ids[n], n);
}
}  // namespace

void embedding_forward(float* out, const float* table, const int32_t* ids, int64_t N, int64_t C) {
  check_ids(ids, N);
#pragma omp parallel for schedule(static) if (N * C > 65536)
  for (int64_t n = 0; n < N; n++) {
    const float* r = table + (int64_t)ids[n] * C;
    std::copy(r, r + C, out + n * C);
  }
}

void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t N,
                        int64_t C) {
  check_ids(ids, N);
  constexpr int64_t kB = 256;  // each thread owns whole column blocks of every row
  const int64_t nblk = (C + kB - 1) / kB;
#pragma omp parallel for schedule(static) if (N * C > 65536)
  for (int64_t b = 0; b < nblk; b++) {
    const int64_t c0 = b * kB, c1 = std::min(C, c0 + kB);
    for (int64_t n = 0; n < N; n++) {
      float* o = dtable + (int64_t)ids[n] * C;
      const float* g = dout + n * C;
      for (int64_t j = c0; j < c1; j++) o[j] += g[j];
    }
  }
}

}  // namespace dseek
