#include "dseek/infer/gpu_decoder.h"

#include <algorithm>
#include <map>

#include "dseek/core/device.h"
#include "dseek/core/dtype.h"
#include "dseek/core/error.h"
#include "dseek/model/weights.h"

#ifdef DSEEK_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "dseek/infer/gpu_decode_kernels.h"
#include "dseek/ops/cpu/moe_router.h"
#include "dseek/ops/cpu/rope.h"
#include "dseek/ops/cuda/cuda_check.h"
#include "dseek/ops/cuda/device_buffer.h"
#include "dseek/ops/cuda/moe_router.h"
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
void GpuDecoder::synchronize() const {}

#else  // DSEEK_HAVE_CUDA

namespace {

constexpr float kLoraNormEps = 1e-6f;  // q_a_layernorm / kv_a_layernorm (as model/mla.cpp)

struct DevLayer {
  // offsets into the bf16 arena (-1: absent)
  int64_t q_a = -1, q_b = -1, q = -1, kv_a = -1, wukt = -1, wuv = -1, o = -1;
  int64_t w1 = -1, w2 = -1, router = -1, ew1 = -1, ew2 = -1, sw1 = -1, sw2 = -1;
  // offsets into the fp32 arena
  int64_t attn_norm = -1, q_a_norm = -1, kv_a_norm = -1, ffn_norm = -1, router_bias = -1;
  bool moe = false;
};

struct SeqState {
  bool used = false;
  int64_t len = 0;
  std::vector<int32_t> blocks;
  bool dirty = false;
};

}  // namespace

struct GpuDecoder::Impl {
  ModelConfig cfg;
  GpuDecoderOptions opt;
  int64_t C, H, Dqk, Dn, Dr, Dc, Dv, Dq, E, Ek, Im, Is, I, V, L;
  int64_t Bmax, Rmax, max_blocks, n_blocks, row_len;
  RouterParams rp;

  int64_t nb = 0, nf = 0;  // arena sizes (elements)
  std::vector<DevLayer> layers;
  int64_t embed = -1, head = -1, norm = -1;
  DeviceBuffer<bf16_t> wb;
  DeviceBuffer<float> wf;

  DeviceBuffer<float> cos_t, sin_t;
  DeviceBuffer<uint8_t> pool;  // [L, n_blocks, bs, Dc + Dr] of bf16 or fp32 (opt.cache_f32)
  DeviceBuffer<int32_t> table;
  std::vector<int32_t> host_table;
  std::vector<SeqState> seqs;
  std::vector<int32_t> free_blocks;

  DeviceBuffer<int32_t> rows;  // [3, Rmax]: tokens | seq | pos
  std::vector<int32_t> host_rows;
  DeviceBuffer<float> h, x, cq, cqn, q, kva, qabs, xlat, part_acc, part_ml, o, act, rlogits, rw,
      ea, ey, sa, shy, logits;
  DeviceBuffer<int32_t> ridx, ids;
  int64_t part_cap = 0;  // rows * splits the partial buffers hold

  cudaStream_t st = nullptr;
  std::map<int64_t, cudaGraphExec_t> graphs;
  std::map<int64_t, bool> warmed;

  const bf16_t* W(int64_t off) const { return wb.get() + off; }
  const float* F(int64_t off) const { return off < 0 ? nullptr : wf.get() + off; }

  void init(const ModelConfig& c, const GpuDecoderOptions& o);
  void layout();
  void upload(const Model& m);
  void random(uint64_t seed, float std);
  void allocate();
  cuda::DecCacheGeom geom(int64_t l) {
    const int64_t elt = opt.cache_f32 ? 4 : 2;
    return cuda::DecCacheGeom{pool.get() + l * n_blocks * opt.block_size * row_len * elt,
                              table.get(), max_blocks, opt.block_size, Dc, Dr, opt.cache_f32};
  }
  void gemv(int64_t w_off, int64_t N, int64_t K, const float* xin, int64_t ldx, float* y,
            int64_t ldy, int64_t R, bool acc = false, bool swiglu = false) {
    cuda::GemvArgs a;
    a.W = W(w_off);
    a.N = N;
    a.K = K;
    a.x = xin;
    a.ldx = ldx;
    a.y = y;
    a.ldy = ldy;
    a.Z = R;
    a.accumulate = acc;
    a.swiglu = swiglu;
    cuda::gemv(a, st);
  }
  void ensure(int seq, int64_t new_len);
  void upload_tables();
  void upload_rows();
  // Enqueue the forward of R rows (host_rows uploaded); head + argmax on rows [r0, r0 + nr).
  void forward(int64_t R, int64_t r0, int64_t nr, int64_t splits);
  ~Impl();
};

