// The throwing halves of cuda_check.h (compiled by the C++ compiler, so fmt stays out of nvcc).
#ifdef DSEEK_HAVE_CUDA
#include "dseek/ops/cuda/cuda_check.h"

#include <cublasLt.h>  // cublasLtGetStatusName, cublasLtGetStatusString

#include "dseek/core/error.h"  // fail

namespace dseek {

void cuda_fail(cudaError_t err, const char* expr, const char* file, int line) {
  fail("{}:{}: {} failed: {} ({})", file, line, expr, cudaGetErrorName(err),
       cudaGetErrorString(err));
}

void cublas_fail(int status, const char* expr, const char* file, int line) {
  fail("{}:{}: {} failed: {} ({})", file, line, expr, cublasLtGetStatusName((cublasStatus_t)status),
       cublasLtGetStatusString((cublasStatus_t)status));
}

void cuda_op_fail(const char* msg) {
  throw Error(msg);
}

}  // namespace dseek
#endif  // DSEEK_HAVE_CUDA
