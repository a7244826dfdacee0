// Private state of GpuDecoder (infer/gpu_decoder.h), shared by its implementation files:
// gpu_decoder.cpp (the public methods), gpu_decode_weights.cpp (weight layout, upload, random
// weights, buffers) and gpu_decode_forward.cpp (cache blocks and the forward's launches).
// Plain C++; only built with CUDA.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <vector>

#include "dseek/infer/gpu_decode_kernels.h"
#include "dseek/infer/gpu_decoder.h"
#include "dseek/ops/cpu/moe_router.h"
#include "dseek/ops/cuda/cuda_check.h"
#include "dseek/ops/cuda/device_buffer.h"

namespace dseek {

namespace detail {

constexpr float kLoraNormEps = 1e-6f;  // q_a_layernorm / kv_a_layernorm (as model/mla.cpp)

struct DevLayer {
  // offsets into the bf16 arena (-1: absent)
  int64_t qkv = -1, q_b = -1, wukt = -1, wuv = -1, o = -1;  // qkv: [q | kv_a] or [q_a | kv_a]
  int64_t w1 = -1, w2 = -1, router = -1, ew1 = -1, ew2 = -1;
  // offsets into the fp32 arena
  int64_t attn_norm = -1, q_a_norm = -1, kv_a_norm = -1, ffn_norm = -1, router_bias = -1;
  bool moe = false;
};

struct SeqState {
  bool used = false;
  int64_t len = 0;
  std::vector<int32_t> blocks;
  bool dirty = false;
};

}  // namespace detail

struct GpuDecoder::Impl {
  ModelConfig cfg;
  GpuDecoderOptions opt;
  int64_t C, H, Dqk, Dn, Dr, Dc, Dv, Dq, E, Ek, Im, Is, I, V, L;
  int64_t NQ, ldqkv, n_sh;  // q (or q_a) width, [q | kv_a] row width, shared-expert slots
  int64_t Bmax, Rmax, max_blocks, n_blocks, row_len, n_sm = 132;
  RouterParams rp;

  int64_t nb = 0, nf = 0;  // arena sizes (elements)
  std::vector<detail::DevLayer> layers;
  int64_t embed = -1, head = -1, norm = -1;
  DeviceBuffer<bf16_t> wb;
  DeviceBuffer<float> wf;

  DeviceBuffer<float> cos_t, sin_t;
  DeviceBuffer<uint8_t> pool;  // [L, n_blocks, bs, Dc + Dr] of bf16 or fp32 (opt.cache_f32)
  DeviceBuffer<int32_t> table;
  std::vector<int32_t> host_table;
  std::vector<detail::SeqState> seqs;
  std::vector<int32_t> free_blocks;

  DeviceBuffer<int32_t> rows;  // [3, Rmax]: tokens | seq | pos
  std::vector<int32_t> host_rows;
  DeviceBuffer<float> h, qkv, q, qabs, part_acc, part_ml, o, act, rlogits, rw, ey, pair_w, logits;
  DeviceBuffer<int32_t> ridx, plan_i, ids, n_routed;  // n_routed [L]
  cuda::DecMoePlan plan;
  int64_t part_cap = 0;  // rows * splits the partial buffers hold

  cudaStream_t st = nullptr;
  std::map<int64_t, cudaGraphExec_t> graphs;
  std::map<int64_t, bool> warmed;
  uint32_t skip = 0;  // kernel families left out (GpuDecoder::set_profile_skip)

  const bf16_t* W(int64_t off) const { return wb.get() + off; }
  const float* F(int64_t off) const { return off < 0 ? nullptr : wf.get() + off; }

  void init(const ModelConfig& c, const GpuDecoderOptions& o);
  void layout();
  void upload(const Model& m);
  void random(uint64_t seed, float std);
  void allocate();
  cuda::DecCacheGeom geom(int64_t l) {
    const int64_t elt = opt.cache_f32 ? 4 : 2;
    return cuda::DecCacheGeom{pool.get() + l * n_blocks * opt.block_size * row_len * elt,
                              table.get(),
                              max_blocks,
                              opt.block_size,
                              Dc,
                              Dr,
                              opt.cache_f32};
  }
  // Attention heads per block and sequence splits for R rows: enough blocks to fill the device.
  int64_t heads_per_block(int64_t R) const {
    return (H % 4 == 0 && R >= 4) ? 4 : (H % 2 == 0 ? 2 : 1);
  }
  int64_t splits(int64_t R) const {
    const int64_t groups = R * (H / heads_per_block(R));
    return std::clamp<int64_t>((2 * n_sm + groups - 1) / groups, 1, opt.max_splits);
  }
  cuda::DecGemv gemv(int64_t w_off, int64_t N, int64_t K, const float* xin, int64_t ldx, float* y,
                     int64_t ldy, int64_t R) const {
    cuda::DecGemv a;
    a.W = W(w_off);
    a.N = N;
    a.K = K;
    a.x = xin;
    a.ldx = ldx;
    a.y = y;
    a.ldy = ldy;
    a.R = R;
    return a;
  }
  void ensure(int seq, int64_t new_len);
  void upload_tables();
  void upload_rows();
  // Enqueue the forward of R rows (host_rows uploaded); head + argmax on rows [r0, r0 + nr).
  // decode: every row is the next token of its own sequence.
  void forward(int64_t R, int64_t r0, int64_t nr, bool decode);
  void drop_graphs() {
    for (auto& [b, g] : graphs) cudaGraphExecDestroy(g);
    graphs.clear();
    warmed.clear();
  }
  ~Impl();
};

}  // namespace dseek
