// One PKM layer on a CUDA device, from the layer's input to its output, for a batch of tokens:
// the query projection (a cuBLAS GEMM), then the lookup of pkm_lookup.h.
//
// Two ways to the sub-key scores, with the same rule for ties:
//   - small batches (decode): computed inside the selection blocks, never in global memory;
//   - from options.score_gemm_min_tokens tokens: one cuBLAS GEMM per head and half into a
//     workspace, which pays once the batch is large enough to keep tensor cores busy.
// The unfused chain (options.unfused) runs every stage as its own launch with its
// intermediates in global memory: the baseline the benchmarks compare the fused path with.
//
// Batch invariance: with one path, a token's ids, weights and output do not depend on the
// other tokens of the call; the path itself depends on n, and cuBLAS may pick another algorithm
// for another n. A caller that needs bit-identical results across batch sizes sets
// score_gemm_min_tokens above its largest batch.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/cuda/pkm_lookup.h"

namespace pkm::cuda {

// Device pointers; the value type of the layer is that of query_weight, keys, values and x.
struct PkmLayerWeights {
  const void* query_weight;  // [heads * k_dim, d]  (a trained query BatchNorm folded in)
  const float* query_bias;   // [heads * k_dim] fp32, or null
  const void* keys;          // [heads, 2, n_keys, k_dim / 2]
  const void* values;        // [n_keys^2, v_dim]
};

struct PkmLayerOptions {
  int score_gemm_min_tokens = 128;
  bool unfused = false;
};

// Workspace for calls of up to max_tokens tokens.
size_t PkmLayerWorkspaceBytes(const PkmLookupShape& shape, ValueType type, int max_tokens,
                              const PkmLayerOptions& options = {});

// x [n, d] of `type` -> out [n, v_dim] fp32 (summed over heads); ids and weights
// [n, heads, knn] are written when not null. Asynchronous on `stream` (set on `cublas`).
// Returns empty, or what is wrong: a shape CheckPkmLookupShape refuses, a workspace smaller
// than PkmLayerWorkspaceBytes(n), a failed launch or cuBLAS call.
std::string PkmLayerForward(const PkmLookupShape& shape, int d, ValueType type,
                            const PkmLayerWeights& weights, const void* x, int n, float* out,
                            int32_t* ids, float* slot_weights, void* workspace,
                            size_t workspace_bytes, cublasHandle_t cublas, cudaStream_t stream,
                            const PkmLayerOptions& options = {});

}  // namespace pkm::cuda
