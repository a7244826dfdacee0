// `dseek bench decode`: greedy decoding throughput on the GPU (infer/gpu_decoder.h).
//   bench decode --config FILE [--batch 1 | --batches 1,8,32,128] [--prompt 128 --new 256
//                --seed 0 --no-graph --no-pdl --l2-prefetch --breakdown --profile-step]
// Random bf16 weights of the config are made on the device (no checkpoint). For each batch size
// B, B sequences get random prompts of `prompt` tokens (prefilled one sequence at a time), then
// `new` greedy tokens are decoded for all of them together, one step per token; the first two
// steps (eager warm-up, CUDA graph capture) are not timed. Prints tokens/s, the bytes one step
// reads (weights: attention, dense layers, routers, shared experts, LM head and the distinct
// routed experts the step's rows chose, counted on the device; plus the latent cache at the mean
// context length), the achieved GB/s and its fraction of a device-to-device copy measured in the
// same process (bandwidth counted as read + write bytes of the copy), and the roofline tokens/s
// that copy rate allows. One decoder (max_batch = the largest B) serves the whole sweep.
// --profile-step: one more step of the first batch size between cudaProfilerStart / Stop (for
// `ncu --profile-from-start off`). --breakdown: the first batch size's step timed again with
// each kernel family left out (GpuDecoder::set_profile_skip), a differential breakdown of the
// step. Per batch size a line BENCH_DECODE_JSON {...} for scripts.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dseek/cli/command.h"
#include "dseek/cli/device_ceilings.h"
#include "dseek/core/error.h"
#include "dseek/infer/gpu_decoder.h"
#include "dseek/model/config.h"

#ifdef DSEEK_HAVE_CUDA
#include <cuda_profiler_api.h>
#include <cuda_runtime_api.h>

#include "dseek/ops/cuda/cuda_check.h"
#include "dseek/ops/cuda/device_buffer.h"
#endif

