// AdamW (torch.optim.AdamW, single-tensor path), its state file, and gradient-norm clipping.
// Reference: pytorch/pytorch torch/optim/adam.py `_single_tensor_adam` (v2.5, the non-capturable
// branch): param.mul_(1 - lr*wd); exp_avg.lerp_(grad, 1-b1); exp_avg_sq.mul_(b2).addcmul_(g, g,
// value=1-b2); denom = (exp_avg_sq.sqrt() / sqrt(bc2)).add_(eps); param.addcdiv_(exp_avg, denom,
// value=-lr/bc1). The element loops below follow that op order in fp32. Differs on purpose:
// betas are fp32 here (torch keeps Python doubles), a ~1e-8 relative effect on bias correction.
// Not here: the schedule (lr_schedule.cpp), the training loop.
#include "dseek/train/adamw.h"

#include <omp.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>      // min, fill
#include <charconv>       // from_chars (metadata step)
#include <cmath>          // sqrt, pow, isfinite
#include <set>            // name uniqueness, extra-name detection on load
#include <unordered_set>  // names seen in the state file
#include <vector>         // per-block partial sums

#include "dseek/core/dtype.h"      // f32_to_bf16, bf16_to_f32 (bf16 state)
#include "dseek/core/error.h"      // DSEEK_CHECK, fail
#include "dseek/io/safetensors.h"  // safetensors_write, SafeTensorsFile, read_f32

namespace dseek {

// ---------------------------------------------------------------------------------------------
// constants

constexpr const char* kStateFormat = "dseek.adamw";
constexpr const char* kStateVersion = "1";
constexpr int64_t kOmpMinElems = 1 << 15;  // below this a tensor is updated on one thread
constexpr int64_t kNormBlock = 1 << 16;    // fixed reduction block of grad_global_norm

// ---------------------------------------------------------------------------------------------
// kernels

namespace {

struct AdamWScalars {  // all rounded to fp32
  float decay_mul;     // 1 - lr*wd (1 when not decayed)
  float one_m_b1, b2, one_m_b2;
  float step_size;  // lr / bc1
  float bc2_sqrt;   // sqrt(bc2)
  float eps;
  bool state_bf16;  // round m and v to bf16 (nearest even) on store
};

float round_bf16(float x) {
  return bf16_to_f32(f32_to_bf16(x));
}

// One AdamW update of n elements, in the op order of the header comment (fp32; the lerp and
// the second moment as fused multiply-adds). The AVX-512 lanes compute exactly what the scalar
// tail does (sqrt and division are correctly rounded in both).
void adamw_update(float* p, float* m, float* v, const float* g, int64_t n, const AdamWScalars& k) {
  int64_t i = 0;
#if defined(__AVX512F__)
  const __m512 dm = _mm512_set1_ps(k.decay_mul), a1 = _mm512_set1_ps(k.one_m_b1),
               b2 = _mm512_set1_ps(k.b2), a2 = _mm512_set1_ps(k.one_m_b2),
               ss = _mm512_set1_ps(k.step_size), bc = _mm512_set1_ps(k.bc2_sqrt),
               ep = _mm512_set1_ps(k.eps);
  // (bf16 state: the scalar loop does the rounding)
  for (; !k.state_bf16 && i + 16 <= n; i += 16) {
    const __m512 pi = _mm512_mul_ps(_mm512_loadu_ps(p + i), dm);
    const __m512 gi = _mm512_loadu_ps(g + i), m0 = _mm512_loadu_ps(m + i);
    const __m512 mi = _mm512_fmadd_ps(a1, _mm512_sub_ps(gi, m0), m0);
    const __m512 vi =
        _mm512_fmadd_ps(_mm512_loadu_ps(v + i), b2, _mm512_mul_ps(_mm512_mul_ps(a2, gi), gi));
    // (masked sqrt: GCC 12 flags _mm512_sqrt_ps with a false -Wmaybe-uninitialized)
    const __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_mask_sqrt_ps(vi, 0xFFFF, vi), bc), ep);
    _mm512_storeu_ps(m + i, mi);
    _mm512_storeu_ps(v + i, vi);
    _mm512_storeu_ps(p + i, _mm512_sub_ps(pi, _mm512_div_ps(_mm512_mul_ps(ss, mi), denom)));
  }
#endif
  for (; i < n; i++) {
    const float pi = p[i] * k.decay_mul;
    const float gi = g[i];
    const float mi = std::fma(k.one_m_b1, gi - m[i], m[i]);  // lerp(m, g, 1-b1), weight < 0.5
    const float vi = std::fma(v[i], k.b2, (k.one_m_b2 * gi) * gi);
    const float denom = std::sqrt(vi) / k.bc2_sqrt + k.eps;
    m[i] = k.state_bf16 ? round_bf16(mi) : mi;  // p uses the unrounded mi, vi (as the GPU)
    v[i] = k.state_bf16 ? round_bf16(vi) : vi;
    p[i] = pi - (k.step_size * mi) / denom;
  }
}

