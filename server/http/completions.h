// POST /v1/completions: one request through the scheduler, answered whole or as server-sent
// events. With echo the prompt is scored first, as the gRPC Score of the same prompt (same
// windows, so the same numbers), and its tokens lead the completion's logprobs.
//
// Thread-safety: called on the HTTP server's handler threads; shares only the scheduler
// (thread-safe) and the immutable tokenizer and config.
#pragma once

#include <cstdint>
#include <string>

#include "model_loader/model_config.h"
#include "model_loader/tokenizer.h"
#include "server/metrics.h"
#include "server/request_validation.h"
#include "server/scheduler.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace pkm::http {

struct CompletionsContext {
  Scheduler* scheduler = nullptr;
  const Tokenizer* tokenizer = nullptr;
  const ModelConfig* config = nullptr;
  const ServiceLimits* limits = nullptr;
  ServerMetrics* metrics = nullptr;
  std::string model_name;
};

// Fills `res`: 200 with the completion (or its event stream), or the error body.
void HandleCompletion(const CompletionsContext& ctx, uint64_t call_id,
                      const httplib::Request& req, httplib::Response& res);

// Sets `res` to `status`'s error body and HTTP status.
void ReplyError(const Status& status, httplib::Response& res);

}  // namespace pkm::http
