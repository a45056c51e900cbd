// CPU kernels: the operations of one forward pass, on fp32 row-major buffers.
//
// Every kernel has a plain reference twin in namespace pkm::cpu::ref with the same signature:
// the reference is the spec (readable loops, no tricks) and tests compare the fast version
// against it. All kernels are stateless and thread-safe; multithreaded ones split work over
// tokens (or output columns) so that each output element is always computed by the same
// sequence of operations: results do not depend on the number of tokens in the call or the
// thread count (batch invariance, see docs/engine.md).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/weight_matrix.h"

namespace pkm::cpu {

// Threads used by the multithreaded kernels of this process (OpenMP); n <= 0 restores the
// default (OpenMP's, normally one per core). Results never depend on it. Process-wide, safe to
// call from any thread, but meant to be called once at startup (it takes effect at the next
// kernel call).
void SetNumThreads(int n);

// y[n, out] = x[n, in] · w[out, in]ᵀ + b[out]   (b may be null). y must not alias x.
// Each y element is one dot product over `in` in a fixed order, then + b: a row of y is the
// same bits whatever n is (OpenBLAS's sgemm is not, hence our own AVX2 kernel). w may be fp32,
// fp16 or bf16 (weight_matrix.h): 16-bit weights give the bits of their fp32 widening.
void Linear(const float* x, int n, int in, WeightMatrix w, const float* b, int out, float* y);

// LayerNorm over the last dim: y[n, d] = (x − mean) / sqrt(var + eps) · gamma + beta
// (biased variance; fp32 statistics in two passes: mean, then variance). beta may be null: no
// bias, y = (x − mean) / sqrt(var + eps) · gamma with no addition at all. y may alias x.
void LayerNorm(const float* x, int n, int d, const float* gamma, const float* beta, float eps, float* y);

// RMSNorm over the last dim: y[n, d] = x / sqrt(mean(x²) + eps) · gamma, i.e. per row
// ms = Σx²/d in fp32, denom = sqrt(ms + eps), y = x / denom · gamma. y may alias x.
void RmsNorm(const float* x, int n, int d, const float* gamma, float eps, float* y);

// In place, exact GELU: x = 0.5·x·(1 + erf(x/√2)).
void Gelu(float* x, size_t count);

// In place, GELU's tanh approximation (PyTorch's approximate="tanh"):
// x = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), with x³ as x·x·x.
void GeluTanh(float* x, size_t count);

// In place, x = max(x, 0): negatives become +0; NaN, −0 and positives stay as they are.
void Relu(float* x, size_t count);

// y[i] = silu(gate[i])·up[i] with silu(g) = g / (1 + exp(−g)) = g·sigmoid(g) (PyTorch's
// expression): SwiGLU FFNs and the Memory+ output gate. y may alias gate or up.
void SiluMul(const float* gate, const float* up, size_t count, float* y);

// In place RoPE, rotate-half pairing, on x[n, heads, head_dim]: for j < head_dim/2,
// angle = positions[t] · theta^(−2j/head_dim) (computed in double, then rounded to float cos/sin),
// (x[j], x[j+hd/2]) ← (x[j]·cos − x[j+hd/2]·sin, x[j]·sin + x[j+hd/2]·cos).
void Rope(float* x, int n, int heads, int head_dim, const int32_t* positions, float theta);

// Causal attention of a ragged batch over a paged KV cache, with grouped-query attention:
// query head h reads kv head h / (heads / kv_heads) (heads % kv_heads == 0; kv_heads == heads
// is multi-head attention, kv_heads == 1 multi-query).
//   q            [n, heads, head_dim]        queries, RoPE applied
//   k_cache      [num_blocks, block_size, kv_heads, head_dim]   keys (RoPE applied), one layer
//   v_cache      [num_blocks, block_size, kv_heads, head_dim]
//   block_tables [num_seqs, max_blocks]      block ids of each sequence, in position order
//   token_seq    [n]                         which sequence (row of block_tables) token t is in
//   token_pos    [n]                         its position; it attends to positions 0..token_pos[t]
//   out          [n, heads·head_dim]
// For each (t, h): s_p = (q·k_p)/sqrt(head_dim) for p = 0..pos in order, m = max s_p,
// e_p = exp(s_p − m), out = Σ_p e_p·v_p / Σ_p e_p, both sums in position order (k_p, v_p: the
// rows of the head's kv head). The cache must already hold the keys/values of every position
// read (including the token's own).
void PagedAttention(const float* q, int n, int heads, int kv_heads, int head_dim,
                    const float* k_cache, const float* v_cache, int block_size,
                    const int32_t* block_tables, int max_blocks, const int32_t* token_seq,
                    const int32_t* token_pos, float* out);

// Shape of one product-key memory (docs/model-format.md).
struct PkmShape {
  int heads;   // H
  int knn;     // k
  int n_keys;  // sub-keys per half
  int k_dim;   // query width per head (each half k_dim / 2)
  int v_dim;   // value width
};

// Per-token reading of a lookup below its shape (a request's memory_knn / memory_heads):
// token t reads its first heads[t] heads with knn[t] slots each (0: the shape's; values above
// the shape's are the shape's). Null arrays: every token reads the whole shape. The slots a
// token does not read are written as id -1 and weight 0.
struct PkmTokenLimits {
  const int32_t* knn = nullptr;
  const int32_t* heads = nullptr;
};

// Product-key lookup and value gather for n tokens.
//   q        [n, heads, k_dim]                  projected queries (query Linear already applied)
//   keys     [heads, 2, n_keys, k_dim/2]
//   values   [n_keys², v_dim]
//   out      [n, v_dim]                         overwritten with Σ_h Σ_j w[h,j]·values[ids[h,j]]
//   ids      [n, heads, knn] or null            selected slot ids, best first
//   weights  [n, heads, knn] or null            their softmax weights (fp32)
// Per head: s1 = keys[h,0]·q[:k/2], s2 = keys[h,1]·q[k/2:]; top-k of each; the k² candidates
// s1[a]+s2[b] with slot id i1[a]·n_keys+i2[b]; their top-k; softmax. Every top-k orders by
// score descending, then index ascending (sub-key index, then slot id): the tie rule of
// training/pkm.py. Requires 1 ≤ knn ≤ n_keys and k_dim even (callers validate at load). values
// may be fp32, fp16 or bf16: 16-bit values give the bits of their fp32 widening.
void PkmLookup(const PkmShape& s, const float* q, int n, const float* keys, WeightMatrix values,
               float* out, int32_t* ids, float* weights, PkmTokenLimits limits = {});

// The (heads, knn) token t reads under `limits`.
inline int LimitedHeads(const PkmShape& s, const PkmTokenLimits& l, int t) {
  return l.heads && l.heads[t] > 0 && l.heads[t] < s.heads ? l.heads[t] : s.heads;
}
inline int LimitedKnn(const PkmShape& s, const PkmTokenLimits& l, int t) {
  return l.knn && l.knn[t] > 0 && l.knn[t] < s.knn ? l.knn[t] : s.knn;
}

namespace ref {
void Linear(const float* x, int n, int in, WeightMatrix w, const float* b, int out, float* y);
void LayerNorm(const float* x, int n, int d, const float* gamma, const float* beta, float eps, float* y);
void RmsNorm(const float* x, int n, int d, const float* gamma, float eps, float* y);
void Gelu(float* x, size_t count);
void GeluTanh(float* x, size_t count);
void Relu(float* x, size_t count);
void SiluMul(const float* gate, const float* up, size_t count, float* y);
void Rope(float* x, int n, int heads, int head_dim, const int32_t* positions, float theta);
void PagedAttention(const float* q, int n, int heads, int kv_heads, int head_dim,
                    const float* k_cache, const float* v_cache, int block_size,
                    const int32_t* block_tables, int max_blocks, const int32_t* token_seq,
                    const int32_t* token_pos, float* out);
void PkmLookup(const PkmShape& s, const float* q, int n, const float* keys, WeightMatrix values,
               float* out, int32_t* ids, float* weights, PkmTokenLimits limits = {});
}  // namespace ref

}  // namespace pkm::cpu
