// `dseek bench decode`: greedy decoding throughput on the GPU (infer/gpu_decoder.h).
//   bench decode --config FILE [--batch 1 --prompt 128 --new 256 --seed 0 --no-graph]
// Random bf16 weights of the config are made on the device (no checkpoint). Each of `batch`
// sequences gets a random prompt of `prompt` tokens (prefilled one sequence at a time), then
// `new` greedy tokens are decoded for all of them together, one step per token; the first two
// steps (eager warm-up, CUDA graph capture) are not timed. Prints tokens/s, the bytes one step
// reads (weights: attention, dense layers, router, shared experts, LM head and only the top-k
// routed experts per MoE layer at batch 1; plus the latent cache at the mean context length),
// the achieved GB/s and its fraction of a device-to-device copy measured in the same process
// (bandwidth counted as read + write bytes of the copy), and the roofline tokens/s that copy rate
// allows. At batch > 1 the weight bytes assume min(E, batch * top_k) distinct experts per layer
// (an upper bound). Last line: BENCH_DECODE_JSON {...} for scripts.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dseek/cli/command.h"
#include "dseek/core/error.h"
#include "dseek/infer/gpu_decoder.h"
#include "dseek/model/config.h"

#ifdef DSEEK_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "dseek/ops/cuda/cuda_check.h"
#include "dseek/ops/cuda/device_buffer.h"
#endif

