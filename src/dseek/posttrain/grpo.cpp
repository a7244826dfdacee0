#include "dseek/posttrain/grpo.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dseek/core/error.h"
#include "dseek/core/rng.h"
#include "dseek/core/progress.h"
#include "dseek/model/checkpoint.h"
#include "dseek/model/model_train.h"
#include "dseek/ops/cpu/cpu_parallel.h"
#include "dseek/ops/cpu/token_logprobs.h"
#include "dseek/posttrain/evaluate.h"
#include "dseek/posttrain/rollout.h"
#include "dseek/posttrain/seq_batch.h"
#include "dseek/train/metrics_log.h"

namespace dseek {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

uint64_t mix64(uint64_t a, uint64_t b) {
  return splitmix64_finalize(a * kSplitmix64Gamma + b + 0x632be59bd9b4e019ull);
}

// One micro-batch: its rows in the padded grid and where each row's completion tokens sit.
struct Micro {
  int64_t first = 0;  // index of its first sequence in the rollout batch
  SeqBatch b;
  std::vector<int64_t> seq_lens;  // completion tokens per row
  std::vector<float> ref_logp;    // packed, [sum seq_lens]
  std::vector<float> old_logp;    // packed, filled by the first update
};

void pack(std::vector<float>& out, const float* grid, const std::vector<int32_t>& targets) {
  out.clear();
  for (size_t i = 0; i < targets.size(); i++)
    if (targets[i] >= 0) out.push_back(grid[i]);
}

}  // namespace

