// The load-time conversions: fp16 and bf16 round to nearest even (checked against the exact
// neighbours), and int8 rows reproduce their row within half a step of its scale.
#include "engine/weight_conversion.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/weight_matrix.h"

namespace pkm {
namespace {

std::vector<float> Samples() {
  std::mt19937 rng(7);
  std::vector<float> v = {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 65519.0f, 65520.0f, 1e-8f,
                          5.96e-8f, 2.98e-8f, 6.1e-5f, 1e-3f, 3.0e38f};
  for (int i = 0; i < 200000; ++i) {
    uint32_t bits = static_cast<uint32_t>(rng());
    float f;
    std::memcpy(&f, &bits, sizeof f);
    if (std::isfinite(f) && std::abs(f) < 1e6f && std::abs(f) > 1e-9f) v.push_back(f);
    v.push_back(std::ldexp(static_cast<float>(rng() % 100000) / 100000.0f, -int(rng() % 30)));
  }
  return v;
}

// `h` is the nearest of the encodings, ties to the even one.
template <typename Widen>
void ExpectNearestEven(float f, uint16_t h, Widen widen) {
  const double x = f, got = widen(h);
  for (int step : {-1, 1}) {
    const uint16_t other = static_cast<uint16_t>(h + step);
    const double alt = widen(other);
    if (!std::isfinite(alt) || std::signbit(alt) != std::signbit(got)) continue;
    const double d = std::abs(got - x), da = std::abs(alt - x);
    ASSERT_TRUE(d < da || (d == da && (h & 1) == 0))
        << f << " -> " << got << " but " << alt << " is nearer (or the even tie)";
  }
}

TEST(WeightConversion, HalfRoundsToNearestEven) {
  for (float f : Samples()) {
    const uint16_t h = FloatToHalf(f);
    if (std::abs(f) >= 65520.0f) {
      EXPECT_TRUE(std::isinf(HalfToFloat(h))) << f;
      continue;
    }
    ExpectNearestEven(f, h, HalfToFloat);
  }
  EXPECT_EQ(FloatToHalf(65519.0f), 0x7BFF);  // the largest finite half
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(std::nanf("")))));
  for (uint32_t h = 0; h < 0x7C00; ++h) {  // every finite half survives the round trip
    ASSERT_EQ(FloatToHalf(HalfToFloat(static_cast<uint16_t>(h))), h);
  }
}

TEST(WeightConversion, Bf16RoundsToNearestEven) {
  for (float f : Samples()) ExpectNearestEven(f, FloatToBf16(f), Bf16ToFloat);
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(std::nanf("")))));
}

TEST(WeightConversion, Int8RowsAreWithinHalfAStepOfTheirRow) {
  const size_t rows = 5, cols = 300;
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> w(rows * cols);
  for (float& x : w) x = dist(rng);
  for (size_t c = 0; c < cols; ++c) w[2 * cols + c] = 0.0f;  // an all-zero row
  w[3 * cols + 7] = -40.0f;                                    // an outlier sets its row's scale
  const Int8Rows q = QuantizeRowsInt8(w.data(), rows, cols);
  EXPECT_EQ(q.scales[2], 0.0f);
  EXPECT_FLOAT_EQ(q.scales[3], 40.0f / 127.0f);
  EXPECT_EQ(q.q[3 * cols + 7], -127);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) {
      const float back = static_cast<float>(q.q[r * cols + c]) * q.scales[r];
      ASSERT_LE(std::abs(back - w[r * cols + c]), 0.5f * q.scales[r] * 1.0001f) << r << "," << c;
    }
  }
}

}  // namespace
}  // namespace pkm
