#include "server/request_validation.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>

#include "engine/sampling.h"

namespace pkm {
namespace {

Status Invalid(const std::string& message) {
  return Status(StatusCode::kInvalidArgument, message);
}

template <typename T>
std::string Str(T v) {
  if constexpr (std::is_floating_point_v<T>) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", static_cast<double>(v));
    return buf;
  } else {
    return std::to_string(v);
  }
}

}  // namespace

Status TextUnavailable(const std::string& what, TextUse use, const Tokenizer& tokenizer,
                       const std::string& ids_field) {
  const bool encode = use == TextUse::kEncode;
  const bool ids_only = !tokenizer.can_encode() && !tokenizer.can_decode();
  return Status(StatusCode::kFailedPrecondition,
                what + " needs a tokenizer that " + (encode ? "encodes" : "decodes") +
                    " text, and this model " +
                    (ids_only ? "is served on token ids only" : "has none that does") + ": " +
                    std::string(tokenizer.missing_text_reason()) +
                    (ids_field.empty() ? "" : "; send " + ids_field + " (token ids) instead"));
}

Status CheckTextUse(const std::string& what, TextUse use, const Tokenizer& tokenizer,
                    const std::string& ids_field) {
  const bool can = use == TextUse::kEncode ? tokenizer.can_encode() : tokenizer.can_decode();
  return can ? Status() : TextUnavailable(what, use, tokenizer, ids_field);
}

namespace {

// The tokens of a text-or-ids input: ids used as given, text encoded with BOS unless
// add_bos is false.
StatusOr<std::vector<int32_t>> InputTokens(bool is_text, const std::string& text,
                                           const pkmserve::v1::TokenIds* ids, bool add_bos,
                                           const Tokenizer& tokenizer, int vocab,
                                           const char* field) {
  std::vector<int32_t> tokens;
  if (is_text) {
    PKM_RETURN_IF_ERROR(CheckTextUse("text", TextUse::kEncode, tokenizer, field));
    if (add_bos) tokens.push_back(tokenizer.bos_id());
    std::vector<int32_t> enc = tokenizer.Encode(text);
    tokens.insert(tokens.end(), enc.begin(), enc.end());
    return tokens;
  }
  PKM_RETURN_IF_ERROR(CheckTokenIds(ids->ids(), vocab, (std::string(field) + ".ids").c_str()));
  tokens.assign(ids->ids().begin(), ids->ids().end());
  return tokens;
}

uint64_t RandomSeed() {
  std::random_device rd;
  return (uint64_t{rd()} << 32) | rd();
}

}  // namespace

Status CheckTokenIds(const google::protobuf::RepeatedField<int32_t>& ids, int vocab_size,
                     const char* field) {
  for (int i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size) {
      return Invalid(std::string(field) + "[" + Str(i) + "] must be a token id in [0, " +
                     Str(vocab_size - 1) + "], got " + Str(ids[i]));
    }
  }
  return OkStatus();
}

