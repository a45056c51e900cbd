// RmsNorm: fast against the reference and both against RMSNorm in double, known values,
// aliasing, and batch and thread-count invariance.
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

// RMSNorm in double, written independently of the kernels: the yardstick for both.
std::vector<float> RmsNormDouble(const std::vector<float>& x, int n, int d,
                                 const std::vector<float>& gamma, double eps) {
  std::vector<float> y(x.size());
  for (int t = 0; t < n; ++t) {
    const float* xr = &x[static_cast<size_t>(t) * d];
    double ms = 0;
    for (int i = 0; i < d; ++i) ms += static_cast<double>(xr[i]) * xr[i];
    ms /= d;
    const double inv = 1.0 / std::sqrt(ms + eps);
    for (int i = 0; i < d; ++i) {
      y[static_cast<size_t>(t) * d + i] = static_cast<float>(xr[i] * inv * gamma[i]);
    }
  }
  return y;
}

class RmsNormParity : public ::testing::TestWithParam<NormCase> {};

TEST_P(RmsNormParity, MatchesReferenceAndDouble) {
  const auto [n, d] = GetParam();
  std::vector<float> x = RandomFloats(static_cast<size_t>(n) * d, 1, -2.0f, 2.0f);
  std::vector<float> gamma = RandomFloats(static_cast<size_t>(d), 2, 0.5f, 1.5f);
  std::vector<float> got(x.size()), want(x.size());
  RmsNorm(x.data(), n, d, gamma.data(), 1e-6f, got.data());
  ref::RmsNorm(x.data(), n, d, gamma.data(), 1e-6f, want.data());
  EXPECT_TRUE(AllClose(got.data(), want.data(), got.size(), 1e-6)) << "fast vs reference";
  const std::vector<float> exact = RmsNormDouble(x, n, d, gamma, 1e-6);
  EXPECT_TRUE(AllClose(want.data(), exact.data(), exact.size(), 1e-5)) << "reference";
  EXPECT_TRUE(AllClose(got.data(), exact.data(), exact.size(), 1e-5)) << "fast";

  // In place gives the same bits as out of place, for both.
  std::vector<float> in_place = x;
  RmsNorm(in_place.data(), n, d, gamma.data(), 1e-6f, in_place.data());
  EXPECT_TRUE(BitwiseEqual(in_place.data(), got.data(), x.size())) << "fast";
  in_place = x;
  ref::RmsNorm(in_place.data(), n, d, gamma.data(), 1e-6f, in_place.data());
  EXPECT_TRUE(BitwiseEqual(in_place.data(), want.data(), x.size())) << "reference";
}

INSTANTIATE_TEST_SUITE_P(OddSizes, RmsNormParity,
                         ::testing::Values(NormCase{1, 7}, NormCase{3, 256}, NormCase{17, 769},
                                           NormCase{64, 7}, NormCase{64, 769}, NormCase{5, 1},
                                           NormCase{2, 8}),
                         CaseName);

TEST(RmsNorm, KnownValues) {
  // x = [1, 2, 3, 4]: mean(x²) = 30/4 = 7.5; with eps = 0.5, denom = sqrt(8) = 2√2.
  const float x[] = {1, 2, 3, 4};
  const float gamma[] = {1, 1, 2, -1};
  float got[4], want[4];
  RmsNorm(x, 1, 4, gamma, 0.5f, got);
  ref::RmsNorm(x, 1, 4, gamma, 0.5f, want);
  const float s = 1.0f / (2.0f * std::sqrt(2.0f));
  const float expected[] = {1 * s, 2 * s, 2 * 3 * s, -4 * s};
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(got[i], expected[i], 1e-6f) << "fast, element " << i;
    EXPECT_NEAR(want[i], expected[i], 1e-6f) << "reference, element " << i;
  }
  // No mean is subtracted: a constant row normalises to ±1 (LayerNorm would give 0).
  const float constant[] = {-3, -3, -3};
  const float ones[] = {1, 1, 1};
  float y[3];
  RmsNorm(constant, 1, 3, ones, 0.0f, y);
  for (float v : y) EXPECT_EQ(v, -1.0f);
}

TEST(RmsNorm, RowDoesNotDependOnBatchOrThreads) {
  const int n = 128, d = 769;  // enough rows for the kernel to go parallel
  std::vector<float> x = RandomFloats(static_cast<size_t>(n) * d, 4);
  std::vector<float> gamma = RandomFloats(static_cast<size_t>(d), 5);
  std::vector<float> alone(x.size());
  for (int t = 0; t < n; ++t) {
    RmsNorm(x.data() + static_cast<size_t>(t) * d, 1, d, gamma.data(), 1e-5f,
            alone.data() + static_cast<size_t>(t) * d);
  }
  for (int threads : testing::kThreadCounts) {
    ScopedThreads scoped(threads);
    std::vector<float> batch(x.size());
    RmsNorm(x.data(), n, d, gamma.data(), 1e-5f, batch.data());
    EXPECT_TRUE(BitwiseEqual(batch.data(), alone.data(), batch.size())) << threads << " threads";
  }
}

}  // namespace
}  // namespace pkm::cpu
