// The parts a block is composed of (docs/model-format.md, "The computation, format 2"): norm,
// attention, FFN and memory, each a function of its spec, its weights and an input, run on a
// backend over one tile of tokens. Engine::Forward strings them together per the block order
// and the memories' placement; a new variant is a new case here, not a branch in the engine.
#pragma once

#include <cstdint>

#include "kernels/backend.h"
#include "engine/model_weights.h"
#include "model_loader/model_config.h"

namespace pkm {

// One tile's activations (device memory, sized for the model by the engine) and where its
// tokens sit in the paged KV cache.
struct TileBuffers {
  float *q, *k, *v, *att;  // [n, heads·head_dim], [n, kv_heads·head_dim] x2, [n, heads·head_dim]
  float *f, *f3;           // [n, ffn.hidden]: the FFN's hidden activations (f3: swiglu's w3)
  float *pq;               // [n, max heads·k_dim]: memory queries
  float *bag, *gate;       // [n, max v_dim]: the memory's weighted sum, Memory+'s gate
  int32_t* ids;            // [n, max heads·knn]: selected slots, or null
  float* slot_weights;     // [n, max heads·knn]: their softmax weights, or null
  cpu::PkmTokenLimits memory_limits;  // per token (SeqChunk::memory), or empty
  const int32_t *positions, *seqs, *block_tables;
  int max_blocks;
};

void Norm(Backend& b, const NormSpec& spec, const NormWeights& w, const float* x, int n, int d,
          float* y);

void Project(Backend& b, const LinearWeights& w, const float* x, int n, float* y);

// out [n, d] = attention of `in` [n, d] over the cache, after writing this tile's k and v to it.
void Attention(Backend& b, const ModelConfig& c, const AttentionWeights& w, const float* in,
               int n, const TileBuffers& t, float* k_cache, float* v_cache, float* out);

// out [n, d] = FFN(in).
void Ffn(Backend& b, const FfnSpec& spec, const FfnWeights& w, const float* in, int n,
         const TileBuffers& t, float* out);

// out [n, d] = M(in): query (and its norm), product-key lookup into t.bag, then the output
// (the bag itself, or Memory+'s gated projection). Slot ids and weights go to t.ids and
// t.slot_weights when those are set.
void Memory(Backend& b, const MemoryWeights& w, const float* in, int n, const TileBuffers& t,
            float* out);

}  // namespace pkm
