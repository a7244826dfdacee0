// `dseek sample -m MODEL --task add -n 2000 --samples 4 -o traces.jsonl`: rejection sampling
// (R1's stage 3, and the data of distilled students): N completions per prompt from the model,
// kept only when the task's checker accepts the answer and the format is right, written as chat
// SFT JSONL (user: the question, assistant: the completion as generated). Prompts come from
// the task's TRAIN split (or --problems), never from the held-out test split.
#include <cstdio>
#include <fstream>
#include <set>

#include <fmt/format.h>

#include "dseek/cli/command.h"
#include "dseek/cli/task_flags.h"
#include "dseek/core/error.h"
#include "dseek/core/progress.h"
#include "dseek/posttrain/rewards.h"
#include "dseek/posttrain/rollout.h"
#include "dseek/posttrain/sft_data.h"

namespace {

using namespace dseek;

struct Args {
  std::string model, tokenizer, out;
  cli::TaskFlags t;
  int n = 1000, samples = 4, keep = 1, chunk = 64, threads = 0;
  int64_t max_new_tokens = 64;
  float temperature = 1.0f, top_p = 1.0f;
  uint64_t seed = 0;
};

int run(const Args& a) {
  DSEEK_CHECK(!a.out.empty(), "--out is required");
  DSEEK_CHECK(a.samples >= 1 && a.keep >= 1, "--samples and --keep must be >= 1");
  Model m = Model::load(a.model);
  Tokenizer tok = Tokenizer::load(a.tokenizer.empty() ? a.model : a.tokenizer);
  std::vector<Problem> ps = a.t.problems.empty()
                                ? task_generate(a.t.task, Split::SPLIT_TRAIN, a.n, a.seed, a.t.opts)
                                : task_load_jsonl(a.t.problems);
  const PromptFormat pf = a.t.format();
  std::ofstream f(a.out + ".tmp");
  DSEEK_CHECK(f.good(), "cannot write {}", a.out);
  RolloutOptions ro;
  ro.max_new_tokens = a.max_new_tokens;
  ro.sampler.temperature = a.temperature;
  ro.sampler.top_p = a.top_p;
  if (tok.eos_id() >= 0) ro.stop_ids = {tok.eos_id()};
  int64_t generated = 0, accepted = 0, written = 0, prompts_with_any = 0;
  ProgressBar bar("sample", (int64_t)ps.size());
  for (size_t i0 = 0; i0 < ps.size(); i0 += a.chunk) {
    const size_t i1 = std::min(ps.size(), i0 + a.chunk);
    std::vector<std::vector<int32_t>> prompts;
    for (size_t i = i0; i < i1; i++) prompts.push_back(prompt_ids(ps[i], tok, pf));
    ro.seed = a.seed * 1000003ull + i0;
    std::vector<Rollout> rs = rollout_generate(m, prompts, a.samples, ro);
    for (size_t i = i0; i < i1; i++) {
      std::set<std::string> kept;  // distinct accepted completions of this prompt
      for (int j = 0; j < a.samples; j++) {
        const std::string text = completion_text(rs[(i - i0) * a.samples + j].ids, tok);
        generated++;
        if (reward_accuracy(ps[i], text) <= 0 || reward_format(text) <= 0) continue;
        accepted++;
        if ((int)kept.size() < a.keep && kept.insert(text).second) {
          f << sft_jsonl_line(ps[i].question, text) << "\n";
          written++;
        }
      }
      prompts_with_any += !kept.empty();
    }
    bar.update((int64_t)i1,
               fmt::format("accepted {:.1f}% of samples, {} examples",
                           100.0 * accepted / std::max<int64_t>(1, generated), written));
  }
  f.close();
  DSEEK_CHECK(f.good(), "writing {} failed", a.out);
  std::rename((a.out + ".tmp").c_str(), a.out.c_str());
  bar.finish(fmt::format("{} examples -> {}", written, a.out));
  std::printf(
      "{\"prompts\": %zu, \"samples\": %ld, \"accepted\": %ld, \"acceptance\": %.4f, "
      "\"prompts_solved\": %.4f, \"written\": %ld, \"out\": \"%s\"}\n",
      ps.size(), (long)generated, (long)accepted,
      (double)accepted / std::max<int64_t>(1, generated),
      (double)prompts_with_any / std::max<size_t>(1, ps.size()), (long)written, a.out.c_str());
  return 0;
}

const bool reg = dseek::cli::add_command(
    {"sample", "Rejection sampling: keep the completions the checker accepts, as SFT JSONL",
     [](CLI::App* sub, int* rc) {
       static Args a;
       sub->add_option("-m,--model", a.model, "model folder (the policy, or a teacher)")
           ->required();
       sub->add_option("--tokenizer", a.tokenizer, "tokenizer.json (default: the model's)");
       sub->add_option("-o,--out", a.out, "SFT JSONL to write")->required();
       a.t.add(sub, true);
       sub->add_option("-n,--n", a.n, "prompts (from the task's train split)")
           ->capture_default_str();
       sub->add_option("--samples", a.samples, "completions per prompt")->capture_default_str();
       sub->add_option("--keep", a.keep, "accepted completions kept per prompt (distinct)")
           ->capture_default_str();
       sub->add_option("--temperature", a.temperature, "sampling temperature")
           ->capture_default_str();
       sub->add_option("--top-p", a.top_p, "nucleus mass")->capture_default_str();
       sub->add_option("--max-new-tokens", a.max_new_tokens, "completion length limit")
           ->capture_default_str();
       sub->add_option("--seed", a.seed, "seed (problems, sampling)")->capture_default_str();
       sub->footer(
           "Example (R1 stage 3: rejection sampling, then SFT on what was kept):\n"
           "  dseek sample -m runs/grpo/final --task add --digits 2 -n 2000 -o rs.jsonl\n"
           "  dseek sft -m runs/sft/final --data rs.jsonl -o runs/rs_sft\n");
       sub->callback([rc] { *rc = run(a); });
     },
     46});

}  // namespace
