// Dense projections of the GPU decoder: dec_gemv (contract in gpu_decode_kernels.h), built on the
// GEMV core of gpu_decode_device.h. One block = 8 warps = 16 weight rows (8 gate/up units with
// swiglu) for K >= 256; shorter rows put 4 or 16 subgroups in a warp.
#include "dseek/infer/gpu_decode_device.h"

namespace dseek::cuda {

namespace {

using namespace dec;

template <int LPR, int RB, bool NORM>
__global__ void __launch_bounds__(kThreads) dense_gemv_kernel(DecGemv a) {
  dense_body<LPR, RB, NORM>(a, blockIdx.x);
}

}  // namespace

int64_t dec_rows_per_pass(int64_t R) {
  return R <= 1 ? 1 : 8;
}

void dec_gemv(const DecGemv& a, const DecLaunch& L) {
  if (a.N <= 0 || a.R <= 0) return;
  check_gemv(a);
  const int lpr = lanes_per_row(a.K);
  const dim3 grid((unsigned)dense_blocks(a, lpr));
  dispatch_lpr_rb(lpr, dec_rows_per_pass(a.R), [&](auto lpr_c, auto rb_c) {
    constexpr int LPR = decltype(lpr_c)::value, RB = decltype(rb_c)::value;
    if (a.norm_w)
      launch(dense_gemv_kernel<LPR, RB, true>, grid, dim3(kThreads), 0, L, a);
    else
      launch(dense_gemv_kernel<LPR, RB, false>, grid, dim3(kThreads), 0, L, a);
  });
}

}  // namespace dseek::cuda
