#include "kernels/cuda/pkm_lookup.h"

#include <cstdint>

#include "kernels/cuda/pkm_stages.h"

namespace pkm::cuda {
namespace {

size_t ValueBytes(ValueType type) { return type == ValueType::kF32 ? 4 : 2; }

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
  if (!CheckPkmLookupShape(s, type).empty() || n < 0 || !ids || !weights) {
    return cudaErrorInvalidValue;
  }
  const cudaError_t select =
      detail::LaunchSelect(s, type, q, nullptr, nullptr, n, keys, ids, weights, stream);
  if (select != cudaSuccess) return select;
  return detail::LaunchGather(s, type, ids, weights, n, values, out, stream);
}

}  // namespace pkm::cuda
