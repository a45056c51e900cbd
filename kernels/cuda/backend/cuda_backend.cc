// The CUDA backend: the engine's Backend on one CUDA device, fp32 buffers (Backend API v3),
// dense GEMMs by cuBLAS, the other ops by kernels/cuda. Built into the plugin libpkm_cuda.so,
// which the server loads with dlopen (engine/backend_loader.h) through PkmCudaBackendCreate.
//
// Every op is issued on one stream; CopyToHost and Synchronize wait for it. A CUDA or cuBLAS
// error inside an op is a device fault, not a client's mistake: it is printed with the op's
// name and the process aborts (the device context is unusable after most of them).
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/backend.h"
#include "kernels/cuda/backend/cuda_backend_plugin.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/pkm_lookup.h"

namespace pkm::cuda {
namespace {

void Check(cudaError_t e, const char* op) {
  if (e == cudaSuccess) return;
  std::fprintf(stderr, "pkmserve: CUDA backend: %s failed: %s\n", op, cudaGetErrorString(e));
  std::abort();
}
void Check(cublasStatus_t e, const char* op) {
  if (e == CUBLAS_STATUS_SUCCESS) return;
  std::fprintf(stderr, "pkmserve: CUDA backend: %s failed: %s\n", op, cublasGetStatusString(e));
  std::abort();
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(cudaStream_t stream, cublasHandle_t cublas, size_t total)
      : stream_(stream), cublas_(cublas), total_(total) {}
  ~CudaBackend() override {
    if (selection_) cudaFree(selection_);
    cublasDestroy(cublas_);
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda"; }

  void* Alloc(size_t bytes) override {
    void* p = nullptr;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
      cudaGetLastError();  // out of memory is not sticky: clear it, report null
      return nullptr;
    }
    allocated_ += bytes;
    return p;
  }
  void Free(void* p, size_t bytes) override {
    if (!p) return;
    Check(cudaFree(p), "cudaFree");
    allocated_ -= bytes;
  }
  void CopyToDevice(void* dst, const void* src, size_t bytes) override {
    // From pageable memory the call returns once `src` has been staged: the caller may reuse it.
    Check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "copy to device");
  }
  void CopyToHost(void* dst, const void* src, size_t bytes) override {
    Check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "copy to host");
    Synchronize();
  }
  void Synchronize() override { Check(cudaStreamSynchronize(stream_), "synchronize"); }
  size_t allocated_bytes() const override { return allocated_; }
  size_t memory_total_bytes() const override { return total_; }

  std::string CheckPkmShape(const cpu::PkmShape& s) const override {
    return CheckPkmLookupShape({s.heads, s.knn, s.n_keys, s.k_dim, s.v_dim}, ValueType::kF32);
  }

  // Reads fp32 weights only (ReadsWeightType's default): the engine widens the others.
  void Linear(const float* x, int n, int in, WeightMatrix weights, const float* b, int out,
              float* y) override {
    if (n <= 0) return;
    const float* w = weights.f32();
    // Row-major y[n, out] = x[n, in] w[out, in]^T; column-major: y^T = op_T(w) x^T.
    const float one = 1.0f, zero = 0.0f;
    Check(cublasSgemm(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, w, in, x, in, &zero, y,
                      out),
          "Linear (cublasSgemm)");
    if (b) Check(AddBias(y, b, n, out, stream_), "Linear bias");
  }
  void LayerNorm(const float* x, int n, int d, const float* gamma, const float* beta, float eps,
                 float* y) override {
    Check(cuda::LayerNorm(x, n, d, gamma, beta, eps, y, stream_), "LayerNorm");
  }
  void RmsNorm(const float* x, int n, int d, const float* gamma, float eps, float* y) override {
    Check(cuda::RmsNorm(x, n, d, gamma, eps, y, stream_), "RmsNorm");
  }
  void Gelu(float* x, size_t count) override { Check(cuda::Gelu(x, count, stream_), "Gelu"); }
  void GeluTanh(float* x, size_t count) override {
    Check(cuda::GeluTanh(x, count, stream_), "GeluTanh");
  }
  void Relu(float* x, size_t count) override { Check(cuda::Relu(x, count, stream_), "Relu"); }
  void SiluMul(const float* gate, const float* up, size_t count, float* y) override {
    Check(cuda::SiluMul(gate, up, count, y, stream_), "SiluMul");
  }
  void Rope(float* x, int n, int heads, int head_dim, const int32_t* positions,
            float theta) override {
    Check(cuda::Rope(x, n, heads, head_dim, positions, theta, stream_), "Rope");
  }
  void PagedAttention(const float* q, int n, int heads, int kv_heads, int head_dim,
                      const float* k_cache, const float* v_cache, int block_size,
                      const int32_t* block_tables, int max_blocks, const int32_t* token_seq,
                      const int32_t* token_pos, float* out) override {
    Check(cuda::PagedAttention(q, n, heads, kv_heads, head_dim, k_cache, v_cache, block_size,
                               block_tables, max_blocks, token_seq, token_pos, out, stream_),
          "PagedAttention");
  }
  // fp32 value tables only (ReadsPkmValueType's default; the kernels also take fp16/bf16,
  // but that path has not run on a GPU yet).
  void PkmLookup(const cpu::PkmShape& s, const float* q, int n, const float* keys,
                 WeightMatrix value_table, float* out, int32_t* ids, float* weights,
                 const cpu::PkmTokenLimits& /*limits: never set, SupportsPkmTokenLimits false*/)
      override {
    const float* values = value_table.f32();
    const size_t selected = static_cast<size_t>(n) * s.heads * s.knn;
    if (!ids || !weights) {
      // The lookup always writes its selection; callers that do not want it get scratch.
      if (selected > selection_capacity_) {
        if (selection_) Check(cudaFree(selection_), "cudaFree");
        selection_ = nullptr;
        Check(cudaMalloc(&selection_, selected * (sizeof(int32_t) + sizeof(float))),
              "PkmLookup scratch");
        selection_capacity_ = selected;
      }
      if (!ids) ids = static_cast<int32_t*>(selection_);
      if (!weights) weights = reinterpret_cast<float*>(static_cast<int32_t*>(selection_) + selected);
    }
    Check(cuda::PkmLookup({s.heads, s.knn, s.n_keys, s.k_dim, s.v_dim}, ValueType::kF32, q, n,
                          keys, values, out, ids, weights, stream_),
          "PkmLookup");
  }
  void Embedding(WeightMatrix table, int d, const int32_t* tokens, int n, float* out) override {
    Check(cuda::Embedding(table.f32(), d, tokens, n, out, stream_), "Embedding");
  }
  void Add(float* y, const float* x, size_t count) override {
    Check(cuda::Add(y, x, count, stream_), "Add");
  }
  void KvWrite(const float* k, const float* v, int n, int row, int block_size,
               const int32_t* block_tables, int max_blocks, const int32_t* token_seq,
               const int32_t* token_pos, float* k_cache, float* v_cache) override {
    Check(cuda::KvWrite(k, v, n, row, block_size, block_tables, max_blocks, token_seq, token_pos,
                        k_cache, v_cache, stream_),
          "KvWrite");
  }
  void GatherRows(const float* x, int d, const int32_t* rows, int count, float* out) override {
    Check(cuda::GatherRows(x, d, rows, count, out, stream_), "GatherRows");
  }

