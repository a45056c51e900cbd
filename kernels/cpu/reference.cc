// The reference kernels: plain loops that spell out kernels.h, the spec the fast kernels and
// the CUDA kernels are tested against. Readability over speed; no intrinsics, no threads.
// Compiled with -ffp-contract=off (as the whole library) so every a·b + c is two roundings.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <vector>

#include "kernels/cpu/kernels.h"

namespace pkm::cpu::ref {
namespace {

// The tie rule: a comes before b when its score is higher, or equal with a lower index. NaN
// counts as the highest score (as in torch.sort), which keeps this a strict weak order.
bool Before(float score_a, int64_t index_a, float score_b, int64_t index_b) {
  bool nan_a = std::isnan(score_a), nan_b = std::isnan(score_b);
  if (nan_a != nan_b) return nan_a;
  if (!nan_a && score_a != score_b) return score_a > score_b;
  return index_a < index_b;
}

// The k best of scores[0..count) under the tie rule, best first.
std::vector<int> TopK(const std::vector<float>& scores, const std::vector<int64_t>& index, int k) {
  std::vector<int> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int a, int b) { return Before(scores[a], index[a], scores[b], index[b]); });
  order.resize(static_cast<size_t>(k));
  return order;
}

}  // namespace

void Linear(const float* x, int n, int in, WeightMatrix w, const float* b, int out, float* y) {
  // Accumulated in double: the reference is the exact product rounded once, up to the last bits.
  std::vector<float> row(static_cast<size_t>(in));
  for (int t = 0; t < n; ++t) {
    for (int o = 0; o < out; ++o) {
      WidenRow(w, static_cast<size_t>(o), in, row.data());
      double sum = 0.0;
      for (int i = 0; i < in; ++i) {
        sum += static_cast<double>(x[static_cast<size_t>(t) * in + i]) *
               static_cast<double>(row[static_cast<size_t>(i)]);
      }
      if (b) sum += b[o];
      y[static_cast<size_t>(t) * out + o] = static_cast<float>(sum);
    }
  }
}

void LayerNorm(const float* x, int n, int d, const float* gamma, const float* beta, float eps,
               float* y) {
  for (int t = 0; t < n; ++t) {
    const float* xr = x + static_cast<size_t>(t) * d;
    float* yr = y + static_cast<size_t>(t) * d;
    float sum = 0.0f;
    for (int i = 0; i < d; ++i) sum += xr[i];
    const float mean = sum / static_cast<float>(d);
    float sq = 0.0f;
    for (int i = 0; i < d; ++i) sq += (xr[i] - mean) * (xr[i] - mean);
    const float var = sq / static_cast<float>(d);
    const float denom = std::sqrt(var + eps);
    for (int i = 0; i < d; ++i) {
      const float scaled = (xr[i] - mean) / denom * gamma[i];
      yr[i] = beta ? scaled + beta[i] : scaled;  // no bias: no + 0, which would turn −0 into +0
    }
  }
}

void RmsNorm(const float* x, int n, int d, const float* gamma, float eps, float* y) {
  for (int t = 0; t < n; ++t) {
    const float* xr = x + static_cast<size_t>(t) * d;
    float* yr = y + static_cast<size_t>(t) * d;
    float sq = 0.0f;
    for (int i = 0; i < d; ++i) sq += xr[i] * xr[i];
    const float denom = std::sqrt(sq / static_cast<float>(d) + eps);
    for (int i = 0; i < d; ++i) yr[i] = xr[i] / denom * gamma[i];
  }
}

void Gelu(float* x, size_t count) {
  constexpr float kSqrtHalf = 0.70710678118654752f;  // x/√2 as x·(1/√2), like PyTorch
  for (size_t i = 0; i < count; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * kSqrtHalf));
}

void GeluTanh(float* x, size_t count) {
  constexpr float kSqrtTwoOverPi = 0.79788456080286536f;  // √(2/π)
  constexpr float kCubic = 0.044715f;
  for (size_t i = 0; i < count; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(kSqrtTwoOverPi * (v + kCubic * (v * v * v))));
  }
}

void Relu(float* x, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    if (x[i] < 0.0f) x[i] = 0.0f;
  }
}

