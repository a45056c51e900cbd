#include "engine/kv_cache.h"

namespace pkm {

namespace {
int BlocksFor(int positions) { return (positions + KvCache::kBlockSize - 1) / KvCache::kBlockSize; }
}  // namespace

size_t KvCache::BytesPerPosition(int n_layers, int heads, int head_dim) {
  return 2 * static_cast<size_t>(n_layers) * heads * head_dim * sizeof(float);
}

KvCache::KvCache(int heads, int head_dim, int num_blocks)
    : num_blocks_(num_blocks),
      floats_per_block_(static_cast<size_t>(kBlockSize) * heads * head_dim) {
  free_.reserve(num_blocks);
  for (int b = num_blocks - 1; b >= 0; --b) free_.push_back(b);
}

int KvCache::BlocksNeeded(SeqId seq, int positions) const {
  auto it = tables_.find(seq);
  int owned = it == tables_.end() ? 0 : static_cast<int>(it->second.size());
  int need = BlocksFor(positions) - owned;
  return need > 0 ? need : 0;
}

bool KvCache::Reserve(SeqId seq, int positions) {
  int need = BlocksNeeded(seq, positions);
  if (need > free_blocks()) return false;
  auto& table = tables_[seq];
  for (int i = 0; i < need; ++i) {
    table.push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void KvCache::Release(SeqId seq) {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  for (auto b = it->second.rbegin(); b != it->second.rend(); ++b) free_.push_back(*b);
  tables_.erase(it);
}

const std::vector<int32_t>& KvCache::BlockTable(SeqId seq) const {
  static const std::vector<int32_t> kEmpty;
  auto it = tables_.find(seq);
  return it == tables_.end() ? kEmpty : it->second;
}

size_t KvCache::floats_per_layer() const { return floats_per_block_ * num_blocks_; }

}  // namespace pkm