StatusOr<GenerateWork> ToGenerateWork(const pkmserve::v1::GenerateRequest& request,
                                      const Tokenizer& tokenizer, const ModelConfig& config,
                                      const ServiceLimits& limits) {
  using Req = pkmserve::v1::GenerateRequest;
  if (request.prompt_case() == Req::PROMPT_NOT_SET) {
    return Invalid("prompt is required: set prompt.text or prompt.tokens");
  }
  const int max_prompt = limits.max_prompt_tokens > 0 ? limits.max_prompt_tokens
                                                      : config.max_seq_len - 1;
  const int max_new_limit = limits.max_new_tokens > 0 ? limits.max_new_tokens
                                                      : config.max_seq_len - 1;
  GenerateWork work;
  PKM_ASSIGN_OR_RETURN(
      work.prompt,
      InputTokens(request.prompt_case() == Req::kText, request.text(),
                  request.has_tokens() ? &request.tokens() : nullptr,
                  !request.has_add_bos() || request.add_bos(), tokenizer, config.vocab_size,
                  "tokens"));
  if (work.prompt.empty()) {
    return Invalid(std::string("prompt must have at least 1 token, got 0 (") +
                   (request.has_tokens() ? "tokens.ids is empty" : "text is empty and add_bos is false") +
                   ")");
  }
  if (request.truncate() > static_cast<uint32_t>(max_prompt)) {
    return Invalid("truncate must be in [1, " + Str(max_prompt) +
                   "] (the server's limits.max_prompt_tokens; 0: no truncation), got " +
                   Str(request.truncate()));
  }
  const bool has_bos = request.prompt_case() == Req::kText &&
                       (!request.has_add_bos() || request.add_bos());
  if (request.truncate() > 0 && work.prompt.size() > request.truncate()) {
    // Keep the last `truncate` tokens; a prepended BOS stays first and counts among them.
    const size_t keep = request.truncate();
    const size_t lead = has_bos && keep > 1 ? 1 : 0;
    work.prompt.erase(work.prompt.begin() + static_cast<long>(lead),
                      work.prompt.end() - static_cast<long>(keep - lead));
  }
  const int prompt_len = static_cast<int>(work.prompt.size());
  if (prompt_len > max_prompt) {
    return Invalid("prompt has " + Str(prompt_len) + " tokens, more than the " + Str(max_prompt) +
                   " this server accepts (limits.max_prompt_tokens); set truncate to keep only "
                   "the last tokens, or shorten it");
  }
  const int room = config.max_seq_len - prompt_len;
  int max_new = static_cast<int>(std::min<uint32_t>(request.max_new_tokens(), 1u << 30));
  if (max_new == 0) {
    // The documented default: as many tokens as fit, up to the server's limit.
    max_new = std::min(max_new_limit, room);
    if (max_new <= 0) {
      return Invalid("prompt of " + Str(prompt_len) + " tokens leaves no room to generate: the "
                     "model's max_seq_len is " + Str(config.max_seq_len) +
                     "; set truncate below " + Str(config.max_seq_len));
    }
  } else if (max_new > max_new_limit) {
    return Invalid("max_new_tokens must be in [1, " + Str(max_new_limit) +
                   "] (the server's limits.max_new_tokens; 0: as many as fit), got " + Str(max_new));
  } else if (max_new > room) {
    return Invalid("max_new_tokens must be at most " + Str(room) + " for a prompt of " + Str(prompt_len) +
                   " tokens (prompt + max_new_tokens <= max_seq_len " + Str(config.max_seq_len) +
                   "), got " + Str(max_new) + "; lower it, or set truncate to shorten the prompt");
  }
  work.options.max_new_tokens = max_new;

  SamplingParams& s = work.options.sampling;
  s.temperature = request.has_temperature() ? request.temperature() : 1.0f;
  if (!std::isfinite(s.temperature) || s.temperature < 0 || s.temperature > kMaxTemperature) {
    return Invalid("temperature must be in [0, " + Str(kMaxTemperature) + "], got " + Str(s.temperature));
  }
  if (request.top_k() > static_cast<uint32_t>(config.vocab_size)) {
    return Invalid("top_k must be in [0, " + Str(config.vocab_size) + "] (0: off), got " +
                   Str(request.top_k()));
  }
  s.top_k = static_cast<int>(request.top_k());
  s.top_p = request.has_top_p() ? request.top_p() : 1.0f;
  if (!(s.top_p > 0.0f && s.top_p <= 1.0f)) {
    return Invalid("top_p must be in (0, 1], got " + Str(s.top_p));
  }
  s.seed = request.has_seed() ? request.seed() : RandomSeed();
  if (std::string err = Validate(s, config.vocab_size); !err.empty()) return Invalid(err);

  if (request.stop_size() > kMaxStopStrings) {
    return Invalid("stop must have at most " + Str(kMaxStopStrings) + " strings, got " +
                   Str(request.stop_size()));
  }
  if (request.stop_size() > 0) {
    PKM_RETURN_IF_ERROR(CheckTextUse("stop", TextUse::kDecode, tokenizer, ""));
  }
  for (int i = 0; i < request.stop_size(); ++i) {
    const size_t n = request.stop(i).size();
    if (n == 0 || n > static_cast<size_t>(kMaxStopBytes)) {
      return Invalid("stop[" + Str(i) + "] must be 1 to " + Str(kMaxStopBytes) + " bytes, got " + Str(n));
    }
    work.options.stop.push_back(request.stop(i));
  }
  work.options.ignore_eos = request.ignore_eos();
  if (request.top_logprobs() > static_cast<uint32_t>(kMaxTopLogprobs)) {
    return Invalid("top_logprobs must be in [0, " + Str(kMaxTopLogprobs) + "], got " +
                   Str(request.top_logprobs()));
  }
  if (request.top_logprobs() > 0 && !request.logprobs()) {
    return Invalid("top_logprobs needs logprobs = true");
  }
  work.options.logprobs = request.logprobs();
  work.memory = {static_cast<int>(std::min<uint32_t>(request.memory_knn(), INT_MAX)),
                 static_cast<int>(std::min<uint32_t>(request.memory_heads(), INT_MAX))};
  work.top_logprobs = static_cast<int>(request.top_logprobs());
  return work;
}

