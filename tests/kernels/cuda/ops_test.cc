// The CUDA fp32 ops (kernels/cuda/ops.h) against the CPU references (kernels/cpu), on random
// inputs, within float tolerance. Skipped, saying so, without a CUDA device.
#include "kernels/cuda/ops.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace pkm::cuda {
namespace {

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

void ExpectNear(const std::vector<float>& got, const std::vector<float>& want, float tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], tol * std::max(1.0f, std::abs(want[i]))) << "element " << i;
  }
}

// Runs `op` on device copies of `inputs` (in place on the first) and returns the first.
template <typename Op>
std::vector<float> OnDevice(std::vector<float> data, Op&& op) {
  float* d = Upload(data);
  op(d);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<float> out = Download(d, data.size());
  cudaFree(d);
  return out;
}

TEST(CudaOps, LayerNormGeluAndAddMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const int n = 7, d = 300;
  const std::vector<float> x = Random(static_cast<size_t>(n) * d, 1), gamma = Random(d, 2),
                           beta = Random(d, 3), other = Random(x.size(), 4);
  float* g = Upload(gamma);
  float* b = Upload(beta);
  float* o = Upload(other);
  std::vector<float> want(x.size());
  cpu::ref::LayerNorm(x.data(), n, d, gamma.data(), beta.data(), 1e-5f, want.data());
  ExpectNear(OnDevice(x, [&](float* p) { ASSERT_EQ(LayerNorm(p, n, d, g, b, 1e-5f, p, nullptr), cudaSuccess); }),
             want, 1e-5f);
  want = x;
  cpu::ref::Gelu(want.data(), want.size());
  ExpectNear(OnDevice(x, [&](float* p) { ASSERT_EQ(Gelu(p, x.size(), nullptr), cudaSuccess); }), want,
             1e-6f);
  for (size_t i = 0; i < want.size(); ++i) want[i] = x[i] + other[i];
  ExpectNear(OnDevice(x, [&](float* p) { ASSERT_EQ(Add(p, o, x.size(), nullptr), cudaSuccess); }), want,
             0.0f);
  for (float* p : {g, b, o}) cudaFree(p);
}

// The format 2 ops at odd sizes (d = 769 is not a multiple of the block's 256 threads).
TEST(CudaOps, RmsNormAndLayerNormWithoutBiasMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const int n = 7, d = 769;
  const std::vector<float> x = Random(static_cast<size_t>(n) * d, 11), gamma = Random(d, 12);
  float* g = Upload(gamma);
  std::vector<float> want(x.size());
  cpu::ref::RmsNorm(x.data(), n, d, gamma.data(), 1e-6f, want.data());
  ExpectNear(OnDevice(x, [&](float* p) {
               ASSERT_EQ(RmsNorm(p, n, d, g, 1e-6f, p, nullptr), cudaSuccess);
             }),
             want, 1e-5f);
  cpu::ref::LayerNorm(x.data(), n, d, gamma.data(), nullptr, 1e-5f, want.data());
  ExpectNear(OnDevice(x, [&](float* p) {
               ASSERT_EQ(LayerNorm(p, n, d, g, nullptr, 1e-5f, p, nullptr), cudaSuccess);
             }),
             want, 1e-5f);
  cudaFree(g);
}

TEST(CudaOps, GeluTanhReluAndSiluMulMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const size_t count = 7 * 769;
  std::vector<float> x = Random(count, 13);
  for (float& v : x) v *= 4.0f;  // reach the saturated parts of tanh and sigmoid
  const std::vector<float> up = Random(count, 14);
  float* d_up = Upload(up);
  std::vector<float> want = x;
  cpu::ref::GeluTanh(want.data(), count);
  ExpectNear(OnDevice(x, [&](float* p) { ASSERT_EQ(GeluTanh(p, count, nullptr), cudaSuccess); }),
             want, 1e-6f);
  want = x;
  cpu::ref::Relu(want.data(), count);
  ExpectNear(OnDevice(x, [&](float* p) { ASSERT_EQ(Relu(p, count, nullptr), cudaSuccess); }),
             want, 0.0f);
  // The values where max(x, 0) implementations differ: the same bits as the CPU's.
  const std::vector<float> special = {-0.0f, 0.0f, -1e-30f, NAN, -INFINITY, INFINITY};
  want = special;
  cpu::ref::Relu(want.data(), want.size());
  const std::vector<float> got = OnDevice(special, [&](float* p) {
    ASSERT_EQ(Relu(p, special.size(), nullptr), cudaSuccess);
  });
  EXPECT_EQ(std::memcmp(got.data(), want.data(), sizeof(float) * want.size()), 0)
      << "−0 stays −0, NaN stays NaN, a negative becomes +0";
  want.resize(count);
  // y = gate (in place on the gate), then y = up.
  cpu::ref::SiluMul(x.data(), up.data(), count, want.data());
  ExpectNear(OnDevice(x, [&](float* p) {
               ASSERT_EQ(SiluMul(p, d_up, count, p, nullptr), cudaSuccess);
             }),
             want, 1e-6f);
  float* d_gate = Upload(x);
  ExpectNear(OnDevice(up, [&](float* p) {
               ASSERT_EQ(SiluMul(d_gate, p, count, p, nullptr), cudaSuccess);
             }),
             want, 1e-6f);
  cudaFree(d_up);
  cudaFree(d_gate);
}

