// Turns GenerateRequest / ScoreRequest messages into scheduler work, checking every field
// against the model and the server's limits. Errors are kInvalidArgument with a message that
// names the field, the allowed range and the value received.
//
// Thread-safety: pure functions (the tokenizer is immutable).
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "model_loader/model_config.h"
#include "model_loader/tokenizer.h"
#include "pkmserve/v1/inference.pb.h"
#include "server/scheduler.h"

namespace pkm {

// Limits the service enforces on requests (pkmserve's flags).
struct ServiceLimits {
  int max_prompt_tokens = 0;    // 0: the model's max_seq_len - 1
  int max_new_tokens = 0;       // 0: the model's max_seq_len - 1; also the most a request
                                // that leaves max_new_tokens unset gets (as many as fit)
};

inline constexpr int kMaxStopStrings = 16;
inline constexpr int kMaxStopBytes = 256;
inline constexpr int kMaxTopLogprobs = 20;

// Callbacks and deadline are left for the caller. An unset seed is drawn at random.
StatusOr<GenerateWork> ToGenerateWork(const pkmserve::v1::GenerateRequest& request,
                                      const Tokenizer& tokenizer, const ModelConfig& config,
                                      const ServiceLimits& limits);

StatusOr<ScoreWork> ToScoreWork(const pkmserve::v1::ScoreRequest& request,
                                const Tokenizer& tokenizer, const ModelConfig& config);


// FAILED_PRECONDITION for a field that needs the tokenizer to encode (or decode) text when the
// model's cannot: "WHAT needs a tokenizer that encodes text, and this model is served on token
// ids only: <why>; send IDS_FIELD (token ids) instead" (no suggestion when ids_field is empty).
enum class TextUse { kEncode, kDecode };
Status TextUnavailable(const std::string& what, TextUse use, const Tokenizer& tokenizer,
                       const std::string& ids_field);
// OK when `tokenizer` can do `use`, else TextUnavailable.
Status CheckTextUse(const std::string& what, TextUse use, const Tokenizer& tokenizer,
                    const std::string& ids_field);

// Ids for Detokenize: each in [0, vocab_size).
Status CheckTokenIds(const google::protobuf::RepeatedField<int32_t>& ids, int vocab_size,
                     const char* field);

}  // namespace pkm