GpuDecoder::Impl::~Impl() {
  for (auto& [b, g] : graphs) cudaGraphExecDestroy(g);
  if (st) cudaStreamDestroy(st);
}

void GpuDecoder::Impl::init(const ModelConfig& c, const GpuDecoderOptions& o) {
  std::string why;
  DSEEK_CHECK(!cuda_devices(&why).empty(), "GpuDecoder: no CUDA device: {}", why);
  cfg = c;
  opt = o;
  if (opt.max_seqs <= 0) opt.max_seqs = opt.max_batch;
  DSEEK_CHECK(opt.max_batch >= 1 && opt.max_seqs >= opt.max_batch && opt.max_tokens >= 1 &&
                  opt.block_size >= 1 && opt.max_splits >= 1 && opt.min_chunk >= 1 &&
                  opt.prefill_chunk >= 1,
              "GpuDecoder: invalid options");
  DSEEK_CHECK(!c.attention_bias && !c.mlp_bias, "GpuDecoder: attention / MLP biases unsupported");
  C = c.hidden_size;
  H = c.num_attention_heads;
  Dqk = c.qk_head_dim();
  Dn = c.qk_nope_head_dim;
  Dr = c.qk_rope_head_dim;
  Dc = c.kv_lora_rank;
  Dv = c.v_head_dim;
  Dq = c.q_lora_rank;
  E = c.n_routed_experts;
  Ek = c.num_experts_per_tok;
  Im = c.moe_intermediate_size;
  Is = c.shared_intermediate();
  I = c.intermediate_size;
  V = c.vocab_size;
  L = c.num_hidden_layers;
  for (int64_t k : {C, Dn, Dc, Dv, H * Dv, Dq, Im, Is, I})
    DSEEK_CHECK(k % 8 == 0, "GpuDecoder: GEMV input widths must be multiples of 8 (got {})", k);
  DSEEK_CHECK(Dqk % 4 == 0 && Dc % 32 == 0 && Dc <= 1024 && Dr <= 64 && (Dc + Dr) % 8 == 0,
              "GpuDecoder: unsupported head dims (Dqk {}, Dc {}, Dr {})", Dqk, Dc, Dr);
  rp = RouterParams{.n_experts = E,
                    .top_k = Ek,
                    .n_group = c.n_group,
                    .topk_group = c.topk_group,
                    .sigmoid = c.scoring == RouterScoring::SIGMOID,
                    .group_limited = c.topk_method != TopkMethod::GREEDY,
                    .norm_topk = c.norm_topk_prob,
                    .scaling = (float)c.routed_scaling_factor};
  Bmax = opt.max_batch;
  Rmax = std::max(Bmax, opt.prefill_chunk);
  max_blocks = (opt.max_tokens + opt.block_size - 1) / opt.block_size;
  n_blocks = opt.max_seqs * max_blocks;
  row_len = Dc + Dr;
  DSEEK_CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  layout();
}