TEST(CudaOps, RopeMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  const int n = 5, heads = 3, head_dim = 32;
  const std::vector<float> x = Random(static_cast<size_t>(n) * heads * head_dim, 5);
  const std::vector<int32_t> positions = {0, 1, 17, 255, 4000};
  int32_t* pos = Upload(positions);
  std::vector<float> want = x;
  cpu::ref::Rope(want.data(), n, heads, head_dim, positions.data(), 10000.0f);
  ExpectNear(OnDevice(x, [&](float* p) {
               ASSERT_EQ(Rope(p, n, heads, head_dim, pos, 10000.0f, nullptr), cudaSuccess);
             }),
             want, 1e-5f);
  cudaFree(pos);
}

// Two sequences over shuffled blocks, tokens at several positions; the cache written by KvWrite.
TEST(CudaOps, KvWriteAndPagedAttentionMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const int heads = 2, head_dim = 16, block_size = 16, max_blocks = 4, num_blocks = 8;
  const int row = heads * head_dim;
  const std::vector<int32_t> tables = {5, 2, 7, 0, 1, 3, 6, 4};  // [2 sequences, 4 blocks]
  // Every position of both sequences (0..63), then the attention of a few tokens.
  std::vector<int32_t> seq, pos;
  for (int s = 0; s < 2; ++s) {
    for (int p = 0; p < max_blocks * block_size; ++p) {
      seq.push_back(s);
      pos.push_back(p);
    }
  }
  const int n = static_cast<int>(seq.size());
  const std::vector<float> k = Random(static_cast<size_t>(n) * row, 6), v = Random(k.size(), 7);
  const size_t cache = static_cast<size_t>(num_blocks) * block_size * row;
  std::vector<float> k_cache(cache), v_cache(cache);
  auto d_tables = Upload(tables);
  auto d_seq = Upload(seq);
  auto d_pos = Upload(pos);
  float* d_k = Upload(k);
  float* d_v = Upload(v);
  float* d_kc = Upload(k_cache);
  float* d_vc = Upload(v_cache);
  ASSERT_EQ(KvWrite(d_k, d_v, n, row, block_size, d_tables, max_blocks, d_seq, d_pos, d_kc, d_vc,
                    nullptr),
            cudaSuccess);
  // The CPU writes the same cache.
  for (int t = 0; t < n; ++t) {
    const int32_t block = tables[static_cast<size_t>(seq[t]) * max_blocks + pos[t] / block_size];
    const size_t slot = (static_cast<size_t>(block) * block_size + pos[t] % block_size) * row;
    std::copy_n(k.begin() + static_cast<long>(t) * row, row, k_cache.begin() + static_cast<long>(slot));
    std::copy_n(v.begin() + static_cast<long>(t) * row, row, v_cache.begin() + static_cast<long>(slot));
  }
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_EQ(Download(d_kc, cache), k_cache);
  EXPECT_EQ(Download(d_vc, cache), v_cache);

  const std::vector<int32_t> q_seq = {0, 1, 1, 0}, q_pos = {0, 15, 16, 63};
  const int qn = static_cast<int>(q_seq.size());
  const std::vector<float> q = Random(static_cast<size_t>(qn) * row, 8);
  std::vector<float> want(q.size());
  cpu::ref::PagedAttention(q.data(), qn, heads, heads, head_dim, k_cache.data(), v_cache.data(),
                           block_size, tables.data(), max_blocks, q_seq.data(), q_pos.data(),
                           want.data());
  auto dq_seq = Upload(q_seq);
  auto dq_pos = Upload(q_pos);
  float* dq = Upload(q);
  float* d_out = DeviceAlloc<float>(q.size());
  ASSERT_EQ(PagedAttention(dq, qn, heads, heads, head_dim, d_kc, d_vc, block_size, d_tables,
                           max_blocks, dq_seq, dq_pos, d_out, nullptr),
            cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  ExpectNear(Download(d_out, q.size()), want, 1e-5f);
  for (void* p : {static_cast<void*>(d_tables), static_cast<void*>(d_seq), static_cast<void*>(d_pos),
                  static_cast<void*>(d_k), static_cast<void*>(d_v), static_cast<void*>(d_kc),
                  static_cast<void*>(d_vc), static_cast<void*>(dq_seq), static_cast<void*>(dq_pos),
                  static_cast<void*>(dq), static_cast<void*>(d_out)}) {
    cudaFree(p);
  }
}

// Grouped-query attention (kv_heads < heads) over a cache filled on the host, against the CPU
// reference; a kv_heads that does not divide heads is refused before any launch.
TEST(CudaOps, GroupedQueryPagedAttentionMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  const int head_dim = 40, block_size = 16, max_blocks = 3, num_blocks = 7;
  const std::vector<int32_t> tables = {4, 0, 6, 2, 5, 1};  // [2 sequences, 3 blocks]
  const std::vector<int32_t> q_seq = {0, 1, 1, 0, 1}, q_pos = {0, 15, 16, 47, 30};
  const int qn = static_cast<int>(q_seq.size());
  auto d_tables = Upload(tables);
  auto d_seq = Upload(q_seq);
  auto d_pos = Upload(q_pos);
  for (const auto& [heads, kv_heads] : {std::pair{6, 2}, std::pair{4, 1}, std::pair{3, 3}}) {
    const size_t cache = static_cast<size_t>(num_blocks) * block_size * kv_heads * head_dim;
    const std::vector<float> k_cache = Random(cache, 15), v_cache = Random(cache, 16);
    const std::vector<float> q = Random(static_cast<size_t>(qn) * heads * head_dim, 17);
    std::vector<float> want(q.size());
    cpu::ref::PagedAttention(q.data(), qn, heads, kv_heads, head_dim, k_cache.data(),
                             v_cache.data(), block_size, tables.data(), max_blocks, q_seq.data(),
                             q_pos.data(), want.data());
    float* d_kc = Upload(k_cache);
    float* d_vc = Upload(v_cache);
    float* dq = Upload(q);
    float* d_out = DeviceAlloc<float>(q.size());
    ASSERT_EQ(PagedAttention(dq, qn, heads, kv_heads, head_dim, d_kc, d_vc, block_size, d_tables,
                             max_blocks, d_seq, d_pos, d_out, nullptr),
              cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    ExpectNear(Download(d_out, q.size()), want, 1e-5f);
    for (float* p : {d_kc, d_vc, dq, d_out}) cudaFree(p);
  }
  EXPECT_EQ(PagedAttention(nullptr, qn, 6, 4, head_dim, nullptr, nullptr, block_size, d_tables,
                           max_blocks, d_seq, d_pos, nullptr, nullptr),
            cudaErrorInvalidValue);
  for (int32_t* p : {d_tables, d_seq, d_pos}) cudaFree(p);
}

TEST(CudaOps, GatherRowsAndEmbeddingCopyTheRows) {
  SKIP_WITHOUT_GPU();
  const int d = 40;
  const std::vector<float> table = Random(static_cast<size_t>(10) * d, 9);
  const std::vector<int32_t> rows = {3, 0, 9, 3};
  int32_t* d_rows = Upload(rows);
  float* d_table = Upload(table);
  float* d_out = DeviceAlloc<float>(rows.size() * d);
  std::vector<float> want;
  for (int32_t r : rows) want.insert(want.end(), table.begin() + r * d, table.begin() + (r + 1) * d);
  ASSERT_EQ(GatherRows(d_table, d, d_rows, 4, d_out, nullptr), cudaSuccess);
  EXPECT_EQ(Download(d_out, want.size()), want);
  ASSERT_EQ(cudaMemset(d_out, 0, want.size() * sizeof(float)), cudaSuccess);
  ASSERT_EQ(Embedding(d_table, d, d_rows, 4, d_out, nullptr), cudaSuccess);
  EXPECT_EQ(Download(d_out, want.size()), want);
  for (void* p : {static_cast<void*>(d_rows), static_cast<void*>(d_table), static_cast<void*>(d_out)}) {
    cudaFree(p);
  }
}

}  // namespace
}  // namespace pkm::cuda
