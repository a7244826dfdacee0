#include "dseek/posttrain/sft.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dseek/core/error.h"
#include "dseek/core/progress.h"
#include "dseek/model/checkpoint.h"
#include "dseek/model/model_train.h"
#include "dseek/ops/cpu/cpu_parallel.h"
#include "dseek/ops/cpu/cross_entropy.h"
#include "dseek/posttrain/distill_loss.h"
#include "dseek/posttrain/seq_batch.h"
#include "dseek/posttrain/sft_data.h"
#include "dseek/train/lr_schedule.h"
#include "dseek/train/metrics_log.h"

namespace dseek {

namespace fs = std::filesystem;

namespace {

// Mean CE over the trained tokens of `batches` (no gradient).
double val_loss(const Model& m, const std::vector<SftExample>& ex, int32_t pad, int64_t bs,
                int64_t max_len) {
  double sum = 0;
  int64_t n = 0;
  for (size_t i = 0; i < ex.size(); i += bs) {
    std::vector<const SftExample*> rows;
    for (size_t j = i; j < std::min(ex.size(), i + bs); j++) rows.push_back(&ex[j]);
    SeqBatch b = seq_batch(rows, pad, max_len);
    Tensor logits = m.forward(b.inputs.data(), b.B, b.T);
    int64_t cnt = 0;
    sum += cross_entropy_forward_backward(nullptr, logits.ptr(), b.targets.data(), logits.dim(0),
                                          logits.dim(1), 0.0f, &cnt);
    n += cnt;
  }
  return n ? sum / n : NAN;
}

}  // namespace

SftResult sft_run(const SftConfig& c) {
  set_cpu_threads(c.threads);
  DSEEK_CHECK(c.batch_size >= 1, "--batch-size must be >= 1");
  DSEEK_CHECK(c.epochs >= 1 || c.steps >= 1, "--epochs or --steps must be >= 1");
  DSEEK_CHECK(c.val_fraction >= 0 && c.val_fraction < 1, "--val-fraction must be in [0, 1)");
  Model m = Model::load(c.model);
  const std::string tok_path = model_tokenizer_path(c.tokenizer, c.model);
  Tokenizer tok = Tokenizer::load(tok_path);
  std::vector<SftExample> all = sft_load_jsonl(c.data, tok, c.chat);
  for (const SftExample& e : all)
    for (int32_t id : e.ids)
      DSEEK_CHECK(id < m.cfg.vocab_size,
                  "token id {} of the data is outside the model's vocabulary ({}): wrong "
                  "tokenizer?",
                  id, m.cfg.vocab_size);
  std::optional<Model> teacher;
  if (!c.teacher.empty()) {
    teacher = Model::load(c.teacher);
    DSEEK_CHECK(teacher->cfg.vocab_size == m.cfg.vocab_size,
                "logit distillation needs the same vocabulary: teacher {} vs student {}",
                teacher->cfg.vocab_size, m.cfg.vocab_size);
  }

  // split: shuffle once (seeded), the first val_fraction are held out
  std::mt19937_64 rng(c.seed);
  std::shuffle(all.begin(), all.end(), rng);
  int64_t n_val = (int64_t)std::llround(c.val_fraction * (double)all.size());
  if (c.val_fraction > 0 && n_val == 0 && all.size() > 1) n_val = 1;
  std::vector<SftExample> val(all.begin(), all.begin() + n_val);
  std::vector<SftExample> train(all.begin() + n_val, all.end());
  DSEEK_CHECK(!train.empty(), "no training examples left after the validation split");
  const int64_t per_epoch = ((int64_t)train.size() + c.batch_size - 1) / c.batch_size;
  const int64_t total = c.steps > 0 ? c.steps : per_epoch * c.epochs;
  LrSchedule lr{.kind = LrScheduleKind::LR_SCHEDULE_COSINE,
                .max_lr = c.lr,
                .min_lr = c.lr * c.min_lr_ratio,
                .warmup_steps = std::min(c.warmup_steps, total),
                .total_steps = total,
                .decay_fraction = 0.1};
  lr.validate();
  const int32_t pad = tok.eos_id() >= 0 ? tok.eos_id() : 0;

  fs::create_directories(c.out_dir);
  MetricsLog log = MetricsLog::create(c.out_dir);
  ModelWeights G;
  weights_allocate(m.cfg, G);
  std::vector<ParamRef> params = model_params(m.cfg, m.w), grads = model_params(m.cfg, G);
  AdamW opt(params, c.optimizer);
  int64_t n_trained = 0;
  for (const SftExample& e : train) n_trained += e.trained();
  std::fprintf(stderr,
               "[sft] %s -> %s: %zu train / %zu val examples (%ld trained tokens), batch %ld, "
               "%ld steps, lr %g%s\n",
               c.model.c_str(), c.out_dir.c_str(), train.size(), val.size(), (long)n_trained,
               (long)c.batch_size, (long)total, c.lr,
               teacher ? fmt::format(", distilling from {} (alpha {}, tau {})", c.teacher,
                                     c.distill_alpha, c.distill_tau)
                             .c_str()
                       : "");

  SftResult res;
  res.examples = (int64_t)train.size();
  if (!val.empty()) {
    res.val_loss = val_loss(m, val, pad, c.batch_size, c.max_len);
    log.write({{"step", 0}, {"val_loss", res.val_loss}});
  }
  ProgressBar bar("sft", total);
  std::vector<size_t> order(train.size());
  size_t cursor = order.size();
  TrainActs acts;
  double t_total = 0;
  for (int64_t step = 0; step < total; step++) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<const SftExample*> rows;
    while ((int64_t)rows.size() < c.batch_size) {
      if (cursor == order.size()) {  // new epoch
        for (size_t i = 0; i < order.size(); i++) order[i] = i;
        std::shuffle(order.begin(), order.end(), rng);
        cursor = 0;
      }
      rows.push_back(&train[order[cursor++]]);
      if (c.steps == 0 && cursor == order.size()) break;  // epochs: last batch may be short
    }
    SeqBatch b = seq_batch(rows, pad, c.max_len);
    grads_zero(grads);
    TrainOptions o;
    o.mtp_lambda = c.mtp_lambda;
    o.run_mtp = c.mtp_lambda > 0;
    o.seq_balance_alpha = 0.0f;
    o.defer_head_grad = teacher.has_value();
    model_train_forward(m, b.inputs.data(), b.targets.data(), b.B, b.T, acts, o);
    double kl = -1;
    if (teacher) {
      Tensor tl = teacher->forward(b.inputs.data(), b.B, b.T);
      DistillStats st = distill_forward_backward(
          acts.dlogits.data(), tl.ptr(), b.targets.data(), b.B * b.T, m.cfg.vocab_size,
          c.distill_alpha, c.distill_tau, b.n_targets ? 1.0f / (float)b.n_targets : 0.0f);
      kl = st.rows ? st.kl_sum / st.rows : 0.0;
    }
    model_train_backward(m, acts, G);
    const float gnorm =
        c.grad_clip > 0 ? clip_grad_norm(grads, c.grad_clip) : (float)grad_global_norm(grads);
    DSEEK_CHECK(std::isfinite(acts.ce_loss) && std::isfinite(gnorm),
                "sft: loss became {} at step {} (lower the learning rate?)", acts.ce_loss, step);
    const float cur_lr = lr.lr(step);
    opt.step(grads, cur_lr);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    t_total += dt;
    if (step == 0) res.first_loss = acts.ce_loss;
    res.last_loss = acts.ce_loss;
    res.trained_tokens += b.n_targets;
    const bool last = step + 1 == total;
    if ((step + 1) % c.log_every == 0 || last) {
      nlohmann::json r = {{"step", step + 1},
                          {"loss", acts.ce_loss},
                          {"lr", cur_lr},
                          {"grad_norm", gnorm},
                          {"tokens_per_s", (double)(b.B * b.T) / dt},
                          {"time_s", t_total}};
      if (kl >= 0) r["kl"] = kl;
      if (last && !val.empty()) {
        res.val_loss = val_loss(m, val, pad, c.batch_size, c.max_len);
        r["val_loss"] = res.val_loss;
      }
      log.write(r);
      bar.update(step + 1,
                 fmt::format("loss {:.4f}{} | lr {:.2e}", acts.ce_loss,
                             kl >= 0 ? fmt::format(" kl {:.4f}", kl) : "", cur_lr),
                 last);
    }
  }
  res.steps = total;
  res.final_dir = c.out_dir + "/final";
  save_model_dir_with_tokenizer(res.final_dir, m, {{"sft_steps", std::to_string(total)}}, tok_path);
  bar.finish(fmt::format("loss {:.4f} -> {:.4f}, val {:.4f}; saved {}", res.first_loss,
                         res.last_loss, res.val_loss, res.final_dir));
  return res;
}

}  // namespace dseek
