// The operator's log: one line per event on stderr, timestamped (UTC, milliseconds) and
// levelled, as text or as JSON (--log-format). Events carry key=value fields; no prompt text or
// token is ever a field (requests are logged by counts and times only).
//
//   text: 2026-12-02T22:57:55.123Z INFO request finished id=7 kind=generate prompt_tokens=12
//   json: {"ts":"2026-12-02T22:57:55.123Z","level":"info","msg":"request finished","id":7,...}
//
// Thread-safety: Log may be called from any thread; each line is written whole.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace pkm {

enum class LogLevel { kInfo = 0, kWarning = 1, kError = 2 };

// "info", "warning" (or "warn"), "error".
std::optional<LogLevel> ParseLogLevel(std::string_view name);

struct LogOptions {
  std::string format = "text";  // "text" or "json"
  LogLevel level = LogLevel::kInfo;  // lines below it are dropped
};

// Process-wide: set once at start-up, before other threads log.
void ConfigureLog(const LogOptions& options);

// Fields: a JSON object (or null); strings are quoted in text when they hold spaces or quotes.
void Log(LogLevel level, std::string_view message, const nlohmann::ordered_json& fields = nullptr);

// The line Log would write, without the newline (for tests); `unix_ms` is the timestamp.
std::string FormatLogLine(const LogOptions& options, long long unix_ms, LogLevel level,
                          std::string_view message, const nlohmann::ordered_json& fields);

}  // namespace pkm
