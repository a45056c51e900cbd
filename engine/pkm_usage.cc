#include "engine/pkm_usage.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace pkm {

PkmUsageWindow::PkmUsageWindow(int64_t n_slots, int ids_per_token, int window_tokens)
    : n_slots_(std::max<int64_t>(n_slots, 1)),
      ids_per_token_(std::max(ids_per_token, 1)),
      window_tokens_(std::max(window_tokens, 1)),
      ring_ids_(static_cast<size_t>(window_tokens_) * ids_per_token_),
      ring_weights_(ring_ids_.size()),
      hits_(static_cast<size_t>(n_slots_)),
      weight_sum_(static_cast<size_t>(n_slots_)) {}

void PkmUsageWindow::Evict(int slot_in_ring) {
  const size_t base = static_cast<size_t>(slot_in_ring) * ids_per_token_;
  for (int j = 0; j < ids_per_token_; ++j) {
    if (ring_ids_[base + j] < 0) continue;  // a slot the token did not read (memory_knn)
    const auto id = static_cast<size_t>(ring_ids_[base + j]);
    if (--hits_[id] == 0) {
      --slots_hit_;
      weight_sum_[id] = 0.0;  // exactly: no rounding residue from the subtractions
    } else {
      weight_sum_[id] -= ring_weights_[base + j];
    }
  }
}

void PkmUsageWindow::Add(const int32_t* ids, const float* weights, int tokens) {
  // Only the last window_tokens of a long call can stay in the window.
  const int skip = std::max(0, tokens - window_tokens_);
  for (int t = skip; t < tokens; ++t) {
    if (filled_ == window_tokens_) {
      Evict(next_);
    } else {
      ++filled_;
    }
    const size_t src = static_cast<size_t>(t) * ids_per_token_;
    const size_t dst = static_cast<size_t>(next_) * ids_per_token_;
    std::copy_n(ids + src, ids_per_token_, ring_ids_.begin() + static_cast<std::ptrdiff_t>(dst));
    std::copy_n(weights + src, ids_per_token_,
                ring_weights_.begin() + static_cast<std::ptrdiff_t>(dst));
    for (int j = 0; j < ids_per_token_; ++j) {
      if (ids[src + j] < 0) continue;  // a slot the token did not read (memory_knn)
      const auto id = static_cast<size_t>(ids[src + j]);
      if (hits_[id]++ == 0) ++slots_hit_;
      weight_sum_[id] += weights[src + j];
    }
    next_ = (next_ + 1) % window_tokens_;
  }
}

double PkmUsageWindow::Coverage() const {
  return static_cast<double>(slots_hit_) / static_cast<double>(n_slots_);
}

double PkmUsageWindow::KlToUniform() const {
  // sum_i p log p = (sum_i z log z) / Z - log Z.
  double total = 0.0, z_log_z = 0.0;
  for (double z : weight_sum_) {
    if (z <= 0.0) continue;
    total += z;
    z_log_z += z * std::log(z);
  }
  if (total <= 0.0) return 0.0;
  return std::max(0.0, std::log(static_cast<double>(n_slots_)) + z_log_z / total -
                           std::log(total));
}

}  // namespace pkm
