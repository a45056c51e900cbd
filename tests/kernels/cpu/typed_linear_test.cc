// Linear on 16-bit weights (fp16, bf16), read as stored: the same bits as Linear on their fp32
// widening, for any batch and shape, and the widening itself against the model loader's.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "model_loader/dtype.h"
#include "tests/kernels/cpu/kernel_test_util.h"

namespace pkm::cpu {
namespace {

using testing::BitwiseEqual;
using testing::RandomFloats;

// Random finite 16-bit weights of `type`: fp16 with exponents around 1 and some subnormals,
// bf16 as the top half of random floats.
std::vector<uint16_t> RandomBits(WeightType type, size_t count, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<uint16_t> bits(count);
  std::vector<float> f = RandomFloats(count, seed);
  for (size_t i = 0; i < count; ++i) {
    if (type == WeightType::kBF16) {
      uint32_t u;
      std::memcpy(&u, &f[i], sizeof u);
      bits[i] = static_cast<uint16_t>(u >> 16);
    } else {
      const uint16_t sign = static_cast<uint16_t>(rng() & 0x8000);
      const uint16_t exponent = static_cast<uint16_t>(i % 17 == 0 ? 0 : 10 + rng() % 8);
      bits[i] = static_cast<uint16_t>(sign | exponent << 10 | (rng() & 0x3FF));
    }
  }
  return bits;
}

std::vector<float> Widened(WeightType type, const std::vector<uint16_t>& bits) {
  std::vector<float> f(bits.size());
  ConvertToFloat32(type == WeightType::kF16 ? DType::kF16 : DType::kBF16,
                   reinterpret_cast<const std::byte*>(bits.data()), bits.size(), f.data());
  return f;
}

TEST(WeightMatrix, WidensEvery16BitValueAsTheModelLoaderDoes) {
  std::vector<uint16_t> all(1 << 16);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  for (WeightType type : {WeightType::kF16, WeightType::kBF16}) {
    const std::vector<float> want = Widened(type, all);
    for (size_t i = 0; i < all.size(); ++i) {
      const float got = type == WeightType::kF16 ? HalfToFloat(all[i]) : Bf16ToFloat(all[i]);
      if (std::isnan(want[i])) {
        ASSERT_TRUE(std::isnan(got)) << WeightTypeName(type) << " bits " << i;
      } else {
        ASSERT_EQ(std::memcmp(&got, &want[i], sizeof(float)), 0)
            << WeightTypeName(type) << " bits " << i << ": " << got << " vs " << want[i];
      }
    }
  }
}

struct TypedCase {
  WeightType type;
  int n, in, out;
};

std::string TypedName(const ::testing::TestParamInfo<TypedCase>& info) {
  const TypedCase& c = info.param;
  return testing::Format("%s_n%d_in%d_out%d", WeightTypeName(c.type), c.n, c.in, c.out);
}

class TypedLinear : public ::testing::TestWithParam<TypedCase> {};

// Bitwise the fp32 kernel on the widened weights; within rounding of the reference on them.
TEST_P(TypedLinear, IsLinearOnTheWidenedWeights) {
  const TypedCase& c = GetParam();
  const std::vector<float> x = RandomFloats(static_cast<size_t>(c.n) * c.in, 1);
  const std::vector<uint16_t> bits = RandomBits(c.type, static_cast<size_t>(c.out) * c.in, 2);
  const std::vector<float> widened = Widened(c.type, bits);
  const std::vector<float> b = RandomFloats(static_cast<size_t>(c.out), 3);
  std::vector<float> got(static_cast<size_t>(c.n) * c.out), want(got.size()), ref(got.size());
  Linear(x.data(), c.n, c.in, WeightMatrix(bits.data(), c.type), b.data(), c.out, got.data());
  Linear(x.data(), c.n, c.in, widened.data(), b.data(), c.out, want.data());
  EXPECT_TRUE(BitwiseEqual(got.data(), want.data(), got.size()));
  ref::Linear(x.data(), c.n, c.in, WeightMatrix(bits.data(), c.type), b.data(), c.out, ref.data());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], ref[i], 1e-4f * (1.0f + std::abs(ref[i]))) << "element " << i;
  }
}

std::vector<TypedCase> TypedCases() {
  std::vector<TypedCase> cases;
  for (WeightType type : {WeightType::kF16, WeightType::kBF16}) {
    // Odd `in` takes the partial-chunk tail; n 1 the one-row path, 37 the tiled one.
    for (int n : {1, 37}) {
      for (int in : {7, 256, 771}) cases.push_back({type, n, in, 45});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Shapes, TypedLinear, ::testing::ValuesIn(TypedCases()), TypedName);

TEST(TypedLinear, RowDoesNotDependOnBatch) {
  const int n = 64, in = 256, out = 300;
  const std::vector<float> x = RandomFloats(static_cast<size_t>(n) * in, 4);
  const std::vector<uint16_t> bits = RandomBits(WeightType::kF16, static_cast<size_t>(out) * in, 5);
  const WeightMatrix w(bits.data(), WeightType::kF16);
  std::vector<float> batch(static_cast<size_t>(n) * out), alone(static_cast<size_t>(out));
  Linear(x.data(), n, in, w, nullptr, out, batch.data());
  for (int i = 0; i < n; ++i) {
    Linear(x.data() + static_cast<size_t>(i) * in, 1, in, w, nullptr, out, alone.data());
    ASSERT_EQ(std::memcmp(alone.data(), batch.data() + static_cast<size_t>(i) * out,
                          sizeof(float) * out),
              0)
        << "row " << i;
  }
}

}  // namespace
}  // namespace pkm::cpu

