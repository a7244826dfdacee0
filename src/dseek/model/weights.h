// ModelWeights: every parameter of a DeepSeek-V3/V2 model as fp32 tensors, named as in the hub
// checkpoint layout (SPEC §2.1). The same struct holds gradients during training (llm.c's
// ParameterTensors idea). model_params() is the one list of (hub name, tensor, shape): loading,
// saving, initialization and gradient buffers all walk it, so names are written once.
// Letters: C hidden, H heads, Dn/Dr/Dv head dims, Dqk = Dn + Dr, Dq q-latent, Dc kv-latent,
// I dense FFN width, Im expert width, Is shared width, E routed experts, V vocab.
#pragma once

#include <string>
#include <vector>

#include "dseek/core/tensor.h"
#include "dseek/model/config.h"

namespace dseek {

class Checkpoint;

struct LayerWeights {
  Tensor attn_norm;  // [C]             input_layernorm
  Tensor q_proj;     // [H*Dqk, C]      only when q_lora_rank == 0
  Tensor q_a_proj;   // [Dq, C]         q-LoRA down
  Tensor q_a_bias;   // [Dq]            attention_bias only
  Tensor q_a_norm;   // [Dq]
  Tensor q_b_proj;   // [H*Dqk, Dq]     q-LoRA up (head-major: per head [nope | rope])
  Tensor kv_a_proj;  // [Dc+Dr, C]      kv_a_proj_with_mqa: [c_kv | k_pe]
  Tensor kv_a_bias;  // [Dc+Dr]         attention_bias only
  Tensor kv_a_norm;  // [Dc]
  Tensor kv_b_proj;  // [H*(Dn+Dv), Dc] per head [W_UK (Dn rows) | W_UV (Dv rows)]
  Tensor o_proj;     // [C, H*Dv]
  Tensor o_bias;     // [C]             attention_bias only
  Tensor ffn_norm;   // [C]             post_attention_layernorm
  // dense FFN (layer < first_k_dense_replace)
  Tensor gate_proj, up_proj;  // [I, C]
  Tensor down_proj;           // [C, I]
  // MoE
  Tensor router;       // [E, C]  mlp.gate.weight
  Tensor router_bias;  // [E]     mlp.gate.e_score_correction_bias (V3; steers selection only)
  std::vector<Tensor> exp_gate, exp_up;  // E x [Im, C]
  std::vector<Tensor> exp_down;          // E x [C, Im]
  Tensor sh_gate, sh_up;                 // [Is, C]  shared experts (one SwiGLU), Is = Im*n_shared
  Tensor sh_down;                        // [C, Is]
};

// One multi-token-prediction module (DeepSeek-V3 §2.2; SPEC §6), hub index num_hidden_layers+k:
//   h' = eh_proj [RMSNorm_e(Emb(t_{i+k})) ; RMSNorm_h(h_i^{k-1})]   (embedding first)
//   h^k = block(h');  logits = RMSNorm_head(h^k) W_head^T  (embedding and head shared)
struct MtpWeights {
  Tensor enorm;        // [C]
  Tensor hnorm;        // [C]
  Tensor eh_proj;      // [C, 2C]
  LayerWeights block;  // a full decoder layer (MoE when past first_k_dense_replace)
  Tensor head_norm;    // [C]  shared_head.norm
};

struct ModelWeights {
  Tensor embed;  // [V, C]
  std::vector<LayerWeights> layers;
  std::vector<MtpWeights> mtp;  // cfg.mtp_depth modules (empty when the model has none)
  Tensor norm;                  // [C]
  Tensor lm_head;               // [V, C]; empty when tie_word_embeddings (embed is used)
  const Tensor& head() const { return lm_head.empty() ? embed : lm_head; }
};

struct ParamRef {
  std::string name;  // hub name, e.g. "model.layers.1.mlp.experts.3.up_proj.weight"
  Tensor* tensor;
  std::vector<int64_t> shape;
  bool trainable = true;  // false for e_score_correction_bias (updated by balancing)
};

std::vector<ParamRef> model_params(const ModelConfig& c, ModelWeights& w);

// Allocate every tensor at its shape (zeros).
void weights_allocate(const ModelConfig& c, ModelWeights& w);
// Random init as transformers does (normal(0, initializer_range) for matrices, norms = 1,
// router bias = 0), from a seed.
void weights_init_random(const ModelConfig& c, ModelWeights& w, uint64_t seed,
                         float init_std = 0.02f);
// Load from a checkpoint folder: fp32/bf16/fp16 tensors, and FP8 e4m3 with weight_scale_inv
// (dequantized to fp32 on load). Missing tensors, wrong shapes, FP8 without a scale: dseek::Error.
// MTP modules load when the checkpoint has them (c.mtp_depth is set to their number; a config
// saying num_nextn_predict_layers = 1 without tensors, as transformers writes, loads without).
void weights_load(ModelConfig& c, ModelWeights& w, const Checkpoint& ck);
// Hub names of the copies the checkpoint layout keeps for each MTP module
// (model.layers.{L+k}.embed_tokens.weight, ...shared_head.head.weight): written on save,
// ignored on load (the model's own embedding and head are used).
std::vector<std::string> mtp_shared_copy_names(const ModelConfig& c, int64_t k);

int64_t weights_count(const ModelConfig& c);  // total parameters (main model, no MTP)

}  // namespace dseek