void GpuDecoder::Impl::layout() {
  auto ab = [&](int64_t n) {
    const int64_t o = nb;
    nb += (n + 7) / 8 * 8;
    return o;
  };
  auto af = [&](int64_t n) {
    const int64_t o = nf;
    nf += (n + 3) / 4 * 4;
    return o;
  };
  embed = ab(V * C);
  layers.resize(L);
  for (int64_t l = 0; l < L; l++) {
    DevLayer& d = layers[l];
    d.attn_norm = af(C);
    if (Dq > 0) {
      d.q_a = ab(Dq * C);
      d.q_a_norm = af(Dq);
      d.q_b = ab(H * Dqk * Dq);
    } else {
      d.q = ab(H * Dqk * C);
    }
    d.kv_a = ab((Dc + Dr) * C);
    d.kv_a_norm = af(Dc);
    d.wukt = ab(H * Dc * Dn);
    d.wuv = ab(H * Dv * Dc);
    d.o = ab(C * H * Dv);
    d.ffn_norm = af(C);
    d.moe = cfg.is_moe_layer(l);
    if (d.moe) {
      d.router = ab(E * C);
      if (cfg.scoring == RouterScoring::SIGMOID) d.router_bias = af(E);
      d.ew1 = ab(E * 2 * Im * C);
      d.ew2 = ab(E * C * Im);
      if (Is > 0) {
        d.sw1 = ab(2 * Is * C);
        d.sw2 = ab(C * Is);
      }
    } else {
      d.w1 = ab(2 * I * C);
      d.w2 = ab(C * I);
    }
  }
  norm = af(C);
  head = cfg.tie_word_embeddings ? embed : ab(V * C);
  wb = DeviceBuffer<bf16_t>((size_t)nb);
  wf = DeviceBuffer<float>((size_t)nf);
}

void GpuDecoder::Impl::upload(const Model& m) {
  std::vector<bf16_t> hb((size_t)nb, 0);
  std::vector<float> hf((size_t)nf, 0.0f);
  auto put = [&](int64_t off, const float* src, int64_t n) {
    for (int64_t i = 0; i < n; i++) hb[off + i] = f32_to_bf16(src[i]);
  };
  auto putf = [&](int64_t off, const Tensor& t) {
    std::copy(t.data.begin(), t.data.end(), hf.begin() + off);
  };
  const ModelWeights& w = m.w;
  put(embed, w.embed.ptr(), V * C);
  for (int64_t l = 0; l < L; l++) {
    const DevLayer& d = layers[l];
    const LayerWeights& lw = w.layers[l];
    putf(d.attn_norm, lw.attn_norm);
    if (Dq > 0) {
      put(d.q_a, lw.q_a_proj.ptr(), Dq * C);
      putf(d.q_a_norm, lw.q_a_norm);
      put(d.q_b, lw.q_b_proj.ptr(), H * Dqk * Dq);
    } else {
      put(d.q, lw.q_proj.ptr(), H * Dqk * C);
    }
    put(d.kv_a, lw.kv_a_proj.ptr(), (Dc + Dr) * C);
    putf(d.kv_a_norm, lw.kv_a_norm);
    const float* kvb = lw.kv_b_proj.ptr();  // [H*(Dn+Dv), Dc]
    for (int64_t hh = 0; hh < H; hh++) {
      for (int64_t dd = 0; dd < Dc; dd++)
        for (int64_t n = 0; n < Dn; n++)
          hb[d.wukt + (hh * Dc + dd) * Dn + n] = f32_to_bf16(kvb[(hh * (Dn + Dv) + n) * Dc + dd]);
      put(d.wuv + hh * Dv * Dc, kvb + (hh * (Dn + Dv) + Dn) * Dc, Dv * Dc);
    }
    put(d.o, lw.o_proj.ptr(), C * H * Dv);
    putf(d.ffn_norm, lw.ffn_norm);
    if (d.moe) {
      put(d.router, lw.router.ptr(), E * C);
      if (d.router_bias >= 0) putf(d.router_bias, lw.router_bias);
      for (int64_t e = 0; e < E; e++) {
        put(d.ew1 + e * 2 * Im * C, lw.exp_gate[e].ptr(), Im * C);
        put(d.ew1 + e * 2 * Im * C + Im * C, lw.exp_up[e].ptr(), Im * C);
        put(d.ew2 + e * C * Im, lw.exp_down[e].ptr(), C * Im);
      }
      if (Is > 0) {
        put(d.sw1, lw.sh_gate.ptr(), Is * C);
        put(d.sw1 + Is * C, lw.sh_up.ptr(), Is * C);
        put(d.sw2, lw.sh_down.ptr(), C * Is);
      }
    } else {
      put(d.w1, lw.gate_proj.ptr(), I * C);
      put(d.w1 + I * C, lw.up_proj.ptr(), I * C);
      put(d.w2, lw.down_proj.ptr(), C * I);
    }
  }
  putf(norm, w.norm);
  if (!cfg.tie_word_embeddings) put(head, w.head().ptr(), V * C);
  wb.upload(hb);
  wf.upload(hf);
}

