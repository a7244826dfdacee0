// Small CUDA kernels of the GPU training step (model/gpu_model.cpp), the glue between the ops of
// ops/cuda: MLA's key assembly and its backward, elementwise casts and adds, the global gradient
// norm, and the MoE balance losses (mirror of ops/cpu/moe_balance_loss.h). Plain C++ header;
// only built with CUDA (the .cu is compiled when nvcc exists).
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <cstdint>

#include "dseek/ops/cuda/bf16.h"  // bf16_t

namespace dseek::cuda {

// K [N, H, Dn+Dr] = [kv[n, h, :Dn] | kpe[n, :]]  (kv rows of H*(Dn+Dv), kpe rows of ld_pe)
void mla_build_k(bf16_t* K, const bf16_t* kv, const bf16_t* kpe, int64_t ld_pe, int64_t N,
                 int64_t H, int64_t Dn, int64_t Dr, int64_t Dv, cudaStream_t stream);
// Backward of mla_build_k: dkv[n, h, :Dn] = dK[n, h, :Dn] (the v part of dkv is not touched);
// dkpe[n, j] = sum_h dK[n, h, Dn + j] (fp32 sum over heads in head order, one rounding).
void mla_build_k_backward(bf16_t* dkv, bf16_t* dkpe, int64_t ld_pe, const bf16_t* dK, int64_t N,
                          int64_t H, int64_t Dn, int64_t Dr, int64_t Dv, cudaStream_t stream);
// y[i] = bf16(x[i]) (n elements)
void cast_f32_bf16(bf16_t* y, const float* x, int64_t n, cudaStream_t stream);
// partial[b] = sum of x[i]^2 over block b's elements (fp64), nblocks = grad_sumsq_blocks(n);
// the caller sums the partials in order (deterministic).
int grad_sumsq_blocks(int64_t n);
void grad_sumsq(double* partial, const float* x, int64_t n, cudaStream_t stream);
// Balance loss over groups of group_T tokens (N = n_groups * group_T): per group the value
// sum_i f_i P_i (fp64) goes to group_loss[g] (may be null); with dlogits non-null the gradient
// of alpha * mean_g(...) is ADDED to dlogits [N, E]. Same formulas as ops/cpu/moe_balance_loss.
// scores [N, E], idx [N, K]; scratch: moe_balance_scratch_elems(N, E) fp64. E <= 1024.
// Three launches: per 64-token chunk (S_t, partial P and counts), per group (P, f, the loss),
// per token (one warp: the gradient); every sum in a fixed order (deterministic).
int64_t moe_balance_scratch_elems(int64_t N, int64_t E);
void moe_balance_loss_gpu(double* group_loss, float* dlogits, const float* scores,
                          const int32_t* idx, int64_t N, int64_t E, int64_t K, int64_t group_T,
                          bool sigmoid, float alpha, double* scratch, cudaStream_t stream);

}  // namespace dseek::cuda
