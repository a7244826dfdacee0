#include "dseek/infer/gpu_decoder.h"

#include <algorithm>
#include <map>

#include "dseek/core/device.h"
#include "dseek/core/dtype.h"
#include "dseek/core/error.h"
#include "dseek/model/weights.h"

#ifdef DSEEK_HAVE_CUDA
#include "dseek/infer/gpu_decode_impl.h"
#endif

namespace dseek {

DecodeBytes decode_bytes(const ModelConfig& c) {
  const int64_t C = c.hidden_size, H = c.num_attention_heads, Dqk = c.qk_head_dim();
  const int64_t Dn = c.qk_nope_head_dim, Dr = c.qk_rope_head_dim, Dc = c.kv_lora_rank;
  const int64_t Dv = c.v_head_dim, Dq = c.q_lora_rank, E = c.n_routed_experts;
  const int64_t Im = c.moe_intermediate_size, Is = c.shared_intermediate();
  const int64_t attn = (Dq > 0 ? C * Dq + Dq * H * Dqk : C * H * Dqk) + C * (Dc + Dr) +
                       H * Dc * Dn + H * Dv * Dc + C * H * Dv;
  const int64_t attn_f32 = 2 * C + Dc + Dq;
  DecodeBytes b;
  int64_t w = 0, all = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; l++) {
    w += attn * 2 + attn_f32 * 4;
    all += attn * 2 + attn_f32 * 4;
    if (c.is_moe_layer(l)) {
      const int64_t base = E * C * 2 + 3 * C * Is * 2 + E * 4;
      w += base + c.num_experts_per_tok * 3 * C * Im * 2;
      all += base + E * 3 * C * Im * 2;
    } else {
      w += 3 * C * c.intermediate_size * 2;
      all += 3 * C * c.intermediate_size * 2;
    }
  }
  w += c.vocab_size * C * 2 + C * 4 + C * 2;  // head, final norm, one embedding row
  all += (c.tie_word_embeddings ? 1 : 2) * c.vocab_size * C * 2 + C * 4;
  b.weights = w;
  b.all_weights = all;
  b.latent_bytes_per_token = c.num_hidden_layers * (Dc + Dr) * 2;
  return b;
}

void round_matrices_to_bf16(const ModelConfig& c, ModelWeights& w) {
  for (ParamRef& p : model_params(c, w)) {
    if (p.shape.size() < 2 || p.tensor->empty()) continue;
    for (float& v : p.tensor->data) v = bf16_to_f32(f32_to_bf16(v));
  }
}

#ifndef DSEEK_HAVE_CUDA

struct GpuDecoder::Impl {};
GpuDecoder::GpuDecoder(const Model&, const GpuDecoderOptions&) {
  throw Error("GpuDecoder: dseek was built without CUDA");
}
GpuDecoder::GpuDecoder(const ModelConfig&, uint64_t, const GpuDecoderOptions&, float) {
  throw Error("GpuDecoder: dseek was built without CUDA");
}
GpuDecoder::~GpuDecoder() = default;
const ModelConfig& GpuDecoder::config() const {
  throw Error("GpuDecoder: built without CUDA");
}
const GpuDecoderOptions& GpuDecoder::options() const {
  throw Error("GpuDecoder: built without CUDA");
}
int GpuDecoder::new_sequence() {
  return -1;
}
void GpuDecoder::release(int) {}
int64_t GpuDecoder::length(int) const {
  return 0;
}
std::vector<float> GpuDecoder::prefill(int, const int32_t*, int64_t) {
  return {};
}
std::vector<int32_t> GpuDecoder::step(const std::vector<int>&, const std::vector<int32_t>&,
                                      std::vector<float>*) {
  return {};
}
std::vector<int32_t> GpuDecoder::generate_greedy(const std::vector<int32_t>&, int64_t,
                                                 const std::vector<int32_t>&) {
  return {};
}
int64_t GpuDecoder::device_bytes() const {
  return 0;
}
int64_t GpuDecoder::routed_experts_last_forward() const {
  return 0;
}
void GpuDecoder::set_profile_skip(uint32_t) {}
void GpuDecoder::synchronize() const {}