void GpuDecoder::Impl::random(uint64_t seed, float std) {
  cuda::dec_fill_normal_bf16(wb.get(), nb, std, seed, st);
  cuda::dec_fill_f32(wf.get(), nf, 1.0f, st);  // norms = 1
  for (const DevLayer& d : layers)
    if (d.router_bias >= 0) cuda::dec_fill_f32(wf.get() + d.router_bias, E, 0.0f, st);
  DSEEK_CUDA_CHECK(cudaStreamSynchronize(st));
}

void GpuDecoder::Impl::allocate() {
  // rope tables for every cache position
  const int64_t P = opt.max_tokens, half = Dr / 2;
  std::vector<int32_t> pos(P);
  for (int64_t p = 0; p < P; p++) pos[p] = (int32_t)p;
  std::vector<float> ct(P * half), stb(P * half);
  const std::vector<float> inv = cfg.rope_inv_freq();
  rope_tables(ct.data(), stb.data(), pos.data(), P, inv.data(), half, cfg.rope_attention_factor());
  cos_t = DeviceBuffer<float>(ct);
  sin_t = DeviceBuffer<float>(stb);
  pool = DeviceBuffer<uint8_t>((size_t)(L * n_blocks * opt.block_size * row_len) *
                               (opt.cache_f32 ? 4 : 2));
  host_table.assign((size_t)(opt.max_seqs * max_blocks), 0);
  table = DeviceBuffer<int32_t>(host_table);
  seqs.assign((size_t)opt.max_seqs, SeqState{});
  free_blocks.clear();
  for (int64_t b = n_blocks - 1; b >= 0; b--) free_blocks.push_back((int32_t)b);
  host_rows.assign((size_t)(3 * Rmax), 0);
  rows = DeviceBuffer<int32_t>(host_rows);
  auto f = [](int64_t n) { return DeviceBuffer<float>((size_t)std::max<int64_t>(n, 4)); };
  h = f(Rmax * C);
  x = f(Rmax * C);
  cq = f(Rmax * Dq);
  cqn = f(Rmax * Dq);
  q = f(Rmax * H * Dqk);
  kva = f(Rmax * (Dc + Dr));
  qabs = f(Rmax * H * Dc);
  xlat = f(Rmax * H * Dc);
  part_cap = std::max(Bmax * opt.max_splits, Rmax);
  part_acc = f(part_cap * H * Dc);
  part_ml = f(part_cap * H * 2);
  o = f(Rmax * H * Dv);
  act = f(Rmax * std::max<int64_t>(I, 1));
  rlogits = f(Rmax * std::max<int64_t>(E, 1));
  rw = f(Rmax * std::max<int64_t>(Ek, 1));
  ridx = DeviceBuffer<int32_t>((size_t)std::max<int64_t>(Rmax * Ek, 1));
  ea = f(Rmax * Ek * Im);
  ey = f(Rmax * Ek * C);
  sa = f(Rmax * Is);
  shy = f(Rmax * C);
  logits = f(Bmax * V);
  ids = DeviceBuffer<int32_t>((size_t)Bmax);
}

void GpuDecoder::Impl::ensure(int seq, int64_t new_len) {
  DSEEK_CHECK(seq >= 0 && seq < (int)seqs.size() && seqs[seq].used, "GpuDecoder: bad sequence {}",
              seq);
  SeqState& s = seqs[seq];
  DSEEK_CHECK(new_len <= opt.max_tokens, "GpuDecoder: sequence of {} tokens exceeds max_tokens {}",
              new_len, opt.max_tokens);
  while ((int64_t)s.blocks.size() * opt.block_size < new_len) {
    DSEEK_CHECK(!free_blocks.empty(), "GpuDecoder: cache blocks exhausted");
    const int32_t b = free_blocks.back();
    free_blocks.pop_back();
    host_table[seq * max_blocks + (int64_t)s.blocks.size()] = b;
    s.blocks.push_back(b);
    s.dirty = true;
  }
}

