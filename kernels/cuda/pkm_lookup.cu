#include "kernels/cuda/pkm_lookup.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace pkm::cuda {
namespace {

constexpr int kThreads = 256;
constexpr uint64_t kPadKey = ~uint64_t{0};  // ranks after every real key

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

int NextPow2(int v) {
  int p = 1;
  while (p < v) p *= 2;
  return p;
}

// Sorts a[0..n) ascending, n a power of two, with the whole block.
__device__ void BitonicSort(uint64_t* a, int n) {
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

// Rank keys of one half's sub-key scores into buf[0..n_pow2), sorted; the top-k are buf[0..k).
template <typename T>
__device__ void HalfTopK(const T* keys, const float* q_half, int n_keys, int half, int n_pow2,
                         uint64_t* buf) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  for (int i = warp; i < n_keys; i += warps) {  // a warp per sub-key: coalesced rows
    const T* row = keys + static_cast<size_t>(i) * half;
    float dot = 0.0f;
    for (int j = lane; j < half; j += 32) dot += ToFloat(row[j]) * q_half[j];
    for (int offset = 16; offset > 0; offset /= 2) dot += __shfl_down_sync(0xFFFFFFFFu, dot, offset);
    if (lane == 0) buf[i] = RankKey(dot, i);
  }
  for (int i = n_keys + threadIdx.x; i < n_pow2; i += blockDim.x) buf[i] = kPadKey;
  __syncthreads();
  BitonicSort(buf, n_pow2);
}

// Shared memory of one block (one token), carved from the dynamic allocation.
struct Layout {
  int n_pow2, cand_pow2, buf_words;
  size_t bytes;
};

Layout MakeLayout(const PkmLookupShape& s) {
  Layout l{};
  l.n_pow2 = NextPow2(s.n_keys);
  int pairs = 0;
  for (int a = 0; a < s.knn; ++a) pairs += s.knn / (a + 1);
  l.cand_pow2 = NextPow2(pairs);
  l.buf_words = l.n_pow2 > l.cand_pow2 ? l.n_pow2 : l.cand_pow2;
  l.bytes = sizeof(uint64_t) * (static_cast<size_t>(l.buf_words) + 2 * s.knn) +
            sizeof(float) * static_cast<size_t>(s.k_dim) +
            (sizeof(int32_t) + sizeof(float)) * static_cast<size_t>(s.heads) * s.knn;
  return l;
}

// One block per token: every head's selection, then the gather over every head.
template <typename T>
__global__ void __launch_bounds__(kThreads)
PkmLookupKernel(PkmLookupShape s, Layout l, const float* __restrict__ q,
                const T* __restrict__ keys, const T* __restrict__ values,
                float* __restrict__ out, int32_t* __restrict__ ids_out,
                float* __restrict__ weights_out) {
  extern __shared__ __align__(16) unsigned char smem[];
  uint64_t* buf = reinterpret_cast<uint64_t*>(smem);
  uint64_t* top1 = buf + l.buf_words;
  uint64_t* top2 = top1 + s.knn;
  float* q_s = reinterpret_cast<float*>(top2 + s.knn);
  int32_t* sel_id = reinterpret_cast<int32_t*>(q_s + s.k_dim);
  float* sel_w = reinterpret_cast<float*>(sel_id + s.heads * s.knn);

  const int t = blockIdx.x, k = s.knn, half = s.k_dim / 2;
  for (int h = 0; h < s.heads; ++h) {
    const float* qh = q + (static_cast<size_t>(t) * s.heads + h) * s.k_dim;
    for (int i = threadIdx.x; i < s.k_dim; i += blockDim.x) q_s[i] = qh[i];
    __syncthreads();
    const size_t table = static_cast<size_t>(s.n_keys) * half;
    HalfTopK(keys + (static_cast<size_t>(h) * 2 + 0) * table, q_s, s.n_keys, half, l.n_pow2, buf);
    for (int i = threadIdx.x; i < k; i += blockDim.x) top1[i] = buf[i];
    __syncthreads();
    HalfTopK(keys + (static_cast<size_t>(h) * 2 + 1) * table, q_s + half, s.n_keys, half,
             l.n_pow2, buf);
    for (int i = threadIdx.x; i < k; i += blockDim.x) top2[i] = buf[i];
    __syncthreads();
    // Candidates: the pairs with (a+1)(b+1) <= k, row a at offset sum_{a'<a} floor(k/(a'+1)).
    for (int a = threadIdx.x; a < k; a += blockDim.x) {
      int offset = 0;
      for (int a2 = 0; a2 < a; ++a2) offset += k / (a2 + 1);
      const float s1 = KeyScore(top1[a]);
      const int32_t row = KeyIndex(top1[a]) * s.n_keys;
      for (int b = 0; b < k / (a + 1); ++b) {
        buf[offset + b] = RankKey(s1 + KeyScore(top2[b]), row + KeyIndex(top2[b]));
      }
    }
    int pairs = 0;
    for (int a = 0; a < k; ++a) pairs += k / (a + 1);
    for (int i = pairs + threadIdx.x; i < l.cand_pow2; i += blockDim.x) buf[i] = kPadKey;
    __syncthreads();
    BitonicSort(buf, l.cand_pow2);
    // Softmax of the k best, in fp32 (the best is the maximum).
    if (threadIdx.x == 0) {
      const float m = KeyScore(buf[0]);
      float denom = 0.0f;
      for (int j = 0; j < k; ++j) denom += expf(KeyScore(buf[j]) - m);
      for (int j = 0; j < k; ++j) {
        const float w = expf(KeyScore(buf[j]) - m) / denom;
        const int32_t id = KeyIndex(buf[j]);
        sel_id[h * k + j] = id;
        sel_w[h * k + j] = w;
        const size_t r = (static_cast<size_t>(t) * s.heads + h) * k + j;
        if (ids_out) ids_out[r] = id;
        if (weights_out) weights_out[r] = w;
      }
    }
    __syncthreads();
  }
  // out[t] = sum over heads and selections of w * values[id], 16-byte loads, fp32 sums.
  constexpr int kVec = 16 / sizeof(T);
  const int chunks = s.v_dim / kVec;
  for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
    float acc[kVec] = {};
    for (int r = 0; r < s.heads * k; ++r) {
      const float w = sel_w[r];
      const uint4 raw = *reinterpret_cast<const uint4*>(
          values + static_cast<size_t>(sel_id[r]) * s.v_dim + static_cast<size_t>(c) * kVec);
      const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int e = 0; e < kVec; ++e) acc[e] += w * ToFloat(v[e]);
    }
    float* o = out + static_cast<size_t>(t) * s.v_dim + static_cast<size_t>(c) * kVec;
#pragma unroll
    for (int e = 0; e < kVec; ++e) o[e] = acc[e];
  }
}