#else  // DSEEK_HAVE_CUDA

using detail::SeqState;

// ---------------------------------------------------------------------------------------------

GpuDecoder::GpuDecoder(const Model& m, const GpuDecoderOptions& opt) : impl_(new Impl) {
  impl_->init(m.cfg, opt);
  impl_->upload(m);
  impl_->allocate();
}

GpuDecoder::GpuDecoder(const ModelConfig& cfg, uint64_t seed, const GpuDecoderOptions& opt,
                       float init_std)
    : impl_(new Impl) {
  impl_->init(cfg, opt);
  impl_->random(seed, init_std);
  impl_->allocate();
}

GpuDecoder::~GpuDecoder() = default;

const ModelConfig& GpuDecoder::config() const {
  return impl_->cfg;
}
const GpuDecoderOptions& GpuDecoder::options() const {
  return impl_->opt;
}

int GpuDecoder::new_sequence() {
  Impl& I = *impl_;
  for (size_t i = 0; i < I.seqs.size(); i++)
    if (!I.seqs[i].used) {
      I.seqs[i] = SeqState{};
      I.seqs[i].used = true;
      return (int)i;
    }
  throw Error(fmt::format("GpuDecoder: all {} sequence slots are in use", I.seqs.size()));
}

void GpuDecoder::release(int seq) {
  Impl& I = *impl_;
  DSEEK_CHECK(seq >= 0 && seq < (int)I.seqs.size() && I.seqs[seq].used,
              "GpuDecoder: bad sequence {}", seq);
  for (int32_t b : I.seqs[seq].blocks) I.free_blocks.push_back(b);
  I.seqs[seq] = SeqState{};
}

int64_t GpuDecoder::length(int seq) const {
  return impl_->seqs.at(seq).len;
}

std::vector<float> GpuDecoder::prefill(int seq, const int32_t* tokens, int64_t S) {
  Impl& I = *impl_;
  DSEEK_CHECK(S > 0, "prefill needs at least one token");
  for (int64_t i = 0; i < S; i++)
    DSEEK_CHECK(tokens[i] >= 0 && tokens[i] < I.V, "token id {} outside the vocabulary", tokens[i]);
  I.ensure(seq, I.seqs[seq].len + S);
  I.upload_tables();
  for (int64_t s0 = 0; s0 < S; s0 += I.opt.prefill_chunk) {
    const int64_t R = std::min(I.opt.prefill_chunk, S - s0);
    for (int64_t r = 0; r < R; r++) {
      I.host_rows[r] = tokens[s0 + r];
      I.host_rows[I.Rmax + r] = seq;
      I.host_rows[2 * I.Rmax + r] = (int32_t)(I.seqs[seq].len + s0 + r);
    }
    I.upload_rows();
    I.forward(R, R - 1, 1, false);
    DSEEK_CUDA_CHECK(cudaStreamSynchronize(I.st));  // host_rows is reused
  }
  I.seqs[seq].len += S;
  std::vector<float> out((size_t)I.V);
  DSEEK_CUDA_CHECK(
      cudaMemcpy(out.data(), I.logits.get(), I.V * sizeof(float), cudaMemcpyDeviceToHost));
  return out;
}

