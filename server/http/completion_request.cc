#include "server/http/completion_request.h"

#include <cmath>
#include <cstdint>
#include <limits>

namespace pkm::http {
namespace {

using json = nlohmann::ordered_json;

Status Invalid(const std::string& message) {
  return Status(StatusCode::kInvalidArgument, message);
}

// What a JSON value is, for messages: "a string", "an array", "null", ...
std::string Kind(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_float: return "a number with a fraction";
    default: return "an integer";
  }
}

Status WrongType(const char* field, const char* expected, const json& got) {
  return Invalid(std::string("field '") + field + "': expected " + expected + ", got " + Kind(got));
}

// The body as a JSON object, or kInvalidArgument saying why not.
StatusOr<json> ParseObject(std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return Invalid("the request body is not valid JSON (expected a JSON object)");
  }
  if (!j.is_object()) return Invalid("the request body must be a JSON object, got " + Kind(j));
  return j;
}

// An integer field in [lo, hi] (null or absent: `fallback`).
StatusOr<int64_t> Integer(const json& body, const char* field, int64_t lo, int64_t hi,
                          int64_t fallback) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) return WrongType(field, "an integer", *it);
  const bool negative = it->is_number_integer() && !it->is_number_unsigned() &&
                        it->get<int64_t>() < 0;
  if (negative ? it->get<int64_t>() < lo : it->get<uint64_t>() > static_cast<uint64_t>(hi)) {
    return Invalid(std::string("field '") + field + "': expected an integer in [" +
                   std::to_string(lo) + ", " + std::to_string(hi) + "], got " + it->dump());
  }
  return it->get<int64_t>();
}

// A number field, when present and not null.
StatusOr<bool> Number(const json& body, const char* field, double* out) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return false;
  if (!it->is_number()) return WrongType(field, "a number", *it);
  *out = it->get<double>();
  return true;
}

StatusOr<bool> Boolean(const json& body, const char* field, bool fallback) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return WrongType(field, "true or false", *it);
  return it->get<bool>();
}

// prompt: a string, token ids, or a one-element array of either.
Status SetPrompt(const json& body, pkmserve::v1::GenerateRequest* out) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) {
    return Invalid("field 'prompt': required (a string or an array of token ids)");
  }
  const json* p = &*it;
  if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) {
    p = &(*p)[0];  // one prompt in a batch of one
  }
  if (p->is_string()) {
    out->set_text(p->get<std::string>());
    return Status();
  }
  if (!p->is_array()) return WrongType("prompt", "a string or an array of token ids", *p);
  if (p->empty()) return Invalid("field 'prompt': an empty array (expected at least one token id)");
  if ((*p)[0].is_string() || (*p)[0].is_array()) {
    return Invalid("field 'prompt': a batch of " + std::to_string(p->size()) +
                   " prompts; this server takes one prompt per request (send them as separate "
                   "requests: they are batched together)");
  }
  for (size_t i = 0; i < p->size(); ++i) {
    const json& id = (*p)[i];
    if (!id.is_number_integer() ||
        id.get<int64_t>() < std::numeric_limits<int32_t>::min() ||
        id.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      return Invalid("field 'prompt': element " + std::to_string(i) +
                     " is not a token id (expected an integer, got " + id.dump() + ")");
    }
    out->mutable_tokens()->add_ids(id.get<int32_t>());
  }
  return Status();
}

Status SetStop(const json& body, pkmserve::v1::GenerateRequest* out) {
  auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return Status();
  if (it->is_string()) {
    out->add_stop(it->get<std::string>());
    return Status();
  }
  if (!it->is_array()) return WrongType("stop", "a string or an array of strings", *it);
  for (const json& s : *it) {
    if (!s.is_string()) return WrongType("stop", "an array of strings", s);
    out->add_stop(s.get<std::string>());
  }
  return Status();
}

// Options of OpenAI's API that this server does not implement: refused unless at their
// neutral value, so that a request never silently means something else.
Status CheckUnsupported(const json& body) {
  for (const char* field : {"n", "best_of"}) {
    PKM_ASSIGN_OR_RETURN(int64_t v, Integer(body, field, 1, 1, 1));
    (void)v;
  }
  for (const char* field : {"presence_penalty", "frequency_penalty"}) {
    double v = 0;
    PKM_ASSIGN_OR_RETURN(bool present, Number(body, field, &v));
    if (present && v != 0) {
      return Invalid(std::string("field '") + field + "': not supported (only 0), got " +
                     body[field].dump());
    }
  }
  if (auto it = body.find("logit_bias"); it != body.end() && !it->is_null() && !it->empty()) {
    return Invalid("field 'logit_bias': not supported (only empty or null)");
  }
  if (auto it = body.find("suffix"); it != body.end() && !it->is_null()) {
    return Invalid("field 'suffix': not supported (insertion is not a model ability here)");
  }
  return Status();
}

}  // namespace

