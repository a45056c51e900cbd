#include "engine/sampling.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace pkm {
namespace {

constexpr uint64_t kGoldenGamma = 0x9E3779B97F4A7C15ull;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// SplitMix64's next(): advance the state by the golden gamma, then Stafford's mix 13.
uint64_t SplitMix64(uint64_t state) {
  uint64_t z = state + kGoldenGamma;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The value a logit is ranked by: NaN counts as -inf, so that ordering stays a strict weak
// order (std::sort and friends have undefined behaviour otherwise).
float RankKey(float logit) { return std::isnan(logit) ? kNegInf : logit; }

struct Candidate {
  float key;  // RankKey of the logit
  int32_t id;
};

// Total order: higher key first, then lower id. Ids are unique, so no two candidates tie and
// every sort / selection below has exactly one correct answer.
bool Better(const Candidate& a, const Candidate& b) {
  return a.key > b.key || (a.key == b.key && a.id < b.id);
}

int32_t Argmax(const float* logits, int vocab) {
  int32_t best = 0;
  float best_key = RankKey(logits[0]);
  for (int i = 1; i < vocab; ++i) {
    const float key = RankKey(logits[i]);
    if (key > best_key) {  // strict: ties keep the lowest id
      best_key = key;
      best = i;
    }
  }
  return best;
}

// log(sum_i exp(logits[i])) with the max subtracted, accumulated in double. LogSoftmax and
// TokenLogProb both go through this and LogProb so that they agree bitwise.
double LogSumExp(const float* logits, int vocab) {
  float max_logit = kNegInf;
  for (int i = 0; i < vocab; ++i) max_logit = std::max(max_logit, logits[i]);
  const double m = max_logit;
  double sum = 0.0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - m);
  return m + std::log(sum);
}

float LogProb(float logit, double log_sum_exp) {
  return static_cast<float>(static_cast<double>(logit) - log_sum_exp);
}

// Below this many, partial_sort (a heap select: one pass whose branches are predictable, as
// almost every element loses to the heap's top) beats nth_element + sort, whose partitioning
// mispredicts about half its comparisons. Measured on vocabularies of 32k-50k.
constexpr size_t kHeapSelectMax = 256;

// Makes cand[from, to) the best of cand[from, last), sorted.
void SelectSorted(std::vector<Candidate>& cand, size_t from, size_t to, size_t last) {
  const auto first = cand.begin();
  if (to - from <= kHeapSelectMax) {
    std::partial_sort(first + from, first + to, first + last, Better);
    return;
  }
  if (to < last) std::nth_element(first + from, first + to, first + last, Better);
  std::sort(first + from, first + to, Better);
}

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

}  // namespace

std::string Validate(const SamplingParams& params, int vocab_size) {
  if (vocab_size <= 0) return "vocab_size must be positive, got " + std::to_string(vocab_size);
  // Written as !(in range) so that NaN fails too; +/-inf fail the bounds.
  if (!(params.temperature >= 0.0f && params.temperature <= kMaxTemperature)) {
    return "temperature must be finite and in [0, " + Num(kMaxTemperature) + "] (0: greedy), got " +
           Num(params.temperature);
  }
  if (params.top_k < 0 || params.top_k > vocab_size) {
    return "top_k must be in [0, " + std::to_string(vocab_size) +
           "] (0: off; the upper bound is the vocabulary size), got " +
           std::to_string(params.top_k);
  }
  if (!(params.top_p > 0.0f && params.top_p <= 1.0f)) {
    return "top_p must be in (0, 1] (1: off), got " + Num(params.top_p);
  }
  return "";
}

double SampleUniform(uint64_t seed, uint64_t step) {
  const uint64_t bits = SplitMix64(SplitMix64(seed) + step * kGoldenGamma);
  return static_cast<double>(bits >> 11) * 0x1.0p-53;  // top 53 bits -> [0, 1)
}

