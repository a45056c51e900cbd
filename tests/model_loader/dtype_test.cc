#include "model_loader/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "tests/model_loader/test_model_writer.h"

namespace pkm {
namespace {

TEST(HalfToFloatTest, KnownBitPatterns) {
  EXPECT_EQ(HalfToFloat(0x3C00), 1.0f);
  EXPECT_EQ(HalfToFloat(0xC000), -2.0f);
  EXPECT_EQ(HalfToFloat(0x7BFF), 65504.0f);               // largest finite
  EXPECT_EQ(HalfToFloat(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal, 5.96e-8
  EXPECT_FLOAT_EQ(HalfToFloat(0x0001), 5.9604645e-8f);
  EXPECT_EQ(HalfToFloat(0x03FF), 1023 * std::ldexp(1.0f, -24));  // largest subnormal
  EXPECT_EQ(HalfToFloat(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(HalfToFloat(0x3555), 0.333251953125f);
  EXPECT_EQ(HalfToFloat(0x0000), 0.0f);
  EXPECT_FALSE(std::signbit(HalfToFloat(0x0000)));
  EXPECT_TRUE(std::signbit(HalfToFloat(0x8000)));
  EXPECT_EQ(HalfToFloat(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(HalfToFloat(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7E00)));
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7C01)));  // signalling NaN stays NaN, not inf
}

// Every one of the 65536 patterns against the textbook formula, computed in double.
TEST(HalfToFloatTest, AllPatternsMatchTheFormula) {
  for (uint32_t bits = 0; bits <= 0xFFFF; ++bits) {
    const int sign = (bits & 0x8000) ? -1 : 1;
    const int exponent = static_cast<int>((bits >> 10) & 0x1F);
    const int mantissa = static_cast<int>(bits & 0x3FF);
    const float got = HalfToFloat(static_cast<uint16_t>(bits));
    if (exponent == 0x1F) {
      EXPECT_EQ(std::isnan(got), mantissa != 0) << std::hex << bits;
      if (mantissa == 0) {
        EXPECT_EQ(got, (sign > 0 ? 1.0f : -1.0f) * std::numeric_limits<float>::infinity());
      }
      continue;
    }
    const double want = exponent == 0 ? sign * std::ldexp(mantissa, -24)
                                      : sign * std::ldexp(1024 + mantissa, exponent - 25);
    ASSERT_EQ(static_cast<double>(got), want) << "bits 0x" << std::hex << bits;
  }
}

TEST(BFloat16ToFloatTest, KnownBitPatterns) {
  EXPECT_EQ(BFloat16ToFloat(0x3F80), 1.0f);
  EXPECT_EQ(BFloat16ToFloat(0xC000), -2.0f);
  EXPECT_EQ(BFloat16ToFloat(0x4049), 3.140625f);
  EXPECT_EQ(BFloat16ToFloat(0x0001), std::ldexp(1.0f, -133));  // subnormal
  EXPECT_EQ(BFloat16ToFloat(0x7F80), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(0x7FC0)));
}

TEST(DTypeTest, NamesAndSizes) {
  EXPECT_EQ(DTypeName(DType::kBF16), "BF16");
  EXPECT_EQ(DTypeFromName("F16"), DType::kF16);
  EXPECT_EQ(DTypeFromName("I32"), DType::kI32);
  EXPECT_EQ(DTypeFromName("F64"), std::nullopt);
  EXPECT_EQ(DTypeFromName("f16"), std::nullopt);  // names are case-sensitive
  EXPECT_EQ(DTypeConfigName(DType::kF32), "float32");
  EXPECT_EQ(DTypeFromConfigName("bfloat16"), DType::kBF16);
  EXPECT_EQ(DTypeFromConfigName("float64"), std::nullopt);
  EXPECT_EQ(DTypeFromConfigName(""), std::nullopt);  // integer types have no config name
  EXPECT_EQ(DTypeSize(DType::kF32), 4u);
  EXPECT_EQ(DTypeSize(DType::kF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kI32), 4u);
  EXPECT_EQ(DTypeSize(DType::kI64), 8u);
  EXPECT_TRUE(IsFloatDType(DType::kBF16));
  EXPECT_FALSE(IsFloatDType(DType::kI64));
  EXPECT_EQ(ShapeToString(std::vector<int64_t>{4, 2, 128, 64}), "[4,2,128,64]");
  EXPECT_EQ(ShapeToString(std::vector<int64_t>{}), "[]");
}

// Tensor data in a safetensors file need not be aligned.
TEST(ConvertToFloat32Test, ReadsUnalignedHalves) {
  const uint16_t halves[] = {0x3C00, 0xC000, 0x0001, 0x7BFF};
  std::vector<std::byte> buf(1 + sizeof(halves));
  std::memcpy(buf.data() + 1, halves, sizeof(halves));
  float out[4];
  ConvertToFloat32(DType::kF16, buf.data() + 1, 4, out);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_EQ(out[2], std::ldexp(1.0f, -24));
  EXPECT_EQ(out[3], 65504.0f);
}

TEST(ToFloat32Test, ConvertsEveryDTypeFromAView) {
  const float f32[] = {1.5f, -0.25f};
  const uint16_t bf16[] = {0x3F80, 0xC000};
  const int32_t i32[] = {7, -3};
  const int64_t i64[] = {int64_t{1} << 40, -5};
  auto view = [](DType dtype, const void* p, size_t bytes) {
    return TensorView{"t", dtype, {2}, static_cast<const std::byte*>(p), bytes};
  };
  EXPECT_EQ(ToFloat32(view(DType::kF32, f32, sizeof(f32))), (std::vector<float>{1.5f, -0.25f}));
  EXPECT_EQ(ToFloat32(view(DType::kBF16, bf16, sizeof(bf16))), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(ToFloat32(view(DType::kI32, i32, sizeof(i32))), (std::vector<float>{7.0f, -3.0f}));
  EXPECT_EQ(ToInt64(view(DType::kI32, i32, sizeof(i32))), (std::vector<int64_t>{7, -3}));
  EXPECT_EQ(ToInt64(view(DType::kI64, i64, sizeof(i64))),
            (std::vector<int64_t>{int64_t{1} << 40, -5}));
  EXPECT_EQ(view(DType::kI64, i64, sizeof(i64)).numel(), 2u);
}

TEST(ToFloat32Test, EmptyTensorIsFine) {
  TensorView empty{"e", DType::kF16, {0}, nullptr, 0};
  EXPECT_TRUE(ToFloat32(empty).empty());
}

// The test writer's encoders must invert the decoders, or every loader test would be suspect.
TEST(TestWriterEncodingTest, FloatToHalfInvertsHalfToFloat) {
  for (uint32_t bits = 0; bits <= 0xFFFF; ++bits) {
    const float f = HalfToFloat(static_cast<uint16_t>(bits));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(HalfToFloat(testing::FloatToHalf(f))));
      continue;
    }
    ASSERT_EQ(testing::FloatToHalf(f), bits) << std::hex << bits;
  }
  EXPECT_EQ(testing::FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie -> even
  EXPECT_EQ(testing::FloatToHalf(65520.0f), 0x7C00);                      // overflow -> inf
  EXPECT_EQ(testing::FloatToBFloat16(1.0f), 0x3F80);
  EXPECT_EQ(testing::FloatToBFloat16(BFloat16ToFloat(0x4049)), 0x4049);
}

}  // namespace
}  // namespace pkm
