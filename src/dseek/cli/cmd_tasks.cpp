// `dseek tasks generate`: verifiable task problems as files, for every stage of the R1 recipe:
//   --format problems  JSONL {"prompt", "answer", "checker"}    (dseek eval / sample --problems)
//   --format sft       chat JSONL with worked R1-format answers  (dseek sft: the cold start)
//   --format text      one line of text per problem             (pretraining data)
// Train and test splits are disjoint by construction (tasks.h).
#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "dseek/cli/command.h"
#include "dseek/cli/task_flags.h"
#include "dseek/core/error.h"
#include "dseek/posttrain/sft_data.h"
#include "dseek/posttrain/task_traces.h"

namespace {

using namespace dseek;

struct Args {
  cli::TaskFlags t;
  std::string split = "train", format = "problems", out;
  int n = 1000;
  uint64_t seed = 0;
};

int run(const Args& a) {
  DSEEK_CHECK(a.split == "train" || a.split == "test", "--split must be train or test");
  DSEEK_CHECK(a.format == "problems" || a.format == "sft" || a.format == "text",
              "--format must be problems, sft or text");
  std::vector<Problem> ps = task_generate(
      a.t.task, a.split == "train" ? Split::SPLIT_TRAIN : Split::SPLIT_TEST, a.n, a.seed, a.t.opts);
  std::ofstream file;
  if (!a.out.empty()) {
    file.open(a.out);
    DSEEK_CHECK(file.good(), "cannot write {}", a.out);
  }
  std::string all;
  for (const Problem& p : ps) {
    if (a.format == "problems")
      all +=
          nlohmann::json{{"prompt", p.question}, {"answer", p.answer}, {"checker", p.task}}.dump();
    else if (a.format == "sft")
      all += sft_jsonl_line(p.question, task_completion(p));
    else
      all += task_text(p);
    all += '\n';
  }
  if (a.out.empty()) {
    std::fwrite(all.data(), 1, all.size(), stdout);
  } else {
    file << all;
    DSEEK_CHECK(file.good(), "writing {} failed", a.out);
    std::fprintf(stderr, "[tasks] %zu %s problems (%s split) -> %s\n", ps.size(), a.t.task.c_str(),
                 a.split.c_str(), a.out.c_str());
  }
  return 0;
}

const bool reg = dseek::cli::add_command(
    {"tasks", "Generate verifiable task problems, SFT examples or pretraining text",
     [](CLI::App* sub, int* rc) {
       static Args a;
       CLI::App* gen = sub->add_subcommand("generate", "write problems of a task to a file");
       sub->require_subcommand(1);
       a.t.add(gen, false);
       gen->add_option("--split", a.split, "train or test (disjoint)")->capture_default_str();
       gen->add_option("-n,--n", a.n, "number of problems")->capture_default_str();
       gen->add_option("--seed", a.seed, "seed")->capture_default_str();
       gen->add_option("--format", a.format,
                       "problems (JSONL for eval/sample), sft (chat JSONL with worked "
                       "answers), text (pretraining lines)")
           ->capture_default_str();
       gen->add_option("-o,--out", a.out, "output file (default: stdout)");
       gen->footer(
           "Examples:\n"
           "  dseek tasks generate --task add --digits 2 --format sft -n 300 -o sft.jsonl\n"
           "  dseek tasks generate --task countdown --split test -n 200 -o test.jsonl\n");
       gen->callback([rc] { *rc = run(a); });
     },
     60});

}  // namespace
