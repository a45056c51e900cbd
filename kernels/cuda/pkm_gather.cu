// The weighted value gather-sum over every head's selections: the memory-bound half of the
// lookup (H * k * v_dim values per token). Block (token, slice of 32 16-byte columns); its
// 8 warps split the selected rows, so even one token spreads over v_dim / (32 * 16 B) blocks,
// and a warp reads 512 contiguous bytes of a row. Partial sums meet in shared memory in a
// fixed order: a token's output does not depend on n.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda/pkm_device.cuh"
#include "kernels/cuda/pkm_stages.h"

namespace pkm::cuda::detail {
namespace {

constexpr int kColumns = 32;  // 16-byte chunks per block: one warp's width
constexpr int kGroups = 8;    // warps, each over every kGroups-th selected row
constexpr int kMaxSelected = kMaxHeads * kMaxKnn;

template <typename T>
__global__ void __launch_bounds__(kColumns * kGroups)
GatherKernel(int selected, int v_dim, const int32_t* __restrict__ ids,
             const float* __restrict__ weights, const T* __restrict__ values,
             float* __restrict__ out) {
  constexpr int kVec = 16 / sizeof(T);
  __shared__ int32_t sel_id[kMaxSelected];
  __shared__ float sel_w[kMaxSelected];
  __shared__ float partial[kGroups][kColumns][kVec];
  const int t = blockIdx.x, lane = threadIdx.x % kColumns, group = threadIdx.x / kColumns;
  for (int r = threadIdx.x; r < selected; r += blockDim.x) {
    sel_id[r] = ids[static_cast<size_t>(t) * selected + r];
    sel_w[r] = weights[static_cast<size_t>(t) * selected + r];
  }
  __syncthreads();
  const int chunk = blockIdx.y * kColumns + lane;
  const bool active = chunk * kVec < v_dim;
  float acc[kVec] = {};
  if (active) {
#pragma unroll 4
    for (int r = group; r < selected; r += kGroups) {
      const float w = sel_w[r];
      const uint4 raw = __ldg(reinterpret_cast<const uint4*>(
          values + static_cast<size_t>(sel_id[r]) * v_dim + static_cast<size_t>(chunk) * kVec));
      const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int e = 0; e < kVec; ++e) acc[e] += w * ToFloat(v[e]);
    }
  }
#pragma unroll
  for (int e = 0; e < kVec; ++e) partial[group][lane][e] = acc[e];
  __syncthreads();
  if (group == 0 && active) {
    float sum[kVec] = {};
    for (int g = 0; g < kGroups; ++g) {
#pragma unroll
      for (int e = 0; e < kVec; ++e) sum[e] += partial[g][lane][e];
    }
    float* o = out + static_cast<size_t>(t) * v_dim + static_cast<size_t>(chunk) * kVec;
#pragma unroll
    for (int e = 0; e < kVec; ++e) o[e] = sum[e];
  }
}

template <typename T>
cudaError_t Launch(const PkmLookupShape& s, const int32_t* ids, const float* weights, int n,
                   const void* values, float* out, cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(T);
  const int chunks = s.v_dim / kVec;
  const dim3 grid(static_cast<unsigned>(n), static_cast<unsigned>((chunks + kColumns - 1) / kColumns));
  GatherKernel<T><<<grid, kColumns * kGroups, 0, stream>>>(
      s.heads * s.knn, s.v_dim, ids, weights, static_cast<const T*>(values), out);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchGather(const PkmLookupShape& s, ValueType type, const int32_t* ids,
                         const float* weights, int n, const void* values, float* out,
                         cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  switch (type) {
    case ValueType::kF32:
      return Launch<float>(s, ids, weights, n, values, out, stream);
    case ValueType::kF16:
      return Launch<__half>(s, ids, weights, n, values, out, stream);
    case ValueType::kBF16:
      return Launch<__nv_bfloat16>(s, ids, weights, n, values, out, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace pkm::cuda::detail
