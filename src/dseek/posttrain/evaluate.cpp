#include "dseek/posttrain/evaluate.h"

#include "dseek/core/error.h"
#include "dseek/posttrain/rollout.h"

namespace dseek {

std::vector<Problem> task_eval_problems(const std::string& task, int n, const TaskOptions& o) {
  return task_generate(task, Split::SPLIT_TEST, n, kEvalProblemSeed, o);
}

EvalResult evaluate_tasks(const Model& m, const Tokenizer& tok, const std::vector<Problem>& probs,
                          const EvalOptions& opt) {
  DSEEK_CHECK(opt.k >= 0, "eval: k must be >= 0, got {}", opt.k);
  EvalResult r;
  r.n = (int64_t)probs.size();
  if (probs.empty()) return r;
  std::vector<std::vector<int32_t>> prompts;
  for (const Problem& p : probs) prompts.push_back(prompt_ids(p, tok, opt.format));
  RolloutOptions ro;
  ro.max_new_tokens = opt.max_new_tokens;
  if (tok.eos_id() >= 0) ro.stop_ids = {tok.eos_id()};
  ro.seed = opt.seed;
  ro.sampler.temperature = 0.0f;
  std::vector<Rollout> greedy = rollout_generate(m, prompts, 1, ro);
  for (size_t i = 0; i < probs.size(); i++) {
    std::string text = completion_text(greedy[i].ids, tok);
    const bool ok = reward_accuracy(probs[i], text) > 0;
    r.pass1 += ok;
    r.format += reward_format(text);
    r.mean_tokens += (double)greedy[i].ids.size();
    r.greedy.push_back(std::move(text));
    r.greedy_correct.push_back(ok);
  }
  r.pass1 /= r.n;
  r.format /= r.n;
  r.mean_tokens /= r.n;
  if (opt.k > 0) {
    ro.sampler.temperature = opt.temperature;
    ro.sampler.top_p = opt.top_p;
    std::vector<Rollout> s = rollout_generate(m, prompts, opt.k, ro);
    r.passk = r.sample_accuracy = r.sample_format = 0;
    for (size_t i = 0; i < probs.size(); i++) {
      bool any = false;
      for (int j = 0; j < opt.k; j++) {
        const std::string text = completion_text(s[i * opt.k + j].ids, tok);
        const bool ok = reward_accuracy(probs[i], text) > 0;
        any = any || ok;
        r.sample_accuracy += ok;
        r.sample_format += reward_format(text);
      }
      r.passk += any;
    }
    r.passk /= r.n;
    r.sample_accuracy /= (double)r.n * opt.k;
    r.sample_format /= (double)r.n * opt.k;
  }
  return r;
}

}  // namespace dseek
