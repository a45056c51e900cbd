// The CUDA PKM lookup against the CPU reference (kernels/cpu/reference.cc): slot ids exactly,
// weights and outputs within float tolerance, on integer-valued queries and keys (so that the
// scores are exact whatever the summation order, and ties are everywhere), for the bundled
// model's shape, k = n_keys, one token, odd sizes, k = 128, and fp32/fp16/bf16 values.
// Without a CUDA device the device tests skip with a message; the shape checks always run.
#include "kernels/cuda/pkm_lookup.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace pkm::cuda {
namespace {

void ExpectMatchesReference(const PkmLookupShape& s, int n, ValueType type, uint32_t seed) {
  ASSERT_EQ(CheckPkmLookupShape(s, type), "");
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> small(-2, 2);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> q(static_cast<size_t>(n) * s.heads * s.k_dim);
  std::vector<float> keys(static_cast<size_t>(s.heads) * 2 * s.n_keys * (s.k_dim / 2));
  std::vector<float> values(static_cast<size_t>(s.n_keys) * s.n_keys * s.v_dim);
  for (float& v : q) v = static_cast<float>(small(rng));
  for (float& v : keys) v = static_cast<float>(small(rng));
  for (float& v : values) v = Round(normal(rng), type);

  const size_t sel = static_cast<size_t>(n) * s.heads * s.knn;
  std::vector<float> want_out(static_cast<size_t>(n) * s.v_dim), want_w(sel);
  std::vector<int32_t> want_ids(sel);
  cpu::ref::PkmLookup({s.heads, s.knn, s.n_keys, s.k_dim, s.v_dim}, q.data(), n, keys.data(),
                      values.data(), want_out.data(), want_ids.data(), want_w.data());

  float* d_q = Upload(q);
  void* d_keys = UploadAs(keys, type);
  void* d_values = UploadAs(values, type);
  float* d_out = DeviceAlloc<float>(want_out.size());
  float* d_w = DeviceAlloc<float>(sel);
  int32_t* d_ids = DeviceAlloc<int32_t>(sel);
  ASSERT_EQ(PkmLookup(s, type, d_q, n, d_keys, d_values, d_out, d_ids, d_w, nullptr), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::vector<float> out = Download(d_out, want_out.size()), w = Download(d_w, sel);
  const std::vector<int32_t> ids = Download(d_ids, sel);
  for (void* p : {static_cast<void*>(d_q), d_keys, d_values, static_cast<void*>(d_out),
                  static_cast<void*>(d_w), static_cast<void*>(d_ids)}) {
    cudaFree(p);
  }

  EXPECT_EQ(ids, want_ids);
  for (size_t i = 0; i < sel; ++i) ASSERT_NEAR(w[i], want_w[i], 1e-6) << "weight " << i;
  float scale = 0.0f;
  for (float v : want_out) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < out.size(); ++i) {
    ASSERT_NEAR(out[i], want_out[i], 1e-5f * std::max(scale, 1.0f)) << "out " << i;
  }
}

struct Case {
  const char* name;
  PkmLookupShape shape;
  int tokens;
  ValueType type;
};

class CudaPkmLookupMatches : public ::testing::TestWithParam<Case> {};

TEST_P(CudaPkmLookupMatches, TheCpuReference) {
  SKIP_WITHOUT_GPU();
  const Case& c = GetParam();
  const auto seed = static_cast<uint32_t>(c.tokens * 31 + c.shape.knn);
  ExpectMatchesReference(c.shape, c.tokens, c.type, seed);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaPkmLookupMatches,
    ::testing::Values(Case{"BundledModel", {4, 32, 128, 128, 256}, 9, ValueType::kF32},
                      Case{"OneTokenKEqualsNKeys", {2, 16, 16, 8, 8}, 1, ValueType::kF32},
                      Case{"OddSizes", {3, 5, 37, 18, 12}, 7, ValueType::kF32},
                      Case{"LargestKnn", {1, 128, 200, 64, 16}, 3, ValueType::kF32},
                      Case{"Half", {4, 32, 64, 32, 64}, 5, ValueType::kF16},
                      Case{"Bfloat16", {4, 32, 64, 32, 64}, 5, ValueType::kBF16}),
    [](const ::testing::TestParamInfo<Case>& param_info) {
      return std::string(param_info.param.name);
    });

TEST(CudaPkmLookup, UnsupportedShapesAreRefusedWithTheReason) {
  const ValueType f16 = ValueType::kF16;
  EXPECT_EQ(CheckPkmLookupShape({4, 32, 512, 512, 1024}, f16), "");  // the paper's
  EXPECT_NE(CheckPkmLookupShape({4, 33, 32, 512, 1024}, f16).find("pkm_knn must be in [1, 32]"),
            std::string::npos);
  EXPECT_NE(CheckPkmLookupShape({4, 32, 4096, 512, 1024}, f16).find("pkm_n_keys"),
            std::string::npos);
  EXPECT_NE(CheckPkmLookupShape({4, 32, 512, 511, 1024}, f16).find("even"), std::string::npos);
  EXPECT_NE(CheckPkmLookupShape({4, 32, 512, 512, 1020}, f16).find("multiple of 8"),
            std::string::npos);
  EXPECT_EQ(CheckPkmLookupShape({4, 32, 512, 512, 1020}, ValueType::kF32), "");
  EXPECT_EQ(PkmLookup({4, 33, 32, 512, 1024}, f16, nullptr, 1, nullptr, nullptr, nullptr,
                      nullptr, nullptr, nullptr),
            cudaErrorInvalidValue);
  int32_t id = 0;
  float weight = 0.0f;
  EXPECT_EQ(PkmLookup({4, 32, 512, 512, 1024}, f16, nullptr, 1, nullptr, nullptr, nullptr, &id,
                      nullptr, nullptr),
            cudaErrorInvalidValue)
      << "weights are required";
  EXPECT_EQ(PkmLookup({4, 32, 512, 512, 1024}, f16, nullptr, 1, nullptr, nullptr, nullptr,
                      nullptr, &weight, nullptr),
            cudaErrorInvalidValue)
      << "ids are required";
}

}  // namespace
}  // namespace pkm::cuda