// A contiguous piece of one tensor: elements [lo, hi) of tensor t.
struct Piece {
  size_t t;
  int64_t lo, hi;
};

// Tensors cut into pieces of at most `len` elements, for one `omp for` over all of them.
template <class NumelOf>
std::vector<Piece> pieces(size_t count, NumelOf numel_of, int64_t len) {
  std::vector<Piece> out;
  for (size_t t = 0; t < count; t++) {
    const int64_t n = numel_of(t);
    for (int64_t lo = 0; lo < n; lo += len) out.push_back({t, lo, std::min(n, lo + len)});
  }
  return out;
}

int threads_for(int64_t total_elems) {
  return omp_in_parallel() || total_elems < kOmpMinElems ? 1 : omp_get_max_threads();
}

void grads_check(const std::vector<ParamRef>& params, const std::vector<ParamRef>& grads) {
  DSEEK_CHECK(grads.size() == params.size(),
              "AdamW::step: got {} gradients for {} parameters (grads must be model_params of "
              "a gradient ModelWeights of the same config)",
              grads.size(), params.size());
  for (size_t i = 0; i < params.size(); i++) {
    const ParamRef& p = params[i];
    const ParamRef& g = grads[i];
    DSEEK_CHECK(g.name == p.name, "AdamW::step: gradient {} is {}, expected {}", i, g.name, p.name);
    if (!p.trainable) continue;
    DSEEK_CHECK(g.tensor && g.tensor->shape == p.shape,
                "AdamW::step: gradient of {} has shape {}, expected {}", p.name,
                g.tensor ? shape_str(g.tensor->shape) : "(null)", shape_str(p.shape));
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// public entry points

bool adamw_decay_default(const ParamRef& p) {
  return p.shape.size() >= 2;
}

AdamW::AdamW(std::vector<ParamRef> params, AdamWConfig cfg, AdamWDecayPredicate decay)
    : params_(std::move(params)), cfg_(cfg) {
  DSEEK_CHECK(cfg_.beta1 >= 0 && cfg_.beta1 < 1 && cfg_.beta2 >= 0 && cfg_.beta2 < 1,
              "AdamW: betas must be in [0, 1), got ({}, {})", cfg_.beta1, cfg_.beta2);
  DSEEK_CHECK(cfg_.eps >= 0 && cfg_.weight_decay >= 0,
              "AdamW: eps and weight_decay must be >= 0, got eps {} weight_decay {}", cfg_.eps,
              cfg_.weight_decay);
  if (!decay) decay = adamw_decay_default;
  std::set<std::string> names;
  decay_.resize(params_.size());
  m_.resize(params_.size());
  v_.resize(params_.size());
  for (size_t i = 0; i < params_.size(); i++) {
    const ParamRef& p = params_[i];
    DSEEK_CHECK(names.insert(p.name).second, "AdamW: parameter {} is listed twice", p.name);
    decay_[i] = decay(p);
    if (!p.trainable) continue;
    DSEEK_CHECK(p.tensor && p.tensor->shape == p.shape,
                "AdamW: parameter {} has shape {}, expected {} (weights not allocated?)", p.name,
                p.tensor ? shape_str(p.tensor->shape) : "(null)", shape_str(p.shape));
    m_[i] = Tensor(p.shape);
    v_[i] = Tensor(p.shape);
  }
}

int64_t AdamW::state_numel() const {
  int64_t n = 0;
  for (size_t i = 0; i < m_.size(); i++) n += m_[i].numel() + v_[i].numel();
  return n;
}

void AdamW::step(const std::vector<ParamRef>& grads, float lr) {
  grads_check(params_, grads);
  t_++;
  const double b1 = cfg_.beta1, b2 = cfg_.beta2;
  const double bc1 = 1.0 - std::pow(b1, (double)t_);
  const double bc2 = 1.0 - std::pow(b2, (double)t_);
  const float step_size = (float)((double)lr / bc1);
  const float bc2_sqrt = (float)std::sqrt(bc2);
  const float decay_mul = (float)(1.0 - (double)lr * (double)cfg_.weight_decay);
  const AdamWScalars k{.decay_mul = decay_mul,
                       .one_m_b1 = (float)(1.0 - b1),
                       .b2 = (float)b2,
                       .one_m_b2 = (float)(1.0 - b2),
                       .step_size = step_size,
                       .bc2_sqrt = bc2_sqrt,
                       .eps = cfg_.eps,
                       .state_bf16 = cfg_.state_bf16};
  AdamWScalars k_nodecay = k;
  k_nodecay.decay_mul = 1.0f;
  // every trainable tensor in pieces, one parallel loop (elementwise: any cut, same result)
  const std::vector<Piece> ps = pieces(
      params_.size(),
      [&](size_t i) { return params_[i].trainable ? params_[i].tensor->numel() : (int64_t)0; },
      kOmpMinElems);
  int64_t total = 0;
  for (const Piece& q : ps) total += q.hi - q.lo;
  const int64_t np = (int64_t)ps.size();
  const int nt = threads_for(total);
#pragma omp parallel for schedule(dynamic, 4) num_threads(nt) if (nt > 1)
  for (int64_t j = 0; j < np; j++) {
    const Piece& q = ps[j];
    const size_t i = q.t;
    adamw_update(params_[i].tensor->ptr() + q.lo, m_[i].ptr() + q.lo, v_[i].ptr() + q.lo,
                 grads[i].tensor->ptr() + q.lo, q.hi - q.lo, decay_[i] ? k : k_nodecay);
  }
}

void adamw_state_save(const std::string& path, const std::vector<ParamRef>& params,
                      const std::vector<const Tensor*>& m, const std::vector<const Tensor*>& v,
                      int64_t t, const AdamWConfig& cfg) {
  DSEEK_CHECK(m.size() == params.size() && v.size() == params.size(),
              "{}: AdamW state for {} parameters, got {} / {} moments", path, params.size(),
              m.size(), v.size());
  std::vector<TensorToWrite> ts;
  std::vector<std::vector<uint16_t>> bf;  // the BF16 copies (state_bf16), alive until written
  bf.reserve(2 * params.size());
  for (size_t i = 0; i < params.size(); i++) {
    if (!params[i].trainable) continue;
    for (int k = 0; k < 2; k++) {
      const Tensor* x = k == 0 ? m[i] : v[i];
      DSEEK_CHECK(x && x->shape == params[i].shape, "{}: AdamW {} of {} has shape {}, expected {}",
                  path, k == 0 ? "m" : "v", params[i].name, x ? shape_str(x->shape) : "(null)",
                  shape_str(params[i].shape));
      const void* data = x->ptr();
      if (cfg.state_bf16) {
        std::vector<uint16_t>& h = bf.emplace_back(x->data.size());
        for (size_t j = 0; j < h.size(); j++) h[j] = f32_to_bf16(x->data[j]);
        data = h.data();
      }
      ts.push_back({.name = (k == 0 ? "m." : "v.") + params[i].name,
                    .dtype = cfg.state_bf16 ? DType::BF16 : DType::F32,
                    .shape = params[i].shape,
                    .data = data});
    }
  }
  safetensors_write(path, ts,
                    {{"format", kStateFormat},
                     {"version", kStateVersion},
                     {"step", std::to_string(t)},
                     {"beta1", fmt::format("{}", cfg.beta1)},
                     {"beta2", fmt::format("{}", cfg.beta2)},
                     {"eps", fmt::format("{}", cfg.eps)},
                     {"weight_decay", fmt::format("{}", cfg.weight_decay)},
                     {"state_dtype", cfg.state_bf16 ? "bf16" : "fp32"}});
}

int64_t adamw_state_load(const std::string& path, const std::vector<ParamRef>& params,
                         std::vector<Tensor>* m_out, std::vector<Tensor>* v_out) {
  auto f = SafeTensorsFile::open(path);
  const auto& md = f->metadata();
  auto fmt_it = md.find("format");
  auto ver_it = md.find("version");
  DSEEK_CHECK(fmt_it != md.end() && fmt_it->second == kStateFormat,
              "{}: not an AdamW state file (metadata format is '{}', expected '{}'); it is "
              "written by AdamW::save next to a training checkpoint",
              path, fmt_it == md.end() ? "" : fmt_it->second, kStateFormat);
  DSEEK_CHECK(ver_it != md.end() && ver_it->second == kStateVersion,
              "{}: AdamW state version '{}', this build reads version {}; restart the run from "
              "the weights or resave with a matching dseek",
              path, ver_it == md.end() ? "" : ver_it->second, kStateVersion);
  auto step_it = md.find("step");
  DSEEK_CHECK(step_it != md.end(), "{}: AdamW state has no 'step' in its metadata", path);
  int64_t step = -1;
  const std::string& ss = step_it->second;
  auto [end, ec] = std::from_chars(ss.data(), ss.data() + ss.size(), step);
  DSEEK_CHECK(ec == std::errc() && end == ss.data() + ss.size() && step >= 0,
              "{}: AdamW state metadata step '{}' is not a non-negative integer", path, ss);

  // Read everything into fresh tensors first, so a failed load leaves the caller's unchanged.
  std::vector<Tensor> m(params.size()), v(params.size());
  std::unordered_set<std::string> expected;
  for (size_t i = 0; i < params.size(); i++) {
    const ParamRef& p = params[i];
    if (!p.trainable) continue;
    for (int k = 0; k < 2; k++) {
      std::string name = (k == 0 ? "m." : "v.") + p.name;
      expected.insert(name);
      const TensorInfo* ti = f->find(name);
      DSEEK_CHECK(ti, "{}: AdamW state has no {} (saved for a different model or trainable set?)",
                  path, name);
      DSEEK_CHECK(ti->shape == p.shape, "{}: AdamW state {} has shape {}, expected {}", path, name,
                  shape_str(ti->shape), shape_str(p.shape));
      (k == 0 ? m[i] : v[i]) = read_f32(*ti, p.shape);
    }
  }
  for (const std::string& n : f->names())
    DSEEK_CHECK(expected.count(n),
                "{}: AdamW state has {} which is not a trainable parameter of this model", path, n);
  *m_out = std::move(m);
  *v_out = std::move(v);
  return step;
}

void AdamW::save(const std::string& path) const {
  std::vector<const Tensor*> m(params_.size()), v(params_.size());
  for (size_t i = 0; i < params_.size(); i++) {
    m[i] = &m_[i];
    v[i] = &v_[i];
  }
  adamw_state_save(path, params_, m, v, t_, cfg_);
}

void AdamW::load(const std::string& path) {
  t_ = adamw_state_load(path, params_, &m_, &v_);
  if (cfg_.state_bf16)
    for (size_t i = 0; i < m_.size(); i++)
      for (Tensor* x : {&m_[i], &v_[i]})
        for (float& e : x->data) e = round_bf16(e);
}

void grads_zero(std::vector<ParamRef>& grads) {
  for (ParamRef& g : grads) std::fill(g.tensor->data.begin(), g.tensor->data.end(), 0.0f);
}

double grad_global_norm(const std::vector<ParamRef>& grads) {
  // Sum of squares in fp64 over fixed kNormBlock blocks of each tensor, summed in block order,
  // then over tensors in order (thread-count invariant); all blocks in one parallel loop.
  std::vector<Piece> blocks;
  std::vector<size_t> first(grads.size() + 1, 0);
  for (size_t t = 0; t < grads.size(); t++) {
    first[t] = blocks.size();
    const ParamRef& g = grads[t];
    if (!g.trainable || !g.tensor) continue;
    const int64_t n = g.tensor->numel();
    for (int64_t lo = 0; lo < n; lo += kNormBlock)
      blocks.push_back({t, lo, std::min(n, lo + kNormBlock)});
  }
  first[grads.size()] = blocks.size();
  const int64_t nb = (int64_t)blocks.size();
  std::vector<double> part(nb, 0.0);
  const int nt = nb > 1 ? threads_for(nb * kNormBlock) : 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
  for (int64_t b = 0; b < nb; b++) {
    const float* x = grads[blocks[b].t].tensor->ptr();
    double s = 0.0;
    for (int64_t i = blocks[b].lo; i < blocks[b].hi; i++) s += (double)x[i] * (double)x[i];
    part[b] = s;
  }
  double s = 0.0;
  for (size_t t = 0; t < grads.size(); t++) {
    double st = 0.0;
    for (size_t b = first[t]; b < first[t + 1]; b++) st += part[b];
    s += st;
  }
  return std::sqrt(s);
}

float clip_grad_norm(std::vector<ParamRef>& grads, float max_norm) {
  const double norm = grad_global_norm(grads);
  if (!std::isfinite(norm)) return (float)norm;
  // torch: clip_coef = max_norm / (total_norm + 1e-6), computed in the grads' dtype (fp32)
  const float coef = max_norm / ((float)norm + 1e-6f);
  if (coef < 1.0f) {
    const std::vector<Piece> ps = pieces(
        grads.size(),
        [&](size_t i) {
          return grads[i].trainable && grads[i].tensor ? grads[i].tensor->numel() : (int64_t)0;
        },
        kOmpMinElems);
    int64_t total = 0;
    for (const Piece& q : ps) total += q.hi - q.lo;
    const int64_t np = (int64_t)ps.size();
    const int nt = threads_for(total);
#pragma omp parallel for schedule(dynamic, 4) num_threads(nt) if (nt > 1)
    for (int64_t j = 0; j < np; j++) {
      float* x = grads[ps[j].t].tensor->ptr();
      for (int64_t i = ps[j].lo; i < ps[j].hi; i++) x[i] *= coef;
    }
  }
  return (float)norm;
}

}  // namespace dseek