StatusOr<CompletionRequest> ParseCompletionRequest(std::string_view body_text) {
  PKM_ASSIGN_OR_RETURN(json body, ParseObject(body_text));
  CompletionRequest r;
  pkmserve::v1::GenerateRequest& g = r.generate;
  PKM_RETURN_IF_ERROR(SetPrompt(body, &g));
  PKM_RETURN_IF_ERROR(CheckUnsupported(body));
  PKM_ASSIGN_OR_RETURN(int64_t max_tokens, Integer(body, "max_tokens", 0, INT32_MAX, 16));
  r.max_tokens = static_cast<int>(max_tokens);
  PKM_ASSIGN_OR_RETURN(r.stream, Boolean(body, "stream", false));
  PKM_ASSIGN_OR_RETURN(r.echo, Boolean(body, "echo", false));
  if (r.max_tokens == 0 && !r.echo) {
    return Invalid("field 'max_tokens': 0 generates nothing; it is allowed only with echo "
                   "(the prompt's logprobs)");
  }
  g.set_max_new_tokens(static_cast<uint32_t>(r.max_tokens));
  double v = 0;
  PKM_ASSIGN_OR_RETURN(bool has_temperature, Number(body, "temperature", &v));
  if (has_temperature) g.set_temperature(static_cast<float>(v));
  PKM_ASSIGN_OR_RETURN(bool has_top_p, Number(body, "top_p", &v));
  if (has_top_p) g.set_top_p(static_cast<float>(v));
  // -1 is vLLM's "off", 0 ours.
  PKM_ASSIGN_OR_RETURN(int64_t top_k, Integer(body, "top_k", -1, INT32_MAX, 0));
  g.set_top_k(static_cast<uint32_t>(top_k < 0 ? 0 : top_k));
  PKM_ASSIGN_OR_RETURN(int64_t seed, Integer(body, "seed", INT64_MIN, INT64_MAX, -1));
  if (body.contains("seed") && !body["seed"].is_null()) g.set_seed(static_cast<uint64_t>(seed));
  PKM_RETURN_IF_ERROR(SetStop(body, &g));
  PKM_ASSIGN_OR_RETURN(bool ignore_eos, Boolean(body, "ignore_eos", false));
  g.set_ignore_eos(ignore_eos);
  PKM_ASSIGN_OR_RETURN(int64_t logprobs, Integer(body, "logprobs", 0, 20, -1));
  r.logprobs = static_cast<int>(logprobs);
  if (r.logprobs >= 0) {
    g.set_logprobs(true);
    g.set_top_logprobs(static_cast<uint32_t>(r.logprobs));
  }
  return r;
}

StatusOr<pkmserve::v1::TokenizeRequest> ParseTokenizeRequest(std::string_view body_text) {
  PKM_ASSIGN_OR_RETURN(json body, ParseObject(body_text));
  const char* field = body.contains("prompt") ? "prompt" : "text";
  auto it = body.find(field);
  if (it == body.end()) return Invalid("field 'prompt': required (the text to tokenize)");
  if (!it->is_string()) return WrongType(field, "a string", *it);
  pkmserve::v1::TokenizeRequest r;
  r.set_text(it->get<std::string>());
  PKM_ASSIGN_OR_RETURN(bool add_bos, Boolean(body, "add_special_tokens", true));
  r.set_add_bos(add_bos);
  return r;
}

StatusOr<pkmserve::v1::DetokenizeRequest> ParseDetokenizeRequest(std::string_view body_text) {
  PKM_ASSIGN_OR_RETURN(json body, ParseObject(body_text));
  auto it = body.find("tokens");
  if (it == body.end()) return Invalid("field 'tokens': required (an array of token ids)");
  if (!it->is_array()) return WrongType("tokens", "an array of token ids", *it);
  pkmserve::v1::DetokenizeRequest r;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& id = (*it)[i];
    if (!id.is_number_integer() || id.get<int64_t>() < std::numeric_limits<int32_t>::min() ||
        id.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      return Invalid("field 'tokens': element " + std::to_string(i) +
                     " is not a token id (expected an integer, got " + id.dump() + ")");
    }
    r.add_ids(id.get<int32_t>());
  }
  return r;
}

int HttpStatus(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kOutOfRange: return 400;
    case StatusCode::kUnauthenticated: return 401;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kResourceExhausted: return 429;
    case StatusCode::kCancelled: return 499;
    case StatusCode::kUnimplemented: return 501;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kDeadlineExceeded: return 504;
    default: return 500;
  }
}

nlohmann::ordered_json ErrorBody(const Status& status) {
  const int http = HttpStatus(status.code());
  const char* type = http == 401   ? "authentication_error"
                     : http == 429 ? "rate_limit_error"
                     : http < 500 ? "invalid_request_error"
                                  : "server_error";
  return {{"error",
           {{"message", status.message()},
            {"type", type},
            {"param", nullptr},
            {"code", StatusCodeName(status.code())}}}};
}

}  // namespace pkm::http
