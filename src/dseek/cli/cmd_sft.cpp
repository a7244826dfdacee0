// `dseek sft -m MODEL --data chat.jsonl`: supervised fine-tuning with the loss on assistant
// tokens only (posttrain/sft.h); `--teacher DIR` adds logit distillation.
#include <cstdio>

#include "dseek/cli/command.h"
#include "dseek/posttrain/sft.h"

namespace {

using namespace dseek;

struct Args {
  SftConfig c;
  std::string chat_template = "deepseek-v3";
};

int run(Args& a) {
  a.c.chat = chat_template_from_name(a.chat_template);
  SftResult r = sft_run(a.c);
  std::printf(
      "{\"steps\": %ld, \"examples\": %ld, \"trained_tokens\": %ld, \"loss_first\": %.6f, "
      "\"loss_last\": %.6f, \"val_loss\": %.6f, \"model\": \"%s\"}\n",
      (long)r.steps, (long)r.examples, (long)r.trained_tokens, r.first_loss, r.last_loss,
      r.val_loss, r.final_dir.c_str());
  return 0;
}

const bool reg = dseek::cli::add_command(
    {"sft", "Supervised fine-tuning on chat JSONL (loss on assistant tokens only)",
     [](CLI::App* sub, int* rc) {
       static Args a;
       SftConfig& c = a.c;
       sub->add_option("-m,--model", c.model, "model folder to fine-tune")->required();
       sub->add_option("--data", c.data,
                       "chat JSONL: {\"messages\": [...]} or {\"prompt\", \"response\"} a line")
           ->required();
       sub->add_option("-o,--out", c.out_dir, "run folder (metrics.jsonl, final/)")
           ->capture_default_str();
       sub->add_option("--tokenizer", c.tokenizer, "tokenizer.json (default: the model's)");
       sub->add_option("--template", a.chat_template, "chat template")->capture_default_str();
       sub->add_option("--epochs", c.epochs, "passes over the data")->capture_default_str();
       sub->add_option("--steps", c.steps, "optimizer steps instead of epochs (0 = epochs)")
           ->capture_default_str();
       sub->add_option("--batch-size", c.batch_size, "examples per step")->capture_default_str();
       sub->add_option("--max-len", c.max_len, "tokens per example (longer ones are cut)")
           ->capture_default_str();
       sub->add_option("--lr", c.lr, "peak learning rate (cosine decay to lr * 0.1)")
           ->capture_default_str();
       sub->add_option("--warmup", c.warmup_steps, "warmup steps")->capture_default_str();
       sub->add_option("--weight-decay", c.optimizer.weight_decay, "AdamW weight decay")
           ->capture_default_str();
       sub->add_option("--mtp-lambda", c.mtp_lambda, "MTP loss weight (0 = skip MTP)")
           ->capture_default_str();
       sub->add_option("--val-fraction", c.val_fraction, "examples held out for val loss")
           ->capture_default_str();
       sub->add_option("--teacher", c.teacher, "teacher model folder: logit distillation");
       sub->add_option("--distill-alpha", c.distill_alpha, "weight of the KL term")
           ->capture_default_str();
       sub->add_option("--distill-temperature", c.distill_tau, "softmax temperature of the KL")
           ->capture_default_str();
       sub->add_option("--seed", c.seed, "seed (split, order)")->capture_default_str();
       sub->add_option("--threads", c.threads, "CPU threads (0 = all)");
       sub->footer(
           "Example:\n"
           "  dseek tasks generate --task add --digits 2 --format sft -n 300 -o cold.jsonl\n"
           "  dseek sft -m runs/tiny/checkpoint --data cold.jsonl -o runs/sft\n");
       sub->callback([rc] { *rc = run(a); });
     },
     42});

}  // namespace
