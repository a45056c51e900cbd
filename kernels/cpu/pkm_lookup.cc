// PkmLookup, the fast path: AVX2 sub-key scores, top-k selections on rank keys that look at
// about k·ln k of the k² products (pkm_topk.h), and an FMA gather-sum. Tokens are split over
// threads; a token's result depends only on its own query, so it is batch-invariant by
// construction.
//
// Selections give exactly the reference's answer (same set, same order, ties included) for the
// same sub-key scores; the scores themselves are dot products in dot_avx2.h's order, which may
// differ from the reference's plain loop in the last bit.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/cpu/dot_avx2.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/pkm_topk.h"

namespace pkm::cpu {
namespace {

// Scratch of one thread, reused across its tokens.
struct Scratch {
  std::vector<float> s1, s2, sums;
  std::vector<uint64_t> keys, top1, top2, best;  // rank keys (pkm_topk.h)
  std::vector<float> e;
};

// One token: out[v_dim] = Σ_h Σ_j w[h,j]·values[id[h,j]]; ids, weights: [heads, knn] or null.
// scales: int8 tables' row scales, else null.
// heads and knn: what this token reads (PkmTokenLimits); the other slots get id -1, weight 0.
template <typename W>
void LookupToken(const PkmShape& s, int heads, int knn, const float* q, const float* keys,
                 const W* values, const float* scales, Scratch& sc, float* out, int32_t* ids,
                 float* weights) {
  const int half = s.k_dim / 2, k = knn, nk = s.n_keys;
  const size_t sub = static_cast<size_t>(nk) * half;  // floats of one [n_keys, k_dim/2] table
  std::fill(out, out + s.v_dim, 0.0f);
  const size_t per_token = static_cast<size_t>(s.heads) * s.knn;
  if (ids) std::fill(ids, ids + per_token, -1);
  if (weights) std::fill(weights, weights + per_token, 0.0f);
  for (int h = 0; h < heads; ++h) {
    const float* qh = q + static_cast<size_t>(h) * s.k_dim;
    const float* keys1 = keys + (static_cast<size_t>(h) * 2) * sub;
    avx2::DotRow(qh, keys1, half, nk, half, nullptr, sc.s1.data());
    avx2::DotRow(qh + half, keys1 + sub, half, nk, half, nullptr, sc.s2.data());
    TopKScores(sc.s1.data(), nk, k, sc.keys, sc.top1.data());
    TopKScores(sc.s2.data(), nk, k, sc.keys, sc.top2.data());
    TopKSums(sc.top1.data(), sc.top2.data(), k, nk, sc.sums, sc.keys, sc.best.data());

    // Softmax in fp32, max-subtracted, sums in order: the reference's arithmetic.
    float m = KeyScore(sc.best[0]);
    for (int j = 1; j < k; ++j) m = std::max(m, KeyScore(sc.best[j]));
    float denom = 0.0f;
    for (int j = 0; j < k; ++j) {
      sc.e[j] = std::exp(KeyScore(sc.best[j]) - m);
      denom += sc.e[j];
    }
    for (int j = 0; j < k; ++j) {
      const float w = sc.e[j] / denom;
      const int32_t id = KeyIndex(sc.best[j]);
      if (ids) ids[static_cast<size_t>(h) * s.knn + j] = id;
      if (weights) weights[static_cast<size_t>(h) * s.knn + j] = w;
      avx2::Axpy(scales ? w * scales[id] : w, values + static_cast<size_t>(id) * s.v_dim, s.v_dim,
                 out);
    }
  }
}


template <typename W>
void PkmLookupOf(const PkmShape& s, const float* q, int n, const float* keys, const W* values,
                 const float* scales, float* out, int32_t* ids, float* weights,
                 const PkmTokenLimits& limits) {
  const size_t per_token = static_cast<size_t>(s.heads) * s.knn;  // rows of ids and weights
  // A token costs tens of µs (the bundled model's shape): a few pay for a parallel region.
#pragma omp parallel num_threads(NumThreads()) if (n >= 4)
  {
    Scratch sc;
    sc.s1.resize(static_cast<size_t>(s.n_keys));
    sc.s2.resize(static_cast<size_t>(s.n_keys));
    sc.top1.resize(static_cast<size_t>(s.knn));
    sc.top2.resize(static_cast<size_t>(s.knn));
    sc.best.resize(static_cast<size_t>(s.knn));
    sc.e.resize(static_cast<size_t>(s.knn));
#pragma omp for schedule(static)
    for (int t = 0; t < n; ++t) {
      LookupToken(s, LimitedHeads(s, limits, t), LimitedKnn(s, limits, t),
                  q + static_cast<size_t>(t) * s.heads * s.k_dim, keys, values, scales, sc,
                  out + static_cast<size_t>(t) * s.v_dim, ids ? ids + t * per_token : nullptr,
                  weights ? weights + t * per_token : nullptr);
    }
  }
}

}  // namespace

void PkmLookup(const PkmShape& s, const float* q, int n, const float* keys, WeightMatrix values,
               float* out, int32_t* ids, float* weights, PkmTokenLimits limits) {
  RequireAvx2Fma();
  switch (values.type) {
    case WeightType::kF32:
      return PkmLookupOf(s, q, n, keys, values.f32(), nullptr, out, ids, weights, limits);
    case WeightType::kF16:
      return PkmLookupOf(s, q, n, keys, static_cast<const avx2::Half*>(values.data), nullptr, out,
                         ids, weights, limits);
    case WeightType::kBF16:
      return PkmLookupOf(s, q, n, keys, static_cast<const avx2::BFloat16*>(values.data), nullptr,
                         out, ids, weights, limits);
    case WeightType::kI8:
      return PkmLookupOf(s, q, n, keys, static_cast<const avx2::Int8*>(values.data),
                         values.scales, out, ids, weights, limits);
  }
}

}  // namespace pkm::cpu
