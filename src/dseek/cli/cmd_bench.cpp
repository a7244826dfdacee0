// `dseek bench <what>`: throughput benchmarks on the GPU. One function per subcommand:
//   bench train --config FILE [--batch 8 --seq 1024 --steps 20 --warmup 5]
//     a random model of the config on the GPU (model/gpu_model.h), timed full training steps
//     (forward + backward incl. MTP and the balance losses, grad norm + clip, AdamW, the host's
//     router-bias update), and prints tokens/s, model TFLOP/s, MFU against a bf16 GEMM ceiling
//     measured in the same process, and the device memory used.
// Model FLOPs per token (training = 3x forward, matmuls only):
//   6 * P_act + 12 * L_att * H * ((Dqk + Dv) / 2) * T
// with P_act the matmul parameters a token goes through (per layer: MLA's q_a, q_b (or q_proj),
// kv_a, kv_b, o_proj; dense FFN 3 C I, or MoE router C E + (top_k + n_shared) 3 C I_moe; the LM
// head C V once per head (main + each MTP depth); each MTP depth's eh_proj 2 C^2 and its block),
// and attention as PaLM's 12 L H Q T with Q = (Dqk + Dv) / 2 (not halved for causality; the
// formula of shared/bench/README.md's torch figures), L_att = layers + MTP depths. The embedding
// lookup counts 0.
// --profile N: after the timed steps, N more steps under GpuProfiler (model/gpu_model_profile.h:
// CUPTI records matched to GpuModel's op tags) and a table of where a step's time goes per kernel
// family: device ms per step, share of the step's wall time, achieved TFLOP/s against the GEMM
// ceiling and GB/s against the copy bandwidth (both measured in this process), the floor
// max(FLOPs / ceiling, bytes / bandwidth) and time / floor; the rest of the wall time is the
// device idling (host synchronizations, launch gaps). The timed figures never include profiling.
#include <algorithm>
#include <chrono>
#include <memory>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dseek/cli/command.h"
#include "dseek/cli/device_ceilings.h"
#include "dseek/core/error.h"
#include "dseek/model/config.h"
#include "dseek/model/gpu_model.h"
#include "dseek/model/gpu_model_profile.h"
#include "dseek/model/model.h"
#include "dseek/train/bias_balancing.h"

#ifdef DSEEK_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "dseek/ops/cuda/cuda_check.h"
#include "dseek/ops/cuda/device_buffer.h"
#include "dseek/ops/cuda/gemm_lt.h"
#endif

