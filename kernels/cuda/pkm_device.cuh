// Device helpers shared by the PKM kernels: the rank key that orders every top-k, value loads,
// and a block-wide bitonic sort.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace pkm::cuda {

inline constexpr uint64_t kPadKey = ~uint64_t{0};  // ranks after every real key

// The CPU's rank key (kernels/cpu/pkm_topk.h): ascending keys = score descending, then index
// ascending; NaN above +inf, -0 as +0.
__device__ __forceinline__ uint64_t RankKey(float score, int32_t index) {
  uint32_t bits = isnan(score) ? 0x7FC00000u : __float_as_uint(score + 0.0f);
  uint32_t ascending = (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
  return static_cast<uint64_t>(~ascending) << 32 | static_cast<uint32_t>(index);
}
__device__ __forceinline__ float KeyScore(uint64_t key) {
  uint32_t ascending = ~static_cast<uint32_t>(key >> 32);
  return __uint_as_float((ascending & 0x80000000u) ? ascending & 0x7FFFFFFFu : ~ascending);
}
__device__ __forceinline__ int32_t KeyIndex(uint64_t key) {
  return static_cast<int32_t>(static_cast<uint32_t>(key));
}

__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(__half v) { return __half2float(v); }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T FromFloat(float v);
template <>
__device__ __forceinline__ float FromFloat<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half FromFloat<__half>(float v) { return __float2half(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) {
  return __float2bfloat16(v);
}

// Sorts a[0..n) ascending, n a power of two, with the whole block. Ends with a barrier.
__device__ inline void BitonicSort(uint64_t* a, int n) {
  for (int size = 2; size <= n; size *= 2) {
    for (int stride = size / 2; stride > 0; stride /= 2) {
      for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const int j = i ^ stride;
        if (j > i) {
          const bool ascending = (i & size) == 0;
          const uint64_t x = a[i], y = a[j];
          if ((x > y) == ascending) {
            a[i] = y;
            a[j] = x;
          }
        }
      }
      __syncthreads();
    }
  }
}

// Writes the k best of sorted rank keys as ids and fp32 softmax weights (the best is the max).
// One thread.
__device__ inline void SoftmaxOfBest(const uint64_t* sorted, int k, int32_t* ids, float* weights) {
  const float m = KeyScore(sorted[0]);
  float denom = 0.0f;
  for (int j = 0; j < k; ++j) denom += expf(KeyScore(sorted[j]) - m);
  for (int j = 0; j < k; ++j) {
    ids[j] = KeyIndex(sorted[j]);
    weights[j] = expf(KeyScore(sorted[j]) - m) / denom;
  }
}

inline int NextPow2(int v) {
  int p = 1;
  while (p < v) p *= 2;
  return p;
}

// The pairs (a, b) of two sorted top-k lists with (a+1)(b+1) <= k: all that can reach the top-k
// of the sums. Row a holds floor(k/(a+1)) of them.
__host__ __device__ inline int CandidatePairs(int k) {
  int pairs = 0;
  for (int a = 0; a < k; ++a) pairs += k / (a + 1);
  return pairs;
}

}  // namespace pkm::cuda
