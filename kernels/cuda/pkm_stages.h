// The stages the PKM launchers compose (internal to kernels/cuda). All pointers are device
// memory; every launcher is asynchronous on `stream` and returns the launch's status.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/pkm_lookup.h"

namespace pkm::cuda::detail {

// Per token and head, one block: the top-k of each half's sub-key scores, the top-k of the
// candidate sums, fp32 softmax -> ids and weights [n, heads, knn]. The sub-key scores are read
// from `scores` ([n, heads, 2, n_keys] fp32) when it is not null, else computed in the block
// from q ([n, heads, k_dim] fp32, plus q_bias [heads * k_dim] when not null) and the keys.
cudaError_t LaunchSelect(const PkmLookupShape& s, ValueType type, const float* q,
                         const float* q_bias, const float* scores, int n, const void* keys,
                         int32_t* ids, float* weights, cudaStream_t stream);

// out[t] = sum over heads and selections of weights * values[ids] ([n, v_dim] fp32); each value
// row read once with 16-byte loads, fp32 sums in a fixed order (independent of n).
cudaError_t LaunchGather(const PkmLookupShape& s, ValueType type, const int32_t* ids,
                         const float* weights, int n, const void* values, float* out,
                         cudaStream_t stream);

// The unfused chain's stages (bench/cuda compares the fused path against them).
// Rank keys of the k best of each row of `scores` [rows, len] (index = column, or
// index[row, column] when `index` is not null) -> best [rows, k], sorted.
cudaError_t LaunchRowTopK(const float* scores, const int32_t* index, int rows, int len, int k,
                          uint64_t* best, cudaStream_t stream);
// From the halves' best [n * heads, 2, k]: all k*k candidate sums and slot ids, [n * heads, k*k].
cudaError_t LaunchProductCandidates(const uint64_t* half_best, int rows, int k, int n_keys,
                                    float* cand_scores, int32_t* cand_ids, cudaStream_t stream);
// ids and softmax weights of sorted rank keys [rows, k].
cudaError_t LaunchSoftmaxOfBest(const uint64_t* best, int rows, int k, int32_t* ids,
                                float* weights, cudaStream_t stream);

}  // namespace pkm::cuda::detail
