#include "dseek/model/reference_check.h"

#include <cmath>

#include "dseek/infer/generate.h"
#include "dseek/io/safetensors.h"
#include "dseek/model/model_train.h"

namespace dseek {

double relative_error(const float* ours, const float* ref, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = (double)ours[i] - ref[i];
    num += d * d;
    den += (double)ref[i] * ref[i];
  }
  if (den == 0) return num == 0 ? 0.0 : INFINITY;
  return std::sqrt(num / den);
}

nlohmann::json ReferenceReport::to_json() const {
  nlohmann::json j;
  j["logits_rel_err"] = logits_rel_err;
  j["loss"] = loss;
  j["loss_ref"] = loss_ref;
  j["loss_rel_err"] = loss_rel_err;
  j["cache_vs_full_rel_err"] = cache_rel_err;
  if (generation_checked) {
    j["generation_match"] = generation_match;
    j["generated"] = generated;
    j["generated_ref"] = generated_ref;
  }
  if (grads_checked) {
    j["grads_compared"] = grads_compared;
    j["grad_max_rel_err"] = grad_max_rel_err;
    j["grad_worst"] = grad_worst;
  }
  j["ok"] = ok;
  return j;
}

ReferenceReport check_reference(const Model& m, const SafeTensorsFile& ref,
                                const ReferenceTolerances& tol) {
  ReferenceReport r;
  const TensorInfo& ids_info = ref.get("input_ids");
  DSEEK_CHECK(ids_info.shape.size() == 2, "{}: input_ids must be [B, T], got {}", ref.path(),
              shape_str(ids_info.shape));
  const int64_t B = ids_info.shape[0], T = ids_info.shape[1], V = m.cfg.vocab_size;
  std::vector<int64_t> ids64 = read_i64(ids_info);
  std::vector<int32_t> ids(ids64.begin(), ids64.end());

  Tensor logits = m.forward(ids.data(), B, T);
  Tensor ref_logits = read_f32(ref.get("logits"), {B, T, V});
  r.logits_rel_err = relative_error(logits.ptr(), ref_logits.ptr(), logits.numel());

  r.loss = causal_lm_loss(logits, ids.data(), B, T);
  r.loss_ref = read_f32(ref.get("loss")).data.at(0);
  r.loss_rel_err = std::fabs(r.loss - r.loss_ref) / std::max(std::fabs(r.loss_ref), 1e-30);

  // Latent-cache decoding vs the full forward: prefill half of each sequence, then one token at
  // a time; collect the logits of every position.
  double num = 0, den = 0;
  for (int64_t b = 0; b < B; b++) {
    LatentCache cache = m.new_cache();
    const int32_t* seq = ids.data() + b * T;
    const int64_t pre = std::max<int64_t>(1, T / 2);
    Tensor lp = m.forward_cached(cache, seq, pre, /*last_only=*/false);
    std::vector<float> got(lp.data);
    for (int64_t t = pre; t < T; t++) {
      Tensor l1 = m.forward_cached(cache, seq + t, 1, true);
      got.insert(got.end(), l1.data.begin(), l1.data.end());
    }
    const float* full = logits.ptr() + b * T * V;
    for (int64_t i = 0; i < T * V; i++) {
      double d = (double)got[i] - full[i];
      num += d * d;
      den += (double)full[i] * full[i];
    }
  }
  r.cache_rel_err = std::sqrt(num / den);

  if (ref.find("generate.prompt") && ref.find("generate.output")) {
    r.generation_checked = true;
    std::vector<int64_t> p64 = read_i64(ref.get("generate.prompt"));
    std::vector<int64_t> o64 = read_i64(ref.get("generate.output"));
    std::vector<int32_t> prompt(p64.begin(), p64.end());
    r.generated_ref.assign(o64.begin() + (int64_t)p64.size(), o64.end());
    GenerateOptions opt;
    opt.max_new_tokens = (int64_t)r.generated_ref.size();
    opt.sampler.temperature = 0.0f;
    LatentCache cache = m.new_cache();
    r.generated = generate(m, cache, prompt, opt);
    r.generation_match = r.generated == r.generated_ref;
  }
  // Gradients: targets are the next tokens (the last position of each row has none).
  int64_t n_ref_grads = 0;
  for (const std::string& n : ref.names()) n_ref_grads += n.rfind("grad.", 0) == 0;
  if (n_ref_grads > 0) {
    r.grads_checked = true;
    std::vector<int32_t> targets(B * T);
    for (int64_t b = 0; b < B; b++)
      for (int64_t t = 0; t < T; t++) targets[b * T + t] = t + 1 < T ? ids[b * T + t + 1] : -1;
    TrainActs acts;
    TrainOptions opt;
    opt.mtp_lambda = 0.0f;  // transformers' loss has no MTP term
    model_train_forward(m, ids.data(), targets.data(), B, T, acts, opt);
    ModelWeights grads;
    weights_allocate(m.cfg, grads);
    model_train_backward(m, acts, grads);
    r.grad_max_rel_err = 0;
    for (const ParamRef& p : model_params(m.cfg, grads)) {
      const TensorInfo* g = ref.find("grad." + p.name);
      if (!g) continue;
      r.grads_compared++;
      if (g->shape != p.shape) {  // a reference made for another model
        r.grad_max_rel_err = INFINITY;
        r.grad_worst = fmt::format("{}: reference shape {} vs {}", p.name, shape_str(g->shape),
                                   shape_str(p.shape));
        break;
      }
      Tensor gr = read_f32(*g, p.shape);
      double e = relative_error(p.tensor->ptr(), gr.ptr(), gr.numel());
      if (e > r.grad_max_rel_err) {
        r.grad_max_rel_err = e;
        r.grad_worst = p.name;
      }
    }
  }
  // every reference gradient must belong to one of our parameters
  if (r.grads_checked && r.grad_max_rel_err != INFINITY && r.grads_compared != n_ref_grads) {
    r.grad_max_rel_err = INFINITY;
    r.grad_worst = fmt::format("{} of {} reference gradients have no matching parameter",
                               n_ref_grads - r.grads_compared, n_ref_grads);
  }
  r.ok = (!r.grads_checked || r.grad_max_rel_err < tol.grad) && r.logits_rel_err < tol.logits &&
         r.loss_rel_err < tol.loss && r.cache_rel_err < tol.cache &&
         (!r.generation_checked || r.generation_match);
  return r;
}

}  // namespace dseek
