#include "dseek/posttrain/seq_batch.h"

#include <algorithm>

#include "dseek/core/error.h"

namespace dseek {

SeqBatch seq_batch(const std::vector<const SftExample*>& seqs, int32_t pad_id, int64_t max_len) {
  DSEEK_CHECK(max_len >= 2, "seq_batch: max_len must be >= 2, got {}", max_len);
  SeqBatch b;
  b.B = (int64_t)seqs.size();
  for (const SftExample* s : seqs) {
    DSEEK_CHECK(s->ids.size() == s->mask.size(), "seq_batch: ids and mask differ in length");
    b.T = std::max(b.T, std::min<int64_t>((int64_t)s->ids.size(), max_len) - 1);
  }
  b.T = std::max<int64_t>(b.T, 1);
  b.inputs.assign(b.B * b.T, pad_id);
  b.targets.assign(b.B * b.T, -1);
  for (int64_t r = 0; r < b.B; r++) {
    const SftExample& s = *seqs[r];
    const int64_t len = std::min<int64_t>((int64_t)s.ids.size(), max_len);
    for (int64_t t = 0; t + 1 < len; t++) {
      b.inputs[r * b.T + t] = s.ids[t];
      if (s.mask[t + 1]) {
        b.targets[r * b.T + t] = s.ids[t + 1];
        b.n_targets++;
      }
    }
  }
  return b;
}

}  // namespace dseek
