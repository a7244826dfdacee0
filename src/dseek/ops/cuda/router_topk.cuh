// Group-limited top-k of the MoE router, one warp per token (used by ops/cuda/moe_router.cu and
// the GPU decoder's router, infer/gpu_decode_moe.cu). Lane e % 32 owns expert e of choice[E]
// (this warp's shared memory, choice = score + bias). With group_limited and G > 1: lane g scores
// group g (sum of its top-2 if sigmoid, else its max), topk_group arg-max rounds keep groups,
// the other groups' choices become -inf (sigmoid) or 0 (softmax). Then K arg-max rounds
// (value desc, ties to the lower index) over the not-yet-taken experts; sel[0, K) gets the
// winners sorted by id, visible to the whole warp on return. Non-finite guard: a round whose
// values are all NaN picks no index; it then takes expert 0 (group 0), so every index stays valid.
// Needs E <= 1024 (32 taken bits per lane), G <= 32.
#pragma once

#include <cmath>

namespace dseek::cuda {

// (value, index) arg-max across the warp: larger value wins, ties to the lower index.
__device__ __forceinline__ void warp_argmax(float& v, int& i) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float v2 = __shfl_xor_sync(0xffffffffu, v, o);
    const int i2 = __shfl_xor_sync(0xffffffffu, i, o);
    if (v2 > v || (v2 == v && i2 < i)) v = v2, i = i2;
  }
}

__device__ __forceinline__ void warp_group_topk(float* choice, int* sel, int E, int K, int G,
                                                int topk_group, bool group_limited, bool sigmoid) {
  const int lane = threadIdx.x & 31;
  if (group_limited && G > 1) {
    const int gsz = E / G;
    float gs = -INFINITY;
    if (lane < G) {
      const float* c = choice + lane * gsz;
      if (sigmoid) {  // sum of the top-2
        float b1 = -INFINITY, b2 = -INFINITY;
        for (int e = 0; e < gsz; e++) {
          const float x = c[e];
          if (x > b1)
            b2 = b1, b1 = x;
          else if (x > b2)
            b2 = x;
        }
        gs = b1 + b2;
      } else {  // max
        for (int e = 0; e < gsz; e++) gs = fmaxf(gs, c[e]);
      }
    }
    unsigned kept = 0;
    bool done = lane >= G;
    for (int r = 0; r < topk_group; r++) {
      float v = done ? -INFINITY : gs;
      int i = done ? 0x7fffffff : lane;
      warp_argmax(v, i);
      if (i >= G) i = 0;  // only with non-finite scores
      kept |= 1u << i;
      if (lane == i) done = true;
    }
    const float masked = sigmoid ? -INFINITY : 0.0f;
    __syncwarp();
    for (int e = lane; e < E; e += 32)
      if (!((kept >> (e / gsz)) & 1u)) choice[e] = masked;
    __syncwarp();
  }
  unsigned taken = 0;
  for (int r = 0; r < K; r++) {
    float v = -INFINITY;
    int i = 0x7fffffff;
    for (int e = lane, j = 0; e < E; e += 32, j++) {
      if ((taken >> j) & 1u) continue;
      const float x = choice[e];
      if (x > v || (x == v && e < i)) v = x, i = e;
    }
    warp_argmax(v, i);
    if (i >= E) i = 0;  // only with non-finite scores: keep the index valid
    if ((i & 31) == lane) taken |= 1u << (i >> 5);
    if (lane == 0) sel[r] = i;
  }
  __syncwarp();
  if (lane == 0) {  // insertion sort by expert id
    for (int x = 1; x < K; x++) {
      const int key = sel[x];
      int y = x - 1;
      while (y >= 0 && sel[y] > key) sel[y + 1] = sel[y], y--;
      sel[y + 1] = key;
    }
  }
  __syncwarp();
}

}  // namespace dseek::cuda
