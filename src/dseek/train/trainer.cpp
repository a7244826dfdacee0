#include "dseek/train/trainer.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "dseek/core/progress.h"
#include "dseek/infer/generate.h"
#include "dseek/io/token_shards.h"
#include "dseek/model/checkpoint.h"
#include "dseek/model/model_train.h"
#include "dseek/ops/cpu/cpu_parallel.h"
#include "dseek/tokenizer/tokenizer.h"
#include "dseek/train/adamw.h"
#include "dseek/train/bias_balancing.h"
#include "dseek/train/metrics_log.h"
#include "dseek/train/train_step.h"

namespace dseek {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string train_checkpoint_dir(const std::string& out_dir) {
  const std::string d = out_dir + "/checkpoint";
  if (fs::exists(d + "/trainer_state.json")) return d;
  if (fs::exists(d + ".old/trainer_state.json")) return d + ".old";
  return "";
}

namespace {

// Fault injection for the crash-safety test: DSEEK_TEST_KILL_IN_CHECKPOINT=N sends SIGKILL to
// this process while the N-th checkpoint of the run is half written.
void maybe_die_in_checkpoint(int64_t nth) {
  const char* e = std::getenv("DSEEK_TEST_KILL_IN_CHECKPOINT");
  if (e && std::atoll(e) == nth) kill(getpid(), SIGKILL);
}

std::string sample_text(const Model& m, const Tokenizer& tok, const TrainConfig& c, uint64_t seed) {
  std::vector<int32_t> prompt = tok.encode(c.sample_prompt);
  if (tok.bos_id() >= 0) prompt.insert(prompt.begin(), tok.bos_id());
  GenerateOptions o;
  o.max_new_tokens = c.sample_tokens;
  o.sampler = {.temperature = 0.8f, .top_k = 0, .top_p = 0.95f, .seed = seed};
  if (tok.eos_id() >= 0) o.stop_ids = {tok.eos_id()};
  LatentCache cache = m.new_cache();
  std::vector<int32_t> out = generate(m, cache, prompt, o);
  if (!out.empty() && tok.eos_id() >= 0 && out.back() == tok.eos_id()) out.pop_back();
  return c.sample_prompt + tok.decode(out, true);
}

Model build_model(const TrainConfig& c, uint32_t data_vocab) {
  Model m;
  if (!c.init_from.empty()) {
    m = Model::load(c.init_from);
    if (c.mtp_depth > m.cfg.mtp_depth) {  // add freshly initialized MTP modules
      Model fresh = m;
      fresh.cfg.mtp_depth = c.mtp_depth;
      weights_init_random(fresh.cfg, fresh.w, c.seed, c.init_std);
      std::vector<ParamRef> src = model_params(m.cfg, m.w), dst = model_params(fresh.cfg, fresh.w);
      for (size_t i = 0; i < src.size(); i++) *dst[i].tensor = *src[i].tensor;
      m = std::move(fresh);
    }
  } else {
    json mj = c.model;
    if (!mj.contains("vocab_size") || mj["vocab_size"] == "auto") mj["vocab_size"] = data_vocab;
    ModelConfig mc = ModelConfig::from_json(mj, "recipe model");
    mc.mtp_depth = c.mtp_depth;
    m = Model::random(mc, c.seed);
    if (c.init_std != 0.02f) weights_init_random(m.cfg, m.w, c.seed, c.init_std);
  }
  DSEEK_CHECK(data_vocab <= (uint32_t)m.cfg.vocab_size,
              "the data's vocabulary ({}) is larger than the model's ({})", data_vocab,
              m.cfg.vocab_size);
  return m;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  DSEEK_CHECK(f.good(), "cannot write {}", path);
  f << text;
}

}  // namespace

TrainResult train_run(const TrainConfig& c, bool resume) {
  set_cpu_threads(c.threads);
  const std::string device = train_device_resolve(c.device);
  fs::create_directories(c.out_dir);
  TokenLoader train(c.data, "train", TokenLoaderMode::TOKEN_LOADER_MODE_RANDOM, c.seed);
  TokenLoader val(c.data, "val", TokenLoaderMode::TOKEN_LOADER_MODE_SEQUENTIAL, c.seed);

  // tokenizer for samples and to ship with checkpoints
  std::string tok_path = c.tokenizer;
  if (tok_path.empty() && fs::exists(c.data + "/meta.json")) {
    json meta = load_json_file(c.data + "/meta.json");
    const json& t = meta.contains("tokenizer") ? meta["tokenizer"] : json();
    if (t.is_object() && t.contains("path") && t["path"].is_string())
      tok_path = t["path"].get<std::string>();
    else if (t.is_string())
      tok_path = t.get<std::string>();
  }
  std::optional<Tokenizer> tok;
  if (!tok_path.empty() && fs::exists(tok_path)) tok = Tokenizer::load(tok_path);

  // model, optimizer, state
  int64_t step = 0, tokens_seen = 0;
  double train_time = 0;
  const std::string ck = train_checkpoint_dir(c.out_dir);
  Model m;
  if (resume) {
    DSEEK_CHECK(!ck.empty(), "--resume: no checkpoint in {} (nothing to resume)", c.out_dir);
    m = Model::load(ck);
  } else {
    m = build_model(c, train.vocab_size());
  }
  const int64_t nl = m.cfg.num_hidden_layers, B = c.batch_size, T = c.seq_len;
  std::unique_ptr<TrainStep> be = device == "cuda" ? train_step_gpu(m, B, T, c.optimizer)
                                                   : train_step_cpu(m, B, T, c.optimizer);
  if (resume) {
    be->load_optimizer(ck + "/optimizer.safetensors");
    json st = load_json_file(ck + "/trainer_state.json");
    step = st.at("step").get<int64_t>();
    tokens_seen = st.at("tokens_seen").get<int64_t>();
    train_time = st.at("train_time_s").get<double>();
    train.set_state(st.at("train_loader").get<std::string>());
  }
  MetricsLog log = resume ? MetricsLog::resume(c.out_dir, step) : MetricsLog::create(c.out_dir);
  write_text(c.out_dir + "/recipe.json", c.to_json().dump(2) + "\n");

  int64_t n_params = 0;
  for (const ParamRef& p : model_params(m.cfg, m.w)) n_params += p.tensor->numel();
  std::fprintf(stderr,
               "[train] %s  %s, %.2fM params, %ld layers (MoE from %ld), %ld experts top-%ld, "
               "MTP depth %ld; device %s\n"
               "[train] data %s: %lu train / %lu val tokens; batch %ldx%ld x%ld accum; %ld steps; "
               "lr %s; gamma %g, seq alpha %g%s\n",
               c.out_dir.c_str(), arch_name(m.cfg.arch), n_params / 1e6, (long)nl,
               (long)m.cfg.first_k_dense_replace, (long)m.cfg.n_routed_experts,
               (long)m.cfg.num_experts_per_tok, (long)m.cfg.mtp_depth, device.c_str(),
               c.data.c_str(), (unsigned long)train.n_tokens(), (unsigned long)val.n_tokens(),
               (long)B, (long)T, (long)c.grad_accum, (long)c.steps, c.lr.to_json().dump().c_str(),
               c.bias_update_speed, c.seq_balance_alpha,
               resume ? fmt::format(", resuming at step {}", step).c_str() : "");

  int64_t nth = 0;  // checkpoints written by this call
  auto save = [&](int64_t at_step) {
    nth++;
    json st = {{"step", at_step},
               {"tokens_seen", tokens_seen},
               {"train_time_s", train_time},
               {"train_loader", train.state()},
               {"recipe", c.to_json()}};
    be->sync_weights_to_host();
    save_model_dir(c.out_dir + "/checkpoint", m, {{"step", std::to_string(at_step)}},
                   [&](const std::string& staging) {
                     be->save_optimizer(staging + "/optimizer.safetensors");
                     maybe_die_in_checkpoint(nth);
                     write_text(staging + "/trainer_state.json", st.dump(2) + "\n");
                     if (tok)
                       fs::copy_file(tok_path, staging + "/tokenizer.json",
                                     fs::copy_options::overwrite_existing);
                   });
  };

  TrainResult res;
  res.device = device;
  if (!resume) {  // the untrained model's validation loss, for the curves
    double v = train_eval_loss(*be, val, B, T, c.eval_batches);
    log.write({{"step", 0}, {"val_loss", v}, {"time_s", 0.0}});
    res.last_val_loss = v;
  }
  ProgressBar bar("train", c.steps, step);
  std::vector<int32_t> rows, in, tgt;
  std::vector<std::vector<int64_t>> loads(nl);
  const int64_t D = m.cfg.mtp_depth;
  while (step < c.steps) {
    auto t0 = std::chrono::steady_clock::now();
    be->zero_grads();
    for (auto& l : loads)
      l.assign(m.cfg.is_moe_layer(&l - loads.data()) ? m.cfg.n_routed_experts : 0, 0);
    double ce = 0, bal = 0;
    std::vector<double> mtp(D, 0.0);
    TrainOptions o{.loss_scale = 1.0f / (float)c.grad_accum,
                   .mtp_lambda = c.mtp_lambda_at(step),
                   .seq_balance_alpha = c.seq_balance_alpha,
                   .aux_balance_alpha = c.aux_balance_alpha};
    for (int64_t micro = 0; micro < c.grad_accum; micro++) {
      train.next_batch((int)B, (int)T, &rows);
      train_split_rows(rows, B, T, &in, &tgt);
      const MicroBatchStats ms = be->forward_backward(in.data(), tgt.data(), o);
      ce += ms.ce_loss / c.grad_accum;
      bal += ms.balance_loss / c.grad_accum;
      for (int64_t k = 0; k < D && k < (int64_t)ms.mtp_loss.size(); k++)
        mtp[k] += ms.mtp_loss[k] / c.grad_accum;
      for (int64_t l = 0; l < nl; l++)
        for (size_t e = 0; e < ms.expert_load[l].size(); e++) loads[l][e] += ms.expert_load[l][e];
    }
    DSEEK_CHECK(std::isfinite(ce), "loss became {} at step {} (lower the learning rate?)", ce,
                step);
    const float lr = c.lr.lr(step);
    const float gnorm = (float)be->clip_and_step(lr, c.grad_clip);
    bias_balance_update(m.w, m.cfg, loads, c.bias_update_speed);
    if (c.bias_update_speed != 0.0f) be->router_biases_changed();
    step++;
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    train_time += dt;
    tokens_seen += B * T * c.grad_accum;
    const double tps = B * T * c.grad_accum / dt;
    res.last_loss = ce;

    const bool last = step == c.steps;
    const bool out_of_time = c.time_limit_s > 0 && train_time >= c.time_limit_s;
    const bool eval_now = step % c.eval_every == 0 || last || out_of_time;
    if (step % c.log_every == 0 || eval_now) {
      json r = {{"step", step},          {"loss", ce},          {"lr", lr},
                {"grad_norm", gnorm},    {"tokens_per_s", tps}, {"time_s", train_time},
                {"tokens", tokens_seen}, {"balance_loss", bal}};
      if (D > 0) r["mtp_loss"] = mtp;
      json mv = json::array(), el = json::array();
      for (int64_t l = 0; l < nl; l++) {
        if (loads[l].empty()) continue;
        mv.push_back(max_violation(loads[l]));
        double tot = 0;
        for (int64_t x : loads[l]) tot += (double)x;
        json fr = json::array();
        for (int64_t x : loads[l]) fr.push_back(tot > 0 ? x / tot : 0.0);
        el.push_back(fr);
      }
      r["maxvio"] = mv;
      r["expert_load"] = el;
      if (eval_now) {
        res.last_val_loss = train_eval_loss(*be, val, B, T, c.eval_batches);
        r["val_loss"] = res.last_val_loss;
      }
      log.write(r);
      double mvmean = 0;
      for (auto& x : mv) mvmean += x.get<double>() / std::max<size_t>(1, mv.size());
      bar.update(step,
                 fmt::format("loss {:.4f}{} | {:.0f} tok/s | lr {:.2e} | maxvio {:.2f}", ce,
                             eval_now ? fmt::format(" val {:.4f}", res.last_val_loss) : "", tps, lr,
                             mvmean),
                 eval_now);
    }
    if (step % c.checkpoint_every == 0 || last || out_of_time) save(step);
    if (c.sample_every > 0 && step % c.sample_every == 0 && tok) {
      be->sync_weights_to_host();
      std::fprintf(stderr, "\n[sample @%ld] %s\n", (long)step,
                   sample_text(m, *tok, c, step).c_str());
    }
    if (out_of_time && !last) {
      res.stopped_by_time = true;
      std::fprintf(stderr, "[train] time limit %.0fs reached at step %ld (checkpoint saved)\n",
                   c.time_limit_s, (long)step);
      break;
    }
  }
  res.steps_done = step;
  bar.finish(fmt::format("loss {:.4f}, val {:.4f}, {} tokens", res.last_loss, res.last_val_loss,
                         tokens_seen));
  if (tok) {
    be->sync_weights_to_host();
    std::string s = sample_text(m, *tok, c, 1234);
    std::printf("[sample] %s\n", s.c_str());
    write_text(c.out_dir + "/samples.txt", s + "\n");
  }
  return res;
}

}  // namespace dseek