GrpoResult grpo_run(const GrpoConfig& c) {
  set_cpu_threads(c.threads);
  DSEEK_CHECK(c.prompts_per_step >= 1, "--prompts must be >= 1");
  DSEEK_CHECK(c.group_size >= 2, "--group-size must be >= 2 (advantages compare samples)");
  DSEEK_CHECK(c.updates >= 1, "--updates must be >= 1");
  DSEEK_CHECK(c.micro_batch >= 1, "--micro-batch must be >= 1");
  DSEEK_CHECK(c.max_new_tokens >= 1, "--max-new-tokens must be >= 1");
  DSEEK_CHECK(c.temperature > 0.0f, "--temperature must be > 0 (GRPO samples from the policy)");
  DSEEK_CHECK(c.eval_every >= 1, "--eval-every must be >= 1");
  Model m = Model::load(c.model);
  const std::string tok_path = model_tokenizer_path(c.tokenizer, c.model);
  Tokenizer tok = Tokenizer::load(tok_path);
  DSEEK_CHECK(tok.eos_id() >= 0, "the tokenizer has no end-of-sentence token");
  std::optional<Model> ref;
  if (c.loss.beta > 0) ref = m;
  GrpoLossConfig lc = c.loss;
  lc.max_completion_length = c.max_new_tokens;
  task_generate(c.task, Split::SPLIT_TRAIN, 1, c.seed, c.task_options);  // validates early

  fs::create_directories(c.out_dir);
  MetricsLog log = MetricsLog::create(c.out_dir);
  std::ofstream samples_log(c.out_dir + "/samples.jsonl");
  ModelWeights G;
  weights_allocate(m.cfg, G);
  std::vector<ParamRef> params = model_params(m.cfg, m.w), grads = model_params(m.cfg, G);
  AdamWConfig oc = c.optimizer;
  AdamW opt(params, oc);
  const std::vector<Problem> test = task_eval_problems(c.task, c.eval_n, c.task_options);
  EvalOptions eo{.format = c.prompt,
                 .max_new_tokens = c.max_new_tokens,
                 .k = c.eval_k,
                 .temperature = c.eval_temperature < 0 ? c.temperature : c.eval_temperature,
                 .top_p = 1.0f,
                 .seed = kEvalProblemSeed};
  std::fprintf(stderr,
               "[grpo] %s -> %s: task %s, %d prompts x %d samples per step, %ld steps, %d "
               "update(s) per batch, lr %g, beta %g, eps %g/%g, eval %d problems every %ld\n",
               c.model.c_str(), c.out_dir.c_str(), c.task.c_str(), c.prompts_per_step, c.group_size,
               (long)c.steps, c.updates, c.lr, c.loss.beta, c.loss.eps_low, c.loss.eps_high,
               c.eval_n, (long)c.eval_every);

  GrpoResult res;
  // pass@k only at the start and the end (k samples per problem cost k greedy evaluations)
  auto run_eval = [&](int64_t step, bool with_k) {
    auto t0 = Clock::now();
    EvalOptions o = eo;
    if (!with_k) o.k = 0;
    EvalResult e = evaluate_tasks(m, tok, test, o);
    GrpoEvalPoint p{.step = step,
                    .pass1 = e.pass1,
                    .format = e.format,
                    .passk = e.passk,
                    .questions = {},
                    .completions = {},
                    .correct = {}};
    for (size_t i = 0; i < std::min<size_t>(4, test.size()); i++) {
      p.questions.push_back(test[i].question);
      p.completions.push_back(e.greedy[i]);
      p.correct.push_back(e.greedy_correct[i]);
    }
    json r = {{"step", step},
              {"eval_pass1", e.pass1},
              {"eval_format", e.format},
              {"eval_mean_tokens", e.mean_tokens},
              {"eval_s", since(t0)}};
    if (e.passk >= 0) {
      r["eval_passk"] = e.passk;
      r["eval_k"] = c.eval_k;
      r["eval_sample_accuracy"] = e.sample_accuracy;
    }
    log.write(r);
    for (size_t i = 0; i < std::min<size_t>(4, test.size()); i++)
      samples_log << json{{"step", step},
                          {"question", test[i].question},
                          {"answer", test[i].answer},
                          {"completion", e.greedy[i]},
                          {"correct", (bool)e.greedy_correct[i]}}
                         .dump()
                  << "\n";
    samples_log.flush();
    std::fprintf(stderr, "\n[grpo eval @%ld] pass@1 %.3f  format %.3f%s  (%.1fs)\n", (long)step,
                 e.pass1, e.format,
                 e.passk >= 0 ? fmt::format("  pass@{} {:.3f}", c.eval_k, e.passk).c_str() : "",
                 since(t0));
    return p;
  };
  res.first = res.last = run_eval(0, true);

  const int P = c.prompts_per_step, Gs = c.group_size;
  const int64_t S = (int64_t)P * Gs;
  ProgressBar bar("grpo", c.steps);
  TrainActs acts;
  double t_total = 0;
  int64_t step = 0;
  while (step < c.steps) {
    auto t_step = Clock::now();
    // 1. rollouts
    std::vector<Problem> probs =
        task_generate(c.task, Split::SPLIT_TRAIN, P, mix64(c.seed, (uint64_t)step), c.task_options);
    std::vector<std::vector<int32_t>> prompts;
    for (const Problem& p : probs) prompts.push_back(prompt_ids(p, tok, c.prompt));
    RolloutOptions ro;
    ro.max_new_tokens = c.max_new_tokens;
    ro.sampler.temperature = c.temperature;
    ro.sampler.top_p = c.top_p;
    ro.stop_ids = {tok.eos_id()};
    ro.seed = mix64(c.seed ^ 0x5eedull, (uint64_t)step);
    std::vector<Rollout> rolls = rollout_generate(m, prompts, Gs, ro);
    const double t_rollout = since(t_step);

    // 2. rewards, advantages
    std::vector<float> rewards(S);
    double acc = 0, fmt_rate = 0, len = 0, stopped = 0;
    for (int64_t s = 0; s < S; s++) {
      const std::string text = completion_text(rolls[s].ids, tok);
      RewardBreakdown rb = reward_total(probs[rolls[s].prompt], text, c.rewards);
      rewards[s] = rb.total;
      acc += rb.accuracy;
      fmt_rate += rb.format;
      len += (double)rolls[s].ids.size();
      stopped += rolls[s].stopped;
    }
    std::vector<float> adv = grpo_advantages(rewards, Gs, c.scaling);
    double rmean = 0, rvar = 0;
    for (float r : rewards) rmean += r / (double)S;
    for (float r : rewards) rvar += (r - rmean) * (r - rmean) / (double)S;
    int64_t solved_groups = 0, zero_groups = 0;  // groups with all-equal rewards learn nothing
    for (int p = 0; p < P; p++) {
      bool same = true;
      for (int j = 1; j < Gs; j++) same = same && rewards[p * Gs + j] == rewards[p * Gs];
      zero_groups += same;
      solved_groups += same && rewards[p * Gs] > 0;
    }

    // 3. micro-batches (sequence = prompt + completion, loss mask on the completion) + ref logp
    std::vector<SftExample> seqs(S);
    for (int64_t s = 0; s < S; s++) {
      const std::vector<int32_t>& pr = prompts[rolls[s].prompt];
      seqs[s].ids = pr;
      seqs[s].ids.insert(seqs[s].ids.end(), rolls[s].ids.begin(), rolls[s].ids.end());
      seqs[s].mask.assign(pr.size(), 0);
      seqs[s].mask.resize(seqs[s].ids.size(), 1);
    }
    // log-probs are those of the sampling policy softmax(logits / T) (as TRL does), so the
    // ratio and the KL compare the distributions the samples really came from
    const float inv_t = 1.0f / c.temperature;
    std::vector<Micro> micro;
    int64_t n_tokens_total = 0;
    for (int64_t i = 0; i < S; i += c.micro_batch) {
      Micro mb;
      mb.first = i;
      std::vector<const SftExample*> rows;
      for (int64_t s = i; s < std::min(S, i + c.micro_batch); s++) {
        rows.push_back(&seqs[s]);
        mb.seq_lens.push_back(seqs[s].trained());
      }
      mb.b = seq_batch(rows, tok.eos_id(), 1 << 30);
      n_tokens_total += mb.b.n_targets;
      if (ref) {
        Tensor logits = ref->forward(mb.b.inputs.data(), mb.b.B, mb.b.T);
        for (float& x : logits.data) x *= inv_t;  // the reference at the sampling temperature
        std::vector<float> grid(mb.b.B * mb.b.T);
        token_logprobs(grid.data(), nullptr, logits.ptr(), mb.b.targets.data(), mb.b.B * mb.b.T,
                       m.cfg.vocab_size);
        pack(mb.ref_logp, grid.data(), mb.b.targets);
      }
      micro.push_back(std::move(mb));
    }

    // 4. policy updates
    TrainOptions to;
    to.run_mtp = false;
    to.seq_balance_alpha = 0.0f;
    to.defer_head_grad = true;
    to.head_temperature = c.temperature;
    double loss_sum = 0, kl_sum = 0, clip_lo = 0, clip_hi = 0, ent_sum = 0, gnorm = 0;
    const float cur_lr =
        (float)(c.warmup_steps > 0 && step < c.warmup_steps ? c.lr * (step + 1) / c.warmup_steps
                                                            : c.lr);
    for (int u = 0; u < c.updates; u++) {
      grads_zero(grads);
      double lsum = 0;
      for (Micro& mb : micro) {
        const int64_t N = mb.b.B * mb.b.T;
        model_train_forward(m, mb.b.inputs.data(), mb.b.targets.data(), mb.b.B, mb.b.T, acts, to);
        std::vector<float> logp;
        pack(logp, acts.token_logp.data(), mb.b.targets);
        if (u == 0) {
          mb.old_logp = logp;
          for (int64_t i = 0; i < N; i++)
            if (mb.b.targets[i] >= 0) ent_sum += acts.token_entropy[i];
        }
        std::vector<float> mask(logp.size(), 1.0f);
        GrpoLossInputs in{.logp = logp,
                          .old_logp = mb.old_logp,
                          .ref_logp = mb.ref_logp,
                          .mask = mask,
                          .seq_lens = mb.seq_lens,
                          .advantages = std::span<const float>(adv.data() + mb.first, mb.b.B)};
        GrpoLossStats st = grpo_loss_forward(in, lc);
        std::vector<float> dlogp(logp.size());
        grpo_loss_backward(dlogp, in, lc);
        const double share = lc.kind == GrpoLossKind::GRPO_LOSS_TOKEN_MEAN
                                 ? (double)st.num_tokens / std::max<int64_t>(1, n_tokens_total)
                                 : (double)mb.b.B / (double)S;
        std::vector<float> grid(N, 0.0f);
        for (int64_t i = 0, k = 0; i < N; i++)
          if (mb.b.targets[i] >= 0) grid[i] = (float)(share * inv_t * dlogp[k++]);
        token_logprobs_backward(acts.dlogits.data(), mb.b.targets.data(), grid.data(), N,
                                m.cfg.vocab_size);
        model_train_backward(m, acts, G);
        lsum += share * st.loss;
        if (u == 0) {
          kl_sum += st.kl_mean * (double)st.num_tokens;
        }
        if (u == c.updates - 1) {
          clip_lo += st.clip_frac_low * (double)st.num_tokens;
          clip_hi += st.clip_frac_high * (double)st.num_tokens;
        }
      }
      const double gn =
          c.grad_clip > 0 ? clip_grad_norm(grads, c.grad_clip) : grad_global_norm(grads);
      DSEEK_CHECK(std::isfinite(gn) && std::isfinite(lsum),
                  "grpo: loss {} / grad norm {} at step {} (lower the learning rate?)", lsum, gn,
                  step);
      opt.step(grads, cur_lr);
      if (u == 0) {
        loss_sum = lsum;
        gnorm = gn;
      }
    }
    step++;
    const double dt = since(t_step);
    t_total += dt;
    const double ntok = (double)std::max<int64_t>(1, n_tokens_total);
    json r = {{"step", step},
              {"reward_mean", rmean},
              {"reward_std", std::sqrt(rvar)},
              {"accuracy", acc / S},
              {"format", fmt_rate / S},
              {"completion_tokens", len / S},
              {"stopped", stopped / S},
              {"kl", kl_sum / ntok},
              {"clip_frac_low", clip_lo / ntok},
              {"clip_frac_high", clip_hi / ntok},
              {"entropy", ent_sum / ntok},
              {"loss", loss_sum},
              {"grad_norm", gnorm},
              {"lr", cur_lr},
              {"zero_adv_groups", (double)zero_groups / P},
              {"solved_groups", (double)solved_groups / P},
              {"rollout_s", t_rollout},
              {"time_s", t_total}};
    log.write(r);
    const bool last = step == c.steps;
    const bool out_of_time = c.time_limit_s > 0 && t_total >= c.time_limit_s;
    bar.update(step,
               fmt::format("reward {:.3f} | acc {:.3f} | fmt {:.3f} | len {:.1f} | kl {:.4f}",
                           rmean, acc / S, fmt_rate / S, len / S, kl_sum / ntok),
               false);
    if (step % c.eval_every == 0 || last || out_of_time)
      res.last = run_eval(step, last || out_of_time);
    if (c.checkpoint_every > 0 && step % c.checkpoint_every == 0 && !last && !out_of_time)
      save_model_dir_with_tokenizer(c.out_dir + "/checkpoint", m,
                                    {{"grpo_step", std::to_string(step)}}, tok_path);
    if (out_of_time) {
      std::fprintf(stderr, "[grpo] time limit %.0fs reached at step %ld\n", c.time_limit_s,
                   (long)step);
      break;
    }
  }
  res.steps = step;
  res.final_dir = c.out_dir + "/final";
  save_model_dir_with_tokenizer(res.final_dir, m, {{"grpo_steps", std::to_string(step)}}, tok_path);
  bar.finish(fmt::format("pass@1 {:.3f} -> {:.3f}, format {:.3f} -> {:.3f}; saved {}",
                         res.first.pass1, res.last.pass1, res.first.format, res.last.format,
                         res.final_dir));
  return res;
}

}  // namespace dseek
