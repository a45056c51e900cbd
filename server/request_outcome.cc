#include "server/request_outcome.h"

#include <cmath>
#include <cstring>
#include <string_view>

#include "common/status.h"
#include "server/log.h"

namespace pkm {
namespace {

double Ms(double seconds) { return std::round(seconds * 1e4) / 10; }  // 0.1 ms

}  // namespace

void RecordOutcome(ServerMetrics* metrics, const RequestOutcome& outcome,
                   const grpc::Status& status) {
  const double e2e =
      std::chrono::duration<double>(RequestOutcome::Clock::now() - outcome.arrival).count();
  const std::string code = StatusCodeName(static_cast<StatusCode>(status.error_code()));
  const bool counted = std::strcmp(outcome.method, "generate") == 0 ||
                       std::strcmp(outcome.method, "score") == 0;
  if (metrics != nullptr) {
    if (!status.ok()) {
      metrics->ObserveFailure(e2e, code, outcome.api);
    } else if (counted) {
      metrics->ObserveSuccess(e2e, outcome.finish, outcome.api);
    }
  }
  nlohmann::ordered_json fields = {{"id", outcome.id}, {"method", outcome.method}};
  if (std::string_view(outcome.api) != "grpc") fields["api"] = outcome.api;
  if (outcome.prompt_tokens >= 0) fields["prompt_tokens"] = outcome.prompt_tokens;
  if (outcome.output_tokens >= 0) fields["output_tokens"] = outcome.output_tokens;
  if (outcome.queue_seconds >= 0) fields["queue_ms"] = Ms(outcome.queue_seconds);
  if (outcome.ttft_seconds >= 0) fields["ttft_ms"] = Ms(outcome.ttft_seconds);
  fields["e2e_ms"] = Ms(e2e);
  if (status.ok()) {
    fields["finish"] = outcome.finish;
    Log(LogLevel::kInfo, "request finished", fields);
  } else {
    fields["code"] = code;
    // The status message says what was wrong with the request; it quotes no prompt text.
    fields["error"] = status.error_message();
    Log(status.error_code() == grpc::StatusCode::INTERNAL ? LogLevel::kError : LogLevel::kInfo,
        "request failed", fields);
  }
}

}  // namespace pkm
