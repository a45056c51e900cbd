// Per-token limits on a lookup (a request's memory_knn / memory_heads): a limited token is the
// lookup of the smaller shape, whatever the other tokens of the call read, and the slots it
// does not read are id -1, weight 0.
#include <string>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "tests/kernels/cpu/kernel_test_util.h"

namespace pkm::cpu {
namespace {

using testing::RandomFloats;

constexpr PkmShape kShape{.heads = 4, .knn = 8, .n_keys = 16, .k_dim = 16, .v_dim = 24};

struct Lookup {
  std::vector<float> out, weights;
  std::vector<int32_t> ids;
};

template <typename Kernel>
Lookup RunLookup(Kernel kernel, const PkmShape& s, const std::vector<float>& q, int n,
           const std::vector<float>& keys, const std::vector<float>& values,
           PkmTokenLimits limits) {
  Lookup r{std::vector<float>(static_cast<size_t>(n) * s.v_dim),
           std::vector<float>(static_cast<size_t>(n) * s.heads * s.knn),
           std::vector<int32_t>(static_cast<size_t>(n) * s.heads * s.knn)};
  kernel(s, q.data(), n, keys.data(), values.data(), r.out.data(), r.ids.data(),
         r.weights.data(), limits);
  return r;
}

TEST(PkmTokenLimits, ALimitedTokenIsTheLookupOfTheSmallerShape) {
  const int n = 6;
  const std::vector<float> q =
      RandomFloats(static_cast<size_t>(n) * kShape.heads * kShape.k_dim, 1);
  const std::vector<float> keys =
      RandomFloats(static_cast<size_t>(kShape.heads) * 2 * kShape.n_keys * kShape.k_dim / 2, 2);
  const std::vector<float> values =
      RandomFloats(static_cast<size_t>(kShape.n_keys) * kShape.n_keys * kShape.v_dim, 3);
  // Token limits mixed in one call: as trained, fewer slots, fewer heads, both, beyond (as
  // trained), one slot of one head.
  const std::vector<int32_t> knn = {0, 3, 0, 2, 100, 1}, heads = {0, 0, 2, 3, 0, 1};
  for (auto kernel : {PkmLookup, ref::PkmLookup}) {
    const Lookup all = RunLookup(kernel, kShape, q, n, keys, values, {knn.data(), heads.data()});
    for (int t = 0; t < n; ++t) {
      PkmShape small = kShape;
      small.knn = LimitedKnn(kShape, {knn.data(), heads.data()}, t);
      small.heads = LimitedHeads(kShape, {knn.data(), heads.data()}, t);
      // The token alone in the smaller shape: its first `heads` query heads and key tables
      // (both lay heads out first).
      const std::vector<float> qt(q.begin() + t * kShape.heads * kShape.k_dim,
                                  q.begin() + (t * kShape.heads + small.heads) * kShape.k_dim);
      const int key_floats = small.heads * 2 * kShape.n_keys * kShape.k_dim / 2;
      const std::vector<float> kt(keys.begin(), keys.begin() + key_floats);
      const Lookup alone = RunLookup(kernel, small, qt, 1, kt, values, {});
      for (int i = 0; i < kShape.v_dim; ++i) {
        ASSERT_EQ(all.out[t * kShape.v_dim + i], alone.out[i]) << "token " << t << " element " << i;
      }
      for (int h = 0; h < kShape.heads; ++h) {
        for (int j = 0; j < kShape.knn; ++j) {
          const size_t at = (static_cast<size_t>(t) * kShape.heads + h) * kShape.knn + j;
          const bool read = h < small.heads && j < small.knn;
          EXPECT_EQ(all.ids[at], read ? alone.ids[h * small.knn + j] : -1)
              << t << " " << h << " " << j;
          EXPECT_EQ(all.weights[at], read ? alone.weights[h * small.knn + j] : 0.0f);
        }
      }
    }
  }
}

}  // namespace
}  // namespace pkm::cpu
