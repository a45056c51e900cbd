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

// Sliding-window scoring of inputs longer than the model's context.
//
// A window covers tokens [begin, end): it feeds tokens[begin, end - 1) as a fresh sequence
// (positions from 0) and scores the targets tokens[j] for j in [first_target, end), the tokens
// no earlier window scored. Windows hold at most `context` tokens and start `stride` tokens
// apart, so every token after the first is scored exactly once, and after the first window
// each scored token sees at least context - stride tokens before it.
struct ScoreWindow {
  int begin = 0;
  int end = 0;
  int first_target = 0;  // in (begin, end)
};

// The windows for n_tokens >= 2 tokens, context in [2, ...], stride in [1, context - 1].
// Returns an empty list for arguments outside those ranges.
std::vector<ScoreWindow> PlanScoreWindows(int n_tokens, int context, int stride);

// A window's feed: tokens[begin, end - 1) with targets[i] = tokens[begin + 1 + i] where that
// token is one the window scores, else -1.
std::vector<int32_t> WindowTargets(std::span<const int32_t> tokens, const ScoreWindow& window);

struct WindowedScoreResult {
  ScoreResult scores;  // as ScoreTokens: logprobs[i] is that of tokens[i + 1]
  int windows = 0;
};

// ScoreTokens over PlanScoreWindows(tokens.size(), context, stride), each window as sequence
// `seq` in turn. With context >= tokens.size() this is ScoreTokens exactly.
StatusOr<WindowedScoreResult> ScoreTokensWindowed(Engine& engine, SeqId seq,
                                                  std::span<const int32_t> tokens, int context,
                                                  int stride, const ScoreOptions& options = {});

}  // namespace pkm