size_t ValueBytes(ValueType type) { return type == ValueType::kF32 ? 4 : 2; }

template <typename T>
cudaError_t Launch(const PkmLookupShape& s, const float* q, int n, const void* keys,
                   const void* values, float* out, int32_t* ids, float* weights,
                   cudaStream_t stream) {
  const Layout l = MakeLayout(s);
  const cudaError_t attr = cudaFuncSetAttribute(
      PkmLookupKernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(l.bytes));
  if (attr != cudaSuccess) return attr;
  PkmLookupKernel<T><<<n, kThreads, l.bytes, stream>>>(
      s, l, q, static_cast<const T*>(keys), static_cast<const T*>(values), out, ids, weights);
  return cudaGetLastError();
}

}  // namespace

std::string CheckPkmLookupShape(const PkmLookupShape& s, ValueType type) {
  auto range = [](const char* what, int v, int lo, int hi) -> std::string {
    if (v >= lo && v <= hi) return "";
    return std::string(what) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
           "] for the CUDA PKM lookup, got " + std::to_string(v);
  };
  for (const std::string& e :
       {range("pkm_heads", s.heads, 1, kMaxHeads), range("pkm_n_keys", s.n_keys, 1, kMaxNKeys),
        range("pkm_knn", s.knn, 1, s.n_keys < kMaxKnn ? s.n_keys : kMaxKnn),
        range("pkm_k_dim", s.k_dim, 2, kMaxKDim), range("pkm_v_dim", s.v_dim, 1, 1 << 16)}) {
    if (!e.empty()) return e;
  }
  if (s.k_dim % 2 != 0) return "pkm_k_dim must be even, got " + std::to_string(s.k_dim);
  const size_t vec = 16 / ValueBytes(type);
  if (s.v_dim % vec != 0) {
    return "pkm_v_dim must be a multiple of " + std::to_string(vec) +
           " (16-byte value loads), got " + std::to_string(s.v_dim);
  }
  return "";
}

cudaError_t PkmLookup(const PkmLookupShape& s, ValueType type, const float* q, int n,
                      const void* keys, const void* values, float* out, int32_t* ids,
                      float* weights, cudaStream_t stream) {
  if (!CheckPkmLookupShape(s, type).empty() || n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  switch (type) {
    case ValueType::kF32:
      return Launch<float>(s, q, n, keys, values, out, ids, weights, stream);
    case ValueType::kF16:
      return Launch<__half>(s, q, n, keys, values, out, ids, weights, stream);
    case ValueType::kBF16:
      return Launch<__nv_bfloat16>(s, q, n, keys, values, out, ids, weights, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace pkm::cuda
