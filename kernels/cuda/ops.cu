#include "kernels/cuda/ops.h"

#include <cmath>

namespace pkm::cuda {
namespace {

constexpr int kThreads = 256;

unsigned Blocks(size_t count) { return static_cast<unsigned>((count + kThreads - 1) / kThreads); }

// Sum over the block in a fixed tree order; every thread gets the result.
__device__ float BlockSum(float v, float* scratch) {
  scratch[threadIdx.x] = v;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) scratch[threadIdx.x] += scratch[threadIdx.x + stride];
    __syncthreads();
  }
  const float total = scratch[0];
  __syncthreads();
  return total;
}

__device__ float BlockMax(float v, float* scratch) {
  scratch[threadIdx.x] = v;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) scratch[threadIdx.x] = fmaxf(scratch[threadIdx.x], scratch[threadIdx.x + stride]);
    __syncthreads();
  }
  const float m = scratch[0];
  __syncthreads();
  return m;
}

__global__ void __launch_bounds__(kThreads)
LayerNormKernel(const float* x, int d, const float* gamma, const float* beta, float eps, float* y) {
  __shared__ float scratch[kThreads];
  const float* xr = x + static_cast<size_t>(blockIdx.x) * d;
  float* yr = y + static_cast<size_t>(blockIdx.x) * d;
  float sum = 0.0f;
  for (int i = threadIdx.x; i < d; i += blockDim.x) sum += xr[i];
  const float mean = BlockSum(sum, scratch) / static_cast<float>(d);
  float sq = 0.0f;
  for (int i = threadIdx.x; i < d; i += blockDim.x) sq += (xr[i] - mean) * (xr[i] - mean);
  const float denom = sqrtf(BlockSum(sq, scratch) / static_cast<float>(d) + eps);
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    const float scaled = (xr[i] - mean) / denom * gamma[i];
    yr[i] = beta ? scaled + beta[i] : scaled;  // no bias: no + 0 (it would turn −0 into +0)
  }
}

// One block per row, as LayerNorm: the sum of squares in a fixed tree, then x / denom · gamma.
__global__ void __launch_bounds__(kThreads)
RmsNormKernel(const float* x, int d, const float* gamma, float eps, float* y) {
  __shared__ float scratch[kThreads];
  const float* xr = x + static_cast<size_t>(blockIdx.x) * d;
  float* yr = y + static_cast<size_t>(blockIdx.x) * d;
  float sq = 0.0f;
  for (int i = threadIdx.x; i < d; i += blockDim.x) sq += xr[i] * xr[i];
  const float denom = sqrtf(BlockSum(sq, scratch) / static_cast<float>(d) + eps);
  for (int i = threadIdx.x; i < d; i += blockDim.x) yr[i] = xr[i] / denom * gamma[i];
}

__global__ void GeluKernel(float* x, size_t count) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

__global__ void GeluTanhKernel(float* x, size_t count) {
  constexpr float kSqrtTwoOverPi = 0.79788456080286536f;  // √(2/π)
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const float v = x[i];
  x[i] = 0.5f * v * (1.0f + tanhf(kSqrtTwoOverPi * (v + 0.044715f * (v * v * v))));
}

__global__ void ReluKernel(float* x, size_t count) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count && x[i] < 0.0f) x[i] = 0.0f;  // NaN and −0 stay, as on the CPU
}

// y may alias gate or up: each thread reads its element of both before it writes it.
__global__ void SiluMulKernel(const float* gate, const float* up, size_t count, float* y) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const float g = gate[i];
  y[i] = g / (1.0f + expf(-g)) * up[i];
}

__global__ void RopeKernel(float* x, int n, int heads, int head_dim, const int32_t* positions,
                           float theta) {
  const int half = head_dim / 2;
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<size_t>(n) * heads * half) return;
  const int j = static_cast<int>(i % half);
  const size_t row = i / half;  // t * heads + h
  const int t = static_cast<int>(row / heads);
  // As the CPU reference: inv_freq and the angle in double, then float cos/sin.
  const double inv_freq = 1.0 / pow(static_cast<double>(theta), 2.0 * j / head_dim);
  const double angle = static_cast<double>(positions[t]) * inv_freq;
  const float c = static_cast<float>(cos(angle)), s = static_cast<float>(sin(angle));
  float* v = x + row * head_dim;
  const float a = v[j], b = v[j + half];
  v[j] = a * c - b * s;
  v[j + half] = a * s + b * c;
}

