// PagedAttention with AVX2, one (token, query head) pair at a time, split over threads. Under
// grouped-query attention the query heads of a group read the same kv head's rows; each pair
// still does its own arithmetic, so kv_heads changes only which rows are read.
//
// A pair's result depends only on its query and the cache rows of positions 0..pos, read in
// position order with the same arithmetic (dot_avx2.h): so it is the same whatever else is in
// the call (batch invariance) and whether earlier positions were written in this step or an
// earlier one (chunk invariance).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "kernels/cpu/dot_avx2.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/parallel.h"

namespace pkm::cpu {
namespace {

// Where position p of kv head kvh sits in a [num_blocks, block_size, kv_heads, head_dim] cache.
struct CacheIndex {
  const int32_t* table;  // [max_blocks] this sequence's block ids
  int block_size, kv_heads, head_dim, kvh;
  size_t operator()(int p) const {
    size_t slot = static_cast<size_t>(table[p / block_size]) * block_size + p % block_size;
    return (slot * kv_heads + kvh) * head_dim;
  }
};

// out[head_dim] = Σ_p softmax(s)_p · v_p over positions 0..len−1. scores has room for len
// floats, acc for head_dim.
void AttendOne(const float* q, const float* k_cache, const float* v_cache, const CacheIndex& at,
               int len, float* scores, float* acc, float* out) {
  const int hd = at.head_dim;
  const float scale = std::sqrt(static_cast<float>(hd));
  int p = 0;
  for (; p + 4 <= len; p += 4) {
    const float* k[4] = {k_cache + at(p), k_cache + at(p + 1), k_cache + at(p + 2),
                         k_cache + at(p + 3)};
    alignas(16) float dots[4];
    _mm_store_ps(dots, avx2::Dot4(q, k, hd));
    for (int i = 0; i < 4; ++i) scores[p + i] = dots[i] / scale;
  }
  for (; p < len; ++p) scores[p] = avx2::Dot1(q, k_cache + at(p), hd) / scale;

  const float m = *std::max_element(scores, scores + len);
  float denom = 0.0f;
  std::fill(acc, acc + hd, 0.0f);
  for (p = 0; p < len; ++p) {
    const float e = std::exp(scores[p] - m);
    denom += e;
    avx2::Axpy(e, v_cache + at(p), hd, acc);
  }
  for (int i = 0; i < hd; ++i) out[i] = acc[i] / denom;
}

}  // namespace

void PagedAttention(const float* q, int n, int heads, int kv_heads, int head_dim,
                    const float* k_cache, const float* v_cache, int block_size,
                    const int32_t* block_tables, int max_blocks, const int32_t* token_seq,
                    const int32_t* token_pos, float* out) {
  RequireAvx2Fma();
  const int pairs = n * heads;
  const int group = heads / kv_heads;  // query heads per kv head
  int longest = 0;
  for (int t = 0; t < n; ++t) longest = std::max(longest, token_pos[t] + 1);
  // Not worth a parallel region below ~256K multiply-adds per half (QKᵀ and PV).
  const bool parallel = static_cast<double>(pairs) * longest * head_dim >= 256.0 * 1024;
#pragma omp parallel num_threads(NumThreads()) if (parallel)
  {
    std::vector<float> scores(static_cast<size_t>(longest));
    std::vector<float> acc(static_cast<size_t>(head_dim));
    // Dynamic: pairs differ in length (a prefill's later tokens read more positions).
#pragma omp for schedule(dynamic, 4)
    for (int pair = 0; pair < pairs; ++pair) {
      const int t = pair / heads, h = pair % heads;
      const CacheIndex at{block_tables + static_cast<size_t>(token_seq[t]) * max_blocks, block_size,
                          kv_heads, head_dim, h / group};
      const size_t row = static_cast<size_t>(pair) * head_dim;  // q and out: [n, heads, head_dim]
      AttendOne(q + row, k_cache, v_cache, at, token_pos[t] + 1, scores.data(), acc.data(),
                out + row);
    }
  }
}

}  // namespace pkm::cpu