void SiluMul(const float* gate, const float* up, size_t count, float* y) {
  for (size_t i = 0; i < count; ++i) {
    const float g = gate[i];
    y[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void Rope(float* x, int n, int heads, int head_dim, const int32_t* positions, float theta) {
  const int half = head_dim / 2;
  for (int t = 0; t < n; ++t) {
    for (int h = 0; h < heads; ++h) {
      float* v = x + (static_cast<size_t>(t) * heads + h) * head_dim;
      for (int j = 0; j < half; ++j) {
        // As training/model.py: inv_freq = 1 / theta^(2j/head_dim) and the angle in double.
        double inv_freq = 1.0 / std::pow(static_cast<double>(theta), 2.0 * j / head_dim);
        double angle = static_cast<double>(positions[t]) * inv_freq;
        float c = static_cast<float>(std::cos(angle));
        float s = static_cast<float>(std::sin(angle));
        float a = v[j], b = v[j + half];
        v[j] = a * c - b * s;
        v[j + half] = a * s + b * c;
      }
    }
  }
}

void PagedAttention(const float* q, int n, int heads, int kv_heads, int head_dim,
                    const float* k_cache, const float* v_cache, int block_size,
                    const int32_t* block_tables, int max_blocks, const int32_t* token_seq,
                    const int32_t* token_pos, float* out) {
  const float scale = std::sqrt(static_cast<float>(head_dim));
  const int group = heads / kv_heads;  // query heads per kv head
  for (int t = 0; t < n; ++t) {
    const int32_t* table = block_tables + static_cast<size_t>(token_seq[t]) * max_blocks;
    const int len = token_pos[t] + 1;
    // Offset of position p, kv head kvh in the caches.
    auto at = [&](int p, int kvh) {
      size_t slot = static_cast<size_t>(table[p / block_size]) * block_size + p % block_size;
      return (slot * kv_heads + kvh) * head_dim;
    };
    for (int h = 0; h < heads; ++h) {
      const int kvh = h / group;
      const float* qh = q + (static_cast<size_t>(t) * heads + h) * head_dim;
      std::vector<float> s(static_cast<size_t>(len));
      for (int p = 0; p < len; ++p) {
        float dot = 0.0f;
        for (int i = 0; i < head_dim; ++i) dot += qh[i] * k_cache[at(p, kvh) + i];
        s[p] = dot / scale;
      }
      const float m = *std::max_element(s.begin(), s.end());
      float denom = 0.0f;
      std::vector<float> acc(static_cast<size_t>(head_dim), 0.0f);
      for (int p = 0; p < len; ++p) {
        const float e = std::exp(s[p] - m);
        denom += e;
        for (int i = 0; i < head_dim; ++i) acc[i] += e * v_cache[at(p, kvh) + i];
      }
      float* o = out + (static_cast<size_t>(t) * heads + h) * head_dim;
      for (int i = 0; i < head_dim; ++i) o[i] = acc[i] / denom;
    }
  }
}

void PkmLookup(const PkmShape& s, const float* q, int n, const float* keys, WeightMatrix values,
               float* out, int32_t* ids, float* weights, PkmTokenLimits limits) {
  const int half = s.k_dim / 2, nk = s.n_keys;
  std::vector<float> v(static_cast<size_t>(s.v_dim));
  for (int t = 0; t < n; ++t) {
    float* o = out + static_cast<size_t>(t) * s.v_dim;
    std::fill(o, o + s.v_dim, 0.0f);
    const size_t per_token = static_cast<size_t>(s.heads) * s.knn;
    if (ids) std::fill(ids + t * per_token, ids + (t + 1) * per_token, -1);
    if (weights) std::fill(weights + t * per_token, weights + (t + 1) * per_token, 0.0f);
    // What this token reads: its first `heads` heads, `k` slots each.
    const int heads = LimitedHeads(s, limits, t), k = LimitedKnn(s, limits, t);
    for (int h = 0; h < heads; ++h) {
      const float* qh = q + (static_cast<size_t>(t) * s.heads + h) * s.k_dim;
      // 1. Sub-key scores of each half.
      std::vector<float> s1(nk), s2(nk);
      for (int i = 0; i < nk; ++i) {
        const float* k1 = keys + ((static_cast<size_t>(h) * 2 + 0) * nk + i) * half;
        const float* k2 = keys + ((static_cast<size_t>(h) * 2 + 1) * nk + i) * half;
        float d1 = 0.0f, d2 = 0.0f;
        for (int j = 0; j < half; ++j) {
          d1 += k1[j] * qh[j];
          d2 += k2[j] * qh[half + j];
        }
        s1[i] = d1;
        s2[i] = d2;
      }
      // 2. Top-k of each half, by (score desc, sub-key index asc).
      std::vector<int64_t> sub_index(nk);
      std::iota(sub_index.begin(), sub_index.end(), 0);
      std::vector<int> i1 = TopK(s1, sub_index, k), i2 = TopK(s2, sub_index, k);
      // 3. The k² candidates v1[a] + v2[b], slot id i1[a]·n_keys + i2[b].
      std::vector<float> cand;
      std::vector<int64_t> cand_id;
      for (int a = 0; a < k; ++a) {
        for (int b = 0; b < k; ++b) {
          cand.push_back(s1[i1[a]] + s2[i2[b]]);
          cand_id.push_back(static_cast<int64_t>(i1[a]) * nk + i2[b]);
        }
      }
      // 4. Their top-k by (score desc, slot id asc), softmax in fp32.
      std::vector<int> best = TopK(cand, cand_id, k);
      float m = cand[best[0]];
      for (int j = 1; j < k; ++j) m = std::max(m, cand[best[j]]);
      std::vector<float> e(k);
      float denom = 0.0f;
      for (int j = 0; j < k; ++j) {
        e[j] = std::exp(cand[best[j]] - m);
        denom += e[j];
      }
      // 5. out += Σ_j w_j · values[id_j], heads and j in order.
      for (int j = 0; j < k; ++j) {
        const float wj = e[j] / denom;
        const int64_t id = cand_id[best[j]];
        const size_t r = (static_cast<size_t>(t) * s.heads + h) * s.knn + j;
        if (ids) ids[r] = static_cast<int32_t>(id);
        if (weights) weights[r] = wj;
        WidenRow(values, static_cast<size_t>(id), s.v_dim, v.data());
        for (int i = 0; i < s.v_dim; ++i) o[i] += wj * v[i];
      }
    }
  }
}

}  // namespace pkm::cpu::ref
