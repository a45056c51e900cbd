// The product-key lookup on a CUDA device: the semantics of kernels/cpu/kernels.h's PkmLookup
// (its plain reference, kernels/cpu/reference.cc, is the spec), for a batch of tokens.
//
// Per token and head: sub-key scores of both halves, the top-k of each, the top-k of the k x k
// sums, fp32 softmax; then the weighted sum of the selected value rows over every head. One
// Two launches: the selection, one block per (token, head), then the value gather-sum over
// every head; neither the n_keys score vectors nor the k x k candidates reach global memory,
// only the k ids and weights per head.
//
// Ties: every top-k orders by score descending, then index ascending (sub-key index, then slot
// id), with NaN above +inf and -0 equal to +0: the rule of training/pkm.py and kernels/cpu.
// Only the pairs (a, b) of the two sorted top-k lists with (a+1)(b+1) <= k can be in the top-k
// of the sums (each has (a+1)(b+1) - 1 pairs ranking before it), so about k ln k candidates are
// ranked instead of k^2, with the same result.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

namespace pkm::cuda {

struct PkmLookupShape {
  int heads;   // H
  int knn;     // k
  int n_keys;  // sub-keys per half; n_keys^2 slots
  int k_dim;   // query width per head (even)
  int v_dim;   // value width
};

// Limits of this kernel; CheckPkmLookupShape refuses what lies outside them.
inline constexpr int kMaxNKeys = 2048;
inline constexpr int kMaxKnn = 128;
inline constexpr int kMaxHeads = 16;
inline constexpr int kMaxKDim = 4096;

enum class ValueType { kF32, kF16, kBF16 };

// Empty when the kernel supports `shape` for values and keys of `type`, else what is wrong and
// what is expected.
std::string CheckPkmLookupShape(const PkmLookupShape& shape, ValueType type);

// All pointers are device memory.
//   q        [n, heads, k_dim] fp32      projected queries
//   keys     [heads, 2, n_keys, k_dim/2] of `type`
//   values   [n_keys^2, v_dim] of `type`
//   out      [n, v_dim] fp32             overwritten with sum_h sum_j w[h,j] * values[ids[h,j]]
//   ids      [n, heads, knn]             selected slot ids, best first
//   weights  [n, heads, knn]             their softmax weights
// Returns cudaErrorInvalidValue for a shape CheckPkmLookupShape refuses or a null ids/weights,
// else the launches' status. Asynchronous on `stream`.
cudaError_t PkmLookup(const PkmLookupShape& shape, ValueType type, const float* q, int n,
                      const void* keys, const void* values, float* out, int32_t* ids,
                      float* weights, cudaStream_t stream);

}  // namespace pkm::cuda
