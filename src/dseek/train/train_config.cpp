#include "dseek/train/train_config.h"

#include <fstream>
#include <set>
#include <sstream>

#include "dseek/core/error.h"

namespace dseek {

using json = nlohmann::json;

nlohmann::json load_json_file(const std::string& path) {
  std::ifstream f(path);
  DSEEK_CHECK(f.good(), "cannot open {}: no such file", path);
  std::stringstream ss;
  ss << f.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  DSEEK_CHECK(!j.is_discarded(), "{}: malformed JSON", path);
  return j;
}

void json_set_path(json& j, const std::string& a) {
  const size_t eq = a.find('=');
  DSEEK_CHECK(eq != std::string::npos && eq > 0, "--set expects key=value, got '{}'", a);
  const std::string key = a.substr(0, eq), val = a.substr(eq + 1);
  json v = json::parse(val, nullptr, false);
  if (v.is_discarded()) v = val;  // a bare string
  json* cur = &j;
  size_t start = 0;
  while (true) {
    size_t dot = key.find('.', start);
    std::string part =
        key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    DSEEK_CHECK(!part.empty(), "--set: empty key component in '{}'", key);
    if (dot == std::string::npos) {
      (*cur)[part] = v;
      return;
    }
    if (!cur->contains(part) || !(*cur)[part].is_object()) (*cur)[part] = json::object();
    cur = &(*cur)[part];
    start = dot + 1;
  }
}

namespace {

struct Reader {
  const json& j;
  std::string origin, prefix;
  std::set<std::string> seen = {};
  bool has(const char* k) {
    seen.insert(k);
    return j.contains(k) && !j[k].is_null();
  }
  template <typename T>
  void num(const char* k, T* out) {
    if (!has(k)) return;
    DSEEK_CHECK(j[k].is_number(), "{}: {}{} must be a number, got {}", origin, prefix, k,
                j[k].dump());
    if constexpr (std::is_integral_v<T>) {
      DSEEK_CHECK(j[k].is_number_integer() || j[k].is_number_unsigned(),
                  "{}: {}{} must be an integer, got {}", origin, prefix, k, j[k].dump());
    }
    *out = j[k].get<T>();
  }
  void str(const char* k, std::string* out) {
    if (!has(k)) return;
    DSEEK_CHECK(j[k].is_string(), "{}: {}{} must be a string, got {}", origin, prefix, k,
                j[k].dump());
    *out = j[k].get<std::string>();
  }
  void done() {
    for (auto it = j.begin(); it != j.end(); ++it)
      DSEEK_CHECK(seen.count(it.key()), "{}: unknown key '{}{}'", origin, prefix, it.key());
  }
};

}  // namespace

TrainConfig TrainConfig::from_json(const json& j, const std::string& origin) {
  DSEEK_CHECK(j.is_object(), "{}: a recipe must be a JSON object", origin);
  TrainConfig c;
  Reader r{j, origin, "", {}};
  if (r.has("model")) {
    DSEEK_CHECK(j["model"].is_object(), "{}: model must be a config.json object", origin);
    c.model = j["model"];
  }
  r.str("init_from", &c.init_from);
  DSEEK_CHECK(!c.model.is_null() || !c.init_from.empty(),
              "{}: give the model as \"model\": {{config.json}} or \"init_from\": DIR", origin);
  r.str("data", &c.data);
  r.str("out_dir", &c.out_dir);
  r.str("tokenizer", &c.tokenizer);
  r.num("seed", &c.seed);
  r.num("init_std", &c.init_std);
  r.num("batch_size", &c.batch_size);
  r.num("seq_len", &c.seq_len);
  r.num("grad_accum", &c.grad_accum);
  r.num("steps", &c.steps);
  r.num("time_limit_s", &c.time_limit_s);
  r.num("grad_clip", &c.grad_clip);
  r.num("log_every", &c.log_every);
  r.num("eval_every", &c.eval_every);
  r.num("eval_batches", &c.eval_batches);
  r.num("checkpoint_every", &c.checkpoint_every);
  r.num("sample_every", &c.sample_every);
  r.num("sample_tokens", &c.sample_tokens);
  r.str("sample_prompt", &c.sample_prompt);
  r.num("threads", &c.threads);
  r.str("device", &c.device);
  if (r.has("mtp")) {
    Reader m{j["mtp"], origin, "mtp.", {}};
    m.num("depth", &c.mtp_depth);
    m.num("lambda", &c.mtp_lambda);
    m.num("lambda_late", &c.mtp_lambda_late);
    m.num("lambda_switch", &c.mtp_lambda_switch);
    m.done();
  }
  if (r.has("balance")) {
    Reader b{j["balance"], origin, "balance.", {}};
    b.num("bias_update_speed", &c.bias_update_speed);
    b.num("seq_alpha", &c.seq_balance_alpha);
    b.num("aux_alpha", &c.aux_balance_alpha);
    b.done();
  }
  if (r.has("optimizer")) {
    Reader o{j["optimizer"], origin, "optimizer.", {}};
    o.num("beta1", &c.optimizer.beta1);
    o.num("beta2", &c.optimizer.beta2);
    o.num("eps", &c.optimizer.eps);
    o.num("weight_decay", &c.optimizer.weight_decay);
    o.done();
  }
  json lr = r.has("lr") ? j["lr"] : json::object();
  DSEEK_CHECK(lr.is_object(), "{}: lr must be an object", origin);
  if (!lr.contains("total_steps")) lr["total_steps"] = c.steps;
  try {
    c.lr = LrSchedule::from_json(lr);
  } catch (const Error& e) {
    fail("{}: lr: {}", origin, e.what());
  }
  r.done();

  auto pos = [&](int64_t v, const char* n) {
    DSEEK_CHECK(v > 0, "{}: {} must be positive, got {}", origin, n, v);
  };
  pos(c.batch_size, "batch_size");
  pos(c.seq_len, "seq_len");
  pos(c.grad_accum, "grad_accum");
  pos(c.steps, "steps");
  pos(c.log_every, "log_every");
  pos(c.eval_every, "eval_every");
  pos(c.eval_batches, "eval_batches");
  pos(c.checkpoint_every, "checkpoint_every");
  DSEEK_CHECK(c.mtp_depth >= 0 && c.mtp_depth <= 4, "{}: mtp.depth must be in [0, 4]", origin);
  DSEEK_CHECK(c.seq_len > c.mtp_depth, "{}: seq_len must exceed mtp.depth", origin);
  DSEEK_CHECK(!c.data.empty(), "{}: data (a folder from `dseek data prepare`) is required", origin);
  DSEEK_CHECK(c.grad_clip >= 0, "{}: grad_clip must be >= 0", origin);
  DSEEK_CHECK(c.device == "cpu" || c.device == "cuda" || c.device == "auto",
              "{}: device must be cpu, cuda or auto, got '{}'", origin, c.device);
  return c;
}

json TrainConfig::to_json() const {
  json j;
  if (!model.is_null()) j["model"] = model;
  if (!init_from.empty()) j["init_from"] = init_from;
  j["mtp"] = {{"depth", mtp_depth},
              {"lambda", mtp_lambda},
              {"lambda_late", mtp_lambda_late},
              {"lambda_switch", mtp_lambda_switch}};
  j["data"] = data;
  j["out_dir"] = out_dir;
  if (!tokenizer.empty()) j["tokenizer"] = tokenizer;
  j["seed"] = seed;
  j["init_std"] = init_std;
  j["batch_size"] = batch_size;
  j["seq_len"] = seq_len;
  j["grad_accum"] = grad_accum;
  j["steps"] = steps;
  j["time_limit_s"] = time_limit_s;
  j["lr"] = lr.to_json();
  j["optimizer"] = {{"beta1", optimizer.beta1},
                    {"beta2", optimizer.beta2},
                    {"eps", optimizer.eps},
                    {"weight_decay", optimizer.weight_decay}};
  j["grad_clip"] = grad_clip;
  j["balance"] = {{"bias_update_speed", bias_update_speed},
                  {"seq_alpha", seq_balance_alpha},
                  {"aux_alpha", aux_balance_alpha}};
  j["log_every"] = log_every;
  j["eval_every"] = eval_every;
  j["eval_batches"] = eval_batches;
  j["checkpoint_every"] = checkpoint_every;
  j["sample_every"] = sample_every;
  j["sample_tokens"] = sample_tokens;
  j["sample_prompt"] = sample_prompt;
  j["threads"] = threads;
  j["device"] = device;
  return j;
}

float TrainConfig::mtp_lambda_at(int64_t step) const {
  return (double)step < mtp_lambda_switch * (double)steps ? mtp_lambda : mtp_lambda_late;
}

}  // namespace dseek
