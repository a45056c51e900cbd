#include "server/http/completion_response.h"

namespace pkm::http {

using json = nlohmann::ordered_json;

json LogprobsJson(const std::vector<TokenLogprob>& tokens, const std::vector<std::string>& texts,
                  size_t offset, int top_n, const Tokenizer& tokenizer) {
  json pieces = json::array(), logprobs = json::array(), top = json::array(),
       offsets = json::array();
  for (size_t i = 0; i < tokens.size(); ++i) {
    const TokenLogprob& t = tokens[i];
    pieces.push_back(tokenizer.IdToPiece(t.id));
    logprobs.push_back(t.has_logprob ? json(t.logprob) : json(nullptr));
    if (top_n < 0 || !t.has_logprob) {
      top.push_back(nullptr);
    } else {
      json alternatives = json::object();
      for (const auto& [id, lp] : t.top) alternatives[tokenizer.IdToPiece(id)] = lp;
      top.push_back(std::move(alternatives));
    }
    offsets.push_back(offset);
    if (i < texts.size()) offset += texts[i].size();
  }
  return {{"tokens", std::move(pieces)},
          {"token_logprobs", std::move(logprobs)},
          {"top_logprobs", std::move(top)},
          {"text_offset", std::move(offsets)}};
}

json CompletionJson(const CompletionHead& head, const std::string& text, json logprobs,
                    json finish_reason, json usage) {
  json choice = {{"index", 0},
                 {"text", text},
                 {"logprobs", std::move(logprobs)},
                 {"finish_reason", std::move(finish_reason)}};
  json body = {{"id", head.id},
               {"object", "text_completion"},
               {"created", head.created},
               {"model", head.model},
               {"choices", json::array({std::move(choice)})}};
  if (!usage.is_null()) body["usage"] = std::move(usage);
  return body;
}

json UsageJson(int prompt_tokens, int completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

}  // namespace pkm::http
