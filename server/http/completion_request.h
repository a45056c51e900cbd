// The OpenAI-compatible HTTP API's request bodies, translated to the gRPC API's messages so that
// both APIs share one validation (request_validation.h) and one scheduler; and its error shape.
//
// POST /v1/completions (OpenAI's legacy completions, as llama-server, vLLM and TGI serve it):
//   prompt       string, or an array of token ids (a one-element array of either is accepted)
//   max_tokens   integer >= 0, default 16; 0 only with echo (the prompt's logprobs, no output)
//   temperature, top_p, top_k, seed, stop (string or array of strings), stream, echo
//   logprobs     integer in [0, 20] or null: the sampled tokens' logprobs and this many
//                alternatives (with echo, the prompt's too)
//   n, best_of   1 only; presence_penalty, frequency_penalty 0 only; logit_bias empty only;
//                suffix absent only (each refused by name otherwise)
//   ignore_eos   boolean, default false: keep generating after EOS (vLLM's extension)
//   model, user  accepted and not used (one model is served)
// Other fields are ignored, as OpenAI's own server and vLLM's do.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "pkmserve/v1/inference.pb.h"

namespace pkm::http {

struct CompletionRequest {
  pkmserve::v1::GenerateRequest generate;  // prompt, sampling, stop, logprobs
  int max_tokens = 16;
  bool stream = false;
  bool echo = false;
  int logprobs = -1;  // -1: none asked
};

// kInvalidArgument naming the field, what it expects and what came, for a body that is not a
// JSON object, a field of the wrong type or value, or an option this server does not have.
StatusOr<CompletionRequest> ParseCompletionRequest(std::string_view body);

// POST /tokenize {"prompt" | "text": string, "add_special_tokens": bool = true} and
// POST /detokenize {"tokens": [ids]}, as llama-server takes them.
StatusOr<pkmserve::v1::TokenizeRequest> ParseTokenizeRequest(std::string_view body);
StatusOr<pkmserve::v1::DetokenizeRequest> ParseDetokenizeRequest(std::string_view body);

// The HTTP status of a status code: 400 bad request, 401, 404, 429 queue full, 499 cancelled,
// 503 unavailable (loading, draining), 504 deadline, 500 otherwise.
int HttpStatus(StatusCode code);

// OpenAI's error body: {"error": {"message", "type", "param": null, "code"}}, type
// "invalid_request_error", "authentication_error", "rate_limit_error" or "server_error".
nlohmann::ordered_json ErrorBody(const Status& status);

}  // namespace pkm::http