StatusOr<ScoreWork> ToScoreWork(const pkmserve::v1::ScoreRequest& request,
                                const Tokenizer& tokenizer, const ModelConfig& config) {
  using Req = pkmserve::v1::ScoreRequest;
  if (request.input_case() == Req::INPUT_NOT_SET) {
    return Invalid("input is required: set input.text or input.tokens");
  }
  ScoreWork work;
  PKM_ASSIGN_OR_RETURN(
      work.tokens,
      InputTokens(request.input_case() == Req::kText, request.text(),
                  request.has_tokens() ? &request.tokens() : nullptr,
                  !request.has_add_bos() || request.add_bos(), tokenizer, config.vocab_size,
                  "tokens"));
  if (work.tokens.size() < 2) {
    return Invalid("input must have at least 2 tokens (the first is context only), got " +
                   Str(work.tokens.size()));
  }
  const uint32_t max_ctx = static_cast<uint32_t>(config.max_seq_len);
  if (request.context() == 1 || request.context() > max_ctx) {
    return Invalid("context must be in [2, " + Str(max_ctx) + "] (0: " + Str(max_ctx) + "), got " +
                   Str(request.context()));
  }
  work.context = request.context() == 0 ? config.max_seq_len : static_cast<int>(request.context());
  if (request.stride() >= static_cast<uint32_t>(work.context)) {
    return Invalid("stride must be in [1, " + Str(work.context - 1) + "] (context - 1; 0: context / 2), got " +
                   Str(request.stride()));
  }
  work.stride = request.stride() == 0 ? work.context / 2 : static_cast<int>(request.stride());
  if (request.top_n() > static_cast<uint32_t>(kMaxTopLogprobs)) {
    return Invalid("top_n must be in [0, " + Str(kMaxTopLogprobs) + "], got " + Str(request.top_n()));
  }
  work.top_n = static_cast<int>(request.top_n());
  const int first_window = std::min(work.context, static_cast<int>(work.tokens.size()));
  if (request.score_from() >= static_cast<uint32_t>(first_window)) {
    return Invalid("score_from must be in [1, " + Str(first_window - 1) +
                   "] (min(context, input tokens) - 1; 0: 1), got " + Str(request.score_from()));
  }
  work.score_from = request.score_from() == 0 ? 1 : static_cast<int>(request.score_from());
  work.memory = {static_cast<int>(std::min<uint32_t>(request.memory_knn(), INT_MAX)),
                 static_cast<int>(std::min<uint32_t>(request.memory_heads(), INT_MAX))};
  return work;
}

}  // namespace pkm