// One block per (token, query head): scores of every position in shared memory, softmax, then
// the weighted sum of the value rows in position order. The cache rows are those of the head's
// kv head, h / (heads / kv_heads).
__global__ void __launch_bounds__(kThreads)
PagedAttentionKernel(const float* q, int heads, int kv_heads, int head_dim, const float* k_cache,
                     const float* v_cache, int block_size, const int32_t* block_tables,
                     int max_blocks, const int32_t* token_seq, const int32_t* token_pos,
                     float* out) {
  extern __shared__ float scores[];
  __shared__ float scratch[kThreads];
  const int t = blockIdx.x / heads, h = blockIdx.x % heads;
  const int kvh = h / (heads / kv_heads);
  const int32_t* table = block_tables + static_cast<size_t>(token_seq[t]) * max_blocks;
  const int len = token_pos[t] + 1;
  const float* qh = q + (static_cast<size_t>(t) * heads + h) * head_dim;
  const float scale = sqrtf(static_cast<float>(head_dim));
  auto at = [&](int p) {
    const size_t slot = static_cast<size_t>(table[p / block_size]) * block_size + p % block_size;
    return (slot * kv_heads + kvh) * head_dim;
  };
  float local_max = -INFINITY;
  for (int p = threadIdx.x; p < len; p += blockDim.x) {
    const float* kp = k_cache + at(p);
    float dot = 0.0f;
    for (int i = 0; i < head_dim; ++i) dot += qh[i] * kp[i];
    scores[p] = dot / scale;
    local_max = fmaxf(local_max, scores[p]);
  }
  const float m = BlockMax(local_max, scratch);
  float local_sum = 0.0f;
  for (int p = threadIdx.x; p < len; p += blockDim.x) {
    scores[p] = expf(scores[p] - m);
    local_sum += scores[p];
  }
  const float denom = BlockSum(local_sum, scratch);
  for (int i = threadIdx.x; i < head_dim; i += blockDim.x) {
    float acc = 0.0f;
    for (int p = 0; p < len; ++p) acc += scores[p] * v_cache[at(p) + i];
    out[(static_cast<size_t>(t) * heads + h) * head_dim + i] = acc / denom;
  }
}

// Row copies: one block per row, threads over the row.
__global__ void GatherRowsKernel(const float* x, int d, const int32_t* rows, float* out) {
  const float* src = x + static_cast<size_t>(rows[blockIdx.x]) * d;
  float* dst = out + static_cast<size_t>(blockIdx.x) * d;
  for (int i = threadIdx.x; i < d; i += blockDim.x) dst[i] = src[i];
}

__global__ void AddKernel(float* y, const float* x, size_t count) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) y[i] += x[i];
}

__global__ void AddBiasKernel(float* y, const float* b, int n, int width) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < static_cast<size_t>(n) * width) y[i] += b[i % width];
}

__global__ void KvWriteKernel(const float* k, const float* v, int row, int block_size,
                              const int32_t* block_tables, int max_blocks,
                              const int32_t* token_seq, const int32_t* token_pos, float* k_cache,
                              float* v_cache) {
  const int t = blockIdx.x, pos = token_pos[t];
  const int32_t block =
      block_tables[static_cast<size_t>(token_seq[t]) * max_blocks + pos / block_size];
  const size_t slot = (static_cast<size_t>(block) * block_size + pos % block_size) * row;
  for (int i = threadIdx.x; i < row; i += blockDim.x) {
    k_cache[slot + i] = k[static_cast<size_t>(t) * row + i];
    v_cache[slot + i] = v[static_cast<size_t>(t) * row + i];
  }
}

}  // namespace

