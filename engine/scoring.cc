#include "engine/scoring.h"

#include <algorithm>
#include <string>

namespace pkm {

StatusOr<ScoreResult> ScoreTokens(Engine& engine, SeqId seq, std::span<const int32_t> tokens,
                                  const ScoreOptions& options) {
  if (tokens.size() < 2) {
    return Status(StatusCode::kInvalidArgument,
                  "scoring needs at least 2 tokens (context and one target), got " +
                      std::to_string(tokens.size()));
  }
  if (engine.SequenceLength(seq) != 0) {
    return Status(StatusCode::kInvalidArgument,
                  "sequence " + std::to_string(seq) + " is already in the engine");
  }
  // Token i is fed with token i + 1 as its target; the last token is never fed.
  const size_t inputs = tokens.size() - 1;
  const size_t chunk = options.chunk_tokens > 0 ? options.chunk_tokens : inputs;
  ScoreResult result;
  StepResult step;
  Status status;
  for (size_t start = 0; start < inputs && status.ok(); start += chunk) {
    const size_t len = std::min(chunk, inputs - start);
    SeqChunk ch{.seq = seq,
                .tokens = tokens.subspan(start, len),
                .targets = tokens.subspan(start + 1, len),
                .top_n = options.top_n};
    status = engine.Step(std::span<const SeqChunk>(&ch, 1), &step);
    if (!status.ok()) break;
    ChunkScores& sc = step.scores[0];
    for (float lp : sc.logprobs) result.sum_nll -= lp;
    result.logprobs.insert(result.logprobs.end(), sc.logprobs.begin(), sc.logprobs.end());
    for (auto& top : sc.top) result.top.push_back(std::move(top));
  }
  engine.Release(seq);
  if (!status.ok()) return status;
  return result;
}

std::vector<ScoreWindow> PlanScoreWindows(int n_tokens, int context, int stride) {
  std::vector<ScoreWindow> windows;
  if (n_tokens < 2 || context < 2 || stride < 1 || stride >= context) return windows;
  int begin = 0;
  int scored_until = 1;  // token 0 is context only
  while (true) {
    const int end = std::min(begin + context, n_tokens);
    windows.push_back({.begin = begin, .end = end, .first_target = scored_until});
    if (end == n_tokens) break;
    scored_until = end;
    begin += stride;
  }
  return windows;
}

std::vector<int32_t> WindowTargets(std::span<const int32_t> tokens, const ScoreWindow& window) {
  std::vector<int32_t> targets(window.end - 1 - window.begin);
  for (size_t i = 0; i < targets.size(); ++i) {
    const int j = window.begin + 1 + static_cast<int>(i);
    targets[i] = j >= window.first_target ? tokens[j] : -1;
  }
  return targets;
}

StatusOr<WindowedScoreResult> ScoreTokensWindowed(Engine& engine, SeqId seq,
                                                  std::span<const int32_t> tokens, int context,
                                                  int stride, const ScoreOptions& options) {
  const std::vector<ScoreWindow> windows =
      PlanScoreWindows(static_cast<int>(tokens.size()), context, stride);
  if (windows.empty()) {
    return Status(StatusCode::kInvalidArgument,
                  "windowed scoring needs at least 2 tokens, context >= 2 and stride in [1, "
                  "context - 1]; got " + std::to_string(tokens.size()) + " tokens, context " +
                      std::to_string(context) + ", stride " + std::to_string(stride));
  }
  WindowedScoreResult result;
  result.windows = static_cast<int>(windows.size());
  for (const ScoreWindow& w : windows) {
    if (engine.SequenceLength(seq) != 0) {
      return Status(StatusCode::kInvalidArgument,
                    "sequence " + std::to_string(seq) + " is already in the engine");
    }
    const std::vector<int32_t> targets = WindowTargets(tokens, w);
    const size_t inputs = targets.size();
    const size_t chunk = options.chunk_tokens > 0 ? options.chunk_tokens : inputs;
    StepResult step;
    Status status;
    for (size_t start = 0; start < inputs && status.ok(); start += chunk) {
      const size_t len = std::min(chunk, inputs - start);
      SeqChunk ch{.seq = seq,
                  .tokens = tokens.subspan(w.begin + start, len),
                  .targets = std::span<const int32_t>(targets).subspan(start, len),
                  .top_n = options.top_n};
      status = engine.Step(std::span<const SeqChunk>(&ch, 1), &step);
      if (!status.ok()) break;
      ChunkScores& sc = step.scores[0];
      for (float lp : sc.logprobs) result.scores.sum_nll -= lp;
      result.scores.logprobs.insert(result.scores.logprobs.end(), sc.logprobs.begin(),
                                    sc.logprobs.end());
      for (auto& top : sc.top) result.scores.top.push_back(std::move(top));
    }
    engine.Release(seq);
    if (!status.ok()) return status;
  }
  return result;
}

}  // namespace pkm
