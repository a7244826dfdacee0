// Byte-level BPE model (see bpe_model.h). Reference: huggingface/tokenizers
// tokenizers/src/models/bpe/model.rs (merge_word: chars -> ids, unknowns dropped when there is no
// unk token) and word.rs (merge_all: BinaryHeap ordered by rank then position; an entry is
// skipped when its left symbol was consumed or the pair there no longer yields the same token).
// Both our paths pick the globally lowest rank, leftmost on ties, which is what that heap does.
#include "dseek/tokenizer/bpe_model.h"

#include <climits>
#include <queue>

#include "dseek/core/error.h"
#include "dseek/tokenizer/byte_level.h"

namespace dseek {

// ---------------------------------------------------------------------------------------------
// build

void BpeModel::build(const std::vector<std::pair<std::string, int32_t>>& vocab,
                     const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions opt,
                     const std::string& file) {
  opt_ = opt;
  int32_t max_id = -1;
  token_to_id_.clear();
  token_to_id_.reserve(vocab.size() * 2);
  for (const auto& [tok, id] : vocab) {
    DSEEK_CHECK(id >= 0, "tokenizer file '{}': negative id {} for token '{}'", file, id, tok);
    token_to_id_[tok] = id;
    max_id = std::max(max_id, id);
  }
  id_to_token_.assign(max_id + 1, std::string());
  has_.assign(max_id + 1, 0);
  for (const auto& [tok, id] : token_to_id_) {
    id_to_token_[id] = tok;
    has_[id] = 1;
  }
  for (int b = 0; b < 256; b++) {
    std::string s;
    byte_level_encode(&s, std::string_view((const char*)&b, 1));
    byte_id_[b] = id_of(s);
  }
  bytes_to_id_.clear();
  if (opt.ignore_merges) {
    for (const auto& [tok, id] : token_to_id_) {
      std::string raw;
      if (byte_level_decode(&raw, tok)) bytes_to_id_[raw] = id;
    }
  }
  size_t cap = 16;
  while (cap < merges.size() * 2 + 16) cap *= 2;
  merges_.assign(cap, MergeSlot{});
  shift_ = 64 - __builtin_ctzll(cap);
  merge_count_ = merges.size();
  for (size_t r = 0; r < merges.size(); r++) {
    const auto& [a, b] = merges[r];
    int32_t ia = id_of(a), ib = id_of(b), inew = id_of(a + b);
    DSEEK_CHECK(ia >= 0 && ib >= 0,
                "tokenizer file '{}': merge {} ('{}' '{}') uses a token that is not in the vocab",
                file, r, a, b);
    DSEEK_CHECK(inew >= 0, "tokenizer file '{}': merge {} result '{}' is not in the vocab", file, r,
                a + b);
    uint64_t key = ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib;
    size_t mask = cap - 1;
    for (size_t i = (key * 0x9E3779B97F4A7C15ull) >> shift_;; i = (i + 1) & mask) {
      if (merges_[i].key == key || merges_[i].key == ~0ull) {
        merges_[i] = MergeSlot{key, (int32_t)r, inew};
        break;
      }
    }
  }
}

int32_t BpeModel::id_of(std::string_view token) const {
  auto it = token_to_id_.find(std::string(token));
  return it == token_to_id_.end() ? -1 : it->second;
}

// ---------------------------------------------------------------------------------------------
// encode

void BpeModel::encode_piece(std::string_view bytes, std::vector<int32_t>* out) const {
  if (opt_.ignore_merges) {
    auto it = bytes_to_id_.find(std::string(bytes));
    if (it != bytes_to_id_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  int32_t stack_ids[kSmallWord];
  std::vector<int32_t> heap_ids;
  int32_t* ids = stack_ids;
  if (bytes.size() > kSmallWord) {
    heap_ids.resize(bytes.size());
    ids = heap_ids.data();
  }
  size_t n = initial_ids(bytes, ids);
  if (n <= 1) {
    if (n == 1) out->push_back(ids[0]);
    return;
  }
  if (n <= kSmallWord)
    merge_small(ids, n, out);
  else
    merge_large(ids, n, out);
}

size_t BpeModel::initial_ids(std::string_view bytes, int32_t* ids) const {
  size_t n = 0;
  bool prev_unk = false;
  for (char c : bytes) {
    int32_t id = byte_id_[(uint8_t)c];
    if (id < 0) {
      if (opt_.unk_id < 0) continue;  // no unk token: the byte is dropped, as in `tokenizers`
      if (opt_.fuse_unk && prev_unk) continue;
      id = opt_.unk_id;
      prev_unk = true;
    } else {
      prev_unk = false;
    }
    ids[n++] = id;
  }
  return n;
}

void BpeModel::encode_piece_naive(std::string_view bytes, std::vector<int32_t>* out) const {
  std::vector<int32_t> ids(bytes.size());
  ids.resize(initial_ids(bytes, ids.data()));
  while (ids.size() > 1) {
    size_t best = 0;
    int32_t best_rank = INT_MAX, best_id = -1;
    for (size_t i = 0; i + 1 < ids.size(); i++) {
      int32_t r, nid;
      if (merge_of(ids[i], ids[i + 1], &r, &nid) && r < best_rank) {
        best = i;
        best_rank = r;
        best_id = nid;
      }
    }
    if (best_id < 0) break;
    ids[best] = best_id;
    ids.erase(ids.begin() + (long)best + 1);
  }
  out->insert(out->end(), ids.begin(), ids.end());
}

void BpeModel::merge_small(int32_t* ids, size_t n, std::vector<int32_t>* out) const {
  int32_t rank[kSmallWord], nid[kSmallWord];  // rank[i]: pair (ids[i], ids[i+1])
  for (size_t i = 0; i + 1 < n; i++)
    if (!merge_of(ids[i], ids[i + 1], &rank[i], &nid[i])) rank[i] = INT_MAX;
  while (n > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < n; i++)
      if (rank[i] < rank[best]) best = i;
    if (rank[best] == INT_MAX) break;
    ids[best] = nid[best];
    for (size_t i = best + 1; i + 1 < n; i++) ids[i] = ids[i + 1];
    for (size_t i = best; i + 2 < n; i++) {
      rank[i] = rank[i + 1];
      nid[i] = nid[i + 1];
    }
    n--;
    if (best > 0 && !merge_of(ids[best - 1], ids[best], &rank[best - 1], &nid[best - 1]))
      rank[best - 1] = INT_MAX;
    if (best + 1 < n && !merge_of(ids[best], ids[best + 1], &rank[best], &nid[best]))
      rank[best] = INT_MAX;
  }
  out->insert(out->end(), ids, ids + n);
}

void BpeModel::merge_large(const int32_t* ids, size_t n, std::vector<int32_t>* out) const {
  struct Sym {
    int32_t id;
    int32_t prev, next;  // -1 at the ends
    bool alive;
  };
  struct Cand {
    int32_t rank, pos, new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Sym> sym(n);
  for (size_t i = 0; i < n; i++)
    sym[i] = {ids[i], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1, true};
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  for (size_t i = 0; i + 1 < n; i++) {
    int32_t r, nid;
    if (merge_of(ids[i], ids[i + 1], &r, &nid)) heap.push({r, (int32_t)i, nid});
  }
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    Sym& left = sym[c.pos];
    if (!left.alive || left.next < 0) continue;
    Sym& right = sym[left.next];
    int32_t r, nid;
    if (!merge_of(left.id, right.id, &r, &nid) || nid != c.new_id) continue;
    left.id = c.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) sym[right.next].prev = c.pos;
    if (left.prev >= 0 && merge_of(sym[left.prev].id, left.id, &r, &nid))
      heap.push({r, left.prev, nid});
    if (left.next >= 0 && merge_of(left.id, sym[left.next].id, &r, &nid))
      heap.push({r, c.pos, nid});
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) out->push_back(sym[i].id);
}

}  // namespace dseek
