// MTP draft: the model's first multi-token-prediction module run as a draft model over its own
// latent cache (SPEC §6.2); the hidden states it consumes come from Model::forward_cached's
// hn_out. Used by infer/speculative.h; no sampling, no acceptance here.
//
// Contract (module 1, hub index num_hidden_layers; positions p are the main model's):
//   h'_p  = eh_proj [RMSNorm_e(Emb(t_{p+1})) ; RMSNorm_h(hn_p)]     (embedding first)
//   g_p   = RMSNorm_head(block(h'_p))   block: MLA over the module's cache (positions <= p,
//           RoPE at p) + FFN/MoE;   draft logits for t_{p+2} = g_p W_head^T
// hn_p is the main model's hidden state after its final norm (what model_train.cpp feeds the
// module in training). A cache entry at p is exact once t_{p+1} is known and hn_p came from the
// main model. Chaining (more than one draft per step) feeds g_p in place of hn_{p+1} and the
// drafted token in place of t_{p+2}; those entries are guesses and must be truncated away
// (LatentCache::truncate) once the main model has verified the position. Further MTP modules
// (depth > 1) are not used for drafting.
// Only the last position of a call runs the FFN and the head: earlier positions only fill the
// module's cache (attention of a single-layer block), which is all they are needed for.
#pragma once

#include <cstdint>
#include <vector>

#include "dseek/infer/latent_cache.h"
#include "dseek/model/model.h"

namespace dseek {

class MtpDraft {
 public:
  // The module's cache starts at main-model position first_pos (e.g. the length of a main
  // cache that already holds earlier chat turns: the module attends only from there on).
  // Throws dseek::Error when the model has no MTP module (cfg.mtp_depth == 0).
  explicit MtpDraft(const Model& m, int64_t first_pos = 0);

  // Positions p = end() .. end()+S-1: next_tokens [S] = t_{p+1}, h [S, C] = hn_p (or a chained
  // g). Appends S cache entries; writes the draft logits [V] and g [C] of the last position.
  void forward(float* logits_last, float* g_last, const int32_t* next_tokens, const float* h,
               int64_t S);

  int64_t end() const { return first_pos_ + cache_.len; }  // the next position to fill
  void truncate(int64_t end_pos) { cache_.truncate(end_pos - first_pos_); }  // keep p < end_pos

 private:
  const Model& m_;
  int64_t first_pos_ = 0;
  LatentCache cache_;  // one layer (the module's block), entry i at position first_pos_ + i
};

}  // namespace dseek
