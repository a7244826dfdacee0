// LatentCache: the MLA KV cache of one sequence on the CPU. Per layer and token it keeps only
// the normalized latent c_kv [Dc] and the rotated shared rope key k_pe [Dr] -- (Dc + Dr) floats
// per token and layer instead of H * (Dqk + Dv) for standard multi-head attention (SPEC §5.2).
// Grows on demand; `len` tokens are valid.
#pragma once

#include <cstdint>
#include <vector>

#include "dseek/core/error.h"

namespace dseek {

struct LatentCache {
  int64_t n_layers = 0, Dc = 0, Dr = 0;
  int64_t len = 0;       // tokens cached (same for every layer after a full forward)
  int64_t capacity = 0;  // tokens allocated
  std::vector<std::vector<float>> c_kv;  // per layer [capacity, Dc]
  std::vector<std::vector<float>> k_pe;  // per layer [capacity, Dr]

  LatentCache() = default;
  LatentCache(int64_t layers, int64_t dc, int64_t dr) : n_layers(layers), Dc(dc), Dr(dr) {
    c_kv.resize(layers);
    k_pe.resize(layers);
  }
  void reserve(int64_t tokens) {
    if (tokens <= capacity) return;
    int64_t cap = std::max<int64_t>(tokens, capacity * 2);
    for (int64_t l = 0; l < n_layers; l++) {
      c_kv[l].resize(cap * Dc);
      k_pe[l].resize(cap * Dr);
    }
    capacity = cap;
  }
  void clear() { len = 0; }
  void truncate(int64_t n) {  // drop tokens after n (e.g. rejected speculative tokens)
    DSEEK_CHECK(n >= 0 && n <= len, "cache truncate to {} of {}", n, len);
    len = n;
  }
  int64_t bytes_per_token_fp32() const { return n_layers * (Dc + Dr) * 4; }
};

}  // namespace dseek
