// Token embedding lookup: out[n, :] = table[ids[n], :]   (table [V, C], ids [N], out [N, C]).
// ids must lie in [0, V); a negative id throws dseek::Error (V is not passed, so an id >= V is
// the caller's responsibility).
//
// Gradient convention (all *_backward ops in ops/cpu): parameter gradients ACCUMULATE (+=);
// activation gradients OVERWRITE (=), unless the function takes `bool accumulate` and it is true
// (then +=). A null output pointer means "not needed": that work is skipped.
#pragma once

#include <cstdint>

namespace dseek {

void embedding_forward(float* out, const float* table, const int32_t* ids, int64_t N, int64_t C);
// dtable[ids[n], :] += dout[n, :] (a parameter gradient: accumulates; repeated ids add up).
// Parallel over column blocks, rows in order: no races and deterministic.
void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t C);

}  // namespace dseek