namespace dseek::cli {

void setup_bench_decode(CLI::App* sub, int* exit_code);  // cmd_bench_decode.cpp
void setup_bench_serve(CLI::App* sub, int* exit_code);   // cmd_bench_serve.cpp

namespace {

struct TrainBenchArgs {
  std::string config;
  int64_t batch = 8, seq = 1024, steps = 20, warmup = 5;
  uint64_t seed = 0;
  float lr = 3e-4f, clip = 1.0f, seq_alpha = 1e-4f, gamma = 1e-3f;
  bool no_mtp = false;
  int64_t profile = 0;  // profiled steps after the timed ones (0: none)
};

// matmul parameters one token goes through (see the file comment)
[[maybe_unused]] double active_matmul_params(const ModelConfig& c, int64_t mtp_depth) {
  const double C = c.hidden_size, H = c.num_attention_heads, Dqk = c.qk_head_dim();
  const double Dc = c.kv_lora_rank, Dr = c.qk_rope_head_dim, Dn = c.qk_nope_head_dim;
  const double Dv = c.v_head_dim, Dq = c.q_lora_rank;
  const double mla = (Dq > 0 ? C * Dq + Dq * H * Dqk : C * H * Dqk) + C * (Dc + Dr) +
                     Dc * H * (Dn + Dv) + H * Dv * C;
  auto ffn = [&](int64_t l) {
    if (!c.is_moe_layer(l)) return 3.0 * C * c.intermediate_size;
    return C * c.n_routed_experts +
           (double)(c.num_experts_per_tok + c.n_shared_experts) * 3.0 * C * c.moe_intermediate_size;
  };
  double p = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; l++) p += mla + ffn(l);
  p += C * c.vocab_size;
  for (int64_t k = 0; k < mtp_depth; k++)
    p += 2.0 * C * C + mla + ffn(c.num_hidden_layers + k) + C * c.vocab_size;
  return p;
}

#ifdef DSEEK_HAVE_CUDA
int64_t device_used_bytes() {
  size_t free_b = 0, total_b = 0;
  DSEEK_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return (int64_t)(total_b - free_b);
}

// The --profile table (see the file comment) and its PROFILE_JSON line.
void print_profile(const GpuProfileReport& r, int64_t steps, double wall_ms, double timed_ms,
                   double ceiling, double copy_gbs) {
  const double n = (double)steps;
  nlohmann::json fams = nlohmann::json::array();
  std::printf(
      "\nwhere the step's time goes (%ld profiled steps; wall %.2f ms/step, device busy "
      "%.2f ms/step, idle %.2f ms/step; longest idle stretch %.3f ms)\n",
      (long)steps, wall_ms / n, r.busy_ms / n, (wall_ms - r.busy_ms) / n, r.max_gap_ms);
  std::printf("  %-48s %9s %6s %8s %7s %9s %7s %9s %7s %9s %6s\n", "family", "ms/step", "share",
              "launch", "GEMM%", "TFLOP/s", "of GEMM", "GB/s", "of copy", "floor ms", "x floor");
  auto row = [&](const char* name, const GpuProfileFamily& f) {
    const double ms = f.ms / n;
    const double tf = f.ms > 0 ? f.flops / (f.ms * 1e-3) / 1e12 : 0.0;
    const double gb = f.ms > 0 ? f.bytes / (f.ms * 1e-3) / 1e9 : 0.0;
    const double floor_ms =
        std::max(f.flops / n / (ceiling * 1e12), f.bytes / n / (copy_gbs * 1e9)) * 1e3;
    std::printf("  %-48s %9.3f %5.1f%% %8.0f %6.0f%% %9.1f %6.1f%% %9.0f %6.1f%% %9.3f %6.1f\n",
                name, ms, 100.0 * f.ms / wall_ms, f.launches / n,
                f.ms > 0 ? 100.0 * f.gemm_ms / f.ms : 0.0, tf, 100.0 * tf / ceiling, gb,
                100.0 * gb / copy_gbs, floor_ms, floor_ms > 0 ? ms / floor_ms : 0.0);
    fams.push_back({{"family", name},
                    {"ms_per_step", ms},
                    {"share", f.ms / wall_ms},
                    {"launches_per_step", f.launches / n},
                    {"gemm_ms_per_step", f.gemm_ms / n},
                    {"tflops", tf},
                    {"gbs", gb},
                    {"flops_per_step", f.flops / n},
                    {"bytes_per_step", f.bytes / n},
                    {"floor_ms", floor_ms}});
  };
  for (int f = 0; f < (int)GpuOpFamily::GPU_OP_COUNT; f++)
    row(gpu_op_family_name((GpuOpFamily)f), r.family[f]);
  if (r.untagged.launches > 0) row("untagged", r.untagged);
  std::printf("  %-48s %9.3f %5.1f%%\n", "device idle (host syncs, launch gaps)",
              (wall_ms - r.busy_ms) / n, 100.0 * (wall_ms - r.busy_ms) / wall_ms);
  std::printf("  without the profiler a step took %.3f ms: device idle %.3f ms/step (%.1f%%)\n",
              timed_ms, timed_ms - r.busy_ms / n, 100.0 * (timed_ms - r.busy_ms / n) / timed_ms);
  std::printf("\n  top kernels (ms/step, calls/step, family):\n");
  nlohmann::json ks = nlohmann::json::array();
  for (size_t i = 0; i < r.kernels.size() && i < 25; i++) {
    const GpuProfileKernel& k = r.kernels[i];
    std::printf("  %8.3f %6.0f  %-90s %s\n", k.ms / n, k.count / n, k.name.c_str(),
                gpu_op_family_name(k.family));
    ks.push_back({{"name", k.name},
                  {"ms_per_step", k.ms / n},
                  {"calls_per_step", k.count / n},
                  {"family", gpu_op_family_name(k.family)}});
  }
  const nlohmann::json j = {{"steps", steps},
                            {"wall_ms_per_step", wall_ms / n},
                            {"timed_ms_per_step", timed_ms},
                            {"busy_ms_per_step", r.busy_ms / n},
                            {"max_gap_ms", r.max_gap_ms},
                            {"gemm_ceiling_tflops", ceiling},
                            {"copy_gbs", copy_gbs},
                            {"families", fams},
                            {"kernels", ks}};
  std::printf("PROFILE_JSON %s\n", j.dump().c_str());
}
#endif

int bench_train(const TrainBenchArgs& a) {
  std::string why;
  if (!gpu_available(&why)) {
    std::fprintf(stderr, "dseek bench train: needs a CUDA GPU (%s)\n", why.c_str());
    return 2;
  }
#ifdef DSEEK_HAVE_CUDA
  ModelConfig cfg = ModelConfig::load(a.config);
  cfg.mtp_depth = a.no_mtp ? 0 : cfg.num_nextn_predict_layers;
  const int64_t B = a.batch, T = a.seq, N = B * T, D = cfg.mtp_depth;
  DSEEK_CHECK(a.steps > 0 && a.warmup >= 0, "--steps must be > 0");
  DSEEK_CUDA_CHECK(cudaFree(nullptr));  // create the context before the baseline
  const int64_t used0 = device_used_bytes();
  auto t0 = std::chrono::steady_clock::now();
  Model m = Model::random(cfg, a.seed);
  auto t1 = std::chrono::steady_clock::now();
  GpuModel gm(m, B, T, GpuAdamW{});
  gm.synchronize();
  auto t2 = std::chrono::steady_clock::now();
  std::fprintf(stderr,
               "[bench] %s: %.1fM params (MTP depth %ld); host init %.1f s, upload %.1f s\n",
               a.config.c_str(), gm.n_params() / 1e6, (long)D,
               std::chrono::duration<double>(t1 - t0).count(),
               std::chrono::duration<double>(t2 - t1).count());

  std::vector<int32_t> seq(B * (T + 1)), in(N), tgt(N);
  uint64_t s = a.seed * 6364136223846793005ull + 1442695040888963407ull;
  for (auto& x : seq) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = (int32_t)((s >> 33) % (uint64_t)cfg.vocab_size);
  }
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < T; t++) {
      in[b * T + t] = seq[b * (T + 1) + t];
      tgt[b * T + t] = seq[b * (T + 1) + t + 1];
    }
  TrainOptions o;
  o.seq_balance_alpha = a.seq_alpha;
  auto step = [&](int64_t i) {
    gm.zero_grads();
    GpuStepStats st = gm.forward_backward(in.data(), tgt.data(), o);
    const double gn = gm.clip_and_step(a.lr, a.clip);
    bias_balance_update(m.w, cfg, st.expert_load, a.gamma);
    gm.upload_router_biases(m.w);
    gm.synchronize();
    if (i % 5 == 0)
      std::fprintf(stderr, "[bench] step %ld loss %.4f grad norm %.3f\n", (long)i, st.loss, gn);
  };
  for (int64_t i = 0; i < a.warmup; i++) step(i);
  const auto ts = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < a.steps; i++) step(a.warmup + i);
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
  const int64_t used = device_used_bytes();
  const double tps = (double)a.steps * N / dt;
  const double p_act = active_matmul_params(cfg, D);
  const double att = 12.0 * (double)(cfg.num_hidden_layers + D) * cfg.num_attention_heads *
                     (double)(cfg.qk_head_dim() + cfg.v_head_dim) / 2.0 * (double)T;
  const double flops_tok = 6.0 * p_act + att;
  const double tflops = tps * flops_tok / 1e12;
  const double ceiling = gemm_ceiling_tflops(8192);
  cudaDeviceProp prop{};
  int dev = 0;
  DSEEK_CUDA_CHECK(cudaGetDevice(&dev));
  DSEEK_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));

  std::printf("dseek bench train: %s on %s\n", a.config.c_str(), prop.name);
  std::printf("  batch %ld x %ld, %ld timed steps after %ld warm-up, MTP depth %ld\n", (long)B,
              (long)T, (long)a.steps, (long)a.warmup, (long)D);
  std::printf("  step time        %.1f ms\n", dt / a.steps * 1e3);
  std::printf("  tokens/s         %.0f\n", tps);
  std::printf("  model FLOPs/tok  %.3e (6 x %.1fM active matmul params + attention %.3e)\n",
              flops_tok, p_act / 1e6, att);
  std::printf("  model TFLOP/s    %.1f\n", tflops);
  std::printf("  GEMM ceiling     %.1f TFLOP/s (cuBLASLt bf16 8192^3)\n", ceiling);
  std::printf("  MFU              %.1f%%\n", 100.0 * tflops / ceiling);
  std::printf(
      "  device memory    %.2f GiB used by the run (cudaMemGetInfo delta; %.2f GiB held "
      "by GpuModel's own buffers), %.2f GiB incl. the CUDA context\n",
      (used - used0) / 1073741824.0, gm.device_bytes() / 1073741824.0, used / 1073741824.0);
  nlohmann::json j = {{"config", a.config},
                      {"gpu", prop.name},
                      {"batch", B},
                      {"seq", T},
                      {"steps", a.steps},
                      {"warmup", a.warmup},
                      {"mtp_depth", D},
                      {"step_ms", dt / a.steps * 1e3},
                      {"tokens_per_s", tps},
                      {"flops_per_token", flops_tok},
                      {"tflops", tflops},
                      {"gemm_ceiling_tflops", ceiling},
                      {"mfu", tflops / ceiling},
                      {"mem_run_gib", (used - used0) / 1073741824.0},
                      {"mem_total_gib", used / 1073741824.0}};
  std::printf("BENCH_JSON %s\n", j.dump().c_str());

  if (a.profile > 0) {
    GpuProfiler prof;
    std::string why2;
    if (!prof.start(&why2)) {
      std::fprintf(stderr, "dseek: bench train --profile: %s\n", why2.c_str());
      return 2;
    }
    gm.set_profiler(&prof);
    const auto p0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < a.profile; i++) step(a.warmup + a.steps + i);
    const double pw = std::chrono::duration<double>(std::chrono::steady_clock::now() - p0).count();
    gm.set_profiler(nullptr);
    const GpuProfileReport rep = prof.stop();
    print_profile(rep, a.profile, pw * 1e3, dt / a.steps * 1e3, ceiling, copy_bandwidth_gbs());
  }
  return 0;
