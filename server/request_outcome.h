// How one call ended, as the operator sees it: recorded in the metrics (request counters and
// end-to-end latency) and written as one log line, "request finished" (or "request failed"),
// with counts and times only: never the prompt or its tokens.
//
//   2026-12-02T23:10:00.123Z INFO request finished id=12 method=generate prompt_tokens=9
//     output_tokens=64 queue_ms=0.4 ttft_ms=35.1 e2e_ms=812.0 finish=length
#pragma once

#include <grpcpp/support/status.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "server/metrics.h"

namespace pkm {

struct RequestOutcome {
  using Clock = std::chrono::steady_clock;
  uint64_t id = 0;          // the service's call id (also sent as x-request-id metadata)
  const char* method = "";  // "generate", "score", "tokenize", "detokenize"
  const char* api = "grpc";  // or "http" (the OpenAI-compatible API; logged as api=http)
  Clock::time_point arrival = Clock::now();
  int prompt_tokens = -1;   // -1: not known (refused before tokenizing)
  int output_tokens = -1;   // generated, or scored
  double queue_seconds = -1;  // -1: never admitted
  double ttft_seconds = -1;   // -1: no token
  std::string finish;       // success: length, stop, eos, cancelled, scored, ok
};

// Records the outcome in `metrics` (when not null; only generate and score count as
// requests there, the others count only failures) and logs it.
void RecordOutcome(ServerMetrics* metrics, const RequestOutcome& outcome,
                   const grpc::Status& status);

}  // namespace pkm
