// MTP speculative decoding on the CPU: the model's own MTP module drafts the next tokens, the
// main model checks them all in one forward over the latent cache (speculative sampling:
// Leviathan et al. 2023, arXiv:2211.17192; Chen et al. 2023, arXiv:2302.01318).
//
// One step, with t_n the last chosen token (not yet in the main cache) and k drafts:
//   1. draft d_1 .. d_k from q_1 .. q_k: MTP module 1 (infer/mtp_draft.h) at position n-1, then
//      chained on its own output; q_i is the draft logits through the same sampler steps as the
//      main model (repetition penalty, temperature, top-k, top-p, min-p; sampler.h),
//   2. one main forward over [t_n, d_1 .. d_k] gives p_0 .. p_k (p_i given d_1 .. d_i),
//   3. for i = 1 .. k: accept d_i with probability min(1, p_{i-1}(d_i) / q_i(d_i)); at the first
//      rejection draw the token from norm(max(0, p_{i-1} - q_i)) and stop; when all k are
//      accepted draw one more from p_k,
//   4. roll the main cache back to t_n, d_1 .. d_a (a accepted) and the MTP cache to its exact
//      entries (positions < n); the new token is the next step's t_n.
// Each token then has exactly the main model's distribution given the tokens before it, so the
// output is distributed as generate()'s. Greedy decoding (temperature 0) makes p and q one-hot:
// d_i is accepted iff it is the main model's argmax, and a rejection yields that argmax, so the
// tokens are plain greedy decoding's. One caveat, as for any batched verify: the k+1-token
// forward may round differently from k+1 one-token forwards (the GEMM shapes differ), which can
// only matter where two logits tie to within ~1e-6.
// Randomness: one splitmix64 stream seeded with sampler.seed (draft draws, accept tests, residual
// and bonus draws), so a seeded run repeats, but its tokens differ from plain sampling's with
// the same seed (same distribution, different draws).
// The number of drafts per step is min(k, tokens still allowed - 1); stop ids, max_new_tokens,
// on_token and the final cache length behave as in generate() (generate.h).
#pragma once

#include <cstdint>
#include <vector>

#include "dseek/infer/generate.h"

namespace dseek {

// generate() with opt.mtp_draft_tokens >= 1 drafts per step. Throws dseek::Error when the
// model has no MTP module.
std::vector<int32_t> speculative_generate(const Model& m, LatentCache& cache,
                                          const std::vector<int32_t>& prompt,
                                          const GenerateOptions& opt,
                                          const TokenCallback& on_token = nullptr,
                                          GenerateStats* stats = nullptr);

// The acceptance rule of step 3 for one draft d ~ q: true iff u * q[d] < p[d], i.e. with
// probability min(1, p[d] / q[d]) for u uniform in [0, 1).
bool speculative_accept(const float* p, const float* q, int32_t d, double u);
// A draw from norm(max(0, p - q)) over [0, V) with u in [0, 1), walking ids in order; from p
// itself when p <= q everywhere (only reachable through rounding).
int32_t speculative_residual_draw(const float* p, const float* q, int V, double u);

}  // namespace dseek
