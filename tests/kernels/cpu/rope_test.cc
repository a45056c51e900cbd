// Rope: same bits as the reference, known rotations, batch and thread-count invariance.
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "tests/kernels/cpu/kernel_test_util.h"

namespace pkm::cpu {
namespace {

using testing::BitwiseEqual;
using testing::RandomFloats;
using testing::ScopedThreads;

std::vector<int32_t> RandomPositions(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, 8191);
  std::vector<int32_t> p(static_cast<size_t>(n));
  for (int32_t& v : p) v = dist(rng);
  return p;
}

struct RopeCase {
  int n, heads, head_dim;
};

std::string CaseName(const ::testing::TestParamInfo<RopeCase>& info) {
  const RopeCase& c = info.param;
  return testing::Format("n%d_heads%d_hd%d", c.n, c.heads, c.head_dim);
}

class RopeParity : public ::testing::TestWithParam<RopeCase> {};

// The fast kernel only hoists cos/sin out of the head loop: identical arithmetic.
TEST_P(RopeParity, SameBitsAsReference) {
  const auto [n, heads, hd] = GetParam();
  std::vector<float> got = RandomFloats(static_cast<size_t>(n) * heads * hd, 1);
  std::vector<float> want = got;
  std::vector<int32_t> pos = RandomPositions(n, 2);
  Rope(got.data(), n, heads, hd, pos.data(), 10000.0f);
  ref::Rope(want.data(), n, heads, hd, pos.data(), 10000.0f);
  EXPECT_TRUE(BitwiseEqual(got.data(), want.data(), got.size()));
}

INSTANTIATE_TEST_SUITE_P(OddSizes, RopeParity,
                         ::testing::Values(RopeCase{1, 1, 2}, RopeCase{3, 4, 64},
                                           RopeCase{17, 3, 10}, RopeCase{64, 2, 256},
                                           RopeCase{64, 4, 64}),
                         CaseName);

TEST(Rope, PositionZeroIsIdentity) {
  std::vector<float> x = RandomFloats(2 * 8, 3);
  std::vector<float> y = x;
  const int32_t pos[] = {0};
  Rope(y.data(), 1, 2, 8, pos, 10000.0f);
  EXPECT_TRUE(BitwiseEqual(y.data(), x.data(), x.size()));
}

TEST(Rope, RotatesPairsByPositionTimesFrequency) {
  // head_dim 4, theta 100: pair (0, 2) turns by pos·1, pair (1, 3) by pos·100^(−1/2) = pos/10.
  float x[] = {1.0f, 1.0f, 0.0f, 0.0f};
  const int32_t pos[] = {3};
  Rope(x, 1, 1, 4, pos, 100.0f);
  EXPECT_FLOAT_EQ(x[0], static_cast<float>(std::cos(3.0)));
  EXPECT_FLOAT_EQ(x[2], static_cast<float>(std::sin(3.0)));
  EXPECT_FLOAT_EQ(x[1], static_cast<float>(std::cos(0.3)));
  EXPECT_FLOAT_EQ(x[3], static_cast<float>(std::sin(0.3)));
}

TEST(Rope, RowDoesNotDependOnBatchOrThreads) {
  const int n = 128, heads = 4, hd = 64;  // enough rows for the kernel to go parallel
  const size_t row = static_cast<size_t>(heads) * hd;
  std::vector<float> x = RandomFloats(n * row, 4);
  std::vector<int32_t> pos = RandomPositions(n, 5);
  std::vector<float> alone = x;
  for (int t = 0; t < n; ++t) Rope(alone.data() + t * row, 1, heads, hd, &pos[t], 10000.0f);
  for (int threads : testing::kThreadCounts) {
    ScopedThreads scoped(threads);
    std::vector<float> batch = x;
    Rope(batch.data(), n, heads, hd, pos.data(), 10000.0f);
    EXPECT_TRUE(BitwiseEqual(batch.data(), alone.data(), batch.size())) << threads << " threads";
  }
}

}  // namespace
}  // namespace pkm::cpu
