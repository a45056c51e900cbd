#include "bench/bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include <omp.h>

namespace pkm::bench {
namespace {

double MatrixBytes(const WeightMatrix& m, double rows, double cols) {
  return rows * cols * static_cast<double>(WeightTypeBytes(m.type)) +
         (m.scales != nullptr ? rows * sizeof(float) : 0.0);
}

double LinearBytes(const LinearWeights& l) {
  return l.weight.data == nullptr ? 0.0 : MatrixBytes(l.weight, l.out, l.in);
}

}  // namespace

double DecodeBytesPerToken(const Engine& engine, int context) {
  const ModelConfig& c = engine.config();
  const ModelWeights& w = engine.weights();
  double bytes = MatrixBytes(w.tok_embeddings, 1, c.d_model) + LinearBytes(w.lm_head);
  if (w.pos_embeddings.data != nullptr) bytes += MatrixBytes(w.pos_embeddings, 1, c.d_model);
  for (const BlockWeights& b : w.blocks) {
    for (const LinearWeights* l : {&b.attn.q, &b.attn.k, &b.attn.v, &b.attn.o}) bytes += LinearBytes(*l);
    if (b.has_ffn) {
      for (const LinearWeights* l : {&b.ffn.w1, &b.ffn.w2, &b.ffn.w3}) bytes += LinearBytes(*l);
    }
  }
  for (const MemoryWeights& m : w.memories) {
    const MemorySpec& s = *m.spec;
    bytes += LinearBytes(m.query) + LinearBytes(m.swilu) + LinearBytes(m.value_proj);
    bytes += static_cast<double>(s.heads) * s.n_keys * s.k_dim * sizeof(float);  // both halves
    bytes += MatrixBytes(m.values, static_cast<double>(s.heads) * s.knn, s.v_dim);
  }
  bytes += static_cast<double>(context) * static_cast<double>(KvCache::BytesPerPosition(
                                              c.n_layers, c.attention.n_kv_heads, c.head_dim()));
  return bytes;
}

double ReadBandwidth(int threads, size_t bytes, int repeats) {
  const size_t words = bytes / sizeof(uint64_t);
  std::vector<uint64_t> buffer(words, 1);  // written once: every page is faulted in
  std::vector<uint64_t> sums(static_cast<size_t>(threads) * 8);
  double best = 0;
  for (int r = 0; r <= repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    // OpenMP's threads, as the kernels use: other threads would compete with its spinning ones.
#pragma omp parallel num_threads(threads)
    {
      const size_t t = static_cast<size_t>(omp_get_thread_num());
      const size_t n = static_cast<size_t>(omp_get_num_threads());
      const size_t begin = words * t / n, end = words * (t + 1) / n;
      // Four independent sums, so the loop is bound by loads, not by one add's latency.
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (size_t i = begin; i + 4 <= end; i += 4) {
        s0 += buffer[i];
        s1 += buffer[i + 1];
        s2 += buffer[i + 2];
        s3 += buffer[i + 3];
      }
      sums[t * 8] = s0 + s1 + s2 + s3;  // one cache line per thread
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (r > 0) best = std::max(best, static_cast<double>(words * sizeof(uint64_t)) / s);
  }
  // The sums are stored where the compiler must keep them, so the loads are not optimised away.
  static volatile uint64_t sink;
  for (uint64_t s : sums) sink = sink + s;
  return best;
}

}  // namespace pkm::bench
