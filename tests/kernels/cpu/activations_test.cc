// The element-wise activations (Gelu, GeluTanh, Relu, SiluMul): the fast kernels are the
// reference's expressions, so they must give the same bits; the references against values
// computed here in double or by hand; aliasing, count and thread-count invariance.
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "tests/kernels/cpu/kernel_test_util.h"

namespace pkm::cpu {
namespace {

using testing::AllClose;
using testing::BitwiseEqual;
using testing::RandomFloats;
using testing::ScopedThreads;

// Large counts cross the thresholds where the kernels go parallel (Relu's is 1 Mi elements).
const auto kOddCounts =
    ::testing::Values(size_t{1}, size_t{7}, size_t{769}, size_t{64 * 769}, size_t{1400 * 769});

class GeluParity : public ::testing::TestWithParam<size_t> {};

TEST_P(GeluParity, SameBitsAsReference) {
  std::vector<float> got = RandomFloats(GetParam(), 1, -6.0f, 6.0f);
  std::vector<float> want = got;
  Gelu(got.data(), got.size());
  ref::Gelu(want.data(), want.size());
  EXPECT_TRUE(BitwiseEqual(got.data(), want.data(), got.size()));
}

INSTANTIATE_TEST_SUITE_P(OddSizes, GeluParity, kOddCounts);

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

class GeluTanhParity : public ::testing::TestWithParam<size_t> {};

TEST_P(GeluTanhParity, SameBitsAsReference) {
  std::vector<float> got = RandomFloats(GetParam(), 3, -8.0f, 8.0f);
  std::vector<float> want = got;
  GeluTanh(got.data(), got.size());
  ref::GeluTanh(want.data(), want.size());
  EXPECT_TRUE(BitwiseEqual(got.data(), want.data(), got.size()));
}

INSTANTIATE_TEST_SUITE_P(OddSizes, GeluTanhParity, kOddCounts);

// The formula in double: the reference within float rounding of it.
TEST(GeluTanh, MatchesTheFormulaInDouble) {
  std::vector<float> x = RandomFloats(769, 4, -8.0f, 8.0f);
  x.insert(x.end(), {0.0f, 1.0f, -1.0f, 40.0f, -40.0f, 1e-3f});
  std::vector<float> want(x.size());
  const double k = std::sqrt(2.0 / M_PI);
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = x[i];
    want[i] = static_cast<float>(0.5 * v * (1.0 + std::tanh(k * (v + 0.044715 * v * v * v))));
  }
  std::vector<float> got = x;
  ref::GeluTanh(got.data(), got.size());
  EXPECT_TRUE(AllClose(got.data(), want.data(), got.size(), 2e-7));
}

TEST(GeluTanh, KnownValues) {
  // 0.5·(1 + tanh(√(2/π)·1.044715)) = 0.841192 (PyTorch's gelu(1, approximate="tanh")); it
  // differs from the exact GELU's Φ(1) = 0.841345.
  float x[] = {0.0f, 1.0f, -1.0f, -40.0f, 40.0f};
  GeluTanh(x, 5);
  EXPECT_EQ(x[0], 0.0f);
  EXPECT_NEAR(x[1], 0.8411920f, 1e-6f);
  EXPECT_NEAR(x[2], -0.1588080f, 1e-6f);
  EXPECT_EQ(x[3], 0.0f);
  EXPECT_EQ(x[4], 40.0f);
}

TEST(GeluTanh, ElementDoesNotDependOnCountOrThreads) {
  std::vector<float> x = RandomFloats(64 * 769, 5, -8.0f, 8.0f);
  std::vector<float> alone = x;
  for (float& v : alone) GeluTanh(&v, 1);
  for (int threads : testing::kThreadCounts) {
    ScopedThreads scoped(threads);
    std::vector<float> batch = x;
    GeluTanh(batch.data(), batch.size());
    EXPECT_TRUE(BitwiseEqual(batch.data(), alone.data(), batch.size())) << threads << " threads";
  }
}

class ReluParity : public ::testing::TestWithParam<size_t> {};

TEST_P(ReluParity, SameBitsAsReferenceAndZeroBelowZero) {
  std::vector<float> x = RandomFloats(GetParam(), 6, -3.0f, 3.0f);
  std::vector<float> got = x, want = x;
  Relu(got.data(), got.size());
  ref::Relu(want.data(), want.size());
  EXPECT_TRUE(BitwiseEqual(got.data(), want.data(), got.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(want[i], x[i] > 0.0f ? x[i] : 0.0f) << "element " << i << " of " << x.size();
  }
}

INSTANTIATE_TEST_SUITE_P(OddSizes, ReluParity, kOddCounts);

TEST(Relu, SpecialValues) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  float x[] = {-1e-30f, -0.0f, 0.0f, 2.5f, -inf, inf, nan};
  float y[7];
  std::copy(x, x + 7, y);
  Relu(x, 7);
  ref::Relu(y, 7);
  EXPECT_TRUE(BitwiseEqual(x, y, 7));
  EXPECT_EQ(x[0], 0.0f);
  EXPECT_FALSE(std::signbit(x[0])) << "a negative becomes +0";
  EXPECT_TRUE(std::signbit(x[1])) << "−0 is not below 0 and stays";
  EXPECT_EQ(x[3], 2.5f);
  EXPECT_EQ(x[4], 0.0f);
  EXPECT_EQ(x[5], inf);
  EXPECT_TRUE(std::isnan(x[6])) << "NaN propagates, as in PyTorch";
}

TEST(Relu, ElementDoesNotDependOnCountOrThreads) {
  std::vector<float> x = RandomFloats(1400 * 769, 7, -3.0f, 3.0f);
  std::vector<float> alone = x;
  for (float& v : alone) Relu(&v, 1);
  for (int threads : testing::kThreadCounts) {
    ScopedThreads scoped(threads);
    std::vector<float> batch = x;
    Relu(batch.data(), batch.size());
    EXPECT_TRUE(BitwiseEqual(batch.data(), alone.data(), batch.size())) << threads << " threads";
  }
}

class SiluMulParity : public ::testing::TestWithParam<size_t> {};

TEST_P(SiluMulParity, SameBitsAsReferenceAlsoInPlace) {
  const std::vector<float> gate = RandomFloats(GetParam(), 8, -10.0f, 10.0f);
  const std::vector<float> up = RandomFloats(GetParam(), 9, -2.0f, 2.0f);
  std::vector<float> got(gate.size()), want(gate.size());
  SiluMul(gate.data(), up.data(), gate.size(), got.data());
  ref::SiluMul(gate.data(), up.data(), gate.size(), want.data());
  EXPECT_TRUE(BitwiseEqual(got.data(), want.data(), got.size()));
  // y aliasing gate, then up: the same bits.
  std::vector<float> in_gate = gate;
  SiluMul(in_gate.data(), up.data(), gate.size(), in_gate.data());
  EXPECT_TRUE(BitwiseEqual(in_gate.data(), want.data(), want.size())) << "y = gate";
  std::vector<float> in_up = up;
  SiluMul(gate.data(), in_up.data(), gate.size(), in_up.data());
  EXPECT_TRUE(BitwiseEqual(in_up.data(), want.data(), want.size())) << "y = up";
  in_gate = gate;
  ref::SiluMul(in_gate.data(), up.data(), gate.size(), in_gate.data());
  EXPECT_TRUE(BitwiseEqual(in_gate.data(), want.data(), want.size())) << "reference, y = gate";
}

INSTANTIATE_TEST_SUITE_P(OddSizes, SiluMulParity, kOddCounts);

// g·sigmoid(g)·u in double: the reference within float rounding of it.
TEST(SiluMul, MatchesSigmoidInDouble) {
  std::vector<float> gate = RandomFloats(769, 10, -20.0f, 20.0f);
  std::vector<float> up = RandomFloats(769, 11, -3.0f, 3.0f);
  gate.insert(gate.end(), {0.0f, 1.0f, -1.0f, 100.0f, -100.0f});
  up.insert(up.end(), {5.0f, 2.0f, 2.0f, 0.5f, 3.0f});
  std::vector<float> want(gate.size()), got(gate.size());
  for (size_t i = 0; i < gate.size(); ++i) {
    const double g = gate[i];
    want[i] = static_cast<float>(g * (1.0 / (1.0 + std::exp(-g))) * up[i]);
  }
  ref::SiluMul(gate.data(), up.data(), gate.size(), got.data());
  EXPECT_TRUE(AllClose(got.data(), want.data(), got.size(), 3e-7));
  EXPECT_EQ(got[769], 0.0f);                      // silu(0) = 0
  EXPECT_NEAR(got[770], 2 * 0.7310586f, 1e-6f);   // 2·sigmoid(1)
  EXPECT_NEAR(got[771], -2 * 0.2689414f, 1e-6f);  // 2·(−1)·sigmoid(−1)
  EXPECT_EQ(got[772], 50.0f);                     // silu(100) = 100 in float
  EXPECT_EQ(got[773], 0.0f);                      // silu(−100) underflows to (−)0
}

TEST(SiluMul, ElementDoesNotDependOnCountOrThreads) {
  const std::vector<float> gate = RandomFloats(64 * 769, 12, -10.0f, 10.0f);
  const std::vector<float> up = RandomFloats(64 * 769, 13);
  std::vector<float> alone(gate.size());
  for (size_t i = 0; i < gate.size(); ++i) SiluMul(&gate[i], &up[i], 1, &alone[i]);
  for (int threads : testing::kThreadCounts) {
    ScopedThreads scoped(threads);
    std::vector<float> batch(gate.size());
    SiluMul(gate.data(), up.data(), gate.size(), batch.data());
    EXPECT_TRUE(BitwiseEqual(batch.data(), alone.data(), batch.size())) << threads << " threads";
  }
}

}  // namespace
}  // namespace pkm::cpu
