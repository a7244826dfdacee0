// GpuDecoder: generation on one CUDA device from the MLA latent cache (the GPU twin of
// Model::forward_cached + infer/generate.h), for one or a batch of sequences.
//   Weights: bf16 matrices (embedding, projections, experts, head), fp32 norm weights and router
//   bias; kv_b_proj is stored split and absorbed: W_UK^T per head [Dc, Dn] (q_abs = W_UK^T q_nope)
//   and W_UV per head [Dv, Dc] (o = W_UV x_lat), as mla_forward_absorbed on the CPU. [q | kv_a]
//   (or [q_a | kv_a]) is one matrix; the shared expert (width n_shared * Im) is stored as
//   n_shared extra experts of width Im after the routed ones.
//   Activations: fp32 (decode reads each weight once per step for a few rows; fp32 rows cost no
//   bandwidth and keep the arithmetic the CPU's up to summation order).
//   Cache: paged, blocks of block_size tokens of [c_kv (Dc) | k_pe (Dr)] in bf16 (fp32 with
//   cache_f32) per layer; a block table per sequence (gpu_decode_kernels.h). Sequences get blocks
//   on demand from a pool of max_seqs * ceil(max_tokens / block_size) blocks.
//   Per layer (gpu_decode_kernels.h): RMSNorm fused into [q | kv_a]; (q-LoRA: q_a norm fused into
//   q_b); W_UK^T with the cache append + RoPE; split attention (up to max_splits chunks of
//   >= min_chunk tokens, sized to fill the device); the split combine fused into W_UV; o_proj +
//   residual; then the MoE as three launches (router GEMV with top-k and the routing plan in its
//   last block; gate|up + SwiGLU of the chosen and shared experts only; down + weighted combine +
//   residual) or the dense MLP as two. Kernels are chained with programmatic dependent launch
//   (use_pdl) so each one's weight loads start while the previous one drains.
//   Prefill: the prompt's tokens as rows of the same kernels (each row attends causally up to
//   its own position), in chunks of prefill_chunk tokens.
//   Decode step: B rows (one token per sequence); greedy argmax on the device; with use_graph the
//   step is captured into a CUDA graph per batch size after one eager warm-up and replayed.
// Limits (dseek::Error): no attention / MLP biases; K dims multiples of 8; Dc % 8 == 0,
// Dc <= 1024, Dv even, E <= 1024, top_k <= 32, max_splits <= 32. Without CUDA (build or device)
// the header compiles and construction throws.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "dseek/model/config.h"
#include "dseek/model/model.h"

namespace dseek {

struct GpuDecoderOptions {
  int64_t max_batch = 1;        // sequences per decode step
  int64_t max_seqs = 0;         // live sequences (0 = max_batch)
  int64_t max_tokens = 4096;    // cache capacity per sequence
  int64_t block_size = 64;      // tokens per cache block
  int64_t max_splits = 16;      // sequence splits of the decode attention (<= 32)
  int64_t min_chunk = 16;       // fewest tokens per split
  int64_t prefill_chunk = 256;  // prompt tokens per prefill pass
  bool use_graph = true;        // CUDA graph of the decode step
  bool use_pdl = true;          // programmatic dependent launch between the step's kernels
  bool l2_prefetch = false;     // attention asks L2 for the next weights (rows <= 8; measured
                                // 3% slower on the H100, kept as an option)
  bool cache_f32 = false;       // fp32 latent cache (exact comparisons with the CPU; 2x bytes)
};

// Bytes one decode step reads from the weights (bf16) for one sequence: everything but the
// embedding table and the routed experts, plus one embedding row and top_k routed experts per MoE
// layer; cache bytes are separate (latent_bytes_per_token * context length).
struct DecodeBytes {
  int64_t weights = 0;                 // per token at batch 1
  int64_t latent_bytes_per_token = 0;  // cache row bytes over all layers
  int64_t all_weights = 0;             // the whole model on the device
};
DecodeBytes decode_bytes(const ModelConfig& c);

// Rounds every matrix (rank >= 2 tensor) of w to bf16 values, as the decoder stores them; norms
// and biases stay fp32. Applied to a CPU Model it gives the reference the GPU should match.
void round_matrices_to_bf16(const ModelConfig& c, ModelWeights& w);

// Kernel families of a forward, for GpuDecoder::set_profile_skip.
enum DecodeFamily : uint32_t {
  kFamEmbed,       // embedding rows
  kFamAttnIn,      // RMSNorm + [q | kv_a] (and q_b)
  kFamQabs,        // W_UK^T + cache append + RoPE
  kFamAttn,        // split attention
  kFamWuv,         // split combine + W_UV
  kFamOproj,       // o_proj + residual
  kFamRouter,      // router + top-k + plan + shared-expert gate|up
  kFamExpertUp,    // routed experts' gate|up
  kFamExpertDown,  // experts' down + combine + residual
  kFamDense,       // the dense MLP layers
  kFamHead,        // final norm + LM head
  kFamArgmax,      // greedy argmax
  kNumFamilies
};

class GpuDecoder {
 public:
  // Uploads m's weights (bf16 matrices, fp32 norms).
  GpuDecoder(const Model& m, const GpuDecoderOptions& opt = {});
  // Random weights made on the device (normal(0, init_std) matrices, unit norms): benchmarks.
  GpuDecoder(const ModelConfig& cfg, uint64_t seed, const GpuDecoderOptions& opt = {},
             float init_std = 0.02f);
  ~GpuDecoder();
  GpuDecoder(const GpuDecoder&) = delete;
  GpuDecoder& operator=(const GpuDecoder&) = delete;

  const ModelConfig& config() const;
  const GpuDecoderOptions& options() const;

  int new_sequence();     // a free sequence slot (empty cache)
  void release(int seq);  // frees its blocks
  int64_t length(int seq) const;

  // Appends S tokens to seq's cache; returns the last token's logits [V] (fp32, on the host).
  std::vector<float> prefill(int seq, const int32_t* tokens, int64_t S);
  // One decode step: tokens[i] is appended to seqs[i] (distinct, B <= max_batch). Greedy next
  // ids; logits (may be null) receives [B, V] fp32.
  std::vector<int32_t> step(const std::vector<int>& seqs, const std::vector<int32_t>& tokens,
                            std::vector<float>* logits = nullptr);
  // Greedy generation of one sequence (as generate() with temperature 0): prompt, then up to
  // max_new tokens, stopping after a token in stop_ids. The sequence is released afterwards.
  std::vector<int32_t> generate_greedy(const std::vector<int32_t>& prompt, int64_t max_new,
                                       const std::vector<int32_t>& stop_ids = {});

  int64_t device_bytes() const;
  // Distinct routed experts the last forward read, summed over the MoE layers (top_k per layer
  // and row at most).
  int64_t routed_experts_last_forward() const;
  // Diagnostics (bench decode --breakdown): leave the families whose bit is set out of every
  // later forward (their outputs go stale; the tokens are then meaningless) and recapture the
  // graphs; 0 restores the full forward.
  void set_profile_skip(uint32_t families);
  void synchronize() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace dseek
