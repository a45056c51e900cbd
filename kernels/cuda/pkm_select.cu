// The fused selection: one block per (token, head). Neither the n_keys score vectors (on the
// path that computes them here) nor the candidate sums leave shared memory.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda/pkm_device.cuh"
#include "kernels/cuda/pkm_stages.h"

namespace pkm::cuda::detail {
namespace {

constexpr int kThreads = 256;

// Shared memory of one block, carved from the dynamic allocation.
struct SelectLayout {
  int n_pow2, cand_pow2, buf_words;
  bool dots;  // computes the sub-key scores (else reads them)
  size_t bytes;
};

SelectLayout MakeSelectLayout(const PkmLookupShape& s, bool dots) {
  SelectLayout l{};
  l.n_pow2 = NextPow2(s.n_keys);
  l.cand_pow2 = NextPow2(CandidatePairs(s.knn));
  l.buf_words = l.n_pow2 > l.cand_pow2 ? l.n_pow2 : l.cand_pow2;
  l.dots = dots;
  l.bytes = sizeof(uint64_t) * (static_cast<size_t>(l.buf_words) + 2 * s.knn) +
            (dots ? sizeof(float) * static_cast<size_t>(s.k_dim) : 0);
  return l;
}

// One half's scores as rank keys in buf[0..n_pow2), sorted: the top-k are buf[0..k).
// `scores` is that half's [n_keys] row when given; else a warp per sub-key takes its dot product
// with q_half (coalesced key rows).
template <typename T>
__device__ void HalfTopK(const float* scores, const T* keys, const float* q_half, int n_keys,
                         int half, int n_pow2, uint64_t* buf) {
  if (scores) {
    for (int i = threadIdx.x; i < n_keys; i += blockDim.x) buf[i] = RankKey(scores[i], i);
  } else {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
    for (int i = warp; i < n_keys; i += warps) {
      const T* row = keys + static_cast<size_t>(i) * half;
      float dot = 0.0f;
      for (int j = lane; j < half; j += 32) dot += ToFloat(row[j]) * q_half[j];
      for (int offset = 16; offset > 0; offset /= 2) {
        dot += __shfl_down_sync(0xFFFFFFFFu, dot, offset);
      }
      if (lane == 0) buf[i] = RankKey(dot, i);
    }
  }
  for (int i = n_keys + threadIdx.x; i < n_pow2; i += blockDim.x) buf[i] = kPadKey;
  __syncthreads();
  BitonicSort(buf, n_pow2);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
SelectKernel(PkmLookupShape s, SelectLayout l, const float* __restrict__ q,
             const float* __restrict__ q_bias, const float* __restrict__ scores,
             const T* __restrict__ keys, int32_t* __restrict__ ids,
             float* __restrict__ weights) {
  extern __shared__ __align__(16) unsigned char smem[];
  uint64_t* buf = reinterpret_cast<uint64_t*>(smem);
  uint64_t* top1 = buf + l.buf_words;
  uint64_t* top2 = top1 + s.knn;
  float* q_s = reinterpret_cast<float*>(top2 + s.knn);

  const int row = blockIdx.x, h = row % s.heads, k = s.knn, half = s.k_dim / 2;
  const float* row_scores = scores ? scores + static_cast<size_t>(row) * 2 * s.n_keys : nullptr;
  if (l.dots) {
    const float* qh = q + static_cast<size_t>(row) * s.k_dim;
    const float* bh = q_bias ? q_bias + static_cast<size_t>(h) * s.k_dim : nullptr;
    for (int i = threadIdx.x; i < s.k_dim; i += blockDim.x) q_s[i] = qh[i] + (bh ? bh[i] : 0.0f);
    __syncthreads();
  }
  const size_t table = static_cast<size_t>(s.n_keys) * half;
  const T* keys1 = keys + (static_cast<size_t>(h) * 2 + 0) * table;
  HalfTopK(row_scores, keys1, q_s, s.n_keys, half, l.n_pow2, buf);
  for (int i = threadIdx.x; i < k; i += blockDim.x) top1[i] = buf[i];
  __syncthreads();
  HalfTopK(row_scores ? row_scores + s.n_keys : nullptr, keys1 + table, q_s + half, s.n_keys,
           half, l.n_pow2, buf);
  for (int i = threadIdx.x; i < k; i += blockDim.x) top2[i] = buf[i];
  __syncthreads();
  // Candidates: the pairs with (a+1)(b+1) <= k, row a at offset sum_{a'<a} floor(k/(a'+1)).
  for (int a = threadIdx.x; a < k; a += blockDim.x) {
    int offset = 0;
    for (int a2 = 0; a2 < a; ++a2) offset += k / (a2 + 1);
    const float s1 = KeyScore(top1[a]);
    const int32_t base = KeyIndex(top1[a]) * s.n_keys;
    for (int b = 0; b < k / (a + 1); ++b) {
      buf[offset + b] = RankKey(s1 + KeyScore(top2[b]), base + KeyIndex(top2[b]));
    }
  }
  for (int i = CandidatePairs(k) + threadIdx.x; i < l.cand_pow2; i += blockDim.x) buf[i] = kPadKey;
  __syncthreads();
  BitonicSort(buf, l.cand_pow2);
  if (threadIdx.x == 0) {
    SoftmaxOfBest(buf, k, ids + static_cast<size_t>(row) * k, weights + static_cast<size_t>(row) * k);
  }
}

template <typename T>
cudaError_t Launch(const PkmLookupShape& s, const float* q, const float* q_bias,
                   const float* scores, int n, const void* keys, int32_t* ids, float* weights,
                   cudaStream_t stream) {
  const SelectLayout l = MakeSelectLayout(s, scores == nullptr);
  const cudaError_t attr = cudaFuncSetAttribute(
      SelectKernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(l.bytes));
  if (attr != cudaSuccess) return attr;
  const unsigned blocks = static_cast<unsigned>(n) * static_cast<unsigned>(s.heads);
  SelectKernel<T><<<blocks, kThreads, l.bytes, stream>>>(
      s, l, q, q_bias, scores, static_cast<const T*>(keys), ids, weights);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchSelect(const PkmLookupShape& s, ValueType type, const float* q,
                         const float* q_bias, const float* scores, int n, const void* keys,
                         int32_t* ids, float* weights, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  switch (type) {
    case ValueType::kF32:
      return Launch<float>(s, q, q_bias, scores, n, keys, ids, weights, stream);
    case ValueType::kF16:
      return Launch<__half>(s, q, q_bias, scores, n, keys, ids, weights, stream);
    case ValueType::kBF16:
      return Launch<__nv_bfloat16>(s, q, q_bias, scores, n, keys, ids, weights, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace pkm::cuda::detail
