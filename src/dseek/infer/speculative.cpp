// MTP speculative decoding: the step loop and the acceptance rule (contract in speculative.h).
#include "dseek/infer/speculative.h"

#include <algorithm>
#include <chrono>

#include "dseek/core/rng.h"         // splitmix64_next
#include "dseek/infer/mtp_draft.h"  // MtpDraft

namespace dseek {

namespace {

// A draw from P [V] (not necessarily normalized) with u in [0, 1), walking ids in order.
int32_t draw_index(const float* P, int V, double u) {
  double total = 0.0;
  for (int i = 0; i < V; i++) total += P[i];
  const double target = u * total;
  double acc = 0.0;
  int32_t last = -1;
  for (int i = 0; i < V; i++) {
    if (P[i] <= 0.0f) continue;
    acc += P[i];
    last = i;
    if (target < acc) return i;
  }
  DSEEK_CHECK(last >= 0, "speculative decoding: a distribution with no mass");
  return last;  // u landed past the last partial sum by rounding
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// the acceptance rule

bool speculative_accept(const float* p, const float* q, int32_t d, double u) {
  if (q[d] <= 0.0f) return p[d] > 0.0f;  // d cannot come from q; never taken by the loop
  return u * (double)q[d] < (double)p[d];
}

int32_t speculative_residual_draw(const float* p, const float* q, int V, double u) {
  thread_local std::vector<float> r;
  r.resize(V);
  double total = 0.0;
  for (int i = 0; i < V; i++) total += (r[i] = std::max(0.0f, p[i] - q[i]));
  if (total <= 0.0) return draw_index(p, V, u);
  return draw_index(r.data(), V, u);
}

// ---------------------------------------------------------------------------------------------
// the loop

std::vector<int32_t> speculative_generate(const Model& m, LatentCache& cache,
                                          const std::vector<int32_t>& prompt,
                                          const GenerateOptions& opt, const TokenCallback& on_token,
                                          GenerateStats* stats) {
  using clock = std::chrono::steady_clock;
  DSEEK_CHECK(!prompt.empty(), "generation needs a non-empty prompt");
  DSEEK_CHECK(opt.max_new_tokens >= 0, "max_new_tokens must be >= 0");
  DSEEK_CHECK(opt.mtp_draft_tokens >= 1, "speculative decoding needs >= 1 draft token, got {}",
              opt.mtp_draft_tokens);
  const int64_t C = m.cfg.hidden_size, K = opt.mtp_draft_tokens;
  const int V = (int)m.cfg.vocab_size;
  const int64_t base = cache.len, P = (int64_t)prompt.size();
  MtpDraft draft(m, base);
  Sampler target(opt.sampler), drafter(opt.sampler);  // used for probs() only
  uint64_t rng = opt.sampler.seed;
  auto uniform = [&rng] { return (double)(splitmix64_next(&rng) >> 11) * 0x1.0p-53; };

  std::vector<int32_t> ctx = prompt, out;
  GenerateStats st;
  st.prompt_tokens = P;
  if (opt.max_new_tokens == 0) {
    if (stats) *stats = st;
    return out;
  }
  bool done = false;
  // Hands one chosen token out; false once generation is over.
  auto emit = [&](int32_t id) {
    const bool is_stop =
        std::find(opt.stop_ids.begin(), opt.stop_ids.end(), id) != opt.stop_ids.end();
    out.push_back(id);
    ctx.push_back(id);
    st.new_tokens++;
    const bool go_on = on_token ? on_token(id, is_stop) : true;
    if (is_stop) st.stopped_by_token = true;
    done = is_stop || !go_on || st.new_tokens >= opt.max_new_tokens;
    return !done;
  };

  // prefill: logits of the last prompt token, hidden states of all (the MTP module's inputs)
  const auto t0 = clock::now();
  std::vector<float> pend_h(P * C);  // pend_h: hn of positions draft.end() .. n-1
  const Tensor logits = m.forward_cached(cache, prompt.data(), P, true, pend_h.data());
  const auto t1 = clock::now();
  st.prefill_s = std::chrono::duration<double>(t1 - t0).count();
  std::vector<float> p;
  target.probs(logits.ptr(), V, ctx, &p);
  emit(draw_index(p.data(), V, uniform()));

  std::vector<int32_t> drafts, vt;
  std::vector<float> q, dl(V), g(C), g_in(C), vh;
  while (!done) {
    const int64_t n = cache.len;  // ctx[n - base] = t_n, the last token, not in the cache yet
    const int64_t k = std::min<int64_t>(K, opt.max_new_tokens - st.new_tokens - 1);
    drafts.clear();
    q.resize(k * V);
    for (int64_t s = 0; s < k; s++) {
      if (s == 0) {  // catch up: positions draft.end() .. n-1, all exact
        const int64_t S = n - draft.end();
        draft.forward(dl.data(), g.data(), ctx.data() + (draft.end() - base) + 1, pend_h.data(), S);
        pend_h.clear();
      } else {  // chained: g stands in for hn of the previous draft's position
        g_in = g;
        draft.forward(dl.data(), g.data(), &drafts[s - 1], g_in.data(), 1);
      }
      std::vector<int32_t> dctx = ctx;
      dctx.insert(dctx.end(), drafts.begin(), drafts.end());
      std::vector<float> qs;
      drafter.probs(dl.data(), V, dctx, &qs);
      std::copy(qs.begin(), qs.end(), q.begin() + s * V);
      drafts.push_back(draw_index(qs.data(), V, uniform()));
    }

    // verify t_n, d_1 .. d_k in one forward
    vt.assign(1, ctx.back());
    vt.insert(vt.end(), drafts.begin(), drafts.end());
    vh.resize((k + 1) * C);
    const Tensor vlog = m.forward_cached(cache, vt.data(), k + 1, false, vh.data());
    int64_t a = 0;
    int32_t next = -1;
    std::vector<int32_t> pctx = ctx;
    for (; a < k; a++) {
      target.probs(vlog.ptr() + a * V, V, pctx, &p);
      const float* qa = q.data() + a * V;
      if (!speculative_accept(p.data(), qa, drafts[a], uniform())) {
        next = speculative_residual_draw(p.data(), qa, V, uniform());
        break;
      }
      pctx.push_back(drafts[a]);
    }
    if (next < 0) {  // all accepted: one more from p_k
      target.probs(vlog.ptr() + k * V, V, pctx, &p);
      next = draw_index(p.data(), V, uniform());
    }
    st.draft_tokens += k;
    st.accepted_tokens += a;
    st.verify_steps++;

    // keep positions n .. n+a (t_n, d_1 .. d_a) and the MTP entries known exactly (< n)
    cache.truncate(n + a + 1);
    if (k > 0) draft.truncate(n);
    pend_h.insert(pend_h.end(), vh.begin(), vh.begin() + (a + 1) * C);
    for (int64_t i = 0; i < a && !done; i++) emit(drafts[i]);
    if (!done) emit(next);
  }
  // as generate(): the cache holds the prompt and every token but the last
  cache.truncate(base + P + st.new_tokens - 1);
  st.decode_s = std::chrono::duration<double>(clock::now() - t1).count();
  if (stats) *stats = st;
  return out;
}

}  // namespace dseek
