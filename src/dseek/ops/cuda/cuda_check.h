// Error checks for CUDA runtime and cuBLAS(Lt) calls: a failed call throws dseek::Error with
// file:line, the failing expression and the library's error name and string. Never exit().
//   DSEEK_CUDA_CHECK(cudaMalloc(&p, n));      // any cudaError_t expression
//   DSEEK_CUDA_CHECK_LAUNCH();                // after a kernel launch (cudaGetLastError)
//   DSEEK_CUBLAS_CHECK(cublasLtMatmul(...));  // any cublasStatus_t expression
// Plain C++ (the throwing functions live in cuda_check.cpp, so .cu files need no fmt).
#pragma once

#include <cuda_runtime_api.h>  // cudaError_t, cudaGetLastError

namespace dseek {

[[noreturn]] void cuda_fail(cudaError_t err, const char* expr, const char* file, int line);
[[noreturn]] void cublas_fail(int status, const char* expr, const char* file, int line);
// For argument checks in .cu launchers (which stay free of fmt): throws dseek::Error(msg).
[[noreturn]] void cuda_op_fail(const char* msg);

}  // namespace dseek

#define DSEEK_CUDA_CHECK(expr)                                                                \
  do {                                                                                        \
    const cudaError_t dseek_err_ = (expr);                                                    \
    if (dseek_err_ != cudaSuccess) ::dseek::cuda_fail(dseek_err_, #expr, __FILE__, __LINE__); \
  } while (0)

#define DSEEK_CUDA_CHECK_LAUNCH() DSEEK_CUDA_CHECK(cudaGetLastError())

#define DSEEK_CUBLAS_CHECK(expr)                                                    \
  do {                                                                              \
    const int dseek_st_ = (int)(expr);                                              \
    if (dseek_st_ != 0) ::dseek::cublas_fail(dseek_st_, #expr, __FILE__, __LINE__); \
  } while (0)
