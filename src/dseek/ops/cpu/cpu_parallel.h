// Helpers shared by the CPU ops: the threading policy and a vectorizable exp.
//
// Threading policy (see docs/cpu_performance.md): OpenBLAS (OpenMP build) runs single-threaded
// inside an active OpenMP parallel region, so coarse work (sequences, experts, row chunks) is
// spread over the team by our own `omp for` loops and each task calls single-threaded sgemm.
// Ops called from inside such a task run serially (par_threads() returns 1 there).
#pragma once

#include <omp.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace dseek {

// Threads a top-level op of `work` units should use: 1 inside an active parallel region, with a
// single-thread team, or when work < min_work; otherwise omp_get_max_threads(). Outside a
// parallel region it first gives adapt_threads() a chance to run.
int par_threads(double work, double min_work);

// Contention guard (Linux; DSEEK_ADAPTIVE_THREADS=0 turns it off, =verbose reports each change
// on stderr). Every ~0.5 s, from the thread that first called it and outside parallel regions,
// it measures the CPU time other processes took on this process's CPUs over the last interval
// (/proc/stat minus /proc/self/stat). When they and our team together oversubscribe the CPUs
// (by more than ~0.6 core), a fork-join team mostly waits at barriers for a descheduled member
// (spinning meanwhile), so the OpenMP team is cut to the cores left free (omp_set_num_threads,
// which OpenBLAS follows too); the requested size comes back once the others are (nearly)
// idle (< ~0.35 core). Every op built on par_threads() gives the same result for any team size,
// so this changes speed only. A later omp_set_num_threads() by the program becomes the new
// requested size.
void adapt_threads();

// n > 0: the OpenMP team and OpenBLAS both use n threads from now on (a command's --threads);
// n <= 0 leaves the defaults (all cores).
void set_cpu_threads(int n);

// exp(x) in fp32 without a library call, so loops over it vectorize (std::exp does not without
// -ffast-math). Cephes expf: round-to-nearest range reduction x = n ln2 + r, |r| <= ln2/2, a
// degree-7 polynomial, 2^n from the exponent bits. Max error 1.2 ulp (measured against fp64).
// Returns 0 for x < -87.33 (just above the smallest normal), exp(88) for x > 88; NaN stays NaN.
inline float exp_fast(float x) {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  constexpr float kLo = -87.33654475f, kHi = 88.0f;
  float xc = x > kHi ? kHi : x;
  xc = xc < kLo ? kLo : xc;
  const float t = std::fma(xc, 1.44269504088896341f, kMagic);
  const float n = t - kMagic;
  const uint32_t ni = std::bit_cast<uint32_t>(t) - std::bit_cast<uint32_t>(kMagic);
  float r = std::fma(n, -0.693359375f, xc);  // ln2 split in two (Cody-Waite)
  r = std::fma(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  p = std::fma(p, r * r, r + 1.0f);
  const float s = std::bit_cast<float>((ni + 127u) << 23);  // 2^n, n in [-126, 127]
  const float y = p * s;
  return x < kLo ? 0.0f : y;
}

// Row helpers written so that GCC vectorizes them at -O3 without -ffast-math (a loop mixing
// exp_fast with an fp64 reduction does not vectorize, so they are separate passes).

// max_i x[i] (-inf for n = 0). A NaN in x is not reliably propagated (the callers' later
// exp / sum of x turns NaN anyway).
inline float max_f(const float* x, int64_t n) {
  typedef float v16 __attribute__((vector_size(64)));
  v16 m = {};
  m -= INFINITY;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    v16 xv;
    std::memcpy(&xv, x + i, sizeof xv);
    m = m > xv ? m : xv;
  }
  float r = -INFINITY;
  for (int j = 0; j < 16; j++) r = r > m[j] ? r : m[j];
  for (; i < n; i++) r = r > x[i] ? r : x[i];
  return r;
}

// x[i] = exp_fast(x[i] - sub)
inline void exp_sub_inplace(float* x, float sub, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = exp_fast(x[i] - sub);
}

// sum_i x[i] in fp64 (vector lanes, a fixed order)
inline double sum_d(const float* x, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; i++) s += (double)x[i];
  return s;
}

// sum_i a[i] b[i] in fp64 (vector lanes, a fixed order)
inline double dot_d(const float* a, const float* b, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}

}  // namespace dseek
