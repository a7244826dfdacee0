#include "dseek/cli/gen_common.h"

#include <filesystem>

#include "dseek/infer/stop_strings.h"
#include "dseek/tokenizer/stream_decoder.h"

namespace dseek::cli {

void add_gen_flags(CLI::App* sub, GenFlags* f) {
  sub->add_option("-m,--model", f->model_dir, "model folder (config.json + *.safetensors)")
      ->required();
  sub->add_option("--tokenizer", f->tokenizer_path,
                  "tokenizer.json (default: the one in the model folder)");
  sub->add_option("-n,--max-tokens", f->max_tokens, "maximum new tokens")->capture_default_str();
  sub->add_option("--temperature", f->temperature, "sampling temperature (0 = greedy)")
      ->capture_default_str();
  sub->add_option("--top-k", f->top_k, "keep the k most likely tokens (0 = off)")
      ->capture_default_str();
  sub->add_option("--top-p", f->top_p, "nucleus sampling mass (1 = off)")->capture_default_str();
  sub->add_option("--min-p", f->min_p, "drop tokens below min_p * max prob (0 = off)")
      ->capture_default_str();
  sub->add_option("--repetition-penalty", f->repetition_penalty,
                  "penalize tokens already in the context (1 = off)")
      ->capture_default_str();
  sub->add_option("--seed", f->seed, "random seed")->capture_default_str();
  sub->add_flag("--greedy", f->greedy, "argmax decoding (same as --temperature 0)");
  sub->add_option("--stop", f->stop, "stop when this string appears (repeatable)");
  sub->add_flag("--ignore-eos", f->ignore_eos, "keep going after the end-of-sequence token");
  sub->add_flag("--stats", f->stats, "print prefill/decode speed to stderr");
}

GenerateOptions gen_options(const GenFlags& f, const Model& m, const Tokenizer* tok) {
  GenerateOptions o;
  o.max_new_tokens = f.max_tokens;
  o.sampler = {.temperature = f.greedy ? 0.0f : f.temperature,
               .top_k = f.top_k,
               .top_p = f.top_p,
               .min_p = f.min_p,
               .repetition_penalty = f.repetition_penalty,
               .seed = f.seed};
  sampler_config_validate(o.sampler);
  o.mtp_draft_tokens = f.mtp_draft_tokens;
  if (!f.ignore_eos) {
    int32_t eos = tok && tok->eos_id() >= 0 ? tok->eos_id() : (int32_t)m.cfg.eos_token_id;
    if (eos >= 0) o.stop_ids.push_back(eos);
  }
  return o;
}

std::optional<Tokenizer> load_tokenizer(const GenFlags& f, bool required) {
  namespace fs = std::filesystem;
  std::string p = f.tokenizer_path;
  if (p.empty()) {
    p = (fs::path(f.model_dir) / "tokenizer.json").string();
    if (!fs::exists(p)) {
      DSEEK_CHECK(!required,
                  "no tokenizer: {} does not exist (pass --tokenizer FILE, or give the "
                  "prompt as token ids with --prompt-ids)",
                  p);
      return std::nullopt;
    }
  }
  return Tokenizer::load(p);
}

StreamResult generate_streaming(const Model& m, const Tokenizer* tok, LatentCache& cache,
                                const std::vector<int32_t>& new_tokens, const GenFlags& f,
                                FILE* out) {
  StreamResult r;
  GenerateOptions opt = gen_options(f, m, tok);
  StopStringMatcher stops(f.stop);
  std::optional<StreamDecoder> dec;
  if (tok) dec.emplace(*tok, /*skip_special=*/true);
  bool first = true;
  auto on_token = [&](int32_t id, bool is_stop) {
    if (!tok) {
      if (!is_stop) std::fprintf(out, "%s%d", first ? "" : " ", id);
      first = false;
      std::fflush(out);
      return true;
    }
    if (is_stop) return false;
    StopStringsStep st = stops.feed(dec->feed(id));
    std::fputs(st.text.c_str(), out);
    std::fflush(out);
    r.text += st.text;
    return !st.stopped;
  };
  r.ids = generate(m, cache, new_tokens, opt, on_token, &r.stats);
  if (tok && !stops.stopped()) {
    std::string tail = stops.feed(dec->flush()).text;
    if (!stops.stopped()) tail += stops.finish();
    std::fputs(tail.c_str(), out);
    r.text += tail;
  }
  std::fflush(out);
  return r;
}

void print_stats(const GenerateStats& s) {
  std::fprintf(stderr,
               "\n[stats] prompt %ld tokens in %.3f s (%.1f tok/s), generated %ld tokens in "
               "%.3f s (%.1f tok/s)\n",
               (long)s.prompt_tokens, s.prefill_s,
               s.prefill_s > 0 ? s.prompt_tokens / s.prefill_s : 0.0, (long)s.new_tokens,
               s.decode_s,
               s.decode_s > 0 ? std::max<int64_t>(0, s.new_tokens - 1) / s.decode_s : 0.0);
}

}  // namespace dseek::cli
