// Standalone timing of the MoE grouped GEMMs (grouped_gemm.h) on the bench-moe-0.7b shapes: 64
// routed groups of ~768 rows (deterministic pseudo-random sizes, one of them 0) plus the shared
// expert as the last group (8192 rows, W_last), hidden 1024, expert width 256 (gate|up fused: 512).
// Prints the time and TFLOP/s (2 * rows * N * K / t) of nt/nn/tn for both projections, and an
// FNV-1a hash of every output's bits so two builds of the kernels (old vs new) can be checked
// bit-identical. Build (no CMake target, so the main build is untouched), e.g. for the HEAD kernels
// vs the tree's:
//   nvcc -O3 -std=c++17 --generate-code=arch=compute_90a,code=sm_90a -I src
//        bench/grouped_gemm_bench.cu src/dseek/ops/cuda/grouped_gemm.cu -o gg_bench
// Usage: gg_bench [iters]   (needs a GPU; times are cudaEvent medians of `iters` runs, default 20)
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "dseek/ops/cuda/grouped_gemm.h"

namespace dseek {  // the launchers' error hooks (cuda_check.cpp needs fmt; this tool does not)
[[noreturn]] void cuda_fail(cudaError_t err, const char* expr, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: %s: %s\n", file, line, expr, cudaGetErrorString(err));
  std::exit(1);
}
[[noreturn]] void cublas_fail(int status, const char* expr, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: %s: cublas %d\n", file, line, expr, status);
  std::exit(1);
}
[[noreturn]] void cuda_op_fail(const char* msg) {
  std::fprintf(stderr, "error: %s\n", msg);
  std::exit(1);
}
}  // namespace dseek

