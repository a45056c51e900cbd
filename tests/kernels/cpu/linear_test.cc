// Linear: the fast kernel against the reference, and its batch and thread-count invariance.
#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "tests/kernels/cpu/kernel_test_util.h"

namespace pkm::cpu {
namespace {

using testing::BitwiseEqual;
using testing::RandomFloats;
using testing::ScopedThreads;

struct LinearCase {
  int n, in, out;
  bool bias;
};

std::string CaseName(const ::testing::TestParamInfo<LinearCase>& info) {
  const LinearCase& c = info.param;
  return testing::Format("n%d_in%d_out%d%s", c.n, c.in, c.out, c.bias ? "_bias" : "");
}

std::vector<LinearCase> OddSizes() {
  std::vector<LinearCase> cases;
  for (int n : {1, 3, 17, 64}) {
    for (int in : {7, 256, 769}) {
      for (int out : {1, 13, 100}) cases.push_back({n, in, out, out != 13});
    }
  }
  return cases;
}

class LinearParity : public ::testing::TestWithParam<LinearCase> {};

// Error bound: relative to Σ|x·w| + |b| (the sum without cancellation), computed by the
// reference on absolute values: a rounding error of the fp32 sum is a fraction of that.
TEST_P(LinearParity, MatchesReference) {
  const LinearCase& c = GetParam();
  std::vector<float> x = RandomFloats(static_cast<size_t>(c.n) * c.in, 1);
  std::vector<float> w = RandomFloats(static_cast<size_t>(c.out) * c.in, 2);
  std::vector<float> b = RandomFloats(static_cast<size_t>(c.out), 3);
  const float* bias = c.bias ? b.data() : nullptr;
  std::vector<float> got(static_cast<size_t>(c.n) * c.out), want(got.size()), scale(got.size());
  Linear(x.data(), c.n, c.in, w.data(), bias, c.out, got.data());
  ref::Linear(x.data(), c.n, c.in, w.data(), bias, c.out, want.data());

  for (float& v : x) v = std::abs(v);
  for (float& v : w) v = std::abs(v);
  for (float& v : b) v = std::abs(v);
  ref::Linear(x.data(), c.n, c.in, w.data(), bias, c.out, scale.data());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_LE(std::abs(got[i] - want[i]), 1e-5 * scale[i])
        << "element " << i << ": " << got[i] << " vs reference " << want[i];
  }
}

INSTANTIATE_TEST_SUITE_P(OddSizes, LinearParity, ::testing::ValuesIn(OddSizes()), CaseName);

// The shapes of the bundled model's projections, FFN and LM head (d 256, d_ff 1024, vocab 8000).
struct Shape {
  int in, out;
};

std::string ShapeName(const ::testing::TestParamInfo<Shape>& info) {
  return testing::Format("in%d_out%d", info.param.in, info.param.out);
}

class LinearBatchInvariance : public ::testing::TestWithParam<Shape> {};

// Row i of an n-token call is bitwise row i of a one-token call, for n = 37 and 256 and any
// thread count. OpenBLAS's sgemm fails this (bench/cpu/linear_bench.cc shows it).
TEST_P(LinearBatchInvariance, RowDoesNotDependOnBatch) {
  const Shape s = GetParam();
  const int max_n = 256;
  std::vector<float> x = RandomFloats(static_cast<size_t>(max_n) * s.in, 4);
  std::vector<float> w = RandomFloats(static_cast<size_t>(s.out) * s.in, 5);
  std::vector<float> b = RandomFloats(static_cast<size_t>(s.out), 6);

  std::vector<float> alone(static_cast<size_t>(max_n) * s.out);
  for (int i = 0; i < max_n; ++i) {
    Linear(x.data() + static_cast<size_t>(i) * s.in, 1, s.in, w.data(), b.data(), s.out,
           alone.data() + static_cast<size_t>(i) * s.out);
  }
  for (int threads : testing::kThreadCounts) {
    ScopedThreads scoped(threads);
    for (int n : {37, max_n}) {
      std::vector<float> batch(static_cast<size_t>(n) * s.out);
      Linear(x.data(), n, s.in, w.data(), b.data(), s.out, batch.data());
      EXPECT_TRUE(BitwiseEqual(batch.data(), alone.data(), batch.size()))
          << "n " << n << ", " << threads << " threads";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(ModelShapes, LinearBatchInvariance,
                         ::testing::Values(Shape{256, 1024}, Shape{1024, 256}, Shape{256, 8000},
                                           Shape{769, 13}),
                         ShapeName);

TEST(Linear, ExactOnSmallIntegers) {
  // [[1, 2, 3]] · [[1, 0, -1], [2, 2, 2]]ᵀ + [10, 20] = [[8, 32]]
  const float x[] = {1, 2, 3};
  const float w[] = {1, 0, -1, 2, 2, 2};
  const float b[] = {10, 20};
  float y[2];
  Linear(x, 1, 3, w, b, 2, y);
  EXPECT_EQ(y[0], 8.0f);
  EXPECT_EQ(y[1], 32.0f);
  Linear(x, 1, 3, w, nullptr, 2, y);
  EXPECT_EQ(y[0], -2.0f);
  EXPECT_EQ(y[1], 12.0f);
}

}  // namespace
}  // namespace pkm::cpu
