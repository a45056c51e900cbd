// The stages of the unfused chain, one launch each, every intermediate in global memory: the
// baseline the fused selection is measured against (bench/cuda), and a second implementation
// the tests hold to the same answers.
#include "kernels/cuda/pkm_device.cuh"
#include "kernels/cuda/pkm_stages.h"

namespace pkm::cuda::detail {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads)
RowTopKKernel(const float* __restrict__ scores, const int32_t* __restrict__ index, int len,
              int len_pow2, int k, uint64_t* __restrict__ best) {
  extern __shared__ __align__(16) unsigned char smem[];
  uint64_t* buf = reinterpret_cast<uint64_t*>(smem);
  const size_t row = blockIdx.x;
  for (int i = threadIdx.x; i < len_pow2; i += blockDim.x) {
    buf[i] = i < len ? RankKey(scores[row * len + i], index ? index[row * len + i] : i) : kPadKey;
  }
  __syncthreads();
  BitonicSort(buf, len_pow2);
  for (int i = threadIdx.x; i < k; i += blockDim.x) best[row * k + i] = buf[i];
}

__global__ void ProductCandidatesKernel(const uint64_t* __restrict__ half_best, int rows, int k,
                                        int n_keys, float* __restrict__ cand_scores,
                                        int32_t* __restrict__ cand_ids) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const size_t kk = static_cast<size_t>(k) * k;
  if (i >= static_cast<size_t>(rows) * kk) return;
  const size_t row = i / kk;
  const int a = static_cast<int>(i % kk) / k, b = static_cast<int>(i % kk) % k;
  const uint64_t first = half_best[(row * 2 + 0) * k + a];
  const uint64_t second = half_best[(row * 2 + 1) * k + b];
  cand_scores[i] = KeyScore(first) + KeyScore(second);
  cand_ids[i] = KeyIndex(first) * n_keys + KeyIndex(second);
}

__global__ void SoftmaxOfBestKernel(const uint64_t* __restrict__ best, int rows, int k,
                                    int32_t* __restrict__ ids, float* __restrict__ weights) {
  const size_t row = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= static_cast<size_t>(rows)) return;
  SoftmaxOfBest(best + row * k, k, ids + row * k, weights + row * k);
}

unsigned Blocks(size_t count) { return static_cast<unsigned>((count + kThreads - 1) / kThreads); }

}  // namespace

cudaError_t LaunchRowTopK(const float* scores, const int32_t* index, int rows, int len, int k,
                          uint64_t* best, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  const int len_pow2 = NextPow2(len);
  const size_t bytes = sizeof(uint64_t) * static_cast<size_t>(len_pow2);
  const cudaError_t attr = cudaFuncSetAttribute(
      RowTopKKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (attr != cudaSuccess) return attr;
  RowTopKKernel<<<static_cast<unsigned>(rows), kThreads, bytes, stream>>>(scores, index, len,
                                                                           len_pow2, k, best);
  return cudaGetLastError();
}

cudaError_t LaunchProductCandidates(const uint64_t* half_best, int rows, int k, int n_keys,
                                    float* cand_scores, int32_t* cand_ids, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  ProductCandidatesKernel<<<Blocks(static_cast<size_t>(rows) * k * k), kThreads, 0, stream>>>(
      half_best, rows, k, n_keys, cand_scores, cand_ids);
  return cudaGetLastError();
}

cudaError_t LaunchSoftmaxOfBest(const uint64_t* best, int rows, int k, int32_t* ids,
                                float* weights, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  SoftmaxOfBestKernel<<<Blocks(static_cast<size_t>(rows)), kThreads, 0, stream>>>(best, rows, k,
                                                                                 ids, weights);
  return cudaGetLastError();
}

}  // namespace pkm::cuda::detail
