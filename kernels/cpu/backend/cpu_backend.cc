// The CPU backend: host memory and the kernels of kernels/cpu.
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "kernels/cpu/backend/cpu_backend.h"

namespace pkm {
namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads) { cpu::SetNumThreads(threads); }

  std::string name() const override { return "cpu"; }

  void* Alloc(size_t bytes) override {
    size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded ? rounded : 64);
    if (p) allocated_ += rounded;  // Free subtracts the same rounding of the same size
    return p;
  }
  void Free(void* p, size_t bytes) override {
    if (!p) return;
    std::free(p);
    allocated_ -= (bytes + 63) / 64 * 64;
  }
  void CopyToDevice(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void CopyToHost(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void Synchronize() override {}
  size_t allocated_bytes() const override { return allocated_; }
  size_t memory_total_bytes() const override {
    return static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
  }

  bool ReadsWeightType(WeightType) const override { return true; }
  bool ReadsPkmValueType(WeightType) const override { return true; }
  bool SupportsPkmTokenLimits() const override { return true; }
  bool AddressesHostMemory() const override { return true; }

  void Linear(const float* x, int n, int in, WeightMatrix w, const float* b, int out,
              float* y) override {
    cpu::Linear(x, n, in, w, b, out, y);
  }
  void LayerNorm(const float* x, int n, int d, const float* gamma, const float* beta, float eps,
                 float* y) override {
    cpu::LayerNorm(x, n, d, gamma, beta, eps, y);
  }
  void RmsNorm(const float* x, int n, int d, const float* gamma, float eps, float* y) override {
    cpu::RmsNorm(x, n, d, gamma, eps, y);
  }
  void Gelu(float* x, size_t count) override { cpu::Gelu(x, count); }
  void GeluTanh(float* x, size_t count) override { cpu::GeluTanh(x, count); }
  void Relu(float* x, size_t count) override { cpu::Relu(x, count); }
  void SiluMul(const float* gate, const float* up, size_t count, float* y) override {
    cpu::SiluMul(gate, up, count, y);
  }
  void Rope(float* x, int n, int heads, int head_dim, const int32_t* positions,
            float theta) override {
    cpu::Rope(x, n, heads, head_dim, positions, theta);
  }
  void PagedAttention(const float* q, int n, int heads, int kv_heads, int head_dim,
                      const float* k_cache, const float* v_cache, int block_size,
                      const int32_t* block_tables, int max_blocks, const int32_t* token_seq,
                      const int32_t* token_pos, float* out) override {
    cpu::PagedAttention(q, n, heads, kv_heads, head_dim, k_cache, v_cache, block_size,
                        block_tables, max_blocks, token_seq, token_pos, out);
  }
  void PkmLookup(const cpu::PkmShape& s, const float* q, int n, const float* keys,
                 WeightMatrix values, float* out, int32_t* ids, float* weights,
                 const cpu::PkmTokenLimits& limits) override {
    cpu::PkmLookup(s, q, n, keys, values, out, ids, weights, limits);
  }
  void Embedding(WeightMatrix table, int d, const int32_t* tokens, int n, float* out) override {
    for (int t = 0; t < n; ++t) {
      WidenRow(table, static_cast<size_t>(tokens[t]), d, out + static_cast<size_t>(t) * d);
    }
  }
  void Add(float* y, const float* x, size_t count) override {
    for (size_t i = 0; i < count; ++i) y[i] += x[i];
  }
  void KvWrite(const float* k, const float* v, int n, int row, int block_size,
               const int32_t* block_tables, int max_blocks, const int32_t* token_seq,
               const int32_t* token_pos, float* k_cache, float* v_cache) override {
    for (int t = 0; t < n; ++t) {
      int pos = token_pos[t];
      int32_t block = block_tables[static_cast<size_t>(token_seq[t]) * max_blocks + pos / block_size];
      size_t slot = (static_cast<size_t>(block) * block_size + pos % block_size) * row;
      std::memcpy(k_cache + slot, k + static_cast<size_t>(t) * row, sizeof(float) * row);
      std::memcpy(v_cache + slot, v + static_cast<size_t>(t) * row, sizeof(float) * row);
    }
  }
  void GatherRows(const float* x, int d, const int32_t* rows, int count, float* out) override {
    for (int i = 0; i < count; ++i) {
      std::memcpy(out + static_cast<size_t>(i) * d, x + static_cast<size_t>(rows[i]) * d,
                  sizeof(float) * d);
    }
  }

 private:
  std::atomic<size_t> allocated_{0};
};

}  // namespace

std::unique_ptr<Backend> MakeCpuBackend(int threads) {
  return std::make_unique<CpuBackend>(threads);
}

}  // namespace pkm
