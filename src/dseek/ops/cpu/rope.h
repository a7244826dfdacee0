// Rotary position embedding on the rope dims of MLA (SPEC §3.3).
// Tables: theta[p, i] = float(pos[p]) * inv_freq[i] (fp32), cos/sin [P, Dr/2] scaled by the
// YaRN attention factor. Rotation of each (a, b) pair by theta_i:
//   a' = a cos - b sin,  b' = a sin + b cos
// interleaved = true (DeepSeek checkpoints): pairs are (x[2i], x[2i+1]) and the output stays
// interleaved (the official layout; q.k dot products equal transformers' de-interleaved form).
// interleaved = false: pairs are (x[i], x[i + Dr/2]) (rotate_half on a pre-permuted layout).
// x holds N tokens x nh heads, each head Dr contiguous floats at x + n*ld_tok + h*ld_head.
//
// Gradient convention (all *_backward ops in ops/cpu): parameter gradients ACCUMULATE (+=);
// activation gradients OVERWRITE (=), unless the function takes `bool accumulate` and it is true
// (then +=). A null output pointer means "not needed": that work is skipped.
#pragma once

#include <cstdint>

namespace dseek {

void rope_tables(float* cos_out, float* sin_out, const int32_t* pos, int64_t P,
                 const float* inv_freq, int64_t half, float attention_factor);
void rope_forward(float* x, int64_t N, int64_t nh, int64_t ld_tok, int64_t ld_head,
                  const float* cos_t, const float* sin_t, int64_t half, bool interleaved);
// Backward, in place on dx = the gradient of the rotated values (overwritten by the gradient of
// the inputs): the transposed rotation (theta -> -theta), same layout parameters as the forward:
//   da = da' cos + db' sin,  db = -da' sin + db' cos
// (cos/sin carry the attention factor, so for factor f != 1 this is f^2 times the inverse.)
void rope_backward(float* dx, int64_t N, int64_t nh, int64_t ld_tok, int64_t ld_head,
                   const float* cos_t, const float* sin_t, int64_t half, bool interleaved);

}  // namespace dseek