int32_t SampleToken(const float* logits, int vocab, const SamplingParams& params, uint64_t step) {
  if (vocab <= 0) return -1;
  const float temperature = params.temperature;
  if (!(temperature > 0.0f)) return Argmax(logits, vocab);  // also NaN and negatives
  const double t = std::min(temperature, kMaxTemperature);
  const size_t k = params.top_k <= 0 || params.top_k > vocab ? vocab : params.top_k;
  if (k == 1) return Argmax(logits, vocab);
  double top_p = params.top_p;
  if (!(top_p > 0.0)) top_p = 0.0;  // keeps exactly one token
  const bool nucleus = top_p < 1.0;

  // Thread-local scratch: a vocabulary of 50k candidates is 400 KB, which malloc would mmap
  // and unmap on every token.
  thread_local std::vector<Candidate> cand;
  thread_local std::vector<double> weights;
  cand.resize(vocab);
  for (int i = 0; i < vocab; ++i) cand[i] = {RankKey(logits[i]), i};

  // The walks below only look at a prefix of the ordered candidates, usually a short one, so
  // the order is built lazily: cand[0, sorted) is sorted and grows by selecting the next
  // block from cand[sorted, k). Same result as a full sort, at a fraction of the cost.
  size_t sorted = 0;
  if (k < cand.size() && k <= kHeapSelectMax) {
    SelectSorted(cand, 0, k, cand.size());
    sorted = k;
  } else if (k < cand.size()) {
    std::nth_element(cand.begin(), cand.begin() + (k - 1), cand.end(), Better);
  }
  // cand[0, k) is the kept set, and cand[k - 1] the worst of it.

  float max_key = kNegInf;
  for (size_t i = 0; i < k; ++i) max_key = std::max(max_key, cand[i].key);
  if (!std::isfinite(max_key)) return Argmax(logits, vocab);
  const double m = max_key;
  auto weight = [&](float key) { return std::exp((static_cast<double>(key) - m) / t); };

  // The normaliser is summed in an order fixed by the inputs alone (sorted, or token id), so
  // that it, and so the token drawn, does not depend on how the standard library's
  // nth_element happens to leave the elements.
  double total = 0.0;
  if (sorted == k) {
    for (size_t i = 0; i < k; ++i) total += weight(cand[i].key);
  } else {
    const Candidate worst_kept = cand[k - 1];
    for (int i = 0; i < vocab; ++i) {
      const Candidate c{RankKey(logits[i]), i};
      if (k == cand.size() || !Better(worst_kept, c)) total += weight(c.key);
    }
  }

  weights.clear();
  auto weight_at = [&](size_t i) {
    if (i == weights.size()) {
      if (i >= sorted) {
        size_t end = std::max({i + 1, 4 * sorted, size_t{64}});
        if (2 * end >= k) end = k;  // most of it is needed: one sort beats more selections
        SelectSorted(cand, sorted, end, k);
        sorted = end;
      }
      weights.push_back(weight(cand[i].key));
    }
    return weights[i];
  };

  size_t keep = k;
  double kept_total = total;
  if (nucleus) {
    const double threshold = top_p * total;
    double cum = 0.0;
    for (size_t i = 0; i < k; ++i) {
      cum += weight_at(i);
      if (cum >= threshold) {
        keep = i + 1;
        break;
      }
    }
    kept_total = cum;
  }

  // Inverse CDF over the kept prefix. Tokens whose weight underflowed to 0 are never picked;
  // if rounding leaves the target unreached, the last token with weight > 0 is the answer.
  const double target = SampleUniform(params.seed, step) * kept_total;
  double cum = 0.0;
  size_t chosen = 0;
  for (size_t i = 0; i < keep; ++i) {
    const double w = weight_at(i);
    if (w > 0.0) chosen = i;
    cum += w;
    if (cum > target) break;
  }
  return cand[chosen].id;
}

void LogSoftmax(const float* logits, int vocab, float* out) {
  if (vocab <= 0) return;
  const double lse = LogSumExp(logits, vocab);
  for (int i = 0; i < vocab; ++i) out[i] = LogProb(logits[i], lse);
}

float TokenLogProb(const float* logits, int vocab, int32_t token) {
  if (token < 0 || token >= vocab) return kNegInf;
  return LogProb(logits[token], LogSumExp(logits, vocab));
}

std::vector<std::pair<int32_t, float>> TopLogProbs(const float* logprobs, int vocab, int n) {
  const size_t count = static_cast<size_t>(std::clamp(n, 0, std::max(vocab, 0)));
  std::vector<std::pair<int32_t, float>> result;
  if (count == 0) return result;
  // A heap of the `count` best so far, the worst of them on top: O(vocab log n), no scratch
  // of vocabulary size.
  std::vector<Candidate> heap;
  heap.reserve(count);
  for (int i = 0; i < vocab; ++i) {
    const Candidate c{RankKey(logprobs[i]), i};
    if (heap.size() < count) {
      heap.push_back(c);
      std::push_heap(heap.begin(), heap.end(), Better);
    } else if (Better(c, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), Better);
      heap.back() = c;
      std::push_heap(heap.begin(), heap.end(), Better);
    }
  }
  std::sort_heap(heap.begin(), heap.end(), Better);  // best first
  result.reserve(count);
  for (const Candidate& c : heap) result.emplace_back(c.id, logprobs[c.id]);
  return result;
}

}  // namespace pkm
