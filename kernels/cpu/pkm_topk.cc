// Top-k selection under the PKM tie rule: see pkm_topk.h.
#include "kernels/cpu/pkm_topk.h"

#include <algorithm>
#include <functional>

namespace pkm::cpu {
namespace {

// keys[0..k) = the k smallest of keys[0..count), ascending (keys are distinct: exact).
void SmallestK(uint64_t* keys, int count, int k) {
  if (k < count) std::nth_element(keys, keys + (k - 1), keys + count);
  std::sort(keys, keys + k);
}

}  // namespace

void TopKScores(const float* scores, int count, int k, std::vector<uint64_t>& keys,
                uint64_t* best) {
  keys.resize(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) keys[i] = RankKey(scores[i], i);
  SmallestK(keys.data(), count, k);
  std::copy_n(keys.begin(), k, best);
}

void TopKSums(const uint64_t* top1, const uint64_t* top2, int k, int n_keys,
              std::vector<float>& sums, std::vector<uint64_t>& keys, uint64_t* best) {
  auto score1 = [&](int a) { return KeyScore(top1[a]); };
  auto score2 = [&](int b) { return KeyScore(top2[b]); };
  auto key = [&](int a, int b, float sum) {
    return RankKey(sum, static_cast<int32_t>(static_cast<int64_t>(KeyIndex(top1[a])) * n_keys +
                                             KeyIndex(top2[b])));
  };
  keys.clear();
  bool finite = true;
  for (int a = 0; a < k; ++a) {
    finite = finite && std::isfinite(score1(a)) && std::isfinite(score2(a));
  }
  if (!finite) {
    // inf − inf is NaN, which breaks the ordering argument below: take all k².
    for (int a = 0; a < k; ++a) {
      for (int b = 0; b < k; ++b) keys.push_back(key(a, b, score1(a) + score2(b)));
    }
  } else {
    // Float addition is monotonic and both lists are sorted descending, so sums never increase
    // along a row (b) or down the first column (a). T, the k-th largest sum on the "staircase"
    // (a+1)(b+1) <= k, which has at least k members, is at most the k-th largest of all: so
    // collecting every candidate >= T (a row stops at its first sum below T, and the rows below
    // too when that happens at b = 0) keeps the whole top-k, which the rank keys then select
    // exactly, ties included. A candidate off the staircase has more than k others scoring at
    // least as much, so T is usually exact and about k of the k² candidates are collected.
    sums.clear();
    for (int a = 0; a < k; ++a) {
      for (int b = 0; (a + 1) * (b + 1) <= k; ++b) sums.push_back(score1(a) + score2(b));
    }
    std::nth_element(sums.begin(), sums.begin() + (k - 1), sums.end(), std::greater<float>());
    const float threshold = sums[k - 1];
    for (int a = 0; a < k && score1(a) + score2(0) >= threshold; ++a) {
      for (int b = 0; b < k; ++b) {
        const float sum = score1(a) + score2(b);
        if (sum < threshold) break;
        keys.push_back(key(a, b, sum));
      }
    }
  }
  SmallestK(keys.data(), static_cast<int>(keys.size()), k);
  std::copy_n(keys.begin(), k, best);
}

}  // namespace pkm::cpu
