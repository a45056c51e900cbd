// Per-request decoding state shared by the server's scheduler and the offline generator:
// sampling with the request's seed, EOS / stop strings / max tokens, and the text delta of
// each new token (never a split UTF-8 character, never part of a stop string).
//
// Not thread-safe; one request's state is touched by one thread at a time.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/engine.h"
#include "engine/sampling.h"
#include "engine/stop_strings.h"
#include "model_loader/tokenizer.h"

namespace pkm {

enum class FinishReason { kNone, kLength, kStop, kEos, kCancelled };
const char* FinishReasonName(FinishReason r);

struct GenerateOptions {
  SamplingParams sampling;
  int max_new_tokens = 64;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  // Compute each sampled token's log-probability (Event::logprob). Off by default: it is a
  // log-sum-exp over the whole vocabulary per token, paid only by requests that ask for it.
  bool logprobs = false;
};

class Generation {
 public:
  struct Event {
    int32_t token = -1;
    float logprob = 0.0f;     // log p(token) at temperature 1; with options.logprobs only
    std::string text;         // text that became final with this token
    FinishReason finish = FinishReason::kNone;
  };

  // `anchor` is the last prompt token: decoding starts after it so the first generated
  // token keeps its leading space.
  Generation(const Tokenizer* tokenizer, int32_t anchor, int eos_id, GenerateOptions options);

  // Samples the next token from the logits of the last position and updates the state.
  Event Next(const float* logits, int vocab);

  const std::vector<int32_t>& tokens() const { return tokens_; }
  FinishReason finish() const { return finish_; }

 private:
  std::string NewText(bool final);

  const Tokenizer* tokenizer_;
  int32_t anchor_;
  int eos_id_;
  GenerateOptions options_;
  StopMatcher stop_;
  std::vector<int32_t> tokens_;
  std::string anchor_text_;
  size_t decoded_bytes_ = 0;  // bytes of the decoded continuation already passed to stop_
  FinishReason finish_ = FinishReason::kNone;
};

struct GenerateResult {
  std::vector<int32_t> tokens;
  std::string text;
  FinishReason finish = FinishReason::kNone;
};

// Runs one request to completion on an engine nobody else is using: prefill in chunks of
// `prefill_chunk` tokens (0: whole prompt), then decode. Releases the sequence at the end.
StatusOr<GenerateResult> Generate(Engine& engine, const Tokenizer& tokenizer, SeqId seq,
                                  std::span<const int32_t> prompt, const GenerateOptions& options,
                                  int prefill_chunk = 0);

}  // namespace pkm
