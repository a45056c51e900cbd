#include "engine/layers.h"

#include "engine/kv_cache.h"

namespace pkm {

void Norm(Backend& b, const NormSpec& spec, const NormWeights& w, const float* x, int n, int d,
          float* y) {
  const float eps = static_cast<float>(spec.eps);
  if (spec.kind == NormKind::kRmsNorm) {
    b.RmsNorm(x, n, d, w.weight, eps, y);
  } else {
    b.LayerNorm(x, n, d, w.weight, w.bias, eps, y);
  }
}

void Project(Backend& b, const LinearWeights& w, const float* x, int n, float* y) {
  b.Linear(x, n, w.in, w.weight, w.bias, w.out, y);
}

void Attention(Backend& b, const ModelConfig& c, const AttentionWeights& w, const float* in,
               int n, const TileBuffers& t, float* k_cache, float* v_cache, float* out) {
  const AttentionSpec& a = c.attention;
  Project(b, w.q, in, n, t.q);
  Project(b, w.k, in, n, t.k);
  Project(b, w.v, in, n, t.v);
  if (c.positions.kind == PositionKind::kRope) {
    const float theta = static_cast<float>(c.positions.rope_theta);
    b.Rope(t.q, n, a.n_heads, a.head_dim, t.positions, theta);
    b.Rope(t.k, n, a.n_kv_heads, a.head_dim, t.positions, theta);
  }
  b.KvWrite(t.k, t.v, n, a.n_kv_heads * a.head_dim, KvCache::kBlockSize, t.block_tables,
            t.max_blocks, t.seqs, t.positions, k_cache, v_cache);
  b.PagedAttention(t.q, n, a.n_heads, a.n_kv_heads, a.head_dim, k_cache, v_cache,
                   KvCache::kBlockSize, t.block_tables, t.max_blocks, t.seqs, t.positions, t.att);
  Project(b, w.o, t.att, n, out);
}

void Ffn(Backend& b, const FfnSpec& spec, const FfnWeights& w, const float* in, int n,
         const TileBuffers& t, float* out) {
  const size_t hidden = static_cast<size_t>(n) * spec.hidden;
  Project(b, w.w1, in, n, t.f);
  switch (spec.kind) {
    case FfnKind::kGelu: b.Gelu(t.f, hidden); break;
    case FfnKind::kGeluTanh: b.GeluTanh(t.f, hidden); break;
    case FfnKind::kRelu: b.Relu(t.f, hidden); break;
    case FfnKind::kSwiglu:
      Project(b, w.w3, in, n, t.f3);
      b.SiluMul(t.f, t.f3, hidden, t.f);
      break;
  }
  Project(b, w.w2, t.f, n, out);
}

void Memory(Backend& b, const MemoryWeights& w, const float* in, int n, const TileBuffers& t,
            float* out) {
  const MemorySpec& m = *w.spec;
  Project(b, w.query, in, n, t.pq);
  if (m.query_norm == QueryNorm::kLayerNorm) {
    // Each (head, half) sub-query is a row of k_dim / 2: one LayerNorm over 2·heads rows a token.
    b.LayerNorm(t.pq, n * m.heads * 2, m.k_dim / 2, w.query_norm.weight, w.query_norm.bias,
                static_cast<float>(m.query_norm_eps), t.pq);
  }
  const cpu::PkmShape shape{m.heads, m.knn, m.n_keys, m.k_dim, m.v_dim};
  float* bag = m.output == MemoryOutput::kSum ? out : t.bag;
  b.PkmLookup(shape, t.pq, n, w.keys, w.values, bag, t.ids, t.slot_weights, t.memory_limits);
  if (m.output == MemoryOutput::kMemoryPlus) {
    Project(b, w.swilu, in, n, t.gate);
    b.SiluMul(t.gate, t.bag, static_cast<size_t>(n) * m.v_dim, t.bag);
    Project(b, w.value_proj, t.bag, n, out);
  }
}

}  // namespace pkm