namespace {

#define CK(x)                                                            \
  do {                                                                   \
    cudaError_t e_ = (x);                                                \
    if (e_ != cudaSuccess) dseek::cuda_fail(e_, #x, __FILE__, __LINE__); \
  } while (0)

__global__ void fill_bf16(uint16_t* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    uint32_t h = (uint32_t)i * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    const float v = ((int)(h & 0xffff) - 32768) / 32768.0f;  // [-1, 1)
    const uint32_t b = __float_as_uint(v);
    p[i] = (uint16_t)((b + 0x7fff + ((b >> 16) & 1)) >> 16);
  }
}

template <class T>
uint64_t hash_dev(const T* d, int64_t n) {
  std::vector<T> h(n);
  CK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  const auto* b = reinterpret_cast<const unsigned char*>(h.data());
  uint64_t x = 1469598103934665603ull;
  for (size_t i = 0; i < n * sizeof(T); i++) x = (x ^ b[i]) * 1099511628211ull;
  return x;
}

template <class F>
float median_ms(F&& f, int iters) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  for (int i = 0; i < 3; i++) f();  // warm-up
  std::vector<float> t;
  for (int i = 0; i < iters; i++) {
    CK(cudaEventRecord(a));
    f();
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

float bf(uint16_t b) {
  const uint32_t u = (uint32_t)b << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// dW = dY^T A over each group's rows (from zero) at sampled entries vs a double CPU sum; also runs
// it twice and checks the bits repeat. Returns the number of failures (printed).
template <class Run>
int check_tn(const char* name, Run&& run, float* dW, const uint16_t* dY, const uint16_t* A,
             const std::vector<int32_t>& counts, int64_t rows, int M, int N) {
  const int G = (int)counts.size();
  const int64_t n = (int64_t)G * M * N;
  std::vector<uint16_t> hy(rows * M), ha(rows * N);
  CK(cudaMemcpy(hy.data(), dY, hy.size() * 2, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(ha.data(), A, ha.size() * 2, cudaMemcpyDeviceToHost));
  CK(cudaMemset(dW, 0, n * 4));
  run();
  const uint64_t h1 = hash_dev(dW, n);
  std::vector<float> hw(n);
  CK(cudaMemcpy(hw.data(), dW, n * 4, cudaMemcpyDeviceToHost));
  CK(cudaMemset(dW, 0, n * 4));
  run();
  int bad = hash_dev(dW, n) != h1 ? 1 : 0;
  if (bad) std::printf("%s: two runs differ (not deterministic)\n", name);
  uint32_t s = 777;
  int64_t r0 = 0;
  for (int g = 0; g < G; g++) {
    for (int t = 0; t < 64; t++) {
      s = s * 1664525u + 1013904223u;
      const int m = (int)((s >> 8) % M);
      s = s * 1664525u + 1013904223u;
      const int c = (int)((s >> 8) % N);
      double ref = 0, mag = 0;
      for (int64_t r = r0; r < r0 + counts[g]; r++) {
        const double p = (double)bf(hy[r * M + m]) * bf(ha[r * N + c]);
        ref += p;
        mag += std::fabs(p);
      }
      const double got = hw[((int64_t)g * M + m) * N + c];
      if (std::fabs(got - ref) > 1e-5 * mag + 1e-6) {
        if (bad < 5)
          std::printf("%s: g %d (%d rows) dW[%d,%d] = %.6f, reference %.6f\n", name, g, counts[g],
                      m, c, got, ref);
        bad++;
      }
    }
    r0 += counts[g];
  }
  std::printf("%s: check %s (%d sampled entries per group vs CPU, 2 runs bit-equal)\n", name,
              bad ? "FAILED" : "ok", 64);
  return bad;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace dseek::cuda;
  const int iters = argc > 1 ? std::atoi(argv[1]) : 20;
  if (iters < 1) {
    std::fprintf(stderr, "error: iters must be a positive integer\n");
    return 1;
  }
  const int G = 65, H = 1024, F = 256, shared_rows = 8192;
  std::vector<int32_t> counts(G);
  uint32_t s = 12345;
  for (int g = 0; g < G - 1; g++) {
    s = s * 1664525u + 1013904223u;
    counts[g] = 512 + (int)((s >> 8) % 513);  // 512..1024, mean ~768
  }
  counts[7] = 0;  // an empty group
  counts[G - 1] = shared_rows;
  int64_t rows = 0;
  for (int c : counts) rows += c;

  int32_t *d_counts, *d_off, *d_tiles;
  CK(cudaMalloc(&d_counts, G * 4));
  CK(cudaMalloc(&d_off, (G + 1) * 4));
  CK(cudaMalloc(&d_tiles, (G + 1) * 4));
  CK(cudaMemcpy(d_counts, counts.data(), G * 4, cudaMemcpyHostToDevice));
  grouped_gemm_schedule(d_off, d_tiles, d_counts, G, nullptr);
  const GroupLayout l{d_off, d_tiles, G, rows};

  auto alloc_bf16 = [](int64_t n, uint32_t seed) {
    uint16_t* p;
    CK(cudaMalloc(&p, n * 2));
    fill_bf16<<<1024, 256>>>(p, n, seed);
    return p;
  };
  // activations [rows, H], gate|up output / grad [rows, 2F], down input [rows, F], weights
  uint16_t* X = alloc_bf16(rows * H, 1);
  uint16_t* GU = alloc_bf16(rows * 2 * F, 2);
  uint16_t* Hd = alloc_bf16(rows * F, 3);
  uint16_t* Wgu = alloc_bf16((int64_t)G * 2 * F * H, 4);  // [G][2F][H]
  uint16_t* Wd = alloc_bf16((int64_t)G * H * F, 5);       // [G][H][F]
  uint16_t* Ygu = alloc_bf16(rows * 2 * F, 6);
  uint16_t* Yd = alloc_bf16(rows * H, 7);
  uint16_t* dX = alloc_bf16(rows * H, 8);
  uint16_t* dHd = alloc_bf16(rows * F, 9);
  const uint16_t* Wgu_last = Wgu + (int64_t)(G - 1) * 2 * F * H;
  const uint16_t* Wd_last = Wd + (int64_t)(G - 1) * H * F;
  float *dWgu, *dWd;
  CK(cudaMalloc(&dWgu, (int64_t)G * 2 * F * H * 4));
  CK(cudaMalloc(&dWd, (int64_t)G * H * F * 4));
  CK(cudaDeviceSynchronize());

  std::printf("rows %lld (64 routed groups, one empty, + shared %d), iters %d\n", (long long)rows,
              shared_rows, iters);
  auto report = [&](const char* name, int64_t N, int64_t K, float ms, uint64_t h) {
    const double tf = 2.0 * rows * N * K / (ms * 1e-3) / 1e12;
    std::printf("%-28s N=%-5lld K=%-5lld %8.3f ms %7.1f TFLOP/s  hash %016llx\n", name,
                (long long)N, (long long)K, ms, tf, (unsigned long long)h);
  };
  float ms;
  ms = median_ms([&] { grouped_gemm_nt(Ygu, X, Wgu, Wgu_last, l, 2 * F, H, nullptr); }, iters);
  report("nt gate|up [r,1024]x[512,1024]^T", 2 * F, H, ms, hash_dev(Ygu, rows * 2 * F));
  ms = median_ms([&] { grouped_gemm_nt(Yd, Hd, Wd, Wd_last, l, H, F, nullptr); }, iters);
  report("nt down [r,256]x[1024,256]^T", H, F, ms, hash_dev(Yd, rows * H));
  ms = median_ms([&] { grouped_gemm_nn(dX, GU, Wgu, Wgu_last, l, H, 2 * F, nullptr); }, iters);
  report("nn gate|up [r,512]x[512,1024]", H, 2 * F, ms, hash_dev(dX, rows * H));
  ms = median_ms([&] { grouped_gemm_nn(dHd, Yd, Wd, Wd_last, l, F, H, nullptr); }, iters);
  report("nn down [r,1024]x[1024,256]", F, H, ms, hash_dev(dHd, rows * F));
  int bad = 0;
  bad += check_tn(
      "tn gate|up",
      [&] {
        grouped_gemm_tn(dWgu, dWgu + (int64_t)(G - 1) * 2 * F * H, GU, X, l, 2 * F, H, nullptr);
      },
      dWgu, GU, X, counts, rows, 2 * F, H);
  bad += check_tn(
      "tn down",
      [&] { grouped_gemm_tn(dWd, dWd + (int64_t)(G - 1) * H * F, Yd, Hd, l, H, F, nullptr); }, dWd,
      Yd, Hd, counts, rows, H, F);
  // tn accumulates: zero, run once for the hash, then time (the sums keep growing, same work).
  CK(cudaMemset(dWgu, 0, (int64_t)G * 2 * F * H * 4));
  grouped_gemm_tn(dWgu, dWgu + (int64_t)(G - 1) * 2 * F * H, GU, X, l, 2 * F, H, nullptr);
  const uint64_t hgu = hash_dev(dWgu, (int64_t)G * 2 * F * H);
  ms = median_ms(
      [&] {
        grouped_gemm_tn(dWgu, dWgu + (int64_t)(G - 1) * 2 * F * H, GU, X, l, 2 * F, H, nullptr);
      },
      iters);
  report("tn gate|up dW[512,1024]", H, 2 * F, ms, hgu);  // FLOPs 2 * rows * 512 * 1024
  CK(cudaMemset(dWd, 0, (int64_t)G * H * F * 4));
  grouped_gemm_tn(dWd, dWd + (int64_t)(G - 1) * H * F, Yd, Hd, l, H, F, nullptr);
  const uint64_t hd = hash_dev(dWd, (int64_t)G * H * F);
  ms = median_ms(
      [&] { grouped_gemm_tn(dWd, dWd + (int64_t)(G - 1) * H * F, Yd, Hd, l, H, F, nullptr); },
      iters);
  report("tn down dW[1024,256]", H, F, ms, hd);
  CK(cudaDeviceSynchronize());
  return bad ? 1 : 0;
}
