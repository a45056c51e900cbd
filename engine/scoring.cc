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

}  // namespace pkm