namespace dseek::cli {

namespace {

struct DecodeBenchArgs {
  std::string config;
  int64_t batch = 1, prompt = 128, n_new = 256;
  uint64_t seed = 0;
  bool no_graph = false;
};

#ifdef DSEEK_HAVE_CUDA
// Device-to-device copy rate, GB/s counting read + write, median of 10 copies of 1 GiB.
double copy_bandwidth_gbs() {
  const size_t n = size_t(1) << 30;
  DeviceBuffer<uint8_t> a(n), b(n);
  DSEEK_CUDA_CHECK(cudaMemset(a.get(), 1, n));
  cudaEvent_t e0, e1;
  DSEEK_CUDA_CHECK(cudaEventCreate(&e0));
  DSEEK_CUDA_CHECK(cudaEventCreate(&e1));
  std::vector<float> ms;
  for (int i = 0; i < 13; i++) {
    DSEEK_CUDA_CHECK(cudaEventRecord(e0));
    DSEEK_CUDA_CHECK(cudaMemcpyAsync(b.get(), a.get(), n, cudaMemcpyDeviceToDevice));
    DSEEK_CUDA_CHECK(cudaEventRecord(e1));
    DSEEK_CUDA_CHECK(cudaEventSynchronize(e1));
    float t = 0;
    DSEEK_CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
    if (i >= 3) ms.push_back(t);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  std::sort(ms.begin(), ms.end());
  return 2.0 * (double)n / (ms[ms.size() / 2] * 1e-3) / 1e9;
}
#endif

int bench_decode(const DecodeBenchArgs& a) {
#ifndef DSEEK_HAVE_CUDA
  (void)a;
  std::fprintf(stderr, "dseek: bench decode needs a CUDA build\n");
  return 2;
#else
  using clock = std::chrono::steady_clock;
  DSEEK_CHECK(a.batch >= 1 && a.prompt >= 1 && a.n_new >= 3,
              "bench decode: --batch >= 1, --prompt >= 1, --new >= 3");
  const ModelConfig cfg = ModelConfig::load(a.config);
  const double copy_gbs = copy_bandwidth_gbs();
  size_t free0 = 0, total = 0;
  DSEEK_CUDA_CHECK(cudaMemGetInfo(&free0, &total));

  GpuDecoderOptions o;
  o.max_batch = a.batch;
  o.max_tokens = a.prompt + a.n_new + 1;
  o.prefill_chunk = std::min<int64_t>(a.prompt, 256);
  o.use_graph = !a.no_graph;
  auto t0 = clock::now();
  GpuDecoder dec(cfg, a.seed, o);
  dec.synchronize();
  const double init_s = std::chrono::duration<double>(clock::now() - t0).count();

  std::mt19937_64 rng(a.seed + 1);
  std::vector<int> seqs;
  std::vector<int32_t> cur;
  t0 = clock::now();
  for (int64_t b = 0; b < a.batch; b++) {
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
  size_t free1 = 0;
  DSEEK_CUDA_CHECK(cudaMemGetInfo(&free1, &total));

  const DecodeBytes db = decode_bytes(cfg);
  const int64_t moe_layers = [&] {
    int64_t n = 0;
    for (int64_t l = 0; l < cfg.num_hidden_layers; l++) n += cfg.is_moe_layer(l);
    return n;
  }();
  const int64_t expert_bytes = 3 * cfg.hidden_size * cfg.moe_intermediate_size * 2;
  const int64_t distinct =
      std::min(cfg.n_routed_experts, a.batch * cfg.num_experts_per_tok);
  const double step_weights = (double)db.weights - (double)cfg.hidden_size * 2 +
                              (double)a.batch * cfg.hidden_size * 2 +
                              (double)moe_layers * (distinct - cfg.num_experts_per_tok) *
                                  expert_bytes;
  const double mean_ctx = (double)a.prompt + 2.0 + timed / 2.0;
  const double step_cache = (double)a.batch * mean_ctx * db.latent_bytes_per_token;
  const double step_bytes = step_weights + step_cache;
  const double step_s = dt / (double)timed;
  const double tok_s = (double)a.batch / step_s;
  const double gbs = step_bytes / step_s / 1e9;
  const double roofline = copy_gbs * 1e9 / step_bytes * a.batch;

  std::printf("bench decode: %s, batch %lld, prompt %lld, new %lld, CUDA graph %s\n",
              a.config.c_str(), (long long)a.batch, (long long)a.prompt, (long long)a.n_new,
              a.no_graph ? "off" : "on");
  std::printf("  weights on the device: %.2f GB (random bf16, made in %.2f s); device memory "
              "used %.2f GB\n",
              db.all_weights / 1e9, init_s, (double)(free0 - free1) / 1e9);
  std::printf("  prefill: %.3f s for %lld x %lld tokens\n", prefill_s, (long long)a.batch,
              (long long)a.prompt);
  std::printf("  decode: %.1f tokens/s (%.3f ms per step, %lld timed steps)\n", tok_s,
              step_s * 1e3, (long long)timed);
  std::printf("  bytes read per step: %.3f GB (weights %.3f GB, latent cache %.4f GB)\n",
              step_bytes / 1e9, step_weights / 1e9, step_cache / 1e9);
  std::printf("  achieved %.0f GB/s = %.1f%% of the measured copy bandwidth %.0f GB/s "
              "(roofline %.0f tokens/s)\n",
              gbs, 100.0 * gbs / copy_gbs, copy_gbs, roofline);
  nlohmann::json j = {{"batch", a.batch},
                      {"prompt", a.prompt},
                      {"new", a.n_new},
                      {"graph", !a.no_graph},
                      {"tokens_per_s", tok_s},
                      {"step_ms", step_s * 1e3},
                      {"bytes_per_step", step_bytes},
                      {"weight_bytes_per_step", step_weights},
                      {"cache_bytes_per_step", step_cache},
                      {"achieved_gbs", gbs},
                      {"copy_gbs", copy_gbs},
                      {"fraction_of_copy", gbs / copy_gbs},
                      {"roofline_tokens_per_s", roofline},
                      {"prefill_s", prefill_s}};
  std::printf("BENCH_DECODE_JSON %s\n", j.dump().c_str());
  std::fflush(stdout);
  return 0;
#endif
}

}  // namespace

// Called by cmd_bench.cpp's `bench` command to add its `decode` subcommand.
void setup_bench_decode(CLI::App* sub, int* exit_code) {
  auto a = std::make_shared<DecodeBenchArgs>();
  sub->add_option("--config", a->config, "model config.json (e.g. bench/configs/...)")->required();
  sub->add_option("--batch", a->batch, "sequences decoded together")->capture_default_str();
  sub->add_option("--prompt", a->prompt, "prompt tokens per sequence")->capture_default_str();
  sub->add_option("--new", a->n_new, "new tokens per sequence")->capture_default_str();
  sub->add_option("--seed", a->seed, "weights and prompt seed")->capture_default_str();
  sub->add_flag("--no-graph", a->no_graph, "launch the decode step's kernels one by one");
  sub->callback([a, exit_code] { *exit_code = bench_decode(*a); });
}

}  // namespace dseek::cli
