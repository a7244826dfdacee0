// GpuDecoder's weights and buffers (infer/gpu_decoder.h): the bf16 / fp32 arenas and their layout
// ([q | kv_a] as one matrix, W_UK^T and W_UV split out of kv_b_proj, routed experts then the
// shared-expert slices), the upload of a Model, random weights for benchmarks, and the cache pool,
// activation and routing-plan buffers.
#ifdef DSEEK_HAVE_CUDA

#include "dseek/core/device.h"
#include "dseek/core/dtype.h"
#include "dseek/core/error.h"
#include "dseek/infer/gpu_decode_impl.h"
#include "dseek/model/moe.h"  // router_params
#include "dseek/model/weights.h"
#include "dseek/ops/cpu/rope.h"

namespace dseek {

using detail::DevLayer;
using detail::SeqState;

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
                  opt.block_size >= 1 && opt.max_splits >= 1 && opt.max_splits <= 32 &&
                  opt.min_chunk >= 1 && opt.prefill_chunk >= 1,
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
  NQ = Dq > 0 ? Dq : H * Dqk;
  ldqkv = NQ + Dc + Dr;
  n_sh = Im > 0 ? Is / Im : 0;
  for (int64_t k : {C, Dn, Dc, Dv, H * Dv, Dq, Im, Is, I})
    DSEEK_CHECK(k % 8 == 0, "GpuDecoder: GEMV input widths must be multiples of 8 (got {})", k);
  DSEEK_CHECK(Dqk % 4 == 0 && Dc % 8 == 0 && Dc <= 1024 && Dr % 2 == 0 && Dv % 2 == 0 &&
                  (Dc + Dr) % 8 == 0 && NQ % 4 == 0,
              "GpuDecoder: unsupported head dims (Dqk {}, Dc {}, Dr {}, Dv {})", Dqk, Dc, Dr, Dv);
  DSEEK_CHECK(E <= 1024 && Ek <= 32 && Ek <= std::max<int64_t>(E, 1) && (Im == 0 || Is % Im == 0),
              "GpuDecoder: unsupported MoE (E {}, top_k {}, shared width {} of {})", E, Ek, Is, Im);
  rp = router_params(c);
  Bmax = opt.max_batch;
  Rmax = std::max(Bmax, opt.prefill_chunk);
  max_blocks = (opt.max_tokens + opt.block_size - 1) / opt.block_size;
  n_blocks = opt.max_seqs * max_blocks;
  row_len = Dc + Dr;
  int dev = 0;
  DSEEK_CUDA_CHECK(cudaGetDevice(&dev));
  int sms = 0;
  DSEEK_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  n_sm = std::max(sms, 1);
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
    d.qkv = ab(ldqkv * C);  // rows: q (or q_a), then kv_a
    if (Dq > 0) {
      d.q_a_norm = af(Dq);
      d.q_b = ab(H * Dqk * Dq);
    }
    d.kv_a_norm = af(Dc);
    d.wukt = ab(H * Dc * Dn);
    d.wuv = ab(H * Dv * Dc);
    d.o = ab(C * H * Dv);
    d.ffn_norm = af(C);
    d.moe = cfg.is_moe_layer(l);
    if (d.moe) {
      d.router = ab(E * C);
      if (cfg.scoring == RouterScoring::SIGMOID) d.router_bias = af(E);
      d.ew1 = ab((E + n_sh) * 2 * Im * C);  // routed experts, then the shared slices
      d.ew2 = ab((E + n_sh) * C * Im);
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
      put(d.qkv, lw.q_a_proj.ptr(), Dq * C);
      putf(d.q_a_norm, lw.q_a_norm);
      put(d.q_b, lw.q_b_proj.ptr(), H * Dqk * Dq);
    } else {
      put(d.qkv, lw.q_proj.ptr(), H * Dqk * C);
    }
    put(d.qkv + NQ * C, lw.kv_a_proj.ptr(), (Dc + Dr) * C);
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
      for (int64_t q = 0; q < n_sh; q++) {  // shared slice q: intermediate units [q Im, (q+1) Im)
        const int64_t e = E + q;
        put(d.ew1 + e * 2 * Im * C, lw.sh_gate.ptr() + q * Im * C, Im * C);
        put(d.ew1 + e * 2 * Im * C + Im * C, lw.sh_up.ptr() + q * Im * C, Im * C);
        for (int64_t cc = 0; cc < C; cc++)
          put(d.ew2 + e * C * Im + cc * Im, lw.sh_down.ptr() + cc * Is + q * Im, Im);
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
  auto f = [](int64_t n) {  // zeroed: a family left out by set_profile_skip reads finite data
    DeviceBuffer<float> b((size_t)std::max<int64_t>(n, 4));
    DSEEK_CUDA_CHECK(cudaMemset(b.get(), 0, b.bytes()));
    return b;
  };
  h = f(Rmax * C);
  qkv = f(Rmax * ldqkv);
  if (Dq > 0) q = f(Rmax * H * Dqk);
  qabs = f(Rmax * H * Dc);
  part_cap = 0;
  for (int64_t R = 1; R <= Rmax; R++) part_cap = std::max(part_cap, R * splits(R));
  part_acc = f(part_cap * H * Dc);
  part_ml = f(part_cap * H * 2);
  o = f(Rmax * H * Dv);
  const int64_t pairs = Rmax * (Ek + n_sh);  // MoE (row, expert) pairs
  act = f(std::max(Rmax * I, pairs * Im));
  rlogits = f(Rmax * E);
  rw = f(Rmax * Ek);
  ridx = DeviceBuffer<int32_t>((size_t)std::max<int64_t>(Rmax * Ek, 1));
  if (Rmax > 8 && E > 0) ey = f(pairs * C);
  pair_w = f(pairs);
  const int64_t slots = n_sh + E, items = slots + pairs;
  plan_i = DeviceBuffer<int32_t>((size_t)(3 + 3 * slots + 3 * items + pairs + Rmax * Ek));
  DSEEK_CUDA_CHECK(cudaMemset(plan_i.get(), 0, plan_i.bytes()));
  int32_t* p = plan_i.get();
  auto take = [&](int64_t n) {
    int32_t* r = p;
    p += n;
    return r;
  };
  plan.counts = take(2);
  plan.ticket = take(1);
  plan.slot_e = take(slots);
  plan.slot_p0 = take(slots);
  plan.slot_np = take(slots);
  plan.item_e = take(items);
  plan.item_p0 = take(items);
  plan.item_np = take(items);
  plan.pair_row = take(pairs);
  plan.pair_of = take(Rmax * Ek);
  plan.pair_w = pair_w.get();
  plan.max_items = items;
  logits = f(Bmax * V);
  ids = DeviceBuffer<int32_t>((size_t)Bmax);
  n_routed = DeviceBuffer<int32_t>(std::vector<int32_t>((size_t)L, 0));
}

}  // namespace dseek

#endif  // DSEEK_HAVE_CUDA
