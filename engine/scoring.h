// Scoring: the log-probability the model gives each token of a text, given the tokens before it.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "common/status.h"
#include "engine/engine.h"

namespace pkm {

struct ScoreOptions {
  // Also return the top_n most likely tokens at each position (0: none).
  int top_n = 0;
  // Feed the tokens in chunks of at most this many per step (0: all at once).
  int chunk_tokens = 0;
};

struct ScoreResult {
  // logprobs[i] = log p(tokens[i + 1] | tokens[0..i]); one fewer than the tokens.
  std::vector<float> logprobs;
  // top[i]: the top_n (token, logprob) pairs at the same position, most likely first.
  std::vector<std::vector<std::pair<int32_t, float>>> top;
  // Σ −logprobs, accumulated in double.
  double sum_nll = 0.0;
};

// Scores `tokens` as sequence `seq` (which must not be in the engine yet) on an engine nobody
// else is stepping, then releases it. The first token is context only (typically <s>).
StatusOr<ScoreResult> ScoreTokens(Engine& engine, SeqId seq, std::span<const int32_t> tokens,
                                  const ScoreOptions& options = {});

}  // namespace pkm
