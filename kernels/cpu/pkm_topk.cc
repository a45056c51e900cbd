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
  for (int a = 0; a < k; ++a) finite = finite && std::isfinite(score1(a)) && std::isfinite(score2(a));
  if (!finite) {
    // inf − inf is NaN, which breaks the ordering argument below: take all k².
    for (int a = 0; a < k; ++a) {
      for (int b = 0; b < k; ++b) keys.push_back(key(a, b, score1(a) + score2(b)));
    }
  } else {
    // Float addition is monotonic and both lists are sorted descending, so candidate (a, b)
    // has at least (a+1)(b+1) candidates scoring as much or more. The "staircase"
    // (a+1)(b+1) <= k (about k·ln k candidates, k of them at b = 0) therefore holds the k
    // largest scores, and T, the k-th largest sum on it, is at most the k-th largest of all.
    // Every candidate scoring >= T is collected (a row, and at b = 0 the rows below, stop at
    // the first sum below T) and the top-k taken from them by rank key: exactly the top-k of
    // all k², ties included. Usually about k are collected.
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