namespace dseek::cli {

namespace {

struct DecodeBenchArgs {
  std::string config, batches;
  int64_t batch = 1, prompt = 128, n_new = 256;
  uint64_t seed = 0;
  bool no_graph = false, no_pdl = false, l2 = false, profile_step = false, breakdown = false;
};

std::vector<int64_t> parse_batches(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(tok, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    DSEEK_CHECK(used == tok.size() && !tok.empty() && v >= 1,
                "bench decode: --batches wants positive integers separated by commas, got '{}'", s);
    out.push_back(v);
  }
  DSEEK_CHECK(!out.empty(), "bench decode: --batches is empty");
  return out;
}

#ifdef DSEEK_HAVE_CUDA
// Where a step's time goes: the step timed with one kernel family left out at a time (fresh
// prompts prefilled in full, the same lengths as the main run; the skipped family's outputs go
// stale, which changes no other kernel's work except the routing when the router is skipped).
void breakdown(GpuDecoder& dec, const ModelConfig& cfg, int64_t B, const DecodeBenchArgs& a,
               std::mt19937_64& rng) {
  using clock = std::chrono::steady_clock;
  const int64_t n = std::min<int64_t>(a.n_new - 3, 64);
  auto run = [&](uint32_t skip) {
    std::vector<int> seqs;
    std::vector<int32_t> cur;
    for (int64_t b = 0; b < B; b++) {
      std::vector<int32_t> p((size_t)a.prompt);
      for (auto& t : p) t = (int32_t)(rng() % (uint64_t)cfg.vocab_size);
      seqs.push_back(dec.new_sequence());
      dec.prefill(seqs.back(), p.data(), a.prompt);
      cur.push_back(p.back());
    }
    cur = dec.step(seqs, cur);  // a full step first: the MoE plan is then one for B rows
    dec.set_profile_skip(skip);
    cur = dec.step(seqs, cur);
    cur = dec.step(seqs, cur);
    const auto t0 = clock::now();
    for (int64_t s = 0; s < n; s++) cur = dec.step(seqs, cur);
    const double ms = std::chrono::duration<double>(clock::now() - t0).count() * 1e3 / n;
    dec.set_profile_skip(0);
    for (int s : seqs) dec.release(s);
    return ms;
  };
  static const char* names[kNumFamilies] = {"embedding",
                                            "RMSNorm + [q | kv_a] (+ q_b)",
                                            "W_UK^T + cache append + RoPE",
                                            "split attention",
                                            "split combine + W_UV",
                                            "o_proj + residual",
                                            "router + top-k + plan + shared gate|up",
                                            "routed experts gate|up",
                                            "experts down + combine",
                                            "dense MLP (layer 0)",
                                            "final norm + LM head",
                                            "argmax"};
  const double full = run(0);
  std::printf("  breakdown at batch %lld (%lld steps each): full step %.3f ms\n", (long long)B,
              (long long)n, full);
  std::printf("  %-42s %12s %10s %7s\n", "left out", "step ms", "saves ms", "share");
  double sum = 0.0;
  for (uint32_t f = 0; f < kNumFamilies; f++) {
    const double ms = run(1u << f);
    sum += full - ms;
    std::printf("  %-42s %12.3f %10.3f %6.1f%%\n", names[f], ms, full - ms,
                100.0 * (full - ms) / full);
  }
  std::printf("  %-42s %12s %10.3f %6.1f%%\n", "sum of the parts", "", sum, 100.0 * sum / full);
  std::fflush(stdout);
}

#endif

int bench_decode(const DecodeBenchArgs& a) {
  const std::vector<int64_t> batches =
      a.batches.empty() ? std::vector<int64_t>{a.batch} : parse_batches(a.batches);
#ifndef DSEEK_HAVE_CUDA
  (void)batches;
  std::fprintf(stderr, "dseek: bench decode needs a CUDA build\n");
  return 2;
#else
  using clock = std::chrono::steady_clock;
  DSEEK_CHECK(
      a.prompt >= 1 && a.n_new >= 3 && *std::min_element(batches.begin(), batches.end()) >= 1,
      "bench decode: --batch >= 1, --prompt >= 1, --new >= 3");
  const int64_t bmax = *std::max_element(batches.begin(), batches.end());
  const ModelConfig cfg = ModelConfig::load(a.config);
  const double copy_gbs = copy_bandwidth_gbs();
  size_t free0 = 0, total = 0;
  DSEEK_CUDA_CHECK(cudaMemGetInfo(&free0, &total));

  GpuDecoderOptions o;
  o.max_batch = bmax;
  o.max_tokens = a.prompt + a.n_new + 1;
  o.prefill_chunk = std::min<int64_t>(a.prompt, 256);
  o.use_graph = !a.no_graph;
  o.use_pdl = !a.no_pdl;
  o.l2_prefetch = a.l2;
  auto t0 = clock::now();
  GpuDecoder dec(cfg, a.seed, o);
  dec.synchronize();
  const double init_s = std::chrono::duration<double>(clock::now() - t0).count();
  size_t free1 = 0;
  DSEEK_CUDA_CHECK(cudaMemGetInfo(&free1, &total));

  const DecodeBytes db = decode_bytes(cfg);
  int64_t moe_layers = 0;
  for (int64_t l = 0; l < cfg.num_hidden_layers; l++) moe_layers += cfg.is_moe_layer(l);
  const int64_t expert_bytes = 3 * cfg.hidden_size * cfg.moe_intermediate_size * 2;
  std::printf("bench decode: %s, prompt %lld, new %lld, CUDA graph %s, PDL %s, L2 prefetch %s\n",
              a.config.c_str(), (long long)a.prompt, (long long)a.n_new, a.no_graph ? "off" : "on",
              a.no_pdl ? "off" : "on", a.l2 ? "on" : "off");
  std::printf(
      "  weights on the device: %.2f GB (random bf16, made in %.2f s); device memory "
      "used %.2f GB (max batch %lld)\n",
      db.all_weights / 1e9, init_s, (double)(free0 - free1) / 1e9, (long long)bmax);
  std::printf("  copy bandwidth (1 GiB device-to-device, read + write): %.0f GB/s\n", copy_gbs);
  std::printf("  %6s %10s %9s %10s %9s %8s %10s %9s %9s\n", "batch", "tokens/s", "ms/step",
              "GB/step", "experts", "GB/s", "of copy", "roofline", "prefill");

  std::mt19937_64 rng(a.seed + 1);
  bool profiled = false;
  for (int64_t B : batches) {
    std::vector<int> seqs;
    std::vector<int32_t> cur;
    t0 = clock::now();
    for (int64_t b = 0; b < B; b++) {
      std::vector<int32_t> p((size_t)a.prompt);
      for (auto& t : p) t = (int32_t)(rng() % (uint64_t)cfg.vocab_size);
      seqs.push_back(dec.new_sequence());
      std::vector<float> lg = dec.prefill(seqs.back(), p.data(), a.prompt);
      cur.push_back((int32_t)(std::max_element(lg.begin(), lg.end()) - lg.begin()));
    }
    const double prefill_s = std::chrono::duration<double>(clock::now() - t0).count();
    // new tokens per sequence: the prefill's argmax + (n_new - 1) steps; steps 1-2 untimed
    cur = dec.step(seqs, cur);
    cur = dec.step(seqs, cur);
    const int64_t timed = a.n_new - 3;
    t0 = clock::now();
    for (int64_t s = 0; s < timed; s++) cur = dec.step(seqs, cur);
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    const int64_t routed = dec.routed_experts_last_forward();  // the last step's, all layers
    if (a.profile_step && !profiled) {
      DSEEK_CUDA_CHECK(cudaProfilerStart());
      dec.step(seqs, cur);
      DSEEK_CUDA_CHECK(cudaProfilerStop());
      profiled = true;
    }
    for (int s : seqs) dec.release(s);

    const double step_weights =
        (double)db.weights - (double)cfg.hidden_size * 2 + (double)B * cfg.hidden_size * 2 +
        ((double)routed - (double)moe_layers * cfg.num_experts_per_tok) * expert_bytes;
    const double mean_ctx = (double)a.prompt + 2.0 + timed / 2.0;
    const double step_cache = (double)B * mean_ctx * db.latent_bytes_per_token;
    const double step_bytes = step_weights + step_cache;
    const double step_s = dt / (double)timed;
    const double tok_s = (double)B / step_s;
    const double gbs = step_bytes / step_s / 1e9;
    const double roofline = copy_gbs * 1e9 / step_bytes * B;
    const double experts = moe_layers ? (double)routed / moe_layers : 0.0;
    std::printf("  %6lld %10.1f %9.3f %10.3f %9.1f %8.0f %9.1f%% %9.0f %8.2fs\n", (long long)B,
                tok_s, step_s * 1e3, step_bytes / 1e9, experts, gbs, 100.0 * gbs / copy_gbs,
                roofline, prefill_s);
    nlohmann::json j = {{"batch", B},
                        {"prompt", a.prompt},
                        {"new", a.n_new},
                        {"graph", !a.no_graph},
                        {"pdl", !a.no_pdl},
                        {"tokens_per_s", tok_s},
                        {"step_ms", step_s * 1e3},
                        {"bytes_per_step", step_bytes},
                        {"weight_bytes_per_step", step_weights},
                        {"cache_bytes_per_step", step_cache},
                        {"routed_experts_per_layer", experts},
                        {"achieved_gbs", gbs},
                        {"copy_gbs", copy_gbs},
                        {"fraction_of_copy", gbs / copy_gbs},
                        {"roofline_tokens_per_s", roofline},
                        {"prefill_s", prefill_s}};
    std::printf("BENCH_DECODE_JSON %s\n", j.dump().c_str());
    std::fflush(stdout);
  }
  if (a.breakdown) breakdown(dec, cfg, batches[0], a, rng);
  return 0;
#endif
}

}  // namespace

// Called by cmd_bench.cpp's `bench` command to add its `decode` subcommand.
void setup_bench_decode(CLI::App* sub, int* exit_code) {
  auto a = std::make_shared<DecodeBenchArgs>();
  sub->add_option("--config", a->config, "model config.json (e.g. bench/configs/...)")->required();
  sub->add_option("--batch", a->batch, "sequences decoded together")->capture_default_str();
  sub->add_option("--batches", a->batches,
                  "a sweep of batch sizes, e.g. 1,8,32,128 (one decoder; overrides --batch)");
  sub->add_option("--prompt", a->prompt, "prompt tokens per sequence")->capture_default_str();
  sub->add_option("--new", a->n_new, "new tokens per sequence")->capture_default_str();
  sub->add_option("--seed", a->seed, "weights and prompt seed")->capture_default_str();
  sub->add_flag("--no-graph", a->no_graph, "launch the decode step's kernels one by one");
  sub->add_flag("--no-pdl", a->no_pdl,
                "no programmatic dependent launch (each kernel starts after the previous ends)");
  sub->add_flag("--l2-prefetch", a->l2,
                "attention asks L2 for the next kernels' weights (GpuDecoderOptions::l2_prefetch)");
  sub->add_flag("--breakdown", a->breakdown,
                "after the first batch size: the step timed with each kernel family left out");
  sub->add_flag("--profile-step", a->profile_step,
                "one extra step between cudaProfilerStart/Stop (ncu --profile-from-start off)");
  sub->callback([a, exit_code] { *exit_code = bench_decode(*a); });
}

}  // namespace dseek::cli
