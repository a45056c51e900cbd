// Device memory and value-type helpers for the CUDA kernel tests.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cuda/pkm_lookup.h"

namespace pkm::cuda {

inline bool HaveDevice() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

#if defined(PKM_CUDA_ON_CPU)
// The emulated build (HIP-CPU) always has its device: a test that cannot run there fails.
#define SKIP_WITHOUT_GPU() ASSERT_TRUE(HaveDevice()) << "the emulated CUDA device is missing"
#else
#define SKIP_WITHOUT_GPU() \
  if (!HaveDevice()) GTEST_SKIP() << "no CUDA device: the CUDA kernel tests run on a GPU machine (scripts/gpu-check.sh)"
#endif

template <typename T>
inline T* DeviceAlloc(size_t count) {
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
inline float Round(float v, ValueType type) {
  if (type == ValueType::kF16) return __half2float(__float2half(v));
  if (type == ValueType::kBF16) return __bfloat162float(__float2bfloat16(v));
  return v;
}

inline std::vector<uint16_t> Narrow(const std::vector<float>& v, ValueType type) {
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

// Uploads v as `type` (fp32 as is, else narrowed); the caller frees.
inline void* UploadAs(const std::vector<float>& v, ValueType type) {
  if (type == ValueType::kF32) return Upload(v);
  return Upload(Narrow(v, type));
}

}  // namespace pkm::cuda