 private:
  cudaStream_t stream_;
  cublasHandle_t cublas_;
  size_t total_;
  std::atomic<size_t> allocated_{0};
  void* selection_ = nullptr;  // ids + weights when the caller passes none
  size_t selection_capacity_ = 0;
};

void SetError(char* error, size_t size, const std::string& message) {
  if (!error || size == 0) return;
  std::snprintf(error, size, "%s", message.c_str());
}

}  // namespace
}  // namespace pkm::cuda

extern "C" pkm::Backend* PkmCudaBackendCreate(int api_version, int device, char* error,
                                              size_t error_size) {
  using pkm::cuda::SetError;
  if (api_version != pkm::kBackendApiVersion) {
    SetError(error, error_size,
             "libpkm_cuda.so implements backend API " + std::to_string(pkm::kBackendApiVersion) +
                 ", the server needs " + std::to_string(api_version) +
                 ": rebuild them together");
    return nullptr;
  }
  int count = 0;
  if (const cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess || count == 0) {
    SetError(error, error_size,
             std::string("no CUDA device (") +
                 (e != cudaSuccess ? cudaGetErrorString(e) : "the driver sees none") + ")");
    return nullptr;
  }
  if (device < 0 || device >= count) {
    SetError(error, error_size, "CUDA device " + std::to_string(device) + " does not exist; " +
                                    std::to_string(count) + " found");
    return nullptr;
  }
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  size_t free_bytes = 0, total = 0;
  cudaError_t e = cudaSetDevice(device);
  if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  if (e == cudaSuccess) e = cudaMemGetInfo(&free_bytes, &total);
  if (e != cudaSuccess) {
    SetError(error, error_size, std::string("cannot use CUDA device ") + std::to_string(device) +
                                    ": " + cudaGetErrorString(e));
    return nullptr;
  }
  if (const cublasStatus_t s = cublasCreate(&cublas); s != CUBLAS_STATUS_SUCCESS) {
    cudaStreamDestroy(stream);
    SetError(error, error_size, std::string("cuBLAS: ") + cublasGetStatusString(s));
    return nullptr;
  }
  cublasSetStream(cublas, stream);
  cublasSetMathMode(cublas, CUBLAS_PEDANTIC_MATH);  // fp32 GEMMs stay fp32 (no TF32)
  return new pkm::cuda::CudaBackend(stream, cublas, total);
}

extern "C" void PkmCudaBackendDescribe(int device, char* out, size_t size) {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    pkm::cuda::SetError(out, size, "unknown CUDA device");
    return;
  }
  std::snprintf(out, size, "%s, %.1f GiB, compute capability %d.%d", prop.name,
                static_cast<double>(prop.totalGlobalMem) / (1u << 30), prop.major, prop.minor);
}
