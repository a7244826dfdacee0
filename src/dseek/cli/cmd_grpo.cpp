// `dseek grpo -m MODEL --task add`: GRPO with rule-based rewards on a verifiable task
// (posttrain/grpo.h): metrics.jsonl, samples.jsonl and final/ in the run folder.
#include <cstdio>

#include <fmt/format.h>

#include "dseek/cli/command.h"
#include "dseek/cli/task_flags.h"
#include "dseek/core/error.h"
#include "dseek/posttrain/grpo.h"

namespace {

using namespace dseek;

struct Args {
  GrpoConfig c;
  cli::TaskFlags t;
  std::string loss = "grpo", scaling = "std";
};

int run(Args& a) {
  GrpoConfig& c = a.c;
  c.task = a.t.task;
  c.task_options = a.t.opts;
  c.prompt = a.t.format();
  if (c.eval_temperature < 0) c.eval_temperature = c.temperature;
  if (a.loss == "grpo")
    c.loss.kind = GrpoLossKind::GRPO_LOSS_SEQUENCE_MEAN;
  else if (a.loss == "dapo")
    c.loss.kind = GrpoLossKind::GRPO_LOSS_TOKEN_MEAN;
  else if (a.loss == "dr_grpo")
    c.loss.kind = GrpoLossKind::GRPO_LOSS_DR_GRPO;
  else
    fail("--loss must be grpo, dapo or dr_grpo, got '{}'", a.loss);
  DSEEK_CHECK(a.scaling == "std" || a.scaling == "none", "--scaling must be std or none");
  c.scaling = a.scaling == "std" ? GrpoScaling::GRPO_SCALING_STD : GrpoScaling::GRPO_SCALING_NONE;
  c.optimizer.lr = (float)c.lr;
  GrpoResult r = grpo_run(c);
  // the before/after table (stderr; the JSON summary goes to stdout)
  auto pct = [](double x) { return x < 0 ? std::string("-") : fmt::format("{:.1f}%", 100 * x); };
  std::fprintf(stderr,
               "\nheld-out %s (%d test problems)   before RL   after RL (%ld steps)\n"
               "  pass@1 (greedy)                %9s   %9s\n"
               "  format rate                    %9s   %9s\n"
               "  pass@%-2d (T=%.1f)                %9s   %9s\n",
               c.task.c_str(), c.eval_n, (long)r.steps, pct(r.first.pass1).c_str(),
               pct(r.last.pass1).c_str(), pct(r.first.format).c_str(), pct(r.last.format).c_str(),
               c.eval_k, c.eval_temperature, pct(r.first.passk).c_str(), pct(r.last.passk).c_str());
  for (size_t i = 0; i < std::min<size_t>(3, r.last.questions.size()); i++)
    std::fprintf(stderr, "\n  Q: %s\n  before: %s  [%s]\n  after:  %s  [%s]\n",
                 r.last.questions[i].c_str(), r.first.completions[i].c_str(),
                 r.first.correct[i] ? "correct" : "wrong", r.last.completions[i].c_str(),
                 r.last.correct[i] ? "correct" : "wrong");
  std::printf(
      "{\"steps\": %ld, \"pass1_before\": %.4f, \"pass1_after\": %.4f, \"format_before\": %.4f, "
      "\"format_after\": %.4f, \"passk_before\": %.4f, \"passk_after\": %.4f, \"model\": "
      "\"%s\"}\n",
      (long)r.steps, r.first.pass1, r.last.pass1, r.first.format, r.last.format, r.first.passk,
      r.last.passk, r.final_dir.c_str());
  return 0;
}

const bool reg = dseek::cli::add_command(
    {"grpo", "GRPO with rule-based rewards (R1-Zero) on a verifiable task",
     [](CLI::App* sub, int* rc) {
       static Args a;
       GrpoConfig& c = a.c;
       sub->add_option("-m,--model", c.model, "policy to start from (and the KL reference)")
           ->required();
       sub->add_option("-o,--out", c.out_dir, "run folder")->capture_default_str();
       sub->add_option("--tokenizer", c.tokenizer, "tokenizer.json (default: the model's)");
       a.t.add(sub, false);
       sub->add_option("--steps", c.steps, "rollout batches")->capture_default_str();
       sub->add_option("--time-limit", c.time_limit_s, "stop after this many seconds (0 = off)")
           ->capture_default_str();
       sub->add_option("--prompts", c.prompts_per_step, "prompts per step")->capture_default_str();
       sub->add_option("-G,--group-size", c.group_size, "samples per prompt")
           ->capture_default_str();
       sub->add_option("--max-new-tokens", c.max_new_tokens, "completion length limit")
           ->capture_default_str();
       sub->add_option("--temperature", c.temperature, "rollout temperature")
           ->capture_default_str();
       sub->add_option("--updates", c.updates, "optimizer steps per rollout batch (mu)")
           ->capture_default_str();
       sub->add_option("--micro-batch", c.micro_batch, "sequences per forward/backward")
           ->capture_default_str();
       sub->add_option("--lr", c.lr, "learning rate")->capture_default_str();
       sub->add_option("--warmup", c.warmup_steps, "linear warmup steps")->capture_default_str();
       sub->add_option("--beta", c.loss.beta, "KL weight (k3 estimator; 0 = no reference)")
           ->capture_default_str();
       sub->add_option("--eps-low", c.loss.eps_low, "lower clip range")->capture_default_str();
       sub->add_option("--eps-high", c.loss.eps_high, "upper clip range (DAPO: 0.28)")
           ->capture_default_str();
       sub->add_option("--loss", a.loss,
                       "grpo (per-sequence mean), dapo (token mean), dr_grpo (fixed length)")
           ->capture_default_str();
       sub->add_option("--scaling", a.scaling, "advantage scaling: std, or none (Dr. GRPO)")
           ->capture_default_str();
       sub->add_option("--w-accuracy", c.rewards.accuracy, "accuracy reward weight")
           ->capture_default_str();
       sub->add_option("--w-format", c.rewards.format, "format reward weight")
           ->capture_default_str();
       sub->add_option("--w-language", c.rewards.language,
                       "language-consistency reward weight (Latin script)")
           ->capture_default_str();
       sub->add_option("--eval-every", c.eval_every, "steps between held-out evaluations")
           ->capture_default_str();
       sub->add_option("--eval-n", c.eval_n, "held-out problems")->capture_default_str();
       sub->add_option("--eval-k", c.eval_k, "samples per problem for pass@k (0 = off)")
           ->capture_default_str();
       sub->add_option("--eval-temperature", c.eval_temperature,
                       "sampling temperature for pass@k (default: the rollout --temperature)");
       sub->add_option("--checkpoint-every", c.checkpoint_every, "steps (0 = only at the end)")
           ->capture_default_str();
       sub->add_option("--seed", c.seed, "seed (problems, sampling)")->capture_default_str();
       sub->add_option("--threads", c.threads, "CPU threads (0 = all)");
       sub->footer(
           "Example:\n"
           "  dseek grpo -m runs/sft/final --task add --digits 2 --steps 60 -o runs/grpo\n");
       sub->callback([rc] { *rc = run(a); });
     },
     44});

}  // namespace
