// The OpenAI-compatible API's response bodies: a text_completion (whole, or one server-sent
// event of a stream) with OpenAI's legacy logprobs object, built from what the scheduler hands
// a request.
//
// logprobs: {"tokens": [piece], "token_logprobs": [float | null], "top_logprobs":
// [{piece: float} | null], "text_offset": [int]}. Tokens are named by their vocabulary piece
// (as the gRPC API's `piece`), the same spelling in "tokens" and in "top_logprobs" keys, so a
// client can tell whether the chosen token was the most likely one (what evaluation harnesses
// check). With echo, the prompt's first token has null logprobs: nothing comes before it.
//
// Thread-safety: pure functions over an immutable tokenizer.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "model_loader/tokenizer.h"

namespace pkm::http {

// One token of a completion's logprobs: its id, logprob (absent: null) and alternatives.
struct TokenLogprob {
  int32_t id = 0;
  bool has_logprob = false;
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top = {};
};

// The logprobs object of `tokens` (top_logprobs null where a token has no alternatives asked
// for: top_n < 0), their text offsets counted from `offset` in bytes of `texts`, one per token.
nlohmann::ordered_json LogprobsJson(const std::vector<TokenLogprob>& tokens,
                            const std::vector<std::string>& texts, size_t offset, int top_n,
                            const Tokenizer& tokenizer);

struct CompletionHead {
  std::string id;       // "cmpl-<n>"
  int64_t created = 0;  // Unix seconds
  std::string model;
};

// {"id", "object": "text_completion", "created", "model", "choices": [{"index": 0, "text",
// "logprobs", "finish_reason"}]} plus "usage" when given (not null).
nlohmann::ordered_json CompletionJson(const CompletionHead& head, const std::string& text,
                              nlohmann::ordered_json logprobs, nlohmann::ordered_json finish_reason,
                              nlohmann::ordered_json usage);

nlohmann::ordered_json UsageJson(int prompt_tokens, int completion_tokens);

}  // namespace pkm::http
