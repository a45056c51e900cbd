// The fp32 ops of one forward pass on a CUDA device, with the semantics of kernels/cpu/kernels.h
// (whose plain references are the spec; tests/kernels/cuda compares them). All pointers are
// device memory; each op is one asynchronous launch on `stream` and returns its status.
// Each output element is computed by the same sequence of operations whatever n is (batch
// invariance, as on the CPU).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace pkm::cuda {

// y[n, d] = LayerNorm(x) * gamma + beta (two-pass fp32 statistics); beta may be null (no
// bias). y may alias x.
cudaError_t LayerNorm(const float* x, int n, int d, const float* gamma, const float* beta,
                      float eps, float* y, cudaStream_t stream);
// y[n, d] = x / sqrt(mean(x²) + eps) * gamma (fp32 statistics). y may alias x.
cudaError_t RmsNorm(const float* x, int n, int d, const float* gamma, float eps, float* y,
                    cudaStream_t stream);
// In place, exact GELU.
cudaError_t Gelu(float* x, size_t count, cudaStream_t stream);
// In place, GELU's tanh approximation.
cudaError_t GeluTanh(float* x, size_t count, cudaStream_t stream);
// In place, max(x, 0) (NaN and −0 unchanged).
cudaError_t Relu(float* x, size_t count, cudaStream_t stream);
// y[i] = silu(gate[i]) * up[i], all [count]; y may alias gate or up.
cudaError_t SiluMul(const float* gate, const float* up, size_t count, float* y,
                    cudaStream_t stream);
// In place RoPE, rotate-half pairing, on x[n, heads, head_dim].
cudaError_t Rope(float* x, int n, int heads, int head_dim, const int32_t* positions, float theta,
                 cudaStream_t stream);
// Causal attention of a ragged batch over the paged KV cache, grouped-query
// (kernels/cpu/kernels.h); the scores of one (token, head), max_blocks * block_size floats, live
// in shared memory.
//   q        [n, heads, head_dim]
//   k_cache  [num_blocks, block_size, kv_heads, head_dim], v_cache likewise
//   out      [n, heads * head_dim]
// cudaErrorInvalidValue when kv_heads does not divide heads.
cudaError_t PagedAttention(const float* q, int n, int heads, int kv_heads, int head_dim,
                           const float* k_cache, const float* v_cache, int block_size,
                           const int32_t* block_tables, int max_blocks, const int32_t* token_seq,
                           const int32_t* token_pos, float* out, cudaStream_t stream);
// out[t, :] = table[tokens[t], :]
cudaError_t Embedding(const float* table, int d, const int32_t* tokens, int n, float* out,
                      cudaStream_t stream);
// y[i] += x[i]
cudaError_t Add(float* y, const float* x, size_t count, cudaStream_t stream);
// y[t, j] += b[j] for y [n, width]
cudaError_t AddBias(float* y, const float* b, int n, int width, cudaStream_t stream);
// Rows of k and v [n, row] to their (sequence, position) slots of the paged caches.
cudaError_t KvWrite(const float* k, const float* v, int n, int row, int block_size,
                    const int32_t* block_tables, int max_blocks, const int32_t* token_seq,
                    const int32_t* token_pos, float* k_cache, float* v_cache,
                    cudaStream_t stream);
// out[i, :] = x[rows[i], :]
cudaError_t GatherRows(const float* x, int d, const int32_t* rows, int count, float* out,
                       cudaStream_t stream);

}  // namespace pkm::cuda
