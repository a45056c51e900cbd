// Gelu: the fast kernel is the reference's expression, so it must give the same bits.
#include <cmath>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "tests/kernels/cpu/kernel_test_util.h"

namespace pkm::cpu {
namespace {

using testing::BitwiseEqual;
using testing::RandomFloats;
using testing::ScopedThreads;

class GeluParity : public ::testing::TestWithParam<size_t> {};

TEST_P(GeluParity, SameBitsAsReference) {
  std::vector<float> got = RandomFloats(GetParam(), 1, -6.0f, 6.0f);
  std::vector<float> want = got;
  Gelu(got.data(), got.size());
  ref::Gelu(want.data(), want.size());
  EXPECT_TRUE(BitwiseEqual(got.data(), want.data(), got.size()));
}

// Large counts cross the threshold where the kernel goes parallel.
INSTANTIATE_TEST_SUITE_P(OddSizes, GeluParity,
                         ::testing::Values(size_t{1}, size_t{7}, size_t{769}, size_t{64 * 769}));

TEST(Gelu, KnownValues) {
  float x[] = {0.0f, 1.0f, -1.0f, 3.0f, -40.0f, 40.0f};
  Gelu(x, 6);
  EXPECT_EQ(x[0], 0.0f);
  EXPECT_NEAR(x[1], 0.8413447f, 1e-6f);   // Φ(1)
  EXPECT_NEAR(x[2], -0.1586553f, 1e-6f);  // −(1 − Φ(1))
  EXPECT_NEAR(x[3], 2.9959502f, 1e-6f);
  EXPECT_EQ(x[4], 0.0f);
  EXPECT_EQ(x[5], 40.0f);
}

TEST(Gelu, ElementDoesNotDependOnCountOrThreads) {
  std::vector<float> x = RandomFloats(64 * 769, 2, -6.0f, 6.0f);
  std::vector<float> alone = x;
  for (float& v : alone) Gelu(&v, 1);
  for (int threads : testing::kThreadCounts) {
    ScopedThreads scoped(threads);
    std::vector<float> batch = x;
    Gelu(batch.data(), batch.size());
    EXPECT_TRUE(BitwiseEqual(batch.data(), alone.data(), batch.size())) << threads << " threads";
  }
}

}  // namespace
}  // namespace pkm::cpu
