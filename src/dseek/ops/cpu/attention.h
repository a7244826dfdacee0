// Causal softmax attention, naive (materializes the [T, T] scores per head), fp32:
//   S[h, s, t] = scale * q[s, h, :] . k[t, h, :]   for t <= s (keys after s are skipped)
//   P = softmax_t(S);  out[s, h, :] = sum_t P[h, s, t] v[t, h, :]
// One sequence: q [T, H, Dqk], k [T, H, Dqk], v [T, H, Dv], out [T, H, Dv] (contiguous).
// probs [H, T, T] (may be null) receives P for the backward pass (zeros above the diagonal).
//
// Gradient convention (all *_backward ops in ops/cpu): parameter gradients ACCUMULATE (+=);
// activation gradients OVERWRITE (=), unless the function takes `bool accumulate` and it is true
// (then +=). A null output pointer means "not needed": that work is skipped.
#pragma once

#include <cstdint>

namespace dseek {

void attention_forward(float* out, float* probs, const float* q, const float* k, const float* v,
                       int64_t T, int64_t H, int64_t Dqk, int64_t Dv, float scale);

// Backward of one sequence, from the probs [H, T, T] the forward saved (t <= s only):
//   dP[s, t] = dout[s] . v[t];   D[s] = sum_t P[s, t] dP[s, t]   (= dout[s] . out[s], fp64)
//   dS[s, t] = P[s, t] (dP[s, t] - D[s])
//   dq[s] = scale sum_{t<=s} dS[s, t] k[t];   dk[t] = scale sum_{s>=t} dS[s, t] q[s]
//   dv[t] = sum_{s>=t} P[s, t] dout[s]
// dq [T, H, Dqk], dk [T, H, Dqk], dv [T, H, Dv] overwrite (any may be null). Per head, through
// sgemm on the strided head slices (dS is a [T, T] per-thread scratch).
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                        const float* k, const float* v, const float* probs, int64_t T, int64_t H,
                        int64_t Dqk, int64_t Dv, float scale);

// The same over B independent sequences stored one after another (q [B, T, H, Dqk], ...,
// probs [B, H, T, T]); the (sequence, head) pairs run in parallel when called from outside a
// parallel region (serially inside one).
void attention_forward_batch(float* out, float* probs, const float* q, const float* k,
                             const float* v, int64_t B, int64_t T, int64_t H, int64_t Dqk,
                             int64_t Dv, float scale);
void attention_backward_batch(float* dq, float* dk, float* dv, const float* dout, const float* q,
                              const float* k, const float* v, const float* probs, int64_t B,
                              int64_t T, int64_t H, int64_t Dqk, int64_t Dv, float scale);

}  // namespace dseek
