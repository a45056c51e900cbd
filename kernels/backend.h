// The whole surface a device must provide to run the model: memory, copies and the ops of one
// forward pass. The engine owns no device code; it calls these.
//
// Pointers passed to ops are this backend's memory (from Alloc). The ops' semantics are those
// of kernels/cpu/kernels.h, whose plain reference versions are the spec for every backend.
// Activations are fp32. Weight matrices (Linear, Embedding, PkmLookup's values) are typed
// (kBackendApiVersion 4: version 3's ops with WeightMatrix weights and per-token PKM limits;
// version 3 added RmsNorm, GeluTanh, Relu, SiluMul, LayerNorm without bias and grouped-query
// PagedAttention for the format 2 families): a backend says which weight types it reads, and
// the engine widens the others to fp32 at load. The CUDA backend
// lives in a plugin built with the server (engine/backend_loader.h); the version guards against
// a stale one. A backend is used by one thread at a time (the engine thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "kernels/cpu/kernels.h"

namespace pkm {

inline constexpr int kBackendApiVersion = 4;

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;

  // Memory. Alloc returns 64-byte aligned memory, or null when the device is out of memory.
  // Free takes the size given to Alloc, so the backend can account without a lookup.
  virtual void* Alloc(size_t bytes) = 0;
  virtual void Free(void* p, size_t bytes) = 0;
  virtual void CopyToDevice(void* dst, const void* src, size_t bytes) = 0;
  virtual void CopyToHost(void* dst, const void* src, size_t bytes) = 0;
  // Waits for every op issued so far.
  virtual void Synchronize() = 0;
  // Bytes currently allocated through Alloc.
  virtual size_t allocated_bytes() const = 0;
  // The device's memory capacity: a GPU's global memory; the host's physical memory for the
  // CPU backend.
  virtual size_t memory_total_bytes() const = 0;

  // Empty when PkmLookup supports a memory of this shape, else what is wrong and what is
  // expected (the engine refuses such a model at load).
  virtual std::string CheckPkmShape(const cpu::PkmShape& /*shape*/) const { return ""; }

  // Whether Linear and Embedding read weights of type `t` as stored (fp32 always).
  virtual bool ReadsWeightType(WeightType t) const { return t == WeightType::kF32; }
  // Whether PkmLookup reads value tables of type `t` as stored (fp32 always).
  virtual bool ReadsPkmValueType(WeightType t) const { return t == WeightType::kF32; }
  // Whether PkmLookup honours per-token limits (a request's memory_knn / memory_heads).
  virtual bool SupportsPkmTokenLimits() const { return false; }
  // Whether ops may read host memory directly (the CPU backend): then the engine uses weights
  // from the model file's mapping instead of copying them into Alloc'd memory.
  virtual bool AddressesHostMemory() const { return false; }

  // Ops: see kernels/cpu/kernels.h for the exact semantics.
  // w is of a type ReadsWeightType accepts.
  virtual void Linear(const float* x, int n, int in, WeightMatrix w, const float* b, int out,
                      float* y) = 0;
  // beta may be null (no bias).
  virtual void LayerNorm(const float* x, int n, int d, const float* gamma, const float* beta,
                         float eps, float* y) = 0;
  virtual void RmsNorm(const float* x, int n, int d, const float* gamma, float eps,
                       float* y) = 0;
  virtual void Gelu(float* x, size_t count) = 0;
  virtual void GeluTanh(float* x, size_t count) = 0;
  virtual void Relu(float* x, size_t count) = 0;
  // y may alias gate or up.
  virtual void SiluMul(const float* gate, const float* up, size_t count, float* y) = 0;
  virtual void Rope(float* x, int n, int heads, int head_dim, const int32_t* positions,
                    float theta) = 0;
  // The caches are [num_blocks, block_size, kv_heads, head_dim]; heads % kv_heads == 0.
  virtual void PagedAttention(const float* q, int n, int heads, int kv_heads, int head_dim,
                              const float* k_cache, const float* v_cache, int block_size,
                              const int32_t* block_tables, int max_blocks,
                              const int32_t* token_seq, const int32_t* token_pos, float* out) = 0;
  // values is of a type ReadsPkmValueType accepts; limits are empty unless
  // SupportsPkmTokenLimits().
  virtual void PkmLookup(const cpu::PkmShape& s, const float* q, int n, const float* keys,
                         WeightMatrix values, float* out, int32_t* ids, float* weights,
                         const cpu::PkmTokenLimits& limits) = 0;

  // out[t, :] = table[tokens[t], :] (widened) for t < n; table is [rows, d].
  virtual void Embedding(WeightMatrix table, int d, const int32_t* tokens, int n, float* out) = 0;
  // y[i] += x[i]
  virtual void Add(float* y, const float* x, size_t count) = 0;
  // Writes row t of k and v ([n, row] each) to position token_pos[t] of sequence token_seq[t]
  // in the paged caches ([num_blocks, block_size, row]).
  virtual void KvWrite(const float* k, const float* v, int n, int row, int block_size,
                       const int32_t* block_tables, int max_blocks, const int32_t* token_seq,
                       const int32_t* token_pos, float* k_cache, float* v_cache) = 0;
  // out[i, :] = x[rows[i], :] for i < count; x is [*, d].
  virtual void GatherRows(const float* x, int d, const int32_t* rows, int count, float* out) = 0;
};

// Owns one allocation of a backend; move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(Backend* backend, size_t bytes)
      : backend_(backend), data_(backend->Alloc(bytes)), bytes_(data_ ? bytes : 0) {}
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      Reset();
      backend_ = o.backend_;
      data_ = o.data_;
      bytes_ = o.bytes_;
      o.data_ = nullptr;
      o.bytes_ = 0;
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { Reset(); }

  void Reset() {
    if (data_) backend_->Free(data_, bytes_);
    data_ = nullptr;
    bytes_ = 0;
  }
  template <typename T>
  T* as() const { return static_cast<T*>(data_); }
  float* f() const { return as<float>(); }
  size_t bytes() const { return bytes_; }
  explicit operator bool() const { return data_ != nullptr; }

 private:
  Backend* backend_ = nullptr;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace pkm
