// `dseek eval -m MODEL --task add`: held-out accuracy of a policy on a verifiable task: pass@1
// (greedy), format rate, pass@k (k samples), with a few sample answers. JSON summary on stdout.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "dseek/cli/command.h"
#include "dseek/cli/task_flags.h"
#include "dseek/core/error.h"
#include "dseek/posttrain/evaluate.h"

namespace {

using namespace dseek;

struct Args {
  std::string model, tokenizer;
  cli::TaskFlags t;
  int n = 200, k = 0, show = 3, threads = 0;
  int64_t max_new_tokens = 64;
  float temperature = 1.0f;
  uint64_t seed = 0;
};

int run(const Args& a) {
  Model m = Model::load(a.model);
  Tokenizer tok = Tokenizer::load(a.tokenizer.empty() ? a.model : a.tokenizer);
  std::vector<Problem> ps = a.t.problems.empty() ? task_eval_problems(a.t.task, a.n, a.t.opts)
                                                 : task_load_jsonl(a.t.problems);
  EvalOptions o{.format = a.t.format(),
                .max_new_tokens = a.max_new_tokens,
                .k = a.k,
                .temperature = a.temperature,
                .top_p = 1.0f,
                .seed = a.seed};
  EvalResult r = evaluate_tasks(m, tok, ps, o);
  for (int i = 0; i < std::min<int>(a.show, (int)ps.size()); i++)
    std::fprintf(stderr, "[eval] %s  ->  %s  [%s]\n", ps[i].question.c_str(), r.greedy[i].c_str(),
                 r.greedy_correct[i] ? "correct" : "wrong");
  nlohmann::json j = {{"model", a.model},
                      {"problems", r.n},
                      {"pass1", r.pass1},
                      {"format", r.format},
                      {"mean_tokens", r.mean_tokens}};
  if (a.k > 0) {
    j["k"] = a.k;
    j["passk"] = r.passk;
    j["sample_accuracy"] = r.sample_accuracy;
    j["sample_format"] = r.sample_format;
  }
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

const bool reg = dseek::cli::add_command(
    {"eval", "Held-out accuracy on a verifiable task: pass@1 (greedy), format rate, pass@k",
     [](CLI::App* sub, int* rc) {
       static Args a;
       sub->add_option("-m,--model", a.model, "model folder")->required();
       sub->add_option("--tokenizer", a.tokenizer, "tokenizer.json (default: the model's)");
       a.t.add(sub, true);
       sub->add_option("-n,--n", a.n, "test problems (generated tasks)")->capture_default_str();
       sub->add_option("-k", a.k, "samples per problem for pass@k (0 = greedy only)")
           ->capture_default_str();
       sub->add_option("--temperature", a.temperature, "sampling temperature for pass@k")
           ->capture_default_str();
       sub->add_option("--max-new-tokens", a.max_new_tokens, "completion length limit")
           ->capture_default_str();
       sub->add_option("--seed", a.seed, "sampling seed")->capture_default_str();
       sub->add_option("--show", a.show, "sample answers to print")->capture_default_str();
       sub->footer("Example:\n  dseek eval -m runs/sft/final --task add --digits 2 -k 8\n");
       sub->callback([rc] { *rc = run(a); });
     },
     62});

}  // namespace