std::vector<int32_t> GpuDecoder::step(const std::vector<int>& seqs,
                                      const std::vector<int32_t>& tokens,
                                      std::vector<float>* logits_out) {
  Impl& I = *impl_;
  const int64_t B = (int64_t)seqs.size();
  DSEEK_CHECK(B >= 1 && B <= I.Bmax && (int64_t)tokens.size() == B,
              "GpuDecoder::step: {} sequences for max_batch {}", B, I.Bmax);
  for (int64_t b = 0; b < B; b++) {
    DSEEK_CHECK(tokens[b] >= 0 && tokens[b] < I.V, "token id {} outside the vocabulary", tokens[b]);
    I.ensure(seqs[b], I.seqs[seqs[b]].len + 1);
    I.host_rows[b] = tokens[b];
    I.host_rows[I.Rmax + b] = seqs[b];
    I.host_rows[2 * I.Rmax + b] = (int32_t)I.seqs[seqs[b]].len;
  }
  I.upload_tables();
  I.upload_rows();
  if (!I.opt.use_graph) {
    I.forward(B, 0, B, true);
  } else if (auto it = I.graphs.find(B); it != I.graphs.end()) {
    DSEEK_CUDA_CHECK(cudaGraphLaunch(it->second, I.st));
  } else if (!I.warmed[B]) {
    I.forward(B, 0, B, true);
    I.warmed[B] = true;
  } else {
    cudaGraph_t graph = nullptr;
    DSEEK_CUDA_CHECK(cudaStreamBeginCapture(I.st, cudaStreamCaptureModeThreadLocal));
    try {
      I.forward(B, 0, B, true);
    } catch (...) {
      cudaStreamEndCapture(I.st, &graph);
      if (graph) cudaGraphDestroy(graph);
      throw;
    }
    DSEEK_CUDA_CHECK(cudaStreamEndCapture(I.st, &graph));
    cudaGraphExec_t exec = nullptr;
    DSEEK_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    cudaGraphDestroy(graph);
    I.graphs[B] = exec;
    DSEEK_CUDA_CHECK(cudaGraphLaunch(exec, I.st));
  }
  std::vector<int32_t> out((size_t)B);
  DSEEK_CUDA_CHECK(
      cudaMemcpyAsync(out.data(), I.ids.get(), B * sizeof(int32_t), cudaMemcpyDeviceToHost, I.st));
  if (logits_out) {
    logits_out->resize((size_t)(B * I.V));
    DSEEK_CUDA_CHECK(cudaMemcpyAsync(logits_out->data(), I.logits.get(), B * I.V * sizeof(float),
                                     cudaMemcpyDeviceToHost, I.st));
  }
  DSEEK_CUDA_CHECK(cudaStreamSynchronize(I.st));
  for (int64_t b = 0; b < B; b++) I.seqs[seqs[b]].len++;
  return out;
}

std::vector<int32_t> GpuDecoder::generate_greedy(const std::vector<int32_t>& prompt,
                                                 int64_t max_new,
                                                 const std::vector<int32_t>& stop_ids) {
  DSEEK_CHECK(!prompt.empty(), "generation needs a non-empty prompt");
  std::vector<int32_t> out;
  if (max_new <= 0) return out;
  const int seq = new_sequence();
  try {
    std::vector<float> lg = prefill(seq, prompt.data(), (int64_t)prompt.size());
    int32_t id = (int32_t)(std::max_element(lg.begin(), lg.end()) - lg.begin());
    while (true) {
      out.push_back(id);
      const bool stop = std::find(stop_ids.begin(), stop_ids.end(), id) != stop_ids.end();
      if (stop || (int64_t)out.size() >= max_new) break;
      id = step({seq}, {id})[0];
    }
  } catch (...) {
    release(seq);
    throw;
  }
  release(seq);
  return out;
}

int64_t GpuDecoder::device_bytes() const {
  const Impl& I = *impl_;
  return (int64_t)(I.wb.bytes() + I.wf.bytes() + I.pool.bytes() + I.part_acc.bytes() +
                   I.cos_t.bytes() * 2 + I.qabs.bytes() + I.qkv.bytes() + I.q.bytes() +
                   I.ey.bytes() + I.act.bytes() + I.logits.bytes() + I.h.bytes() + I.o.bytes());
}

void GpuDecoder::set_profile_skip(uint32_t families) {
  impl_->skip = families;
  impl_->drop_graphs();
}

int64_t GpuDecoder::routed_experts_last_forward() const {
  int64_t n = 0;
  for (int32_t v : impl_->n_routed.download()) n += v;
  return n;
}

void GpuDecoder::synchronize() const {
  DSEEK_CUDA_CHECK(cudaStreamSynchronize(impl_->st));
}

#endif  // DSEEK_HAVE_CUDA

}  // namespace dseek