#else
  return 2;
#endif
}

void setup_train(CLI::App* sub, int* exit_code) {
  auto a = std::make_shared<TrainBenchArgs>();
  sub->add_option("--config", a->config, "model config.json (e.g. bench/configs/...)")->required();
  sub->add_option("--batch", a->batch, "sequences per step")->capture_default_str();
  sub->add_option("--seq", a->seq, "tokens per sequence")->capture_default_str();
  sub->add_option("--steps", a->steps, "timed steps")->capture_default_str();
  sub->add_option("--warmup", a->warmup, "untimed steps first")->capture_default_str();
  sub->add_option("--seed", a->seed, "weights and data seed")->capture_default_str();
  sub->add_option("--lr", a->lr, "AdamW learning rate")->capture_default_str();
  sub->add_flag("--no-mtp", a->no_mtp, "leave out the MTP modules of the config");
  sub->add_option("--profile", a->profile,
                  "after the timed steps, profile N more (CUPTI) and print where the step's time "
                  "goes per kernel family, against the GEMM and copy rooflines")
      ->check(CLI::NonNegativeNumber);
  sub->callback([a, exit_code] { *exit_code = bench_train(*a); });
}

const bool reg = add_command(
    {"bench", "Benchmarks: bench train, bench decode (GPU), bench serve (load test)",
     [](CLI::App* sub, int* exit_code) {
       sub->require_subcommand(1);
       setup_train(sub->add_subcommand("train", "Time full training steps of a config"), exit_code);
       setup_bench_decode(sub->add_subcommand("decode", "Time greedy decoding"), exit_code);
       setup_bench_serve(
           sub->add_subcommand("serve", "Load-test a running dseek serve (streaming chat)"),
           exit_code);
     },
     95});

}  // namespace

}  // namespace dseek::cli
