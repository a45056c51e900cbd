// Memory usage of one PKM layer over a sliding window of recent tokens: the paper's two
// usage statistics (Lample et al. 2019, section 4.4), kept up to date from the slot ids and
// softmax weights the lookup already produces, without another pass over the values.
//
// Over the window's last `window_tokens` tokens, with z_i the sum of the weights slot i got
// (every head of every token adds its knn weights):
//   coverage = #{i : slot i was selected at least once} / n_slots
//   kl       = KL(z / sum(z) || uniform) = log(n_slots) + sum_i p_i log p_i,  p_i = z_i / sum(z)
// coverage is kept exactly at every Add (a hit counter per slot); kl costs one pass over the
// n_slots sums and is computed only when asked (KlToUniform), e.g. once per metrics refresh.
//
// Not thread-safe: the engine thread adds and reads.
#pragma once

#include <cstdint>
#include <vector>

namespace pkm {

class PkmUsageWindow {
 public:
  // ids_per_token = heads * knn. window_tokens >= 1.
  PkmUsageWindow(int64_t n_slots, int ids_per_token, int window_tokens);

  // Adds `tokens` tokens' lookups, each `ids_per_token` slot ids with their weights, evicting
  // the oldest tokens beyond the window. Ids must be in [0, n_slots).
  void Add(const int32_t* ids, const float* weights, int tokens);

  double Coverage() const;
  double KlToUniform() const;
  // Tokens in the window now (window_tokens once it has filled).
  int tokens() const { return filled_; }

 private:
  void Evict(int slot_in_ring);

  int64_t n_slots_;
  int ids_per_token_;
  int window_tokens_;
  // Ring of the window's lookups: token t's ids and weights at [t % window * ids_per_token].
  std::vector<int32_t> ring_ids_;
  std::vector<float> ring_weights_;
  int next_ = 0;    // ring position of the next token
  int filled_ = 0;  // tokens in the ring
  // Per slot: how many of the window's lookups selected it, and the sum of their weights.
  std::vector<uint32_t> hits_;
  std::vector<double> weight_sum_;
  int64_t slots_hit_ = 0;
};

}  // namespace pkm