namespace pkm::cpu {
namespace {

// The lookups' shape and its queries and keys, shared by the typed-value tests.
constexpr PkmShape kLookupShape{.heads = 2, .knn = 8, .n_keys = 16, .k_dim = 16, .v_dim = 36};
constexpr int kLookupTokens = 5;
const std::vector<float>& LookupQueries() {
  static const std::vector<float> q = RandomFloats(
      static_cast<size_t>(kLookupTokens) * kLookupShape.heads * kLookupShape.k_dim, 7);
  return q;
}
const std::vector<float>& LookupKeys() {
  static const std::vector<float> keys = RandomFloats(
      static_cast<size_t>(kLookupShape.heads) * 2 * kLookupShape.n_keys * kLookupShape.k_dim / 2,
      8);
  return keys;
}

// The lookup on 16-bit value tables: the bits of the lookup on their fp32 widening.
TEST(TypedPkmLookup, IsTheLookupOnTheWidenedValues) {
  const PkmShape s = kLookupShape;
  const int n = kLookupTokens;
  const std::vector<float>& q = LookupQueries();
  const std::vector<float>& keys = LookupKeys();
  for (WeightType type : {WeightType::kF16, WeightType::kBF16}) {
    const std::vector<uint16_t> bits =
        RandomBits(type, static_cast<size_t>(s.n_keys) * s.n_keys * s.v_dim, 9);
    const std::vector<float> widened = Widened(type, bits);
    std::vector<float> got(static_cast<size_t>(n) * s.v_dim), want(got.size()), ref(got.size());
    PkmLookup(s, q.data(), n, keys.data(), WeightMatrix(bits.data(), type), got.data(), nullptr,
              nullptr);
    PkmLookup(s, q.data(), n, keys.data(), widened.data(), want.data(), nullptr, nullptr);
    EXPECT_TRUE(BitwiseEqual(got.data(), want.data(), got.size())) << WeightTypeName(type);
    ref::PkmLookup(s, q.data(), n, keys.data(), WeightMatrix(bits.data(), type), ref.data(),
                   nullptr, nullptr);
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], ref[i], 1e-4f * (1.0f + std::abs(ref[i]))) << "element " << i;
    }
  }
}

}  // namespace
}  // namespace pkm::cpu

namespace pkm::cpu {
namespace {

struct Int8Matrix {
  std::vector<int8_t> q;
  std::vector<float> scales;
  WeightMatrix view() const { return WeightMatrix(q.data(), WeightType::kI8, scales.data()); }
};

Int8Matrix RandomInt8(size_t rows, size_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  Int8Matrix m;
  m.q.resize(rows * cols);
  for (int8_t& v : m.q) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  m.scales = RandomFloats(rows, seed + 1, 0.001f, 0.02f);
  return m;
}

// int8 rows: y = (x · q) · scale + b, within rounding of the reference on q · scale, and the
// row of a batch is the row alone.
TEST(Int8Linear, MatchesTheReferenceOnItsWideningAndIsBatchInvariant) {
  for (int in : {7, 256, 771}) {
    const int n = 37, out = 45;
    const std::vector<float> x = RandomFloats(static_cast<size_t>(n) * in, 1);
    const Int8Matrix w = RandomInt8(out, in, 2);
    const std::vector<float> b = RandomFloats(out, 3);
    std::vector<float> got(static_cast<size_t>(n) * out), ref(got.size()), alone(out);
    Linear(x.data(), n, in, w.view(), b.data(), out, got.data());
    ref::Linear(x.data(), n, in, w.view(), b.data(), out, ref.data());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], ref[i], 1e-5f * (1.0f + std::abs(ref[i]))) << "in " << in << " " << i;
    }
    for (int t = 0; t < n; ++t) {
      Linear(x.data() + static_cast<size_t>(t) * in, 1, in, w.view(), b.data(), out, alone.data());
      ASSERT_TRUE(BitwiseEqual(alone.data(), got.data() + static_cast<size_t>(t) * out, out));
    }
  }
}

TEST(Int8PkmLookup, MatchesTheReferenceOnItsWidening) {
  const PkmShape s = kLookupShape;
  const int n = kLookupTokens;
  const std::vector<float>& q = LookupQueries();
  const std::vector<float>& keys = LookupKeys();
  const Int8Matrix values = RandomInt8(static_cast<size_t>(s.n_keys) * s.n_keys, s.v_dim, 9);
  std::vector<float> got(static_cast<size_t>(n) * s.v_dim), ref(got.size());
  std::vector<int32_t> got_ids(static_cast<size_t>(n) * s.heads * s.knn), ref_ids(got_ids.size());
  PkmLookup(s, q.data(), n, keys.data(), values.view(), got.data(), got_ids.data(), nullptr);
  ref::PkmLookup(s, q.data(), n, keys.data(), values.view(), ref.data(), ref_ids.data(), nullptr);
  EXPECT_EQ(got_ids, ref_ids);
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], ref[i], 1e-5f * (1.0f + std::abs(ref[i]))) << "element " << i;
  }
}

}  // namespace
}  // namespace pkm::cpu
