#include "kernels/cuda/pkm_layer.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda/pkm_device.cuh"
#include "kernels/cuda/pkm_stages.h"

namespace pkm::cuda {
namespace {

size_t Bytes(ValueType type) { return type == ValueType::kF32 ? 4 : 2; }

cudaDataType_t CublasType(ValueType type) {
  switch (type) {
    case ValueType::kF16: return CUDA_R_16F;
    case ValueType::kBF16: return CUDA_R_16BF;
    case ValueType::kF32: break;
  }
  return CUDA_R_32F;
}

template <typename T>
__global__ void BiasCastKernel(const float* __restrict__ x, const float* __restrict__ bias,
                               int n, int width, T* y) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<size_t>(n) * width) return;
  y[i] = FromFloat<T>(x[i] + (bias ? bias[i % width] : 0.0f));
}

// The workspace's regions for n tokens, each 256-byte aligned; null where not needed.
struct Workspace {
  float* q = nullptr;          // [n, H * k_dim] projected queries
  int32_t* ids = nullptr;      // [n, H, k] when the caller does not want them
  float* weights = nullptr;    // [n, H, k]
  void* q_cast = nullptr;      // [n, H * k_dim] of the value type, with bias (GEMM scores)
  float* scores = nullptr;     // [n, H, 2, n_keys] (GEMM scores)
  uint64_t* half_best = nullptr;  // [n, H, 2, k] (unfused)
  float* cand_scores = nullptr;   // [n, H, k * k] (unfused)
  int32_t* cand_ids = nullptr;    // [n, H, k * k] (unfused)
  uint64_t* best = nullptr;       // [n, H, k] (unfused)
  size_t bytes = 0;
};

bool GemmScores(int n, const PkmLayerOptions& o) {
  return o.unfused || n >= o.score_gemm_min_tokens;
}

Workspace Carve(const PkmLookupShape& s, ValueType type, int n, const PkmLayerOptions& o,
                char* base) {
  Workspace w;
  size_t at = 0;
  auto take = [&](size_t bytes) -> void* {
    void* p = base ? base + at : nullptr;
    at += (bytes + 255) / 256 * 256;
    return p;
  };
  const size_t tokens = static_cast<size_t>(n), hk = static_cast<size_t>(s.heads) * s.knn;
  const size_t q_width = static_cast<size_t>(s.heads) * s.k_dim;
  w.q = static_cast<float*>(take(tokens * q_width * sizeof(float)));
  w.ids = static_cast<int32_t*>(take(tokens * hk * sizeof(int32_t)));
  w.weights = static_cast<float*>(take(tokens * hk * sizeof(float)));
  if (GemmScores(n, o)) {
    w.q_cast = type == ValueType::kF32 ? static_cast<void*>(w.q) : take(tokens * q_width * Bytes(type));
    w.scores = static_cast<float*>(take(tokens * 2 * s.heads * s.n_keys * sizeof(float)));
  }
  if (o.unfused) {
    const size_t kk = static_cast<size_t>(s.knn) * s.knn;
    w.half_best = static_cast<uint64_t*>(take(tokens * 2 * hk * sizeof(uint64_t)));
    w.cand_scores = static_cast<float*>(take(tokens * s.heads * kk * sizeof(float)));
    w.cand_ids = static_cast<int32_t*>(take(tokens * s.heads * kk * sizeof(int32_t)));
    w.best = static_cast<uint64_t*>(take(tokens * hk * sizeof(uint64_t)));
  }
  w.bytes = at;
  return w;
}

std::string Cuda(const char* what, cudaError_t e) {
  return e == cudaSuccess ? "" : std::string(what) + ": " + cudaGetErrorString(e);
}
std::string Cublas(const char* what, cublasStatus_t e) {
  return e == CUBLAS_STATUS_SUCCESS ? "" : std::string(what) + ": " + cublasGetStatusString(e);
}

cudaError_t LaunchBiasCast(ValueType type, const float* x, const float* bias, int n, int width,
                           void* y, cudaStream_t stream) {
  const size_t count = static_cast<size_t>(n) * width;
  const unsigned blocks = static_cast<unsigned>((count + 255) / 256);
  switch (type) {
    case ValueType::kF32:
      BiasCastKernel<<<blocks, 256, 0, stream>>>(x, bias, n, width, static_cast<float*>(y));
      break;
    case ValueType::kF16:
      BiasCastKernel<<<blocks, 256, 0, stream>>>(x, bias, n, width, static_cast<__half*>(y));
      break;
    case ValueType::kBF16:
      BiasCastKernel<<<blocks, 256, 0, stream>>>(x, bias, n, width,
                                                 static_cast<__nv_bfloat16*>(y));
      break;
  }
  return cudaGetLastError();
}

