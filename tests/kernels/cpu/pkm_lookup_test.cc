// PkmLookup: the reference against a brute-force scan of all n_keys² slots (which proves the
// product-key shortcut), the fast path against the reference (ties, edge shapes, the bundled
// model's shape), hand-made cases, and batch and thread-count invariance.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "tests/kernels/cpu/kernel_test_util.h"

namespace pkm::cpu {
namespace {

using testing::AllClose;
using testing::BitwiseEqual;
using testing::RandomFloats;
using testing::RandomIntegers;
using testing::ScopedThreads;

struct PkmCase {
  PkmShape s;
  int n;
  const char* name;
};

struct PkmInputs {
  PkmShape s;
  int n;
  std::vector<float> q;       // [n, heads, k_dim]
  std::vector<float> keys;    // [heads, 2, n_keys, k_dim/2]
  std::vector<float> values;  // [n_keys², v_dim]
};

// integer_scores: queries in [−2, 2] and keys in [−1, 1], integers, so that many scores are
// exactly equal and only the tie rule decides.
PkmInputs MakeInputs(const PkmCase& c, uint32_t seed, bool integer_scores) {
  const PkmShape& s = c.s;
  const size_t q_count = static_cast<size_t>(c.n) * s.heads * s.k_dim;
  const size_t key_count = static_cast<size_t>(s.heads) * s.n_keys * s.k_dim;
  PkmInputs in{s, c.n, {}, {}, {}};
  in.q = integer_scores ? RandomIntegers(q_count, seed, -2, 2) : RandomFloats(q_count, seed);
  in.keys = integer_scores ? RandomIntegers(key_count, seed + 1, -1, 1)
                           : RandomFloats(key_count, seed + 1);
  in.values = RandomFloats(static_cast<size_t>(s.n_keys) * s.n_keys * s.v_dim, seed + 2);
  return in;
}

struct PkmOutputs {
  std::vector<float> out;      // [n, v_dim]
  std::vector<int32_t> ids;    // [n, heads, knn]
  std::vector<float> weights;  // [n, heads, knn]
};

template <typename Kernel>
PkmOutputs RunLookup(Kernel kernel, const PkmInputs& in) {
  const size_t picks = static_cast<size_t>(in.n) * in.s.heads * in.s.knn;
  PkmOutputs r{std::vector<float>(static_cast<size_t>(in.n) * in.s.v_dim),
               std::vector<int32_t>(picks), std::vector<float>(picks)};
  kernel(in.s, in.q.data(), in.n, in.keys.data(), in.values.data(), r.out.data(), r.ids.data(),
         r.weights.data(), PkmTokenLimits{});
  return r;
}

// Sub-key score of token t, head h, half c, sub-key i, in the reference's arithmetic.
float SubScore(const PkmInputs& in, int t, int h, int c, int i) {
  const int half = in.s.k_dim / 2;
  const float* q = &in.q[(static_cast<size_t>(t) * in.s.heads + h) * in.s.k_dim + c * half];
  const float* k = &in.keys[((static_cast<size_t>(h) * 2 + c) * in.s.n_keys + i) * half];
  float dot = 0.0f;
  for (int j = 0; j < half; ++j) dot += k[j] * q[j];
  return dot;
}

float SlotScore(const PkmInputs& in, int t, int h, int32_t slot) {
  return SubScore(in, t, h, 0, slot / in.s.n_keys) + SubScore(in, t, h, 1, slot % in.s.n_keys);
}

// The naive memory: scores every slot s1[i] + s2[j], takes the top-k by (score desc, slot id
// asc), softmax, sums the values (tests/training/test_pkm.py's naive_memory).
PkmOutputs BruteForce(const PkmInputs& in) {
  const PkmShape& s = in.s;
  PkmOutputs r{std::vector<float>(static_cast<size_t>(in.n) * s.v_dim, 0.0f), {}, {}};
  for (int t = 0; t < in.n; ++t) {
    for (int h = 0; h < s.heads; ++h) {
      std::vector<std::pair<float, int32_t>> slots;
      for (int32_t slot = 0; slot < s.n_keys * s.n_keys; ++slot) {
        slots.emplace_back(SlotScore(in, t, h, slot), slot);
      }
      std::sort(slots.begin(), slots.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first > b.first : a.second < b.second;
      });
      double denom = 0;
      for (int j = 0; j < s.knn; ++j)
        denom += std::exp(static_cast<double>(slots[j].first - slots[0].first));
      for (int j = 0; j < s.knn; ++j) {
        const float w = static_cast<float>(
            std::exp(static_cast<double>(slots[j].first - slots[0].first)) / denom);
        r.ids.push_back(slots[j].second);
        r.weights.push_back(w);
        for (int i = 0; i < s.v_dim; ++i) {
          r.out[static_cast<size_t>(t) * s.v_dim + i] +=
              w * in.values[static_cast<size_t>(slots[j].second) * s.v_dim + i];
        }
      }
    }
  }
  return r;
}

// No slot read twice by one head.
void ExpectDistinctIds(const PkmInputs& in, const PkmOutputs& r) {
  for (int row = 0; row < in.n * in.s.heads; ++row) {
    auto first = r.ids.begin() + static_cast<ptrdiff_t>(row) * in.s.knn;
    std::set<int32_t> distinct(first, first + in.s.knn);
    EXPECT_EQ(distinct.size(), static_cast<size_t>(in.s.knn)) << "token·head row " << row;
  }
}

std::vector<PkmCase> Shapes() {
  return {
      {{4, 32, 128, 128, 256}, 17, "bundled_model"},
      {{4, 32, 128, 128, 256}, 1, "bundled_model_n1"},
      {{3, 5, 11, 10, 24}, 17, "odd"},
      {{1, 7, 13, 4, 33}, 64, "one_head"},
      {{2, 1, 9, 6, 8}, 5, "knn1"},
      {{2, 6, 6, 8, 16}, 3, "knn_eq_n_keys"},
      {{4, 32, 32, 16, 24}, 3, "knn_eq_n_keys_32"},
      {{1, 1, 1, 2, 3}, 2, "one_key"},
      // Large enough that fewer tokens than threads split one token over the threads (its
      // heads, then its bag's columns: v_dim 44 ends in a partial chunk of 8).
      {{4, 8, 256, 256, 44}, 5, "split_token"},
  };
}

std::string CaseName(const ::testing::TestParamInfo<PkmCase>& info) { return info.param.name; }

class PkmLookupTest : public ::testing::TestWithParam<PkmCase> {};

// The product-key shortcut selects exactly the top-k of all n_keys² slots.
TEST_P(PkmLookupTest, ReferenceEqualsBruteForceScan) {
  for (bool integer_scores : {false, true}) {
    PkmInputs in = MakeInputs(GetParam(), 1, integer_scores);
    PkmOutputs want = BruteForce(in);
    PkmOutputs got = RunLookup(ref::PkmLookup, in);
    EXPECT_EQ(got.ids, want.ids) << (integer_scores ? "integer scores" : "random scores");
    EXPECT_TRUE(AllClose(got.weights.data(), want.weights.data(), want.weights.size(), 1e-5));
    EXPECT_TRUE(AllClose(got.out.data(), want.out.data(), want.out.size(), 1e-5));
  }
}

// Random scores: the fast sub-key dot products may round differently, so a near-tie may pick
// or order slots differently. Compare the selected scores (recomputed in the reference's
// arithmetic) within a tolerance rather than the ids; ids must still be distinct.
TEST_P(PkmLookupTest, FastMatchesReference) {
  PkmInputs in = MakeInputs(GetParam(), 2, false);
  PkmOutputs fast = RunLookup(PkmLookup, in);
  PkmOutputs reference = RunLookup(ref::PkmLookup, in);
  ExpectDistinctIds(in, fast);
  const int k = in.s.knn;
  for (int t = 0; t < in.n; ++t) {
    for (int h = 0; h < in.s.heads; ++h) {
      const size_t row = (static_cast<size_t>(t) * in.s.heads + h) * k;
      for (int j = 0; j < k; ++j) {
        EXPECT_NEAR(SlotScore(in, t, h, fast.ids[row + j]),
                    SlotScore(in, t, h, reference.ids[row + j]), 1e-5)
            << "token " << t << " head " << h << " pick " << j;
      }
    }
  }
  EXPECT_TRUE(
      AllClose(fast.weights.data(), reference.weights.data(), reference.weights.size(), 1e-5));
  EXPECT_TRUE(AllClose(fast.out.data(), reference.out.data(), reference.out.size(), 1e-5));
}

// Integer scores are exact in any order of summation: only the tie rule decides, and the fast
// path must make exactly the reference's choices.
TEST_P(PkmLookupTest, FastEqualsReferenceOnTies) {
  PkmInputs in = MakeInputs(GetParam(), 3, true);
  PkmOutputs fast = RunLookup(PkmLookup, in);
  PkmOutputs reference = RunLookup(ref::PkmLookup, in);
  EXPECT_EQ(fast.ids, reference.ids);
  EXPECT_TRUE(
      BitwiseEqual(fast.weights.data(), reference.weights.data(), reference.weights.size()));
  EXPECT_TRUE(AllClose(fast.out.data(), reference.out.data(), reference.out.size(), 1e-6));
  ExpectDistinctIds(in, fast);
}

TEST_P(PkmLookupTest, TokenDoesNotDependOnBatchOrThreads) {
  PkmInputs in = MakeInputs(GetParam(), 4, false);
  PkmOutputs alone;
  ScopedThreads two(2);  // one token on two threads: split_token's other path
  for (int t = 0; t < in.n; ++t) {
    PkmInputs one = in;
    one.n = 1;
    const size_t q_row = static_cast<size_t>(in.s.heads) * in.s.k_dim;
    one.q.assign(in.q.begin() + t * q_row, in.q.begin() + (t + 1) * q_row);
    PkmOutputs r = RunLookup(PkmLookup, one);
    alone.out.insert(alone.out.end(), r.out.begin(), r.out.end());
    alone.ids.insert(alone.ids.end(), r.ids.begin(), r.ids.end());
    alone.weights.insert(alone.weights.end(), r.weights.begin(), r.weights.end());
  }
  for (int threads : testing::kThreadCounts) {
    ScopedThreads scoped(threads);
    PkmOutputs batch = RunLookup(PkmLookup, in);
    EXPECT_TRUE(BitwiseEqual(batch.out.data(), alone.out.data(), alone.out.size())) << threads;
    EXPECT_EQ(batch.ids, alone.ids) << threads << " threads";
    EXPECT_TRUE(BitwiseEqual(batch.weights.data(), alone.weights.data(), alone.weights.size()));
  }
}

TEST_P(PkmLookupTest, IdsAndWeightsAreOptional) {
  PkmInputs in = MakeInputs(GetParam(), 5, false);
  PkmOutputs full = RunLookup(PkmLookup, in);
  std::vector<float> out(full.out.size());
  PkmLookup(in.s, in.q.data(), in.n, in.keys.data(), in.values.data(), out.data(), nullptr,
            nullptr);
  EXPECT_TRUE(BitwiseEqual(out.data(), full.out.data(), out.size()));
}

INSTANTIATE_TEST_SUITE_P(Shapes, PkmLookupTest, ::testing::ValuesIn(Shapes()), CaseName);

// One head, two sub-keys per half, k_dim 2 (one float per half), query (1, 1):
//   s1 = [1, 2], s2 = [3, 0] -> candidates: slot 2 (i1 1, i2 0) = 5, slot 0 = 4, slot 3 = 2, ...
TEST(PkmLookup, HandComputedAnswer) {
  const PkmShape s{1, 2, 2, 2, 2};
  const float q[] = {1, 1};
  const float keys[] = {1, 2, 3, 0};                   // [1, 2, 2, 1]
  const float values[] = {1, 0, 0, 1, 10, 10, 20, 0};  // slot i: row i
  for (auto kernel : {PkmLookup, ref::PkmLookup}) {
    float out[2];
    int32_t ids[2];
    float weights[2];
    kernel(s, q, 1, keys, values, out, ids, weights, PkmTokenLimits{});
    EXPECT_EQ(ids[0], 2);
    EXPECT_EQ(ids[1], 0);
    const float w0 = 1.0f / (1.0f + std::exp(-1.0f));
    EXPECT_NEAR(weights[0], w0, 1e-7);
    EXPECT_NEAR(weights[1], 1.0f - w0, 1e-7);
    EXPECT_NEAR(out[0], w0 * 10 + (1 - w0) * 1, 1e-6);
    EXPECT_NEAR(out[1], w0 * 10, 1e-6);
  }
}

// Rounding can make s1[a] + s2[b] equal for different s1: with s1 = [0, 1e-8] and s2 = [1, 0.5],
// slots 0 (0 + 1) and 2 (1e-8 + 1) both score 1.0f, and the tie rule wants slot 0 first, though
// its sub-key comes second in its half. The fast path's pruning must not lose it.
TEST(PkmLookup, RoundingTiesFollowSlotIds) {
  const PkmShape s{1, 2, 2, 2, 1};
  const float q[] = {1, 1};
  const float keys[] = {0.0f, 1e-8f, 1.0f, 0.5f};
  const float values[] = {1, 2, 3, 4};
  for (auto kernel : {PkmLookup, ref::PkmLookup}) {
    float out[1];
    int32_t ids[2];
    float weights[2];
    kernel(s, q, 1, keys, values, out, ids, weights, PkmTokenLimits{});
    EXPECT_EQ(ids[0], 0);
    EXPECT_EQ(ids[1], 2);
    EXPECT_EQ(weights[0], 0.5f);
    EXPECT_EQ(out[0], 2.0f);
  }
}

}  // namespace
}  // namespace pkm::cpu
