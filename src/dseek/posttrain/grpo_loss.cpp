// The GRPO objective: advantages, loss forward, hand-written backward. Formulas and the TRL
// reference are in grpo_loss.h. Reference CPU code: plain loops, every intermediate in double,
// only dlogp is rounded to fp32.
#include "dseek/posttrain/grpo_loss.h"

#include <algorithm>
#include <cmath>

#include "dseek/core/error.h"

namespace dseek {

// ---- helpers --------------------------------------------------------------------------------

namespace {

// Checks the batch against its contract; returns the per-token weight w_t of the aggregation
// (loss = sum_t w_t * l_t), 0 on masked tokens.
std::vector<double> grpo_loss_weights(const GrpoLossInputs& in, const GrpoLossConfig& cfg) {
  const size_t n = in.logp.size();
  DSEEK_CHECK(in.old_logp.size() == n, "grpo loss: old_logp has {} tokens, logp has {}",
              in.old_logp.size(), n);
  DSEEK_CHECK(in.mask.size() == n, "grpo loss: mask has {} tokens, logp has {}", in.mask.size(), n);
  DSEEK_CHECK(in.ref_logp.empty() || in.ref_logp.size() == n,
              "grpo loss: ref_logp has {} tokens, logp has {}", in.ref_logp.size(), n);
  DSEEK_CHECK(std::isfinite(cfg.beta) && cfg.beta >= 0.0f, "grpo loss: beta must be >= 0, got {}",
              cfg.beta);
  DSEEK_CHECK(cfg.beta == 0.0f || !in.ref_logp.empty(),
              "grpo loss: beta = {} needs ref_logp (one per token)", cfg.beta);
  DSEEK_CHECK(std::isfinite(cfg.eps_low) && cfg.eps_low >= 0.0f && cfg.eps_low < 1.0f,
              "grpo loss: eps_low must be in [0, 1), got {}", cfg.eps_low);
  DSEEK_CHECK(std::isfinite(cfg.eps_high) && cfg.eps_high >= 0.0f,
              "grpo loss: eps_high must be >= 0, got {}", cfg.eps_high);
  const size_t num_seqs = in.seq_lens.size();
  DSEEK_CHECK(in.advantages.size() == num_seqs,
              "grpo loss: advantages has {} entries, seq_lens has {} sequences",
              in.advantages.size(), num_seqs);
  if (cfg.kind == GrpoLossKind::GRPO_LOSS_DR_GRPO)
    DSEEK_CHECK(cfg.max_completion_length > 0,
                "grpo loss: dr_grpo needs max_completion_length > 0, got {}",
                cfg.max_completion_length);

  std::vector<double> w(n, 0.0);
  std::vector<int64_t> seq_tokens(num_seqs, 0);  // [S] n_s
  int64_t total = 0;
  size_t t = 0;
  for (size_t s = 0; s < num_seqs; ++s) {
    const int64_t len = in.seq_lens[s];
    DSEEK_CHECK(len >= 0, "grpo loss: seq_lens[{}] = {} is negative", s, len);
    DSEEK_CHECK(static_cast<uint64_t>(len) <= n - t,
                "grpo loss: seq_lens sum past the {} tokens of logp (at sequence {})", n, s);
    DSEEK_CHECK(std::isfinite(in.advantages[s]), "grpo loss: advantages[{}] is not finite", s);
    for (int64_t i = 0; i < len; ++i, ++t) {
      const float m = in.mask[t];
      DSEEK_CHECK(m == 0.0f || m == 1.0f, "grpo loss: mask[{}] = {} (must be 0 or 1)", t, m);
      if (m == 0.0f) continue;
      DSEEK_CHECK(std::isfinite(in.logp[t]) && std::isfinite(in.old_logp[t]) &&
                      (in.ref_logp.empty() || std::isfinite(in.ref_logp[t])),
                  "grpo loss: non-finite log-prob at completion token {}", t);
      ++seq_tokens[s];
    }
    total += seq_tokens[s];
    if (cfg.kind == GrpoLossKind::GRPO_LOSS_DR_GRPO)
      DSEEK_CHECK(seq_tokens[s] <= cfg.max_completion_length,
                  "grpo loss: sequence {} has {} completion tokens, max_completion_length is {}", s,
                  seq_tokens[s], cfg.max_completion_length);
  }
  DSEEK_CHECK(t == n, "grpo loss: seq_lens sum to {}, logp has {} tokens", t, n);

  t = 0;
  for (size_t s = 0; s < num_seqs; ++s) {
    double ws = 0.0;
    switch (cfg.kind) {
      case GrpoLossKind::GRPO_LOSS_SEQUENCE_MEAN:
        ws = 1.0 / (static_cast<double>(num_seqs) *
                    static_cast<double>(std::max<int64_t>(seq_tokens[s], 1)));
        break;
      case GrpoLossKind::GRPO_LOSS_TOKEN_MEAN:
        ws = 1.0 / static_cast<double>(std::max<int64_t>(total, 1));
        break;
      case GrpoLossKind::GRPO_LOSS_DR_GRPO:
        ws = 1.0 / (static_cast<double>(num_seqs) * static_cast<double>(cfg.max_completion_length));
        break;
    }
    for (int64_t i = 0; i < in.seq_lens[s]; ++i, ++t) w[t] = in.mask[t] == 1.0f ? ws : 0.0;
  }
  return w;
}

// One completion token: its loss l and dl/dlogp, plus what the stats need.
struct GrpoToken {
  double loss;
  double dlogp;
  double ratio;
  double k3;
  bool clipped_low;
  bool clipped_high;
};

GrpoToken grpo_token(double logp, double old_logp, double ref_logp, bool has_ref, double adv,
                     const GrpoLossConfig& cfg) {
  GrpoToken r{};
  r.ratio = std::exp(logp - old_logp);
  const double lo = 1.0 - static_cast<double>(cfg.eps_low);
  const double hi = 1.0 + static_cast<double>(cfg.eps_high);
  r.clipped_low = adv < 0.0 && r.ratio < lo;
  r.clipped_high = adv > 0.0 && r.ratio > hi;
  const double unclipped = r.ratio * adv;
  const double clipped = std::clamp(r.ratio, lo, hi) * adv;
  const double o = std::min(unclipped, clipped);
  // the min picks the constant clipped term exactly when clipped_low or clipped_high
  const double do_dlogp = (r.clipped_low || r.clipped_high) ? 0.0 : r.ratio * adv;
  double dk3_dlogp = 0.0;
  if (has_ref) {
    const double d = ref_logp - logp;
    const double e = std::exp(d);
    r.k3 = e - d - 1.0;
    dk3_dlogp = 1.0 - e;
  }
  const double beta = static_cast<double>(cfg.beta);
  r.loss = -(o - beta * r.k3);
  r.dlogp = -do_dlogp + beta * dk3_dlogp;
  return r;
}

}  // namespace

// ---- public entry points --------------------------------------------------------------------

std::vector<float> grpo_advantages(const std::vector<float>& rewards, int group_size,
                                   GrpoScaling scaling, float eps) {
  const bool scale = scaling == GrpoScaling::GRPO_SCALING_STD;
  DSEEK_CHECK(group_size >= (scale ? 2 : 1),
              "grpo advantages: group_size must be >= {} ({} scaling), got {}", scale ? 2 : 1,
              scale ? "std" : "no", group_size);
  const size_t g = static_cast<size_t>(group_size);
  DSEEK_CHECK(rewards.size() % g == 0,
              "grpo advantages: group_size {} does not divide the {} rewards", group_size,
              rewards.size());
  DSEEK_CHECK(std::isfinite(eps) && eps >= 0.0f, "grpo advantages: eps must be >= 0, got {}", eps);
  for (size_t i = 0; i < rewards.size(); ++i)
    DSEEK_CHECK(std::isfinite(rewards[i]), "grpo advantages: rewards[{}] is not finite", i);

  std::vector<float> adv(rewards.size());
  for (size_t g0 = 0; g0 < rewards.size(); g0 += g) {
    double sum = 0.0;
    for (size_t i = 0; i < g; ++i) sum += rewards[g0 + i];
    const double mean = sum / static_cast<double>(g);
    double ss = 0.0;
    for (size_t i = 0; i < g; ++i) {
      const double d = rewards[g0 + i] - mean;
      ss += d * d;
    }
    // unbiased (Bessel-corrected) std, as torch.std in TRL
    const double denom = scale ? std::sqrt(ss / static_cast<double>(g - 1)) + eps : 1.0;
    for (size_t i = 0; i < g; ++i)
      // all-equal group with eps = 0: 0 / 0, defined as 0 (no signal), as with eps > 0
      adv[g0 + i] = denom > 0.0 ? static_cast<float>((rewards[g0 + i] - mean) / denom) : 0.0f;
  }
  return adv;
}

GrpoLossStats grpo_loss_forward(const GrpoLossInputs& in, const GrpoLossConfig& cfg) {
  const std::vector<double> w = grpo_loss_weights(in, cfg);
  const bool has_ref = !in.ref_logp.empty();
  GrpoLossStats st;
  double n_low = 0.0, n_high = 0.0, kl = 0.0, ratio = 0.0;
  size_t t = 0;
  for (size_t s = 0; s < in.seq_lens.size(); ++s) {
    for (int64_t i = 0; i < in.seq_lens[s]; ++i, ++t) {
      if (in.mask[t] == 0.0f) continue;
      const GrpoToken k = grpo_token(in.logp[t], in.old_logp[t], has_ref ? in.ref_logp[t] : 0.0f,
                                     has_ref, in.advantages[s], cfg);
      st.loss += w[t] * k.loss;
      n_low += k.clipped_low ? 1.0 : 0.0;
      n_high += k.clipped_high ? 1.0 : 0.0;
      kl += k.k3;
      ratio += k.ratio;
      ++st.num_tokens;
    }
  }
  if (st.num_tokens > 0) {
    const double nt = static_cast<double>(st.num_tokens);
    st.clip_frac_low = n_low / nt;
    st.clip_frac_high = n_high / nt;
    st.kl_mean = kl / nt;
    st.ratio_mean = ratio / nt;
  }
  return st;
}

void grpo_loss_backward(std::span<float> dlogp, const GrpoLossInputs& in,
                        const GrpoLossConfig& cfg) {
  DSEEK_CHECK(dlogp.size() == in.logp.size(), "grpo loss: dlogp has {} tokens, logp has {}",
              dlogp.size(), in.logp.size());
  const std::vector<double> w = grpo_loss_weights(in, cfg);
  const bool has_ref = !in.ref_logp.empty();
  size_t t = 0;
  for (size_t s = 0; s < in.seq_lens.size(); ++s) {
    for (int64_t i = 0; i < in.seq_lens[s]; ++i, ++t) {
      if (in.mask[t] == 0.0f) {
        dlogp[t] = 0.0f;
        continue;
      }
      const GrpoToken k = grpo_token(in.logp[t], in.old_logp[t], has_ref ? in.ref_logp[t] : 0.0f,
                                     has_ref, in.advantages[s], cfg);
      dlogp[t] = static_cast<float>(w[t] * k.dlogp);
    }
  }
}

}  // namespace dseek