// Sub-key scores [n, H, 2, n_keys] = per (head, half) b: keys_b [n_keys, half] . q_b [half].
// Column-major, batch b: C_b (n_keys x n, ld 2H*n_keys) = keys_b^T' (n_keys x half) *
// q_b (half x n, ld H*k_dim).
cublasStatus_t ScoreGemm(cublasHandle_t cublas, const PkmLookupShape& s, ValueType type,
                         const void* keys, const void* q_cast, int n, float* scores) {
  const int half = s.k_dim / 2;
  const float one = 1.0f, zero = 0.0f;
  const cudaDataType_t t = CublasType(type);
  return cublasGemmStridedBatchedEx(
      cublas, CUBLAS_OP_T, CUBLAS_OP_N, s.n_keys, n, half, &one, keys, t, half,
      static_cast<long long>(s.n_keys) * half, q_cast, t, s.heads * s.k_dim, half, &zero, scores,
      CUDA_R_32F, 2 * s.heads * s.n_keys, s.n_keys, 2 * s.heads, CUBLAS_COMPUTE_32F,
      CUBLAS_GEMM_DEFAULT);
}

std::string Unfused(const PkmLookupShape& s, const Workspace& w, int n, int32_t* ids,
                    float* weights, cudaStream_t stream) {
  const int rows = n * s.heads, k = s.knn;
  std::string e = Cuda("half top-k",
                       detail::LaunchRowTopK(w.scores, nullptr, 2 * rows, s.n_keys, k,
                                             w.half_best, stream));
  if (e.empty()) {
    e = Cuda("candidates", detail::LaunchProductCandidates(w.half_best, rows, k, s.n_keys,
                                                           w.cand_scores, w.cand_ids, stream));
  }
  if (e.empty()) {
    e = Cuda("candidate top-k", detail::LaunchRowTopK(w.cand_scores, w.cand_ids, rows, k * k, k,
                                                      w.best, stream));
  }
  if (e.empty()) e = Cuda("softmax", detail::LaunchSoftmaxOfBest(w.best, rows, k, ids, weights, stream));
  return e;
}

}  // namespace

size_t PkmLayerWorkspaceBytes(const PkmLookupShape& shape, ValueType type, int max_tokens,
                              const PkmLayerOptions& options) {
  return Carve(shape, type, max_tokens, options, nullptr).bytes;
}

std::string PkmLayerForward(const PkmLookupShape& s, int d, ValueType type,
                            const PkmLayerWeights& lw, const void* x, int n, float* out,
                            int32_t* ids, float* slot_weights, void* workspace,
                            size_t workspace_bytes, cublasHandle_t cublas, cudaStream_t stream,
                            const PkmLayerOptions& o) {
  if (std::string e = CheckPkmLookupShape(s, type); !e.empty()) return e;
  if (d <= 0 || n < 0) {
    return "the PKM layer needs d > 0 and n >= 0, got d " + std::to_string(d) + ", n " +
           std::to_string(n);
  }
  if (n == 0) return "";
  const Workspace w = Carve(s, type, n, o, static_cast<char*>(workspace));
  if (workspace_bytes < w.bytes) {
    return "the PKM layer's workspace holds " + std::to_string(workspace_bytes) + " bytes; " +
           std::to_string(n) + " tokens need " + std::to_string(w.bytes);
  }
  if (!ids) ids = w.ids;
  if (!slot_weights) slot_weights = w.weights;
  std::string e = Cublas("cublasSetStream", cublasSetStream(cublas, stream));
  // q [n, H*k_dim] = x [n, d] . W_q^T, column-major: q^T = op_T(W_q as d x H*k_dim) * x^T.
  const int q_width = s.heads * s.k_dim;
  const float one = 1.0f, zero = 0.0f;
  const cudaDataType_t t = CublasType(type);
  if (e.empty()) {
    e = Cublas("query projection",
               cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, q_width, n, d, &one,
                            lw.query_weight, t, d, x, t, d, &zero, w.q, CUDA_R_32F, q_width,
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
  if (!e.empty()) return e;
  if (!GemmScores(n, o)) {
    e = Cuda("selection", detail::LaunchSelect(s, type, w.q, lw.query_bias, nullptr, n, lw.keys,
                                               ids, slot_weights, stream));
  } else {
    e = Cuda("query bias", LaunchBiasCast(type, w.q, lw.query_bias, n, q_width, w.q_cast, stream));
    if (e.empty()) {
      e = Cublas("sub-key scores", ScoreGemm(cublas, s, type, lw.keys, w.q_cast, n, w.scores));
    }
    if (e.empty()) {
      e = o.unfused ? Unfused(s, w, n, ids, slot_weights, stream)
                    : Cuda("selection", detail::LaunchSelect(s, type, nullptr, nullptr, w.scores,
                                                             n, lw.keys, ids, slot_weights,
                                                             stream));
    }
  }
  if (e.empty()) {
    e = Cuda("value gather",
             detail::LaunchGather(s, type, ids, slot_weights, n, lw.values, out, stream));
  }
  return e;
}

}  // namespace pkm::cuda
