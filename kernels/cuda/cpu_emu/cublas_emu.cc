// The cuBLAS subset of cublas_v2.h for the emulated CUDA build: column-major GEMMs as loops with
// fp32 accumulation, enqueued on the handle's stream so they read what earlier launches wrote.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/pkm_device.cuh"

// The loops are always plain fp32 (pedantic math), so a handle holds only its stream.
struct cublasContext {
  cudaStream_t stream = nullptr;
};

namespace {

bool Known(cudaDataType_t t) { return t == CUDA_R_32F || t == CUDA_R_16F || t == CUDA_R_16BF; }

using pkm::cuda::ToFloat;

// One column-major GEMM: C = alpha op(A) op(B) + beta C, C float; C is not read when beta is 0.
struct Gemm {
  cublasOperation_t transa, transb;
  int m, n, k;
  float alpha, beta;
  const void* a;
  cudaDataType_t a_type;
  int lda;
  const void* b;
  cudaDataType_t b_type;
  int ldb;
  float* c;
  int ldc;

  template <typename T>
  void RunTyped() const {
    const T* A = static_cast<const T*>(a);
    const T* B = static_cast<const T*>(b);
    // Element strides of op(A) along (i, l) and of op(B) along (l, j).
    const int64_t a_i = transa == CUBLAS_OP_N ? 1 : lda, a_l = transa == CUBLAS_OP_N ? lda : 1;
    const int64_t b_l = transb == CUBLAS_OP_N ? 1 : ldb, b_j = transb == CUBLAS_OP_N ? ldb : 1;
    for (int j = 0; j < n; ++j) {
      for (int i = 0; i < m; ++i) {
        const T* ai = A + i * a_i;
        const T* bj = B + j * b_j;
        float acc = 0.0f;
        for (int l = 0; l < k; ++l) acc += ToFloat(ai[l * a_l]) * ToFloat(bj[l * b_l]);
        float& out = c[i + int64_t{j} * ldc];
        out = beta == 0.0f ? alpha * acc : alpha * acc + beta * out;
      }
    }
  }
  void Run() const {  // A and B have one type (checked by the callers)
    switch (a_type) {
      case CUDA_R_16F:
        return RunTyped<__half>();
      case CUDA_R_16BF:
        return RunTyped<__nv_bfloat16>();
      case CUDA_R_32F:
        break;
    }
    RunTyped<float>();
  }
};

// cuBLAS's documented argument checks for gemm.
cublasStatus_t Check(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m,
                     int n, int k, int lda, int ldb, int ldc) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (transa != CUBLAS_OP_N && transa != CUBLAS_OP_T) return CUBLAS_STATUS_INVALID_VALUE;
  if (transb != CUBLAS_OP_N && transb != CUBLAS_OP_T) return CUBLAS_STATUS_INVALID_VALUE;
  if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (lda < std::max(1, transa == CUBLAS_OP_N ? m : k)) return CUBLAS_STATUS_INVALID_VALUE;
  if (ldb < std::max(1, transb == CUBLAS_OP_N ? k : n)) return CUBLAS_STATUS_INVALID_VALUE;
  if (ldc < std::max(1, m)) return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;
}

// Runs `batches` GEMMs after everything already issued on the handle's stream.
cublasStatus_t Enqueue(cublasHandle_t h, Gemm g, int batches, long long stride_a,
                       long long stride_b, long long stride_c) {
  if (g.m == 0 || g.n == 0 || batches == 0) return CUBLAS_STATUS_SUCCESS;
  const int a_bytes = g.a_type == CUDA_R_32F ? 4 : 2, b_bytes = g.b_type == CUDA_R_32F ? 4 : 2;
  hip::detail::launch(
      dim3(1), dim3(1), 0, h->stream,
      [=]() noexcept {
        for (int batch = 0; batch < batches; ++batch) {
          Gemm one = g;
          one.a = static_cast<const char*>(g.a) + batch * stride_a * a_bytes;
          one.b = static_cast<const char*>(g.b) + batch * stride_b * b_bytes;
          one.c = g.c + batch * stride_c;
          one.Run();
        }
      },
      std::make_tuple());
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t) {
  return handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}
const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa,
                           cublasOperation_t transb, int m, int n, int k, const float* alpha,
                           const float* A, int lda, const float* B, int ldb, const float* beta,
                           float* C, int ldc) {
  if (cublasStatus_t e = Check(handle, transa, transb, m, n, k, lda, ldb, ldc); e) return e;
  if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
  return Enqueue(handle,
                 {transa, transb, m, n, k, *alpha, *beta, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb,
                  C, ldc},
                 1, 0, 0, 0);
}

cublasStatus_t cublasGemmStridedBatchedEx(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
    int k, const void* alpha, const void* A, cudaDataType_t Atype, int lda, long long strideA,
    const void* B, cudaDataType_t Btype, int ldb, long long strideB, const void* beta, void* C,
    cudaDataType_t Ctype, int ldc, long long strideC, int batchCount,
    cublasComputeType_t computeType, cublasGemmAlgo_t) {
  if (cublasStatus_t e = Check(handle, transa, transb, m, n, k, lda, ldb, ldc); e) return e;
  if (!alpha || !beta || batchCount < 0) return CUBLAS_STATUS_INVALID_VALUE;
  // cuBLAS takes these only in matching pairs; the emulation writes fp32 results only.
  if (!Known(Atype) || Atype != Btype || Ctype != CUDA_R_32F ||
      (computeType != CUBLAS_COMPUTE_32F && computeType != CUBLAS_COMPUTE_32F_PEDANTIC)) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  return Enqueue(handle,
                 {transa, transb, m, n, k, *static_cast<const float*>(alpha),
                  *static_cast<const float*>(beta), A, Atype, lda, B, Btype, ldb,
                  static_cast<float*>(C), ldc},
                 batchCount, strideA, strideB, strideC);
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k, const void* alpha,
                            const void* A, cudaDataType_t Atype, int lda, const void* B,
                            cudaDataType_t Btype, int ldb, const void* beta, void* C,
                            cudaDataType_t Ctype, int ldc, cublasComputeType_t computeType,
                            cublasGemmAlgo_t algo) {
  return cublasGemmStridedBatchedEx(handle, transa, transb, m, n, k, alpha, A, Atype, lda, 0, B,
                                    Btype, ldb, 0, beta, C, Ctype, ldc, 0, 1, computeType, algo);
}
