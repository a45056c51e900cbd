// Paged key/value cache: fixed-size blocks of kBlockSize positions, a block table per sequence.
//
// Storage, per layer and for keys and values alike: [num_blocks, kBlockSize, heads, head_dim]
// floats in the backend's memory. A sequence holding n positions owns ceil(n / kBlockSize)
// blocks, listed in position order in its block table. Blocks return to the pool when the
// sequence is released (finished, cancelled or preempted).
//
// Not thread-safe: owned and used by the engine thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace pkm {

using SeqId = int64_t;

class KvCache {
 public:
  static constexpr int kBlockSize = 16;

  // Bytes one cached position takes across all layers (keys and values).
  static size_t BytesPerPosition(int n_layers, int heads, int head_dim);

  // Block bookkeeping for one layer's shape; the engine keeps one storage buffer per layer.
  KvCache(int heads, int head_dim, int num_blocks);

  // Makes `seq` able to hold `positions` positions, allocating blocks as needed. Returns false,
  // changing nothing, when the pool has too few free blocks.
  bool Reserve(SeqId seq, int positions);
  // Blocks `seq` would need beyond what it owns to hold `positions` positions.
  int BlocksNeeded(SeqId seq, int positions) const;
  // Returns the sequence's blocks to the pool and forgets it. Unknown ids are ignored.
  void Release(SeqId seq);

  bool Contains(SeqId seq) const { return tables_.count(seq) != 0; }
  // Block ids of `seq` in position order (empty for an unknown sequence).
  const std::vector<int32_t>& BlockTable(SeqId seq) const;

  int num_blocks() const { return num_blocks_; }
  int free_blocks() const { return static_cast<int>(free_.size()); }
  int used_blocks() const { return num_blocks_ - free_blocks(); }
  double usage() const { return num_blocks_ ? static_cast<double>(used_blocks()) / num_blocks_ : 0.0; }
  size_t num_sequences() const { return tables_.size(); }

  // Floats of one layer's key (or value) storage: num_blocks * kBlockSize * heads * head_dim.
  size_t floats_per_layer() const;

 private:
  int num_blocks_;
  size_t floats_per_block_;
  std::vector<int32_t> free_;  // a stack: the most recently freed block is reused first
  std::unordered_map<SeqId, std::vector<int32_t>> tables_;
};

}  // namespace pkm
