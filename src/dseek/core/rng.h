// splitmix64 (Steele, Lea & Flood 2014; Vigna's constants), the one integer mixer of the project:
//   finalize(z):  z ^= z >> 30; z *= 0xbf58476d1ce4e5b9; z ^= z >> 27; z *= 0x94d049bb133111eb;
//                 z ^= z >> 31
//   next(&s):     s += 0x9e3779b97f4a7c15; return finalize(s)      (the generator, one u64 state)
// Fully specified, so seeded results are the same on every platform (unlike <random>).
// Users: the sampler's seed expansion, the token loader, task generators, document splits,
// rollout and GRPO seeds.
#pragma once

#include <cstdint>

namespace dseek {

inline constexpr uint64_t kSplitmix64Gamma = 0x9e3779b97f4a7c15ull;

inline uint64_t splitmix64_finalize(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

inline uint64_t splitmix64_next(uint64_t* state) {
  return splitmix64_finalize(*state += kSplitmix64Gamma);
}

}  // namespace dseek
