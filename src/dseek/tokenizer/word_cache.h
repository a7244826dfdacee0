// WordCache: piece bytes -> BPE ids, for one encoding thread (not thread-safe, no locks). Open
// addressing over a flat slot array; keys and ids live in two arenas. When it grows past its
// budget it is simply cleared. Header-only: everything here is on the encoder's hot path.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace dseek {

inline uint64_t word_hash(std::string_view s) {
  const auto* p = (const uint8_t*)s.data();
  size_t n = s.size();
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
  h = (h ^ v) * 0x94d049bb133111ebull;
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ull;
  return h ^ (h >> 32);
}

class WordCache {
 public:
  static constexpr size_t kMaxKeyLen = 256;        // longer pieces are not cached
  static constexpr size_t kMaxEntries = 1u << 20;  // then the cache is cleared
  static constexpr size_t kMaxIdsArena = 32u << 20;

  WordCache() { reset(64); }  // small: encode() of a short text must stay cheap

  // Pointer to the cached ids of `key` (and their count), or nullptr.
  const int32_t* find(std::string_view key, uint64_t h, uint32_t* n) const {
    size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.key_len == kEmpty) return nullptr;
      if (s.hash == h && s.key_len == key.size() &&
          std::memcmp(keys_.data() + s.key_off, key.data(), key.size()) == 0) {
        *n = s.ids_len;
        return ids_.data() + s.ids_off;
      }
    }
  }

  void insert(std::string_view key, uint64_t h, const int32_t* ids, uint32_t n) {
    if (key.size() > kMaxKeyLen) return;
    if (count_ + 1 > kMaxEntries || ids_.size() + n > kMaxIdsArena) reset(1u << 12);
    if ((count_ + 1) * 2 > slots_.size()) grow();
    Slot s{h, (uint32_t)keys_.size(), (uint32_t)key.size(), (uint32_t)ids_.size(), n};
    keys_.append(key);
    ids_.insert(ids_.end(), ids, ids + n);
    place(s);
    count_++;
  }

 private:
  static constexpr uint32_t kEmpty = 0xFFFFFFFFu;
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_off = 0, key_len = kEmpty, ids_off = 0, ids_len = 0;
  };

  void place(const Slot& s) {
    size_t mask = slots_.size() - 1;
    size_t i = s.hash & mask;
    while (slots_[i].key_len != kEmpty) i = (i + 1) & mask;
    slots_[i] = s;
  }
  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(old.size() * 2, Slot{});
    for (const Slot& s : old)
      if (s.key_len != kEmpty) place(s);
  }
  void reset(size_t cap) {
    slots_.assign(cap, Slot{});
    keys_.clear();
    ids_.clear();
    count_ = 0;
  }

  std::vector<Slot> slots_;
  std::string keys_;
  std::vector<int32_t> ids_;
  size_t count_ = 0;
};

}  // namespace dseek
