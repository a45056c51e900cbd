// Token sampling and log-probabilities: pure functions of one row of logits.
//
// Reproducibility: SampleToken depends on nothing but (logits, params, step). Its only source
// of randomness is SampleUniform(seed, step), a counter-based hash, so a request yields the
// same tokens whether it runs alone or batched with others, on any thread, in any order, and
// a step can be replayed without replaying the ones before it.
//
// Thread-safety: every function here is thread-safe (no shared mutable state; scratch memory
// is thread-local).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace pkm {

inline constexpr float kMaxTemperature = 100.0f;

struct SamplingParams {
  float temperature = 1.0f;  // 0: greedy (argmax, ties -> lowest token id)
  int top_k = 0;             // keep the k most likely tokens; 0: off
  float top_p = 1.0f;        // nucleus: smallest prefix with probability >= top_p; 1: off
  uint64_t seed = 0;
};

// "" when `params` are valid for a vocabulary of `vocab_size` tokens, else a message naming the
// field, its allowed range and the value found: temperature finite in [0, 100], top_k in
// [0, vocab_size], top_p in (0, 1].
std::string Validate(const SamplingParams& params, int vocab_size);

// The uniform draw of step `step` of a request seeded with `seed`: a double in [0, 1), the top
// 53 bits of splitmix64(splitmix64(seed) + step * 0x9E3779B97F4A7C15), where splitmix64(x) is
// SplitMix64's next() from state x. For a fixed seed the steps are consecutive outputs of one
// SplitMix64 stream whose start is itself hashed from the seed, so nearby seeds (0, 1, 2...)
// give unrelated streams rather than shifted copies of one another. A GPU sampler that must
// agree with this one computes the same expression.
double SampleUniform(uint64_t seed, uint64_t step);

// Draws the next token from `logits` ([vocab]) for step `step` (typically the number of tokens
// generated so far) of a request with `params`:
//   temperature 0 -> argmax, ties to the lowest id. Otherwise candidates are ordered by logit
//   descending then id ascending; top_k keeps the first k; probabilities are
//   softmax((logit - max) / temperature) in double over the kept set; top_p keeps the smallest
//   prefix whose cumulative probability is >= top_p (at least one token); the survivors are
//   renormalised and one is picked by inverse CDF at SampleUniform(seed, step).
// `params` should pass Validate; out-of-range values are clamped rather than trusted (top_k
// outside [1, vocab) is off, top_p <= 0 keeps one token). NaN logits count as -inf.
// If the best logit is not finite (+inf, or every logit -inf/NaN) this returns the argmax.
// Returns -1 only when vocab <= 0.
// Cost: O(vocab) plus the ordering of the prefix actually walked, built lazily (heap select,
// then nth_element blocks), so peaked distributions and small top_k never sort the whole
// vocabulary; a flat distribution with top_p near 1 costs one full sort.
int32_t SampleToken(const float* logits, int vocab, const SamplingParams& params, uint64_t step);

// out[i] = logits[i] - log(sum_j exp(logits[j])) ([vocab] -> [vocab]), rounded to fp32 from a
// max-subtracted log-sum-exp accumulated in double. -inf logits (masked tokens) give -inf;
// a NaN or +inf logit, or a row with no finite logit, makes the whole row NaN. `out` may
// alias `logits`.
void LogSoftmax(const float* logits, int vocab, float* out);

// LogSoftmax(logits, vocab, out)[token], bitwise, without writing a row. -inf for a token
// outside [0, vocab).
float TokenLogProb(const float* logits, int vocab, int32_t token);

// The min(n, vocab) best entries of `logprobs` ([vocab]) as (token, logprob), by logprob
// descending then token id ascending. NaN entries rank as -inf.
std::vector<std::pair<int32_t, float>> TopLogProbs(const float* logprobs, int vocab, int n);

}  // namespace pkm
