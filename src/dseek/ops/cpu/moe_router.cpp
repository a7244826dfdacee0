#include "dseek/ops/cpu/moe_router.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace dseek {

namespace {
// indices of the k largest values (ties: lower index first), in descending value order
void topk_indices(std::vector<int32_t>* out, const float* v, int64_t n, int64_t k,
                  std::vector<int32_t>* scratch) {
  scratch->resize(n);
  std::iota(scratch->begin(), scratch->end(), 0);
  auto cmp = [&](int32_t a, int32_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); };
  std::partial_sort(scratch->begin(), scratch->begin() + k, scratch->end(), cmp);
  out->assign(scratch->begin(), scratch->begin() + k);
}
}  // namespace

void moe_router_forward(int32_t* idx, float* w, float* scores_out, const float* logits,
                        const float* bias, int64_t N, const RouterParams& p) {
  const int64_t E = p.n_experts, K = p.top_k, G = p.n_group, gsz = E / G;
#pragma omp parallel if (N > 64)
  {
    std::vector<float> s(E), choice(E), gscore(G);
    std::vector<int32_t> top, keep, scratch, gtop;
#pragma omp for
    for (int64_t n = 0; n < N; n++) {
      const float* lg = logits + n * E;
      if (p.sigmoid) {
        for (int64_t e = 0; e < E; e++) s[e] = 1.0f / (1.0f + std::exp(-lg[e]));
      } else {
        float mx = *std::max_element(lg, lg + E);
        double sum = 0.0;
        for (int64_t e = 0; e < E; e++) {
          s[e] = std::exp(lg[e] - mx);
          sum += s[e];
        }
        for (int64_t e = 0; e < E; e++) s[e] = (float)(s[e] / sum);
      }
      if (scores_out) std::copy(s.begin(), s.end(), scores_out + n * E);
      for (int64_t e = 0; e < E; e++) choice[e] = s[e] + (bias ? bias[e] : 0.0f);

      if (p.group_limited && G > 1) {
        for (int64_t g = 0; g < G; g++) {
          const float* c = choice.data() + g * gsz;
          if (p.sigmoid) {  // sum of the top-2 in the group
            topk_indices(&gtop, c, gsz, 2, &scratch);
            gscore[g] = c[gtop[0]] + c[gtop[1]];
          } else {  // max in the group
            gscore[g] = *std::max_element(c, c + gsz);
          }
        }
        topk_indices(&keep, gscore.data(), G, p.topk_group, &scratch);
        std::vector<bool> kept(G, false);
        for (int32_t g : keep) kept[g] = true;
        const float masked = p.sigmoid ? -INFINITY : 0.0f;
        for (int64_t e = 0; e < E; e++)
          if (!kept[e / gsz]) choice[e] = masked;
      }
      topk_indices(&top, choice.data(), E, K, &scratch);
      std::sort(top.begin(), top.end());
      double sum = 0.0;
      for (int64_t k = 0; k < K; k++) sum += s[top[k]];
      for (int64_t k = 0; k < K; k++) {
        float wk = s[top[k]];
        if (p.norm_topk) wk = wk / ((float)sum + 1e-20f);
        idx[n * K + k] = top[k];
        w[n * K + k] = wk * p.scaling;
      }
    }
  }
}

void moe_router_backward(float* dlogits, const float* dw, const int32_t* idx, const float* scores,
                         int64_t N, const RouterParams& p) {
  const int64_t E = p.n_experts, K = p.top_k;
  const double c = p.scaling;
#pragma omp parallel if (N * E > 65536)
  {
    std::vector<double> ds(E);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) {
      const float* s = scores + n * E;
      const float* g = dw + n * K;
      const int32_t* sel = idx + n * K;
      std::fill(ds.begin(), ds.end(), 0.0);
      // dw -> ds on the selected experts
      if (p.norm_topk) {
        double S = 0.0, gs = 0.0;
        for (int64_t k = 0; k < K; k++) {
          S += s[sel[k]];
          gs += (double)g[k] * s[sel[k]];
        }
        S += 1e-20;
        for (int64_t k = 0; k < K; k++) ds[sel[k]] += c * (g[k] - gs / S) / S;
      } else {
        for (int64_t k = 0; k < K; k++) ds[sel[k]] += c * g[k];
      }
      // ds -> dlogits
      float* o = dlogits + n * E;
      if (p.sigmoid) {
        for (int64_t e = 0; e < E; e++) o[e] = (float)(ds[e] * s[e] * (1.0 - s[e]));
      } else {
        double dot = 0.0;
        for (int64_t k = 0; k < K; k++) dot += ds[sel[k]] * s[sel[k]];
        for (int64_t e = 0; e < E; e++) o[e] = (float)(s[e] * (ds[e] - dot));
      }
    }
  }
}

}  // namespace dseek