void GpuDecoder::Impl::upload_tables() {
  for (size_t i = 0; i < seqs.size(); i++) {
    if (!seqs[i].dirty) continue;
    const int64_t off = (int64_t)i * max_blocks;
    DSEEK_CUDA_CHECK(cudaMemcpyAsync(table.get() + off, host_table.data() + off,
                                     seqs[i].blocks.size() * sizeof(int32_t),
                                     cudaMemcpyHostToDevice, st));
    seqs[i].dirty = false;
  }
}

void GpuDecoder::Impl::upload_rows() {
  DSEEK_CUDA_CHECK(cudaMemcpyAsync(rows.get(), host_rows.data(), host_rows.size() * sizeof(int32_t),
                                   cudaMemcpyHostToDevice, st));
}

void GpuDecoder::Impl::forward(int64_t R, int64_t r0, int64_t nr, int64_t splits) {
  const int32_t* d_tok = rows.get();
  const int32_t* d_seq = rows.get() + Rmax;
  const int32_t* d_pos = rows.get() + 2 * Rmax;
  const float eps = (float)cfg.rms_norm_eps;
  const float scale = cfg.softmax_scale();
  cuda::dec_embed(h.get(), W(embed), d_tok, R, C, st);
  for (int64_t l = 0; l < L; l++) {
    const DevLayer& d = layers[l];
    cuda::dec_rmsnorm(x.get(), C, h.get(), C, F(d.attn_norm), R, C, eps, st);
    if (Dq > 0) {
      gemv(d.q_a, Dq, C, x.get(), C, cq.get(), Dq, R);
      cuda::dec_rmsnorm(cqn.get(), Dq, cq.get(), Dq, F(d.q_a_norm), R, Dq, kLoraNormEps, st);
      gemv(d.q_b, H * Dqk, Dq, cqn.get(), Dq, q.get(), H * Dqk, R);
    } else {
      gemv(d.q, H * Dqk, C, x.get(), C, q.get(), H * Dqk, R);
    }
    gemv(d.kv_a, Dc + Dr, C, x.get(), C, kva.get(), Dc + Dr, R);
    const cuda::DecCacheGeom g = geom(l);
    cuda::dec_kv_append_rope(g, q.get(), kva.get(), F(d.kv_a_norm), kLoraNormEps, cos_t.get(),
                             sin_t.get(), cfg.rope_interleave, d_seq, d_pos, R, H, Dn, Dqk, st);
    {  // q_abs [R, H, Dc] = per head W_UK^T q_nope
      cuda::GemvArgs a;
      a.W = W(d.wukt);
      a.N = H * Dc;
      a.K = Dn;
      a.x = q.get();
      a.ldx = H * Dqk;
      a.rows_per_group = Dc;
      a.group_stride = Dqk;
      a.y = qabs.get();
      a.ldy = H * Dc;
      a.Z = R;
      cuda::gemv(a, st);
    }
    cuda::dec_mla_attention(xlat.get(), part_acc.get(), part_ml.get(), g, qabs.get(), q.get(), Dn,
                            Dqk, d_seq, d_pos, R, H, splits, opt.min_chunk, scale, st);
    {  // o [R, H, Dv] = per head W_UV x_lat
      cuda::GemvArgs a;
      a.W = W(d.wuv);
      a.N = H * Dv;
      a.K = Dc;
      a.x = xlat.get();
      a.ldx = H * Dc;
      a.rows_per_group = Dv;
      a.group_stride = Dc;
      a.y = o.get();
      a.ldy = H * Dv;
      a.Z = R;
      cuda::gemv(a, st);
    }
    gemv(d.o, C, H * Dv, o.get(), H * Dv, h.get(), C, R, /*acc=*/true);
    cuda::dec_rmsnorm(x.get(), C, h.get(), C, F(d.ffn_norm), R, C, eps, st);
    if (!d.moe) {
      gemv(d.w1, 2 * I, C, x.get(), C, act.get(), I, R, false, /*swiglu=*/true);
      gemv(d.w2, C, I, act.get(), I, h.get(), C, R, /*acc=*/true);
      continue;
    }
    gemv(d.router, E, C, x.get(), C, rlogits.get(), E, R);
    cuda::moe_router_forward(ridx.get(), rw.get(), nullptr, nullptr, rlogits.get(),
                             F(d.router_bias), R, rp, st);
    {  // chosen experts only: gate|up with SwiGLU, then down, one item per (row, slot)
      cuda::GemvArgs a;
      a.W = W(d.ew1);
      a.N = 2 * Im;
      a.K = C;
      a.idx = ridx.get();
      a.w_stride = 2 * Im * C;
      a.x = x.get();
      a.ldx = C;
      a.x_div = Ek;
      a.y = ea.get();
      a.ldy = Im;
      a.Z = R * Ek;
      a.swiglu = true;
      cuda::gemv(a, st);
      cuda::GemvArgs b;
      b.W = W(d.ew2);
      b.N = C;
      b.K = Im;
      b.idx = ridx.get();
      b.w_stride = C * Im;
      b.x = ea.get();
      b.ldx = Im;
      b.y = ey.get();
      b.ldy = C;
      b.Z = R * Ek;
      cuda::gemv(b, st);
    }
    if (Is > 0) {
      gemv(d.sw1, 2 * Is, C, x.get(), C, sa.get(), Is, R, false, /*swiglu=*/true);
      gemv(d.sw2, C, Is, sa.get(), Is, shy.get(), C, R);
    }
    cuda::dec_moe_combine(h.get(), ey.get(), rw.get(), Is > 0 ? shy.get() : nullptr, R, Ek, C, st);
  }
  cuda::dec_rmsnorm(x.get() + r0 * C, C, h.get() + r0 * C, C, F(norm), nr, C, eps, st);
  gemv(head, V, C, x.get() + r0 * C, C, logits.get(), V, nr);
  cuda::dec_argmax(ids.get(), logits.get(), nr, V, st);
}

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
    DSEEK_CHECK(tokens[i] >= 0 && tokens[i] < I.V, "token id {} outside the vocabulary",
                tokens[i]);
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
    const int64_t splits = std::max<int64_t>(1, std::min(I.opt.max_splits, I.part_cap / R));
    I.forward(R, R - 1, 1, splits);
    DSEEK_CUDA_CHECK(cudaStreamSynchronize(I.st));  // host_rows is reused
  }
  I.seqs[seq].len += S;
  std::vector<float> out((size_t)I.V);
  DSEEK_CUDA_CHECK(cudaMemcpy(out.data(), I.logits.get(), I.V * sizeof(float),
                              cudaMemcpyDeviceToHost));
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
    DSEEK_CHECK(tokens[b] >= 0 && tokens[b] < I.V, "token id {} outside the vocabulary",
                tokens[b]);
    I.ensure(seqs[b], I.seqs[seqs[b]].len + 1);
    I.host_rows[b] = tokens[b];
    I.host_rows[I.Rmax + b] = seqs[b];
    I.host_rows[2 * I.Rmax + b] = (int32_t)I.seqs[seqs[b]].len;
  }
  I.upload_tables();
  I.upload_rows();
  const int64_t splits = I.opt.max_splits;
  if (!I.opt.use_graph) {
    I.forward(B, 0, B, splits);
  } else if (auto it = I.graphs.find(B); it != I.graphs.end()) {
    DSEEK_CUDA_CHECK(cudaGraphLaunch(it->second, I.st));
  } else if (!I.warmed[B]) {
    I.forward(B, 0, B, splits);
    I.warmed[B] = true;
  } else {
    cudaGraph_t graph = nullptr;
    DSEEK_CUDA_CHECK(cudaStreamBeginCapture(I.st, cudaStreamCaptureModeThreadLocal));
    try {
      I.forward(B, 0, B, splits);
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
                   I.cos_t.bytes() * 2 + I.qabs.bytes() * 2 + I.ey.bytes() + I.ea.bytes() +
                   I.logits.bytes());
}

void GpuDecoder::synchronize() const {
  DSEEK_CUDA_CHECK(cudaStreamSynchronize(impl_->st));
}

#endif  // DSEEK_HAVE_CUDA

}  // namespace dseek
