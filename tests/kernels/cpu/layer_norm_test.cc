// LayerNorm: fast against the reference, aliasing, and batch and thread-count invariance.
#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "tests/kernels/cpu/kernel_test_util.h"

namespace pkm::cpu {
namespace {

using testing::AllClose;
using testing::BitwiseEqual;
using testing::RandomFloats;
using testing::ScopedThreads;

struct NormCase {
  int n, d;
};

std::string CaseName(const ::testing::TestParamInfo<NormCase>& info) {
  return testing::Format("n%d_d%d", info.param.n, info.param.d);
}

class LayerNormParity : public ::testing::TestWithParam<NormCase> {};

TEST_P(LayerNormParity, MatchesReference) {
  const auto [n, d] = GetParam();
  std::vector<float> x = RandomFloats(static_cast<size_t>(n) * d, 1, -2.0f, 2.0f);
  std::vector<float> gamma = RandomFloats(static_cast<size_t>(d), 2, 0.5f, 1.5f);
  std::vector<float> beta = RandomFloats(static_cast<size_t>(d), 3);
  std::vector<float> got(x.size()), want(x.size());
  LayerNorm(x.data(), n, d, gamma.data(), beta.data(), 1e-5f, got.data());
  ref::LayerNorm(x.data(), n, d, gamma.data(), beta.data(), 1e-5f, want.data());
  EXPECT_TRUE(AllClose(got.data(), want.data(), got.size(), 1e-6));

  // In place gives the same bits as out of place.
  LayerNorm(x.data(), n, d, gamma.data(), beta.data(), 1e-5f, x.data());
  EXPECT_TRUE(BitwiseEqual(x.data(), got.data(), x.size()));
}

INSTANTIATE_TEST_SUITE_P(OddSizes, LayerNormParity,
                         ::testing::Values(NormCase{1, 7}, NormCase{3, 256}, NormCase{17, 769},
                                           NormCase{64, 7}, NormCase{64, 769}, NormCase{5, 1},
                                           NormCase{2, 8}),
                         CaseName);

// LayerNorm in double, the yardstick when fp32 sums round visibly.
std::vector<float> LayerNormDouble(const std::vector<float>& x, int n, int d,
                                   const std::vector<float>& gamma, const std::vector<float>& beta,
                                   double eps) {
  std::vector<float> y(x.size());
  for (int t = 0; t < n; ++t) {
    const float* xr = &x[static_cast<size_t>(t) * d];
    double mean = 0, var = 0;
    for (int i = 0; i < d; ++i) mean += xr[i];
    mean /= d;
    for (int i = 0; i < d; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    var /= d;
    for (int i = 0; i < d; ++i) {
      y[static_cast<size_t>(t) * d + i] =
          static_cast<float>((xr[i] - mean) / std::sqrt(var + eps) * gamma[i] + beta[i]);
    }
  }
  return y;
}

// A mean far from zero relative to the spread: the fp32 sum of the mean rounds by about
// √d·ulp(Σx), which the normalisation magnifies by |mean|/std. Both versions (serial sum in
// the reference, 8 lanes in the fast one) stay within 1e-5 of the exact result.
TEST(LayerNorm, OffsetMean) {
  const int n = 17, d = 769;
  std::vector<float> x = RandomFloats(static_cast<size_t>(n) * d, 7, 2.0f, 5.0f);
  std::vector<float> gamma = RandomFloats(static_cast<size_t>(d), 8, 0.5f, 1.5f);
  std::vector<float> beta = RandomFloats(static_cast<size_t>(d), 9);
  std::vector<float> exact = LayerNormDouble(x, n, d, gamma, beta, 1e-5);
  std::vector<float> got(x.size()), want(x.size());
  LayerNorm(x.data(), n, d, gamma.data(), beta.data(), 1e-5f, got.data());
  ref::LayerNorm(x.data(), n, d, gamma.data(), beta.data(), 1e-5f, want.data());
  EXPECT_TRUE(AllClose(got.data(), exact.data(), got.size(), 1e-5)) << "fast";
  EXPECT_TRUE(AllClose(want.data(), exact.data(), want.size(), 1e-5)) << "reference";
}

TEST(LayerNorm, KnownValues) {
  // x = [1, 2, 3, 4]: mean 2.5, biased variance 1.25.
  const float x[] = {1, 2, 3, 4};
  const float gamma[] = {1, 1, 2, 1};
  const float beta[] = {0, 0, 0, 10};
  float y[4];
  LayerNorm(x, 1, 4, gamma, beta, 0.0f, y);
  const float s = 1.0f / std::sqrt(1.25f);
  EXPECT_NEAR(y[0], -1.5f * s, 1e-6f);
  EXPECT_NEAR(y[1], -0.5f * s, 1e-6f);
  EXPECT_NEAR(y[2], 2.0f * 0.5f * s, 1e-6f);
  EXPECT_NEAR(y[3], 1.5f * s + 10.0f, 1e-5f);
}

// Without beta (a LayerNorm with no bias): the reference's values with a zero bias, and the
// fast kernel the reference's, in place too.
TEST_P(LayerNormParity, WithoutBiasMatchesReference) {
  const auto [n, d] = GetParam();
  std::vector<float> x = RandomFloats(static_cast<size_t>(n) * d, 10, -2.0f, 2.0f);
  std::vector<float> gamma = RandomFloats(static_cast<size_t>(d), 11, 0.5f, 1.5f);
  const std::vector<float> zeros(static_cast<size_t>(d), 0.0f);
  std::vector<float> got(x.size()), want(x.size());
  LayerNorm(x.data(), n, d, gamma.data(), nullptr, 1e-5f, got.data());
  ref::LayerNorm(x.data(), n, d, gamma.data(), nullptr, 1e-5f, want.data());
  EXPECT_TRUE(AllClose(got.data(), want.data(), got.size(), 1e-6)) << "fast vs reference";
  std::vector<float> zero_bias(x.size());
  ref::LayerNorm(x.data(), n, d, gamma.data(), zeros.data(), 1e-5f, zero_bias.data());
  EXPECT_TRUE(AllClose(want.data(), zero_bias.data(), want.size(), 0.0)) << "reference";
  const std::vector<float> exact = LayerNormDouble(x, n, d, gamma, zeros, 1e-5);
  EXPECT_TRUE(AllClose(got.data(), exact.data(), exact.size(), 1e-5)) << "fast vs double";

  LayerNorm(x.data(), n, d, gamma.data(), nullptr, 1e-5f, x.data());
  EXPECT_TRUE(BitwiseEqual(x.data(), got.data(), x.size())) << "in place";
}

TEST(LayerNorm, WithoutBiasKnownValues) {
  // x = [1, 2, 3, 4]: mean 2.5, biased variance 1.25; −0 stays −0 (nothing is added to it).
  const float x[] = {1, 2, 3, 4};
  const float gamma[] = {1, 1, 2, -0.0f};
  float got[4], want[4];
  LayerNorm(x, 1, 4, gamma, nullptr, 0.0f, got);
  ref::LayerNorm(x, 1, 4, gamma, nullptr, 0.0f, want);
  const float s = 1.0f / std::sqrt(1.25f);
  const float expected[] = {-1.5f * s, -0.5f * s, 2.0f * 0.5f * s, -0.0f};
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(got[i], expected[i], 1e-6f) << "fast, element " << i;
    EXPECT_NEAR(want[i], expected[i], 1e-6f) << "reference, element " << i;
  }
  EXPECT_TRUE(std::signbit(got[3])) << "fast";
  EXPECT_TRUE(std::signbit(want[3])) << "reference";
}

TEST(LayerNorm, RowDoesNotDependOnBatchOrThreads) {
  const int n = 128, d = 769;  // enough rows for the kernel to go parallel
  std::vector<float> x = RandomFloats(static_cast<size_t>(n) * d, 4);
  std::vector<float> gamma = RandomFloats(static_cast<size_t>(d), 5);
  std::vector<float> beta = RandomFloats(static_cast<size_t>(d), 6);
  std::vector<float> alone(x.size());
  for (int t = 0; t < n; ++t) {
    LayerNorm(x.data() + static_cast<size_t>(t) * d, 1, d, gamma.data(), beta.data(), 1e-5f,
              alone.data() + static_cast<size_t>(t) * d);
  }
  for (int threads : testing::kThreadCounts) {
    ScopedThreads scoped(threads);
    std::vector<float> batch(x.size());
    LayerNorm(x.data(), n, d, gamma.data(), beta.data(), 1e-5f, batch.data());
    EXPECT_TRUE(BitwiseEqual(batch.data(), alone.data(), batch.size())) << threads << " threads";
  }
}

}  // namespace
}  // namespace pkm::cpu