cudaError_t LayerNorm(const float* x, int n, int d, const float* gamma, const float* beta,
                      float eps, float* y, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  LayerNormKernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(x, d, gamma, beta, eps, y);
  return cudaGetLastError();
}

cudaError_t RmsNorm(const float* x, int n, int d, const float* gamma, float eps, float* y,
                    cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  RmsNormKernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(x, d, gamma, eps, y);
  return cudaGetLastError();
}

cudaError_t Gelu(float* x, size_t count, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  GeluKernel<<<Blocks(count), kThreads, 0, stream>>>(x, count);
  return cudaGetLastError();
}

cudaError_t GeluTanh(float* x, size_t count, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  GeluTanhKernel<<<Blocks(count), kThreads, 0, stream>>>(x, count);
  return cudaGetLastError();
}

cudaError_t Relu(float* x, size_t count, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  ReluKernel<<<Blocks(count), kThreads, 0, stream>>>(x, count);
  return cudaGetLastError();
}

cudaError_t SiluMul(const float* gate, const float* up, size_t count, float* y,
                    cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  SiluMulKernel<<<Blocks(count), kThreads, 0, stream>>>(gate, up, count, y);
  return cudaGetLastError();
}

cudaError_t Rope(float* x, int n, int heads, int head_dim, const int32_t* positions, float theta,
                 cudaStream_t stream) {
  const size_t count = static_cast<size_t>(n) * heads * (head_dim / 2);
  if (count == 0) return cudaSuccess;
  RopeKernel<<<Blocks(count), kThreads, 0, stream>>>(x, n, heads, head_dim, positions, theta);
  return cudaGetLastError();
}

cudaError_t PagedAttention(const float* q, int n, int heads, int kv_heads, int head_dim,
                           const float* k_cache, const float* v_cache, int block_size,
                           const int32_t* block_tables, int max_blocks, const int32_t* token_seq,
                           const int32_t* token_pos, float* out, cudaStream_t stream) {
  if (kv_heads <= 0 || heads % kv_heads != 0) return cudaErrorInvalidValue;
  if (n <= 0) return cudaSuccess;
  const size_t bytes = sizeof(float) * static_cast<size_t>(max_blocks) * block_size;
  const cudaError_t attr = cudaFuncSetAttribute(
      PagedAttentionKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (attr != cudaSuccess) return attr;
  PagedAttentionKernel<<<static_cast<unsigned>(n) * static_cast<unsigned>(heads), kThreads, bytes,
                         stream>>>(q, heads, kv_heads, head_dim, k_cache, v_cache, block_size,
                                   block_tables, max_blocks, token_seq, token_pos, out);
  return cudaGetLastError();
}

cudaError_t Embedding(const float* table, int d, const int32_t* tokens, int n, float* out,
                      cudaStream_t stream) {
  return GatherRows(table, d, tokens, n, out, stream);
}

cudaError_t Add(float* y, const float* x, size_t count, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  AddKernel<<<Blocks(count), kThreads, 0, stream>>>(y, x, count);
  return cudaGetLastError();
}

cudaError_t AddBias(float* y, const float* b, int n, int width, cudaStream_t stream) {
  const size_t count = static_cast<size_t>(n) * width;
  if (count == 0) return cudaSuccess;
  AddBiasKernel<<<Blocks(count), kThreads, 0, stream>>>(y, b, n, width);
  return cudaGetLastError();
}

cudaError_t KvWrite(const float* k, const float* v, int n, int row, int block_size,
                    const int32_t* block_tables, int max_blocks, const int32_t* token_seq,
                    const int32_t* token_pos, float* k_cache, float* v_cache,
                    cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  KvWriteKernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(
      k, v, row, block_size, block_tables, max_blocks, token_seq, token_pos, k_cache, v_cache);
  return cudaGetLastError();
}

cudaError_t GatherRows(const float* x, int d, const int32_t* rows, int count, float* out,
                       cudaStream_t stream) {
  if (count <= 0) return cudaSuccess;
  GatherRowsKernel<<<static_cast<unsigned>(count), kThreads, 0, stream>>>(x, d, rows, out);
  return cudaGetLastError();
}

}  // namespace pkm::cuda
