// Measured ceilings of the CUDA device the benchmarks compare against (`dseek bench train`,
// `dseek bench decode`), each the median of 10 timed runs after 3 warm-ups (cudaEvent timing on
// the default stream):
//   gemm_ceiling_tflops(n)  bf16 cuBLASLt GEMM D[n, n] = A B^T, fp32 accumulation: 2 n^3 / t
//   copy_bandwidth_gbs()    device-to-device copy of 1 GiB, read + write bytes: 2 * 2^30 / t
// Only in CUDA builds.
#pragma once

#include <cstdint>

#ifdef DSEEK_HAVE_CUDA
namespace dseek::cli {

double gemm_ceiling_tflops(int64_t n);
double copy_bandwidth_gbs();

}  // namespace dseek::cli
#endif
