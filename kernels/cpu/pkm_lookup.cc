// PkmLookup, the fast path: AVX2 sub-key scores, top-k selections on rank keys that look at
// about k·ln k of the k² products (pkm_topk.h), and an FMA gather-sum. Tokens are split over
// threads (or, fewer tokens than threads, one token's heads and bag columns); a token's
// result depends only on its own query, computed the same way on either path, so it is
// batch-invariant by construction.
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
  explicit Scratch(const PkmShape& s)
      : s1(static_cast<size_t>(s.n_keys)), s2(static_cast<size_t>(s.n_keys)),
        top1(static_cast<size_t>(s.knn)), top2(static_cast<size_t>(s.knn)),
        best(static_cast<size_t>(s.knn)), e(static_cast<size_t>(s.knn)),
        ids(static_cast<size_t>(s.heads) * s.knn), weights(static_cast<size_t>(s.heads) * s.knn) {}
  std::vector<float> s1, s2, sums;
  std::vector<uint64_t> keys, top1, top2, best;  // rank keys (pkm_topk.h)
  std::vector<float> e;
  std::vector<int32_t> ids;  // a token's selections, when the caller keeps none
  std::vector<float> weights;
};

// Head h of one token: its k best slot ids, best first, and their softmax weights.
void SelectHead(const PkmShape& s, int h, int k, const float* q, const float* keys, Scratch& sc,
                int32_t* ids, float* weights) {
  const int half = s.k_dim / 2, nk = s.n_keys;
  const size_t sub = static_cast<size_t>(nk) * half;  // floats of one [n_keys, k_dim/2] table
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
    ids[j] = KeyIndex(sc.best[j]);
    weights[j] = sc.e[j] / denom;
  }
}

// Columns [v0, v1) of one token's bag: out[v] = Σ_h Σ_j w[h,j]·values[id[h,j], v], summed in
// (h, j) order with one FMA per term, so any split of the columns gives the same bits.
// ids, weights: [heads, s.knn] rows, the first `heads` rows and `knn` of each read.
template <typename W>
void GatherSum(const PkmShape& s, int heads, int knn, const int32_t* ids, const float* weights,
               const W* values, const float* scales, int v0, int v1, float* out) {
  std::fill(out + v0, out + v1, 0.0f);
  for (int h = 0; h < heads; ++h) {
    for (int j = 0; j < knn; ++j) {
      const size_t at = static_cast<size_t>(h) * s.knn + j;
      const int32_t id = ids[at];
      avx2::Axpy(scales ? weights[at] * scales[id] : weights[at],
                 values + static_cast<size_t>(id) * s.v_dim + v0, v1 - v0, out + v0);
    }
  }
}

// Where one token's selections go: the caller's rows, or the scratch's. Slots the token does
// not read (PkmTokenLimits) are id -1, weight 0.
struct TokenRows {
  int32_t* ids;
  float* weights;
};
TokenRows RowsOf(const PkmShape& s, int32_t* ids, float* weights, Scratch& sc) {
  TokenRows r{ids ? ids : sc.ids.data(), weights ? weights : sc.weights.data()};
  const size_t per_token = static_cast<size_t>(s.heads) * s.knn;
  std::fill(r.ids, r.ids + per_token, -1);
  std::fill(r.weights, r.weights + per_token, 0.0f);
  return r;
}

// A token costs tens of µs at the bundled model's shape, so tokens are what threads share.
// Below as many tokens as threads (decode), a memory this large instead splits one token: its
// heads, then its bag's columns (sub-key multiply-adds: heads · n_keys · k_dim).
constexpr double kMinSplitTokenMacs = 256.0 * 1024;

template <typename W>
void PkmLookupOf(const PkmShape& s, const float* q, int n, const float* keys, const W* values,
                 const float* scales, float* out, int32_t* ids, float* weights,
                 const PkmTokenLimits& limits) {
  const size_t per_token = static_cast<size_t>(s.heads) * s.knn;  // rows of ids and weights
  const int threads = NumThreads();
  const bool split_token = n < threads &&
                           static_cast<double>(s.heads) * s.n_keys * s.k_dim >= kMinSplitTokenMacs;
  if (split_token) {
    Scratch shared(s);
    for (int t = 0; t < n; ++t) {
      const int heads = LimitedHeads(s, limits, t), knn = LimitedKnn(s, limits, t);
      const float* qt = q + static_cast<size_t>(t) * s.heads * s.k_dim;
      const TokenRows rows = RowsOf(s, ids ? ids + t * per_token : nullptr,
                                    weights ? weights + t * per_token : nullptr, shared);
      float* bag = out + static_cast<size_t>(t) * s.v_dim;
      const int chunks = std::min(threads, (s.v_dim + 7) / 8);
#pragma omp parallel num_threads(threads)
      {
        Scratch sc(s);
#pragma omp for schedule(static)
        for (int h = 0; h < heads; ++h) {
          SelectHead(s, h, knn, qt, keys, sc, rows.ids + static_cast<size_t>(h) * s.knn,
                     rows.weights + static_cast<size_t>(h) * s.knn);
        }
#pragma omp for schedule(static)
        for (int c = 0; c < chunks; ++c) {
          const int v0 = (s.v_dim / 8 * c / chunks) * 8;
          const int v1 = c + 1 == chunks ? s.v_dim : (s.v_dim / 8 * (c + 1) / chunks) * 8;
          GatherSum(s, heads, knn, rows.ids, rows.weights, values, scales, v0, v1, bag);
        }
      }
    }
    return;
  }
#pragma omp parallel num_threads(threads) if (n >= 4)
  {
    Scratch sc(s);
#pragma omp for schedule(static)
    for (int t = 0; t < n; ++t) {
      const int heads = LimitedHeads(s, limits, t), knn = LimitedKnn(s, limits, t);
      const float* qt = q + static_cast<size_t>(t) * s.heads * s.k_dim;
      const TokenRows rows = RowsOf(s, ids ? ids + t * per_token : nullptr,
                                    weights ? weights + t * per_token : nullptr, sc);
      for (int h = 0; h < heads; ++h) {
        SelectHead(s, h, knn, qt, keys, sc, rows.ids + static_cast<size_t>(h) * s.knn,
                   rows.weights + static_cast<size_t>(h) * s.knn);
      }
      GatherSum(s, heads, knn, rows.ids, rows.weights, values, scales, 0, s.v_dim,
                out + static_cast<size_t>(t) * s.v_dim);
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
