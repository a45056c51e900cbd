// Top-k selection under the PKM tie rule, for the fast PkmLookup (private to kernels/cpu).
//
// The rule (score descending, then index ascending) is encoded in one integer, the rank key, so
// that selecting is sorting distinct integers: no comparator, no NaN special case, and the
// result is the reference's exactly.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

namespace pkm::cpu {

// Ascending keys = descending scores, then ascending index (index >= 0). All NaNs rank as one
// value above +inf (NaN first, as torch.sort), and −0 as +0 (they compare equal as floats).
inline uint64_t RankKey(float score, int32_t index) {
  uint32_t bits = std::isnan(score) ? 0x7FC00000u : std::bit_cast<uint32_t>(score + 0.0f);
  uint32_t ascending = (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;  // ordered like score
  return static_cast<uint64_t>(~ascending) << 32 | static_cast<uint32_t>(index);
}

// The score and index back from a key (−0 comes back as +0, NaN as the canonical NaN).
inline float KeyScore(uint64_t key) {
  uint32_t ascending = ~static_cast<uint32_t>(key >> 32);
  return std::bit_cast<float>((ascending & 0x80000000u) ? ascending & 0x7FFFFFFFu : ~ascending);
}
inline int32_t KeyIndex(uint64_t key) { return static_cast<int32_t>(static_cast<uint32_t>(key)); }

// best[0..k) = the rank keys of the top-k of scores[0..count) (index = position), best first.
// 1 <= k <= count; keys is scratch.
void TopKScores(const float* scores, int count, int k, std::vector<uint64_t>& keys, uint64_t* best);

// best[0..k) = the rank keys of the top-k of the k² sums KeyScore(top1[a]) + KeyScore(top2[b])
// with index (slot id) KeyIndex(top1[a])·n_keys + KeyIndex(top2[b]), best first. top1 and top2
// are best-first top-k lists (TopKScores); sums and keys are scratch.
void TopKSums(const uint64_t* top1, const uint64_t* top2, int k, int n_keys,
              std::vector<float>& sums, std::vector<uint64_t>& keys, uint64_t* best);

}  // namespace pkm::cpu
