// GpuDecoder's forward (infer/gpu_decoder.h): cache blocks on demand, the per-step uploads, and
// the launches of one forward over R rows (gpu_decode_kernels.h), with the families that
// set_profile_skip can leave out.
#ifdef DSEEK_HAVE_CUDA

#include "dseek/core/error.h"
#include "dseek/infer/gpu_decode_impl.h"

namespace dseek {

using detail::DevLayer;
using detail::kLoraNormEps;
using detail::SeqState;

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

void GpuDecoder::Impl::forward(int64_t R, int64_t r0, int64_t nr, bool decode) {
  const cuda::DecLaunch Lc{st, opt.use_pdl};
  auto on = [&](DecodeFamily f) { return !((skip >> f) & 1u); };
  const int32_t* d_tok = rows.get();
  const int32_t* d_seq = rows.get() + Rmax;
  const int32_t* d_pos = rows.get() + 2 * Rmax;
  const float eps = (float)cfg.rms_norm_eps;
  const int64_t rb = cuda::dec_rows_per_pass(R);
  float* qp = Dq > 0 ? q.get() : qkv.get();  // q rows (q_pe rotated in place by the append)
  const int64_t ldq = Dq > 0 ? H * Dqk : ldqkv;
  if (on(kFamEmbed)) cuda::dec_embed(h.get(), W(embed), d_tok, R, C, Lc);
  for (int64_t l = 0; l < L; l++) {
    const DevLayer& d = layers[l];
    cuda::DecGemv in = gemv(d.qkv, ldqkv, C, h.get(), C, qkv.get(), ldqkv, R);
    in.norm_w = F(d.attn_norm);
    in.eps = eps;
    if (on(kFamAttnIn)) cuda::dec_gemv(in, Lc);
    if (Dq > 0 && on(kFamAttnIn)) {
      cuda::DecGemv qb = gemv(d.q_b, H * Dqk, Dq, qkv.get(), ldqkv, q.get(), H * Dqk, R);
      qb.norm_w = F(d.q_a_norm);
      qb.eps = kLoraNormEps;
      cuda::dec_gemv(qb, Lc);
    }
    const cuda::DecCacheGeom g = geom(l);
    {  // q_abs [R, H, Dc] = per head W_UK^T q_nope; the cache append + RoPE in the same launch
      cuda::DecGemv a = gemv(d.wukt, H * Dc, Dn, qp, ldq, qabs.get(), H * Dc, R);
      a.rows_per_group = Dc;
      a.group_stride = Dqk;
      cuda::DecAppend ap;
      ap.g = g;
      ap.q = qp;
      ap.ldq = ldq;
      ap.kva = qkv.get() + NQ;
      ap.ldkva = ldqkv;
      ap.kv_norm_w = F(d.kv_a_norm);
      ap.eps = kLoraNormEps;
      ap.cos_t = cos_t.get();
      ap.sin_t = sin_t.get();
      ap.interleaved = cfg.rope_interleave;
      ap.row_seq = d_seq;
      ap.row_pos = d_pos;
      ap.R = R;
      ap.H = H;
      ap.Dn = Dn;
      ap.Dqk = Dqk;
      if (on(kFamQabs)) cuda::dec_qabs_append(a, ap, Lc);
    }
    cuda::DecAttn at;
    at.g = g;
    at.qabs = qabs.get();
    at.q = qp;
    at.ldq = ldq;
    at.Dn = Dn;
    at.Dqk = Dqk;
    at.row_seq = d_seq;
    at.row_pos = d_pos;
    at.R = R;
    at.H = H;
    at.n_splits = splits(R);
    at.min_chunk = opt.min_chunk;
    at.heads_per_block = heads_per_block(R);
    at.scale = cfg.softmax_scale();
    at.part_acc = part_acc.get();
    at.part_ml = part_ml.get();
    at.decode = decode;
    if (opt.l2_prefetch && R <= 8) {  // o_proj, router and shared-expert weights into L2
      auto add = [&](int64_t off, int64_t n) {
        at.pf.p[at.pf.n] = W(off);
        at.pf.bytes[at.pf.n++] = n * (int64_t)sizeof(bf16_t);
      };
      add(d.o, C * H * Dv);
      if (d.moe) {
        add(d.router, E * C);
        if (n_sh > 0) add(d.ew1 + E * 2 * Im * C, n_sh * 2 * Im * C);
      }
    }
    if (on(kFamAttn)) cuda::dec_attention(at, Lc);
    if (on(kFamWuv)) cuda::dec_wuv_combine(W(d.wuv), Dv, at, o.get(), Lc);
    cuda::DecGemv op = gemv(d.o, C, H * Dv, o.get(), H * Dv, h.get(), C, R);
    op.accumulate = true;
    if (on(kFamOproj)) cuda::dec_gemv(op, Lc);
    if (!d.moe) {
      if (!on(kFamDense)) continue;
      cuda::DecGemv up = gemv(d.w1, 2 * I, C, h.get(), C, act.get(), I, R);
      up.norm_w = F(d.ffn_norm);
      up.eps = eps;
      up.swiglu = true;
      cuda::dec_gemv(up, Lc);
      cuda::DecGemv dn = gemv(d.w2, C, I, act.get(), I, h.get(), C, R);
      dn.accumulate = true;
      cuda::dec_gemv(dn, Lc);
      continue;
    }
    cuda::DecGemv gate = gemv(d.router, E, C, h.get(), C, rlogits.get(), E, R);
    gate.norm_w = F(d.ffn_norm);
    gate.eps = eps;
    cuda::DecRouter ro;
    ro.p = rp;
    ro.bias = F(d.router_bias);
    ro.logits = rlogits.get();
    ro.idx = ridx.get();
    ro.w = rw.get();
    ro.n_sh = n_sh;
    ro.rb = rb;
    ro.n_routed = n_routed.get() + l;
    ro.sh_w1 = W(d.ew1 + E * 2 * Im * C);
    ro.Im = Im;
    ro.act = act.get();
    if (on(kFamRouter)) cuda::dec_moe_router(gate, ro, plan, Lc);
    cuda::DecMoeUp up;
    up.w1 = W(d.ew1);
    up.E = E;
    up.n_sh = n_sh;
    up.C = C;
    up.Im = Im;
    up.R = R;
    up.max_routed = std::min(E, R * Ek);
    up.x = h.get();
    up.norm_w = F(d.ffn_norm);
    up.eps = eps;
    up.act = act.get();
    if (on(kFamExpertUp)) cuda::dec_moe_up(up, plan, Lc);
    cuda::DecMoeDown dn;
    dn.w2 = W(d.ew2);
    dn.E = E;
    dn.Ek = Ek;
    dn.n_sh = n_sh;
    dn.C = C;
    dn.Im = Im;
    dn.R = R;
    dn.rb = rb;
    dn.act = act.get();
    dn.w = rw.get();
    dn.ey = ey.get();
    dn.h = h.get();
    if (on(kFamExpertDown)) cuda::dec_moe_down(dn, plan, Lc);
  }
  cuda::DecGemv hd = gemv(head, V, C, h.get() + r0 * C, C, logits.get(), V, nr);
  hd.norm_w = F(norm);
  hd.eps = eps;
  if (on(kFamHead)) cuda::dec_gemv(hd, Lc);
  if (on(kFamArgmax)) cuda::dec_argmax(ids.get(), logits.get(), nr, V, Lc);
}

}  // namespace dseek

#endif  // DSEEK_HAVE_CUDA
