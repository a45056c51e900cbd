// The CUDA PKM lookup against the CPU reference (kernels/cpu/reference.cc): slot ids exactly,
// weights and outputs within float tolerance, on integer-valued queries and keys (so that the
// scores are exact whatever the summation order, and ties are everywhere), for the bundled
// model's shape, k = n_keys, one token, odd sizes, k = 128, and fp32/fp16/bf16 values.
// Without a CUDA device the device tests skip with a message; the shape checks always run.
#include "kernels/cuda/pkm_lookup.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
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

namespace pkm::cuda {
namespace {

bool HaveDevice() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

#define SKIP_WITHOUT_GPU() \
  if (!HaveDevice()) GTEST_SKIP() << "no CUDA device: the CUDA kernel tests run on a GPU machine (scripts/gpu-check.sh)"

template <typename T>
T* DeviceAlloc(size_t count) {
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, std::max<size_t>(count, 1) * sizeof(T)), cudaSuccess);
  return static_cast<T*>(p);
}

template <typename T>
T* Upload(const std::vector<T>& host) {
  T* p = DeviceAlloc<T>(host.size());
  EXPECT_EQ(cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice),
            cudaSuccess);
  return p;
}

template <typename T>
std::vector<T> Download(const T* device, size_t count) {
  std::vector<T> host(count);
  EXPECT_EQ(cudaMemcpy(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost),
            cudaSuccess);
  return host;
}

// Rounds to the value type, as stored on the device, and back to float for the reference.
float Round(float v, ValueType type) {
  if (type == ValueType::kF16) return __half2float(__float2half(v));
  if (type == ValueType::kBF16) return __bfloat162float(__float2bfloat16(v));
  return v;
}

std::vector<uint16_t> Narrow(const std::vector<float>& v, ValueType type) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (type == ValueType::kF16) {
      const __half h = __float2half(v[i]);
      std::memcpy(&out[i], &h, 2);
    } else {
      const __nv_bfloat16 b = __float2bfloat16(v[i]);
      std::memcpy(&out[i], &b, 2);
    }
  }
  return out;
}

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
  void *d_keys = nullptr, *d_values = nullptr;
  if (type == ValueType::kF32) {
    d_keys = Upload(keys);
    d_values = Upload(values);
  } else {
    d_keys = Upload(Narrow(keys, type));
    d_values = Upload(Narrow(values, type));
  }
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
}

}  // namespace
}  // namespace pkm::cuda
